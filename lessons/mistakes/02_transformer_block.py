"""Common mistakes of lesson 02, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import math

import numpy as np
from scipy.special import erf

from minilm.check.framework import mistake


@mistake("LayerNorm backward missing the mean term",
         breaks="is the gradient of your layer_norm_forward (finite differences)")
def layer_norm_backward(dout, cache):
    xhat, inv_std, weight = cache
    dxhat = dout * weight
    dx = inv_std * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))  # no - mean(dxhat)
    lead = tuple(range(dout.ndim - 1))
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)


@mistake("LayerNorm with the unbiased variance",
         breaks="normalises each row to mean 0 and variance 1 (biased)")
def layer_norm_forward(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=-1, ddof=1, keepdims=True) + eps)  # divides by C - 1
    xhat = (x - mean) * inv_std
    return xhat * weight + bias, (xhat, inv_std, weight)


@mistake("GELU backward of the wrong variant",
         breaks="is the gradient of your gelu_forward (finite differences)")
def gelu_backward(dout, cache):
    x, _approximate = cache  # ignores `approximate`: always the exact form's derivative
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return dout * (cdf + x * pdf)


@mistake("embedding backward that overwrites repeated ids",
         breaks="is the gradient of your embedding_forward (finite differences)")
def embedding_backward(dout, cache):
    ids, shape = cache
    dweight = np.zeros(shape)
    dweight[ids] = dout  # the last occurrence wins: repeated ids lose gradient
    return dweight


@mistake("linear backward that forgets to sum dW over the batch",
         breaks="is the gradient of your linear_forward (finite differences)")
def linear_backward(dout, cache):
    x, weight, has_bias = cache
    x2, d2 = x.reshape(-1, x.shape[-1]), dout.reshape(-1, dout.shape[-1])
    dbias = d2[-1] if has_bias else None  # the last row's gradient only
    return dout @ weight, np.outer(d2[-1], x2[-1]), dbias


@mistake("dropout that does not rescale the survivors",
         breaks="zeroes with probability p and scales the rest by 1/(1-p)")
def dropout_forward(x, p, rng=None, training=True):
    if not training or p == 0:
        return x, None
    keep = (rng.random(x.shape) >= p).astype(float)  # the expectation shrinks by 1 - p
    return x * keep, keep


@mistake("dropout that draws its mask from a new generator, not the rng it is given",
         breaks="draws its mask from the rng it is given (same seed, same mask)")
def dropout_forward(x, p, rng=None, training=True):  # noqa: F811
    if not training or p == 0:
        return x, None
    rng = np.random.default_rng()  # a fresh seed each call: the mask cannot be drawn again
    keep = ((rng.random(x.shape) >= p) / (1 - p)).astype(x.dtype)
    return x * keep, keep


@mistake("sinusoidal positions with the rate 10000^(-i/C) of the pair index i, not of 2i",
         breaks="matches sin(t w_i), cos(t w_i) with w_i = 10000^(-2i/C)")
def sinusoidal_positions(max_len, dim):
    table = np.zeros((max_len, dim))
    for i in range(0, dim, 2):
        angle = np.arange(max_len) / 10000 ** ((i // 2) / dim)  # the pair's index, not 2i
        table[:, i] = np.sin(angle)
        if i + 1 < dim:
            table[:, i + 1] = np.cos(angle)
    return table


@mistake("sinusoidal positions that break on an odd dim (the last sine has no cosine)",
         breaks="matches sin(t w_i), cos(t w_i) with w_i = 10000^(-2i/C)", crashes=True)
def sinusoidal_positions(max_len, dim):  # noqa: F811 - each mistake is a separate function
    frequency = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    angle = np.arange(max_len)[:, None] * frequency  # (T, ceil(C/2))
    table = np.zeros((max_len, dim))
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)  # one cosine too many if odd
    return table


@mistake("residual gradient not summed: only the branch's path reaches x",
         breaks="is the gradient of your pre_norm_residual_forward in x (finite differences)")
def pre_norm_residual_backward(dout, cache):
    norm, branch = cache
    return norm.backward(branch.backward(dout))  # forgets the skip path's dout


@mistake("pre-LN that normalises the skip path too: y = norm(x) + branch(norm(x))",
         breaks="is x + branch(norm(x))")
def pre_norm_residual_forward(x, norm, branch, *branch_args):
    h = norm.forward(x)
    return h + branch.forward(h, *branch_args), (norm, branch)


@mistake("branch.backward called twice: its parameter gradients are added twice",
         breaks="fills the parameter gradients of norm and branch (finite differences)")
def pre_norm_residual_backward(dout, cache):  # noqa: F811
    norm, branch = cache
    branch.backward(dout)  # e.g. to print its gradient first...
    return dout + norm.backward(branch.backward(dout))  # ...then again: grads accumulate twice


@mistake("post-LN backward whose skip path bypasses the norm",
         breaks="is the gradient of your post_norm_residual_forward in x (finite differences)")
def post_norm_residual_backward(dout, cache):
    norm, branch = cache
    return dout + branch.backward(norm.backward(dout))  # dout, not norm'^T dout, goes straight


@mistake("embedding backward into np.zeros(shape): float64 gradients for a float32 table",
         breaks="float32 inputs give float32 outputs and gradients")
def embedding_backward(dout, cache):  # noqa: F811
    ids, shape = cache
    dweight = np.zeros(shape)  # float64 whatever dout is
    np.add.at(dweight, ids, dout)
    return dweight


@mistake("dropout that scales x in place (x *= keep): the caller's activations change",
         breaks="zeroes with probability p and scales the rest by 1/(1-p)")
def dropout_forward(x, p, rng=None, training=True):  # noqa: F811
    if not training or p == 0:
        return x, None
    keep = ((rng.random(x.shape) >= p) / (1 - p)).astype(x.dtype)
    x *= keep  # writes into the caller's array
    return x, keep


@mistake("GELU's tanh form not written yet (raises NotImplementedError for it)",
         breaks="matches torch (float64)", crashes=True)
def gelu_forward(x, approximate="none"):
    if approximate == "tanh":
        raise NotImplementedError("tanh form: later")  # not a stub: part of the exercise
    return 0.5 * x * (1 + erf(x / math.sqrt(2))), (x, approximate)
