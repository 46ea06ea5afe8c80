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
