"""The PyTorch twin (`minilm.torch`) against the NumPy reference (`minilm.numpy`).

The central property: given the same weights, the twin computes the same logits, the same loss and
the same gradient for every parameter (NumPy's hand-written `backward` vs torch autograd), for
random small configs of both models, both position kinds, both activations, with padding masks
and token types for the Encoder. Weights are random and larger than the 0.02 init, so attention is
peaked and every path matters.

Error metric: `relative_error(expected, actual, floor)` = max|diff| / max(floor, max|expected|):
logits and loss relative to their largest entry; each parameter gradient relative to its own largest
entry or, if larger, the largest gradient entry of the whole model. (A gradient that is exactly
zero in exact arithmetic, e.g. for keys when T = 1, comes out of float32 as rounding noise of the
size of the model's other gradients times 1e-7: it cannot be checked relative to itself.)
Tolerances:

    FLOAT64_TOL = 1e-9   attention="math" / "sdpa", float64: the same mathematics rounded in a
                         different order (worst observed over 800 examples: 5e-15)
    TRITON_TOL  = 1e-4   attention="triton" (the kernel; under the interpreter on CPU), float32
                         twin against the float64 reference: float32 rounding through LayerNorms
                         and a softmax over the vocabulary (worst observed over 60 examples: 1.5e-6)

For scale: mutations of the attention (causal mask ignored, padding mask ignored, scale off by 10%)
give errors of 0.1 to 1.6 on these problems, far outside both tolerances.
"""

import importlib
import importlib.util
import re

import numpy as np
import pytest
import torch
from helpers import FLOAT64_TOL, FLOOR, TRITON_TOL, assert_within, needs_triton, twin_errors
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilm import ModelConfig
from minilm.numpy import functional as F
from minilm.numpy import models as numpy_models
from minilm.testing.oracles import randomise, relative_error
from minilm.testing.strategies import padding_masks, seeds, token_batches, twin_configs
from minilm.torch import Decoder, Encoder, params_to_state_dict, state_dict_to_params
from minilm.torch import functional as TF
from minilm.torch.layers import MultiHeadAttention

NUMPY_MODELS = {"encoder": numpy_models.Encoder, "decoder": numpy_models.Decoder}
TWINS = {"encoder": Encoder, "decoder": Decoder}
KINDS = sorted(TWINS)

def flash_attention_module():
    """The kernel's module. (The attribute `minilm.kernels.flash_attention` is the function, which
    the package re-exports under its module's name, so `import minilm.kernels.flash_attention as m`
    gives the function.)"""
    return importlib.import_module("minilm.kernels.flash_attention")


@st.composite
def twin_problems(draw, kind, max_len=12, min_head_dim=1, max_batch=3):
    """(config, ids, extra inputs, targets, weight seed) for one model kind. Encoder masks are
    none, right padding, or random bits with sometimes an all-padding sequence (whose every query
    attends nothing); targets ignore some positions, sometimes all of them."""
    config = draw(twin_configs(max_len=max_len, min_head_dim=min_head_dim))
    ids = draw(token_batches(config, max_batch=max_batch))
    batch, time = ids.shape
    inputs = {}
    if kind == "encoder":
        mask = draw(st.sampled_from(["none", "right", "random"]))
        if mask == "right":
            inputs["attention_mask"] = draw(padding_masks(batch, time))
        elif mask == "random":
            bits = draw(hnp.arrays(np.int64, (batch, time), elements=st.integers(0, 1)))
            if draw(st.booleans()):
                bits[0] = 0
            inputs["attention_mask"] = bits
        if draw(st.booleans()):
            inputs["token_type_ids"] = draw(
                hnp.arrays(np.int64, (batch, time), elements=st.integers(0, config.type_vocab_size - 1))
            )
    targets = draw(hnp.arrays(np.int64, (batch, time), elements=st.integers(-1, config.vocab_size - 1)))
    targets[targets == -1] = -100
    return config, ids, inputs, targets, draw(seeds)


def twin_model_errors(kind, problem, attention, dtype):
    """The reference (float64, trained-scale weights) and the twin on the same weights and inputs:
    `helpers.twin_errors` (logits, loss, every parameter gradient); and every layer ran the
    attention asked for."""
    config, ids, inputs, targets, seed = problem
    reference = randomise(NUMPY_MODELS[kind](config, dtype=np.float64), seed)
    twin = TWINS[kind](config, attention=attention, dtype=dtype)
    twin.load_state_dict(params_to_state_dict(reference.params))
    errors = twin_errors(
        reference, twin, {"input_ids": ids, **inputs},
        lambda model, logits: numpy_models.loss_and_backward(model, logits, targets),
        lambda logits: TF.cross_entropy(logits, torch.from_numpy(targets)),
    )
    for block in twin.blocks:
        assert block.attn.last_backend == attention
    return errors


# ---------------------------------------------------------------- NumPy <-> twin: the same numbers


@pytest.mark.parametrize("attention", ["math", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_twin_matches_numpy_in_float64(kind, attention, data):
    """Same weights -> same logits, loss and gradient of every parameter, to 1e-9 in float64."""
    problem = data.draw(twin_problems(kind))
    assert_within(twin_model_errors(kind, problem, attention, torch.float64), FLOAT64_TOL)


@needs_triton
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=5)
@given(data=st.data())
def test_twin_with_triton_kernel_matches_numpy(kind, data):
    """The same property through our FlashAttention kernel (float32, the kernel's dtype), with
    head widths the kernel accepts (16..48 here) and T <= 24."""
    problem = data.draw(twin_problems(kind, max_len=24, min_head_dim=16, max_batch=2))
    assert_within(twin_model_errors(kind, problem, "triton", torch.float32), TRITON_TOL)


@pytest.mark.parametrize("attention", ["math", "sdpa"])
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
    causal=st.booleans(),
    seed=seeds,
)
def test_attention_backends_match_numpy_op_pair(attention, shape, causal, seed):
    """functional.math_attention / sdpa_attention == numpy attention_forward / attention_backward,
    with arbitrary boolean masks (B, 1, Nq, Nk), bottom-right causal with Nq != Nk, and rows that
    may attend nothing (outputs and gradients exactly 0, never NaN)."""
    batch, heads, n_queries, n_keys = shape
    rng = np.random.default_rng(seed)
    q, dout = (rng.normal(size=(batch, heads, n_queries, 8)) for _ in range(2))
    k, v = (rng.normal(size=(batch, heads, n_keys, 8)) for _ in range(2))
    mask = rng.random((batch, 1, n_queries, n_keys)) < 0.6
    out, cache = F.attention_forward(q, k, v, attn_mask=mask, causal=causal)
    dq, dk, dv = F.attention_backward(dout, cache)

    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    run = {"math": TF.math_attention, "sdpa": TF.sdpa_attention}[attention]
    twin_out = run(tq, tk, tv, attn_mask=torch.from_numpy(mask), causal=causal)
    twin_out.backward(torch.from_numpy(dout))
    for expected, actual in ((out, twin_out), (dq, tq.grad), (dk, tk.grad), (dv, tv.grad)):
        assert torch.isfinite(actual).all()
        assert relative_error(expected, actual.detach(), FLOOR) <= FLOAT64_TOL


def test_cross_entropy_matches_numpy_and_is_zero_when_every_target_is_ignored():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7))
    targets = rng.integers(-1, 7, (2, 5))
    targets[targets == -1] = -100
    expected, _ = F.cross_entropy_forward(logits, targets)
    assert float(TF.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets))) == pytest.approx(
        expected, rel=1e-12
    )
    twin_logits = torch.tensor(logits, requires_grad=True)
    loss = TF.cross_entropy(twin_logits, torch.full((2, 5), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0 and not twin_logits.grad.any()
    numpy_loss, _ = F.cross_entropy_forward(logits, np.full((2, 5), -100))
    assert numpy_loss == 0.0 and not np.signbit(numpy_loss)  # +0.0, as torch gives, not -0.0


# ---------------------------------------------------------------- names, shapes, moving weights


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_has_the_numpy_params_keys_and_shapes(kind, positions):
    """Exactly the checkpoint names: no lm_head / decoder key for the tied heads, no buffer for the
    sinusoidal table; named_parameters() lists each weight once, under the same name."""
    config = ModelConfig.preset("tiny", positions=positions)
    reference = NUMPY_MODELS[kind](config)
    twin = TWINS[kind](config, attention="math")
    state = twin.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: v.shape for k, v in reference.params.items()
    }
    assert [name for name, _ in twin.named_parameters()] == list(state)
    assert twin.num_parameters() == reference.num_parameters()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_weights_round_trip_numpy_torch_numpy_exactly(kind, dtype):
    config = ModelConfig.preset("tiny")
    reference = randomise(NUMPY_MODELS[kind](config, dtype=dtype), seed=1)
    twin = TWINS[kind].from_numpy(reference, attention="math")
    assert twin.word.weight.dtype == {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    back = state_dict_to_params(twin.state_dict())
    for name, value in reference.params.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value), name
    fresh = NUMPY_MODELS[kind](config, seed=7, dtype=dtype)
    fresh.load_params(back)
    ids = np.array([[1, 2, 3]])
    assert np.array_equal(fresh.forward(ids), reference.forward(ids))


def test_a_bfloat16_twin_comes_back_as_float32():
    """NumPy has no bfloat16: state_dict_to_params raised torch's TypeError 'Got unsupported
    ScalarType BFloat16' (numpy_params, which now calls it, converted)."""
    twin = Decoder.from_numpy(NUMPY_MODELS["decoder"](ModelConfig.preset("tiny"))).bfloat16()
    back = state_dict_to_params(twin.state_dict())
    for name, value in twin.state_dict().items():
        assert back[name].dtype == np.float32 and np.array_equal(back[name], value.float()), name


def test_layers_are_shared_between_the_computation_and_the_checkpoint_tree():
    """The block's attention uses the very Linear registered under the checkpoint name, so moving
    or casting the model moves what the computation uses."""
    twin = Encoder(ModelConfig.preset("tiny", positions="sinusoidal"), attention="math")
    attn = twin.blocks[0].attn
    assert attn.out is twin.get_submodule("bert.encoder.layer.0.attention.output.dense")
    assert attn.projections[1] is twin.get_submodule("bert.encoder.layer.0.attention.self.key")
    twin.to(torch.float64)
    assert attn.out.weight.dtype == torch.float64
    assert twin.positions.table.dtype == torch.float64  # the non-persistent buffer follows .to()
    reference = numpy_models.Encoder(ModelConfig.preset("tiny", positions="sinusoidal"), dtype=np.float64)
    np.testing.assert_allclose(twin.positions.table.numpy(), reference.positions.table, atol=1e-15)


# ---------------------------------------------------------------- the Triton kernel really runs


@needs_triton
@pytest.mark.parametrize("kind", KINDS)
def test_triton_attention_launches_the_kernel_forward_and_backward(kind):
    """One forward + backward launches the forward kernel and the backward kernels once per layer."""
    config = ModelConfig(vocab_size=20, max_len=8, d_model=32, n_heads=2, n_layers=2, d_ff=32)
    twin = TWINS[kind](config, attention="triton")
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(0))
    inputs = {"attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2])} if kind == "encoder" else {}
    launches = flash_attention_module().LAUNCHES
    before = dict(launches)
    logits = twin(ids, **inputs)
    assert launches["forward"] - before.get("forward", 0) == config.n_layers
    logits.square().mean().backward()
    assert launches["backward"] - before.get("backward", 0) == config.n_layers
    assert all(block.attn.last_backend == "triton" for block in twin.blocks)
    assert all(torch.isfinite(p.grad).all() for p in twin.parameters())


# ---------------------------------------------------------------- choosing the backend


def test_default_attention_is_triton_exactly_when_the_kernel_can_run(monkeypatch):
    if importlib.util.find_spec("triton") is None:
        pytest.skip("needs triton installed")
    f32 = torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert TF.check_attention(None, 16, f32) == "sdpa"  # no GPU, no interpreter
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert TF.check_attention(None, 16, f32) == "triton"
    assert TF.check_attention(None, 8, f32) == "sdpa"  # head_dim below the kernel's 16
    assert TF.check_attention(None, 16, torch.float64) == "sdpa"  # no float64 kernel
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert TF.check_attention(None, 64, f32) == "triton"
    monkeypatch.setattr(TF.importlib.util, "find_spec", lambda name: None)  # triton not installed
    assert TF.check_attention(None, 64, f32) == "sdpa"


def test_model_default_and_explicit_attention():
    config = ModelConfig(d_model=32, n_heads=2)
    expected = "triton" if TF.triton_can_run() else "sdpa"
    assert Encoder(config).attention == expected
    assert Decoder(config, dtype=torch.float64).attention == "sdpa"
    assert Decoder(ModelConfig.preset("tiny")).attention == "sdpa"  # head_dim 8
    model = Decoder(config, attention="sdpa")
    model.attention = "math"
    assert {m.attention for m in model.modules() if isinstance(m, MultiHeadAttention)} == {"math"}


def test_unknown_or_impossible_attention_raises():
    config = ModelConfig.preset("tiny")
    with pytest.raises(ValueError, match=r"attention must be one of \('triton', 'sdpa', 'math'\)"):
        Encoder(config, attention="flash")
    with pytest.raises(ValueError, match="attention='triton' cannot run"):
        Decoder(config, attention="triton")  # head_dim 8 (or no Triton at all)
    with pytest.raises(ValueError, match="attention must be one of"):
        Decoder(config).attention = "fast"


# ---------------------------------------------------------------- dropout


@pytest.mark.parametrize("attention", ["math", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_is_off_in_eval_and_random_in_train(kind, attention):
    config = ModelConfig(vocab_size=20, max_len=8, d_model=16, n_heads=2, d_ff=32, dropout=0.3)
    twin = TWINS[kind](config, attention=attention)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    twin.eval()
    with torch.no_grad():
        assert torch.equal(twin(ids), twin(ids))
        evaluated = twin(ids)
        twin.train()
        torch.manual_seed(0)
        first, second = twin(ids), twin(ids)
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, evaluated)


@needs_triton
def test_triton_falls_back_to_sdpa_only_while_attention_dropout_is_active():
    """The kernel has no dropout: training with dropout > 0 runs "sdpa" (with a warning); eval
    runs the kernel."""
    config = ModelConfig(vocab_size=20, max_len=8, d_model=32, n_heads=2, n_layers=1, d_ff=32, dropout=0.2)
    twin = Decoder(config, attention="triton")
    ids = torch.tensor([[1, 2, 3]])
    with pytest.warns(UserWarning, match="attention runs through 'sdpa'"):
        twin.train()(ids)
    assert twin.blocks[0].attn.last_backend == "sdpa"
    twin.eval()(ids)
    assert twin.blocks[0].attn.last_backend == "triton"


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "bad_ids",
    [
        np.array([[1, 2, 32]]),  # id == vocab_size
        np.array([[1, -1, 2]]),  # negative id
        np.zeros((1, 17), dtype=np.int64),  # longer than max_len=16
        np.array([1, 2, 3]),  # not (B, T)
        np.array([[1.0, 2.0]]),  # not integers
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_ids_raise_the_numpy_models_errors(kind, bad_ids):
    config = ModelConfig.preset("tiny")
    with pytest.raises(ValueError) as numpy_error:
        NUMPY_MODELS[kind](config).forward(bad_ids)
    twin = TWINS[kind](config, attention="math")
    for given_ids in (bad_ids, torch.from_numpy(bad_ids)):
        with pytest.raises(ValueError, match=re.escape(str(numpy_error.value))):
            twin(given_ids)


def test_bad_encoder_masks_and_token_types_raise():
    twin = Encoder(ModelConfig.preset("tiny"), attention="math")
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        twin(ids, attention_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="token_type_ids must have the shape of input_ids"):
        twin(ids, token_type_ids=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids must be integers in \[0, type_vocab_size=2\)"):
        twin(ids, token_type_ids=torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="config must be a ModelConfig"):
        Encoder({"vocab_size": 10})


# masks and dropout the reference refuses: (how to corrupt (q, attn_mask, dropout_p), message)
_Q = np.random.default_rng(0).standard_normal((1, 2, 3, 8))
ATTENTION_ARGUMENT_CASES = {
    # 4 copies of a batch of 1 (the twin's math path broadcast the output; sdpa failed in torch)
    "mask with a bigger batch": (dict(attn_mask=np.ones((4, 1, 3, 3), bool)),
                                 "attn_mask of shape (4, 1, 3, 3) does not broadcast to the"),
    "mask of another length": (dict(attn_mask=np.ones((4, 4), bool)),
                               "attn_mask of shape (4, 4) does not broadcast"),
    "mask of 0/1": (dict(attn_mask=np.ones((3, 3))), "attn_mask must be boolean"),
    "dropout_p -0.5": (dict(dropout_p=-0.5),  # no dropout, silently
                       "dropout_p must be a finite number in [0, 1), got -0.5"),
    "dropout_p nan": (dict(dropout_p=float("nan")), "dropout_p must be a finite number in [0, 1)"),
    "dropout_p 1": (dict(dropout_p=1.0), "dropout_p must be a finite number in [0, 1), got 1.0"),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_ARGUMENT_CASES))
def test_twin_attention_refuses_the_masks_and_dropout_the_reference_refuses(case):
    """The reference's op and the twin's math and sdpa paths: one check, one message."""
    arguments, message = ATTENTION_ARGUMENT_CASES[case]
    with pytest.raises(ValueError, match=re.escape(f"attention: {message}")):
        F.attention_forward(_Q, _Q, _Q, **arguments)
    q = torch.from_numpy(_Q)
    tensors = {name: torch.from_numpy(value) if name == "attn_mask" else value
               for name, value in arguments.items()}
    for attention in (TF.math_attention, TF.sdpa_attention):
        with pytest.raises(ValueError, match=re.escape(f"attention: {message}")):
            attention(q, q, q, **tensors)


@pytest.mark.parametrize("key_mask, message", [
    (torch.ones(1, 4, dtype=torch.bool), r"key_mask must be bool of shape \(B, Nk\) = \(1, 3\)"),
    (torch.ones(1, 3, dtype=torch.long), r"key_mask must be bool of shape"),  # was "attn_mask"
    (np.ones((1, 3), bool), r"key_mask must be a torch\.Tensor, got numpy\.ndarray"),
])
@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_twin_attention_names_a_bad_key_mask(backend, key_mask, message):
    q = torch.from_numpy(_Q)
    with pytest.raises(ValueError, match=f"^attention: {message}"):
        TF.attention(q, q, q, key_mask=key_mask, backend=backend)


def test_a_numpy_mask_or_dropout_p_out_of_range_is_refused_by_the_twin_dispatcher():
    q = torch.from_numpy(_Q)
    with pytest.raises(ValueError, match=re.escape("attention: attn_mask must be a torch.Tensor")):
        TF.math_attention(q, q, q, attn_mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match=re.escape("dropout_p must be a finite number in [0, 1)")):
        TF.attention(q, q, q, dropout_p=1.5, backend="sdpa")  # was torch's RuntimeError


# ---------------------------------------------------------------- constructors and KV caches


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("arguments, message", [
    (dict(mlm_head="no"), "mlm_head must be True or False, got 'no'"),  # built the head
    (dict(pooler="no"), "pooler must be True or False, got 'no'"),  # built the pooler
    (dict(dtype=None), "dtype must be a "),  # a float64 model, silently
])
def test_encoder_flags_and_dtype_none_are_refused(backend, arguments, message):
    config = ModelConfig.preset("tiny")
    encoder = numpy_models.Encoder if backend == "numpy" else Encoder
    with pytest.raises(ValueError, match=re.escape(message)):
        encoder(config, **arguments)
    if backend == "torch":
        with pytest.raises(ValueError, match="dtype must be a floating torch or NumPy dtype, got None"):
            Decoder(config, dtype=None)


def _read(model, ids, cache):
    """A cached forward of either twin's Decoder."""
    if isinstance(model, numpy_models.Decoder):
        return model.forward(np.array(ids), cache)
    return model(torch.tensor(ids), cache)


_SMALL = dict(vocab_size=20, max_len=8, d_model=16, n_layers=2, d_ff=32)
KV_CACHE_CASES = {  # case: (the model, the model that filled the cache, message)
    "other heads": (lambda: Decoder(ModelConfig(n_heads=2, **_SMALL), attention="math"),
                    lambda: Decoder(ModelConfig(n_heads=4, **_SMALL), attention="math"),
                    "kv_cache was filled by another model: layer 0 holds 4 heads of width 4"),
    "other heads, numpy": (lambda: numpy_models.Decoder(ModelConfig(n_heads=2, **_SMALL)),
                           lambda: numpy_models.Decoder(ModelConfig(n_heads=4, **_SMALL)),
                           "layer 0 holds 4 heads of width 4 in float32; this model's has 2"),
    "float64 cache": (lambda: Decoder(ModelConfig(n_heads=2, **_SMALL), attention="math"),
                      lambda: Decoder(ModelConfig(n_heads=2, **_SMALL), attention="math",
                                      dtype=torch.float64),
                      "in torch.float64; this model's has 2 heads of width 8 in torch.float32"),
    "a NumPy cache in the twin": (
        lambda: Decoder(ModelConfig(n_heads=2, **_SMALL), attention="math"),
        lambda: numpy_models.Decoder(ModelConfig(n_heads=2, **_SMALL)),
        "kv_cache layer 0's keys must be a torch.Tensor, got numpy.ndarray"),
    "a twin's cache in NumPy": (  # computed on, silently
        lambda: numpy_models.Decoder(ModelConfig(n_heads=2, **_SMALL)),
        lambda: Decoder(ModelConfig(n_heads=2, **_SMALL), attention="math"),
        "kv_cache layer 0's keys must be a numpy.ndarray, got torch.Tensor"),
}


@pytest.mark.parametrize("case", sorted(KV_CACHE_CASES))
def test_a_kv_cache_filled_by_another_model_is_refused(case):
    """Refused where the cache enters, not deep inside the concatenation of old and new keys."""
    make_model, make_filler, message = KV_CACHE_CASES[case]
    filler = make_filler()
    cache = filler.new_kv_cache()
    _read(filler, [[1, 2, 3]], cache)
    with pytest.raises(ValueError, match=re.escape(message)):
        _read(make_model(), [[4]], cache)
