"""Lesson 00, language models: softmax and cross-entropy, the two ops that turn scores into a
probability and a probability into a loss (`minilm.numpy.functional`'s op pairs), and the bigram
model fitted by counting with its cross-entropy (`minilm.bigram`).

Tolerances (float64, the metric of `framework.max_error`): TORCH_TOL = 1e-10 against PyTorch
(the same mathematics, rounded differently), FD_TOL = 1e-8 against fourth-order central
differences (truncation and roundoff both ~1e-12 here). Worst seen over 300 examples per property
with the library's own op pairs: 6e-11 (finite differences), 2e-14 (torch). The bigram's
oracles count pairs one at a time in plain Python (`counted_bigram_log_probs`) or loop over the
stream; they agree with minilm.bigram to rounding (COUNT_TOL = 1e-12).
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st

from minilm.check.framework import (
    as_array,
    as_float32,
    assert_close,
    assert_float32,
    assert_true,
    exercise,
    gradient_error,
    on_case,
    pair,
    prop,
)
from minilm.testing.oracles import (
    counted_bigram_log_probs,
    torch_forward_backward,
)
from minilm.testing.strategies import (
    bigram_cases,
    bigram_scoring_cases,
    cross_entropy_cases,
    seeds,
    softmax_cases,
)

LESSON = "00"
TORCH_TOL = 1e-10
FD_TOL = 1e-8
COUNT_TOL = 1e-12

exercise("softmax_forward", LESSON, "softmax_forward(x, axis=-1) -> (probs, cache)",
         "probabilities from scores along one axis")
exercise("softmax_backward", LESSON, "softmax_backward(dprobs, cache) -> dx",
         "the gradient of softmax, given the gradient of its output")
exercise("cross_entropy_forward", LESSON,
         "cross_entropy_forward(logits, targets, ignore_index=-100) -> (loss, cache)",
         "mean of -log p(target) over the targets that are not ignore_index")
exercise("cross_entropy_backward", LESSON, "cross_entropy_backward(cache, dloss=1.0) -> dlogits",
         "the gradient of the mean cross-entropy in the logits")
exercise("bigram_log_probs", LESSON, "bigram_log_probs(ids, vocab_size, smoothing=1.0) -> (V, V)",
         "log p(next | previous) by counting pairs, add-k smoothed (minilm.bigram)")
exercise("bigram_cross_entropy", LESSON, "bigram_cross_entropy(log_probs, ids) -> float",
         "mean of -log p(ids[t] | ids[t-1]) over the T-1 predicted tokens, in nats")


def upstream(case, shape):
    """The random upstream gradient of a backward check (every entry of it matters)."""
    return np.random.default_rng(case["seed"]).standard_normal(shape)


# ---------------------------------------------------------------- softmax


@prop("softmax_forward", "matches torch.softmax (float64)", softmax_cases(),
      hint="p = exp(x - max) / sum exp(x - max), taken along `axis` (keepdims=True)")
def softmax_matches_torch(impl, case):
    import torch

    probs = as_array(pair(impl.softmax_forward(case["x"], case["axis"]), "softmax_forward")[0],
                     "probs")
    expected = torch.softmax(torch.as_tensor(case["x"]), case["axis"]).numpy()
    assert_close("probs vs torch.softmax", expected, probs, TORCH_TOL)


@prop("softmax_forward", "rows sum to 1 and ignore a constant shift",
      st.tuples(softmax_cases(), st.floats(-50, 50)).map(lambda c: {**c[0], "shift": c[1]}),
      hint="normalise along `axis` only; softmax(x + c) = softmax(x) for a constant c per row")
def softmax_rows_sum_to_one(impl, case):
    x, axis = case["x"], case["axis"]
    probs = as_array(impl.softmax_forward(x, axis)[0], "probs")
    assert_true((probs >= 0).all(), "some probabilities are negative")
    assert_close("sum along axis", np.ones_like(probs.sum(axis=axis)), probs.sum(axis=axis), 1e-12)
    rng = np.random.default_rng(case["seed"])
    per_row = case["shift"] + rng.standard_normal(np.sum(x, axis=axis, keepdims=True).shape)
    shifted = as_array(impl.softmax_forward(x + per_row, axis)[0], "probs of x + c")
    assert_close("softmax(x + c) vs softmax(x)", probs, shifted, 1e-12)


@st.composite
def huge_logits(draw):
    """Rows of scores around +-1e4, where exp overflows to inf without the max subtraction."""
    vocab, seed = draw(st.integers(1, 6)), draw(seeds)
    rng = np.random.default_rng(seed)
    logits = rng.choice([-1e4, 1e4], size=(3, vocab)) + rng.standard_normal((3, vocab))
    return {"logits": logits, "targets": rng.integers(0, vocab, size=3)}


@prop("softmax_forward", "stays finite at scores of +-1e4",
      huge_logits().map(lambda case: {"x": case["logits"]}),
      hint="exp(1e4) overflows to inf: subtract each row's max before exp (it changes nothing)",
      nonfinite=True)
def softmax_is_stable(impl, case):
    import torch

    probs = as_array(impl.softmax_forward(case["x"], -1)[0], "probs")
    expected = torch.softmax(torch.as_tensor(case["x"]), -1).numpy()
    assert_close("probs at huge scores", expected, probs, TORCH_TOL)


@prop("softmax_backward", "is the gradient of your softmax_forward (finite differences)",
      softmax_cases(), needs=("softmax_forward",),
      hint="dx = p * (dp - sum(dp * p)), the sum along `axis` with keepdims=True")
def softmax_backward_is_the_gradient(impl, case):
    x, axis = case["x"], case["axis"]
    probs, cache = pair(impl.softmax_forward(x, axis), "softmax_forward")
    dout = upstream(case, np.shape(probs))
    dx = as_array(impl.softmax_backward(dout, cache), "dx")
    error = gradient_error(lambda: impl.softmax_forward(x, axis)[0], dout, {"dx": (x, dx)})
    assert_true(error <= FD_TOL, f"dx vs finite differences: error {error:.3g} > {FD_TOL:g}",
                error)


@prop("softmax_backward", "matches torch autograd (float64)", softmax_cases(),
      needs=("softmax_forward",), hint="dx = p * (dp - sum(dp * p)) along `axis`")
def softmax_backward_matches_torch(impl, case):
    import torch

    x, axis = case["x"], case["axis"]
    probs, cache = pair(impl.softmax_forward(x, axis), "softmax_forward")
    dout = upstream(case, np.shape(probs))
    _, (expected,) = torch_forward_backward(lambda t: torch.softmax(t, axis), [x], dout)
    assert_close("dx vs torch autograd", expected, impl.softmax_backward(dout, cache), TORCH_TOL)


@prop("softmax_backward", "float32 inputs give float32 probabilities and gradients",
      softmax_cases().map(as_float32), needs=("softmax_forward",), max_examples=5,
      hint="keep the inputs' dtype: every step of softmax and its gradient works in it")
def softmax_keeps_float32(impl, case):
    probs, cache = pair(impl.softmax_forward(case["x"], case["axis"]), "softmax_forward")
    dx = impl.softmax_backward(upstream(case, np.shape(probs)).astype(np.float32), cache)
    assert_float32(probs=probs, dx=dx)


# ---------------------------------------------------------------- cross-entropy


def torch_cross_entropy(logits, targets, ignore_index):
    import torch

    vocab = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, vocab), torch.as_tensor(targets.reshape(-1)), ignore_index=ignore_index)


def cross_entropy(impl, case):
    """(loss as a float, cache) of the implementation on the case."""
    loss, cache = pair(impl.cross_entropy_forward(case["logits"], case["targets"],
                                                  case["ignore_index"]), "cross_entropy_forward")
    return float(as_array(loss, "loss")), cache


@prop("cross_entropy_forward", "matches torch's cross_entropy (mean over kept targets)",
      cross_entropy_cases().filter(lambda c: (c["targets"] != c["ignore_index"]).any()),
      hint="loss = -mean of log softmax(logits)[target] over positions whose target is kept")
def cross_entropy_matches_torch(impl, case):
    import torch

    loss, _ = cross_entropy(impl, case)
    expected = torch_cross_entropy(torch.as_tensor(case["logits"]), case["targets"],
                                   case["ignore_index"]).item()
    assert_close("loss vs torch", expected, loss, TORCH_TOL)


@prop("cross_entropy_forward", "ignores the targets equal to ignore_index", cross_entropy_cases(),
      hint="drop positions whose target == ignore_index from both the sum and the count")
def cross_entropy_ignores(impl, case):
    # the drawn ignore_index, and always 0 too, a class id (a padding id): there "drop the negative
    # targets" is not the rule, whichever ignore_index the draw gave
    as_class_id = {**case, "ignore_index": 0,
                   "targets": np.where(case["targets"] == case["ignore_index"], 0, case["targets"])}
    for each in (case, as_class_id):
        with on_case(each):
            loss, _ = cross_entropy(impl, each)
            ignored = each["targets"] == each["ignore_index"]
            changed = each["logits"].copy()
            changed[ignored] = 100 * np.random.default_rng(0).standard_normal(changed[ignored].shape)
            loss2, _ = cross_entropy(impl, {**each, "logits": changed})
            assert_close(f"loss after changing the logits of positions whose target is "
                         f"ignore_index={each['ignore_index']}", loss, loss2, 1e-12)
            if ignored.all():
                assert_true(loss == 0.0,
                            f"every target ignored: the loss must be 0 (not NaN), got {loss}")


@prop("cross_entropy_forward", "stays finite at logits of +-1e4", huge_logits(),
      hint="log softmax = x - m - log sum exp(x - m) with m = max x: never exp of a huge number",
      nonfinite=True)
def cross_entropy_is_stable(impl, case):
    import torch

    loss, _ = cross_entropy(impl, {**case, "ignore_index": -100})
    expected = torch_cross_entropy(torch.as_tensor(case["logits"]), case["targets"], -100).item()
    assert_close("loss at huge logits", expected, loss, 1e-12)


@prop("cross_entropy_backward", "is the gradient of your cross_entropy_forward",
      cross_entropy_cases(), needs=("cross_entropy_forward",),
      hint="dlogits = dloss * (softmax - onehot(target)) / n_kept on kept rows, 0 on ignored rows")
def cross_entropy_backward_is_the_gradient(impl, case):
    _, cache = cross_entropy(impl, case)
    dlogits = as_array(impl.cross_entropy_backward(cache, case["dloss"]), "dlogits")
    error = gradient_error(lambda: case["dloss"] * cross_entropy(impl, case)[0], 1.0,
                           {"dlogits": (case["logits"], dlogits)})
    assert_true(error <= FD_TOL, f"dlogits vs finite differences: error {error:.3g} > {FD_TOL:g}",
                error)
    ignored = case["targets"] == case["ignore_index"]
    assert_true(not dlogits[ignored].any(), "ignored positions received a gradient")


@prop("cross_entropy_backward", "matches torch autograd (float64)",
      cross_entropy_cases().filter(lambda c: (c["targets"] != c["ignore_index"]).any()),
      needs=("cross_entropy_forward",), hint="divide by the number of kept targets, times dloss")
def cross_entropy_backward_matches_torch(impl, case):
    _, cache = cross_entropy(impl, case)
    dlogits = impl.cross_entropy_backward(cache, case["dloss"])
    _, (expected,) = torch_forward_backward(
        lambda t: torch_cross_entropy(t, case["targets"], case["ignore_index"]),
        [case["logits"]], np.float64(case["dloss"]))
    assert_close("dlogits vs torch autograd", expected, dlogits, TORCH_TOL)


@prop("cross_entropy_backward", "stays finite at logits of +-1e4", huge_logits(),
      needs=("cross_entropy_forward",), nonfinite=True,
      hint="the gradient is softmax - onehot: compute softmax with the max subtracted")
def cross_entropy_backward_is_stable(impl, case):
    case = {**case, "ignore_index": -100}
    _, cache = cross_entropy(impl, case)
    dlogits = impl.cross_entropy_backward(cache, 1.0)
    _, (expected,) = torch_forward_backward(
        lambda t: torch_cross_entropy(t, case["targets"], -100), [case["logits"]], np.float64(1.0))
    assert_close("dlogits at huge logits", expected, dlogits, TORCH_TOL)


@prop("cross_entropy_backward", "float32 logits give float32 gradients",
      cross_entropy_cases().map(as_float32), needs=("cross_entropy_forward",), max_examples=5,
      hint="keep the logits' dtype: np.zeros_like(logits), not np.zeros(logits.shape)")
def cross_entropy_keeps_float32(impl, case):
    _, cache = cross_entropy(impl, case)
    assert_float32(dlogits=impl.cross_entropy_backward(cache, case["dloss"]))


# ---------------------------------------------------------------- the bigram model (minilm.bigram)


def bigram_table(impl, case, smoothing=None):
    """The implementation's (V, V) table on the case's stream, checked for its shape."""
    vocab = case["vocab_size"]
    k = case["smoothing"] if smoothing is None else smoothing
    table = as_array(impl.bigram_log_probs(case["ids"], vocab, k), "log_probs")
    assert_true(table.shape == (vocab, vocab),
                f"shape {table.shape}, expected (vocab_size, vocab_size) = ({vocab}, {vocab})")
    return table.astype(np.float64)


@prop("bigram_log_probs", "each row is a distribution over the next token", bigram_cases(),
      hint="row a is p(next | previous = a): divide (counts + k) by that row's own total, "
           "n(a) + k V")
def bigram_rows_are_distributions(impl, case):
    table = bigram_table(impl, case)
    assert_true(not np.isnan(table).any(), "NaN in the table (0 / 0 for a row never seen? "
                                           "such a row is uniform)")
    assert_true((table <= 1e-12).all(), "a log-probability above 0 (probabilities, not logs?)")
    vocab = case["vocab_size"]
    assert_close("exp(log_probs).sum(axis=1), the total of each row", np.ones(vocab),
                 np.exp(table).sum(axis=1), COUNT_TOL)


@prop("bigram_log_probs", "matches log((n(a, b) + k) / (n(a) + k V)), every pair counted",
      bigram_cases(),
      hint="count every occurrence of (ids[t], ids[t+1]) (np.add.at or np.bincount; "
           "counts[a, b] += 1 counts a repeated pair once), then take natural logs")
def bigram_matches_counting(impl, case):
    table = bigram_table(impl, case)
    expected = counted_bigram_log_probs(case["ids"], case["vocab_size"], case["smoothing"])
    never = np.isneginf(expected)  # pairs never seen, without smoothing
    assert_true(np.array_equal(np.isneginf(table), never),
                f"log-probability -inf at {np.argwhere(np.isneginf(table)).tolist()}, expected "
                f"exactly at the pairs never seen without smoothing {np.argwhere(never).tolist()}")
    assert_close("log-probabilities vs counting pair by pair", np.where(never, 0, expected),
                 np.where(never, 0, table), COUNT_TOL)


@prop("bigram_log_probs", "without smoothing, no table gives its training text a lower loss",
      bigram_cases(min_length=2).map(lambda c: {**c, "smoothing": 0.0}),
      hint="smoothing=0 means the plain counts n(a, b) / n(a): the maximum-likelihood table")
def bigram_is_the_maximum_likelihood(impl, case):
    """The training cross-entropy of the table equals the minimum over all tables,
    -sum_ab n(a, b) / (T - 1) log(n(a, b) / n(a)) (Gibbs' inequality, row by row)."""
    ids = case["ids"]
    table = bigram_table(impl, case)
    counts = np.zeros((case["vocab_size"],) * 2)
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    seen = counts > 0
    rows = np.maximum(counts.sum(axis=1, keepdims=True), 1)  # n(a); rows never seen do not count
    minimum = -(counts[seen] * np.log((counts / rows)[seen])).sum()
    loss = -table[ids[:-1], ids[1:]].mean()
    assert_close("training cross-entropy vs its minimum", minimum / (len(ids) - 1), loss,
                 COUNT_TOL)


def bigram_loss(impl, case, log_probs):
    loss = as_array(impl.bigram_cross_entropy(log_probs, case["ids"]), "loss")
    assert_true(loss.size == 1, f"expected one number, got an array of shape {loss.shape}")
    return float(loss.reshape(()))


@prop("bigram_cross_entropy", "is the mean of -log p(ids[t] | ids[t-1]) over the T-1 predictions",
      bigram_scoring_cases(),
      hint="-log_probs[ids[:-1], ids[1:]].mean(): row = the previous token, column = the next")
def bigram_cross_entropy_is_the_mean(impl, case):
    ids, log_probs = case["ids"], case["log_probs"]
    expected = -sum(log_probs[a, b] for a, b in itertools.pairwise(ids)) / (len(ids) - 1)
    assert_close("loss vs the mean over the pairs", expected, bigram_loss(impl, case, log_probs),
                 COUNT_TOL)


@prop("bigram_cross_entropy", "a uniform model scores ln V nats on any text",
      bigram_scoring_cases(),
      hint="average over the T-1 predicted tokens (the first one is not predicted), in nats "
           "(natural log)")
def bigram_cross_entropy_of_uniform(impl, case):
    vocab = len(case["log_probs"])
    uniform = np.full((vocab, vocab), -np.log(vocab))
    assert_close(f"loss of the uniform model over V = {vocab}", np.log(vocab),
                 bigram_loss(impl, case, uniform), COUNT_TOL)
