"""Optimizers, clipping and schedules (`minilm.numpy.optim`): against PyTorch, and by properties.

Tolerance against torch, float64: rtol 1e-12, atol 1e-14 on parameters of size ~1 (the two
implementations do the same operations in the same order; they differ only where PyTorch's
kernels round differently, e.g. `lerp` for Adam's first moment).
"""

import itertools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minilm.layerwise import layerwise_lr_scale
from minilm.numpy.optim import (
    SGD,
    AdamW,
    adamw_update,
    clip_grad_norm,
    lr_schedule,
)

TIGHT = {"rtol": 1e-12, "atol": 1e-14}

# A miniature BERT-like parameter set: embeddings, LayerNorm, a linear layer, a head bias.
SHAPES = {
    "bert.embeddings.word_embeddings.weight": (7, 4),
    "bert.embeddings.LayerNorm.weight": (4,),
    "bert.embeddings.LayerNorm.bias": (4,),
    "bert.encoder.layer.0.attention.self.query.weight": (4, 4),
    "bert.encoder.layer.0.attention.self.query.bias": (4,),
    "cls.predictions.bias": (7,),
}
NAMES = list(SHAPES)
MATRICES = {name for name, shape in SHAPES.items() if len(shape) >= 2}


def random_params(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def random_grads(rng, dtype=np.float64):
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def run_numpy(optimizer, grads_per_step, lrs):
    for grads, lr in zip(grads_per_step, lrs):
        optimizer.step(grads, lr=lr)
    return optimizer.params


def run_torch(make_torch_optimizer, params, grads_per_step, lrs, lr_scale):
    """One torch param group per parameter, so each can carry its own lr and weight decay."""
    tensors = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    optimizer = make_torch_optimizer(tensors)
    for grads, lr in zip(grads_per_step, lrs):
        for group, name in zip(optimizer.param_groups, tensors):
            group["lr"] = lr * lr_scale.get(name, 1.0)
        for name, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[name])
        optimizer.step()
    return {name: tensor.detach().numpy() for name, tensor in tensors.items()}


def assert_params_close(actual, expected, **tolerance):
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], err_msg=name, **tolerance)


def test_adamw_update_returns_new_arrays_and_adamw_updates_in_place():
    """The function leaves its inputs alone; the class writes its result into the model's own
    float32 arrays (and its moments), which stay float32."""
    rng = np.random.default_rng(0)
    param, grad = rng.standard_normal(5), rng.standard_normal(5)
    before = param.copy()
    moments = np.zeros(5), np.zeros(5)
    new_param, *new_moments = adamw_update(param, grad, *moments, 1, 0.1, weight_decay=0.1)
    np.testing.assert_array_equal(param, before)
    assert not np.shares_memory(new_param, param) and not moments[0].any() and not moments[1].any()
    assert all(moment.any() for moment in new_moments)
    params = random_params(0, dtype=np.float32)
    held = params[NAMES[0]]
    optimizer = AdamW(params, lr=0.1)
    optimizer.step(random_grads(rng, dtype=np.float32))
    assert params[NAMES[0]] is held and not np.array_equal(held, random_params(0)[NAMES[0]])
    assert all(value.dtype == np.float32 for value in optimizer.state_dict().values()
               if value.ndim)


# ---------------------------------------------------------------- against torch


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("with_lr_scale", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_matches_torch(weight_decay, with_lr_scale, seed):
    """Several steps, changing lr: the no-decay rule and lr_scale become torch param groups."""
    rng = np.random.default_rng(seed)
    params = random_params(seed)
    grads_per_step = [random_grads(rng) for _ in range(6)]
    lrs = [1e-2, 3e-2, 2e-2, 1e-2, 5e-3, 1e-3]
    lr_scale = {NAMES[0]: 0.25, NAMES[3]: 0.5} if with_lr_scale else {}
    betas, eps = (0.8, 0.95), 1e-6

    ours = AdamW(
        {name: value.copy() for name, value in params.items()},
        lr=1.0,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        lr_scale=lr_scale,
    )
    assert ours.decayed_names == MATRICES
    actual = run_numpy(ours, grads_per_step, lrs)

    def make_torch_adamw(tensors):
        groups = [
            {"params": [tensor], "weight_decay": weight_decay if name in MATRICES else 0.0}
            for name, tensor in tensors.items()
        ]
        return torch.optim.AdamW(groups, lr=1.0, betas=betas, eps=eps, foreach=False)

    expected = run_torch(make_torch_adamw, params, grads_per_step, lrs, lr_scale)
    assert_params_close(actual, expected, **TIGHT)


def test_adamw_custom_decay_rule_matches_torch():
    """`decay` overrides the default rule: here every parameter is decayed, as plain torch does."""
    rng = np.random.default_rng(3)
    params = random_params(3)
    grads_per_step = [random_grads(rng) for _ in range(4)]
    lrs = [1e-2] * 4
    ours = AdamW(
        {n: v.copy() for n, v in params.items()}, lr=1e-2, weight_decay=0.5, decay=lambda name: True
    )
    assert ours.decayed_names == set(NAMES)
    actual = run_numpy(ours, grads_per_step, lrs)
    expected = run_torch(
        lambda t: torch.optim.AdamW(
            [{"params": [x]} for x in t.values()], lr=1e-2, weight_decay=0.5, foreach=False
        ),
        params,
        grads_per_step,
        lrs,
        {},
    )
    assert_params_close(actual, expected, **TIGHT)


@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov",
    [
        (0.0, 0.0, False),
        (0.0, 0.1, False),
        (0.9, 0.0, False),
        (0.9, 0.05, False),
        (0.9, 0.05, True),
    ],
)
def test_sgd_matches_torch(momentum, weight_decay, nesterov):
    rng = np.random.default_rng(7)
    params = random_params(7)
    grads_per_step = [random_grads(rng) for _ in range(5)]
    lrs = [0.1, 0.05, 0.1, 0.02, 0.01]
    lr_scale = {NAMES[1]: 0.5}
    ours = SGD(
        {n: v.copy() for n, v in params.items()},
        lr=1.0,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        lr_scale=lr_scale,
    )
    actual = run_numpy(ours, grads_per_step, lrs)
    expected = run_torch(
        lambda t: torch.optim.SGD(
            [{"params": [x]} for x in t.values()],
            lr=1.0,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            foreach=False,
        ),
        params,
        grads_per_step,
        lrs,
        lr_scale,
    )
    assert_params_close(actual, expected, **TIGHT)


@given(seed=st.integers(0, 2**31 - 1), max_norm=st.floats(0.01, 20.0), scale=st.floats(0.01, 10.0))
def test_clip_grad_norm_matches_torch(seed, max_norm, scale):
    rng = np.random.default_rng(seed)
    grads = {name: scale * g for name, g in random_grads(rng).items()}
    tensors = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for tensor, g in zip(tensors, grads.values()):
        tensor.grad = torch.tensor(g)
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm, foreach=False).item()

    total_norm = clip_grad_norm(grads, max_norm)

    assert math.isclose(total_norm, expected_norm, rel_tol=1e-12)
    for g, tensor in zip(grads.values(), tensors):
        np.testing.assert_allclose(g, tensor.grad.numpy(), **TIGHT)
    clipped_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    assert clipped_norm <= max_norm * (1 + 1e-12) or math.isclose(clipped_norm, total_norm)


def test_clip_grad_norm_of_float16_gradients_sums_in_float32_as_torch():
    """A norm of 300 overflowed float16's sum of squares (inf): every gradient was zeroed."""
    grads = {"w": np.full(100, 30.0, np.float16)}
    tensor = torch.zeros(100, dtype=torch.float16, requires_grad=True)
    tensor.grad = torch.full((100,), 30.0, dtype=torch.float16)
    expected = torch.nn.utils.clip_grad_norm_([tensor], 1.0).item()
    assert clip_grad_norm(grads, 1.0) == expected == 300.0
    np.testing.assert_array_equal(grads["w"], tensor.grad.numpy())  # 0.1 each, not 0


# ---------------------------------------------------------------- in place, dtype


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: AdamW(p)])
def test_updates_in_place_and_keep_float32(make):
    """A model holding the arrays sees the update; float32 stays float32 even with float64 grads."""
    params = random_params(0, dtype=np.float32)
    held_by_model = dict(params)
    before = {n: v.copy() for n, v in params.items()}
    optimizer = make(params)
    optimizer.step(random_grads(np.random.default_rng(1), dtype=np.float64))
    for name, array in held_by_model.items():
        assert array is params[name] and array.dtype == np.float32
        assert not np.array_equal(array, before[name])
    buffers = {k: v for k, v in optimizer.state_dict().items() if not k.startswith("step.")}
    assert all(v.dtype == np.float32 for v in buffers.values())


def test_step_leaves_grads_untouched():
    grads = random_grads(np.random.default_rng(0))
    copy = {n: g.copy() for n, g in grads.items()}
    SGD(random_params(0), lr=0.1, momentum=0.9, weight_decay=0.1).step(grads)
    AdamW(random_params(0)).step(grads)
    assert all(np.array_equal(grads[n], copy[n]) for n in grads)


# ---------------------------------------------------------------- lr_scale and frozen


@pytest.mark.parametrize(
    "make", [lambda p, **kw: SGD(p, lr=0.1, **kw), lambda p, **kw: AdamW(p, lr=0.1, **kw)]
)
def test_lr_scale_zero_and_frozen_do_not_move(make):
    params = random_params(0)
    before = {n: v.copy() for n, v in params.items()}
    optimizer = make(params, lr_scale={NAMES[0]: 0.0}, frozen={NAMES[1]})
    optimizer.step(random_grads(np.random.default_rng(1)))
    assert np.array_equal(params[NAMES[0]], before[NAMES[0]])
    assert np.array_equal(params[NAMES[1]], before[NAMES[1]])
    assert not np.array_equal(params[NAMES[2]], before[NAMES[2]])


def test_lr_scale_is_a_per_parameter_learning_rate():
    """lr_scale s on one parameter is the same as running that parameter alone with lr·s."""
    rng = np.random.default_rng(0)
    grads_per_step = [random_grads(rng) for _ in range(3)]
    scaled = AdamW(random_params(0), lr=0.1, lr_scale={NAMES[3]: 0.3})
    plain = AdamW(random_params(0), lr=0.03)
    for grads in grads_per_step:
        scaled.step(grads)
        plain.step(grads)
    np.testing.assert_array_equal(scaled.params[NAMES[3]], plain.params[NAMES[3]])


def test_frozen_parameter_state_does_not_advance():
    """Gradual unfreezing: once unfrozen, a parameter starts from Adam's step 1, bias correction
    and all, exactly as a fresh optimizer would."""
    rng = np.random.default_rng(0)
    optimizer = AdamW(random_params(0), lr=0.1, frozen=lambda name: name.startswith("bert.emb"))
    for _ in range(3):
        optimizer.step(random_grads(rng))
    state = optimizer.state_dict()
    assert not any(".bert.embeddings." in key for key in state)
    assert state[f"step.{NAMES[3]}"] == 3

    optimizer.frozen = set()
    grads = random_grads(rng)
    fresh = AdamW({NAMES[0]: optimizer.params[NAMES[0]].copy()}, lr=0.1)
    fresh.step({NAMES[0]: grads[NAMES[0]]})
    optimizer.step(grads)
    np.testing.assert_array_equal(optimizer.params[NAMES[0]], fresh.params[NAMES[0]])
    assert optimizer.state_dict()[f"step.{NAMES[0]}"] == 1


def test_layerwise_lr_scale():
    """decay ** (max_depth − depth): the head gets 1, each layer down one more factor of decay."""
    names = ["emb", "layer.0.w", "layer.1.w", "head"]
    depth = {"emb": 0, "layer.0.w": 1, "layer.1.w": 2, "head": 3}
    scales = layerwise_lr_scale(names, depth.__getitem__, max_depth=3, decay=0.5)
    assert scales == {"emb": 0.125, "layer.0.w": 0.25, "layer.1.w": 0.5, "head": 1.0}
    with pytest.raises(ValueError, match="depth_of"):
        layerwise_lr_scale(names, lambda name: 4, max_depth=3, decay=0.5)
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_scale(names, depth.__getitem__, max_depth=3, decay=0.0)


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    "make", [lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True), lambda p: AdamW(p, lr=0.05)]
)
def test_state_dict_round_trip_continues_identically(make, tmp_path):
    """Save after 3 steps (through a safetensors file), load into a new optimizer on a copy of the
    parameters: the next 3 steps are bit-for-bit those of the uninterrupted run."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    grads_per_step = [random_grads(rng) for _ in range(6)]
    original = make(random_params(0))
    for grads in grads_per_step[:3]:
        original.step(grads)

    path = tmp_path / "optimizer.safetensors"
    safetensors_numpy.save_file(original.state_dict(), str(path))
    resumed = make({n: v.copy() for n, v in original.params.items()})
    resumed.load_state_dict(safetensors_numpy.load_file(str(path)))
    assert resumed.state_dict().keys() == original.state_dict().keys()

    for grads in grads_per_step[3:]:
        original.step(grads)
        resumed.step(grads)
    for name in NAMES:
        np.testing.assert_array_equal(resumed.params[name], original.params[name])


def test_state_dict_is_a_copy():
    optimizer = SGD(random_params(0), lr=0.1, momentum=0.9)
    optimizer.step(random_grads(np.random.default_rng(0)))
    state = optimizer.state_dict()
    state[f"momentum_buffer.{NAMES[0]}"][...] = 123.0
    assert not np.any(optimizer.state["momentum_buffer"][NAMES[0]] == 123.0)


# ---------------------------------------------------------------- schedule


def test_lr_schedule_boundaries():
    base, total, warmup, min_lr = 1.0, 110, 10, 0.1
    last_progress = (total - 1 - warmup) / (total - warmup)  # 0.99 at step total − 1
    last_lr = {
        "cosine": min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * last_progress)),
        "linear": min_lr + (base - min_lr) * (1 - last_progress),
    }
    for decay, expected_last in last_lr.items():

        def lr(step, decay=decay):
            return lr_schedule(step, base, total, warmup, decay=decay, min_lr=min_lr)

        assert lr(0) == pytest.approx(base / warmup)  # (0 + 1) / warmup
        assert lr(warmup - 1) == pytest.approx(base)
        assert lr(warmup) == pytest.approx(base)
        assert lr(total - 1) == pytest.approx(expected_last) and lr(total - 1) > min_lr
        assert lr(total) == lr(total + 50) == min_lr
        assert lr(60) == pytest.approx(0.55)  # half-way: both kinds are at the mid-point
    assert lr_schedule(5, base, total, decay="constant") == base
    assert lr_schedule(0, base, total) == base  # no warmup: start at base_lr


@given(
    total=st.integers(1, 200),
    warmup_fraction=st.floats(0, 1),
    decay=st.sampled_from(["cosine", "linear", "constant"]),
    min_fraction=st.floats(0, 1),
)
def test_lr_schedule_rises_then_falls(total, warmup_fraction, decay, min_fraction):
    """Non-decreasing through warmup, non-increasing after, within [min_lr, base_lr] after it."""
    base = 3e-4
    warmup = int(warmup_fraction * total)
    min_lr = min_fraction * base
    lrs = [lr_schedule(s, base, total, warmup, decay, min_lr) for s in range(total + 3)]
    warm, after = lrs[:warmup], lrs[warmup:]
    assert all(0 < a <= b for a, b in itertools.pairwise(warm))
    assert all(a >= b for a, b in itertools.pairwise(after))
    assert all(min_lr <= lr <= base * (1 + 1e-12) for lr in after)
    assert max(lrs) == pytest.approx(base)


# ---------------------------------------------------------------- convergence


@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adamw"])
def test_minimises_a_quadratic(kind):
    """f(x) = ½ (x − x*)ᵀ A (x − x*) with an ill-conditioned SPD A: reach x* to 1e-4."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    hessian = basis @ np.diag([0.1, 0.3, 1.0, 2.0, 5.0, 10.0]) @ basis.T
    target = rng.standard_normal(6)
    params = {"x": np.zeros(6)}
    total = 600
    if kind == "adamw":
        optimizer, base_lr = AdamW(params, weight_decay=0.0), 0.3
    else:
        optimizer = SGD(params, lr=0.05, momentum=0.9, nesterov=kind == "sgd_nesterov")
        base_lr = 0.05
    for step in range(total):
        grads = {"x": hessian @ (params["x"] - target)}
        optimizer.step(grads, lr=lr_schedule(step, base_lr, total, warmup_steps=20))
    np.testing.assert_allclose(params["x"], target, atol=1e-4)


# ---------------------------------------------------------------- validation


def bad_steps():
    shapes_wrong = random_grads(np.random.default_rng(0))
    shapes_wrong[NAMES[0]] = np.zeros((4, 7))
    missing = random_grads(np.random.default_rng(0))
    del missing[NAMES[2]]
    extra = {**random_grads(np.random.default_rng(0)), "not.a.param": np.zeros(1)}
    return [
        (missing, None, "missing gradient"),
        (extra, None, "grads"),
        (shapes_wrong, None, "grads"),
        (random_grads(np.random.default_rng(0)), -1.0, "lr"),
    ]


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1), lambda p: AdamW(p)])
@pytest.mark.parametrize("grads, lr, argument", bad_steps())
def test_step_rejects_bad_inputs(make, grads, lr, argument):
    with pytest.raises(ValueError, match=argument):
        make(random_params(0)).step(grads, lr=lr)


@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda p: SGD(p, lr=-0.1), "lr"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum"),
        (lambda p: SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay"),
        (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
        (lambda p: AdamW(p, lr=float("nan")), "lr"),
        (lambda p: AdamW(p, betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda p: AdamW(p, betas=(0.9, -0.1)), r"betas\[1\]"),
        (lambda p: AdamW(p, eps=-1.0), "eps"),
        (lambda p: AdamW(p, lr_scale={"nope": 0.5}), "lr_scale"),
        (lambda p: AdamW(p, lr_scale={NAMES[0]: -0.5}), "lr_scale"),
        (lambda p: AdamW(p, frozen={"nope"}), "frozen"),
        (lambda p: AdamW({"x": np.zeros(3, dtype=np.int64)}), "params"),
        (lambda p: clip_grad_norm(random_grads(np.random.default_rng(0)), 0.0), "max_norm"),
        (lambda p: lr_schedule(0, 1.0, 10, decay="step"), "decay"),
        (lambda p: lr_schedule(0, 1.0, 10, warmup_steps=11), "warmup_steps"),
        (lambda p: lr_schedule(-1, 1.0, 10), "step"),
        (lambda p: lr_schedule(0, 1.0, 0), "total_steps"),
        (lambda p: lr_schedule(0, -1.0, 10), "base_lr"),
        (lambda p: lr_schedule(0, 1.0, 10, min_lr=2.0), "min_lr"),
    ],
)
def test_constructors_and_functions_reject_bad_arguments(build, argument):
    with pytest.raises(ValueError, match=argument):
        build(random_params(0))


def test_frozen_rejects_a_single_string():
    """A str is iterable: frozen="bert.pooler.dense.weight" would silently freeze its letters."""
    with pytest.raises(TypeError, match="frozen"):
        AdamW(random_params(0), frozen=NAMES[0])


def test_load_state_dict_rejects_mismatches():
    optimizer = AdamW(random_params(0))
    optimizer.step(random_grads(np.random.default_rng(0)))
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match="unexpected entry"):
        AdamW(random_params(0)).load_state_dict({**state, "exp_avg.nope": np.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        AdamW(random_params(0)).load_state_dict({**state, f"exp_avg.{NAMES[0]}": np.zeros(3)})
    incomplete = {k: v for k, v in state.items() if k != f"step.{NAMES[0]}"}
    with pytest.raises(ValueError, match="same parameters"):
        AdamW(random_params(0)).load_state_dict(incomplete)


INF, NAN = float("inf"), float("nan")
BAD_HYPERPARAMETERS = {  # case: (call on params, the message's fragment)
    "lr inf": (lambda p: AdamW(p, lr=INF), "lr must be a finite number in [0, inf), got inf"),
    "lr a string": (lambda p: AdamW(p, lr="1e-3"), ("lr must be a finite number in [0, inf), got "
                                                    "'1e-3'")),
    "lr None": (lambda p: AdamW(p, lr=None), "lr must be a finite number in [0, inf), got None"),
    "step's lr inf": (lambda p: AdamW(p).step(random_grads(np.random.default_rng(0)), lr=INF),
                      "lr must be a finite number in [0, inf), got inf"),
    "weight_decay inf": (lambda p: AdamW(p, weight_decay=INF), "weight_decay must be a finite"),
    "eps inf": (lambda p: AdamW(p, eps=INF), "eps must be a finite number in (0, inf)"),
    # 0: a gradient entry 0 at step 1 made its weight NaN (m = v = 0: 0 / 0)
    "eps 0": (lambda p: AdamW(p, eps=0.0), "eps must be a finite number in (0, inf), got 0.0"),
    # float16: a gradient of 1e-3 sent the weight to -inf (v and eps round to 0)
    "float16 params": (lambda p: AdamW({n: w.astype(np.float16) for n, w in p.items()}),
                       f"params[{NAMES[0]!r}] is float16: AdamW needs float32 or float64"),
    "lr_scale inf": (lambda p: AdamW(p, lr_scale={NAMES[0]: INF}),
                     f"lr_scale[{NAMES[0]!r}] must be a finite number in [0, inf), got inf"),
    "betas a number": (lambda p: AdamW(p, betas=0.9), ("betas must be a pair (beta1, beta2), got "
                                                       "0.9")),
    "betas of one": (lambda p: AdamW(p, betas=(0.9,)), "betas must be a pair"),
    "beta a string": (lambda p: AdamW(p, betas=("0.9", 0.999)),
                      "betas[0] must be a finite number in [0, 1), got '0.9'"),
    "momentum inf": (lambda p: SGD(p, 0.1, momentum=INF), "momentum must be a finite number"),
    "nesterov a string": (lambda p: SGD(p, 0.1, momentum=0.9, nesterov="no"),
                          "nesterov must be True or False, got 'no'"),
    "max_norm a string": (lambda p: clip_grad_norm(random_grads(np.random.default_rng(0)), "1"),
                          "max_norm must be a finite number in (0, inf), got '1'"),
    "decay a string": (lambda p: layerwise_lr_scale(p, lambda n: 0, 1, "0.9"),
                       "decay must be a finite number in (0, 1], got '0.9'"),
    "base_lr inf": (lambda p: lr_schedule(3, INF, 10), "base_lr must be a finite number"),
    "min_lr nan": (lambda p: lr_schedule(3, 1.0, 10, min_lr=NAN), ("min_lr must be a finite "
                                                                   "number in [0, 1.0], got nan")),
    "step nan": (lambda p: lr_schedule(NAN, 1e-3, 10), "step must be an int >= 0, got nan"),
    "step a string": (lambda p: lr_schedule("3", 1e-3, 10), "step must be an int >= 0, got '3'"),
    "total_steps fractional": (lambda p: lr_schedule(9, 1e-3, 10.7),
                               "total_steps must be an int >= 1, got 10.7"),
    "total_steps inf": (lambda p: lr_schedule(3, 1e-3, INF), "total_steps must be an int >= 1"),
    "total_steps True": (lambda p: lr_schedule(0, 1e-3, True),
                         "total_steps must be an int >= 1, got True"),
    "warmup_steps fractional": (lambda p: lr_schedule(0, 1e-3, 10, warmup_steps=2.5),
                                "warmup_steps must be an int >= 0, got 2.5"),
}


@pytest.mark.parametrize("case", sorted(BAD_HYPERPARAMETERS))
def test_hyperparameters_are_finite_numbers_and_step_counts_ints(case):
    """An infinite lr, weight decay or lr_scale made every weight -inf, a string or None failed
    in Python's words, and lr_schedule computed a rate from a fractional, infinite, NaN or True
    step count: each is one ValueError naming the argument (`number_in`, `int_at_least`)."""
    call, message = BAD_HYPERPARAMETERS[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        call(random_params(0))


def _trained_state():
    optimizer = AdamW(random_params(0))
    optimizer.step(random_grads(np.random.default_rng(0)))
    return optimizer.state_dict()


BAD_STATES = {  # case: (edit of a state, the message's fragment)
    "a negative step": (lambda s: s.update({f"step.{NAMES[0]}": np.array(-3)}),
                        f"state['step.{NAMES[0]}'] must be an int >= 0, got -3"),
    "a fractional step": (lambda s: s.update({f"step.{NAMES[0]}": np.array(2.7)}),
                          f"state['step.{NAMES[0]}'] must be an int >= 0, got 2.7"),
    "a step of two": (lambda s: s.update({f"step.{NAMES[0]}": np.array([1, 2])}),
                      (f"state['step.{NAMES[0]}'] must be one int >= 0 (a step count), got an "
                       "array of shape (2,)")),
    "a negative second moment": (lambda s: s[f"exp_avg_sq.{NAMES[0]}"].fill(-1.0),
                                 (f"state['exp_avg_sq.{NAMES[0]}'] must be >= 0 (a mean of "
                                  "squares), got -1.0")),
    "a NaN moment": (lambda s: s[f"exp_avg.{NAMES[0]}"].fill(np.nan),
                     f"state['exp_avg.{NAMES[0]}'] must be finite numbers, got nan"),
    "an integer moment": (lambda s: s.update({f"exp_avg.{NAMES[1]}": np.zeros(4, np.int64)}),
                          f"state['exp_avg.{NAMES[1]}'] must be a floating-point array"),
    "a moment of one number": (lambda s: s.update({f"exp_avg.{NAMES[0]}": np.zeros(1)}),
                               (f"state['exp_avg.{NAMES[0]}'] has shape (1,), the parameter has "
                                "(7, 4)")),
    "a slot removed": (lambda s: s.pop(f"step.{NAMES[2]}"),
                       (f"slots ['exp_avg', 'exp_avg_sq', 'step'] must cover the same parameters; "
                        f"step.{NAMES[2]} is missing")),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_load_state_dict_refuses_a_state_adam_cannot_continue_from(case):
    """A negative step count failed later in `math.domain error`, 2.7 was cut to 2, a negative
    second moment (a mean of squares) made sqrt(v) NaN: each is refused at load, naming the entry
    (`Optimizer.check_state`, which the torch step and --resume share)."""
    edit, message = BAD_STATES[case]
    state = _trained_state()
    edit(state)
    with pytest.raises(ValueError, match=re.escape(message)):
        AdamW(random_params(0)).load_state_dict(state)
