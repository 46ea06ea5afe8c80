"""minilm.compress: int8 quantization, head pruning and distillation, each against an oracle.

Quantization
- quantize -> dequantize moves every weight by at most scale/2 (+ 1e-12 relative: the division and
  the product round); the integers are in [-127, 127] and each row's largest |w| maps to +-127;
  they equal torch.quantize_per_channel's with the same scales (round half to even both).
- int8_linear_forward equals the integer arithmetic done in Python integers (exact sums, 1e-12),
  stays within `int8_linear_error_bound` of the float product, and equals the twin's int8 layer
  (torch._int_mm) to 1e-6 relative on the same inputs; whole quantized float32 models of both twins
  agree to 1e-4 (worst seen over 20 random models: 2e-7; the margin is for an activation that
  float32 noise upstream rounds to the other integer).
Pruning
- the pruned model equals the full one with the pruned heads' gates at 0 (both twins, BERT and
  GPT-2, pruning twice) to 1e-12 in float64, and Hugging Face's BertModel with those heads'
  columns of the output projection zeroed (HF 5 has no prune_heads) to 1e-10.
Distillation
- the loss equals torch's kl_div(batchmean) * T^2 and cross-entropy (1e-12); its hand-written
  backward equals finite differences (1e-8) and autograd (1e-12); one training step of the NumPy
  and torch students agrees (1e-10, float64, no dropout).
"""

import re
from functools import partial

import numpy as np
import pytest
import torch
import transformers
from helpers import tiny_classifier
from hypothesis import given
from hypothesis import strategies as st

import minilm.torch as twin
from minilm import ModelConfig
from minilm.checkpoint import load_run, save_run
from minilm.compress import (
    DistillSettings,
    dequantize_per_channel,
    distill,
    distillation_loss,
    distillation_loss_backward,
    distillation_loss_forward,
    heads_to_prune,
    int8_linear_forward,
    mask_heads,
    model_bytes,
    prune_heads,
    quantize,
    quantize_per_channel,
    quantize_torch,
    random_heads,
    student_from_teacher,
)
from minilm.compress.distill import make_distillation_step
from minilm.compress.quantize import int8_linear_error_bound
from minilm.finetune import FinetuneSettings
from minilm.interpret import set_head_gates
from minilm.numpy import Decoder
from minilm.tasks import Task, load_task
from minilm.testing.oracles import numerical_gradient, randomise, relative_error
from minilm.testing.strategies import distillation_cases, float_arrays, quantization_cases
from minilm.torch.layers import Linear as TwinLinear

CONFIG = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=4, n_layers=3, d_ff=32)
IDS = np.array([[101, 1996, 2833, 2001, 3147, 102, 0], [101, 2307, 3185, 102, 0, 0, 0]])
MASK = (IDS > 0).astype(np.int64)


classifier = partial(tiny_classifier, CONFIG)  # tests/helpers.py


# ================================================================ quantization


@given(quantization_cases())
def test_quantize_then_dequantize_moves_each_weight_by_at_most_half_a_step(case):
    weight, bits = case["weight"], case["bits"]
    q, scale = quantize_per_channel(weight, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == np.int8 and scale.shape == (weight.shape[0],)
    assert np.abs(q.astype(int)).max() <= qmax
    error = np.abs(dequantize_per_channel(q, scale) - weight)
    assert np.all(error <= scale[:, None] / 2 * (1 + 1e-12))
    nonzero = np.abs(weight).max(axis=1) > 0
    assert np.all(np.abs(q[nonzero]).max(axis=1) == qmax)  # a row's largest |w| uses the range
    assert np.all(scale[~nonzero] == 1.0) and not q[~nonzero].any()


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")  # the oracle, deprecated
@given(quantization_cases(bits=8))                                          # in torch 2.13, still exact
def test_quantized_integers_equal_torch_quantize_per_channel(case):
    weight = case["weight"].astype(np.float32)  # what torch quantizes
    q, scale = quantize_per_channel(weight)
    theirs = torch.quantize_per_channel(torch.from_numpy(weight), torch.from_numpy(scale),
                                        torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8)
    np.testing.assert_array_equal(theirs.int_repr().numpy(), q)
    twin_q, twin_scale = quantize_torch.quantize_per_channel(torch.from_numpy(weight))
    np.testing.assert_array_equal(twin_q.numpy(), q)
    np.testing.assert_array_equal(twin_scale.numpy(), scale)


@st.composite
def linear_problems(draw):
    n_in, n_out = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    x = draw(float_arrays((draw(st.integers(1, 4)), n_in), low=-4.0, high=4.0))
    weight = draw(float_arrays((n_out, n_in), low=-2.0, high=2.0))
    bias = draw(float_arrays((n_out,)))
    return x, weight, bias


@given(linear_problems())
def test_int8_linear_is_the_integer_arithmetic_within_its_error_bound(problem):
    x, weight, bias = problem
    q, scale = quantize_per_channel(weight)
    out = int8_linear_forward(x, q, scale, bias)
    xq, x_scale = quantize_per_channel(x)
    exact = [[sum(int(a) * int(b) for a, b in zip(row, w_row)) for w_row in q] for row in xq]
    expected = np.array(exact, dtype=np.float64) * x_scale[:, None] * scale + bias
    assert relative_error(expected, out) <= 1e-12
    float_product = x @ weight.T + bias
    assert np.all(np.abs(out - float_product) <= int8_linear_error_bound(x, q, scale) + 1e-9)


@given(linear_problems())
def test_the_twins_int8_linear_computes_the_same(problem):
    x, weight, bias = problem
    linear = TwinLinear(torch.nn.Module(), "layer", x.shape[1], weight.shape[0],
                                torch.Generator()).double()
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    theirs = quantize_torch.QuantizedLinear(linear)(torch.from_numpy(x)).numpy()
    q, scale = quantize_per_channel(weight)
    assert relative_error(int8_linear_forward(x, q, scale, bias), theirs) <= 1e-6


def test_quantize_shrinks_every_linear_and_both_twins_agree():
    model = classifier(np.float32)
    reference = model.forward(IDS, MASK)
    small = quantize(model)
    np.testing.assert_array_equal(model.forward(IDS, MASK), reference)  # the original untouched
    twin_small = quantize(twin.SequenceClassifier.from_numpy(model, attention="math"))
    with torch.no_grad():
        twin_logits = twin_small(IDS, MASK).numpy()
    assert relative_error(small.forward(IDS, MASK), twin_logits) <= 1e-4
    # int8 stays close (a loose sanity check: the exact bound is per layer, above)
    assert relative_error(reference, small.forward(IDS, MASK)) <= 0.15
    linear = [name for name in model.params if name.endswith(".weight") and "LayerNorm" not in name
              and "embeddings" not in name]
    assert not set(linear) & set(small.params)  # every Linear weight left the float parameters
    saved = sum(model.params[name].size * 3 for name in linear)  # 4 bytes -> 1 each
    scales = sum(model.params[name].shape[0] * 4 for name in linear)
    assert model_bytes(model) - model_bytes(small) == saved - scales
    assert model_bytes(twin_small) == model_bytes(small)
    with pytest.raises(ValueError, match="quantized"):
        small.backward(np.ones((2, 2), dtype=np.float32))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_quantized_model_refuses_gradients_and_what_needs_its_float_weights(backend, tmp_path):
    """The twin's int8 layers computed a 'gradient' through the input's scale alone (rounding
    and the integer product carry none): saliency and head importance of a quantized twin were
    near zero where NumPy refused; pruning and distilling one failed with a KeyError or a
    load_params message."""
    from minilm.interpret import attention_maps, head_importance, saliency
    from minilm.pretrained import default_model_path
    from minilm.tokenizers import WordPieceTokenizer

    model = classifier(np.float32)
    if backend == "torch":
        model = twin.SequenceClassifier.from_numpy(model, attention="math")
    small = quantize(model)
    tokenizer = WordPieceTokenizer.from_pretrained(default_model_path())
    no_backward = "is quantized: an int8 model is for inference and has no backward"
    with pytest.raises(ValueError, match=no_backward):
        saliency(small, tokenizer, "the food")
    with pytest.raises(ValueError, match=no_backward):
        head_importance(small, tokenizer, ["the food", "a film"], [1, 0])
    with pytest.raises(ValueError, match="cannot prune its heads: the model is quantized"):
        prune_heads(small, {0: [1]})
    with pytest.raises(ValueError, match="cannot take a student from it: the model is quantized"):
        student_from_teacher(small)
    with pytest.raises(ValueError, match="cannot save it as a run: the model is quantized"):
        save_run(tmp_path / "run", small, tokenizer)  # transformers would load random Linears
    assert not (tmp_path / "run").exists()
    if backend == "torch":  # its maps are drawn in NumPy, from the float weights
        with pytest.raises(ValueError, match="draw the maps of the float twin"):
            attention_maps(small, tokenizer, "the food")
        logits = small(IDS, MASK)  # inference needs no torch.no_grad(): nothing asks for a gradient
        assert not logits.requires_grad and not any(p.requires_grad for p in small.parameters())
    else:
        attention_maps(small, tokenizer, "the food")


@pytest.mark.parametrize(("weight", "bits", "message"), [
    (np.array([[3, -5], [1, 2]]), 8, "weight must be a floating-point array, got int64"),
    (np.array([[True, False]]), 8, "weight must be a floating-point array, got bool"),
    (np.array([[np.inf, 1.0], [1.0, 2.0]]), 8, "weight must be finite numbers, got inf at index"),
    (np.array([[1.0, 2.0], [np.nan, 2.0]]), 8, "weight must be finite numbers, got nan at index"),
    (np.ones((2, 2)), 9, "bits must be at most 8"),
    (np.ones((2, 2)), 2.5, "bits must be an int >= 2, got 2.5"),
    (np.ones((2, 2)), True, "bits must be an int >= 2, got True"),
])
def test_quantize_per_channel_refuses_integer_or_non_finite_weights(weight, bits, message):
    """An integer weight's scale was cast to 0 (every q +-127, every weight dequantized to 0); an
    inf made its row NaN; bits 2.5 made 2 ** 1.5 - 1 levels."""
    with pytest.raises(ValueError, match=re.escape(message)):
        quantize_per_channel(weight, bits)


def test_a_non_finite_activation_is_named_x_not_weight():
    q, scale = quantize_per_channel(np.ones((2, 3)))
    with pytest.raises(ValueError, match=re.escape("x must be finite numbers, got nan")):
        int8_linear_forward(np.array([[1.0, np.nan, 0.0]]), q, scale)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_the_twin_refuses_a_non_finite_weight_or_activation_as_numpy_does(bad):
    """The twin turned a NaN or inf row into zeros (scale NaN -> 1, or inf; round -> 0): a NaN
    model quantized to a finite one, a NaN input vanished."""
    weight = torch.tensor([[1.0, 2.0], [bad, 0.5]])
    with pytest.raises(ValueError, match=re.escape(f"weight must be finite numbers, got {bad}")):
        quantize_torch.quantize_per_channel(weight)
    linear = TwinLinear(torch.nn.Module(), "layer", 2, 3, torch.Generator())
    with pytest.raises(ValueError, match=re.escape(f"x must be finite numbers, got {bad} at index "
                                                   "(0, 1)")):
        quantize_torch.QuantizedLinear(linear)(torch.tensor([[1.0, bad]]))


# ================================================================ pruning


def test_heads_to_prune_ranks_globally_and_keeps_a_head_per_layer():
    importance = np.array([[0.1, 0.2, 0.9], [0.05, 0.01, 0.02], [0.5, 0.6, 0.7]])
    assert heads_to_prune(importance, 3 / 9) == {0: [0], 1: [1, 2]}
    # the two least important of layer 1 go, its third stays; then layer 0's two lowest
    assert heads_to_prune(importance, 4 / 9) == {0: [0, 1], 1: [1, 2]}
    assert sum(map(len, heads_to_prune(importance, 6 / 9).values())) == 6
    with pytest.raises(ValueError, match="at most 6"):
        heads_to_prune(importance, 7 / 9)
    draw = random_heads(3, 3, 4 / 9, np.random.default_rng(0))
    assert sum(map(len, draw.values())) == 4 and all(len(h) <= 2 for h in draw.values())


BAD_HEADS = {  # heads (CONFIG: 3 layers of 4 heads) -> what the message must say
    "negative head": ({0: [-1]}, ("layer 0 -> [-1] is not an int layer in [0, 3) with a list "
                                  "of int heads in [0, 4)")),
    "head out of range": ({0: [4]}, "layer 0 -> [4] is not"),
    "layer out of range": ({5: [0]}, "layer 5 -> [0] is not"),
    "negative layer": ({-1: [0]}, "layer -1 -> [0] is not"),
    "float head": ({0: [1.7]}, "layer 0 -> [1.7] is not"),
    "str head": ({0: ["1"]}, "layer 0 -> ['1'] is not"),
    "bool head": ({0: [True]}, "layer 0 -> [True] is not"),
    "str layer": ({"0": [1]}, "layer '0' -> [1] is not"),
    "bare int": ({0: 1}, "layer 0 -> 1 is not"),
    "None heads": ({0: None}, "layer 0 -> None is not"),
    "not a dict": (None, "heads must be a dict {layer: [heads]}, got NoneType"),
    "a list": ([[0, 1]], "heads must be a dict {layer: [heads]}, got list"),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
@pytest.mark.parametrize("function", [prune_heads, mask_heads])
def test_prune_and_mask_refuse_heads_that_name_no_head(function, case):
    """Head -1 masked head 3 and 1.7 pruned head 1, silently; a layer out of range was an
    IndexError, a str layer a TypeError. Both functions apply the same check."""
    heads, message = BAD_HEADS[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        function(classifier(), heads)


def test_numpy_ints_name_heads():
    heads = {np.int64(0): np.array([1, 3])}
    assert prune_heads(classifier(), heads).config.pruned_heads == {0: (1, 3)}


@pytest.mark.parametrize(("importance", "fraction", "keep", "message"), [
    ([[np.nan, 0.5], [0.1, 0.2]], 0.5, 1, "importance must be finite numbers, got nan at index"),
    ([[np.inf, 0.5], [0.1, 0.2]], 0.5, 1, "importance must be finite numbers, got inf"),
    (np.ones((2, 2)), 1.0, -1, "keep_per_layer must be an int >= 1, got -1"),
    (np.ones((2, 2)), 0.0, 0, "keep_per_layer must be an int >= 1, got 0"),
    (np.ones((2, 2)), 0.5, 1.0, "keep_per_layer must be an int >= 1, got 1.0"),
    (np.ones((2, 2)), 0.0, 3, "keep_per_layer must be at most the 2 heads of a block, got 3"),
    (np.ones((2, 2)), "0.5", 1, "fraction must be a finite number in [0, 1], got '0.5'"),
    (np.ones((2, 2)), np.nan, 1, "fraction must be a finite number in [0, 1], got nan"),
    (np.ones((2, 2)), 1.5, 1, "fraction must be a finite number in [0, 1], got 1.5"),
    (np.ones(4), 0.5, 1, "importance must be (n_layers, n_heads), got shape (4,)"),
])
def test_heads_to_prune_refuses_bad_scores_and_settings(importance, fraction, keep, message):
    """A NaN score was ranked most important, keep_per_layer=-1 let every head of a block go, and
    fraction "0.5" failed inside a comparison."""
    with pytest.raises(ValueError, match=re.escape(message)):
        heads_to_prune(importance, fraction, keep_per_layer=keep)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_pruned_model_equals_the_masked_model_in_both_twins(kind):
    if kind == "bert":
        model = classifier()
        run = lambda m: m.forward(IDS, MASK) if not isinstance(m, torch.nn.Module) else m(IDS, MASK)
    else:
        model = randomise(Decoder(ModelConfig.preset("tiny", n_heads=4), dtype=np.float64), 2)
        run = lambda m: m.forward(IDS % 32) if not isinstance(m, torch.nn.Module) else m(IDS % 32)
    heads = {0: [0, 2], 1: [3]}
    pruned = prune_heads(model, heads)
    assert pruned.config.pruned_heads == {0: (0, 2), 1: (3,)}
    again = prune_heads(pruned, {0: [1, 2]})  # head 2 is gone already: only head 1 goes
    assert again.config.pruned_heads == {0: (0, 1, 2), 1: (3,)}
    for smaller, removed in ((pruned, heads), (again, {0: [0, 1, 2], 1: [3]})):
        mask_heads(model, removed)
        masked = run(model)
        set_head_gates(model, None)
        assert relative_error(masked, run(smaller)) <= 1e-12
    twin_model = getattr(twin, type(model).__name__).from_numpy(model, attention="math")
    with torch.no_grad():
        twin_pruned = run(prune_heads(twin_model, heads)).numpy()
    assert relative_error(run(pruned), twin_pruned) <= 1e-12
    size = lambda m: sum(p.size for p in m.params.values())
    assert size(pruned) == size(model) - 3 * (4 * 4 * 16 + 3 * 4)  # 3 heads of D = 4, C = 16


def test_pruned_model_equals_hugging_face_with_those_heads_zeroed(tmp_path):
    model = classifier()
    heads = {0: [1], 2: [0, 3]}
    pruned = prune_heads(model, heads)
    hf = transformers.BertModel(transformers.BertConfig(
        vocab_size=CONFIG.vocab_size, hidden_size=CONFIG.d_model,
        num_hidden_layers=CONFIG.n_layers, num_attention_heads=CONFIG.n_heads,
        intermediate_size=CONFIG.d_ff, max_position_embeddings=CONFIG.max_len,
        layer_norm_eps=CONFIG.layer_norm_eps, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, attn_implementation="eager"),
        add_pooling_layer=False).double()
    state = {name.removeprefix("bert."): torch.from_numpy(value.copy())
             for name, value in model.params.items()
             if name.startswith(("bert.encoder", "bert.embeddings"))}
    width = CONFIG.head_dim
    for layer, removed in heads.items():  # the heads' columns of the output projection
        for head in removed:
            state[f"encoder.layer.{layer}.attention.output.dense.weight"][
                :, head * width:(head + 1) * width] = 0
    hf.load_state_dict(state, strict=False)
    hf.eval()
    with torch.no_grad():
        expected = hf(torch.as_tensor(IDS), torch.as_tensor(MASK)).last_hidden_state.numpy()
    real = MASK.astype(bool)
    assert relative_error(expected[real], pruned.encoder.encode(IDS, MASK)[real]) <= 1e-10
    # a pruned run directory reads back as the pruned model
    from minilm import WordPieceTokenizer
    from minilm.pretrained import default_model_path

    save_run(tmp_path, pruned, WordPieceTokenizer.from_pretrained(default_model_path()))
    loaded, _ = load_run(tmp_path)  # in float32, as every run is read
    assert loaded.config == pruned.config and loaded.config.pruned_heads == {0: (1,), 2: (0, 3)}
    assert relative_error(pruned.forward(IDS, MASK), loaded.forward(IDS, MASK)) <= 1e-5


def test_pruning_every_head_of_a_layer_or_an_unknown_head_is_a_clear_error():
    model = classifier()
    with pytest.raises(ValueError, match="every head of layer 1"):
        prune_heads(model, {1: [0, 1, 2, 3]})
    with pytest.raises(ValueError, match="layer 5"):
        prune_heads(model, {5: [0]})


# ================================================================ distillation


def torch_distillation(student, teacher, labels, temperature, alpha):
    """The oracle, from torch's own pieces (DistilBERT's formula)."""
    s, t = torch.from_numpy(student), torch.from_numpy(teacher)
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / temperature, -1),
                                    torch.softmax(t / temperature, -1), reduction="batchmean")
    kept = torch.as_tensor(labels) != -100
    ce = (torch.nn.functional.cross_entropy(s[kept], torch.as_tensor(labels)[kept])
          if kept.any() else torch.tensor(0.0, dtype=torch.float64))
    return float(alpha * temperature**2 * kl + (1 - alpha) * ce)


@given(distillation_cases())
def test_distillation_loss_equals_torch_and_its_backward_the_gradient(case):
    student, teacher, labels, temperature, alpha = case.values()
    loss, cache = distillation_loss_forward(student, teacher, labels, temperature, alpha)
    assert abs(loss - torch_distillation(*case.values())) <= 1e-12 * max(1.0, abs(loss))
    grad = distillation_loss_backward(cache)
    numeric = numerical_gradient(
        lambda s: distillation_loss_forward(s, teacher, labels, temperature, alpha)[0], student)
    assert relative_error(numeric, grad) <= 1e-8
    leaf = torch.tensor(student, requires_grad=True)
    distillation_loss(leaf, torch.from_numpy(teacher), torch.as_tensor(labels), temperature,
                      alpha).backward()
    assert relative_error(leaf.grad.numpy(), grad) <= 1e-12


@pytest.mark.parametrize("temperature", [1.0, 1e2, 1e3, 1e4])
def test_the_distillation_loss_of_float32_logits_is_float64_accurate_at_any_temperature(
        temperature):
    """KL(p || q) is O(1/T^2), and float32 log-probabilities times T^2 swamped it: at T = 1e3 the
    loss was 0.3% off in both twins, at 1e5 the twin's was negative. Now the soft term is computed
    in float64: equal to the float64 oracle within 1e-6, the gradient keeps the logits' dtype."""
    rng = np.random.default_rng(0)
    student, teacher = (rng.standard_normal((4, 5)) * 3 for _ in range(2))
    labels = np.array([0, 1, -100, 3])
    expected = torch_distillation(student, teacher, labels, temperature, 0.5)
    loss, cache = distillation_loss_forward(student.astype(np.float32), teacher.astype(np.float32),
                                            labels, temperature, 0.5)
    leaf = torch.tensor(student, dtype=torch.float32, requires_grad=True)
    twin_loss = distillation_loss(leaf, torch.tensor(teacher, dtype=torch.float32),
                                  torch.as_tensor(labels), temperature, 0.5)
    twin_loss.backward()
    assert abs(loss - expected) <= 1e-6 * expected
    assert abs(twin_loss.item() - expected) <= 1e-6 * expected
    assert distillation_loss_backward(cache).dtype == np.float32
    assert twin_loss.dtype == leaf.grad.dtype == torch.float32


@pytest.mark.parametrize(("keywords", "message"), [
    (dict(temperature=0.0), "temperature must be a finite number in (0, 10000], got 0.0"),
    (dict(temperature=float("inf")), "temperature must be a finite number in (0, 10000], got inf"),
    (dict(temperature=1e200), "temperature must be a finite number in (0, 10000], got 1e+200"),
    (dict(alpha=1.5), "alpha must be a finite number in [0, 1], got 1.5"),
    (dict(alpha="0.5"), "alpha must be a finite number in [0, 1], got '0.5'"),
    (dict(teacher=np.zeros((2, 4))), "teacher_logits (2, 4) must both be (N, num_labels)"),
])
def test_distillation_loss_refuses_bad_arguments(keywords, message):
    """inf gave a NaN loss, 1e200 an OverflowError from T**2, alpha '0.5' a TypeError."""
    teacher = keywords.pop("teacher", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=re.escape(message)):
        distillation_loss_forward(np.zeros((2, 3)), teacher, np.zeros(2, int), **keywords)


@pytest.mark.parametrize(("keywords", "message"), [
    (dict(epochs=-1), "epochs must be an int >= 1, got -1"),  # "trained" for -25 steps
    (dict(epochs=1.5), "epochs must be an int >= 1, got 1.5"),
    (dict(batch_size=0), "batch_size must be an int >= 1, got 0"),  # was a ZeroDivisionError
    (dict(max_length=2), "max_length must be an int >= 3 ([CLS], a token, [SEP]), got 2"),
    (dict(lr=0.0), "lr must be a finite number in (0, inf), got 0.0"),
    (dict(warmup_ratio=1.5), "warmup_ratio must be a finite number in [0, 1], got 1.5"),
    (dict(weight_decay=-0.1), "weight_decay must be a finite number in [0, inf), got -0.1"),
    (dict(grad_clip=float("nan")), "grad_clip must be a finite number in (0, inf), got nan"),
    (dict(seed=-1), "seed must be an int >= 0, got -1"),
    (dict(temperature=0.0), "temperature must be a finite number in (0, 10000], got 0.0"),
    (dict(alpha=1.5), "alpha must be a finite number in [0, 1], got 1.5"),
])
def test_distill_settings_refuse_what_fine_tuning_refuses(keywords, message):
    """DistillSettings shares FinetuneSettings' recipe fields and their check (`check_recipe`),
    and checks temperature and alpha as the loss does, when it is made, before any step."""
    with pytest.raises(ValueError, match=re.escape(message)):
        DistillSettings(**keywords)
    recipe = {name: value for name, value in keywords.items()
              if name not in ("temperature", "alpha")}
    if recipe:  # the same field of fine-tuning's settings, the same message
        with pytest.raises(ValueError, match=re.escape(message)):
            FinetuneSettings(**recipe)


def test_student_keeps_the_chosen_blocks_and_one_step_agrees_in_both_twins():
    teacher = prune_heads(classifier(), {2: [1]})
    student = student_from_teacher(teacher, layers=(0, 2))
    assert student.config.n_layers == 2 and student.config.pruned_heads == {1: (1,)}
    for name, value in student.params.items():
        source = name.replace("layer.1.", "layer.2.")
        np.testing.assert_array_equal(value, teacher.params[source])
    twin_student = twin.SequenceClassifier.from_numpy(student, attention="math")
    teacher_logits = teacher.forward(IDS, MASK)
    losses = {}
    for name, model in (("numpy", student), ("torch", twin_student)):
        step = make_distillation_step(model, temperature=2.0, alpha=0.5, weight_decay=0.01)
        losses[name] = [step((IDS, MASK, np.zeros_like(IDS)), (np.array([1, 0]), teacher_logits),
                             lr=1e-2) for _ in range(2)]
    assert relative_error(losses["numpy"], losses["torch"]) <= 1e-10
    after = twin.state_dict_to_params(twin_student.state_dict())
    assert max(relative_error(student.params[n], after[n]) for n in after) <= 1e-10


def test_distill_trains_a_student_towards_the_teacher(tokenizer):
    teacher = tiny_classifier(ModelConfig(**{**CONFIG.to_dict(), "n_layers": 2}), np.float32)
    sentiment = load_task("sentiment")
    task = Task("small", sentiment.label_names, sentiment.train_texts[:48],
                sentiment.train_labels[:48], sentiment.test_texts[:16], sentiment.test_labels[:16])
    student = student_from_teacher(teacher, layers=(1,))
    settings = DistillSettings(temperature=2.0, alpha=1.0, epochs=6, batch_size=16, lr=3e-3,
                               max_length=16, weight_decay=0.0)
    metrics = distill(student, teacher, tokenizer, task, settings)
    curve = metrics["loss_curve"]
    assert len(curve) == 18 and np.mean(curve[-3:]) < 0.5 * np.mean(curve[:3])
    with pytest.raises(ValueError, match="teacher"):
        distill(student, None, tokenizer, task, settings)
    hard = distill(student_from_teacher(teacher, (1,)), None, tokenizer, task,
                   DistillSettings(alpha=0.0, epochs=1, max_length=None))
    assert 0.0 <= hard["eval_accuracy"] <= 1.0
    assert hard["settings"]["max_length"] == 32  # None: as fine-tuning, min(64, max_len)
    with pytest.raises(ValueError, match=re.escape("max_length=64 exceeds the student's "
                                                   "max_len=32")):
        distill(student, None, tokenizer, task, DistillSettings(alpha=0.0))
