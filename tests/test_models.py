"""Layers and whole models (`minilm.numpy.Encoder`, `minilm.numpy.Decoder`).

Three independent checks of the hand-written backward and the forward arithmetic, all in float64:

1. finite differences: every parameter tensor, `PROBES` random entries each, against central
   differences of the loss (`numerical_gradient`, fourth-order, h = 1e-4), error
   `relative_error(numeric, analytic, floor=1e-3)` = max|num - ana| / max(1e-3, max|num|) per
   tensor <= WHOLE_MODEL_FD_TOL. The floor keeps gradients that are exactly zero in exact
   arithmetic (the key bias: softmax ignores a constant per row) from turning roundoff into a
   large "relative" error.
2. Hugging Face `GPT2LMHeadModel` / `BertForMaskedLM` given the same weights: logits within
   HF_LOGITS_TOL (`relative_error`, floor 1), and every parameter's gradient of the same loss under
   torch autograd within HF_GRAD_TOL (floor 1e-3 as above).
3. properties: causality, padding, train/eval, dropout generator, bad input.

Worst seen with HYPOTHESIS_PROFILE=thorough (60 finite-difference examples per parametrization,
100 per Hugging Face test): 5e-8 against finite differences, 7e-15 for logits and 2e-13 for
gradients against Hugging Face.

Default init (std 0.02) makes logits and many gradients tiny, which would make every comparison
pass trivially; `randomize` first adds N(0, 0.3^2) noise to every parameter.
"""

import numpy as np
import pytest
import torch
import transformers
from helpers import (
    FD_EXAMPLES,
    HF_EXAMPLES,
    HF_LOGITS_TOL,
    add_weight_noise,
    assert_gradients_match_finite_differences,
    assert_gradients_match_hf,
    encoder_batches,
    hf_bert,
    hf_gpt2,
    hf_loss_and_backward,
    load_into_hf,
    with_ignored,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from minilm.config import ACTIVATIONS, POSITION_KINDS, ModelConfig
from minilm.numpy import Decoder, Encoder, layers
from minilm.numpy import functional as F
from minilm.numpy.layers import Dropout, merge_heads, split_heads
from minilm.numpy.models import loss_and_backward
from minilm.testing.oracles import relative_error
from minilm.testing.strategies import model_configs, seeds, token_batches

transformers.logging.set_verbosity_error()

def modules(root):
    """Every Module in the tree under root (root included)."""
    yield root
    for child in root.children():
        yield from modules(child)


# ================================================================ finite differences, whole model


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("positions", POSITION_KINDS)
@FD_EXAMPLES
@given(data=st.data())
def test_encoder_gradients_match_finite_differences(positions, activation, data):
    """Encoder.backward gives d loss / d every parameter (MLM loss with ignored targets, padding,
    token types, tied head): it matches central differences."""
    config = data.draw(model_configs(positions=positions, activation=activation, max_heads=2))
    model = add_weight_noise(Encoder(config, seed=data.draw(seeds), dtype=np.float64), data.draw(seeds))
    # T = max_len, so that every row of a learned position table has a gradient to check
    ids, mask, segments, targets = data.draw(encoder_batches(config, time=config.max_len))

    def loss():
        return F.cross_entropy_forward(model.forward(ids, mask, segments), targets)[0]

    loss_and_backward(model, model.forward(ids, mask, segments), targets)
    assert_gradients_match_finite_differences(model, loss, data.draw(seeds))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("positions", POSITION_KINDS)
@FD_EXAMPLES
@given(data=st.data())
def test_decoder_gradients_match_finite_differences(positions, activation, data):
    """Decoder.backward gives d loss / d every parameter (next-token loss, tied head): it matches
    central differences."""
    config = data.draw(model_configs(positions=positions, activation=activation, max_heads=2))
    model = add_weight_noise(Decoder(config, seed=data.draw(seeds), dtype=np.float64), data.draw(seeds))
    ids = data.draw(token_batches(config, time=config.max_len))  # every position row is used
    targets = with_ignored(np.roll(ids, -1, axis=1), np.random.default_rng(data.draw(seeds)))

    def loss():
        return F.cross_entropy_forward(model.forward(ids), targets)[0]

    loss_and_backward(model, model.forward(ids), targets)
    assert_gradients_match_finite_differences(model, loss, data.draw(seeds))


@pytest.mark.parametrize("model_class", [Encoder, Decoder])
@given(seed=seeds)
@settings(max_examples=max(2, settings.default.max_examples // 5))
def test_gradients_with_dropout_match_finite_differences(model_class, seed):
    """In training with dropout (embeddings, attention weights, residual branches) the backward
    reuses the forward's masks: replaying the generator's state before every forward fixes the
    masks, and the gradients then match central differences."""
    config = ModelConfig.preset("tiny", n_layers=1, max_len=5, dropout=0.2)
    model = add_weight_noise(model_class(config, seed=seed, dtype=np.float64), seed + 1)
    rng = np.random.default_rng(seed + 2)
    ids = rng.integers(0, config.vocab_size, size=(2, 5))
    targets = with_ignored(rng.integers(0, config.vocab_size, size=(2, 5)), rng)
    state = model.rng.bit_generator.state

    def loss():
        model.rng.bit_generator.state = state
        return F.cross_entropy_forward(model.forward(ids), targets)[0]

    model.rng.bit_generator.state = state
    loss_and_backward(model, model.forward(ids), targets)
    assert_gradients_match_finite_differences(model, loss, seed)


def test_backward_replaces_previous_gradients():
    """Each backward fills `grads` afresh for the last forward: two identical steps give the same
    gradients, not twice them (tied weights still add up within one backward)."""
    for model_class in (Encoder, Decoder):
        model = model_class(ModelConfig.preset("tiny"), dtype=np.float64)
        ids = np.arange(12).reshape(2, 6) % model.config.vocab_size
        loss_and_backward(model, model.forward(ids), ids)
        first = {name: grad.copy() for name, grad in model.grads.items()}
        loss_and_backward(model, model.forward(ids), ids)
        for name, grad in model.grads.items():
            np.testing.assert_array_equal(grad, first[name])
        assert set(model.grads) == set(model.params)


# ================================================================ Hugging Face equivalence

@st.composite
def decoder_setups(draw):
    """A random tiny config, a randomized float64 Decoder, the same weights in HF GPT-2, a batch."""
    config = draw(model_configs(max_heads=4))
    model = add_weight_noise(Decoder(config, seed=draw(seeds), dtype=np.float64), draw(seeds))
    hf = load_into_hf(model, hf_gpt2(config), "transformer.wpe.weight")
    ids = draw(token_batches(config))
    targets = with_ignored(np.roll(ids, -1, axis=1), np.random.default_rng(draw(seeds)))
    return model, hf, ids, targets


@st.composite
def encoder_setups(draw):
    """A random tiny config, a randomized float64 Encoder, the same weights in HF BERT, a batch
    with padding and token types."""
    config = draw(model_configs(max_heads=4))
    model = add_weight_noise(Encoder(config, seed=draw(seeds), dtype=np.float64), draw(seeds))
    hf = load_into_hf(model, hf_bert(config), "bert.embeddings.position_embeddings.weight")
    return (model, hf, *draw(encoder_batches(config)))


@HF_EXAMPLES
@given(decoder_setups())
def test_decoder_logits_equal_hugging_face_gpt2(setup):
    """Given the same weights, Decoder's logits equal GPT2LMHeadModel's (pre-LN, causal, fused
    c_attn, tied head), for either activation and either kind of positions."""
    model, hf, ids, _ = setup
    with torch.no_grad():
        hf_logits = hf(torch.as_tensor(ids)).logits.numpy()
    assert relative_error(hf_logits, model.forward(ids)) <= HF_LOGITS_TOL


@HF_EXAMPLES
@given(encoder_setups())
def test_encoder_logits_equal_hugging_face_bert(setup):
    """Given the same weights, Encoder's logits equal BertForMaskedLM's at every position, the
    padded ones included: both models mask padded *keys* only, so a padded position still attends
    the real tokens and gets the same (meaningless) logits in both."""
    model, hf, ids, mask, segments, _ = setup
    with torch.no_grad():
        hf_logits = hf(
            torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
            token_type_ids=torch.as_tensor(segments),
        ).logits.numpy()
    logits = model.forward(ids, mask, segments)
    real = mask.astype(bool)
    assert relative_error(hf_logits[real], logits[real]) <= HF_LOGITS_TOL
    assert relative_error(hf_logits[~real], logits[~real]) <= HF_LOGITS_TOL


@HF_EXAMPLES
@given(decoder_setups())
def test_decoder_gradients_equal_hugging_face_autograd(setup):
    """Decoder's hand-written gradients of the next-token loss equal torch autograd's through
    GPT2LMHeadModel, for every parameter (Conv1D weights transposed; wte collects both the
    lookup's and the tied head's gradient in both)."""
    model, hf, ids, targets = setup
    loss = loss_and_backward(model, model.forward(ids), targets)
    hf_loss = hf_loss_and_backward(hf(torch.as_tensor(ids)).logits, targets)
    assert_gradients_match_hf(model, hf, loss, hf_loss)


@HF_EXAMPLES
@given(encoder_setups())
def test_encoder_gradients_equal_hugging_face_autograd(setup):
    """Encoder's hand-written gradients of the MLM loss (padding, token types, ignored targets)
    equal torch autograd's through BertForMaskedLM, for every parameter (HF's decoder.weight is
    the word embeddings and decoder.bias is cls.predictions.bias, so they appear once)."""
    model, hf, ids, mask, segments, targets = setup
    loss = loss_and_backward(model, model.forward(ids, mask, segments), targets)
    hf_logits = hf(
        torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
        token_type_ids=torch.as_tensor(segments),
    ).logits
    assert_gradients_match_hf(model, hf, loss, hf_loss_and_backward(hf_logits, targets))


# ================================================================ properties


@given(model_configs(), seeds, st.data())
def test_decoder_does_not_see_the_future(config, seed, data):
    """Changing the tokens after position t leaves the Decoder's logits at 0..t unchanged."""
    model = add_weight_noise(Decoder(config, seed=seed, dtype=np.float64), seed)
    ids = data.draw(token_batches(config), label="ids")
    t = data.draw(st.integers(0, ids.shape[1] - 1), label="t")
    changed = ids.copy()
    future = changed[:, t + 1 :]
    future[...] = np.random.default_rng(seed).integers(0, config.vocab_size, future.shape)
    np.testing.assert_allclose(
        model.forward(changed)[:, : t + 1], model.forward(ids)[:, : t + 1], rtol=0, atol=1e-12
    )


@given(model_configs(), seeds, st.data())
def test_encoder_ignores_padded_tokens(config, seed, data):
    """Padded positions are never attended: changing their tokens and token types leaves the
    real positions' logits unchanged, and those equal the logits of each sequence run alone,
    without its padding."""
    model = add_weight_noise(Encoder(config, seed=seed, dtype=np.float64), seed)
    ids, mask, segments, _ = data.draw(encoder_batches(config), label="batch")
    rng = np.random.default_rng(seed)
    pad = ~mask.astype(bool)
    changed_ids, changed_segments = ids.copy(), segments.copy()
    changed_ids[pad] = rng.integers(0, config.vocab_size, pad.sum())
    changed_segments[pad] = rng.integers(0, config.type_vocab_size, pad.sum())
    logits = model.forward(ids, mask, segments)
    changed = model.forward(changed_ids, mask, changed_segments)
    np.testing.assert_allclose(changed[~pad], logits[~pad], rtol=0, atol=1e-12)
    for b, length in enumerate(mask.sum(axis=1)):
        alone = model.forward(ids[b : b + 1, :length], None, segments[b : b + 1, :length])
        np.testing.assert_allclose(alone[0], logits[b, :length], rtol=0, atol=1e-12)


def test_an_all_ones_attention_mask_changes_nothing():
    """attention_mask of all ones (no padding) is the same as no attention_mask."""
    model = Encoder(ModelConfig.preset("tiny"), dtype=np.float64)
    ids = np.arange(10).reshape(2, 5)
    np.testing.assert_array_equal(model.forward(ids, np.ones_like(ids)), model.forward(ids))


@pytest.mark.parametrize("model_class", [Encoder, Decoder])
def test_train_and_eval_reach_every_sub_layer(model_class):
    """train()/eval() set `training` on every Module in the tree; in eval a model with dropout
    gives exactly the logits of the same model (same seed) without dropout, and in training it
    does not."""
    config = ModelConfig.preset("tiny", dropout=0.3)
    model = model_class(config, seed=3, dtype=np.float64)
    reference = model_class(ModelConfig.preset("tiny"), seed=3, dtype=np.float64).eval()
    ids = np.arange(12).reshape(2, 6) % config.vocab_size
    all_modules = list(modules(model))
    n_dropouts = sum(isinstance(m, Dropout) for m in all_modules)
    assert n_dropouts == 1 + 2 * config.n_layers  # embeddings + two residual branches per block
    assert model.eval() is model and not any(m.training for m in all_modules)
    np.testing.assert_array_equal(model.forward(ids), reference.forward(ids))
    assert model.train() is model and all(m.training for m in all_modules)
    assert not np.allclose(model.forward(ids), reference.forward(ids))
    model.eval()
    np.testing.assert_array_equal(model.forward(ids), reference.forward(ids))


@pytest.mark.parametrize("model_class", [Encoder, Decoder])
@given(seed=seeds)
def test_dropout_draws_from_the_models_generator(model_class, seed):
    """In training, dropout masks come from the model's own generator: two models built with the
    same seed give identical logits (and gradients), and successive forwards draw fresh masks."""
    config = ModelConfig.preset("tiny", dropout=0.3)
    first, second = (model_class(config, seed=seed, dtype=np.float64) for _ in range(2))
    ids = np.random.default_rng(seed).integers(0, config.vocab_size, size=(2, 6))
    logits, second_logits = first.forward(ids), second.forward(ids)
    np.testing.assert_array_equal(second_logits, logits)
    loss_and_backward(first, logits, ids)
    loss_and_backward(second, second_logits, ids)
    for name, grad in first.grads.items():
        np.testing.assert_array_equal(second.grads[name], grad)
    assert not np.array_equal(first.forward(ids), logits)


def test_sinusoidal_models_look_up_the_sinusoidal_table():
    """A model with positions="sinusoidal" adds rows of `sinusoidal_positions` (in its dtype)."""
    config = ModelConfig.preset("tiny", positions="sinusoidal")
    model = Decoder(config, dtype=np.float64)
    np.testing.assert_array_equal(model.positions.forward(np.arange(3)),
                                  layers.sinusoidal_positions(config.max_len, config.d_model)[:3])


# ================================================================ bad input -> ValueError


def test_bad_configs_raise_value_errors_naming_the_field():
    """ModelConfig rejects values that cannot build a model, naming the field."""
    with pytest.raises(ValueError, match="d_model .* must be divisible by n_heads"):
        ModelConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="activation must be one of"):
        ModelConfig(activation="relu")
    with pytest.raises(ValueError, match="positions must be one of"):
        ModelConfig(positions="rotary")
    for dropout in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout must be in"):
            ModelConfig(dropout=dropout)
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        ModelConfig(n_layers=0)
    with pytest.raises(ValueError, match="config must be a ModelConfig"):
        Encoder({"vocab_size": 10})
    edited = ModelConfig.preset("tiny")
    edited.activation = "relu"  # a dataclass can be edited after __post_init__ checked it
    for model_class in (Encoder, Decoder):
        with pytest.raises(ValueError, match="activation must be one of"):
            model_class(edited)


def test_load_params_checks_names_and_shapes():
    """load_params copies weights by name and rejects missing, unexpected or misshapen ones."""
    model = Decoder(ModelConfig.preset("tiny"), seed=0, dtype=np.float64)
    other = Decoder(ModelConfig.preset("tiny"), seed=1, dtype=np.float64)
    model.load_params(other.params)
    for name, value in other.params.items():
        np.testing.assert_array_equal(model.params[name], value)
    params = dict(other.params)
    del params["transformer.wte.weight"]
    with pytest.raises(ValueError, match="missing .*transformer.wte.weight"):
        model.load_params(params)
    with pytest.raises(ValueError, match="unexpected .*extra"):
        model.load_params({**other.params, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="transformer.ln_f.bias has shape"):
        model.load_params({**other.params, "transformer.ln_f.bias": np.zeros(3)})


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), seeds)
def test_split_and_merge_heads_are_inverse(batch, time, heads, head_dim, seed):
    """split_heads gives head h the channels h*D .. (h+1)*D - 1 of every position, and
    merge_heads undoes it exactly."""
    x = np.random.default_rng(seed).standard_normal((batch, time, heads * head_dim))
    split = split_heads(x, heads)  # (B, H, T, D)
    assert split.shape == (batch, heads, time, head_dim)
    for h in range(heads):
        np.testing.assert_array_equal(split[:, h], x[..., h * head_dim : (h + 1) * head_dim])
    np.testing.assert_array_equal(merge_heads(split), x)


@pytest.mark.parametrize("model_class", [Encoder, Decoder])
def test_bad_inputs_raise_value_errors_naming_the_argument(model_class):
    """Token ids outside the vocabulary, longer than max_len, not integers or not (B, T), and
    targets of the wrong shape raise ValueError naming the argument."""
    config = ModelConfig.preset("tiny")
    model = model_class(config, dtype=np.float64)
    ids = np.ones((2, 4), dtype=np.int64)
    for bad in (ids * config.vocab_size, -ids):
        with pytest.raises(ValueError, match="input_ids must lie in"):
            model.forward(bad)
    with pytest.raises(ValueError, match="input_ids has length"):
        model.forward(np.ones((1, config.max_len + 1), dtype=np.int64))
    with pytest.raises(ValueError, match="input_ids must be a .* integer array"):
        model.forward(ids.astype(np.float64))
    with pytest.raises(ValueError, match="input_ids must be a .* integer array"):
        model.forward(ids[0])
    with pytest.raises(ValueError, match="targets shape"):
        loss_and_backward(model, model.forward(ids), ids[:, :3])


def test_encoder_rejects_masks_and_token_types_of_the_wrong_shape():
    """attention_mask and token_type_ids must have the shape of input_ids; token types must be in
    [0, type_vocab_size)."""
    model = Encoder(ModelConfig.preset("tiny"), dtype=np.float64)
    ids = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        model.forward(ids, attention_mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="token_type_ids must have the shape of input_ids"):
        model.forward(ids, token_type_ids=np.zeros((4,), dtype=np.int64))
    with pytest.raises(ValueError, match="token_type_ids must be integers in"):
        model.forward(ids, token_type_ids=ids * 2)


@pytest.mark.parametrize("model_class", [Encoder, Decoder])
def test_an_empty_batch_is_a_clear_error(model_class):
    model = model_class(ModelConfig.preset("tiny"))
    with pytest.raises(ValueError, match="input_ids has batch size 0"):
        model.forward(np.zeros((0, 4), dtype=np.int64))


@pytest.mark.parametrize("segments", [np.full((1, 4), 2), np.full((1, 4), -1), np.zeros((1, 4))])
def test_token_type_ids_outside_the_type_vocabulary_name_the_argument(segments):
    model = Encoder(ModelConfig.preset("tiny"))
    with pytest.raises(ValueError, match="token_type_ids must be integers in"):
        model.forward(np.ones((1, 4), dtype=np.int64), token_type_ids=segments)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_weights_start_at_the_published_scales(backend):
    """Every weight matrix N(0, 0.02) as BERT and GPT-2 initialise them, except GPT-2's two
    projections into the residual stream (attn.c_proj, mlp.c_proj), 0.02 / sqrt(2 L): L blocks each
    add two of them to the stream, whose variance would otherwise grow with depth. Each matrix
    of 4096+ draws has a sample std within 1.1% (one standard error) of the true one; 5% is the
    tolerance."""
    import minilm.torch as twin

    config = ModelConfig(vocab_size=64, max_len=16, d_model=256, n_heads=4, n_layers=4, d_ff=1024)
    models = {"numpy": (Decoder(config, seed=0), Encoder(config, seed=0)),
              "torch": (twin.Decoder(config, seed=0), twin.Encoder(config, seed=0))}[backend]
    for model in models:
        params = (model.params if backend == "numpy" else
                  {name: p.detach().numpy() for name, p in model.named_parameters()})
        for name, value in params.items():
            if value.ndim != 2 or value.size < 4096:
                continue  # vectors (biases, LayerNorms: 0 and 1); the 2-row segment table
            residual = name.endswith(("attn.c_proj.weight", "mlp.c_proj.weight"))
            expected = 0.02 / np.sqrt(2 * config.n_layers) if residual else 0.02
            assert abs(value.std() / expected - 1) < 0.05, (name, value.std(), expected)
