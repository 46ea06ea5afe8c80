"""Reference solutions of lesson 01 (self-attention). `minilm check` this file: all pass."""

import math

import numpy as np


def causal_mask(n_queries, n_keys):
    query = np.arange(n_queries)[:, None]  # (Nq, 1): the queries are the last Nq positions
    key = np.arange(n_keys)[None, :]  # (1, Nk)
    return key <= query + (n_keys - n_queries)  # (Nq, Nk) bool, broadcast


def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale  # (..., Nq, Nk)
    allowed = np.ones(scores.shape, dtype=bool)
    if attn_mask is not None:
        allowed = allowed & attn_mask  # True = may attend
    if causal:
        allowed = allowed & causal_mask(*scores.shape[-2:])
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(row_max), row_max, 0.0))  # 0 where masked
    total = e.sum(axis=-1, keepdims=True)
    probs = e / np.where(total > 0, total, 1.0)  # a row with nothing allowed stays all zero
    return probs @ v, (q, k, v, probs, scale)


def attention_backward(dout, cache):
    q, k, v, probs, scale = cache
    dv = np.swapaxes(probs, -1, -2) @ dout
    dprobs = dout @ np.swapaxes(v, -1, -2)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)) * scale
    return dscores @ k, np.swapaxes(dscores, -1, -2) @ q, dv
