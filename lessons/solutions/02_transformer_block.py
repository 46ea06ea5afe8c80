"""Reference solutions of lesson 02 (the Transformer block). `minilm check` this file: all pass."""

import math

import numpy as np
from scipy.special import erf


def linear_forward(x, weight, bias=None):
    out = x @ weight.T  # weight is (out_features, in_features), as torch.nn.Linear stores it
    return (out if bias is None else out + bias), (x, weight, bias is not None)


def linear_backward(dout, cache):
    x, weight, has_bias = cache
    rows_in, rows_out = x.reshape(-1, x.shape[-1]), dout.reshape(-1, dout.shape[-1])
    dbias = rows_out.sum(axis=0) if has_bias else None
    return dout @ weight, rows_out.T @ rows_in, dbias


def embedding_forward(ids, weight):
    return weight[ids], (ids, weight.shape)


def embedding_backward(dout, cache):
    ids, shape = cache
    dweight = np.zeros(shape, dtype=dout.dtype)  # float32 stays float32
    np.add.at(dweight, ids, dout)  # an id used twice receives both gradients
    return dweight


def layer_norm_forward(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)  # biased variance
    xhat = (x - mean) * inv_std
    return xhat * weight + bias, (xhat, inv_std, weight)


def layer_norm_backward(dout, cache):
    xhat, inv_std, weight = cache
    dxhat = dout * weight
    dx = inv_std * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                    - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    lead = tuple(range(dout.ndim - 1))
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)


def gelu_forward(x, approximate="none"):
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + np.tanh(inner)), (x, approximate)
    return 0.5 * x * (1 + erf(x / math.sqrt(2))), (x, approximate)


def gelu_backward(dout, cache):
    x, approximate = cache
    if approximate == "tanh":
        t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
        dinner = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)
        return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * dinner)
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return dout * (cdf + x * pdf)


def dropout_forward(x, p, rng=None, training=True):
    if not training or p == 0:
        return x, None
    keep = ((rng.random(x.shape) >= p) / (1 - p)).astype(x.dtype)  # float32 stays float32
    return x * keep, keep


def dropout_backward(dout, cache):
    return dout if cache is None else dout * cache


def sinusoidal_positions(max_len, dim):
    table = np.zeros((max_len, dim))
    for i in range(0, dim, 2):  # channel pair (i, i + 1) turns at the rate 10000^(-i/dim)
        angle = np.arange(max_len) / 10000 ** (i / dim)  # (max_len,)
        table[:, i] = np.sin(angle)
        if i + 1 < dim:  # an odd dim has no last cosine
            table[:, i + 1] = np.cos(angle)
    return table


def pre_norm_residual_forward(x, norm, branch, *branch_args):
    y = x + branch.forward(norm.forward(x), *branch_args)  # the skip path carries x unchanged
    return y, (norm, branch)


def pre_norm_residual_backward(dout, cache):
    norm, branch = cache
    straight = dout  # d(x)/dx is the identity
    through_branch = norm.backward(branch.backward(dout))
    return straight + through_branch  # x feeds two paths: their gradients add


def post_norm_residual_forward(x, norm, branch, *branch_args):
    return norm.forward(x + branch.forward(x, *branch_args)), (norm, branch)


def post_norm_residual_backward(dout, cache):
    norm, branch = cache
    dsum = norm.backward(dout)  # the gradient of s = x + branch(x)
    return dsum + branch.backward(dsum)
