"""Reference solutions of lesson 09 (machine translation). `minilm check` this file: all pass."""

import math

import numpy as np


def cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None):
    q, k, v = x @ w_q.T, memory @ w_k.T, memory @ w_v.T  # (B, Tq, D), (B, Tk, D), (B, Tk, D)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(0, 2, 1) * scale  # (B, Tq, Tk)
    if memory_mask is not None:
        scores = np.where(memory_mask[:, None, :], scores, -np.inf)  # padding: weight 0
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)  # (B, Tq, Tk)
    return probs @ v, (x, memory, w_q, w_k, w_v, q, k, v, probs, scale)


def cross_attention_backward(dout, cache):
    x, memory, w_q, w_k, w_v, q, k, v, probs, scale = cache
    dv = probs.transpose(0, 2, 1) @ dout  # (B, Tk, D)
    dprobs = dout @ v.transpose(0, 2, 1)  # (B, Tq, Tk)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)) * scale
    dq, dk = dscores @ k, dscores.transpose(0, 2, 1) @ q  # (B, Tq, D), (B, Tk, D)
    dx = dq @ w_q  # (B, Tq, C)
    dmemory = dk @ w_k + dv @ w_v  # the memory is read twice: as keys and as values
    dw_q = np.einsum("btd,btc->dc", dq, x)
    dw_k = np.einsum("btd,btc->dc", dk, memory)
    dw_v = np.einsum("btd,btc->dc", dv, memory)
    return dx, dmemory, dw_q, dw_k, dw_v


def beam_step(beam_scores, log_probs, n_best):
    batch, beams, vocab = log_probs.shape
    candidates = (beam_scores[:, :, None] + log_probs).reshape(batch, beams * vocab)  # (B, K V)
    best = np.argsort(-candidates, axis=1, kind="stable")[:, :n_best]  # flat index k * V + v
    return np.take_along_axis(candidates, best, axis=1), best // vocab, best % vocab
