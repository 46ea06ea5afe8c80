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
    """Normalise the last axis to mean 0 and (biased) variance 1, then * weight + bias:
    x_hat = (x - mean) / sqrt(var + eps), y = x_hat * weight + bias. Returns (y, cache)."""
    raise NotImplementedError


def layer_norm_backward(dout, cache):
    """(dx, dweight, dbias). With dx_hat = dout * weight and means over the last axis:

        dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps)

    (the two subtracted means are the gradient through the mean and the variance);
    dweight = sum of dout * x_hat, dbias = sum of dout, over every axis but the last."""
    raise NotImplementedError


def gelu_forward(x, approximate="none"):
    """x * Phi(x) ("none") or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) ("tanh")."""
    raise NotImplementedError


def gelu_backward(dout, cache):
    """dx = dout * gelu'(x), for the form the forward used:

        "none": gelu'(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi);
        "tanh": with t = tanh(sqrt(2/pi) (x + 0.044715 x^3)),
                gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    raise NotImplementedError


def dropout_forward(x, p, rng=None, training=True):
    """Zero each entry with probability p (draw the mask from rng), scale the rest by 1/(1-p);
    the identity when not training or p == 0. Returns (out, cache)."""
    raise NotImplementedError


def dropout_backward(dout, cache):
    """The forward's mask and scale applied to dout."""
    raise NotImplementedError


def sinusoidal_positions(max_len, dim):
    """The (max_len, dim) table PE[t, 2i] = sin(t / 10000^(2i/dim)), PE[t, 2i+1] =
    cos(t / 10000^(2i/dim)): channel pair (2i, 2i+1) holds the sine and cosine of one angle. With
    an odd dim the last channel is a sine without its cosine."""
    raise NotImplementedError


# The residual sub-layers take two layers of minilm.numpy.layers (or anything with the same
# methods): `norm.forward(x)` / `norm.backward(dout)` and `branch.forward(x, *branch_args)` /
# `branch.backward(dout)`. A layer remembers its own input; its backward returns the gradient of its
# input and adds the gradients of its parameters into the model's grads.


def pre_norm_residual_forward(x, norm, branch, *branch_args):
    """Pre-LN (GPT-2): y = x + branch(norm(x)); pass *branch_args on to branch.forward.
    Returns (y, cache): keep in the cache what your backward needs."""
    raise NotImplementedError


def pre_norm_residual_backward(dout, cache):
    """dx, the gradient of the loss in x (through every path from x to y)."""
    raise NotImplementedError


def post_norm_residual_forward(x, norm, branch, *branch_args):
    """Post-LN (BERT): y = norm(x + branch(x)); pass *branch_args on to branch.forward.
    Returns (y, cache)."""
    raise NotImplementedError


def post_norm_residual_backward(dout, cache):
    """dx, the gradient of the loss in x."""
    raise NotImplementedError
