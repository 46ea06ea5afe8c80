"""Lesson 02, the Transformer block: the op pairs a block is built from — linear, embedding,
layer norm, GELU and dropout (`minilm.numpy.functional`) — then the fixed sinusoidal positions and
the two residual sub-layers, pre-LN and post-LN (`minilm.numpy.layers`).

Each op's forward against PyTorch (float64, TORCH_TOL = 1e-10), each backward against finite
differences of the learner's own forward (FD_TOL = 1e-8) and against torch autograd; dropout, which
is random, by its statistics and by drawing its mask from the rng it is given, its backward by
finite differences with that mask. The positions against their formula evaluated entry by entry
(1e-10: sin and cos of angles up to 40 radians). The residual sub-layers wrap the library's own
LayerNorm and branch (a feed-forward or attention layer, float64): the forward against its formula,
the backward's dx and the parameter gradients it leaves against finite differences (FD_TOL; worst
seen over 300 examples with the library: 4e-11).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from minilm.check.exercises.language_models import FD_TOL, TORCH_TOL, upstream
from minilm.check.framework import (
    Failure,
    as_array,
    as_float32,
    assert_close,
    assert_float32,
    assert_true,
    exercise,
    gradient_error,
    pair,
    prop,
    returned,
)
from minilm.config import ModelConfig
from minilm.numpy.layers import Branch, FeedForward, LayerNorm, MultiHeadAttention, ParameterStore
from minilm.testing.oracles import (
    numerical_gradient,
    randomise,
    torch_forward_backward,
)
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
        named = {f"d{key}": (case[key], g) for key, g in zip(inputs(case), grads)}
        error = gradient_error(lambda: forward_call(impl, case)[0], dout, named)
        assert_true(error <= FD_TOL, f"gradients vs finite differences: error {error:.3g} > "
                                     f"{FD_TOL:g}", error)

    @prop(f"{name}_backward", "float32 inputs give float32 outputs and gradients",
          strategies[name].map(as_float32), needs=(f"{name}_forward",), max_examples=5,
          hint="keep the inputs' dtype: np.zeros_like(x), not np.zeros(x.shape)")
    def keeps_float32(impl, case):
        out, cache = pair(forward_call(impl, case), f"{name}_forward")
        dout = upstream(case, np.shape(out)).astype(np.float32)
        grads = backward_call(impl, dout, cache)
        assert_float32(out=out, **{f"d{key}": g for key, g in zip(inputs(case), grads)})

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
    grads = returned(impl.linear_backward(upstream(case, np.shape(out)), cache), "linear_backward",
                     ("dx", "dweight", "dbias"), arrays=False)
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


@prop("dropout_forward", "draws its mask from the rng it is given (same seed, same mask)",
      st.tuples(st.sampled_from([0.1, 0.5, 0.9]), seeds).map(
          lambda c: {"x": np.ones(1000), "p": c[0], "rng_seed": c[1]}),
      max_examples=5,
      hint="keep = rng.random(x.shape) >= p with the rng argument, not np.random or a new "
           "default_rng(): the backward and a rerun need the same mask")
def dropout_uses_its_rng(impl, case):
    """Two independent masks of 1000 entries agree with probability at most 0.82^1000."""
    first, second = (as_array(_dropout_forward(impl, case)[0], "out") for _ in range(2))
    assert_true(np.array_equal(first, second),
                "two calls with generators of the same seed gave different masks")


# With the mask fixed by the generator's seed, dropout is linear in x: finite differences are exact,
# and there is no independent torch function of the learner's own mask to compare with.
backward_checks("dropout", _dropout_forward, _dropout_backward, lambda case: ["x"], None,
                "dx = dout * mask / (1 - p) with the forward's mask (keep it in the cache)")


# ---------------------------------------------------------------- sinusoidal positions

exercise("sinusoidal_positions", LESSON, "sinusoidal_positions(max_len, dim) -> table",
         "PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C))")


@st.composite
def position_table_cases(draw):
    """Tables of 1..40 positions and 1..33 channels, odd widths included."""
    return {"max_len": draw(st.integers(1, 40)), "dim": draw(st.integers(1, 33))}


def _positions(impl, case):
    return as_array(impl.sinusoidal_positions(case["max_len"], case["dim"]), "table")


@prop("sinusoidal_positions", "matches sin(t w_i), cos(t w_i) with w_i = 10000^(-2i/C)",
      position_table_cases(),
      hint="even channel 2i holds sin(t * w_i) and odd channel 2i+1 holds cos(t * w_i), with the "
           "same w_i = 10000 ** (-2i / dim) for both; an odd dim has no last cosine")
def positions_match_the_formula(impl, case):
    """Against the formula evaluated one entry at a time with `math` (independent of NumPy)."""
    max_len, dim = case["max_len"], case["dim"]
    expected = np.empty((max_len, dim))
    for t in range(max_len):
        for channel in range(dim):
            rate = 10000.0 ** (-(channel - channel % 2) / dim)
            expected[t, channel] = (math.sin if channel % 2 == 0 else math.cos)(t * rate)
    assert_close("table", expected, _positions(impl, case), 1e-10)


@prop("sinusoidal_positions", "moving k positions on is the same rotation at every t",
      position_table_cases().filter(lambda c: c["max_len"] >= 3 and c["dim"] >= 2),
      hint="each channel pair (2i, 2i+1) must be (sin, cos) of the same angle t * w_i")
def positions_shift_is_a_rotation(impl, case):
    """sin((t+k)w) = sin(tw) cos(kw) + cos(tw) sin(kw) and cos((t+k)w) = cos(tw) cos(kw) -
    sin(tw) sin(kw): with (sin kw, cos kw) read from row k of the table itself, row t + k must be
    that rotation of row t, for every t. This is why a model can read relative offsets."""
    table = _positions(impl, case)
    pairs = case["dim"] // 2
    sin, cos = table[:, 0:2 * pairs:2], table[:, 1:2 * pairs:2]  # (T, pairs) each
    for k in range(1, case["max_len"]):
        sin_k, cos_k = sin[k], cos[k]  # the rotation by k positions, per pair
        rotated_sin = sin[:-k] * cos_k + cos[:-k] * sin_k
        rotated_cos = cos[:-k] * cos_k - sin[:-k] * sin_k
        assert_close(f"sin channels of rows t + {k} vs the rotation of rows t", rotated_sin,
                     sin[k:], 1e-10)
        assert_close(f"cos channels of rows t + {k} vs the rotation of rows t", rotated_cos,
                     cos[k:], 1e-10)


# ---------------------------------------------------------------- residual sub-layers

exercise("pre_norm_residual_forward", LESSON,
         "pre_norm_residual_forward(x, norm, branch, *branch_args) -> (y, cache)",
         "pre-LN (GPT-2): y = x + branch(norm(x)), with the layers' .forward")
exercise("pre_norm_residual_backward", LESSON, "pre_norm_residual_backward(dout, cache) -> dx",
         "the gradient in x: straight through plus through the branch (and the norm)")
exercise("post_norm_residual_forward", LESSON,
         "post_norm_residual_forward(x, norm, branch, *branch_args) -> (y, cache)",
         "post-LN (BERT): y = norm(x + branch(x))")
exercise("post_norm_residual_backward", LESSON, "post_norm_residual_backward(dout, cache) -> dx",
         "the gradient in x: through the norm, then straight through plus through the branch")

@st.composite
def residual_cases(draw):
    """A sub-layer to wrap: a LayerNorm and a branch (a GELU feed-forward, or multi-head attention
    that is causal or not, which receives `causal` through *branch_args), x (B, T, C), weights of
    a trained-looking scale, and a seed for the upstream gradient. C >= 4, as in
    `model_configs`: LayerNorm over 2 channels is too sharply curved for finite differences."""
    heads = draw(st.integers(1, 2))
    return {"batch": draw(st.integers(1, 2)), "time": draw(st.integers(1, 4)),
            "channels": heads * draw(st.integers(4 // heads, 6 // heads)), "heads": heads,
            "d_ff": draw(st.integers(2, 8)), "branch": draw(st.sampled_from(["ff", "attention"])),
            "causal": draw(st.booleans()), "activation": draw(st.sampled_from(["gelu", "gelu_tanh"])),
            "eps": draw(st.sampled_from([1e-5, 1e-12])), "weights_seed": draw(seeds),
            "seed": draw(seeds)}


def residual_parts(case):
    """(x, norm, branch, branch_args, store) for a case: the library's own layers, float64, in a
    ParameterStore whose `grads` the layers' backward fill."""
    config = ModelConfig(vocab_size=2, max_len=case["time"], d_model=case["channels"],
                         n_heads=case["heads"], n_layers=1, d_ff=case["d_ff"],
                         activation=case["activation"], layer_norm_eps=case["eps"])
    store, rng = ParameterStore(np.float64), np.random.default_rng(case["weights_seed"])
    norm = LayerNorm(store, "norm", config.d_model, config.layer_norm_eps)
    if case["branch"] == "ff":
        layer, branch_args = FeedForward(store, "ff.in", "ff.out", config, rng, 0.02), ()
    else:
        layer = MultiHeadAttention(store, "attn.qkv", "attn.out", config, rng, 0.02)
        branch_args = (None, case["causal"])  # attn_mask, causal
    randomise(store, case["weights_seed"])
    x = rng.standard_normal((case["batch"], case["time"], case["channels"]))
    return x, norm, Branch(layer, 0.0, rng), branch_args, store


def _residual_forward(kind):
    def forward(impl, x, norm, branch, branch_args):
        out, cache = pair(getattr(impl, f"{kind}_residual_forward")(x, norm, branch, *branch_args),
                          f"{kind}_residual_forward")
        return as_array(out, "y"), cache
    return forward


def residual_properties(kind, formula, reference, forward_hint, backward_hint):
    """The three properties of a residual sub-layer (`kind` "pre_norm" or "post_norm"): its
    forward against `reference(x, norm, branch, branch_args)` computed with the layers directly,
    its backward's dx and the parameter gradients it leaves in the layers, both against finite
    differences of the learner's own forward."""
    forward_name, backward_name = f"{kind}_residual_forward", f"{kind}_residual_backward"
    forward = _residual_forward(kind)

    @prop(forward_name, f"is {formula}", residual_cases(), hint=forward_hint)
    def forward_is_the_formula(impl, case):
        x, norm, branch, branch_args, _ = residual_parts(case)
        y, _ = forward(impl, x, norm, branch, branch_args)
        assert_close("y", reference(x, norm, branch, branch_args), y, 1e-12)

    def backward(impl, case):
        """(x, dout, dx, store, loss) with the store's grads filled by the learner's backward."""
        x, norm, branch, branch_args, store = residual_parts(case)
        y, cache = forward(impl, x, norm, branch, branch_args)
        dout = upstream(case, y.shape)
        store.zero_grad()
        dx = as_array(getattr(impl, backward_name)(dout, cache), "dx")
        loss = lambda: forward(impl, x, norm, branch, branch_args)[0]
        return x, dout, dx, store, loss

    @prop(backward_name, f"is the gradient of your {forward_name} in x (finite differences)",
          residual_cases(), needs=(forward_name,), hint=backward_hint, max_examples=15)
    def backward_is_the_gradient(impl, case):
        x, dout, dx, _, loss = backward(impl, case)
        error = gradient_error(loss, dout, {"dx": (x, dx)})
        assert_true(error <= FD_TOL, f"dx vs finite differences: error {error:.3g} > "
                                              f"{FD_TOL:g}", error)

    @prop(backward_name, "fills the parameter gradients of norm and branch (finite differences)",
          residual_cases(), needs=(forward_name,), max_examples=8,
          hint="call norm.backward and branch.backward exactly once each: they add into grads")
    def backward_fills_parameter_gradients(impl, case):
        """Finite differences at 3 entries of each parameter (every entry would cost a forward
        per entry): enough to see a gradient that is missing, doubled or misplaced."""
        _, dout, _, store, loss = backward(impl, case)
        rng = np.random.default_rng(case["seed"])
        objective = lambda _: float(np.sum(loss() * dout))
        for name, param in store.params.items():
            probe = rng.choice(param.size, size=min(3, param.size), replace=False)
            expected = numerical_gradient(objective, param, indices=probe)
            assert_close(f"grads[{name!r}] at flat indices {probe.tolist()} vs finite differences",
                         expected, store.grads[name].reshape(-1)[probe], FD_TOL)


def _pre_norm_reference(x, norm, branch, branch_args):
    return x + branch.forward(norm.forward(x), *branch_args)


def _post_norm_reference(x, norm, branch, branch_args):
    return norm.forward(x + branch.forward(x, *branch_args))


residual_properties(
    "pre_norm", "x + branch(norm(x))", _pre_norm_reference,
    forward_hint="normalise only the branch's input: y = x + branch.forward(norm.forward(x), "
                 "*branch_args); the skip path carries x itself",
    backward_hint="y = x + f(x) sends dout two ways and the gradients add: "
                  "dx = dout + norm.backward(branch.backward(dout))")
residual_properties(
    "post_norm", "norm(x + branch(x))", _post_norm_reference,
    forward_hint="add first, normalise the sum: y = norm.forward(x + branch.forward(x, "
                 "*branch_args))",
    backward_hint="first through the norm, dsum = norm.backward(dout); then both ways: "
                  "dx = dsum + branch.backward(dsum)")
