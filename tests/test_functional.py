"""The NumPy op pairs (`minilm.numpy.functional`): every backward against central finite
differences and against torch autograd, then the properties each op promises.

One error metric throughout, `relative_error(expected, actual)` from tests/strategies.py:

    max|expected - actual| / max(1, max|expected|)

(relative for large values, absolute for small ones, so gradients that must be exactly zero are
checked too). Tolerances, all in float64:

    FD_TOL    = 1e-8   central differences (`numerical_gradient`: fourth-order, h = 1e-4), whose
                       truncation O(h^4) and roundoff ~ 1e-16 |L| / h are both ~1e-12 here
    TORCH_TOL = 1e-10  torch autograd: the same mathematics, rounded differently

Worst seen over 300 examples per test (HYPOTHESIS_PROFILE=thorough): 6e-11 against finite
differences (LayerNorm; 1e-11 to 3e-11 for the other ops), 2e-14 against torch.

The backward of each op is checked on L = sum(out * dout) with a random `dout`, so every entry of
the upstream gradient matters.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minilm.numpy import functional as F
from minilm.testing.oracles import numerical_gradient, relative_error
from minilm.testing.strategies import float_arrays, seeds

FD_TOL = 1e-8
TORCH_TOL = 1e-10


def finite_difference_error(forward, dout, pairs):
    """Worst relative_error over `pairs` of (input array, its analytic gradient), where the
    numerical gradient is that of L = sum(forward() * dout); `forward` reads the inputs through a
    closure, so perturbing one in place changes its output."""
    loss = lambda _: float(np.sum(forward() * dout))
    return max(relative_error(numerical_gradient(loss, x), grad) for x, grad in pairs)


def torch_forward_backward(fn, arrays, dout):
    """Run fn on float64 leaf tensors made from `arrays`, backpropagate `dout`: (out, grads)."""
    leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.as_tensor(dout))
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


def assert_close_to_torch(ours, theirs):
    for mine, reference in zip(ours, theirs, strict=True):
        assert relative_error(reference, mine) <= TORCH_TOL


small_dims = st.integers(1, 4)
lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


# ================================================================ cases shared by both checks


@st.composite
def linear_cases(draw):
    """x (..., in), W (out, in), b (out,) or None."""
    rng = np.random.default_rng(draw(seeds))
    lead, n_in, n_out = draw(lead_shapes), draw(small_dims), draw(small_dims)
    bias = rng.standard_normal(n_out) if draw(st.booleans()) else None
    return rng.standard_normal(lead + (n_in,)), rng.standard_normal((n_out, n_in)), bias, rng


@st.composite
def embedding_cases(draw):
    """A few rows and many ids, so ids repeat and their gradients must add up."""
    rng = np.random.default_rng(draw(seeds))
    vocab = draw(st.integers(1, 4))
    ids = rng.integers(0, vocab, size=draw(st.sampled_from([(6,), (2, 5), (3, 4)])))
    return ids, rng.standard_normal((vocab, draw(small_dims))), rng


@st.composite
def layer_norm_cases(draw):
    """Rows with standard deviation drawn in [0.1, 3]: near a row of equal values 1/sqrt(var + eps)
    explodes and so do the derivatives that finite differences neglect."""
    rng = np.random.default_rng(draw(seeds))
    channels = draw(st.integers(2, 6))
    z = rng.standard_normal(draw(lead_shapes) + (channels,))
    z = (z - z.mean(-1, keepdims=True)) / z.std(-1, keepdims=True)
    x = draw(st.floats(-3, 3)) + rng.uniform(0.1, 3, z.shape[:-1] + (1,)) * z
    eps = draw(st.sampled_from([1e-5, 1e-12]))
    return x, 1 + 0.5 * rng.standard_normal(channels), rng.standard_normal(channels), eps, rng


@st.composite
def softmax_cases(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = tuple(draw(st.lists(small_dims, min_size=1, max_size=3)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return 2 * rng.standard_normal(shape), axis, rng


@st.composite
def dropout_cases(draw):
    seed = draw(seeds)
    rng = np.random.default_rng(seed + 1)
    p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    return rng.standard_normal(draw(lead_shapes) + (draw(small_dims),)), p, seed, rng


MASK_KINDS = ("none", "keys", "square", "full")


@st.composite
def attention_cases(draw):
    """q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv) and every kind of mask the op accepts:
    none, key padding (B, 1, 1, Nk), one (Nq, Nk) mask shared by all heads, a full
    (B, H, Nq, Nk) mask; optionally causal (Nq != Nk allowed, so some rows may be fully masked),
    a given scale and attention dropout with a fixed seed."""
    seed = draw(seeds)
    rng = np.random.default_rng(seed + 1)
    batch, heads = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    nq, nk, d, dv = draw(small_dims), draw(small_dims), draw(small_dims), draw(small_dims)
    kind = draw(st.sampled_from(MASK_KINDS))
    mask_shape = {"keys": (batch, 1, 1, nk), "square": (nq, nk), "full": (batch, heads, nq, nk)}
    mask = None if kind == "none" else rng.random(mask_shape[kind]) < 0.7
    return {
        "q": rng.standard_normal((batch, heads, nq, d)),
        "k": rng.standard_normal((batch, heads, nk, d)),
        "v": rng.standard_normal((batch, heads, nk, dv)),
        "attn_mask": mask,
        "causal": draw(st.booleans()),
        "scale": draw(st.sampled_from([None, 0.3, 2.0])),
        "dropout_p": draw(st.sampled_from([0.0, 0.0, 0.3])),
        "seed": seed,
        "rng": rng,
    }


def run_attention(case, q=None, k=None, v=None):
    """attention_forward on `case`, with a fresh generator of the case's seed (same dropout mask
    on every call, as finite differences need)."""
    return F.attention_forward(
        case["q"] if q is None else q, case["k"] if k is None else k, case["v"] if v is None else v,
        attn_mask=case["attn_mask"], causal=case["causal"], scale=case["scale"],
        dropout_p=case["dropout_p"], rng=np.random.default_rng(case["seed"]),
    )


def allowed_keys(case):
    """The boolean (.., Nq, Nk) matrix of which query may attend which key, built independently."""
    nq, nk = case["q"].shape[-2], case["k"].shape[-2]
    allowed = np.ones((nq, nk), dtype=bool)
    if case["attn_mask"] is not None:
        allowed = allowed & case["attn_mask"]
    if case["causal"]:
        allowed = allowed & np.tril(np.ones((nq, nk), dtype=bool), k=nk - nq)
    return allowed


@st.composite
def cross_entropy_cases(draw):
    """logits (..., V), targets (...) with some (perhaps all) set to ignore_index, a dloss."""
    rng = np.random.default_rng(draw(seeds))
    lead = tuple(draw(st.lists(small_dims, min_size=1, max_size=2)))
    vocab = draw(st.integers(1, 5))
    ignore_index = draw(st.sampled_from([-100, -1]))
    targets = rng.integers(0, vocab, size=lead)
    targets[rng.random(lead) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = ignore_index
    return 3 * rng.standard_normal(lead + (vocab,)), targets, ignore_index, rng.normal(), rng


# ================================================================ backward vs finite differences


@given(linear_cases())
def test_linear_backward_matches_finite_differences(case):
    """Linear's backward is the gradient of sum(y * dy) in x, W and b (with or without b)."""
    x, weight, bias, rng = case
    out, cache = F.linear_forward(x, weight, bias)
    dout = rng.standard_normal(out.shape)
    dx, dweight, dbias = F.linear_backward(dout, cache)
    pairs = [(x, dx), (weight, dweight)] + ([] if bias is None else [(bias, dbias)])
    assert (bias is None) == (dbias is None)
    error = finite_difference_error(lambda: F.linear_forward(x, weight, bias)[0], dout, pairs)
    assert error <= FD_TOL


@given(embedding_cases())
def test_embedding_backward_matches_finite_differences(case):
    """Embedding's backward adds the gradient of every position into its id's row (ids repeat)."""
    ids, weight, rng = case
    out, cache = F.embedding_forward(ids, weight)
    dout = rng.standard_normal(out.shape)
    dweight = F.embedding_backward(dout, cache)
    forward = lambda: F.embedding_forward(ids, weight)[0]
    error = finite_difference_error(forward, dout, [(weight, dweight)])
    assert error <= FD_TOL


@given(layer_norm_cases())
def test_layer_norm_backward_matches_finite_differences(case):
    """LayerNorm's backward is the gradient in x (through mean and variance), weight and bias."""
    x, weight, bias, eps, rng = case
    out, cache = F.layer_norm_forward(x, weight, bias, eps)
    dout = rng.standard_normal(out.shape)
    dx, dweight, dbias = F.layer_norm_backward(dout, cache)
    forward = lambda: F.layer_norm_forward(x, weight, bias, eps)[0]
    pairs = [(x, dx), (weight, dweight), (bias, dbias)]
    assert finite_difference_error(forward, dout, pairs) <= FD_TOL


approximations = st.sampled_from(F.GELU_APPROXIMATIONS)


@given(float_arrays(st.tuples(small_dims, small_dims)), approximations, seeds)
def test_gelu_backward_matches_finite_differences(x, approximate, seed):
    """GELU's backward (exact erf and tanh approximation) is its derivative, at any x in [-3, 3]."""
    out, cache = F.gelu_forward(x, approximate)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    dx = F.gelu_backward(dout, cache)
    error = finite_difference_error(lambda: F.gelu_forward(x, approximate)[0], dout, [(x, dx)])
    assert error <= FD_TOL


@given(softmax_cases())
def test_softmax_backward_matches_finite_differences(case):
    """Softmax's backward p * (dp - sum(dp p)) is its Jacobian-vector product, along any axis."""
    x, axis, rng = case
    out, cache = F.softmax_forward(x, axis)
    dout = rng.standard_normal(out.shape)
    dx = F.softmax_backward(dout, cache)
    assert finite_difference_error(lambda: F.softmax_forward(x, axis)[0], dout, [(x, dx)]) <= FD_TOL


@given(dropout_cases())
def test_dropout_backward_matches_finite_differences(case):
    """With the mask fixed (a generator of the same seed), dropout's backward is its gradient."""
    x, p, seed, rng = case
    out, cache = F.dropout_forward(x, p, np.random.default_rng(seed))
    dout = rng.standard_normal(out.shape)
    dx = F.dropout_backward(dout, cache)
    forward = lambda: F.dropout_forward(x, p, np.random.default_rng(seed))[0]
    assert finite_difference_error(forward, dout, [(x, dx)]) <= FD_TOL


@given(attention_cases())
def test_attention_backward_matches_finite_differences(case):
    """Attention's backward is the gradient in q, k and v, whatever the mask (broadcast key
    padding, shared (Nq, Nk), full), causal alignment, scale, attention dropout or fully masked
    rows."""
    out, cache = run_attention(case)
    dout = case["rng"].standard_normal(out.shape)
    dq, dk, dv = F.attention_backward(dout, cache)
    pairs = [(case["q"], dq), (case["k"], dk), (case["v"], dv)]
    assert finite_difference_error(lambda: run_attention(case)[0], dout, pairs) <= FD_TOL


@given(cross_entropy_cases())
def test_cross_entropy_backward_matches_finite_differences(case):
    """Cross-entropy's backward is dloss * d(mean kept loss)/d logits; ignored rows get zero."""
    logits, targets, ignore_index, dloss, _ = case
    _, cache = F.cross_entropy_forward(logits, targets, ignore_index)
    dlogits = F.cross_entropy_backward(cache, dloss)
    forward = lambda: dloss * F.cross_entropy_forward(logits, targets, ignore_index)[0]
    assert finite_difference_error(forward, 1.0, [(logits, dlogits)]) <= FD_TOL
    assert not dlogits[targets == ignore_index].any()


# ================================================================ backward vs torch autograd


@given(linear_cases())
def test_linear_matches_torch(case):
    """Linear's output and gradients equal torch.nn.functional.linear's under autograd."""
    x, weight, bias, rng = case
    out, cache = F.linear_forward(x, weight, bias)
    dout = rng.standard_normal(out.shape)
    arrays = [x, weight] + ([] if bias is None else [bias])
    ref_out, ref_grads = torch_forward_backward(torch.nn.functional.linear, arrays, dout)
    grads = F.linear_backward(dout, cache)[: len(arrays)]
    assert_close_to_torch([out, *grads], [ref_out, *ref_grads])


@given(embedding_cases())
def test_embedding_matches_torch(case):
    """Embedding's output and weight gradient equal torch.nn.functional.embedding's."""
    ids, weight, rng = case
    out, cache = F.embedding_forward(ids, weight)
    dout = rng.standard_normal(out.shape)
    ref_out, (ref_dweight,) = torch_forward_backward(
        lambda w: torch.nn.functional.embedding(torch.as_tensor(ids), w), [weight], dout
    )
    assert_close_to_torch([out, F.embedding_backward(dout, cache)], [ref_out, ref_dweight])


@given(layer_norm_cases())
def test_layer_norm_matches_torch(case):
    """LayerNorm's output and gradients equal torch.nn.functional.layer_norm's."""
    x, weight, bias, eps, rng = case
    out, cache = F.layer_norm_forward(x, weight, bias, eps)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_grads = torch_forward_backward(
        lambda *t: torch.nn.functional.layer_norm(t[0], (x.shape[-1],), t[1], t[2], eps), [x, weight, bias], dout
    )
    assert_close_to_torch([out, *F.layer_norm_backward(dout, cache)], [ref_out, *ref_grads])


@given(float_arrays(st.tuples(small_dims, small_dims), low=-6, high=6), approximations, seeds)
def test_gelu_matches_torch(x, approximate, seed):
    """GELU (approximate="none" and "tanh") equals torch.nn.functional.gelu, value and gradient."""
    out, cache = F.gelu_forward(x, approximate)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    ref_out, ref_grads = torch_forward_backward(
        lambda t: torch.nn.functional.gelu(t, approximate=approximate), [x], dout
    )
    assert_close_to_torch([out, F.gelu_backward(dout, cache)], [ref_out, *ref_grads])


@given(softmax_cases())
def test_softmax_matches_torch(case):
    """Softmax along any axis equals torch.softmax, value and gradient."""
    x, axis, rng = case
    out, cache = F.softmax_forward(x, axis)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_grads = torch_forward_backward(lambda t: torch.softmax(t, axis), [x], dout)
    assert_close_to_torch([out, F.softmax_backward(dout, cache)], [ref_out, *ref_grads])


@given(dropout_cases())
def test_dropout_matches_torch(case):
    """Given the same mask, dropout is x * mask / (1 - p) in torch too, value and gradient."""
    x, p, seed, rng = case
    out, cache = F.dropout_forward(x, p, np.random.default_rng(seed))
    dout = rng.standard_normal(out.shape)
    kept = np.ones(x.shape, dtype=bool) if cache.keep_scaled is None else cache.keep_scaled != 0
    keep = kept.astype(x.dtype)
    ref_out, ref_grads = torch_forward_backward(
        lambda t: t * torch.as_tensor(keep) / (1 - p), [x], dout
    )
    assert_close_to_torch([out, F.dropout_backward(dout, cache)], [ref_out, *ref_grads])


def torch_attention(q, k, v, allowed, scale, keep_scaled=None):
    """softmax(q k^T * scale) v in torch with a boolean `allowed` (True = may attend); a row with
    nothing allowed outputs zeros (its scores are set to 0 before the softmax, then zeroed, so no
    NaN reaches autograd)."""
    scores = (q @ k.transpose(-1, -2)) * scale
    allowed = torch.as_tensor(allowed).expand(scores.shape)
    any_allowed = allowed.any(dim=-1, keepdim=True)
    scores = torch.where(any_allowed, scores.masked_fill(~allowed, float("-inf")), 0.0)
    probs = torch.softmax(scores, dim=-1) * any_allowed
    if keep_scaled is not None:
        probs = probs * torch.as_tensor(keep_scaled)
    return probs @ v


@given(attention_cases())
def test_attention_matches_torch(case):
    """Attention equals the same mathematics in torch autograd, and torch's own
    scaled_dot_product_attention (its boolean attn_mask, True = may attend; is_causal for
    Nq == Nk) wherever every query may attend something and there is no dropout."""
    out, cache = run_attention(case)
    dout = case["rng"].standard_normal(out.shape)
    grads = F.attention_backward(dout, cache)
    q, k, v = case["q"], case["k"], case["v"]
    scale = 1 / math.sqrt(q.shape[-1]) if case["scale"] is None else case["scale"]
    allowed = allowed_keys(case)
    keep_scaled = cache.dropout.keep_scaled
    ref_out, ref_grads = torch_forward_backward(
        lambda *t: torch_attention(*t, allowed, scale, keep_scaled), [q, k, v], dout
    )
    assert_close_to_torch([out, *grads], [ref_out, *ref_grads])

    every_row_attends = np.broadcast_to(allowed, out.shape[:-1] + k.shape[-2:-1]).any(-1).all()
    if case["dropout_p"] == 0 and every_row_attends:
        if case["causal"] and case["attn_mask"] is None and q.shape[-2] == k.shape[-2]:
            sdpa = lambda *t: torch.nn.functional.scaled_dot_product_attention(*t, is_causal=True, scale=scale)
        else:
            mask = torch.as_tensor(allowed)
            sdpa = lambda *t: torch.nn.functional.scaled_dot_product_attention(*t, attn_mask=mask, scale=scale)
        sdpa_out, sdpa_grads = torch_forward_backward(sdpa, [q, k, v], dout)
        assert_close_to_torch([out, *grads], [sdpa_out, *sdpa_grads])


@given(cross_entropy_cases())
def test_cross_entropy_matches_torch(case):
    """Cross-entropy (mean over kept targets, ignore_index) equals torch's, loss and gradient;
    when every target is ignored torch returns NaN (0/0) where ours returns 0 (checked below)."""
    logits, targets, ignore_index, dloss, _ = case
    loss, cache = F.cross_entropy_forward(logits, targets, ignore_index)
    dlogits = F.cross_entropy_backward(cache, dloss)
    if (targets == ignore_index).all():
        assert loss == 0 and not dlogits.any()
        return
    vocab = logits.shape[-1]
    ref_loss, (ref_dlogits,) = torch_forward_backward(
        lambda t: torch.nn.functional.cross_entropy(
            t.reshape(-1, vocab), torch.as_tensor(targets.reshape(-1)), ignore_index=ignore_index
        ),
        [logits],
        np.float64(dloss),
    )
    assert_close_to_torch([loss, dlogits], [ref_loss, ref_dlogits])


# ================================================================ properties


@given(softmax_cases(), st.floats(-50, 50))
def test_softmax_rows_sum_to_one_and_ignore_a_constant_shift(case, shift):
    """Softmax along `axis` is non-negative, sums to 1, and adding a constant to each row (a
    different constant per row) leaves it unchanged."""
    x, axis, rng = case
    probs, _ = F.softmax_forward(x, axis)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=axis), 1.0, rtol=0, atol=1e-12)
    per_row = shift + rng.standard_normal(np.sum(x, axis=axis, keepdims=True).shape)
    np.testing.assert_allclose(F.softmax_forward(x + per_row, axis)[0], probs, rtol=0, atol=1e-12)


@given(st.integers(1, 6), seeds)
def test_huge_logits_stay_finite(vocab, seed):
    """Logits of +-1e4 give a finite softmax summing to 1 and a finite cross-entropy and gradient
    (naive exp would overflow to inf, giving inf/inf = NaN)."""
    rng = np.random.default_rng(seed)
    logits = rng.choice([-1e4, 1e4], size=(3, vocab)) + rng.standard_normal((3, vocab))
    probs, _ = F.softmax_forward(logits)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)
    targets = rng.integers(0, vocab, size=3)
    loss, cache = F.cross_entropy_forward(logits, targets)
    dlogits = F.cross_entropy_backward(cache)
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    reference = torch.nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(targets)).item()
    assert abs(loss - reference) <= 1e-12 * max(1.0, abs(reference))


@given(attention_cases(), st.data())
def test_causal_attention_ignores_the_future(case, data):
    """With causal=True, changing the queries after row t and the keys/values query t may not see
    (j > t + Nk - Nq) leaves output rows 0..t unchanged."""
    case = {**case, "causal": True, "dropout_p": 0.0}
    q, k, v, rng = case["q"], case["k"], case["v"], case["rng"]
    nq, nk = q.shape[-2], k.shape[-2]
    t = data.draw(st.integers(0, nq - 1), label="t")
    first_hidden_key = max(t + nk - nq + 1, 0)
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    q2[..., t + 1 :, :] = rng.standard_normal(q2[..., t + 1 :, :].shape)
    k2[..., first_hidden_key:, :] = rng.standard_normal(k2[..., first_hidden_key:, :].shape)
    v2[..., first_hidden_key:, :] = rng.standard_normal(v2[..., first_hidden_key:, :].shape)
    before, _ = run_attention(case)
    after, _ = run_attention(case, q2, k2, v2)
    np.testing.assert_allclose(after[..., : t + 1, :], before[..., : t + 1, :], rtol=0, atol=1e-13)


@given(attention_cases(), st.data())
def test_attention_is_permutation_equivariant(case, data):
    """Without a mask, permuting the keys and values together leaves the output unchanged (keys
    are a set), and permuting the queries permutes the output rows the same way. With a key
    padding mask, permuting its columns along with the keys keeps the first property."""
    case = {**case, "causal": False, "dropout_p": 0.0}
    q, k, v = case["q"], case["k"], case["v"]
    key_order = np.array(data.draw(st.permutations(range(k.shape[-2])), label="key order"))
    query_order = np.array(data.draw(st.permutations(range(q.shape[-2])), label="query order"))
    plain = {**case, "attn_mask": None}
    out, _ = run_attention(plain)
    np.testing.assert_allclose(
        run_attention(plain, k=k[..., key_order, :], v=v[..., key_order, :])[0], out, atol=1e-13
    )
    np.testing.assert_allclose(
        run_attention(plain, q=q[..., query_order, :])[0], out[..., query_order, :], atol=1e-13
    )
    padding = {**case, "attn_mask": case["rng"].random((q.shape[0], 1, 1, k.shape[-2])) < 0.7}
    padded_out, _ = run_attention(padding)
    permuted = {**padding, "attn_mask": padding["attn_mask"][..., key_order]}
    np.testing.assert_allclose(
        run_attention(permuted, k=k[..., key_order, :], v=v[..., key_order, :])[0], padded_out,
        atol=1e-13,
    )


@given(attention_cases())
def test_fully_masked_rows_give_zeros_and_zero_gradients(case):
    """A query row that may attend nothing outputs exactly zero, gets dq = 0, and its upstream
    gradient does not reach k or v; nothing is NaN. Row 0 is masked out entirely here."""
    q, k = case["q"], case["k"]
    mask = np.ones(q.shape[:-1] + (k.shape[-2],), dtype=bool) if case["attn_mask"] is None else (
        np.broadcast_to(case["attn_mask"], q.shape[:-1] + (k.shape[-2],)).copy()
    )
    mask[..., 0, :] = False
    case = {**case, "attn_mask": mask}
    empty = ~allowed_keys(case).any(axis=-1)  # (B, H, Nq)
    out, cache = run_attention(case)
    dout = case["rng"].standard_normal(out.shape)
    dq, dk, dv = F.attention_backward(dout, cache)
    assert all(np.isfinite(a).all() for a in (out, dq, dk, dv))
    assert not out[empty].any() and not dq[empty].any()
    dout[empty] = 1e6 * case["rng"].standard_normal(dout[empty].shape)
    _, dk2, dv2 = F.attention_backward(dout, cache)
    np.testing.assert_array_equal(dk2, dk)
    np.testing.assert_array_equal(dv2, dv)


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


@given(dropout_cases())
def test_dropout_is_the_identity_in_eval_and_with_p_zero(case):
    """Not training (or p == 0), dropout returns its input unchanged and passes the gradient
    through unchanged, drawing nothing from the generator."""
    x, p, seed, _ = case
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    for training, prob in ((False, p), (True, 0.0)):
        out, cache = F.dropout_forward(x, prob, rng, training=training)
        assert out is x and F.dropout_backward(x, cache) is x
    assert rng.bit_generator.state == state


@given(st.floats(0.05, 0.9), seeds)
def test_dropout_keeps_the_mean(p, seed):
    """Inverted dropout keeps the expectation: each output is x / (1 - p) with probability 1 - p,
    else 0, so on x = 1 with n = 20000 entries the mean m has E[m] = 1 and
    sd(m) = sqrt(p / ((1 - p) n)); we assert |m - 1| < 6 sd (fails with probability ~2e-9), and
    likewise that the zeroed fraction is within 6 sd of p."""
    n = 20_000
    out, _ = F.dropout_forward(np.ones(n), p, np.random.default_rng(seed))
    assert set(np.unique(out)) <= {0.0, 1 / (1 - p)}
    assert abs(out.mean() - 1) < 6 * math.sqrt(p / ((1 - p) * n))
    assert abs((out == 0).mean() - p) < 6 * math.sqrt(p * (1 - p) / n)


def test_cross_entropy_with_every_target_ignored_is_zero():
    """If every target is ignore_index the loss is 0 and its gradient is 0, not NaN (0 / 0)."""
    logits = np.random.default_rng(0).standard_normal((2, 3, 5))
    loss, cache = F.cross_entropy_forward(logits, np.full((2, 3), -100))
    dlogits = F.cross_entropy_backward(cache, dloss=2.0)
    assert loss == 0.0 and dlogits.shape == logits.shape and not dlogits.any()


# ================================================================ bad input -> ValueError


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
