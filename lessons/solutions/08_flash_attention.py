"""Reference solutions of lesson 08 (FlashAttention). `minilm check` this file: all pass."""

import math

import numpy as np


def allowed_tile(rows, cols, n_queries, n_keys, causal, key_mask):
    """(B or 1, 1, len(rows), len(cols)) bool: may query rows[i] attend key cols[j]?"""
    allowed = np.ones((1, 1, len(rows), len(cols)), dtype=bool)
    if causal:  # bottom-right: query i sees key j iff j <= i + (Nk - Nq)
        allowed = allowed & (cols[None, :] <= rows[:, None] + (n_keys - n_queries))
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, cols]
    return allowed


def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None, block_m=32,
                            block_n=16):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_queries, n_keys = q.shape[2], k.shape[2]
    out = np.zeros(q.shape[:3] + v.shape[3:], dtype=q.dtype)  # (B, H, Nq, Dv)
    lse = np.zeros(q.shape[:3], dtype=q.dtype)  # (B, H, Nq)
    for i0 in range(0, n_queries, block_m):
        rows = np.arange(i0, min(i0 + block_m, n_queries))
        qi = q[:, :, rows]  # this tile's queries, (B, H, tm, D)
        m = np.full(qi.shape[:3], -np.inf, dtype=q.dtype)  # running max
        l = np.zeros(qi.shape[:3], dtype=q.dtype)  # running sum of exp(s - m)
        acc = np.zeros(qi.shape[:3] + v.shape[3:], dtype=q.dtype)  # running sum of exp(s - m) v
        for j0 in range(0, n_keys, block_n):
            cols = np.arange(j0, min(j0 + block_n, n_keys))
            s = qi @ k[:, :, cols].swapaxes(-1, -2) * scale  # (B, H, tm, tn)
            s = np.where(allowed_tile(rows, cols, n_queries, n_keys, causal, key_mask), s, -np.inf)
            m_new = np.maximum(m, s.max(axis=-1))
            m_safe = np.where(np.isinf(m_new), 0.0, m_new)  # nothing allowed yet: no inf - inf
            alpha = np.exp(m - m_safe)  # how much the old sums shrink under the new max
            p = np.exp(s - m_safe[..., None])
            l = alpha * l + p.sum(axis=-1)
            acc = alpha[..., None] * acc + p @ v[:, :, cols]
            m = m_new
        empty = l == 0  # queries that may attend nothing
        out[:, :, rows] = acc / np.where(empty, 1.0, l)[..., None]
        lse[:, :, rows] = np.where(empty, np.inf, m + np.log(np.where(empty, 1.0, l)))
    return out, lse


def flash_attention_backward(dout, q, k, v, out, lse, causal=False, key_mask=None, scale=None,
                             block_m=32, block_n=16):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_queries, n_keys = q.shape[2], k.shape[2]
    delta = (dout * out).sum(axis=-1)  # rowsum(P * dP) without P, (B, H, Nq)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for i0 in range(0, n_queries, block_m):
        rows = np.arange(i0, min(i0 + block_m, n_queries))
        for j0 in range(0, n_keys, block_n):
            cols = np.arange(j0, min(j0 + block_n, n_keys))
            s = q[:, :, rows] @ k[:, :, cols].swapaxes(-1, -2) * scale
            allowed = allowed_tile(rows, cols, n_queries, n_keys, causal, key_mask)
            p = np.exp(np.where(allowed, s - lse[:, :, rows, None], -np.inf))  # P, one tile
            dp = dout[:, :, rows] @ v[:, :, cols].swapaxes(-1, -2)
            ds = p * (dp - delta[:, :, rows, None])
            dv[:, :, cols] += p.swapaxes(-1, -2) @ dout[:, :, rows]
            dk[:, :, cols] += scale * ds.swapaxes(-1, -2) @ q[:, :, rows]
            dq[:, :, rows] += scale * ds @ k[:, :, cols]
    return dq, dk, dv


def merge_attention(out_a, lse_a, out_b, lse_b):
    # lse = +inf marks a part that attended nothing: its sum of exp(s) is 0, whose log is -inf
    a = np.where(np.isposinf(lse_a), -np.inf, lse_a)
    b = np.where(np.isposinf(lse_b), -np.inf, lse_b)
    top = np.maximum(a, b)
    shift = np.where(np.isinf(top), 0.0, top)  # both parts empty: any finite shift will do
    weight_a, weight_b = np.exp(a - shift), np.exp(b - shift)  # the larger is 1: no overflow
    total = weight_a + weight_b  # in [1, 2], or 0 when both parts are empty
    both_empty = total == 0
    total = np.where(both_empty, 1.0, total)
    out = (weight_a[..., None] * out_a + weight_b[..., None] * out_b) / total[..., None]
    return out, np.where(both_empty, np.inf, shift + np.log(total))
