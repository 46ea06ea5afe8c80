"""Lesson 01 (self-attention): your implementations. Replace each `raise NotImplementedError`
with your code, then grade it:

    minilm check lessons/exercises/01_self_attention.py
"""

import math  # noqa: F401 - you will need them

import numpy as np  # noqa: F401


def causal_mask(n_queries, n_keys):
    """The (n_queries, n_keys) boolean mask of causal attention, True = may attend: query i may
    attend key j iff j <= i + (n_keys - n_queries). The queries are the last n_queries positions
    of the sequence (aligned bottom-right), so the last query sees every key."""
    raise NotImplementedError


def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None):
    """softmax(q k^T * scale, masked) v. q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv).

    scale defaults to 1/sqrt(D). attn_mask: boolean, broadcastable to (..., Nq, Nk), True = may
    attend. causal: query i may attend key j iff j <= i + (Nk - Nq) (aligned bottom-right). A
    query that may attend nothing outputs zeros, never NaN. Returns (out, cache)."""
    raise NotImplementedError


def attention_backward(dout, cache):
    """(dq, dk, dv) given dout = d loss / d out and your forward's cache."""
    raise NotImplementedError
