"""The NumPy op pairs (`minilm.numpy.functional`).

Every property `minilm check` grades a learner's op pairs with (`minilm/check/exercises/`: each
forward against PyTorch float64, each backward against central finite differences of the forward
and against torch autograd, and the properties each op promises: rows of softmax sum to 1,
attention ignores the future, a query that may attend nothing outputs zeros, ...) is run against
the library itself by tests/test_library_exercises.py, under the test suite's hypothesis profile:
one copy of each check, shared by the tests and the checker. Its tolerances are stated there
(float64):

    FD_TOL    = 1e-8   central differences (`numerical_gradient`: fourth-order, h = 1e-4), whose
                       truncation O(h^4) and roundoff ~ 1e-16 |L| / h are both ~1e-12 here
    TORCH_TOL = 1e-10  torch autograd: the same mathematics, rounded differently

Worst seen over 300 examples per test (HYPOTHESIS_PROFILE=thorough): 6e-11 against finite
differences (LayerNorm; 1e-11 to 3e-11 for the other ops), 2e-14 against torch.

Below them, what only the library has: attention dropout inside attention_forward (the learner's
signature has none), the causal_mask helper, and the errors bad input gets.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilm.check.exercises.language_models import FD_TOL, TORCH_TOL
from minilm.numpy import functional as F
from minilm.testing.oracles import (
    allowed_keys,
    finite_difference_error,
    relative_error,
    torch_attention,
    torch_forward_backward,
)
from minilm.testing.strategies import attention_cases

# ================================================================ attention dropout (library only)


def run_attention(case):
    """attention_forward on `case` with its dropout, drawing the mask from a fresh generator of
    the case's seed (the same mask on every call, as finite differences need)."""
    return F.attention_forward(
        case["q"], case["k"], case["v"], attn_mask=case["attn_mask"], causal=case["causal"],
        scale=case["scale"], dropout_p=case["dropout_p"],
        rng=np.random.default_rng(case["rng_seed"]),
    )


@given(attention_cases().filter(lambda case: case["dropout_p"] > 0))
def test_attention_with_dropout_backward_matches_finite_differences_and_torch(case):
    """With attention dropout (the mask fixed by its generator's seed) the backward is the
    gradient in q, k and v, by finite differences and by torch autograd of the same masked,
    dropped-out attention."""
    out, cache = run_attention(case)
    dout = np.random.default_rng(case["seed"]).standard_normal(out.shape)
    grads = F.attention_backward(dout, cache)
    pairs = [(case[name], grad) for name, grad in zip("qkv", grads)]
    assert finite_difference_error(lambda: run_attention(case)[0], dout, pairs) <= FD_TOL
    nq, nk = case["q"].shape[-2], case["k"].shape[-2]
    allowed = allowed_keys(case["attn_mask"], case["causal"], nq, nk)
    scale = 1 / np.sqrt(case["q"].shape[-1]) if case["scale"] is None else case["scale"]
    expected_out, expected_grads = torch_forward_backward(
        lambda *t: torch_attention(*t, allowed, scale, cache.dropout.keep_scaled),
        [case["q"], case["k"], case["v"]], dout,
    )
    for expected, actual in zip([expected_out, *expected_grads], [out, *grads], strict=True):
        assert relative_error(expected, actual) <= TORCH_TOL


# ================================================================ float32 erf (library only)


def test_float32_erf_is_within_5e_7_of_the_exact_one_and_float64_is_exact():
    """GELU's erf in float32 is a rational approximation (`F.erf`): within its stated 5e-7 of
    scipy's float64 erf everywhere (odd, saturating at +-1, NaN passed through); float64 inputs
    get scipy's erf itself, and float16 inputs are computed in float32. Evaluated in blocks, it
    gives the same numbers for every shape and memory layout of its input."""
    from scipy.special import erf as exact

    z = np.concatenate([np.linspace(-7.0, 7.0, 200_001), [0.0, 1e-30, -1e-30, 4.0, 40.0]])
    approx = F.erf(z.astype(np.float32))
    assert approx.dtype == np.float32
    error = np.abs(approx - exact(z.astype(np.float32).astype(np.float64)))
    assert error.max() < 5e-7
    assert np.array_equal(F.erf(-z.astype(np.float32)), -approx)
    assert np.array_equal(F.erf(z), exact(z))
    assert F.erf(np.array([0.5], dtype=np.float16)).dtype == np.float32
    grid = z[:200_000].astype(np.float32).reshape(400, 500)  # evaluated block by block
    for view in (grid, grid.T, grid[:, ::3], grid[0, 0]):  # any layout, any shape, 0-d too
        assert np.array_equal(F.erf(np.asarray(view)), F.erf(np.asarray(view).ravel()).reshape(
            np.shape(view)))
    assert np.isnan(F.erf(np.array([np.nan], dtype=np.float32))).all()


# ================================================================ edge cases and bad input


def test_float16_layer_norm_computes_its_statistics_in_float32():
    """x 300 from its row's mean: the float16 square (9e4 > 65504) overflowed, the variance was inf
    and the output exactly the bias, with dx = 0. Now: torch's float32 LayerNorm, to float16."""
    import torch

    x = np.array([[300.0, -300.0, 1.0, 2.0], [0.5, -0.25, 0.125, 0.0]], dtype=np.float16)
    weight, bias = np.ones(4, np.float16), np.arange(4, dtype=np.float16)
    out, cache = F.layer_norm_forward(x, weight, bias)
    dout = np.ones_like(x)
    dx, dweight, _ = F.layer_norm_backward(dout, cache)
    leaf = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    expected = torch.nn.functional.layer_norm(leaf, (4,), torch.tensor(weight, dtype=torch.float32),
                                              torch.tensor(bias, dtype=torch.float32))
    (expected * torch.tensor(dout, dtype=torch.float32)).sum().backward()
    assert out.dtype == dx.dtype == dweight.dtype == np.float16
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dx, leaf.grad.numpy(), atol=1e-3)


def test_everything_masked_gives_zeros():
    """A mask of all False (and causal with more queries than keys, for the first rows) gives
    zero output and zero gradients, never NaN."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    out, cache = F.attention_forward(q, k, v, attn_mask=np.zeros((3, 3), dtype=bool))
    grads = F.attention_backward(rng.standard_normal(out.shape), cache)
    assert not out.any() and not any(g.any() for g in grads)
    out, cache = F.attention_forward(q, k[:, :1], v[:, :1], causal=True)
    assert not out[:, :2].any() and np.isfinite(out).all()

@given(st.integers(1, 6), st.integers(1, 6))
def test_causal_mask_is_aligned_bottom_right(n_queries, n_keys):
    """Query i may attend key j iff j <= i + (Nk - Nq): the lower triangle when Nq == Nk (torch's
    is_causal), and the last query sees every key (decoding with a KV cache)."""
    mask = F.causal_mask(n_queries, n_keys)
    lower = np.tril(np.ones((n_queries, n_keys), dtype=bool), k=n_keys - n_queries)
    np.testing.assert_array_equal(mask, lower)
    assert mask[-1].all()


def test_bad_inputs_raise_value_errors_naming_the_argument():
    """Shapes or values that cannot work raise ValueError, and the message names the argument."""
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="x has 4 features but weight expects 5"):
        F.linear_forward(x, np.zeros((6, 5)))
    with pytest.raises(ValueError, match="q has head dim 4 but k has 5"):
        F.attention_forward(x, np.zeros((2, 3, 5)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="k has 3 keys but v has 2"):
        F.attention_forward(x, x, np.zeros((2, 2, 4)))
    for causal in (False, True):
        with pytest.raises(ValueError, match="attn_mask of shape"):
            F.attention_forward(x, x, x, attn_mask=np.ones((4, 6), dtype=bool), causal=causal)
        with pytest.raises(ValueError, match="attn_mask of shape"):  # more dims than the scores
            F.attention_forward(x, x, x, attn_mask=np.ones((5, 1, 1, 3), dtype=bool), causal=causal)
    with pytest.raises(ValueError, match="attn_mask must be boolean"):
        F.attention_forward(x, x, x, attn_mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"attn_mask must be a numpy\.ndarray, got builtins\.list"):
        F.attention_forward(x, x, x, attn_mask=[[True] * 3] * 3)
    with pytest.raises(ValueError, match="targets shape"):
        F.cross_entropy_forward(x, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="targets must lie in"):
        F.cross_entropy_forward(x, np.full((2, 3), 4))
    with pytest.raises(ValueError, match="ids must lie in"):
        F.embedding_forward(np.array([0, 3]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="ids must lie in"):
        F.embedding_forward(np.array([-1]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="ids must be integers"):
        F.embedding_forward(np.array([0.0, 1.0]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="approximate must be one of"):
        F.gelu_forward(x, approximate="sigmoid")
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            F.dropout_forward(x, p, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng must be a np.random.Generator"):
        F.dropout_forward(x, 0.5, rng=None)
