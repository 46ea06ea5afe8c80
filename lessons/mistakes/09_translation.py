"""Common mistakes of lesson 09, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import math

import numpy as np

from minilm.check.framework import mistake


def _attend(x, memory, w_q, w_k, w_v, memory_mask):
    """The right forward, for the backward mistakes below."""
    q, k, v = x @ w_q.T, memory @ w_k.T, memory @ w_v.T
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(0, 2, 1) * scale
    if memory_mask is not None:
        scores = np.where(memory_mask[:, None, :], scores, -np.inf)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs @ v, (x, memory, w_q, w_k, w_v, q, k, v, probs, scale)


@mistake("cross-attention that attends the padding of the source",
         breaks="padded source positions never change the output")
def cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None):
    return _attend(x, memory, w_q, w_k, w_v, None)  # the mask is never applied


@mistake("cross-attention scaled by sqrt(C), the model width, instead of sqrt(D)",
         breaks="matches softmax(q k^T / sqrt(D), masked) v in torch (float64)")
def cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None):  # noqa: F811
    w = math.sqrt(x.shape[-1] / w_q.shape[0])  # rescales q k^T by sqrt(D / C)
    return _attend(x, memory, w_q / w, w_k, w_v, memory_mask)


@mistake("the gradient into the memory through the keys only (the values read it too)",
         breaks="d memory matches finite differences (the keys and the values both read the memory)")
def cross_attention_backward(dout, cache):
    x, memory, w_q, w_k, _, q, k, v, probs, scale = cache  # w_v unused: that is the mistake
    dv = probs.transpose(0, 2, 1) @ dout
    dprobs = dout @ v.transpose(0, 2, 1)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)) * scale
    dq, dk = dscores @ k, dscores.transpose(0, 2, 1) @ q
    dmemory = dk @ w_k  # + dv @ w_v forgotten
    return (dq @ w_q, dmemory, np.einsum("btd,btc->dc", dq, x),
            np.einsum("btd,btc->dc", dk, memory), np.einsum("btd,btc->dc", dv, memory))


@mistake("beam search ranking continuations by the new token's log-probability alone",
         breaks="a continuation's score is its beam's score plus the token's log-probability")
def beam_step(beam_scores, log_probs, n_best):
    batch, beams, vocab = log_probs.shape
    candidates = log_probs.reshape(batch, beams * vocab)  # the running scores are forgotten
    best = np.argsort(-candidates, axis=1, kind="stable")[:, :n_best]
    return np.take_along_axis(candidates, best, axis=1), best // vocab, best % vocab


@mistake("the flat index k * V + v read back with the number of beams instead of V",
         breaks="returns the n best of all K x V continuations, best first")
def beam_step(beam_scores, log_probs, n_best):  # noqa: F811
    batch, beams, vocab = log_probs.shape
    candidates = (beam_scores[:, :, None] + log_probs).reshape(batch, beams * vocab)
    best = np.argsort(-candidates, axis=1, kind="stable")[:, :n_best]
    return np.take_along_axis(candidates, best, axis=1), best // beams, best % beams


@mistake("the best tokens of each beam, not the best of all K x V continuations",
         breaks="returns the n best of all K x V continuations, best first")
def beam_step(beam_scores, log_probs, n_best):  # noqa: F811
    batch, beams, _ = log_probs.shape
    total = beam_scores[:, :, None] + log_probs  # (B, K, V)
    per_beam = -(-n_best // beams)  # each beam keeps its own best ceil(n / K) ...
    tokens = np.argsort(-total, axis=2, kind="stable")[:, :, :per_beam]  # (B, K, n / K)
    chosen = np.take_along_axis(total, tokens, axis=2).reshape(batch, -1)[:, :n_best]
    beam_ids = np.repeat(np.arange(beams), per_beam)[None, :n_best].repeat(batch, axis=0)
    return chosen, beam_ids, tokens.reshape(batch, -1)[:, :n_best]  # ... in beam order


@mistake("cross-attention that always applies memory_mask, even when it is None",
         breaks="matches softmax(q k^T / sqrt(D), masked) v in torch (float64)", crashes=True)
def cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None):  # noqa: F811
    q, k, v = x @ w_q.T, memory @ w_k.T, memory @ w_v.T
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
    scores = np.where(memory_mask[:, None, :], scores, -np.inf)  # None[:, None, :] fails
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs @ v, (x, memory, w_q, w_k, w_v, q, k, v, probs, 1 / math.sqrt(q.shape[-1]))
