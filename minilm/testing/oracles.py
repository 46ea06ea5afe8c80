"""Oracles shared by the test suite and `minilm check`: finite differences, the error metric every
comparison uses, and weights of a trained-looking scale.
"""

import numpy as np


def numerical_gradient(f, x, eps=1e-4, indices=None):
    """Central finite differences of the scalar function f at the array x, fourth-order stencil:

        df/dx_i ~ [8 (f(x + h e_i) - f(x - h e_i)) - (f(x + 2h e_i) - f(x - 2h e_i))] / (12 h)

    with h = eps. Truncation error O(h^4), roundoff ~ |f| * 1e-16 / h. The plain two-point
    difference (error O(h^2)) has no step that keeps both small across whole models: h = 1e-5
    leaves ~1e-6 of truncation where a LayerNorm row is nearly constant, h = 1e-6 leaves ~1e-9
    of roundoff on gradients that are exactly zero. With h = 1e-4 both are ~1e-11 here.

    `f` is called as f(x) with x perturbed *in place* (so f may also read x through a closure, as
    when x is a model parameter); x is restored exactly afterwards. `indices`: flat indices to probe
    (default every entry). Returns the gradient shaped like x, or one value per index.
    """
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")

    def f_at(i, step):
        original = flat[i]
        flat[i] = original + step
        value = float(f(x))
        flat[i] = original
        return value

    probe = np.arange(flat.size) if indices is None else np.asarray(indices)
    grad = np.empty(probe.shape, dtype=np.float64)
    for n, i in enumerate(probe):
        near = f_at(i, eps) - f_at(i, -eps)
        far = f_at(i, 2 * eps) - f_at(i, -2 * eps)
        grad[n] = (8 * near - far) / (12 * eps)
    return grad.reshape(x.shape) if indices is None else grad


def relative_error(expected, actual, floor=1.0):
    """max|expected - actual| / max(floor, max|expected|).

    With floor=1 this is relative where values are large and absolute where they are small, so a
    gradient that must be exactly zero (a masked row, an ignored target) is checked too; floor=0
    makes it purely relative to the largest expected value."""
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"relative_error: shapes {expected.shape} and {actual.shape} differ")
    if expected.size == 0:
        return 0.0
    scale = max(floor, float(np.abs(expected).max()))
    if scale == 0:  # expected all zero and floor 0: any non-zero `actual` is an error
        return float(np.abs(actual).max())
    return float(np.abs(expected - actual).max() / scale)


def randomise(numpy_model, seed):
    """Weights of a trained-looking scale: matrices N(0, (1.5/sqrt(fan_in))^2), LayerNorm weights
    1 + N(0, 0.2^2), biases N(0, 0.2^2)."""
    rng = np.random.default_rng(seed)
    for name, value in numpy_model.params.items():
        if value.ndim == 2:
            value[...] = rng.normal(0.0, 1.5 / np.sqrt(value.shape[1]), value.shape)
        elif name.endswith(".weight"):
            value[...] = 1.0 + 0.2 * rng.normal(size=value.shape)
        else:
            value[...] = 0.2 * rng.normal(size=value.shape)
    return numpy_model
