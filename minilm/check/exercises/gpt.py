"""Lesson 03, GPT and causal language modelling: next-token batches (`minilm.data.clm_batch`), the
learning-rate schedule and one AdamW update with its decay rule (`minilm.numpy.optim`), and sampling
the next token (`minilm.generation.sample_next`).

Oracles: the definition itself (a batch's windows are read back from a stream of distinct ids), the
schedule's formula, `torch.optim.AdamW` in float64 (1e-12: the same operations in the same order),
the ndim rule on the parameters of real models, and counting for the random functions: a frequency
from n draws is asserted within 6 standard errors (plus 5 draws of slack for the normal
approximation at small counts), which fails by chance with probability below 1e-5 per token.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from minilm.check.framework import (
    Failure,
    as_array,
    assert_close,
    assert_true,
    exercise,
    max_error,
    on_case,
    prop,
    returned,
)
from minilm.testing.strategies import seeds

LESSON = "03"
TORCH_TOL = 1e-12

exercise("clm_batch", LESSON, "clm_batch(ids, batch_size, seq_len, rng) -> (inputs, targets)",
         "random windows of a token stream; the targets are the inputs shifted by one")
exercise("lr_schedule", LESSON,
         'lr_schedule(step, base_lr, total_steps, warmup_steps=0, decay="cosine", min_lr=0.0) -> lr',
         "linear warmup to base_lr, then cosine (or linear, or constant) decay to min_lr")
exercise("adamw_update", LESSON,
         "adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8, "
         "weight_decay=0.0) -> (param, exp_avg, exp_avg_sq)",
         "one AdamW step of one tensor: decoupled decay, moments, bias correction")
exercise("default_decay_rule", LESSON, "default_decay_rule(params) -> (name -> bool)",
         "which parameters AdamW decays: matrices and embeddings, not biases or LayerNorm")
exercise("sample_next", LESSON, "sample_next(logits, rng, temperature=1.0, top_k=None) -> ids",
         "the next token of each row: greedy at temperature 0, else sampled (optionally top-k)")


def within_counting_error(what: str, counts, probabilities, draws: int) -> None:
    """Failure unless every count is within 6 standard errors (+5) of draws * p, and exactly 0
    where p = 0."""
    for token, (count, p) in enumerate(zip(counts, probabilities)):
        if p == 0:
            assert_true(count == 0, f"{what}: token {token} has probability 0 but was drawn "
                                    f"{count} times in {draws}")
            continue
        expected, sd = draws * p, math.sqrt(draws * p * (1 - p))
        assert_true(abs(count - expected) <= 6 * sd + 5,
                    f"{what}: token {token} drawn {count} times in {draws}, expected "
                    f"{expected:.0f} +- {6 * sd + 5:.0f} (p = {p:.4f})")


# ---------------------------------------------------------------- next-token batches


@st.composite
def stream_cases(draw):
    """A stream of distinct ids (so that a window can be found in it again), a batch size, a
    sequence length and the windows' room to move."""
    seq_len, extra = draw(st.integers(1, 12)), draw(st.integers(0, 30))
    ids = np.random.default_rng(draw(seeds)).permutation(seq_len + 1 + extra)
    return {"ids": ids, "batch_size": draw(st.integers(1, 6)), "seq_len": seq_len,
            "rng_seed": draw(seeds)}


def _where(ids):
    """where[id] = the position of id in a stream of distinct ids (-1 for ids not in it)."""
    where = np.full(ids.max() + 1, -1)
    where[ids] = np.arange(len(ids))
    return where


def _batch(impl, case, batch_size=None):
    inputs, targets = impl.clm_batch(case["ids"], case["batch_size"] if batch_size is None
                                     else batch_size, case["seq_len"],
                                     np.random.default_rng(case["rng_seed"]))
    return as_array(inputs, "inputs"), as_array(targets, "targets")


@prop("clm_batch", "targets are the inputs shifted by one, both windows of the stream",
      stream_cases(), hint="take seq_len + 1 consecutive tokens from a random start s: inputs = "
                           "ids[s : s + T], targets = ids[s + 1 : s + T + 1]")
def targets_are_shifted_inputs(impl, case):
    inputs, targets = _batch(impl, case)
    shape = (case["batch_size"], case["seq_len"])
    assert_true(inputs.shape == shape and targets.shape == shape,
                f"inputs {inputs.shape} and targets {targets.shape}, expected {shape} each")
    assert_true(np.issubdtype(inputs.dtype, np.integer) and np.issubdtype(targets.dtype, np.integer),
                f"ids must be integers, got {inputs.dtype} and {targets.dtype}")
    ids, seq_len = case["ids"], case["seq_len"]
    where = _where(ids)
    for row, (x, y) in enumerate(zip(inputs, targets)):
        assert_true(x[0] in ids, f"row {row}: inputs hold ids that are not in the stream")
        start = where[x[0]]
        assert_true(np.array_equal(x, ids[start:start + seq_len]),
                    f"row {row}: inputs {x.tolist()} are not consecutive tokens of the stream")
        assert_true(np.array_equal(y, ids[start + 1:start + seq_len + 1]),
                    f"row {row}: targets {y.tolist()} are not the inputs shifted by one "
                    f"(expected {ids[start + 1:start + seq_len + 1].tolist()})")


@prop("clm_batch", "draws every window start equally often",
      stream_cases().map(lambda c: {**c, "ids": c["ids"][:c["seq_len"] + 1 + len(c["ids"]) % 4]}),
      max_examples=10,
      hint="a stream of n tokens has n - seq_len possible starts, 0 .. n - seq_len - 1 "
           "(rng.integers' high end is exclusive)")
def every_start_is_drawn(impl, case):
    """With n - seq_len = 1..4 possible starts and 4000 windows in one batch, each start's count
    within counting error of 4000 / (n - seq_len)."""
    draws = 4000
    inputs, _ = _batch(impl, case, batch_size=draws)
    assert_true(np.isin(inputs[:, 0], case["ids"]).all(), "inputs hold ids not in the stream")
    starts = _where(case["ids"])[inputs[:, 0]]
    n_starts = len(case["ids"]) - case["seq_len"]
    within_counting_error("window starts", np.bincount(starts, minlength=n_starts)[:n_starts],
                          np.full(n_starts, 1 / n_starts), draws)


@prop("clm_batch", "draws from the rng it is given (same seed, same batch)", stream_cases(),
      max_examples=10, hint="use rng.integers(...), not np.random: a run must be reproducible")
def batches_are_reproducible(impl, case):
    first, second = _batch(impl, case), _batch(impl, case)
    assert_true(all(np.array_equal(a, b) for a, b in zip(first, second)),
                "two calls with generators of the same seed gave different batches")


# ---------------------------------------------------------------- the learning-rate schedule


@st.composite
def schedule_cases(draw):
    total = draw(st.integers(1, 300))
    base = draw(st.floats(1e-4, 1.0))
    return {"total_steps": total, "warmup_steps": draw(st.integers(0, total)), "base_lr": base,
            "min_lr": base * draw(st.sampled_from([0.0, 0.1, 0.5])),
            "decay": draw(st.sampled_from(["cosine", "cosine", "linear", "constant"]))}


def _schedule(impl, case, step):
    lr = impl.lr_schedule(step, case["base_lr"], case["total_steps"], case["warmup_steps"],
                          case["decay"], case["min_lr"])
    return float(as_array(lr, f"lr at step {step}"))


@prop("lr_schedule", "warms up linearly: base_lr * (s + 1) / W for steps s < W", schedule_cases(),
      hint="(s + 1) / W, not s / W: the first step must not have lr = 0, and step W - 1 reaches "
           "base_lr")
def warmup_is_linear(impl, case):
    warmup = case["warmup_steps"]
    for step in range(warmup):
        expected = case["base_lr"] * (step + 1) / warmup
        assert_close(f"lr at step {step} of a {warmup}-step warmup", expected,
                     _schedule(impl, case, step), 1e-12, floor=0.0)


@prop("lr_schedule", "then decays from base_lr at s = W to min_lr at s = total_steps",
      schedule_cases(),
      hint="progress = (s - W) / (total - W) runs from 0 to 1 after the warmup; cosine: min_lr + "
           "(base_lr - min_lr) (1 + cos(pi progress)) / 2; min_lr from total_steps on")
def decay_follows_the_formula(impl, case):
    base, low, warmup, total = (case[k] for k in ("base_lr", "min_lr", "warmup_steps",
                                                  "total_steps"))
    for step in range(warmup, total + 3):
        if case["decay"] == "constant":
            expected = base
        elif step >= total:
            expected = low
        else:
            progress = (step - warmup) / (total - warmup)
            shape = (1 + math.cos(math.pi * progress)) / 2 if case["decay"] == "cosine" else (
                1 - progress)
            expected = low + (base - low) * shape
        assert_close(f"{case['decay']} lr at step {step} (warmup {warmup}, total {total})",
                     expected, _schedule(impl, case, step), 1e-12, floor=0.0)


# ---------------------------------------------------------------- AdamW


@st.composite
def adamw_cases(draw):
    """A parameter, a few steps of gradients, and the hyperparameters (eps sometimes large enough
    to matter)."""
    rng = np.random.default_rng(draw(seeds))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    steps = draw(st.integers(1, 5))
    return {"param": rng.standard_normal(shape),
            "grads": [rng.standard_normal(shape) * draw(st.sampled_from([1.0, 1e-3]))
                      for _ in range(steps)],
            "lr": draw(st.floats(1e-3, 0.1)),
            "betas": draw(st.sampled_from([(0.9, 0.999), (0.9, 0.99), (0.8, 0.95)])),
            "eps": draw(st.sampled_from([1e-8, 1e-3])),
            "weight_decay": draw(st.sampled_from([0.0, 0.01, 0.3]))}


def _adamw(impl, case, param, grad, exp_avg, exp_avg_sq, step, weight_decay=None):
    result = impl.adamw_update(param, grad, exp_avg, exp_avg_sq, step, case["lr"], case["betas"],
                               case["eps"], case["weight_decay"] if weight_decay is None
                               else weight_decay)
    return returned(result, "adamw_update", ("param", "exp_avg", "exp_avg_sq"))


@prop("adamw_update", "matches torch.optim.AdamW step after step (float64)", adamw_cases(),
      hint="decay p by (1 - lr wd) first; m, v are running means of g and g^2; divide m and v by "
           "1 - beta^t (t = step, 1 on the first update)")
def adamw_matches_torch(impl, case):
    import torch

    tensor = torch.tensor(case["param"], requires_grad=True)
    reference = torch.optim.AdamW([tensor], lr=case["lr"], betas=case["betas"], eps=case["eps"],
                                  weight_decay=case["weight_decay"], foreach=False)
    param = case["param"]
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    for step, grad in enumerate(case["grads"], start=1):
        tensor.grad = torch.tensor(grad)
        reference.step()
        param, exp_avg, exp_avg_sq = _adamw(impl, case, param, grad, exp_avg, exp_avg_sq, step)
        state = reference.state[tensor]
        assert_close(f"exp_avg after step {step}", state["exp_avg"].numpy(), exp_avg, TORCH_TOL)
        assert_close(f"exp_avg_sq after step {step}", state["exp_avg_sq"].numpy(), exp_avg_sq,
                     TORCH_TOL)
        assert_close(f"param after step {step}", tensor.detach().numpy(), param, TORCH_TOL)


@prop("adamw_update", "decay is decoupled: it shrinks p by lr * wd * p, whatever the gradient",
      adamw_cases().map(lambda c: {**c, "weight_decay": 0.3}),
      hint="shrink the parameter itself (p *= 1 - lr wd); adding wd * p to the gradient is L2 "
           "regularisation, which Adam's 1/sqrt(v) then rescales")
def adamw_decay_is_decoupled(impl, case):
    """The same step with and without decay differs by exactly -lr * wd * p."""
    param, grad = case["param"], case["grads"][0]
    zeros = np.zeros_like(param)
    decayed, _, _ = _adamw(impl, case, param, grad, zeros, zeros, 1)
    plain, _, _ = _adamw(impl, case, param, grad, zeros, zeros, 1, weight_decay=0.0)
    assert_close("(step with decay) - (step without decay) vs -lr * wd * p",
                 -case["lr"] * 0.3 * param, decayed - plain, 1e-9, floor=0.0)


@prop("adamw_update", "the first step moves each entry by lr * g / (|g| + eps) (bias correction)",
      adamw_cases().map(lambda c: {**c, "weight_decay": 0.0}),
      hint="at step t divide m by 1 - beta1^t and v by 1 - beta2^t: without it the first moves "
           "are (1 - beta1) / sqrt(1 - beta2) times too large or small")
def adamw_first_step_is_corrected(impl, case):
    """From m = v = 0, the corrected moments are g and g^2, so the first move is
    lr * g / (|g| + eps): about lr per entry, whatever the gradient's scale."""
    param, grad = case["param"], case["grads"][0]
    zeros = np.zeros_like(param)
    moved, _, _ = _adamw(impl, case, param, grad, zeros, zeros, 1)
    expected = -case["lr"] * grad / (np.abs(grad) + case["eps"])
    eps_inside = -case["lr"] * grad / np.sqrt(grad * grad + case["eps"])
    if (max_error(expected, moved - param, floor=0.0) > 1e-9
            and max_error(eps_inside, moved - param, floor=0.0) <= 1e-9):
        raise Failure("the first move is lr * g / sqrt(g^2 + eps): eps is inside the square root",
                      hint="add eps to sqrt(v_hat), outside the root: p -= lr * m_hat / "
                           "(sqrt(v_hat) + eps)")
    assert_close("the first move p_new - p", expected, moved - param, 1e-9, floor=0.0)


def _model_params(kind):
    from minilm.config import ModelConfig
    from minilm.numpy import Decoder, Encoder, Seq2Seq

    model_class = {"decoder": Decoder, "encoder": Encoder, "encoder-decoder": Seq2Seq}[kind]
    return model_class(ModelConfig.preset("tiny"), seed=0, dtype=np.float64).params


@prop("default_decay_rule", "decays the matrices and embeddings, never a bias or a LayerNorm",
      st.sampled_from(["decoder", "encoder", "encoder-decoder"]).map(lambda kind: {"model": kind}),
      max_examples=3,
      hint="decay exactly the parameters with ndim >= 2; names differ between checkpoints "
           "(LayerNorm, ln_1, ln_f), shapes do not, except one bias stored as a (1, V) matrix "
           "(the encoder-decoder's final_logits_bias): no name ending in 'bias' decays")
def decay_rule_picks_matrices(impl, case):
    params = _model_params(case["model"])
    rule = impl.default_decay_rule(params)
    assert_true(callable(rule), "default_decay_rule must return a function name -> bool")
    wrong = [name for name, value in params.items()
             if bool(rule(name)) != (value.ndim >= 2 and not name.endswith("bias"))]
    assert_true(not wrong, f"{len(wrong)} of the {case['model']}'s parameters decided wrongly, "
                           f"e.g. {wrong[:3]} (ndim {[params[n].ndim for n in wrong[:3]]})")


# ---------------------------------------------------------------- sampling


@st.composite
def sampling_cases(draw, spread=2.0):
    """One row of logits over 2..8 tokens (no ties), a temperature and top_k (None or 1..V)."""
    vocab = draw(st.integers(2, 8))
    return {"logits": spread * np.random.default_rng(draw(seeds)).standard_normal(vocab),
            "temperature": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "top_k": draw(st.none() | st.integers(1, vocab)), "rng_seed": draw(seeds)}


def tiled(case, rows):
    """The case as sample_next is called with it: `rows` copies of its row of logits, (rows, V),
    so that one call makes many draws from one distribution (and a failure shows these inputs)."""
    return {**case, "logits": np.tile(case["logits"], (rows, 1))}


def _sample(impl, called):
    """sample_next on the `tiled` case: one id per row, checked to be that."""
    rows = len(called["logits"])
    ids = impl.sample_next(called["logits"], np.random.default_rng(called["rng_seed"]),
                           called["temperature"], called["top_k"])
    ids = as_array(ids, "ids")
    assert_true(ids.shape == (rows,), f"ids has shape {ids.shape}, expected ({rows},): one per row")
    return ids


@prop("sample_next", "temperature 0 picks the most likely token", sampling_cases(),
      hint="temperature 0 means greedy: logits.argmax(axis=-1), no random draw")
def greedy_at_temperature_zero(impl, case):
    rng = np.random.default_rng(case["rng_seed"])
    logits = rng.standard_normal((4, len(case["logits"])))  # rows with different maxima
    with on_case({**case, "logits": logits, "temperature": 0.0}):
        ids = as_array(impl.sample_next(logits, rng, 0.0, case["top_k"]), "ids")
        assert_true(np.array_equal(ids, logits.argmax(axis=-1)),
                    f"picked {ids.tolist()}, the most likely are {logits.argmax(axis=-1).tolist()}")


@prop("sample_next", "never draws a token outside the k most likely",
      sampling_cases(spread=0.5).filter(lambda c: c["top_k"] is not None and
                                        c["top_k"] < len(c["logits"])),
      max_examples=10, hint="keep the logits >= the k-th largest (np.partition or np.sort), set "
                            "the others to -inf before the softmax: k tokens, not k + 1")
def top_k_keeps_k(impl, case):
    with on_case(tiled(case, 2000)) as called:
        ids = _sample(impl, called)
        allowed = np.argsort(case["logits"])[-case["top_k"]:]
        outside = sorted(set(ids.tolist()) - set(allowed.tolist()))
        assert_true(not outside, f"top_k={case['top_k']} drew tokens {outside}, outside the "
                                 f"{case['top_k']} most likely {sorted(allowed.tolist())}")


@prop("sample_next", "draws follow softmax(logits / temperature) over the kept tokens",
      sampling_cases(), max_examples=10,
      hint="keep exactly the top_k largest logits (the others -inf), divide by the temperature "
           "(T < 1 sharpens, T > 1 flattens), then softmax and draw with rng")
def samples_follow_the_distribution(impl, case):
    draws = 5000
    logits, vocab = case["logits"], len(case["logits"])
    kept = np.zeros(vocab, dtype=bool)
    kept[np.argsort(logits)[-(case["top_k"] or vocab):]] = True
    scaled = np.where(kept, logits / case["temperature"], -np.inf)
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    with on_case(tiled(case, draws)) as called:
        ids = _sample(impl, called)
        within_counting_error(f"temperature {case['temperature']}, top_k {case['top_k']}",
                              np.bincount(ids, minlength=vocab)[:vocab], probabilities, draws)


def thousands(case):
    """The case's logits times 1000, the largest moved to the last token and at least 100 x the
    temperature above the next (so that softmax gives the others less than e^-100: every draw
    is the last token): exp of them overflows float64 (above ~709) unless the row's max is
    subtracted first; a sampler that then returns token 0 for a row of NaN probabilities is not
    right by luck."""
    logits = 1000.0 * case["logits"]
    logits = np.roll(logits, len(logits) - 1 - int(logits.argmax()))
    logits[-1] = max(logits[-1], logits[:-1].max() + 100.0 * case["temperature"])
    return {**case, "logits": logits}


@prop("sample_next", "logits in the thousands draw the most likely token (no overflow)",
      sampling_cases().map(thousands), max_examples=10,
      hint="subtract each row's max before the exp (softmax's shift): exp(1000) overflows to inf "
           "and inf / inf is NaN")
def sampling_is_stable(impl, case):
    with on_case(tiled(case, 50)) as called:
        ids = _sample(impl, called)
        expected = len(case["logits"]) - 1
        assert_true(np.all(ids == expected), f"drew tokens {sorted(set(ids.tolist()))} where the "
                                             f"softmax puts all the mass on token {expected}")


@prop("sample_next", "draws from the rng it is given (same seed, same tokens)", sampling_cases(),
      max_examples=5, hint="draw with the rng argument (rng.random, rng.choice), not np.random")
def sampling_is_reproducible(impl, case):
    with on_case(tiled(case, 50)) as called:
        assert_true(np.array_equal(_sample(impl, called), _sample(impl, called)),
                    "two calls with generators of the same seed drew different tokens")
