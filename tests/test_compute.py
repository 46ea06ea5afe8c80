"""`minilm.compute` proven three ways: against the built models, against measurement, and against
the published numbers.

Against the models: `parameter_count` equals, exactly and per component, the parameters of the
NumPy and torch models built from every preset small enough to build (tiny, demo, MiniLM-L6) and
from random small configs, the elements of the real MiniLM-L6 checkpoint, and Hugging Face's counts
of every BERT, GPT-2 and GPT-3 preset built on the meta device (no weights allocated, nothing
downloaded).

Against measurement:
- FLOPs equal, exactly, torch's FlopCounterMode on the twin's forward and backward. The twin runs
  attention="math": the counter has no formula for SDPA's CPU kernel, so it would miss attention.
  Neither side counts element-wise work (LayerNorm, GELU, softmax, adds): see `flops.py`.
- Activation memory, defined as the bytes the forward allocates and still holds when it returns
  (what the backward reads, plus the logits), against tracemalloc around the NumPy forward and
  torch.profiler around the twin's (`minilm.compute.measure`). Required: within 10%; asserted:
  within MEMORY_TOLERANCE = 2%, tight enough that leaving out any C-sized tensor of the ledger
  fails (`test_the_memory_tolerance_would_catch_a_missing_tensor`). Worst error observed: 0.17%
  (the NumPy reference; the rest is the input ids and a few per-call index arrays).
  The twin's "math" attention on a *causal* decoder keeps exp(S) beside P (it normalises by hand so
  that a fully masked row gives zeros, not NaN): one more T^2 tensor per head, predicted exactly.
- Weights, gradients, AdamW states and the KV cache: the bytes the NumPy arrays hold.
Step time (and so the measured MFU) is measured in benchmarks/compute.py, not in a timed test.

Against the literature (each source named where it is used): GPT-3 175B's parameters and training
compute (Brown et al. 2020, Table D.1), BERT-base/large (Devlin et al. 2019), GPT-2's four sizes
(OpenAI's gpt-2 repository), activation memory per layer (Korthikanti et al. 2022, eq. 1) and the
PaLM count of training FLOPs (Chowdhery et al. 2022, App. B).
"""

import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minilm.torch as twin
from minilm.cli import main
from minilm.compute import (
    PRESET_MODELS,
    flops_per_token,
    layer_activations,
    measured_mfu,
    memory,
    parameter_count,
    time_estimate,
    training_flops,
)
from minilm.compute.measure import (
    measured_flops,
    numpy_activation_bytes,
    torch_activation_bytes,
)
from minilm.config import PRESETS, ModelConfig
from minilm.numpy import Decoder, Encoder
from minilm.steps import make_step
from minilm.testing.strategies import model_configs, twin_configs

MEMORY_TOLERANCE = 0.02
NUMPY_MODELS = {"decoder": Decoder, "encoder": Encoder}
MASKED_LM = dict(mlm_head=True, pooler=False)  # BertForMaskedLM: the MLM head, no pooler
# the presets small enough to build, with the heads they are built with
BUILDABLE = [("tiny", "decoder", {}), ("tiny", "encoder", {}), ("demo", "decoder", {}),
             ("demo", "encoder", dict(pooler=True)), ("minilm-l6", *PRESET_MODELS["minilm-l6"])]
# the published presets, as released, and BERT with its MLM head
HUGGING_FACE_SIZES = [(preset, PRESET_MODELS[preset][1]) for preset in (
    "bert-base", "bert-large", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-175b")]
HUGGING_FACE_SIZES += [("bert-base", MASKED_LM), ("bert-large", MASKED_LM)]

# ---------------------------------------------------------------- helpers


def twin_of(model, config, parts, **options):
    return getattr(twin, NUMPY_MODELS[model].__name__)(config, **options, **parts)


def components(params):
    """Checkpoint names -> the components of `parameter_count` (an oracle independent of it: it
    reads the names a built model gives its weights; the first matching rule wins)."""
    rules = [(("LayerNorm", "ln_"), "layer_norm"), (("attention.", "attn."), "attention"),
             (("embeddings", "wte", "wpe"), "embeddings"),
             (("intermediate.", "output.dense", "mlp."), "feed_forward"),
             (("cls.", "pooler."), "heads")]
    counts = dict.fromkeys(["embeddings", "attention", "feed_forward", "layer_norm", "heads"], 0)
    for name, value in params.items():
        component = next(part for keys, part in rules if any(key in name for key in keys))
        counts[component] += value.size
    return counts


def relative(measured, predicted):
    return abs(measured - predicted) / predicted


# ---------------------------------------------------------------- against the models


@pytest.mark.parametrize("preset, model, parts", BUILDABLE)
def test_parameter_count_equals_the_built_models(preset, model, parts):
    """Every preset small enough to build: NumPy and torch models, per component and in total."""
    config = ModelConfig.preset(preset)
    count = parameter_count(config, model, **parts)
    numpy_model = NUMPY_MODELS[model](config, **parts)
    assert count == components(numpy_model.params)
    assert count.total == numpy_model.num_parameters()
    assert count.total == twin_of(model, config, parts, attention="math").num_parameters()


@given(config=model_configs(), model=st.sampled_from(["decoder", "encoder"]),
       mlm_head=st.booleans(), pooler=st.booleans())
def test_parameter_count_equals_random_models(config, model, mlm_head, pooler):
    """Random small configs (both position kinds: sinusoidal tables are not parameters)."""
    parts = dict(mlm_head=mlm_head, pooler=pooler) if model == "encoder" else {}
    count = parameter_count(config, model, **parts)
    assert count == components(NUMPY_MODELS[model](config, **parts).params)
    assert count.total == twin_of(model, config, parts, attention="math").num_parameters()


def test_parameter_count_equals_the_real_minilm_checkpoint(minilm_dir):
    """The elements stored in MiniLM-L6's model.safetensors, as released (BertModel + pooler)."""
    from safetensors import safe_open

    with safe_open(str(minilm_dir / "model.safetensors"), "np") as weights:
        names = [name for name in weights.keys()  # noqa: SIM118 (safe_open is not iterable)
                 if not name.endswith("position_ids")]  # a buffer older transformers saved
        stored = sum(int(np.prod(weights.get_slice(name).get_shape())) for name in names)
    model, parts = PRESET_MODELS["minilm-l6"]
    assert parameter_count(ModelConfig.preset("minilm-l6"), model, **parts).total == stored


def _hf_on_meta(config, model, parts):
    """The Hugging Face model of the same sizes, built on the meta device (shapes, no storage)."""
    import transformers

    with torch.device("meta"):
        if model == "decoder":
            return transformers.GPT2LMHeadModel(transformers.GPT2Config(
                vocab_size=config.vocab_size, n_positions=config.max_len, n_embd=config.d_model,
                n_layer=config.n_layers, n_head=config.n_heads, n_inner=config.d_ff))
        hf_config = transformers.BertConfig(
            vocab_size=config.vocab_size, hidden_size=config.d_model,
            num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
            intermediate_size=config.d_ff, max_position_embeddings=config.max_len,
            type_vocab_size=config.type_vocab_size)
        if parts == MASKED_LM:
            return transformers.BertForMaskedLM(hf_config)  # no pooler: add_pooling_layer=False
        assert parts == dict(mlm_head=False, pooler=True)
        return transformers.BertModel(hf_config)


@pytest.mark.parametrize("preset, parts", HUGGING_FACE_SIZES)
def test_parameter_count_equals_hugging_face_on_the_meta_device(preset, parts):
    """HF's num_parameters() counts tied weights once, as we do. Encoders: BertModel (pooler, as
    released) and BertForMaskedLM (MLM head, no pooler)."""
    model, config = PRESET_MODELS[preset][0], ModelConfig.preset(preset)
    hf = _hf_on_meta(config, model, parts)
    assert parameter_count(config, model, **parts).total == hf.num_parameters()


def test_every_preset_has_an_architecture():
    assert PRESET_MODELS.keys() == PRESETS.keys()


@pytest.mark.parametrize("field", ["vocab_size", "max_len", "d_ff", "n_layers", "type_vocab_size"])
def test_an_off_by_one_in_any_size_changes_the_count(field):
    """The equality tests are sharp: a formula reading a size one off would not pass them."""
    config = ModelConfig.preset("tiny")
    built = Encoder(config, pooler=True).num_parameters()
    off = ModelConfig.preset("tiny", **{field: getattr(config, field) + 1})
    assert parameter_count(off, "encoder", pooler=True).total != built


# ---------------------------------------------------------------- against measurement: FLOPs


def _assert_flops_measured(config, model, batch, seq_len):
    parts = dict(mlm_head=True, pooler=False) if model == "encoder" else {}
    twin = twin_of(model, config, parts, attention="math", dtype=torch.float64)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len))
    forward, backward = measured_flops(twin, ids)
    tokens = batch * seq_len
    assert forward == flops_per_token(config, seq_len, False, model, **parts).total * tokens
    assert forward + backward == flops_per_token(config, seq_len, True, model, **parts).total * tokens
    return forward, backward


@given(config=twin_configs(), model=st.sampled_from(["decoder", "encoder"]),
       batch=st.integers(1, 3), seq_len=st.integers(1, 12))
def test_flops_equal_the_flop_counter_on_random_twins(config, model, batch, seq_len):
    """Exact equality: the counter counts the same matmuls by the same formula 2 m k n."""
    _assert_flops_measured(config, model, batch, seq_len)


@pytest.mark.parametrize("model", ["decoder", "encoder"])
def test_flops_equal_the_flop_counter_on_the_demo_model(model):
    forward, backward = _assert_flops_measured(ModelConfig.preset("demo"), model, 2, 128)
    assert backward == 2 * forward  # every matmul has two gradient matmuls of its size


@pytest.mark.parametrize("batch, seq_len", [(1, 1), (2, 7), (3, 16)])
def test_the_poolers_flops_equal_the_flop_counter(batch, seq_len):
    """The pooler reads one token per sequence ([CLS]): 2 C^2 per sequence, so 2 C^2 / T per
    token; counted per token it would be T times too many."""
    config = ModelConfig.preset("tiny")
    encoder = twin_of("encoder", config, dict(mlm_head=False, pooler=True), attention="math",
                      dtype=torch.float64)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len))
    forward, backward = measured_flops(lambda ids: encoder.pool(encoder.encode(ids)), ids)
    tokens = batch * seq_len
    parts = dict(mlm_head=False, pooler=True)
    assert forward == pytest.approx(
        flops_per_token(config, seq_len, False, "encoder", **parts).total * tokens, rel=1e-12)
    assert forward + backward == pytest.approx(
        flops_per_token(config, seq_len, True, "encoder", **parts).total * tokens, rel=1e-12)


def test_an_off_by_one_in_seq_len_or_d_ff_changes_the_flops():
    config = ModelConfig.preset("demo")
    exact = flops_per_token(config, 64).total
    assert flops_per_token(config, 65).total != exact
    assert flops_per_token(ModelConfig.preset("demo", d_ff=513), 64).total != exact


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_training_flops_are_6_n_matmul_plus_12_l_t_c(preset):
    """PaLM's model-FLOPs count (Chowdhery et al. 2022, App. B: 6 N + 12 L H Q T per token, H Q =
    C): N_mm the weight matrices a built model really has (not biases, norms, positions)."""
    config, seq_len = ModelConfig.preset(preset), 16
    model = Decoder(config)
    n_matmul = sum(value.size for name, value in model.params.items()
                   if value.ndim == 2 and name != "transformer.wpe.weight")
    palm = 6 * n_matmul + 12 * config.n_layers * seq_len * config.d_model
    assert flops_per_token(config, seq_len).total == palm


# ---------------------------------------------------------------- against measurement: memory


def _ids(config, batch, seq_len):
    return np.random.default_rng(0).integers(0, config.vocab_size, (batch, seq_len))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("model", ["decoder", "encoder"])
def test_activation_memory_of_the_numpy_reference(model, dropout):
    """tracemalloc around the forward (training mode: dropout masks are kept)."""
    config, batch, seq_len = ModelConfig.preset("demo", vocab_size=64, dropout=dropout), 4, 64
    measured = numpy_activation_bytes(NUMPY_MODELS[model](config), _ids(config, batch, seq_len))
    predicted = memory(config, batch, seq_len, implementation="numpy", model=model).activations
    print(f"\n{model} dropout {dropout}: measured {measured}, predicted {predicted.total}")
    assert relative(measured, predicted.total) <= MEMORY_TOLERANCE


@pytest.mark.parametrize("model, backend, attention", [
    ("decoder", "sdpa", "flash"),  # causal SDPA on a CPU: a flash kernel (O, log-sum-exp kept)
    ("encoder", "sdpa", "flash"),
    ("encoder", "math", "naive"),  # no mask: torch.softmax keeps P, the matmul reuses it
])
def test_activation_memory_of_the_twin(model, backend, attention):
    """torch.profiler around the twin's forward (autograd recording), dropout 0."""
    config, batch, seq_len = ModelConfig.preset("demo", vocab_size=64), 4, 64
    twin = twin_of(model, config, {}, attention=backend)
    measured = torch_activation_bytes(twin, torch.from_numpy(_ids(config, batch, seq_len)))
    predicted = memory(config, batch, seq_len, attention=attention, model=model).activations
    print(f"\n{model} {backend}: measured {measured}, predicted {predicted.total}")
    assert relative(measured, predicted.total) <= MEMORY_TOLERANCE


def test_the_twins_masked_math_attention_keeps_one_more_t_squared_tensor():
    """Causal "math" attention normalises by hand: exp(S) is kept for the division's backward and
    P for P V's, where torch.softmax keeps P alone. So: naive + L * B * H * T^2 * b."""
    config, batch, seq_len = ModelConfig.preset("demo", vocab_size=64), 4, 64
    twin = twin_of("decoder", config, {}, attention="math")
    measured = torch_activation_bytes(twin, torch.from_numpy(_ids(config, batch, seq_len)))
    naive = memory(config, batch, seq_len, attention="naive").activations.total
    exp_scores = config.n_layers * batch * config.n_heads * seq_len**2 * 4
    assert relative(measured, naive) > 0.05
    assert relative(measured, naive + exp_scores) <= MEMORY_TOLERANCE


def test_the_memory_tolerance_would_catch_a_missing_tensor():
    """Leaving any C-sized (or larger) tensor out of the per-layer ledger breaks the tolerance."""
    config, batch, seq_len = ModelConfig.preset("demo", vocab_size=64), 4, 64
    measured = numpy_activation_bytes(Decoder(config), _ids(config, batch, seq_len))
    estimate = memory(config, batch, seq_len, implementation="numpy")
    c_sized = config.d_model * 4 * batch * seq_len
    for name, one_layer in estimate.activations_per_layer.items():
        if one_layer >= c_sized:
            wrong = estimate.activations.total - config.n_layers * one_layer
            assert relative(measured, wrong) > MEMORY_TOLERANCE, name


def test_weights_gradients_and_adam_states_are_what_the_numpy_step_holds():
    config = ModelConfig.preset("demo", vocab_size=64)
    model = Decoder(config)
    step = make_step(model, weight_decay=0.1)
    ids = _ids(config, 2, 16)
    step((ids,), ids, lr=1e-3)
    estimate = memory(config, 2, 16)
    assert estimate.weights == sum(p.nbytes for p in model.params.values())
    assert estimate.gradients == sum(g.nbytes for g in model.grads.values())
    states = step.optimizer.state
    assert estimate.optimizer_states == sum(
        array.nbytes for slot in ("exp_avg", "exp_avg_sq") for array in states[slot].values())


def test_kv_cache_bytes_are_the_caches_keys_and_values():
    config, batch, seq_len = ModelConfig.preset("demo", vocab_size=64), 3, 40
    model = Decoder(config)
    cache = model.new_kv_cache()
    model.forward(_ids(config, batch, seq_len), kv_cache=cache)
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert memory(config, batch, seq_len).kv_cache == held
    assert memory(config, batch, seq_len, model="encoder").kv_cache == 0


# ---------------------------------------------------------------- against the literature


def test_gpt3_175b_parameters_and_training_compute():
    """Brown et al. 2020, "Language Models are Few-Shot Learners", Table D.1: GPT-3 175B has
    174,600M parameters and took 3.14e23 FLOPs for 300B tokens, counted as 6 N D ("this analysis
    ignores the attention operation"). Our exact count adds attention, 12 L T C per token: with
    T = 2048 and C = 12288 that is T / (6 C) = 2.8% more (and GPT-3's sparse layers do less)."""
    config = ModelConfig.preset("gpt3-175b")
    assert relative(parameter_count(config).total, 174.6e9) <= 0.01
    compute = training_flops(config, 300e9, seq_len=2048)
    assert relative(compute.six_n_d, 3.14e23) <= 0.01
    attention_share = 2048 / (6 * 12288)
    assert relative(compute.exact, compute.six_n_d * (1 + attention_share)) <= 0.01


@pytest.mark.parametrize("preset, published", [("bert-base", 110e6), ("bert-large", 340e6)])
def test_bert_sizes(preset, published):
    """Devlin et al. 2019, "BERT", section 3: BERT-BASE 110M, BERT-LARGE 340M parameters (the
    released encoder with its pooler; the MLM head would add 0.6M / 1.1M)."""
    model, parts = PRESET_MODELS[preset]
    assert relative(parameter_count(ModelConfig.preset(preset), model, **parts).total,
                    published) <= 0.02


@pytest.mark.parametrize("preset, published", [
    ("gpt2", 124e6), ("gpt2-medium", 355e6), ("gpt2-large", 774e6), ("gpt2-xl", 1558e6)])
def test_gpt2_sizes(preset, published):
    """OpenAI's gpt-2 repository (github.com/openai/gpt-2): the released models are named 124M,
    355M, 774M and 1558M, and its README notes that the paper's 117M and 345M (Radford et al.
    2019, Table 2) were miscounted."""
    assert relative(parameter_count(ModelConfig.preset(preset)).total, published) <= 0.01


def test_activation_memory_per_layer_is_korthikantis():
    """Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
    eq. 1: a layer keeps s b h (34 + 5 a s / h) bytes (16-bit activations, 1-byte dropout masks,
    d_ff = 4h); full recomputation keeps 2 s b h per layer. Ours adds LayerNorm statistics."""
    config = ModelConfig.preset("gpt3-175b", dropout=0.1)
    s, b, h, a = 2048, 1, config.d_model, config.n_heads
    per_layer = layer_activations(config, s, "bfloat16").total * s * b
    assert relative(per_layer, s * b * h * (34 + 5 * a * s / h)) <= 0.001
    recomputed = memory(config, b, s, "bfloat16", checkpointing=True).activations
    assert recomputed["layer inputs"] == 2 * s * b * h * config.n_layers


# ---------------------------------------------------------------- time, errors, command line


def test_time_estimate_and_measured_mfu_are_inverse():
    seconds = time_estimate(3.14e23, peak_flops=1e15, mfu=0.5)
    assert seconds == pytest.approx(6.28e8)
    assert measured_mfu(3.14e23, seconds, 1e15) == pytest.approx(0.5)


@pytest.mark.parametrize("call, message", [
    (lambda c: parameter_count(c, "bert"), "model must be one of"),
    (lambda c: parameter_count(c, "decoder", pooler=True), "a decoder has no parts"),
    (lambda c: parameter_count(c, "encoder", head=True), "has no parts"),
    (lambda c: flops_per_token(c, 17), "seq_len"),
    (lambda c: memory(c, 1, 8, dtype="int8"), "dtype"),
    (lambda c: memory(c, 0, 8), "batch"),
    (lambda c: memory(c, 1, 8, optimizer="lion"), "optimizer"),
    (lambda c: memory(c, 1, 8, attention="sparse"), "attention"),
    (lambda c: time_estimate(1.0, 1.0, mfu=1.5), "mfu"),
    (lambda c: training_flops(c, float("nan"), 8), "n_tokens must be a finite number"),
    (lambda c: training_flops(c, float("inf"), 8), "n_tokens must be a finite number"),
    (lambda c: time_estimate(1.0, float("nan")), "peak_flops must be a finite number"),
    (lambda c: time_estimate(1.0, float("inf")), "peak_flops must be a finite number"),
    (lambda c: time_estimate(1.0, 1.0, mfu=float("nan")), "mfu must be a finite number"),
    (lambda c: measured_mfu(1.0, float("nan"), 1.0), "seconds must be a finite number"),
    # a truthy string is not True, True is not a count
    (lambda c: flops_per_token(c, 8, training="no"), "training must be True or False, got 'no'"),
    (lambda c: parameter_count(c, "encoder", mlm_head="no"), "mlm_head must be True or False"),
    (lambda c: memory(c, 1, 8, model="encoder", pooler=1), "pooler must be True or False"),
    (lambda c: memory(c, 1, 8, checkpointing="no"), "checkpointing must be True or False"),
    (lambda c: flops_per_token(c, True), "seq_len must be an int in \\[1, max_len=16\\]"),
    (lambda c: memory(c, True, 8), "batch must be an int >= 1, got True"),
    (lambda c: memory(c, 1.0, 8), "batch must be an int >= 1, got 1.0"),
    # a finite result or none: an inf would be printed, inf / inf be NaN
    (lambda c: time_estimate(float("nan"), 1.0), "flops must be a finite number"),
    (lambda c: measured_mfu(float("inf"), 1.0, 1.0), "flops must be a finite number"),
    (lambda c: training_flops(c, 1e305, 8), "the FLOP count of 1e\\+305 training tokens overflows"),
    (lambda c: time_estimate(1e300, 1e-300), "the time of 1e\\+300 FLOPs at 1e-300 FLOP/s x MFU 1 "),
    (lambda c: time_estimate(1.0, 5e-324, 0.5), "overflows a float"),  # not a ZeroDivisionError
    (lambda c: measured_mfu(1e300, 1e-300, 1.0), "the MFU of .* overflows a float"),
])
def test_bad_arguments_name_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call(ModelConfig.preset("tiny"))


def test_numpy_integers_are_counts_and_numpy_bools_are_flags():
    """A count taken from an array (a sum, an element) is an np.int64: the same count as the int,
    and a Python int after the check (an np.int64 product would wrap around past 2**63)."""
    config = ModelConfig.preset("gpt2")
    seq_len = np.ones((2, 16), dtype=np.int64).sum(axis=1)[0]  # np.int64(16)
    assert flops_per_token(config, seq_len) == flops_per_token(config, 16)
    assert training_flops(config, np.int64(10**9), seq_len) == training_flops(config, 1e9, 16)
    assert memory(config, np.int64(2), seq_len) == memory(config, 2, 16)
    huge = memory(config, np.int64(2**62), np.int64(1024)).training
    assert huge == memory(config, 2**62, 1024).training > 2**63
    bert = ModelConfig.preset("bert-base")
    assert (parameter_count(bert, "encoder", mlm_head=np.False_)
            == parameter_count(bert, "encoder", mlm_head=False))


def test_minilm_compute_prints_the_table(capsys):
    assert main(["compute", "gpt3-175b", "--tokens", "300e9", "--seq-len", "2048",
                 "--dtype", "bf16", "--peak-tflops", "312"]) == 0
    out = capsys.readouterr().out
    assert "174,604,259,328 parameters" in out and "3.14e+23" in out and "312 TFLOP/s" in out
    assert main(["compute", "bert-base", "--mlm-head"]) == 0
    assert "mlm_head=True, pooler=True" in capsys.readouterr().out
    assert main(["compute", "gpt2", "--seq-len", "2048"]) == 2
    assert "seq_len" in capsys.readouterr().err


def test_minilm_compute_keeps_huge_numbers_in_their_columns(capsys):
    """Past 1024 TiB, bytes are printed in e-notation, days past a million too, and a name wider
    than its column is still followed by a space: every row splits into its name and values."""
    assert main(["compute", "gpt2", "--batch", "100000000000000000000", "--tokens", "1e30",
                 "--peak-tflops", "1e-30"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\n  device-days, 1e-30 TFLOP/s at MFU 0.4 +2.47e\+52\n", out)
    assert re.search(r"\n  activations +2e\+17 TiB +7.61e\+16 TiB +2.75e\+16 TiB\n", out)
    assert "inf" not in out and "nan" not in out


@pytest.mark.parametrize("flags, message", [
    (["--tokens", "1e300"], "the FLOP count of 1e\\+300 training tokens overflows a float"),
    (["--tokens", "1e30", "--peak-tflops", "1e-300"], "the time of .* overflows a float"),
    (["--batch", "1" + "0" * 310], "tokens needs more bytes than a float can hold"),
])
def test_minilm_compute_refuses_a_result_that_overflows(flags, message, capsys):
    """Finite inputs whose result is beyond a float: one line saying what overflowed, never an
    inf (or the NaN of inf / inf) in the table."""
    assert main(["compute", "gpt2", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and re.search(message, captured.err)


@pytest.mark.parametrize("flags, message", [
    (["--tokens", "nan"], "--tokens must be a finite number in \\(0, inf\\), got nan"),
    (["--tokens", "inf"], "--tokens must be a finite number in \\(0, inf\\), got inf"),
    (["--tokens", "-1"], "--tokens must be a finite number in \\(0, inf\\), got -1.0"),
    (["--peak-tflops", "nan"], "--peak-tflops must be a finite number in \\(0, inf\\), got nan"),
    (["--peak-tflops", "inf"], "--peak-tflops must be a finite number in \\(0, inf\\), got inf"),
    (["--peak-tflops", "-1"], "--peak-tflops must be a finite number in \\(0, inf\\), got -1.0"),
    (["--mfu", "nan"], "--mfu must be a finite number in \\(0, 1\\], got nan"),
])
def test_minilm_compute_refuses_a_number_that_is_not_finite_and_positive_naming_the_flag(
        flags, message, capsys):
    """NaN passed `<= 0` and printed nan, inf printed nan or 0.0 days; each is refused, and the
    message names the flag, not the library's n_tokens / peak_flops (in FLOP/s, not TFLOP/s)."""
    assert main(["compute", "tiny", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and re.search(message, captured.err)
