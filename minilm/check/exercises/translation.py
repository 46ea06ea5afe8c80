"""Lesson 09, machine translation: one head of cross-attention and its backward into the encoder's
output (`minilm.numpy.functional.cross_attention_*`; `layers.CrossAttention` is the multi-head
layer), and one step of beam search (`minilm.beam.beam_step`).

Oracles: the same mathematics in PyTorch float64 with autograd (TORCH_TOL = 1e-10), central finite
differences (FD_TOL = 1e-8, float64), and for beam search every (beam, token) pair scored and
sorted by brute force.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from minilm.check.exercises.language_models import FD_TOL, TORCH_TOL
from minilm.check.framework import (
    as_array,
    as_float32,
    assert_close,
    assert_float32,
    assert_true,
    exercise,
    gradient_error,
    pair,
    prop,
    returned,
)
from minilm.testing.oracles import torch_forward_backward
from minilm.testing.strategies import seeds

LESSON = "09"

exercise("cross_attention_forward", LESSON,
         "cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None) -> (out, cache)",
         "one head of cross-attention: queries from x (B, Tq, C), keys and values from memory "
         "(B, Tk, C), padding masked")
exercise("cross_attention_backward", LESSON,
         "cross_attention_backward(dout, cache) -> (dx, dmemory, dw_q, dw_k, dw_v)",
         "the gradients of cross-attention, d memory the one that flows back into the encoder")
exercise("beam_step", LESSON, "beam_step(beam_scores, log_probs, n_best) -> (scores, beams, tokens)",
         "the n_best highest-scoring (beam, token) continuations of each source, best first")


# ---------------------------------------------------------------- cross-attention


@st.composite
def cross_attention_cases(draw):
    """x (B, Tq, C), memory (B, Tk, C), w_q, w_k, w_v (D, C), a source mask (B, Tk) with at least
    one real token per row (padding on the right) or, in a third of the cases, None (the default:
    no padding), the upstream gradient (B, Tq, D)."""
    rng = np.random.default_rng(draw(seeds))
    batch, t_q, t_k = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    channels, dim = draw(st.integers(2, 6)), draw(st.integers(1, 5))
    lengths = rng.integers(1, t_k + 1, size=batch)
    return {"x": rng.normal(size=(batch, t_q, channels)),
            "memory": rng.normal(size=(batch, t_k, channels)),
            "w_q": rng.normal(size=(dim, channels)), "w_k": rng.normal(size=(dim, channels)),
            "w_v": rng.normal(size=(dim, channels)),
            "memory_mask": None if draw(st.integers(0, 2)) == 0
            else np.arange(t_k)[None, :] < lengths[:, None],
            "dout": rng.normal(size=(batch, t_q, dim))}


cases = cross_attention_cases()
WEIGHTS = ("w_q", "w_k", "w_v")
GRADIENTS = ("dx", "dmemory", "dw_q", "dw_k", "dw_v")  # what cross_attention_backward returns


def cross_forward(impl, case, **changes):
    case = {**case, **changes}
    out, cache = pair(impl.cross_attention_forward(case["x"], case["memory"], case["w_q"],
                                                   case["w_k"], case["w_v"], case["memory_mask"]),
                      "cross_attention_forward")
    return as_array(out, "out"), cache


def torch_cross_attention(mask):
    """The oracle: softmax(q k^T / sqrt(D), masked) v with q = x W_q^T, k and v from memory."""
    import torch

    def attend(x, memory, w_q, w_k, w_v):
        q, k, v = x @ w_q.T, memory @ w_k.T, memory @ w_v.T  # (B, Tq, D), (B, Tk, D), (B, Tk, D)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, Tq, Tk)
        scores = scores.masked_fill(~torch.as_tensor(mask)[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1) @ v  # (B, Tq, D)

    return attend


def real_tokens(case):
    """The case's memory_mask, all True where it is None."""
    mask = case["memory_mask"]
    return np.ones(case["memory"].shape[:2], dtype=bool) if mask is None else mask


def torch_reference(case):
    return torch_forward_backward(torch_cross_attention(real_tokens(case)),
                                  [case[name] for name in ("x", "memory", *WEIGHTS)], case["dout"])


@prop("cross_attention_forward", "matches softmax(q k^T / sqrt(D), masked) v in torch (float64)",
      cases, hint="q = x @ w_q.T from the target; k = memory @ w_k.T and v = memory @ w_v.T from the "
                  "source; D is the queries' width; padding gets -inf before the softmax")
def cross_attention_matches_torch(impl, case):
    expected, _ = torch_reference(case)
    out, _ = cross_forward(impl, case)
    assert_close("out", expected, out, TORCH_TOL)


@prop("cross_attention_forward", "padded source positions never change the output", cases,
      hint="mask the scores of padded source positions (memory_mask False) before the softmax")
def cross_attention_ignores_padding(impl, case):
    out, _ = cross_forward(impl, case)
    changed = case["memory"].copy()
    changed[~real_tokens(case)] += 100.0  # what stands at the padding must not matter
    again, _ = cross_forward(impl, case, memory=changed)
    assert_close("out after changing the padded memory", out, again, 1e-12)


def cross_backward(impl, case):
    _, cache = cross_forward(impl, case)
    grads = impl.cross_attention_backward(case["dout"], cache)
    return list(returned(grads, "cross_attention_backward", GRADIENTS))


@prop("cross_attention_backward", "dx, d memory and the weights' gradients match torch autograd",
      cases, needs=("cross_attention_forward",),
      hint="with dS = P * (dP - rowsum(dP * P)) / sqrt(D): dq = dS k, dk = dS^T q, dv = P^T dout; "
           "then through the projections: dx = dq W_q, dW_q = sum over (b, t) of dq^T x, ...")
def cross_attention_backward_matches_torch(impl, case):
    _, expected = torch_reference(case)
    for name, want, got in zip(GRADIENTS, expected, cross_backward(impl, case)):
        assert_close(name, want, got, TORCH_TOL)


@prop("cross_attention_backward",
      "d memory matches finite differences (the keys and the values both read the memory)", cases,
      needs=("cross_attention_forward",),
      hint="the memory reaches the output twice, as keys and as values: d memory = dk W_k + dv W_v")
def cross_attention_memory_gradient(impl, case):
    dx, dmemory, *_ = cross_backward(impl, case)
    memory, x = case["memory"].copy(), case["x"].copy()

    def forward():
        return cross_forward(impl, case, memory=memory, x=x)[0]

    error = gradient_error(forward, case["dout"], {"dmemory": (memory, dmemory), "dx": (x, dx)})
    assert_true(error <= FD_TOL, f"dx or dmemory differ from finite differences: error "
                                 f"{error:.3g} > {FD_TOL:g}", error)


@prop("cross_attention_backward", "padded source positions receive no gradient", cases,
      needs=("cross_attention_forward",),
      hint="padded keys have attention weight 0, so their dk and dv are 0: no gradient may reach "
           "the memory at the padding")
def cross_attention_no_gradient_into_padding(impl, case):
    _, dmemory, *_ = cross_backward(impl, case)
    padded = np.abs(dmemory[~real_tokens(case)])  # (positions, C)
    worst = float(padded.max()) if padded.size else 0.0
    assert_true(worst == 0, f"d memory at padded positions is up to {worst:.3g}, expected 0")


@prop("cross_attention_backward", "float32 inputs give float32 outputs and gradients",
      cases.map(as_float32), needs=("cross_attention_forward",), max_examples=5,
      hint="keep the inputs' dtype: np.zeros_like(x), not np.zeros(x.shape)")
def cross_attention_keeps_float32(impl, case):
    out, _ = cross_forward(impl, case)
    grads = cross_backward(impl, case)
    assert_float32(out=out, **dict(zip(GRADIENTS, grads)))


# ---------------------------------------------------------------- one step of beam search


@st.composite
def beam_cases(draw):
    """beam_scores (B, K) with some beams of score -inf (not started yet; beam 0 always real),
    log_probs (B, K, V) of real distributions, n_best <= K V."""
    rng = np.random.default_rng(draw(seeds))
    batch, beams, vocab = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 6))
    scores = -rng.exponential(2.0, size=(batch, beams))
    scores[:, 1:][rng.random((batch, beams - 1)) < 0.3] = -np.inf
    logits = rng.normal(0.0, 2.0, size=(batch, beams, vocab))
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    n_best = draw(st.integers(1, beams * vocab))
    return {"beam_scores": scores, "log_probs": log_probs, "n_best": n_best}


def run_beam_step(impl, case, **changes):
    case = {**case, **changes}
    result = impl.beam_step(case["beam_scores"], case["log_probs"], case["n_best"])
    scores, beams, tokens = returned(result, "beam_step", ("scores", "beams", "tokens"))
    shape = (case["log_probs"].shape[0], case["n_best"])
    assert_true(scores.shape == beams.shape == tokens.shape == shape,
                f"scores {scores.shape}, beams {beams.shape}, tokens {tokens.shape}: expected "
                f"(B, n_best) = {shape} each")
    return scores, beams, tokens


@prop("beam_step", "returns the n best of all K x V continuations, best first", beam_cases(),
      hint="add beam_scores[:, :, None] to log_probs, flatten each source's K x V candidates, "
           "sort them; the flat index f is beam f // V, token f % V")
def beam_step_finds_the_best(impl, case):
    _, beams, tokens = run_beam_step(impl, case)
    total = case["beam_scores"][:, :, None] + case["log_probs"]  # (B, K, V)
    for b, candidates in enumerate(total):
        flat = candidates.reshape(-1)
        finite = np.isfinite(flat)
        order = [int(i) for i in np.argsort(-flat, kind="stable")[:case["n_best"]]]
        wanted = [divmod(i, candidates.shape[1]) for i in order]
        got = list(zip(beams[b].tolist(), tokens[b].tolist()))
        n_finite = min(int(finite.sum()), case["n_best"])  # -inf ties may come in any order
        assert_true(got[:n_finite] == wanted[:n_finite],
                    f"source {b}: (beam, token) pairs {got[:n_finite]}, expected "
                    f"{wanted[:n_finite]} (beam_scores {case['beam_scores'][b].round(3).tolist()})")


@prop("beam_step", "a continuation's score is its beam's score plus the token's log-probability",
      beam_cases(), hint="scores[b, i] = beam_scores[b, beams[b, i]] + "
                         "log_probs[b, beams[b, i], tokens[b, i]]: keep the running sum")
def beam_step_scores_add_up(impl, case):
    scores, beams, tokens = run_beam_step(impl, case)
    rows = np.arange(len(scores))[:, None]
    expected = (case["beam_scores"][rows, beams]
                + case["log_probs"][rows, beams, tokens])  # (B, n_best)
    finite = np.isfinite(expected)
    assert_true(np.array_equal(finite, np.isfinite(scores)), "scores are -inf where they should "
                                                             "not be, or the other way round")
    assert_close("scores", expected[finite], scores[finite], 1e-12, floor=1.0)
