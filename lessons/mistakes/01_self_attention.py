"""Common mistakes of lesson 01, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import math

import numpy as np

from minilm.check.framework import mistake


def _attend(q, k, v, allowed, scale):
    """Masked softmax attention done right, given which keys each query may attend."""
    scores = np.where(allowed, q @ np.swapaxes(k, -1, -2) * scale, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(row_max), row_max, 0.0))
    total = e.sum(axis=-1, keepdims=True)
    probs = e / np.where(total > 0, total, 1.0)
    return probs @ v, (q, k, v, probs, scale)


def _allowed(shape, attn_mask, causal, offset):
    n_queries, n_keys = shape[-2:]
    allowed = np.ones(shape, dtype=bool) if attn_mask is None else np.broadcast_to(attn_mask, shape)
    if causal:
        allowed = allowed & np.tril(np.ones((n_queries, n_keys), dtype=bool), k=offset)
    return allowed


@mistake("attention without the 1/sqrt(d) scale", breaks="scale=None means 1/sqrt(D)")
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):
    scale = 1.0 if scale is None else scale  # forgot to divide by sqrt(D)
    shape = q.shape[:-1] + (k.shape[-2],)
    return _attend(q, k, v, _allowed(shape, attn_mask, causal, k.shape[-2] - q.shape[-2]), scale)


@mistake("causal mask aligned top-left", breaks="the causal mask is aligned bottom-right (Nq != Nk)")
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):  # noqa: F811
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    shape = q.shape[:-1] + (k.shape[-2],)
    return _attend(q, k, v, _allowed(shape, attn_mask, causal, 0), scale)  # j <= i


@mistake("a fully masked row gives NaN",
         breaks="a query that may attend nothing outputs zeros, never NaN")
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):  # noqa: F811
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    shape = q.shape[:-1] + (k.shape[-2],)
    allowed = _allowed(shape, attn_mask, causal, k.shape[-2] - q.shape[-2])
    scores = np.where(allowed, q @ np.swapaxes(k, -1, -2) * scale, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))  # -inf - -inf = NaN
    probs = e / e.sum(axis=-1, keepdims=True)
    return probs @ v, (q, k, v, probs, scale)


@mistake("attn_mask read as True = masked", breaks="True in attn_mask means 'may attend'")
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):  # noqa: F811
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    shape = q.shape[:-1] + (k.shape[-2],)
    mask = None if attn_mask is None else ~np.asarray(attn_mask)  # inverted
    return _attend(q, k, v, _allowed(shape, mask, causal, k.shape[-2] - q.shape[-2]), scale)


@mistake("attention backward that forgets the scale in dk",
         breaks="is the gradient of your attention_forward (finite differences)")
def attention_backward(dout, cache):
    q, k, v, probs, scale = cache
    dv = np.swapaxes(probs, -1, -2) @ dout
    dprobs = dout @ np.swapaxes(v, -1, -2)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))
    return dscores @ k * scale, np.swapaxes(dscores, -1, -2) @ q, dv  # dk lacks * scale


@mistake("causal mask aligned top-left (np.tril of a rectangle)",
         breaks="the last query sees every key (aligned bottom-right)")
def causal_mask(n_queries, n_keys):
    return np.tril(np.ones((n_queries, n_keys), dtype=bool))  # j <= i: right only if Nq == Nk


@mistake("causal mask without its diagonal (a token may not attend itself)",
         breaks="with Nq == Nk, query i sees keys 0..i (itself included)")
def causal_mask(n_queries, n_keys):  # noqa: F811
    return np.tril(np.ones((n_queries, n_keys), dtype=bool), k=n_keys - n_queries - 1)  # j < i


@mistake("causal mask as True = masked (the upper triangle)",
         breaks="with Nq == Nk, query i sees keys 0..i (itself included)")
def causal_mask(n_queries, n_keys):  # noqa: F811
    return np.triu(np.ones((n_queries, n_keys), dtype=bool), k=n_keys - n_queries + 1)


@mistake("causal mask as an additive float mask (0 / -inf), not a boolean one",
         breaks="is a boolean (Nq, Nk) array, True = may attend")
def causal_mask(n_queries, n_keys):  # noqa: F811
    allowed = np.tril(np.ones((n_queries, n_keys), dtype=bool), k=n_keys - n_queries)
    return np.where(allowed, 0.0, -np.inf)  # a convention of some libraries, not minilm's


@mistake("attention written for 4-D (B, H, N, D) arrays only (transpose(0, 1, 3, 2))",
         breaks="matches softmax(q k^T * scale, masked) v in torch (float64)", crashes=True)
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):  # noqa: F811
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    shape = q.shape[:-1] + (k.shape[-2],)
    k = np.swapaxes(k.transpose(0, 1, 3, 2), -1, -2)  # fails on (Nq, D) or (B, N, D) inputs
    return _attend(q, k, v, _allowed(shape, attn_mask, causal, k.shape[-2] - q.shape[-2]), scale)


@mistake("scale = scale or 1/sqrt(D): a given scale of 0.0 is replaced by the default",
         breaks="matches softmax(q k^T * scale, masked) v in torch (float64)")
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):  # noqa: F811
    scale = scale or 1.0 / math.sqrt(q.shape[-1])  # 0.0 is falsy
    shape = q.shape[:-1] + (k.shape[-2],)
    return _attend(q, k, v, _allowed(shape, attn_mask, causal, k.shape[-2] - q.shape[-2]), scale)


@mistake("attention not written for causal=True yet (raises NotImplementedError there)",
         breaks="matches softmax(q k^T * scale, masked) v in torch (float64)", crashes=True)
def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):  # noqa: F811
    if causal:
        raise NotImplementedError("causal: later")  # not a stub: part of the exercise
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    shape = q.shape[:-1] + (k.shape[-2],)
    return _attend(q, k, v, _allowed(shape, attn_mask, False, 0), scale)
