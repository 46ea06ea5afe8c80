"""Lesson 00 (language models): your implementations. Replace each `raise NotImplementedError`
with your code, then grade it:

    minilm check lessons/exercises/00_language_models.py

Each function has the library's name and signature (`minilm.numpy.functional`); the cache a
forward returns can be anything your backward understands.
"""

import numpy as np  # noqa: F401 - you will need it


def softmax_forward(x, axis=-1):
    """p = exp(x) / sum(exp(x)) along `axis`, computed without overflow. Returns (probs, cache)."""
    raise NotImplementedError


def softmax_backward(dprobs, cache):
    """dx, given dprobs = d loss / d probs and your forward's cache."""
    raise NotImplementedError


def cross_entropy_forward(logits, targets, ignore_index=-100):
    """Mean over kept targets of -log softmax(logits)[target]; logits (..., V), targets (...).
    Positions whose target is ignore_index do not count (if every one is ignored the loss is 0).
    Returns (loss, cache)."""
    raise NotImplementedError


def cross_entropy_backward(cache, dloss=1.0):
    """d loss / d logits, times dloss (the gradient flowing into the loss)."""
    raise NotImplementedError


def bigram_log_probs(ids, vocab_size, smoothing=1.0):
    """The bigram model of the token stream `ids` (a 1-D int array), fitted by counting.

    Return a (vocab_size, vocab_size) array whose entry [a, b] is the natural log of

        p(next = b | previous = a) = (n(a, b) + smoothing) / (n(a) + smoothing * vocab_size),

    where n(a, b) counts the positions t with ids[t] == a and ids[t + 1] == b, and n(a) is the
    sum of row a. Without smoothing a pair never seen gets log 0 = -inf, and a row with no
    count at all is uniform: log(1 / vocab_size) everywhere.
    """
    raise NotImplementedError


def bigram_cross_entropy(log_probs, ids):
    """The cross-entropy of the bigram model `log_probs` (V, V) on the stream `ids`, in nats:
    the mean over t = 1 .. T-1 of -log_probs[ids[t-1], ids[t]] (a float; the first token has
    no previous one and is not predicted)."""
    raise NotImplementedError
