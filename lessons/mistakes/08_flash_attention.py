"""Common mistakes of lesson 08, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import math

import numpy as np

from minilm.check.framework import mistake


def _allowed(rows, cols, n_queries, n_keys, causal, key_mask):
    """(B or 1, 1, tile_m, tile_n): may query rows[i] attend key cols[j]? (done right)"""
    allowed = np.ones((1, 1, len(rows), len(cols)), dtype=bool)
    if causal:
        allowed = allowed & (cols[None, :] <= rows[:, None] + (n_keys - n_queries))
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, cols]
    return allowed


def _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, update, allowed=_allowed,
                   finish=None, m_start=-np.inf):
    """The tiled forward done right, except for `update(m, l, acc, s, v_tile)` (one key tile),
    `allowed` (the tile's mask), `finish(m, l, acc)` (-> out, lse of a query tile) and the
    running max's start `m_start`, which each mistake may replace."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_queries, n_keys = q.shape[2], k.shape[2]
    out, lse = np.zeros(q.shape[:3] + v.shape[3:]), np.zeros(q.shape[:3])
    for i0 in range(0, n_queries, block_m):
        rows = np.arange(i0, min(i0 + block_m, n_queries))
        shape = q.shape[:2] + (len(rows),)  # (B, H, tile_m)
        m, l, acc = np.full(shape, m_start), np.zeros(shape), np.zeros(shape + v.shape[-1:])
        for j0 in range(0, n_keys, block_n):
            cols = np.arange(j0, min(j0 + block_n, n_keys))
            s = q[:, :, rows] @ k[:, :, cols].swapaxes(-1, -2) * scale
            s = np.where(allowed(rows, cols, n_queries, n_keys, causal, key_mask), s, -np.inf)
            m, l, acc = update(m, l, acc, s, v[:, :, cols])
        out[:, :, rows], lse[:, :, rows] = (finish or _finish)(m, l, acc)
    return out, lse


def _update(m, l, acc, s, v_tile):
    m_new = np.maximum(m, s.max(axis=-1))
    shift = np.where(np.isinf(m_new), 0.0, m_new)
    alpha, p = np.exp(m - shift), np.exp(s - shift[..., None])
    return m_new, alpha * l + p.sum(-1), alpha[..., None] * acc + p @ v_tile


def _finish(m, l, acc):
    empty = l == 0
    safe = np.where(empty, 1.0, l)
    return acc / safe[..., None], np.where(empty, np.inf, m + np.log(safe))


# ---------------------------------------------------------------- flash_attention_forward


@mistake("online softmax that forgets to rescale the accumulator",
         breaks="equals attention for any N and tile sizes")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None, block_m=32,
                            block_n=16):
    def update(m, l, acc, s, v_tile):
        m_new = np.maximum(m, s.max(axis=-1))
        shift = np.where(np.isinf(m_new), 0.0, m_new)
        alpha, p = np.exp(m - shift), np.exp(s - shift[..., None])
        return m_new, alpha * l + p.sum(-1), acc + p @ v_tile  # acc still counts the old max

    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, update)


@mistake("online softmax that forgets to rescale the normaliser l",
         breaks="equals attention for any N and tile sizes")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    def update(m, l, acc, s, v_tile):
        m_new = np.maximum(m, s.max(axis=-1))
        shift = np.where(np.isinf(m_new), 0.0, m_new)
        alpha, p = np.exp(m - shift), np.exp(s - shift[..., None])
        return m_new, l + p.sum(-1), alpha[..., None] * acc + p @ v_tile  # l is not rescaled

    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, update)


@mistake("materialises the full (Nq, Nk) score matrix",
         breaks="never holds the (N, N) scores (peak memory at N = 2048)")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_queries, n_keys = q.shape[2], k.shape[2]
    scores = q @ k.swapaxes(-1, -2) * scale  # (B, H, Nq, Nk): all of them at once
    allowed = _allowed(np.arange(n_queries), np.arange(n_keys), n_queries, n_keys, causal,
                       key_mask)
    scores = np.where(allowed, scores, -np.inf)
    m = scores.max(axis=-1)
    shift = np.where(np.isinf(m), 0.0, m)
    p = np.exp(scores - shift[..., None])
    return _finish(m, p.sum(-1), p @ v)


@mistake("no online softmax: a plain softmax over a whole (block_m, Nk) strip of scores per "
         "query tile, computed in place",
         breaks="never holds the (N, N) scores (peak memory at N = 2048)")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_queries, n_keys = q.shape[2], k.shape[2]
    out, lse = np.zeros(q.shape[:3] + v.shape[3:]), np.zeros(q.shape[:3])
    cols = np.arange(n_keys)  # every key at once: block_n is never used
    for i0 in range(0, n_queries, block_m):
        rows = np.arange(i0, min(i0 + block_m, n_queries))
        s = q[:, :, rows] @ k.swapaxes(-1, -2)  # (B, H, tile_m, Nk): the whole strip
        s *= scale  # in place from here on: one strip at a time, never a second
        np.copyto(s, -np.inf, where=~_allowed(rows, cols, n_queries, n_keys, causal, key_mask))
        m = s.max(axis=-1)
        s -= np.where(np.isinf(m), 0.0, m)[..., None]
        np.exp(s, out=s)
        out[:, :, rows], lse[:, :, rows] = _finish(m, s.sum(-1), s @ v)
    return out, lse


@mistake("no guard while the running max is -inf: exp(-inf - (-inf)) = NaN",
         breaks="a query that may attend nothing outputs zeros and L = +inf")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    def update(m, l, acc, s, v_tile):
        m_new = np.maximum(m, s.max(axis=-1))  # -inf for a row with nothing allowed yet
        alpha, p = np.exp(m - m_new), np.exp(s - m_new[..., None])
        return m_new, alpha * l + p.sum(-1), alpha[..., None] * acc + p @ v_tile

    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, update)


@mistake("the running max starts at 0 instead of -inf (right until a row's scores all fall below "
         "about -745, where exp(s - 0) underflows)",
         breaks="a row whose every score is below -1000 attends, as softmax says")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, _update,
                          m_start=0.0)


@mistake("exp of the raw scores, without a running max",
         breaks="stays finite at scores of +-1000")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    def update(m, l, acc, s, v_tile):
        p = np.exp(s)  # exp(1000) = inf
        return np.zeros_like(m), l + p.sum(-1), acc + p @ v_tile

    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, update)


@mistake("causal mask built from indices inside the tile instead of global ones",
         breaks="causal: equals attention aligned bottom-right (Nq != Nk too)")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    def allowed(rows, cols, n_queries, n_keys, causal, key_mask):
        local_rows, local_cols = rows - rows[0], cols - cols[0]  # 0.. in every tile
        return _allowed(local_rows, local_cols, n_queries, n_keys, causal,
                        None if key_mask is None else key_mask[:, cols[0]:])

    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, _update, allowed)


@mistake("L stored as the running max m, without + log(l)",
         breaks="returns L = log sum_j exp(S_ij) over the allowed keys")
def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,  # noqa: F811
                            block_m=32, block_n=16):
    def finish(m, l, acc):
        out, lse = _finish(m, l, acc)
        return out, np.where(np.isinf(lse), lse, m)  # the max alone: log l is missing

    return _tiled_forward(q, k, v, causal, key_mask, scale, block_m, block_n, _update,
                          finish=finish)


# ---------------------------------------------------------------- flash_attention_backward


def _tiled_backward(dout, q, k, v, out, lse, causal, key_mask, scale, block_m, block_n,
                    probabilities, delta=None):
    """The one-loop tiled backward, done right except for `probabilities(s, lse_rows, allowed)`
    (P of one tile) and `delta` (B, H, Nq), which each mistake may replace."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_queries, n_keys = q.shape[2], k.shape[2]
    delta = (dout * out).sum(-1) if delta is None else delta
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    for i0 in range(0, n_queries, block_m):
        rows = np.arange(i0, min(i0 + block_m, n_queries))
        for j0 in range(0, n_keys, block_n):
            cols = np.arange(j0, min(j0 + block_n, n_keys))
            s = q[:, :, rows] @ k[:, :, cols].swapaxes(-1, -2) * scale
            allowed = _allowed(rows, cols, n_queries, n_keys, causal, key_mask)
            p = probabilities(s, lse[:, :, rows], allowed)
            ds = p * (dout[:, :, rows] @ v[:, :, cols].swapaxes(-1, -2) - delta[:, :, rows, None])
            dv[:, :, cols] += p.swapaxes(-1, -2) @ dout[:, :, rows]
            dk[:, :, cols] += scale * ds.swapaxes(-1, -2) @ q[:, :, rows]
            dq[:, :, rows] += scale * ds @ k[:, :, cols]
    return dq, dk, dv


def _probabilities(s, lse_rows, allowed):
    return np.exp(np.where(allowed, s - lse_rows[..., None], -np.inf))


@mistake("delta = rowsum(dP), not weighted by P (nor rowsum(dout * out))",
         breaks="equals the gradient of attention for any N and tile sizes")
def flash_attention_backward(dout, q, k, v, out, lse, causal=False, key_mask=None, scale=None,
                             block_m=32, block_n=16):
    delta = (dout * v.sum(axis=-2, keepdims=True)).sum(-1)  # rowsum(dO V^T): every key, unweighted
    return _tiled_backward(dout, q, k, v, out, lse, causal, key_mask, scale, block_m, block_n,
                           _probabilities, delta)


@mistake("P normalised within each key tile instead of with L",
         breaks="equals the gradient of attention for any N and tile sizes")
def flash_attention_backward(dout, q, k, v, out, lse, causal=False,  # noqa: F811
                             key_mask=None, scale=None, block_m=32, block_n=16):
    def probabilities(s, lse_rows, allowed):
        s = np.where(allowed, s, -np.inf)
        top = s.max(-1, keepdims=True)
        e = np.exp(s - np.where(np.isinf(top), 0.0, top))
        total = e.sum(-1, keepdims=True)
        return e / np.where(total > 0, total, 1.0)  # a softmax of this tile alone

    return _tiled_backward(dout, q, k, v, out, lse, causal, key_mask, scale, block_m, block_n,
                           probabilities)


@mistake("materialises the full (Nq, Nk) probabilities",
         breaks="never holds the (N, N) probabilities (peak memory at N = 2048)")
def flash_attention_backward(dout, q, k, v, out, lse, causal=False,  # noqa: F811
                             key_mask=None, scale=None, block_m=32, block_n=16):
    n_queries, n_keys = q.shape[2], k.shape[2]
    return _tiled_backward(dout, q, k, v, out, lse, causal, key_mask, scale, n_queries, n_keys,
                           _probabilities)  # one tile of (Nq, Nk): the whole matrix


@mistake("P recomputed as whole (block_m, Nk) strips: key tiles as wide as all the keys",
         breaks="never holds the (N, N) probabilities (peak memory at N = 2048)")
def flash_attention_backward(dout, q, k, v, out, lse, causal=False,  # noqa: F811
                             key_mask=None, scale=None, block_m=32, block_n=16):
    return _tiled_backward(dout, q, k, v, out, lse, causal, key_mask, scale, block_m, k.shape[2],
                           _probabilities)  # block_n replaced by Nk


# ---------------------------------------------------------------- merge_attention


@mistake("averages the two parts instead of weighting them by exp(L - L_total)",
         breaks="attention over A and B together = the merge of attention over each")
def merge_attention(out_a, lse_a, out_b, lse_b):
    return (out_a + out_b) / 2, np.logaddexp(lse_a, lse_b)


@mistake("weights exp(L_a), exp(L_b) without subtracting the larger L: overflow",
         breaks="stays finite when L is large (every score + 1000)")
def merge_attention(out_a, lse_a, out_b, lse_b):  # noqa: F811
    a = np.exp(np.where(np.isposinf(lse_a), -np.inf, lse_a))  # exp(1000) = inf
    b = np.exp(np.where(np.isposinf(lse_b), -np.inf, lse_b))
    total = a + b
    safe = np.where(total > 0, total, 1.0)
    out = (a[..., None] * out_a + b[..., None] * out_b) / safe[..., None]
    return out, np.where(total > 0, np.log(safe), np.inf)


@mistake("an empty part's L = +inf taken at face value: inf - inf = NaN",
         breaks="a part that attended nothing (L = +inf) weighs nothing")
def merge_attention(out_a, lse_a, out_b, lse_b):  # noqa: F811
    lse = np.logaddexp(lse_a, lse_b)  # +inf as soon as one part is empty
    weight_a, weight_b = np.exp(lse_a - lse), np.exp(lse_b - lse)
    return weight_a[..., None] * out_a + weight_b[..., None] * out_b, lse
