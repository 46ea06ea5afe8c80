"""The one training step (`minilm.steps`): NumPy (hand-written backward, minilm's AdamW) and torch
(autograd, torch.optim.AdamW) do the same arithmetic.

Metric: float32 losses compared with `pytest.approx(rel=1e-5)` at every step, and the weights after
the last step with `np.testing.assert_allclose(rtol=1e-4, atol=1e-5)`; worst seen 3e-7 on the losses.
"""

import re

import numpy as np
import pytest

from minilm import ModelConfig, data
from minilm.common.backends import numpy_params, on_backend
from minilm.numpy import Decoder
from minilm.steps import NumpyStep, TorchStep, make_step

CONFIG = ModelConfig(vocab_size=12, max_len=16, d_model=32, n_heads=2, n_layers=2, d_ff=64)


def batches(n, seed=0):
    ids = np.random.default_rng(seed).integers(0, CONFIG.vocab_size, size=2000)
    rng = np.random.default_rng(seed + 1)
    return [data.clm_batch(ids, 8, 16, rng) for _ in range(n)]


@pytest.mark.parametrize("fine_tuning", [False, True], ids=["plain", "lr_scale+frozen"])
def test_numpy_and_torch_steps_follow_the_same_curve(fine_tuning):
    """Started from the same weights (built once in NumPy, dropout 0), both steps give the same
    loss at every step and the same weights after five, with the neutral defaults and with a
    per-parameter learning-rate scale and a frozen set that changes between steps."""
    reference = Decoder(CONFIG, seed=0)
    twin = on_backend(Decoder(CONFIG, seed=0), "torch")
    names = list(reference.params)
    lr_scale = {name: 0.5 for name in names if ".h.0." in name} if fine_tuning else None
    steps = [make_step(model, 0.1, betas=(0.9, 0.99), grad_clip=0.5, lr_scale=lr_scale)
             for model in (reference, twin)]
    assert isinstance(steps[0], NumpyStep) and isinstance(steps[1], TorchStep)
    for t, (inputs, targets) in enumerate(batches(5)):
        frozen = frozenset(n for n in names if "wte" in n) if fine_tuning and t < 3 else frozenset()
        losses = [step((inputs,), targets, 1e-2, frozen) for step in steps]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    twin_params = numpy_params(twin)
    for name, value in reference.params.items():
        ours, theirs = value, twin_params[name]
        if name.endswith("c_attn.bias"):
            # The key bias adds q.b to all of a query's scores alike, which softmax ignores: its
            # true gradient is 0 and both backends compute rounding noise, which Adam's g/sqrt(v)
            # turns into lr-sized steps of random sign. Compare the query and value parts only.
            c = CONFIG.d_model
            ours, theirs = np.delete(ours, np.s_[c:2 * c]), np.delete(theirs, np.s_[c:2 * c])
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_frozen_parameter_does_not_move_and_the_rest_do():
    model = Decoder(CONFIG, seed=0)
    step = make_step(model, 0.1)
    before = {name: value.copy() for name, value in model.params.items()}
    frozen = frozenset({"transformer.wte.weight"})
    inputs, targets = batches(1)[0]
    step((inputs,), targets, 1e-2, frozen)
    for name, value in model.params.items():
        assert np.array_equal(value, before[name]) == (name in frozen), name


def _pooler_free_loss_models():
    """A token classifier on an Encoder that has a pooler it never uses (what MiniLM-L6 loads as),
    float64, dropout 0, in NumPy and on the twin with the same weights."""
    from minilm.numpy import Encoder
    from minilm.numpy.heads import TokenClassifier

    config = ModelConfig(vocab_size=20, max_len=8, d_model=8, n_heads=2, n_layers=1, d_ff=12,
                         dropout=0.0)
    reference = TokenClassifier(Encoder(config, seed=0, mlm_head=False, pooler=True,
                                        dtype=np.float64), 3, seed=0)
    return reference, on_backend(reference, "torch")


def test_a_parameter_the_loss_does_not_reach_is_left_alone_by_both_steps():
    """torch leaves .grad None on the pooler a token classifier never uses, and its AdamW skips
    it; the NumPy step does the same (no move, no decay, no optimizer state), so the two backends
    end with the same weights. The gradient norm they clip is the same too (grad_clip small)."""
    reference, twin = _pooler_free_loss_models()
    pooler = "bert.pooler.dense.weight"
    before = reference.params[pooler].copy()
    steps = [make_step(model, weight_decay=0.1, grad_clip=0.01) for model in (reference, twin)]
    rng = np.random.default_rng(0)
    ids, labels = rng.integers(0, 20, (4, 6)), rng.integers(0, 3, (4, 6))
    for _ in range(3):
        losses = [step((ids, np.ones_like(ids), np.zeros_like(ids)), labels, lr=1e-2)
                  for step in steps]
        assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    assert np.array_equal(reference.params[pooler], before)  # decay would shrink it by 1e-3 a step
    for step in steps:
        assert not any(key.endswith(pooler) for key in step.state_dict())
    twin_params = numpy_params(twin)
    for name, value in reference.params.items():
        np.testing.assert_allclose(twin_params[name], value, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_no_bias_decays_not_even_one_stored_as_a_matrix(backend):
    """The encoder-decoder's output bias is a (1, V) row (Marian's shape); like every bias it is
    not weight-decayed, in either step, while its weight matrices are."""
    from minilm.numpy import Seq2Seq

    config = ModelConfig(vocab_size=13, max_len=8, d_model=8, n_heads=2, n_layers=1, d_ff=12)
    model = on_backend(Seq2Seq(config, seed=0), backend)
    step = make_step(model, weight_decay=0.1)
    if backend == "numpy":
        decayed = step.optimizer.decayed_names
    else:
        named = dict(model.named_parameters())
        decayed = {name for name, p in named.items() for group in step.optimizer.param_groups
                   if group["weight_decay"] > 0 and any(q is p for q in group["params"])}
    assert "final_logits_bias" not in decayed
    assert "model.shared.weight" in decayed and not any(n.endswith("bias") for n in decayed)


BAD_SETTINGS = {  # case: (make_step's keyword arguments, the message's fragment)
    "unknown lr_scale name": (dict(lr_scale={"transformer.nope.weight": 0.5}),
                              "lr_scale names unknown parameters: ['transformer.nope.weight']"),
    "NaN lr_scale": (dict(lr_scale={"transformer.wte.weight": float("nan")}),
                     "lr_scale['transformer.wte.weight'] must be a finite number in [0, inf)"),
    "negative weight decay": (dict(weight_decay=-1.0),
                              "weight_decay must be a finite number in [0, inf), got -1.0"),
    "NaN weight decay": (dict(weight_decay=float("nan")), "weight_decay must be a finite number"),
    "weight decay as text": (dict(weight_decay="0.1"), "weight_decay must be a finite number"),
    "one beta": (dict(betas=(0.9,)), "betas must be a pair (beta1, beta2), got (0.9,)"),
    "beta of 1": (dict(betas=(0.9, 1.0)), "betas[1] must be a finite number in [0, 1), got 1.0"),
    "grad_clip 0": (dict(grad_clip=0.0), "grad_clip must be a finite number in (0, inf), got 0.0"),
    "NaN grad_clip": (dict(grad_clip=float("nan")), "grad_clip must be a finite number in (0, inf)"),
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_both_steps_refuse_bad_settings_when_built(case, backend):
    """One check and one message for both backends. TorchStep used to accept a negative or NaN
    weight decay, a NaN lr_scale and any grad_clip (torch clipped with NaN or 0 silently), and
    failed deep in torch for one beta or a weight decay given as text; NumpyStep heard of a bad
    grad_clip only at its first step, as 'max_norm'."""
    keywords = {"weight_decay": 0.1, **BAD_SETTINGS[case][0]}
    with pytest.raises(ValueError, match=re.escape(BAD_SETTINGS[case][1])):
        make_step(on_backend(Decoder(CONFIG, seed=0), backend), **keywords)


W = "transformer.h.0.attn.c_attn.weight"  # (96, 32)
BAD_OPTIMIZER_STATES = {  # case: (edit of a step's state_dict, the message's fragment)
    "a moment transposed": (lambda s: s.update({f"exp_avg.{W}": s[f"exp_avg.{W}"].T.copy()}),
                            f"state['exp_avg.{W}'] has shape (32, 96), the parameter has (96, 32)"),
    "a moment of one number": (lambda s: s.update({f"exp_avg.{W}": np.zeros(1, np.float32)}),
                               f"state['exp_avg.{W}'] has shape (1,), the parameter has"),
    "a 0-d moment": (lambda s: s.update({f"exp_avg.{W}": np.zeros((), np.float32)}),
                     f"state['exp_avg.{W}'] has shape (), the parameter has"),
    "a slot removed": (lambda s: s.pop(f"exp_avg.{W}"),
                       f"must cover the same parameters; exp_avg.{W} is missing"),
    "a step of two": (lambda s: s.update({f"step.{W}": np.array([1, 2])}),
                      (f"state['step.{W}'] must be one int >= 0 (a step count), got an array of "
                       "shape (2,)")),
    "a negative step": (lambda s: s.update({f"step.{W}": np.array(-3)}),
                        f"state['step.{W}'] must be an int >= 0, got -3"),
    "a negative second moment": (lambda s: s[f"exp_avg_sq.{W}"].fill(-1.0),
                                 f"state['exp_avg_sq.{W}'] must be >= 0 (a mean of squares)"),
    "an unknown weight": (lambda s: s.update({"exp_avg.nope": np.zeros(1, np.float32)}),
                          "state: unexpected entry 'exp_avg.nope'"),
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", sorted(BAD_OPTIMIZER_STATES))
def test_both_steps_refuse_a_bad_optimizer_state_at_load(case, backend):
    """The same check and message for both backends (`AdamW.check_state`). TorchStep took any
    shape, a missing slot or a negative step, and torch failed at the next step (a broadcast
    RuntimeError, KeyError 'exp_avg', a ComplexFloat from a negative power); a negative second
    moment (sqrt(v) NaN) read as a diverged run on both."""
    inputs, targets = batches(1)[0]
    trained = make_step(on_backend(Decoder(CONFIG, seed=0), backend), 0.1)
    trained((inputs,), targets, 1e-3)
    edit, message = BAD_OPTIMIZER_STATES[case]
    state = trained.state_dict()
    edit(state)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_step(on_backend(Decoder(CONFIG, seed=0), backend), 0.1).load_state_dict(state)
