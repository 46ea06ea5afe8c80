"""Helpers shared by several test modules (one copy each): tolerances, weight noise, the
whole-model finite-difference check, Hugging Face builders, the NumPy <-> twin comparison, and loading a benchmark script.

The hypothesis strategies and oracles that `minilm check` also uses live in the package:
`minilm.testing.strategies` and `minilm.testing.oracles`.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from hypothesis import Phase, settings
from hypothesis import strategies as st

from minilm.numpy.layers import SinusoidalPositions
from minilm.testing.oracles import numerical_gradient, relative_error
from minilm.testing.strategies import padding_masks, seeds, token_batches
from minilm.torch import functional as TF

transformers.logging.set_verbosity_error()

# short (<= 16 tokens, the Triton interpreter is slow) and of different lengths, so the batch pads:
# the sentences of the MiniLM-L6 tests (tests/conftest.py's `batch`)
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby on her back.",
    "Stocks fell sharply today.",
]

# ---------------------------------------------------------------- tolerances (see test_models.py
# and test_torch_twin.py for what each bounds and the worst error observed)

PROBES = 5
GRAD_FLOOR = 1e-3
WHOLE_MODEL_FD_TOL = 1e-6
HF_LOGITS_TOL = 1e-10
HF_GRAD_TOL = 1e-10

# Example counts scale with the hypothesis profile: ci (30) -> 6 per parametrization for the finite
# differences and 10 for Hugging Face; `thorough` (300) -> 60 and 100. The whole-model finite
# differences do not shrink a failing example: every shrink step reruns the check of every
# parameter, so a broken backward took ~4 minutes to report (~10 s without), and the example as
# drawn is small already.
FD_EXAMPLES = settings(max_examples=max(3, settings.default.max_examples // 5),
                       phases=[Phase.explicit, Phase.reuse, Phase.generate])
HF_EXAMPLES = settings(max_examples=max(5, settings.default.max_examples // 3))

FLOOR = 1e-6
FLOAT64_TOL = 1e-9
TRITON_TOL = 1e-4

needs_triton = pytest.mark.skipif(
    not TF.triton_can_run(), reason="needs triton and a CUDA GPU or TRITON_INTERPRET=1"
)


# ---------------------------------------------------------------- weights and batches


def add_weight_noise(model, seed, std=0.3):
    """Add N(0, std^2) to every parameter, in place: LayerNorm weights become 1 +- 0.3, biases
    non-zero, weight matrices large enough that logits and gradients are of order one."""
    rng = np.random.default_rng(seed)
    for value in model.params.values():
        value += rng.normal(0.0, std, value.shape)
    return model


def with_ignored(targets, rng, fraction=0.3, ignore_index=-100):
    """About `fraction` of the targets set to ignore_index, always keeping the first one (torch's
    mean over no targets is NaN; minilm's 0 is checked in test_functional)."""
    targets = targets.copy()
    targets[rng.random(targets.shape) < fraction] = ignore_index
    if targets.flat[0] == ignore_index:
        targets.flat[0] = 0
    return targets


@st.composite
def encoder_batches(draw, config, time=None):
    """(ids, attention_mask with right padding, token_type_ids, MLM targets with -100s)."""
    ids = draw(token_batches(config, time=time))
    rng = np.random.default_rng(draw(seeds))
    mask = draw(padding_masks(*ids.shape))
    segments = rng.integers(0, config.type_vocab_size, size=ids.shape)
    targets = with_ignored(rng.integers(0, config.vocab_size, size=ids.shape), rng)
    return ids, mask, segments, targets


# ---------------------------------------------------------------- the whole-model checks


def assert_gradients_match_finite_differences(model, loss, seed):
    """`model.grads` (already filled for `loss`) against central differences of loss() on PROBES
    random entries of every parameter."""
    rng = np.random.default_rng(seed)
    errors = {}
    for name, param in model.params.items():
        probes = rng.choice(param.size, size=min(PROBES, param.size), replace=False)
        numeric = numerical_gradient(lambda _: loss(), param, indices=probes)
        errors[name] = relative_error(numeric, model.grads[name].reshape(-1)[probes], GRAD_FLOOR)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= WHOLE_MODEL_FD_TOL, (worst, errors[worst])


def assert_within(errors, tol):
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tol, f"{worst}: relative error {errors[worst]:.3g} > {tol}"


def twin_errors(reference, twin, inputs, loss_and_backward, twin_loss, outputs_of=lambda o: [o]):
    """Relative errors of the NumPy `reference` (float64) against its `twin` holding the same
    weights, keyed by what they measure: every output, the loss, and every parameter gradient
    (relative to its own largest entry or, if larger, the largest gradient entry of the model).

    `inputs` are the keyword arguments of both forwards (NumPy arrays); `loss_and_backward(
    reference, outputs)` runs the reference's backward and returns its loss; `twin_loss(outputs)`
    is the twin's loss tensor; `outputs_of` lists a model's outputs (QA returns two)."""
    outputs = reference.forward(**inputs)
    twin_outputs = twin(**{name: torch.from_numpy(value) for name, value in inputs.items()})
    errors = {
        f"output {n}": relative_error(ours, theirs.detach().double(), FLOOR)
        for n, (ours, theirs) in enumerate(zip(outputs_of(outputs), outputs_of(twin_outputs)))
    }
    loss = loss_and_backward(reference, outputs)
    twin_total = twin_loss(twin_outputs)
    twin_total.backward()
    errors["loss"] = relative_error(loss, twin_total.detach().double(), FLOOR)
    grads = {name: p.grad for name, p in twin.named_parameters()}
    assert grads.keys() == reference.grads.keys()
    largest = max(FLOOR, max(float(np.abs(g).max()) for g in reference.grads.values()))
    for name, grad in grads.items():
        errors[f"grad {name}"] = relative_error(reference.grads[name], grad.double(), largest)
    return errors


# ---------------------------------------------------------------- Hugging Face


HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_gpt2(config):
    """A float64, eval-mode GPT2LMHeadModel of the same sizes, no dropout, eager attention."""
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.max_len, n_embd=config.d_model,
        n_layer=config.n_layers, n_head=config.n_heads, n_inner=config.d_ff,
        activation_function=HF_ACTIVATIONS[config.activation],
        layer_norm_epsilon=config.layer_norm_eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        attn_implementation="eager",
    )
    return transformers.GPT2LMHeadModel(hf_config).double().eval()


def hf_bert(config):
    """pad_token_id=None: HF's `padding_idx` would stop the embedding lookup's gradient into the
    pad row, which minilm does not do (the values are unaffected)."""
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff, hidden_act=HF_ACTIVATIONS[config.activation],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        max_position_embeddings=config.max_len, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps, pad_token_id=None, attn_implementation="eager",
    )
    return transformers.BertForMaskedLM(hf_config).double().eval()


def hf_layout(name, value):
    """minilm stores every weight (out, in); GPT-2's Conv1D stores (in, out)."""
    return value.T if name.endswith(GPT2_CONV1D) else value


def load_into_hf(model, hf, position_name):
    """Copy every minilm parameter into the HF model by name; a sinusoidal table, which HF does
    not have, goes into HF's learned position embeddings (as a constant for this comparison)."""
    params = dict(model.params)
    if isinstance(model.positions, SinusoidalPositions):
        params[position_name] = model.positions.table
    hf_names = {name for name, _ in hf.named_parameters()}
    assert hf_names == set(params), hf_names ^ set(params)
    with torch.no_grad():
        for name, tensor in hf.named_parameters():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(hf_layout(name, params[name]))))
    return hf


def hf_loss_and_backward(hf_logits, targets):
    """torch's mean cross-entropy over the kept targets, backpropagated into the HF model."""
    vocab = hf_logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(
        hf_logits.reshape(-1, vocab), torch.as_tensor(targets).reshape(-1), ignore_index=-100
    )
    loss.backward()
    return loss.item()


def assert_gradients_match_hf(model, hf, loss, hf_loss):
    """Same loss, and every minilm gradient within HF_GRAD_TOL of HF's (in minilm's layout)."""
    assert abs(loss - hf_loss) <= HF_LOGITS_TOL * max(1.0, abs(hf_loss))
    errors = {
        name: relative_error(hf_layout(name, tensor.grad.numpy()), model.grads[name], GRAD_FLOOR)
        for name, tensor in hf.named_parameters()
        if name in model.grads  # not a sinusoidal table, which minilm does not learn
    }
    assert set(errors) == set(model.grads)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= HF_GRAD_TOL, (worst, errors[worst])


# ---------------------------------------------------------------- the benchmark scripts

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package; a script imports its
    neighbours, e.g. gpu_steps imports attention, from benchmarks/ on sys.path)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def tiny_classifier(config, dtype=np.float64, seed=1):
    """A tiny BERT sequence classifier (a pooler, no MLM head, 2 labels) of `config`, with weights
    of a trained-looking scale, in eval mode."""
    from minilm.numpy import Encoder, SequenceClassifier
    from minilm.testing.oracles import randomise

    model = SequenceClassifier(Encoder(config, dtype=dtype, mlm_head=False, pooler=True), 2)
    return randomise(model, seed).eval()
