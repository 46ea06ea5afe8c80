"""Lesson 09, machine translation: your implementations. Grade them with

    minilm check lessons/exercises/09_translation.py

Shapes: B sources, Tq target positions, Tk source positions, C channels, D the attention width;
K beams, V the vocabulary.
"""

import math  # noqa: F401 - you will need it

import numpy as np  # noqa: F401 - you will need it


def cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None):
    """One head of cross-attention: queries from the target x (B, Tq, C), keys and values from the
    encoder's output memory (B, Tk, C): q = x @ w_q.T, k = memory @ w_k.T, v = memory @ w_v.T
    (each w (D, C)), out = softmax(q k^T / sqrt(D)) v (B, Tq, D), where memory_mask (B, Tk) (None:
    no padding) is False at padded source positions, whose weight must be 0.
    Returns (out, cache), the cache whatever your backward needs."""
    raise NotImplementedError


def cross_attention_backward(dout, cache):
    """Given dout = d loss / d out (B, Tq, D): (dx, dmemory, dw_q, dw_k, dw_v), each shaped like
    its input. dmemory is the gradient that flows back into the encoder."""
    raise NotImplementedError


def beam_step(beam_scores, log_probs, n_best):
    """One step of beam search for B sources. beam_scores (B, K): each beam's running score (the
    sum of its tokens' log-probabilities; -inf for a beam not started yet); log_probs (B, K, V):
    the next token's log-probabilities after each beam. A continuation (beam k, token v) scores
    beam_scores[b, k] + log_probs[b, k, v]. Returns (scores, beams, tokens), each (B, n_best):
    of each source, the n_best highest-scoring continuations, best first."""
    raise NotImplementedError
