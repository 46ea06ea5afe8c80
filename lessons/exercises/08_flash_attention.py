"""Lesson 08 (FlashAttention): your implementations. Replace each `raise NotImplementedError`
with your code, then grade it:

    minilm check lessons/exercises/08_flash_attention.py

Each function has the library's name and signature (`minilm.numpy.flash`). The layout is the
kernel's: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv), key_mask (B, Nk) bool or None (True =
a real token that may be attended); causal is aligned bottom-right (query i may attend key j iff
j <= i + Nk - Nq); scale defaults to 1/sqrt(D). Work on all (batch, head) pairs at once: every
array keeps its two leading axes.
"""

import math  # noqa: F401 - you will need them

import numpy as np  # noqa: F401


def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None, block_m=32,
                            block_n=16):
    """Attention, tile by tile. Loop over tiles of `block_m` queries; for each, keep per query a
    running max m, a running normaliser l = sum exp(s - m) and an accumulator
    acc = sum exp(s - m) v, and loop over tiles of `block_n` keys: scores of the tile (masked
    ones -inf), m_new = max(m, rowmax), alpha = exp(m - m_new), p = exp(s - m_new),
    l = alpha l + rowsum(p), acc = alpha acc + p v_tile. Never build the (Nq, Nk) scores.

    Returns (out, lse): out = acc / l, (B, H, Nq, Dv), and lse = m + log(l), (B, H, Nq). A query
    that may attend nothing outputs zeros and gets lse = +inf (never NaN: while m is -inf,
    subtract 0 instead of m)."""
    raise NotImplementedError


def flash_attention_backward(dout, q, k, v, out, lse, causal=False, key_mask=None, scale=None,
                             block_m=32, block_n=16):
    """(dq, dk, dv) given dout = d loss / d out, and the forward's out and lse. Recompute the
    probabilities one (block_m, block_n) tile at a time, P = exp(S - lse) where allowed (0
    elsewhere); with delta = rowsum(dout * out): dv += P^T dout, dS = P * (dout v^T - delta),
    dq += scale dS k, dk += scale dS^T q. Never build the (Nq, Nk) probabilities."""
    raise NotImplementedError


def merge_attention(out_a, lse_a, out_b, lse_b):
    """Attention over the union of two disjoint sets of keys A and B, from each set's (out, lse)
    as flash_attention_forward returns them: lse = log(exp(lse_a) + exp(lse_b)),
    out = exp(lse_a - lse) out_a + exp(lse_b - lse) out_b, computed without overflow (lse can be
    1000). A part with lse = +inf attended nothing and weighs nothing; if both did, out is 0 and
    lse is +inf. out_* (..., Nq, Dv), lse_* (..., Nq). Returns (out, lse)."""
    raise NotImplementedError
