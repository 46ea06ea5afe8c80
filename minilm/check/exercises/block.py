"""Lesson 02, the Transformer block: the op pairs a block is built from — linear, embedding,
layer norm, GELU and dropout (`minilm.numpy.functional`).

Each forward against PyTorch (float64, TORCH_TOL = 1e-10), each backward against finite
differences of the learner's own forward (FD_TOL = 1e-8) and against torch autograd.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from minilm.check.exercises.language_models import FD_TOL, TORCH_TOL, upstream
from minilm.check.framework import (
    Failure,
    as_array,
    assert_close,
    assert_true,
    exercise,
    pair,
    prop,
)
from minilm.testing.oracles import finite_difference_error, torch_forward_backward
from minilm.testing.strategies import (
    dropout_cases,
    embedding_cases,
    gelu_cases,
    layer_norm_cases,
    linear_cases,
    seeds,
)

LESSON = "02"

exercise("linear_forward", LESSON, "linear_forward(x, weight, bias=None) -> (out, cache)",
         "y = x W^T + b, W stored (out_features, in_features)")
exercise("linear_backward", LESSON, "linear_backward(dout, cache) -> (dx, dweight, dbias)",
         "gradients of a linear layer; dbias is None without a bias")
exercise("embedding_forward", LESSON, "embedding_forward(ids, weight) -> (out, cache)",
         "rows of the table: y = W[ids]")
exercise("embedding_backward", LESSON, "embedding_backward(dout, cache) -> dweight",
         "every position's gradient added into its id's row")
exercise("layer_norm_forward", LESSON,
         "layer_norm_forward(x, weight, bias, eps=1e-5) -> (out, cache)",
         "normalise the last axis to mean 0, variance 1, then scale and shift")
exercise("layer_norm_backward", LESSON, "layer_norm_backward(dout, cache) -> (dx, dweight, dbias)",
         "gradients of layer norm, through the mean and the variance")
exercise("gelu_forward", LESSON, 'gelu_forward(x, approximate="none") -> (out, cache)',
         'x * Phi(x) ("none", BERT) or its tanh approximation ("tanh", GPT-2)')
exercise("gelu_backward", LESSON, "gelu_backward(dout, cache) -> dx",
         "the derivative of the GELU form the forward used")
exercise("dropout_forward", LESSON, "dropout_forward(x, p, rng=None, training=True) -> (out, cache)",
         "inverted dropout: zero with probability p, scale the rest by 1/(1-p)")
exercise("dropout_backward", LESSON, "dropout_backward(dout, cache) -> dx",
         "the same mask and scale on the way back")


def backward_checks(name, forward_call, backward_call, inputs, torch_fn, hint):
    """Register the backward properties of an op pair: the gradient of the learner's own
    forward (finite differences), and (unless `torch_fn` is None) torch autograd of `torch_fn` on
    the same inputs.

    forward_call(impl, case) -> (out, cache); backward_call(impl, dout, cache) -> gradients in
    the order of `inputs` (the case's keys they differentiate)."""

    def run(impl, case):
        out, cache = pair(forward_call(impl, case), f"{name}_forward")
        dout = upstream(case, np.shape(out))
        grads = backward_call(impl, dout, cache)
        return dout, [as_array(g, f"d{key}") for key, g in zip(inputs(case), grads)]

    @prop(f"{name}_backward", f"is the gradient of your {name}_forward (finite differences)",
          strategies[name], needs=(f"{name}_forward",), hint=hint)
    def is_the_gradient(impl, case):
        dout, grads = run(impl, case)
        pairs = [(case[key], g) for key, g in zip(inputs(case), grads)]
        error = finite_difference_error(lambda: forward_call(impl, case)[0], dout, pairs)
        assert_true(error <= FD_TOL, f"gradients vs finite differences: error {error:.3g} > "
                                     f"{FD_TOL:g}", error)

    if torch_fn is None:
        return

    @prop(f"{name}_backward", "matches torch autograd (float64)", strategies[name],
          needs=(f"{name}_forward",), hint=hint)
    def matches_torch(impl, case):
        dout, grads = run(impl, case)
        _, expected = torch_forward_backward(lambda *t: torch_fn(case, *t),
                                             [case[key] for key in inputs(case)], dout)
        for key, mine, theirs in zip(inputs(case), grads, expected):
            assert_close(f"d{key} vs torch autograd", theirs, mine, TORCH_TOL)


def forward_matches_torch(name, forward_call, inputs, torch_fn, hint, strategy=None):
    """Register "matches torch (float64)" for an op's forward."""

    @prop(f"{name}_forward", "matches torch (float64)",
          strategies[name] if strategy is None else strategy, hint=hint)
    def matches(impl, case):
        import torch

        out = as_array(pair(forward_call(impl, case), f"{name}_forward")[0], "out")
        expected = torch_fn(case, *(torch.as_tensor(case[key]) for key in inputs(case)))
        assert_close("out vs torch", expected.numpy(), out, TORCH_TOL)


strategies = {"linear": linear_cases(), "embedding": embedding_cases(),
              "layer_norm": layer_norm_cases(), "gelu": gelu_cases(), "dropout": dropout_cases()}


def _functional():
    import torch

    return torch.nn.functional


# ---------------------------------------------------------------- linear


def _linear_inputs(case):
    return ["x", "weight"] + ([] if case["bias"] is None else ["bias"])


def _linear_forward(impl, case):
    return impl.linear_forward(case["x"], case["weight"], case["bias"])


def _linear_backward(impl, dout, cache):
    dx, dweight, dbias = impl.linear_backward(dout, cache)
    return [dx, dweight] + ([] if dbias is None else [dbias])


def _torch_linear(case, *tensors):
    return _functional().linear(*tensors)


forward_matches_torch("linear", _linear_forward, _linear_inputs, _torch_linear,
                      "out = x @ weight.T (+ bias): weight is (out_features, in_features)")
backward_checks("linear", _linear_forward, _linear_backward, _linear_inputs, _torch_linear,
                "dx = dout @ W; dW = dout^T x summed over every leading axis; db = sum of dout")


@prop("linear_backward", "dbias is None exactly when there is no bias", linear_cases(),
      needs=("linear_forward",), hint="return (dx, dweight, None) when bias is None")
def linear_bias_gradient_presence(impl, case):
    out, cache = pair(_linear_forward(impl, case), "linear_forward")
    grads = impl.linear_backward(upstream(case, np.shape(out)), cache)
    assert_true(isinstance(grads, tuple) and len(grads) == 3,
                "linear_backward must return (dx, dweight, dbias)")
    assert_true((case["bias"] is None) == (grads[2] is None),
                f"bias {'absent' if case['bias'] is None else 'given'} but dbias is "
                f"{'None' if grads[2] is None else 'an array'}")


# ---------------------------------------------------------------- embedding


def _embedding_forward(impl, case):
    return impl.embedding_forward(case["ids"], case["weight"])


def _torch_embedding(case, weight):
    import torch

    return _functional().embedding(torch.as_tensor(case["ids"]), weight)


forward_matches_torch("embedding", _embedding_forward, lambda case: ["weight"], _torch_embedding,
                      "out = weight[ids]: one row per id, any shape of ids")
backward_checks("embedding", _embedding_forward,
                lambda impl, dout, cache: [impl.embedding_backward(dout, cache)],
                lambda case: ["weight"], _torch_embedding,
                "np.add.at(dweight, ids, dout): an id that appears twice gets both gradients")


# ---------------------------------------------------------------- layer norm


def _layer_norm_forward(impl, case):
    return impl.layer_norm_forward(case["x"], case["weight"], case["bias"], case["eps"])


def _torch_layer_norm(case, x, weight, bias):
    return _functional().layer_norm(x, (x.shape[-1],), weight, bias, case["eps"])


def _layer_norm_inputs(case):
    return ["x", "weight", "bias"]


forward_matches_torch("layer_norm", _layer_norm_forward, _layer_norm_inputs, _torch_layer_norm,
                      "(x - mean) / sqrt(var + eps) over the last axis, biased variance "
                      "(divide by C, not C - 1), then * weight + bias")
@prop("layer_norm_forward", "normalises each row to mean 0 and variance 1 (biased)",
      layer_norm_cases().map(lambda c: {**c, "eps": 1e-12}),
      hint="the variance divides by C (np.var's default), not C - 1")
def layer_norm_normalises(impl, case):
    channels = case["x"].shape[-1]
    out = as_array(impl.layer_norm_forward(case["x"], np.ones(channels), np.zeros(channels),
                                           case["eps"])[0], "out")
    assert_close("row means", np.zeros(out.shape[:-1]), out.mean(axis=-1), 1e-10)
    assert_close("row variances", np.ones(out.shape[:-1]), out.var(axis=-1), 1e-8)


backward_checks("layer_norm", _layer_norm_forward,
                lambda impl, dout, cache: impl.layer_norm_backward(dout, cache),
                _layer_norm_inputs, _torch_layer_norm,
                "dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / std, "
                "dxhat = dout * weight: both mean terms matter")


# ---------------------------------------------------------------- GELU


def _gelu_forward(impl, case):
    return impl.gelu_forward(case["x"], case["approximate"])


def _torch_gelu(case, x):
    return _functional().gelu(x, approximate=case["approximate"])


forward_matches_torch("gelu", _gelu_forward, lambda case: ["x"], _torch_gelu,
                      'approximate="none": x * Phi(x) = x * (1 + erf(x / sqrt 2)) / 2; "tanh": '
                      "x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))", gelu_cases(-6.0, 6.0))
backward_checks("gelu", _gelu_forward, lambda impl, dout, cache: [impl.gelu_backward(dout, cache)],
                lambda case: ["x"], _torch_gelu,
                "the derivative of the form the forward used: Phi(x) + x phi(x) for 'none', "
                "the tanh form's own derivative for 'tanh' (keep the form in the cache)")


# ---------------------------------------------------------------- dropout


def _dropout_forward(impl, case, training=True):
    """The forward with a fresh generator of the case's seed: the same mask on every call, as
    finite differences need."""
    return impl.dropout_forward(case["x"], case["p"], np.random.default_rng(case["rng_seed"]),
                                training)


def _dropout_backward(impl, dout, cache):
    return [impl.dropout_backward(dout, cache)]


@prop("dropout_forward", "zeroes with probability p and scales the rest by 1/(1-p)",
      st.tuples(st.floats(0.05, 0.9), seeds).map(lambda c: {"p": c[0], "rng_seed": c[1]}),
      max_examples=10,
      hint="keep = rng.random(x.shape) >= p; out = x * keep / (1 - p)")
def dropout_statistics(impl, case):
    """On x = 1 with n = 20000 entries: every output is 0 or 1/(1-p); the mean m has E[m] = 1 and
    sd(m) = sqrt(p / ((1 - p) n)), asserted within 6 sd (fails by chance with probability ~2e-9);
    the zeroed fraction within 6 sd of p."""
    n, p = 20_000, case["p"]
    out = as_array(impl.dropout_forward(np.ones(n), p, np.random.default_rng(case["rng_seed"]))[0],
                   "out")
    values = set(np.unique(out).tolist())
    if not values <= {0.0, 1 / (1 - p)} and not np.allclose(sorted(values - {0.0}), 1 / (1 - p)):
        raise Failure(f"outputs on x = 1 are {sorted(values)[:4]}, expected 0 and 1/(1-p) = "
                      f"{1 / (1 - p):.4g}")
    sd = math.sqrt(p / ((1 - p) * n))
    assert_true(abs(out.mean() - 1) < 6 * sd, f"mean {out.mean():.4f}, expected 1 (the "
                                              f"expectation is kept) within {6 * sd:.4f}")
    dropped = (out == 0).mean()
    assert_true(abs(dropped - p) < 6 * math.sqrt(p * (1 - p) / n),
                f"zeroed fraction {dropped:.4f}, expected p = {p}")


@prop("dropout_forward", "is the identity in eval mode and with p = 0", dropout_cases(),
      hint="not training, or p == 0: return x unchanged, drawing nothing from rng")
def dropout_identity(impl, case):
    for training, p in ((False, case["p"]), (True, 0.0)):
        out = as_array(impl.dropout_forward(case["x"], p, np.random.default_rng(0), training)[0],
                       "out")
        assert_close(f"out (training={training}, p={p}) vs x", case["x"], out, 0.0)


# With the mask fixed by the generator's seed, dropout is linear in x: finite differences are exact,
# and there is no independent torch function of the learner's own mask to compare with.
backward_checks("dropout", _dropout_forward, _dropout_backward, lambda case: ["x"], None,
                "dx = dout * mask / (1 - p) with the forward's mask (keep it in the cache)")
