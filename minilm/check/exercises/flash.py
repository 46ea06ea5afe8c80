"""Lesson 08, FlashAttention: attention tile by tile with the online softmax, in NumPy
(`minilm.numpy.flash`, the algorithm of kernels/flash_attention.py).

Layout as in the kernel: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv), key_mask (B, Nk) bool
(True = may attend), causal aligned bottom-right; the forward returns (out, lse) with
lse = L = log sum_j exp(S_ij) over the allowed keys (+inf for a query that may attend nothing).

Oracles: plain attention over the whole (Nq, Nk) matrix, `functional.attention_forward` and
`attention_backward` (lesson 01 checks them against PyTorch float64 and finite differences), and
SciPy's logsumexp for L; TOL = 1e-10 in float64 (worst seen with the library's own functions over
300 examples per property: 1e-15). NumPy oracles rather than torch: each property calls several
of them per case, and torch's per-call overhead on tiny tensors dominated the run time. The
memory properties run at N = 2048 with query tiles of 128 rows under tracemalloc and allow 2 MiB,
one (128, N) float64 strip of scores: a forward that keeps whole strips of a query tile against
every key (a plain softmax per tile, no online softmax) fails, as does one that keeps the (N, N)
matrix (32 MiB). The library peaks at about 0.55 MiB (forward) and 1.1 MiB (backward) there, the
copies of the inputs included.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from minilm.check.exercises.attention import scale_of
from minilm.check.framework import (
    Failure,
    as_float32,
    assert_close,
    assert_float32,
    assert_true,
    exercise,
    max_error,
    prop,
    returned,
)
from minilm.numpy import functional as F
from minilm.testing.oracles import allowed_keys, attention_logsumexp, peak_bytes
from minilm.testing.strategies import flash_attention_cases

LESSON = "08"
TOL = 1e-10  # float64; the same mathematics as the oracle, rounded differently
MEMORY_N = 2048  # sequence length of the memory properties
MEMORY_BLOCK_M = 128  # their query tile
MEMORY_BUDGET = 8 * MEMORY_BLOCK_M * MEMORY_N  # bytes (2 MiB): one (block_m, N) float64 strip

exercise("flash_attention_forward", LESSON,
         "flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None, block_m=32, "
         "block_n=16) -> (out, lse)",
         "attention over query tiles x key tiles with the online softmax (m, l, acc); O and L")
exercise("flash_attention_backward", LESSON,
         "flash_attention_backward(dout, q, k, v, out, lse, causal=False, key_mask=None, "
         "scale=None, block_m=32, block_n=16) -> (dq, dk, dv)",
         "the gradients, P recomputed tile by tile as exp(S - L), delta = rowsum(dout * out)")
exercise("merge_attention", LESSON, "merge_attention(out_a, lse_a, out_b, lse_b) -> (out, lse)",
         "attention over two disjoint sets of keys from each set's (out, lse)")


# ---------------------------------------------------------------- the oracle


def allowed_of(case):
    """(B or 1, 1, Nq, Nk) or (Nq, Nk) bool: which query may attend which key."""
    key_mask = case["key_mask"]
    return allowed_keys(None if key_mask is None else key_mask[:, None, None, :], case["causal"],
                        case["q"].shape[-2], case["k"].shape[-2])


def reference(case, allowed=None):
    """(out, lse, cache) of the case by plain attention over the whole (Nq, Nk) matrix:
    `functional.attention_forward` (itself checked against PyTorch in lesson 01) and SciPy's
    logsumexp. `allowed` replaces the case's own mask (and causal)."""
    allowed = allowed_of(case) if allowed is None else allowed
    out, cache = F.attention_forward(case["q"], case["k"], case["v"], attn_mask=allowed,
                                     scale=scale_of(case))
    return out, attention_logsumexp(case["q"], case["k"], allowed, scale_of(case)), cache


def with_empty_rows(case):
    """The case with its last batch entry all padding: every one of its queries attends nothing."""
    key_mask = np.ones((case["q"].shape[0], case["k"].shape[-2]), dtype=bool)
    if case["key_mask"] is not None:
        key_mask = case["key_mask"].copy()
    key_mask[-1] = False
    return {**case, "key_mask": key_mask}


def huge_scores(case):
    """Scores around +-1000: exp overflows float64 (above ~709) without a max subtracted."""
    return {**case, "scale": 1000.0}


def far_below_zero(case):
    """Every score below -1000 (q > 0.5 and k < -0.5 in every entry, scale 4000: q.k < -D / 4):
    exp(s) underflows float64 (below ~-745) unless the row's own max is subtracted."""
    return {**case, "q": np.abs(case["q"]) + 0.5, "k": -(np.abs(case["k"]) + 0.5),
            "scale": 4000.0}


def memory_case(choice, head_dim=4):
    """One head of N = MEMORY_N queries and keys, by its sizes; `choice` is (causal, block_m,
    block_n). `memory_inputs` draws its arrays (a counterexample shows the sizes, not the 24k
    numbers, which say nothing about memory). A small head_dim keeps the (N, D) arrays, which
    every answer holds, small beside one strip of scores."""
    causal, block_m, block_n = choice
    return {"n": MEMORY_N, "head_dim": head_dim, "causal": causal, "block_m": block_m,
            "block_n": block_n}


def memory_inputs(case):
    """The memory case with its q, k, v (1, 1, N, head_dim), no mask and the default scale."""
    rng = np.random.default_rng(case["n"])
    q, k, v = (rng.standard_normal((1, 1, case["n"], case["head_dim"])) for _ in range(3))
    return {**case, "q": q, "k": k, "v": v, "key_mask": None, "scale": None, "seed": 0}


# two fixed cases (nothing for hypothesis to shrink: each call takes a while at N = 2048)
memory_cases = st.sampled_from([(False, MEMORY_BLOCK_M, 64),
                                (True, MEMORY_BLOCK_M, 32)]).map(memory_case)


def within_budget(peak, what, case):
    """Failure unless `peak` bytes stayed under MEMORY_BUDGET, the peak set beside the sizes it
    may be made of: one tile of scores, a strip of block_m rows against every key, the (N, N)
    matrix (all float64). Only a peak of at least one (N, N) matrix is said to have held it."""
    n, block_m, block_n = case["n"], case["block_m"], case["block_n"]
    tile, strip, n_by_n = (8 * rows * cols for rows, cols in
                           ((block_m, block_n), (block_m, n), (n, n)))
    held = ": at least one (N, N) array was held" if peak >= n_by_n else ""
    assert_true(peak < MEMORY_BUDGET,
                f"{what} peaked at {peak / 2**20:.2f} MiB at N = {n} (block_m = {block_m}, "
                f"block_n = {block_n}), over the budget of {MEMORY_BUDGET / 2**20:.0f} MiB; in "
                f"float64 one (block_m, block_n) tile is {tile / 2**20:.2f} MiB, a (block_m, N) "
                f"strip {strip / 2**20:.2f} MiB, the (N, N) matrix {n_by_n / 2**20:.0f} MiB{held}")


# ---------------------------------------------------------------- forward


def forward(impl, case):
    """The implementation's (out, lse) on the case, as arrays."""
    result = impl.flash_attention_forward(
        case["q"], case["k"], case["v"], causal=case["causal"], key_mask=case["key_mask"],
        scale=case["scale"], block_m=case["block_m"], block_n=case["block_n"])
    return returned(result, "flash_attention_forward", ("out", "lse"))


FIX_OUT_FIRST = ("fix the other failing properties of flash_attention_forward first (equals "
                 "attention, causal): this one may then pass")


cases = flash_attention_cases()


@prop("flash_attention_forward", "equals attention for any N and tile sizes",
      cases.map(lambda c: {**c, "causal": False}),
      hint="after the last key tile O = acc / l; rescale both l and acc by exp(m - m_new) "
           "whenever the running max m grows")
def flash_forward_equals_attention(impl, case):
    """Equal to attention; an output that is attention with key_mask read the other way round
    says so (the hint about rescaling would not help)."""
    expected, out = reference(case)[0], forward(impl, case)[0]
    if (case["key_mask"] is not None and not max_error(expected, out) <= TOL
            and max_error(reference({**case, "key_mask": ~case["key_mask"]})[0], out) <= TOL):
        raise Failure("out is attention with key_mask inverted: it attends the keys marked False",
                      hint="key_mask True = may attend (a real token), False = padding: keep the "
                           "scores where it is True")
    assert_close("out vs softmax(q k^T * scale, masked) v", expected, out, TOL)


@prop("flash_attention_forward", "causal: equals attention aligned bottom-right (Nq != Nk too)",
      cases.map(lambda c: {**c, "causal": True}),
      hint="query i may attend key j iff j <= i + (Nk - Nq); use global indices "
           "(start_m + i, start_n + j), not the indices inside the tile")
def flash_forward_causal(impl, case):
    assert_close("causal out vs bottom-right causal attention", reference(case)[0],
                 forward(impl, case)[0], TOL)


@prop("flash_attention_forward", "returns L = log sum_j exp(S_ij) over the allowed keys", cases,
      hint="L = m + log(l) with the final running max m and normaliser l")
def flash_forward_logsumexp(impl, case):
    """L against the oracle's. A wrong L beside a wrong out is not L's formula (the scores or the
    mask are wrong): that failure says so and names the others."""
    out, lse = forward(impl, case)
    expected_out, expected, _ = reference(case)
    assert_true(lse.shape == expected.shape, f"lse has shape {lse.shape}, expected "
                                             f"{expected.shape} (B, H, Nq)")
    has_keys = np.isfinite(expected)
    error = max_error(expected[has_keys], lse[has_keys])
    if not error <= TOL and not max_error(expected_out, out) <= TOL:
        raise Failure(f"L vs log sum exp of the allowed scores: error {error:.3g} > {TOL:g}, "
                      "and out is wrong too: the scores or the mask, not L = m + log(l)", error,
                      hint=FIX_OUT_FIRST)
    assert_close("L vs log sum exp of the allowed scores", expected[has_keys], lse[has_keys],
                 TOL)


@prop("flash_attention_forward", "a query that may attend nothing outputs zeros and L = +inf",
      cases.map(with_empty_rows),
      hint="while m is still -inf, exp(s - m) is exp(-inf + inf) = NaN: subtract 0 instead; "
           "at the end, where l = 0 divide by 1 and set L = +inf", nonfinite=True)
def flash_forward_empty_rows(impl, case):
    out, lse = forward(impl, case)
    assert_true(np.isfinite(out).all(), "out holds NaN or inf")
    empty = np.isinf(reference(case)[1])  # (B, H, Nq)
    assert_true(not out[empty].any(), "a query that may attend nothing has a non-zero output")
    assert_true(np.all(lse[empty] == np.inf), "a query that may attend nothing must have L = +inf "
                                              f"(so that exp(S - L) = 0), got {lse[empty][:3]}")


@prop("flash_attention_forward", "stays finite at scores of +-1000", cases.map(huge_scores),
      hint="exp(1000) overflows: p = exp(s - m_new) with the running max subtracted, never exp(s)",
      nonfinite=True)
def flash_forward_is_stable(impl, case):
    """Finite, and equal to attention (`assert_right_at_extreme_scores`)."""
    out = forward(impl, case)[0]
    assert_true(np.isfinite(out).all(), "out at huge scores holds NaN or inf")
    assert_right_at_extreme_scores(impl, case, out, "at huge scores")


@prop("flash_attention_forward", "a row whose every score is below -1000 attends, as softmax says",
      cases.map(far_below_zero),
      hint="start the running max m at -inf, not at 0: with m = 0, exp(s - m) underflows to 0 "
           "once every score of a row is below about -745, and the row looks as if it attended "
           "nothing")
def flash_forward_very_negative_scores(impl, case):
    """Equal to attention, whose rows with an allowed key are a softmax however low the scores
    (`assert_right_at_extreme_scores`)."""
    assert_right_at_extreme_scores(impl, case, forward(impl, case)[0],
                                   "when every score is below -1000")


def assert_right_at_extreme_scores(impl, case, out, what):
    """Failure unless `out`, the implementation's output on `case`, equals attention's. An output
    that is wrong at ordinary scores too (the drawn case at its default scale) is not about the
    extreme scores: that failure says so and names the properties to fix first."""
    error = max_error(reference(case)[0], out)
    if error <= TOL:
        return
    ordinary = {**case, "scale": None}
    if max_error(reference(ordinary)[0], forward(impl, ordinary)[0]) <= TOL:
        raise Failure(f"out {what}: error {error:.3g} > {TOL:g} (right at the default scale)",
                      error)
    raise Failure(f"out {what} is wrong (error {error:.3g} > {TOL:g}), and wrong at the default "
                  "scale too: not the extreme scores", error, hint=FIX_OUT_FIRST)


@prop("flash_attention_forward", f"never holds the (N, N) scores (peak memory at N = {MEMORY_N})",
      memory_cases, max_examples=2,
      hint="keep only one (block_m, block_n) tile of scores at a time; never q @ k.T over all keys")
def flash_forward_memory(impl, case):
    inputs = memory_inputs(case)
    within_budget(peak_bytes(forward, impl, inputs), "flash_attention_forward", case)


# ---------------------------------------------------------------- backward


def backward(impl, case, dout, out, lse):
    grads = impl.flash_attention_backward(
        dout, case["q"], case["k"], case["v"], out, lse, causal=case["causal"],
        key_mask=case["key_mask"], scale=case["scale"], block_m=case["block_m"],
        block_n=case["block_n"])
    return list(returned(grads, "flash_attention_backward", ("dq", "dk", "dv")))


def upstream_and_reference(case):
    """A random dout, and the oracle's out, lse and (dq, dk, dv) for it
    (`functional.attention_backward`, checked against finite differences and torch autograd in
    lesson 01)."""
    out, lse, cache = reference(case)
    dout = np.random.default_rng(case["seed"]).standard_normal(out.shape)
    return dout, out, lse, F.attention_backward(dout, cache)


@prop("flash_attention_backward", "equals the gradient of attention for any N and tile sizes",
      cases,
      hint="dv += P^T dout; dS = P * (dout v^T - delta) with delta = rowsum(dout * out); "
           "dq = scale * dS k, dk = scale * dS^T q; P = exp(S - L) where allowed")
def flash_backward_is_the_gradient(impl, case):
    dout, out, lse, expected = upstream_and_reference(case)
    for name, mine, theirs in zip(("dq", "dk", "dv"), backward(impl, case, dout, out, lse),
                                  expected):
        assert_close(f"{name} vs functional.attention_backward", theirs, mine, TOL)


@prop("flash_attention_backward", "a query that may attend nothing passes zero gradient",
      cases.map(with_empty_rows),
      hint="with L = +inf, P = exp(S - L) is exactly 0: the row sends nothing to dq, dk or dv",
      nonfinite=True)
def flash_backward_empty_rows(impl, case):
    dout, out, lse, _ = upstream_and_reference(case)
    dq, dk, dv = backward(impl, case, dout, out, lse)
    assert_true(all(np.isfinite(g).all() for g in (dq, dk, dv)), "a gradient holds NaN or inf")
    empty = np.isinf(lse)
    assert_true(not dq[empty].any(), "a query that may attend nothing got a non-zero dq")
    dout[empty] = 1e6  # what reaches an empty row must not reach k or v
    _, dk2, dv2 = backward(impl, case, dout, out, lse)
    assert_close("dk when the empty rows' upstream gradient changes", dk, dk2, 0.0)
    assert_close("dv when the empty rows' upstream gradient changes", dv, dv2, 0.0)


@prop("flash_attention_backward",
      f"never holds the (N, N) probabilities (peak memory at N = {MEMORY_N})",
      memory_cases, max_examples=2,
      hint="recompute P = exp(S - L) one (block_m, block_n) tile at a time, inside both loops")
def flash_backward_memory(impl, case):
    from minilm.numpy.flash import flash_attention_forward  # O and L are inputs here, not checked

    inputs = memory_inputs(case)
    out, lse = flash_attention_forward(inputs["q"], inputs["k"], inputs["v"],
                                       causal=inputs["causal"], block_m=64, block_n=64)
    dout = np.random.default_rng(inputs["seed"]).standard_normal(out.shape)
    within_budget(peak_bytes(backward, impl, inputs, dout, out, lse), "flash_attention_backward",
                  case)


@prop("flash_attention_backward", "float32 inputs give float32 outputs and gradients",
      cases.map(as_float32), needs=("flash_attention_forward",), max_examples=5,
      hint="keep the inputs' dtype: accumulators np.zeros_like(q) or dtype=q.dtype, not "
           "np.zeros(shape); m and L start as np.full(..., -np.inf, dtype=q.dtype)")
def flash_keeps_float32(impl, case):
    out, lse = forward(impl, case)
    dout = np.random.default_rng(case["seed"]).standard_normal(out.shape).astype(np.float32)
    dq, dk, dv = backward(impl, case, dout, out, lse)
    assert_float32(out=out, lse=lse, dq=dq, dk=dk, dv=dv)


# ---------------------------------------------------------------- merging two parts


def split_keys(case, in_a):
    """The oracle's (out, lse) over the keys in A (in_a (Nk,) bool), over the rest, and over all."""
    allowed = allowed_of(case)
    return (reference(case, allowed & in_a)[:2], reference(case, allowed & ~in_a)[:2],
            reference(case)[:2])


def merged(impl, part_a, part_b):
    result = impl.merge_attention(part_a[0], part_a[1], part_b[0], part_b[1])
    return returned(result, "merge_attention", ("out", "lse"))


def assert_merge_is_whole(impl, case, in_a):
    part_a, part_b, (expected_out, expected_lse) = split_keys(case, in_a)
    out, lse = merged(impl, part_a, part_b)
    assert_true(np.isfinite(out).all(), "out holds NaN or inf")
    assert_close("merged out vs attention over all the keys", expected_out, out, TOL)
    has_keys = np.isfinite(expected_lse)
    assert_true(np.all(lse[~has_keys] == np.inf),
                "a query with nothing in either part must keep L = +inf")
    assert_close("merged L vs L over all the keys", expected_lse[has_keys], lse[has_keys],
                 TOL)


def random_split(case):
    """Keys dealt at random into A and B, each part holding at least one key."""
    in_a = np.random.default_rng(case["seed"]).random(case["k"].shape[-2]) < 0.5
    in_a[0], in_a[-1] = True, False
    return in_a


@prop("merge_attention", "attention over A and B together = the merge of attention over each",
      cases.filter(lambda c: c["k"].shape[-2] >= 2).map(
          lambda c: {**c, "causal": False, "key_mask": None}),
      hint="L = log(exp(L_a) + exp(L_b)); out = exp(L_a - L) out_a + exp(L_b - L) out_b")
def merge_is_attention_over_both(impl, case):
    assert_merge_is_whole(impl, case, random_split(case))


@prop("merge_attention", "a part that attended nothing (L = +inf) weighs nothing",
      cases.map(with_empty_rows),
      hint="L = +inf marks an empty part: its sum of exp(s) is 0, so treat its L as -inf "
           "(weight 0); if both parts are empty, keep out 0 and L = +inf", nonfinite=True)
def merge_empty_parts(impl, case):
    cut = np.random.default_rng(case["seed"]).integers(0, case["k"].shape[-2] + 1)
    assert_merge_is_whole(impl, case, np.arange(case["k"].shape[-2]) < cut)  # A: keys < cut


@prop("merge_attention", "stays finite when L is large (every score + 1000)",
      cases.filter(lambda c: c["k"].shape[-2] >= 2).map(
          lambda c: {**c, "causal": False, "key_mask": None}),
      hint="exp(L) overflows at L > 709: subtract max(L_a, L_b) before exp", nonfinite=True)
def merge_is_stable(impl, case):
    """Adding a constant c to every score adds c to L and leaves out unchanged."""
    part_a, part_b, (expected_out, expected_lse) = split_keys(case, random_split(case))
    out, lse = merged(impl, (part_a[0], part_a[1] + 1000), (part_b[0], part_b[1] + 1000))
    assert_close("merged out when every L is 1000 larger", expected_out, out, TOL)
    assert_close("merged L - 1000 when every L is 1000 larger", expected_lse, lse - 1000, TOL)


@prop("merge_attention", "float32 parts give a float32 merge",
      cases.filter(lambda c: c["k"].shape[-2] >= 2).map(as_float32),
      max_examples=5, hint="keep the parts' dtype: no np.zeros(shape) or float64 constants arrays")
def merge_keeps_float32(impl, case):
    part_a, part_b = (tuple(x.astype(np.float32) for x in part)
                      for part in split_keys(case, random_split(case))[:2])
    out, lse = merged(impl, part_a, part_b)
    assert_float32(out=out, lse=lse)
