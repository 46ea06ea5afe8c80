"""Lesson 01, self-attention: the attention op pair (`minilm.numpy.functional.attention_*`).

Semantics (DESIGN.md): q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv); scale defaults to
1/sqrt(D); attn_mask is boolean, broadcastable to (..., Nq, Nk), True = may attend; causal=True is
aligned bottom-right (query i may attend key j iff j <= i + Nk - Nq); a query that may attend
nothing outputs zeros and passes zero gradient, never NaN.

The oracle is the same mathematics in PyTorch float64 (`minilm.testing.oracles.torch_attention`),
and torch's own scaled_dot_product_attention wherever every query may attend something.
Tolerances as in lesson 00: TORCH_TOL = 1e-10, FD_TOL = 1e-8 (float64). The causal mask is
checked exactly, against the same rule written independently (`minilm.testing.oracles.allowed_keys`).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from minilm.check.exercises.language_models import FD_TOL, TORCH_TOL, upstream
from minilm.check.framework import (
    as_array,
    as_float32,
    assert_close,
    assert_float32,
    assert_true,
    exercise,
    gradient_error,
    on_case,
    pair,
    prop,
    returned,
)
from minilm.testing.oracles import (
    allowed_keys,
    torch_attention,
    torch_forward_backward,
)
from minilm.testing.strategies import attention_cases

LESSON = "01"

exercise("causal_mask", LESSON, "causal_mask(n_queries, n_keys) -> (Nq, Nk) bool",
         "True where query i may attend key j: j <= i + (Nk - Nq), aligned bottom-right")
exercise("attention_forward", LESSON,
         "attention_forward(q, k, v, attn_mask=None, causal=False, scale=None) -> (out, cache)",
         "softmax(q k^T * scale, masked) v, on any leading axes")
exercise("attention_backward", LESSON, "attention_backward(dout, cache) -> (dq, dk, dv)",
         "the gradients of attention in q, k and v")

cases = attention_cases(dropout=False)


# ---------------------------------------------------------------- the causal mask

mask_sizes = st.fixed_dictionaries({"n_queries": st.integers(1, 7), "n_keys": st.integers(1, 7)})


def causal_of(impl, case):
    """The implementation's mask for the case's sizes, checked for its shape."""
    mask = as_array(impl.causal_mask(case["n_queries"], case["n_keys"]), "mask")
    shape = (case["n_queries"], case["n_keys"])
    assert_true(mask.shape == shape, f"shape {mask.shape}, expected (n_queries, n_keys) = {shape}")
    return mask


@prop("causal_mask", "is a boolean (Nq, Nk) array, True = may attend", mask_sizes,
      hint="return the comparison itself (a bool array): attn_mask is boolean, not 0/1 or 0/-inf")
def causal_mask_is_boolean(impl, case):
    mask = causal_of(impl, case)
    assert_true(mask.dtype == np.bool_, f"dtype {mask.dtype}, expected bool (True = may attend)")


@prop("causal_mask", "with Nq == Nk, query i sees keys 0..i (itself included)",
      st.integers(1, 7).map(lambda n: {"n_queries": n, "n_keys": n}),
      hint="the lower triangle with its diagonal, True where j <= i: a token may attend itself")
def causal_mask_square(impl, case):
    mask = causal_of(impl, case).astype(bool)
    n = case["n_queries"]
    lower = np.tril(np.ones((n, n), dtype=bool))
    wrong = np.argwhere(mask != lower)
    assert_true(not wrong.size, f"{len(wrong)} wrong entries of {n * n}, first (query, key) = "
                                f"{tuple(int(i) for i in wrong[0]) if wrong.size else None}")


@prop("causal_mask", "the last query sees every key (aligned bottom-right)", mask_sizes,
      hint="with a KV cache the queries are the last Nq positions: query i sees j <= i + (Nk - Nq)")
def causal_mask_last_query(impl, case):
    mask = causal_of(impl, case).astype(bool)
    assert_true(mask[-1].all(), f"the last query may not attend keys "
                                f"{np.flatnonzero(~mask[-1]).tolist()} of {case['n_keys']}")


@prop("causal_mask", "matches j <= i + (Nk - Nq) for any Nq, Nk", mask_sizes,
      hint="compare np.arange(Nk)[None, :] with np.arange(Nq)[:, None] + (Nk - Nq)")
def causal_mask_matches(impl, case):
    mask = causal_of(impl, case).astype(bool)
    expected = allowed_keys(None, True, case["n_queries"], case["n_keys"])
    wrong = np.argwhere(mask != expected)
    assert_true(not wrong.size, f"{len(wrong)} wrong entries, first (query, key) = "
                                f"{tuple(int(i) for i in wrong[0]) if wrong.size else None}")


# ---------------------------------------------------------------- attention


def attend(impl, case, **changes):
    """The implementation's (out, cache) on the case, with some inputs changed."""
    case = {**case, **changes}
    return pair(impl.attention_forward(case["q"], case["k"], case["v"],
                                       attn_mask=case["attn_mask"], causal=case["causal"],
                                       scale=case["scale"]), "attention_forward")


def allowed_of(case):
    return allowed_keys(case["attn_mask"], case["causal"], case["q"].shape[-2],
                        case["k"].shape[-2])


def scale_of(case):
    return 1 / math.sqrt(case["q"].shape[-1]) if case["scale"] is None else case["scale"]


def torch_reference(case, dout):
    """(out, [dq, dk, dv]) of the same mathematics under torch autograd, float64."""
    allowed, scale = allowed_of(case), scale_of(case)
    return torch_forward_backward(lambda *t: torch_attention(*t, allowed, scale),
                                  [case["q"], case["k"], case["v"]], dout)


@prop("attention_forward", "matches softmax(q k^T * scale, masked) v in torch (float64)", cases,
      hint="scores = q @ k^T * scale; masked scores -> -inf; softmax over the keys; @ v")
def attention_matches_torch(impl, case):
    out = as_array(attend(impl, case)[0], "out")
    expected, _ = torch_reference(case, np.zeros(out.shape))
    assert_close("out vs torch", expected, out, TORCH_TOL)
    # and always a given scale of 0.0 (uniform attention over the allowed keys): a scale, not "no
    # scale", which `scale or 1/sqrt(D)` would make it, whichever scale the draw gave
    with on_case({**case, "scale": 0.0}) as zero:
        out = as_array(attend(impl, zero)[0], "out")
        expected, _ = torch_reference(zero, np.zeros(out.shape))
        assert_close("out vs torch with scale=0.0", expected, out, TORCH_TOL)


@prop("attention_forward", "matches torch's scaled_dot_product_attention", cases,
      hint="the same function as PyTorch's SDPA: boolean mask True = may attend")
def attention_matches_sdpa(impl, case):
    import torch

    allowed = allowed_of(case)
    out = as_array(attend(impl, case)[0], "out")
    if not np.broadcast_to(allowed, out.shape[:-1] + case["k"].shape[-2:-1]).any(-1).all():
        return  # SDPA's output for a row that may attend nothing is not defined
    q, k, v = (torch.as_tensor(case[name]) for name in "qkv")
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.as_tensor(allowed), scale=scale_of(case)).numpy()
    assert_close("out vs scaled_dot_product_attention", expected, out, TORCH_TOL)


@prop("attention_forward", "scale=None means 1/sqrt(D)", cases.map(lambda c: {**c, "scale": None}),
      hint="divide the scores by sqrt(D), D = q.shape[-1], when no scale is given")
def attention_default_scale(impl, case):
    out = as_array(attend(impl, case)[0], "out")
    explicit = as_array(attend(impl, case, scale=1 / math.sqrt(case["q"].shape[-1]))[0], "out")
    assert_close("out(scale=None) vs out(scale=1/sqrt(D))", explicit, out, TORCH_TOL)
    expected, _ = torch_reference(case, np.zeros(out.shape))
    assert_close("out(scale=None) vs torch with 1/sqrt(D)", expected, out, TORCH_TOL)


@prop("attention_forward", "True in attn_mask means 'may attend'",
      cases.map(lambda c: {**c, "attn_mask": None, "causal": False}),
      hint="True = may attend (as PyTorch SDPA): keep the scores where the mask is True")
def attention_mask_meaning(impl, case):
    """With one allowed key per query, the output is exactly that key's value."""
    q, v = case["q"], case["v"]
    nq, nk = q.shape[-2], case["k"].shape[-2]
    chosen = np.random.default_rng(case["seed"]).integers(0, nk, size=nq)
    mask = np.zeros((nq, nk), dtype=bool)
    mask[np.arange(nq), chosen] = True
    with on_case({**case, "attn_mask": mask}) as one_key_each:  # the mask it failed on is shown
        out = as_array(attend(impl, one_key_each)[0], "out")
        assert_close("out when each query may attend only one key", v[..., chosen, :], out, 1e-12)


@prop("attention_forward", "the causal mask is aligned bottom-right (Nq != Nk)",
      cases.filter(lambda c: c["q"].shape[-2] != c["k"].shape[-2]).map(
          lambda c: {**c, "attn_mask": None, "causal": True}),
      hint="query i may attend key j iff j <= i + (Nk - Nq): the last query sees every key")
def attention_causal_alignment(impl, case):
    out = as_array(attend(impl, case)[0], "out")
    expected, _ = torch_reference(case, np.zeros(out.shape))
    assert_close("causal out vs bottom-right aligned torch", expected, out, TORCH_TOL)


@prop("attention_forward", "future keys do not change past outputs (causal)",
      st.tuples(cases, st.data()).map(lambda c: {**c[0], "causal": True, "_data": c[1]}),
      hint="mask the scores of keys j > i + (Nk - Nq) before the softmax, not after")
def attention_ignores_the_future(impl, case):
    q, k, v = case["q"], case["k"], case["v"]
    nq, nk = q.shape[-2], k.shape[-2]
    t = case["_data"].draw(st.integers(0, nq - 1), label="t")
    first_hidden_key = max(t + nk - nq + 1, 0)
    rng = np.random.default_rng(case["seed"])
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    q2[..., t + 1:, :] = rng.standard_normal(q2[..., t + 1:, :].shape)
    k2[..., first_hidden_key:, :] = rng.standard_normal(k2[..., first_hidden_key:, :].shape)
    v2[..., first_hidden_key:, :] = rng.standard_normal(v2[..., first_hidden_key:, :].shape)
    before = as_array(attend(impl, case)[0], "out")
    after = as_array(attend(impl, case, q=q2, k=k2, v=v2)[0], "out")
    assert_close(f"outputs 0..{t} after changing what query {t} may not see",
                 before[..., : t + 1, :], after[..., : t + 1, :], 1e-13)


@prop("attention_forward", "keys are a set, queries a list (permutations)",
      st.tuples(cases, st.data()).map(lambda c: {**c[0], "causal": False, "attn_mask": None,
                                                 "_data": c[1]}),
      hint="attention treats keys as an unordered set: no position enters the formula")
def attention_is_permutation_equivariant(impl, case):
    q, k, v = case["q"], case["k"], case["v"]
    data = case["_data"]
    key_order = np.array(data.draw(st.permutations(range(k.shape[-2])), label="key order"))
    query_order = np.array(data.draw(st.permutations(range(q.shape[-2])), label="query order"))
    out = as_array(attend(impl, case)[0], "out")
    permuted_keys = attend(impl, case, k=k[..., key_order, :], v=v[..., key_order, :])[0]
    assert_close("out with keys and values permuted together", out, permuted_keys, 1e-13)
    permuted_queries = attend(impl, case, q=q[..., query_order, :])[0]
    assert_close("out with queries permuted", out[..., query_order, :], permuted_queries, 1e-13)


def with_empty_row(case):
    """The case with query 0 allowed to attend nothing (every head, every batch entry)."""
    q, k = case["q"], case["k"]
    shape = q.shape[:-1] + (k.shape[-2],)
    mask = (np.ones(shape, dtype=bool) if case["attn_mask"] is None
            else np.broadcast_to(case["attn_mask"], shape).copy())
    mask[..., 0, :] = False
    return {**case, "attn_mask": mask}


@prop("attention_forward", "a query that may attend nothing outputs zeros, never NaN",
      cases.map(with_empty_row),
      hint="a fully masked row has all scores -inf: exp gives 0/0; output zeros there instead",
      nonfinite=True)
def attention_empty_rows(impl, case):
    out = as_array(attend(impl, case)[0], "out")
    assert_true(np.isfinite(out).all(), "out holds NaN or inf")
    empty = np.broadcast_to(~allowed_of(case).any(axis=-1), out.shape[:-1])  # (..., Nq)
    assert_true(not out[empty].any(), "a query that may attend nothing has a non-zero output")


@prop("attention_backward", "is the gradient of your attention_forward (finite differences)",
      cases, needs=("attention_forward",),
      hint="dv = P^T dout; dP = dout v^T; dS = P * (dP - rowsum(dP * P)); dq = dS k * scale; "
           "dk = dS^T q * scale")
def attention_backward_is_the_gradient(impl, case):
    out, cache = attend(impl, case)
    dout = upstream(case, np.shape(out))
    grads = returned(impl.attention_backward(dout, cache), "attention_backward", ("dq", "dk", "dv"))
    named = {f"d{name}": (case[name], g) for name, g in zip("qkv", grads)}
    error = gradient_error(lambda: attend(impl, case)[0], dout, named)
    assert_true(error <= FD_TOL, f"(dq, dk, dv) vs finite differences: error {error:.3g} > "
                                 f"{FD_TOL:g}", error)


@prop("attention_backward", "matches torch autograd (float64)", cases,
      needs=("attention_forward",), hint="the scale multiplies dS for both dq and dk")
def attention_backward_matches_torch(impl, case):
    out, cache = attend(impl, case)
    dout = upstream(case, np.shape(out))
    _, expected = torch_reference(case, dout)
    for name, mine, theirs in zip(("dq", "dk", "dv"), impl.attention_backward(dout, cache),
                                  expected):
        assert_close(f"{name} vs torch autograd", theirs, mine, TORCH_TOL)


@prop("attention_backward", "a query that may attend nothing passes zero gradient",
      cases.map(with_empty_row), needs=("attention_forward",), nonfinite=True,
      hint="masked probabilities are exactly 0, so they pass no gradient; never NaN")
def attention_backward_empty_rows(impl, case):
    out, cache = attend(impl, case)
    dout = upstream(case, np.shape(out))
    dq, dk, dv = (as_array(g, name) for g, name in zip(impl.attention_backward(dout, cache),
                                                         ("dq", "dk", "dv")))
    assert_true(all(np.isfinite(g).all() for g in (dq, dk, dv)), "a gradient holds NaN or inf")
    empty = np.broadcast_to(~allowed_of(case).any(axis=-1), dq.shape[:-1])
    assert_true(not dq[empty].any(), "a query that may attend nothing got a non-zero dq")
    dout[empty] = 1e6  # what reaches an empty row must not reach k or v
    _, dk2, dv2 = impl.attention_backward(dout, cache)
    assert_close("dk when the empty rows' upstream gradient changes", dk, dk2, 0.0)
    assert_close("dv when the empty rows' upstream gradient changes", dv, dv2, 0.0)


@prop("attention_backward", "float32 inputs give float32 outputs and gradients",
      cases.map(as_float32), needs=("attention_forward",), max_examples=5,
      hint="keep the inputs' dtype: np.zeros_like(scores), not np.zeros(shape); -inf as a float")
def attention_keeps_float32(impl, case):
    out, cache = attend(impl, case)
    grads = returned(impl.attention_backward(upstream(case, np.shape(out)).astype(np.float32),
                                             cache), "attention_backward", ("dq", "dk", "dv"),
                     arrays=False)
    assert_float32(out=out, **dict(zip(("dq", "dk", "dv"), grads)))
