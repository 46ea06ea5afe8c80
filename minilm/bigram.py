"""Counting language models: the unigram and the bigram, the baselines a Transformer must beat.

A language model gives every text a probability, one token at a time (the chain rule):

    p(x_1, ..., x_T) = p(x_1) p(x_2 | x_1) p(x_3 | x_1, x_2) ... p(x_T | x_1, ..., x_{T-1}).

A *bigram* model forgets all of the context but the last token: p(x_t | x_<t) = P[x_{t-1}, x_t],
a (V, V) table whose row a is the distribution of the token that follows a. A *unigram* model
forgets the context altogether: p(x_t | x_<t) = p[x_t], one distribution (V,).

Fitted by counting. Among all tables, the one that gives a training text the highest probability
(the lowest cross-entropy, the loss of every model in this course) is the table of counts with each
row divided by its total: n(a, b) / n(a), where n(a, b) counts the pairs "a then b" and n(a) the
pairs that start with a. It gives a pair never seen in training probability 0, and held-out text
that contains one an infinite loss; add-k smoothing adds k to every count first,

    P[a, b] = (n(a, b) + k) / (n(a) + k V),

which pulls every row toward the uniform distribution (k -> inf gives 1/V everywhere). A row whose
token was never seen at all (n(a) = 0 and k = 0) is uniform.

Everything is returned as natural logarithms, so losses are in nats (divide by ln 2 for bits).
Lesson 00 fits these models to the built-in corpus and compares them with its exact entropy rate.
"""

from __future__ import annotations

import math

import numpy as np

from minilm.common.checks import check_token_ids, number_in, positive_int


def _token_ids(ids, vocab_size) -> tuple[np.ndarray, int]:
    """A 1-D stream of ids in [0, vocab_size) as int64, and vocab_size as an int."""
    vocab_size = positive_int("vocab_size", vocab_size)
    if np.ndim(ids) != 1:  # check_token_ids reads a single id as a stream of one
        raise ValueError(f"ids must be a 1-D array of token ids, got shape {np.shape(ids)}")
    return check_token_ids(ids, vocab_size), vocab_size


def _normalised_log(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """log((counts + k) / (row total + k n)) along the last axis (n entries per row); a row with
    nothing in it is uniform, log(1/n)."""
    smoothed = counts + number_in("smoothing", smoothing, "[0, inf)")
    totals = smoothed.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):  # log 0 = -inf: never seen, and no smoothing
        log_probs = np.log(smoothed) - np.log(np.where(totals > 0, totals, 1.0))
    return np.where(totals > 0, log_probs, -math.log(counts.shape[-1]))


def unigram_log_probs(ids, vocab_size, smoothing=1.0) -> np.ndarray:
    """log p(token) by counting, (V,): log((n(b) + k) / (T + k V)) over the stream `ids`."""
    ids, vocab_size = _token_ids(ids, vocab_size)
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)  # (V,)
    return _normalised_log(counts, smoothing)


def bigram_counts(ids, vocab_size) -> np.ndarray:
    """(V, V) float counts: [a, b] = how many times b directly follows a in the stream `ids`."""
    ids, vocab_size = _token_ids(ids, vocab_size)
    pairs = ids[:-1] * vocab_size + ids[1:]  # the pair (a, b) as one number, a * V + b
    counts = np.bincount(pairs, minlength=vocab_size * vocab_size)  # every occurrence counts
    return counts.reshape(vocab_size, vocab_size).astype(np.float64)


def bigram_log_probs(ids, vocab_size, smoothing=1.0) -> np.ndarray:
    """log p(next = b | previous = a) by counting the pairs of the stream `ids`, (V, V):

        log((n(a, b) + k) / (n(a) + k V)),    k = smoothing >= 0,

    row a = the previous token, column b = the next one; each row is a distribution (its exp
    sums to 1). Without smoothing a pair never seen is -inf, and a row never seen is uniform.
    """
    return _normalised_log(bigram_counts(ids, vocab_size), smoothing)


def bigram_cross_entropy(log_probs, ids) -> float:
    """The bigram model's cross-entropy on the stream `ids`, in nats per predicted token:

        -1/(T-1) sum_{t=1}^{T-1} log_probs[ids[t-1], ids[t]],

    the mean negative log-probability of each token given the one before it (the first token has
    no previous one and is not predicted). log_probs (V, V) as `bigram_log_probs` returns it.
    """
    log_probs = np.asarray(log_probs)
    if log_probs.ndim != 2 or log_probs.shape[0] != log_probs.shape[1]:
        raise ValueError(f"log_probs must be a (V, V) table, got shape {log_probs.shape}")
    ids, _ = _token_ids(ids, log_probs.shape[0])
    if ids.size < 2:
        raise ValueError(f"ids must hold at least 2 tokens (the first is only context), got "
                         f"{ids.size}")
    return float(-log_probs[ids[:-1], ids[1:]].mean())
