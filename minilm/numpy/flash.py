"""FlashAttention in NumPy: the algorithm of `kernels/flash_attention.py`, tile by tile.

The same loops as the Triton kernel, with the same names, written for reading and for checking the
kernel on a CPU. The output equals `minilm.numpy.functional.attention_forward` (float64: to about
1e-15), but the (Nq, Nk) matrices of scores S and probabilities P never exist: at most one
(BLOCK_M, BLOCK_N) tile of them does, so the memory beyond the inputs is O(N), not O(N^2).

Layout as in the kernel: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv), key_mask (B, Nk) bool
(True = a real token that may be attended), causal aligned bottom-right (query i may attend key j
iff j <= i + Nk - Nq), scale defaulting to 1/sqrt(D).

Forward (one "program" per tile of BLOCK_M queries; it streams the keys in tiles of BLOCK_N and
keeps three running quantities per query row, the online softmax):

    m   = the largest score seen so far                      row_max  (B, H, BLOCK_M)
    l   = sum_j exp(s_j - m) over the keys seen               row_sum  (B, H, BLOCK_M)
    acc = sum_j exp(s_j - m) v_j over the keys seen           acc      (B, H, BLOCK_M, Dv)

    for each key tile:  m_new = max(m, rowmax(s));  alpha = exp(m - m_new);  p = exp(s - m_new)
                        l = alpha * l + rowsum(p);  acc = alpha * acc + p V_tile;  m = m_new
    at the end:         O = acc / l,  L = m + log(l) = log sum_j exp(s_j)

It returns O and L, exactly what the kernel writes to memory. A query that may attend nothing
outputs 0 and gets L = +inf, so that exp(S - L) recomputes to 0 in the backward.

Backward (recomputes P = exp(S - L) tile by tile; delta = rowsum(dO * O) replaces rowsum(P * dP)):
one loop per key tile accumulates dK and dV over the query tiles, one loop per query tile
accumulates dQ over the key tiles, so every output tile has one owner (no atomic adds on a GPU).

`merge_attention` combines attention over two disjoint sets of keys from each one's (O, L): how
split-KV decoding (Flash-Decoding) spreads one query's keys over many programs.

NumPy runs the programs of every (batch, head) pair at once: the kernel's second grid axis becomes
the two leading axes of each tile. Statistics and accumulators are in at least float32, as in the
kernel; O and the gradients come back in the inputs' dtype, L in float32 or wider.
"""

from __future__ import annotations

import math

import numpy as np

from minilm.common.checks import check_attention_inputs, check_key_mask

# The kernel's tile under the Triton interpreter; unequal, so that the tile-edge arithmetic shows.
BLOCK_M, BLOCK_N = 32, 16


# ---------------------------------------------------------------- helpers shared by the loops


def _check(q, k, v, key_mask, scale, block_m, block_n, causal):
    """The kernel's layout and the tile sizes, or a ValueError naming what is wrong."""
    check_attention_inputs(q, k, v, scale, np.ndarray, causal)
    if q.ndim != 4:
        raise ValueError(f"flash attention: q, k, v must be (B, H, N, D), got q of shape {q.shape}")
    if key_mask is not None:
        key_mask = np.asarray(key_mask)
        check_key_mask("flash attention: key_mask", key_mask, k, np.ndarray)
    for name, block in (("block_m", block_m), ("block_n", block_n)):
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
            raise ValueError(f"flash attention: {name} must be an int >= 1, got {block!r}")
    return key_mask


def may_attend(query_idx, key_idx, n_queries, n_keys, key_mask, causal):
    """(B or 1, 1, tile_m, tile_n) bool: True where query query_idx[i] may attend key key_idx[j]."""
    allowed = np.ones((1, 1, len(query_idx), len(key_idx)), dtype=bool)
    if causal:  # bottom-right: the last query (Nq - 1) sees the last key (Nk - 1)
        allowed = allowed & (key_idx[None, :] <= query_idx[:, None] + (n_keys - n_queries))
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, key_idx]  # (B, 1, 1, tile_n)
    return allowed


def key_range_end(start_m, n_queries, n_keys, block_m, causal):
    """One past the last key that queries start_m .. start_m + block_m - 1 may see."""
    if causal:  # the tile's last query i = start_m + block_m - 1 sees keys j <= i + Nk - Nq
        return min(n_keys, start_m + block_m + n_keys - n_queries)
    return n_keys


def query_range_start(start_n, n_queries, n_keys, block_m, causal):
    """First query tile (a multiple of block_m) that may see any key from start_n on."""
    if causal:  # key j is first seen by query i = j - (Nk - Nq): earlier query tiles are skipped
        return (max(start_n - (n_keys - n_queries), 0) // block_m) * block_m
    return 0


# ---------------------------------------------------------------- forward


def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None,
                            block_m=BLOCK_M, block_n=BLOCK_N):
    """Attention computed tile by tile with the online softmax: (out, lse).

    q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv), key_mask (B, Nk) bool or None.
    Returns out (B, H, Nq, Dv), equal to softmax(q k^T * scale, masked) v, and
    lse (B, H, Nq) = L = log sum_j exp(S_ij) over the keys query i may attend (+inf if none).
    Never holds more than a (B, H, block_m, block_n) tile of scores.
    """
    key_mask = _check(q, k, v, key_mask, scale, block_m, block_n, causal)
    n_queries, n_keys = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    work = np.promote_types(q.dtype, np.float32)  # fp16 tiles compute in fp32, as in the kernel
    out = np.zeros(q.shape[:-1] + v.shape[-1:], dtype=work)  # (B, H, Nq, Dv)
    lse = np.zeros(q.shape[:-1], dtype=work)  # (B, H, Nq)

    for start_m in range(0, n_queries, block_m):  # one program per query tile
        rows = slice(start_m, start_m + block_m)
        q_tile = q[:, :, rows].astype(work)  # (B, H, tile_m, D): loaded once, kept on chip
        query_idx = np.arange(start_m, min(start_m + block_m, n_queries))  # (tile_m,)
        row_max = np.full(q_tile.shape[:-1], -np.inf, dtype=work)  # m, (B, H, tile_m)
        row_sum = np.zeros(q_tile.shape[:-1], dtype=work)  # l
        acc = np.zeros(q_tile.shape[:-1] + v.shape[-1:], dtype=work)  # (B, H, tile_m, Dv)

        for start_n in range(0, key_range_end(start_m, n_queries, n_keys, block_m, causal),
                             block_n):  # stream the keys and values
            cols = slice(start_n, start_n + block_n)
            k_tile, v_tile = k[:, :, cols].astype(work), v[:, :, cols].astype(work)
            key_idx = np.arange(start_n, min(start_n + block_n, n_keys))  # (tile_n,)

            # S = scale * Q K^T, -inf where not allowed                   (B, H, tile_m, tile_n)
            scores = (q_tile @ k_tile.swapaxes(-1, -2)) * work.type(scale)
            allowed = may_attend(query_idx, key_idx, n_queries, n_keys, key_mask, causal)
            scores = np.where(allowed, scores, -np.inf)

            new_max = np.maximum(row_max, scores.max(axis=-1))  # (B, H, tile_m)
            # A row with no allowed key yet has max -inf: subtract 0 instead (its p are all 0).
            shift = np.where(new_max == -np.inf, 0.0, new_max).astype(work)
            p = np.exp(scores - shift[..., None])  # (B, H, tile_m, tile_n), every entry <= 1
            rescale = np.exp(row_max - shift)  # alpha: from the old max to the new one
            row_sum = row_sum * rescale + p.sum(axis=-1)
            acc = acc * rescale[..., None] + p @ v_tile  # (B, H, tile_m, Dv)
            row_max = new_max

        # A row that attended nothing has row_sum 0 and acc 0: divide by 1, and give it L = +inf.
        row_has_keys = row_sum > 0
        safe_sum = np.where(row_has_keys, row_sum, 1.0)  # (B, H, tile_m)
        out[:, :, rows] = acc / safe_sum[..., None]  # O = acc / l
        lse[:, :, rows] = np.where(row_has_keys, row_max + np.log(safe_sum), np.inf)  # m + log l
    return out.astype(q.dtype, copy=False), lse


# ---------------------------------------------------------------- backward


def _probabilities_and_score_gradients(q_tile, k_tile, v_tile, dout_tile, lse_tile, delta_tile,
                                       allowed, scale):
    """What both backward loops recompute for one (query tile, key tile) pair:

        P  = exp(S - L), 0 where attention is not allowed            (B, H, tile_m, tile_n)
        dS = P * (dP - delta), with dP = dO V^T                      (B, H, tile_m, tile_n)
    """
    scores = (q_tile @ k_tile.swapaxes(-1, -2)) * scale
    p = np.exp(np.where(allowed, scores - lse_tile[..., None], -np.inf))  # L = +inf gives 0
    dp = dout_tile @ v_tile.swapaxes(-1, -2)
    return p, p * (dp - delta_tile[..., None])


def flash_attention_backward(dout, q, k, v, out, lse, causal=False, key_mask=None, scale=None,
                             block_m=BLOCK_M, block_n=BLOCK_N):
    """(dq, dk, dv) of the attention `flash_attention_forward` computed, from its out and lse.

    dout, out (B, H, Nq, Dv); q (B, H, Nq, D); k (B, H, Nk, D), v (B, H, Nk, Dv); lse (B, H, Nq).
    The chain rule of functional.attention_backward, with P recomputed tile by tile:

        dV = P^T dO;  dP = dO V^T;  dS = P * (dP - delta), delta = rowsum(dO * O);
        dQ = scale * dS K;  dK = scale * dS^T Q.
    """
    key_mask = _check(q, k, v, key_mask, scale, block_m, block_n, causal)
    n_queries, n_keys = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    dtype, work = q.dtype, np.promote_types(q.dtype, np.float32)
    q, k, v, dout, out = (x.astype(work, copy=False) for x in (q, k, v, dout, out))
    scale = work.type(scale)
    # delta_i = sum_j P_ij dP_ij = dO_i . sum_j P_ij v_j = dO_i . O_i: no P needed
    delta = (dout * out).sum(axis=-1)  # (B, H, Nq)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)

    def pair(rows, cols, query_idx, key_idx):
        allowed = may_attend(query_idx, key_idx, n_queries, n_keys, key_mask, causal)
        return _probabilities_and_score_gradients(
            q[:, :, rows], k[:, :, cols], v[:, :, cols], dout[:, :, rows], lse[:, :, rows],
            delta[:, :, rows], allowed, scale)

    # dK, dV: one program per key tile; its K, V tiles and accumulators stay on chip
    for start_n in range(0, n_keys, block_n):
        cols = slice(start_n, start_n + block_n)
        key_idx = np.arange(start_n, min(start_n + block_n, n_keys))  # (tile_n,)
        dk_acc, dv_acc = np.zeros_like(k[:, :, cols]), np.zeros_like(v[:, :, cols])
        for start_m in range(query_range_start(start_n, n_queries, n_keys, block_m, causal),
                             n_queries, block_m):
            rows = slice(start_m, start_m + block_m)
            query_idx = np.arange(start_m, min(start_m + block_m, n_queries))  # (tile_m,)
            p, ds = pair(rows, cols, query_idx, key_idx)  # (B, H, tile_m, tile_n) each
            dv_acc += p.swapaxes(-1, -2) @ dout[:, :, rows]  # dV += P^T dO
            dk_acc += ds.swapaxes(-1, -2) @ q[:, :, rows]  # dK += dS^T Q
        dk[:, :, cols], dv[:, :, cols] = scale * dk_acc, dv_acc  # one owner: a plain store

    # dQ: one program per query tile, looping over the key tiles it may see
    for start_m in range(0, n_queries, block_m):
        rows = slice(start_m, start_m + block_m)
        query_idx = np.arange(start_m, min(start_m + block_m, n_queries))
        dq_acc = np.zeros_like(q[:, :, rows])  # (B, H, tile_m, D)
        for start_n in range(0, key_range_end(start_m, n_queries, n_keys, block_m, causal),
                             block_n):
            cols = slice(start_n, start_n + block_n)
            key_idx = np.arange(start_n, min(start_n + block_n, n_keys))
            _, ds = pair(rows, cols, query_idx, key_idx)
            dq_acc += ds @ k[:, :, cols]  # dQ += dS K
        dq[:, :, rows] = scale * dq_acc
    return tuple(grad.astype(dtype, copy=False) for grad in (dq, dk, dv))


# ---------------------------------------------------------------- merging partial results


def merge_attention(out_a, lse_a, out_b, lse_b):
    """Attention over the union of two disjoint sets of keys A and B, from attention over each.

    out_a (..., Nq, Dv) and lse_a (..., Nq) are what `flash_attention_forward` returns for the keys
    of A (the same for B). Since L_a = log sum_{j in A} exp(s_j) and
    out_a = sum_{j in A} exp(s_j - L_a) v_j:

        L   = log(exp(L_a) + exp(L_b))                    = log sum_{j in A or B} exp(s_j)
        out = exp(L_a - L) out_a + exp(L_b - L) out_b

    The two weights lie in [0, 1] and sum to 1: each part counts in proportion to its share of the
    softmax's normaliser. A part that attended nothing has L = +inf by the kernel's convention (for
    its backward); its sum of exp(s_j) is 0, so it weighs nothing. Returns (out, lse); a query with
    nothing in either part keeps out 0 and L = +inf.
    """
    # log of an empty sum is -inf; the kernel stores +inf there
    log_a = np.where(lse_a == np.inf, -np.inf, lse_a)  # (..., Nq)
    log_b = np.where(lse_b == np.inf, -np.inf, lse_b)
    lse = np.logaddexp(log_a, log_b)  # max + log(1 + exp(min - max)): never exp of a large number
    shift = np.where(lse == -np.inf, 0.0, lse)  # both parts empty: weights exp(-inf) = 0
    weight_a, weight_b = np.exp(log_a - shift), np.exp(log_b - shift)  # (..., Nq), in [0, 1]
    out = weight_a[..., None] * out_a + weight_b[..., None] * out_b  # (..., Nq, Dv)
    return out, np.where(lse == -np.inf, np.inf, lse)
