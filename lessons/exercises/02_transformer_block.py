"""Lesson 02 (the Transformer block): your implementations. Replace each
`raise NotImplementedError` with your code, then grade it:

    minilm check lessons/exercises/02_transformer_block.py
"""

import math  # noqa: F401 - you will need them

import numpy as np  # noqa: F401
from scipy.special import erf  # noqa: F401


def linear_forward(x, weight, bias=None):
    """y = x W^T + b; x (..., in), weight (out, in), bias (out,) or None. Returns (y, cache)."""
    raise NotImplementedError


def linear_backward(dout, cache):
    """(dx, dweight, dbias); dbias is None when the forward had no bias."""
    raise NotImplementedError


def embedding_forward(ids, weight):
    """y = weight[ids] for integer ids of any shape. Returns (y, cache)."""
    raise NotImplementedError


def embedding_backward(dout, cache):
    """dweight: each position's gradient added into the row of its id."""
    raise NotImplementedError


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """Normalise the last axis to mean 0 and (biased) variance 1, then * weight + bias."""
    raise NotImplementedError


def layer_norm_backward(dout, cache):
    """(dx, dweight, dbias): dx flows through the mean and the variance too."""
    raise NotImplementedError


def gelu_forward(x, approximate="none"):
    """x * Phi(x) ("none") or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) ("tanh")."""
    raise NotImplementedError


def gelu_backward(dout, cache):
    """dx = dout * gelu'(x), for the form the forward used."""
    raise NotImplementedError


def dropout_forward(x, p, rng=None, training=True):
    """Zero each entry with probability p (draw the mask from rng), scale the rest by 1/(1-p);
    the identity when not training or p == 0. Returns (out, cache)."""
    raise NotImplementedError


def dropout_backward(dout, cache):
    """The forward's mask and scale applied to dout."""
    raise NotImplementedError
