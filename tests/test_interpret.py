"""minilm.interpret and the per-head gate, each against an oracle.

- The gate op pair: forward is heads * gate; the hand-written backward equals finite differences
  (1e-8) and torch autograd (1e-12), for a shared (H,) gate and a per-example (B, H) one.
- Gates of 1 change nothing (bit for bit); the twins' gate gradients agree (1e-10, float64).
- Head importance: the NumPy backward's gate gradient equals finite differences of the loss in the
  gate (1e-7); NumPy and torch importances agree (1e-10); a batch of 4 gives what 4 batches of 1
  give (the per-example gradients, not the batch's sum, are what |.| is taken of).
- Attention maps equal Hugging Face's `output_attentions` on the same weights (1e-10); rollout rows
  sum to 1 and equal the product written out; a pruned head's map is zero.
- Saliency: score_t equals d logit / d eps of scaling token t's embedding by (1 + eps), by finite
  differences (1e-6); the twins agree (1e-9).
- `minilm attention` writes the grid of a run directory's model, with --pair and --rollout.
"""

import re
import shutil
from functools import partial

import numpy as np
import pytest
import torch
import transformers
from helpers import tiny_classifier
from hypothesis import given

import minilm.torch as twin
from minilm import ModelConfig
from minilm.checkpoint import save_run
from minilm.cli import main
from minilm.compress import prune_heads
from minilm.interpret import (
    attention_layers,
    attention_maps,
    attention_rollout,
    head_importance,
    plot_attention_maps,
    plot_head_importance,
    saliency,
    set_head_gates,
)
from minilm.numpy import Encoder
from minilm.numpy import functional as F
from minilm.pretrained import load_encoder
from minilm.testing.oracles import (
    finite_difference_error,
    relative_error,
    torch_forward_backward,
)
from minilm.testing.strategies import head_gate_cases

CONFIG = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=4, n_layers=2, d_ff=32)
TEXTS = ["the food was cold.", "a superb, friendly hotel", "dreadful app", "i loved every page"]
LABELS = np.array([0, 1, 0, 1])


classifier = partial(tiny_classifier, CONFIG)  # tests/helpers.py


@given(head_gate_cases())
def test_head_gate_backward_is_the_gradient(case):
    heads, gate, dout = case["heads"], case["gate"], case["dout"]
    out, cache = F.head_gate_forward(heads, gate)
    np.testing.assert_array_equal(out, heads * gate[..., None, None])
    dheads, dgate = F.head_gate_backward(dout, cache)
    assert dgate.shape == gate.shape
    error = finite_difference_error(lambda: F.head_gate_forward(heads, gate)[0], dout,
                                    [(heads, dheads), (gate, dgate)])
    assert error <= 1e-8
    _, (theirs_heads, theirs_gate) = torch_forward_backward(
        lambda h, g: h * g[..., None, None], [heads, gate], dout)
    assert relative_error(theirs_heads, dheads) <= 1e-12
    assert relative_error(theirs_gate, dgate) <= 1e-12


def test_gates_of_one_change_nothing_and_the_twins_agree_on_the_gate_gradient():
    model = classifier()
    ids, mask = np.array([[101, 2833, 2001, 3147, 102]]), np.ones((1, 5), dtype=np.int64)
    plain = model.forward(ids, mask)
    set_head_gates(model, np.ones((2, 4)))
    np.testing.assert_array_equal(model.forward(ids, mask), plain)
    with pytest.raises(ValueError, match="block 0 has 4 heads"):
        set_head_gates(model, np.ones((2, 3)))
    gates = np.random.default_rng(0).uniform(0.5, 1.5, (2, 4))
    set_head_gates(model, gates)
    logits = model.forward(ids, mask)
    model.backward(np.ones_like(logits))
    ours = [layer.head_gate_grad for layer in attention_layers(model)]
    set_head_gates(model, None)
    twin_model = twin.SequenceClassifier.from_numpy(model, attention="math").eval()
    leaves = [torch.tensor(g, requires_grad=True) for g in gates]
    set_head_gates(twin_model, leaves)
    twin_model(ids, mask).sum().backward()
    for mine, leaf in zip(ours, leaves):
        assert relative_error(leaf.grad.numpy(), mine) <= 1e-10


def gated_loss(model, inputs, label, layer, head, value):
    """One example's cross-entropy with gate (layer, head) at `value`, every other gate at 1."""
    gates = np.ones((2, 4))
    gates[layer, head] = value
    set_head_gates(model, gates)
    loss, _ = F.cross_entropy_forward(model.forward(*inputs), np.array([label]))
    return loss


def test_head_importance_is_the_mean_absolute_gate_gradient(tokenizer):
    model = classifier()
    importance = head_importance(model, tokenizer, TEXTS, LABELS, normalize=False)
    # the oracle: finite differences of each example's loss in one gate at a time
    expected = np.zeros((2, 4))
    for text, label in zip(TEXTS, LABELS):
        batch = tokenizer([text])
        inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        for layer, head in np.ndindex(2, 4):
            losses = [gated_loss(model, inputs, label, layer, head, 1 + eps)
                      for eps in (1e-5, -1e-5)]
            expected[layer, head] += abs(losses[0] - losses[1]) / 2e-5 / len(TEXTS)
    set_head_gates(model, None)
    assert relative_error(expected, importance) <= 1e-7
    one_by_one = head_importance(model, tokenizer, TEXTS, LABELS, batch_size=1, normalize=False)
    assert relative_error(importance, one_by_one) <= 1e-10
    twin_model = twin.SequenceClassifier.from_numpy(model, attention="math")
    assert relative_error(importance, head_importance(twin_model, tokenizer, TEXTS, LABELS,
                                                      normalize=False)) <= 1e-10
    normalised = head_importance(model, tokenizer, TEXTS, LABELS)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0)
    pruned = head_importance(prune_heads(model, {1: [2]}), tokenizer, TEXTS, LABELS)
    assert np.isnan(pruned[1, 2]) and np.isfinite(np.delete(pruned.ravel(), 6)).all()
    assert plot_head_importance(pruned).axes


def test_attention_maps_equal_hugging_face_and_rollout_follows_them(tokenizer):
    model = classifier()
    tokens, maps = attention_maps(model, tokenizer, "the food was cold", pair="was it?")
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and maps.shape == (2, 4, 10, 10)
    hf = transformers.BertModel(transformers.BertConfig(
        vocab_size=CONFIG.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=32, max_position_embeddings=32, layer_norm_eps=CONFIG.layer_norm_eps,
        attn_implementation="eager"), add_pooling_layer=False).double().eval()
    hf.load_state_dict({name.removeprefix("bert."): torch.from_numpy(value)
                        for name, value in model.params.items()
                        if name.startswith(("bert.embeddings", "bert.encoder"))}, strict=False)
    batch = tokenizer("the food was cold", "was it?")
    with torch.no_grad():
        theirs = hf(**{k: torch.as_tensor(v) for k, v in batch.items()}, output_attentions=True)
    assert relative_error(np.stack([a[0].numpy() for a in theirs.attentions]), maps) <= 1e-10
    rollout = attention_rollout(maps)
    np.testing.assert_allclose(rollout.sum(axis=-1), 1.0)
    step = [0.5 * np.eye(10) + 0.5 * maps[layer].mean(axis=0) for layer in range(2)]
    np.testing.assert_allclose(rollout[1], step[1] @ step[0])
    np.testing.assert_allclose(attention_rollout(maps, residual=1.0)[-1], np.eye(10))
    fig = plot_attention_maps(tokens, maps, rollout)
    assert len(fig.axes) == 2 * 5
    _, pruned_maps = attention_maps(prune_heads(model, {0: [1, 3]}), tokenizer, "the food was cold")
    assert not pruned_maps[0, [1, 3]].any()
    np.testing.assert_allclose(pruned_maps[0, [0, 2]].sum(axis=-1), 1.0)
    np.testing.assert_allclose(attention_rollout(pruned_maps).sum(axis=-1), 1.0)


def test_a_text_longer_than_the_model_reads_is_refused_not_cut(tokenizer):
    """attention_maps and saliency cut every text to 128 tokens, silently (`minilm attention`
    printed "128 tokens"): now a text fits the model's max_len (or a max_length given), or is
    refused, naming both numbers."""
    model = classifier()  # max_len 32
    text = " ".join(["food"] * 30)  # 32 tokens with [CLS] and [SEP]
    assert len(attention_maps(model, tokenizer, text)[0]) == 32
    message = "the text: 33 tokens with [CLS] and [SEP], more than the 32 the model reads"
    for call in (attention_maps, saliency):
        with pytest.raises(ValueError, match=re.escape(message)):
            call(model, tokenizer, text + " food")
    with pytest.raises(ValueError, match=r"the text and its pair: 10 tokens .* more than the 8"):
        attention_maps(model, tokenizer, "the food was cold", pair="was it?", max_length=8)


BAD_IMPORTANCE_CALLS = {  # what the message must say -> head_importance's arguments
    "texts must be a non-empty list of texts, got []": dict(texts=[], labels=[]),
    "texts must be a non-empty list of texts, got 'ab'": dict(texts="ab", labels=[0, 1]),
    "labels must hold one class id per text, shape (4,), got shape (3,)": dict(labels=[0, 1, 0]),
    "labels must hold one class id per text, shape (4,), got shape ()": dict(labels=1),
    "batch_size must be an int >= 1, got 0": dict(batch_size=0),
    "batch_size must be an int >= 1, got 2.0": dict(batch_size=2.0),
    "normalize must be True or False, got 'no'": dict(normalize="no"),
}


@pytest.mark.parametrize("message", sorted(BAD_IMPORTANCE_CALLS))
def test_head_importance_refuses_bad_arguments(tokenizer, message):
    """No text gave an all-NaN table; batch_size 0 a range() error."""
    arguments = {"texts": TEXTS, "labels": LABELS, **BAD_IMPORTANCE_CALLS[message]}
    with pytest.raises(ValueError, match=re.escape(message)):
        head_importance(classifier(), tokenizer, **arguments)


@pytest.mark.parametrize(("label", "message"), [
    (-1, "label must be an int >= 0, got -1"), (2, "label must be an int in [0, 2)"),
    (1.0, "label must be an int >= 0, got 1.0"), ("1", "label must be an int >= 0, got '1'"),
])
def test_saliency_refuses_a_label_that_is_not_a_class(tokenizer, label, message):
    """Label -1 was read as the last class (and returned as -1); 2 an IndexError."""
    with pytest.raises(ValueError, match=re.escape(message)):
        saliency(classifier(), tokenizer, "the food", label=label)


@pytest.mark.parametrize("function", ["saliency", "head_importance"])
def test_saliency_and_importance_need_a_sequence_classifier(tokenizer, function):
    """An Encoder gave an AttributeError (saliency) or a cross-entropy shape error."""
    encoder = Encoder(CONFIG)
    calls = {"saliency": lambda: saliency(encoder, tokenizer, "the food"),
             "head_importance": lambda: head_importance(encoder, tokenizer, TEXTS, LABELS)}
    with pytest.raises(ValueError, match=f"model is an Encoder; {function} needs a SequenceClassifier"):
        calls[function]()


MAP = np.full((2, 3, 3), 1 / 3)  # one layer of 2 heads over 3 tokens
BAD_ROLLOUTS = {  # what the message must say -> attention_rollout's arguments
    "residual must be a finite number in [0, 1], got nan": ([MAP, MAP], np.nan),
    "residual must be a finite number in [0, 1], got 2.0": ([MAP, MAP], 2.0),
    "residual must be a finite number in [0, 1], got -1.0": ([MAP, MAP], -1.0),
    "maps must be a non-empty list of (H, T, T) arrays of one shape, one per layer, got []":
        ([], 0.5),
    "got NoneType": (None, 0.5),
    "got [(2, 3, 3), (2, 4, 4)]": ([MAP, np.full((2, 4, 4), 0.25)], 0.5),
    "got [(3, 3)]": (MAP, 0.5),
    "maps must be finite numbers, got nan": ([MAP, np.full((2, 3, 3), np.nan)], 0.5),
    "maps: layer 1 has no head with a nonzero map": ([MAP, 0 * MAP], 0.5),
}


@pytest.mark.parametrize("message", sorted(BAD_ROLLOUTS))
def test_attention_rollout_refuses_what_is_not_attention(message):
    """NaN or 2.0 for the residual made an all-NaN or a negative rollout; no maps a NumPy axis
    error."""
    maps, residual = BAD_ROLLOUTS[message]
    with pytest.raises(ValueError, match=re.escape(message)):
        attention_rollout(maps, residual)


def test_saliency_is_the_derivative_of_scaling_each_token(tokenizer):
    model = classifier()
    text = "the food was cold"
    tokens, scores, label = saliency(model, tokenizer, text)
    ids = tokenizer(text)["input_ids"][0]
    assert tokens == tokenizer.convert_ids_to_tokens(ids) and len(set(ids)) == len(ids)
    table = model.params["bert.embeddings.word_embeddings.weight"]
    expected = []
    for token in ids:  # d/d eps logit_c with token t's embedding scaled by (1 + eps)
        row = table[token].copy()
        values = []
        for eps in (1e-5, -1e-5):
            table[token] = row * (1 + eps)
            batch = tokenizer(text)
            values.append(model.forward(batch["input_ids"], batch["attention_mask"])[0, label])
        table[token] = row
        expected.append((values[0] - values[1]) / 2e-5)
    assert relative_error(np.array(expected), scores) <= 1e-6
    twin_model = twin.SequenceClassifier.from_numpy(model, attention="math")
    _, twin_scores, twin_label = saliency(twin_model, tokenizer, text)
    assert twin_label == label and relative_error(scores, twin_scores) <= 1e-9
    assert not any(grad.any() for grad in model.grads.values())  # no gradient left behind
    _, frozen_scores, _ = saliency(twin_model.requires_grad_(False), tokenizer, text)
    assert relative_error(twin_scores, frozen_scores) == 0  # no weight needs a gradient for it


def test_attention_command_draws_a_run_or_a_hugging_face_directory(minilm_dir, tokenizer,
                                                                    tmp_path, capsys):
    save_run(tmp_path / "run", classifier(np.float32), tokenizer)
    hf = transformers.BertModel(transformers.BertConfig(
        vocab_size=CONFIG.vocab_size, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32))
    hf.save_pretrained(tmp_path / "hf")
    shutil.copyfile(minilm_dir / "vocab.txt", tmp_path / "hf" / "vocab.txt")
    for model, shape in (("run", "2 layers x 4 heads"), ("hf", "3 layers x 2 heads")):
        out = tmp_path / f"{model}.png"
        status = main(["attention", "the food was cold", "--pair", "was it?", "--model",
                       str(tmp_path / model), "--rollout", "--out", str(out)])
        assert status == 0 and out.stat().st_size > 10_000
        printed = capsys.readouterr().out
        assert shape in printed and "10 tokens" in printed
    assert main(["attention", "", "--model", str(tmp_path / "run")]) == 2
    assert "TEXT" in capsys.readouterr().err
    assert main(["attention", "a cat", "--out", str(tmp_path / "maps.txt")]) == 2
    assert "--out" in capsys.readouterr().err


def test_attention_of_a_character_mlm_run(tmp_path, capsys):
    """A `minilm train --objective mlm` run reads characters (a CharTokenizer, no [CLS] or [SEP]):
    `minilm attention` drew nothing ("'CharTokenizer' object is not callable"); now each character
    is a token, and a pair, which that tokenizer cannot join, is one line."""
    run = tmp_path / "mlm"
    assert main(["train", "--objective", "mlm", "--preset", "tiny", "--steps", "2",
                 "--batch-size", "2", "--seq-len", "16", "--eval-tokens", "100",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "maps.png"
    assert main(["attention", "a cat", "--model", str(run), "--rollout", "--out", str(out)]) == 0
    assert "5 tokens" in capsys.readouterr().out and out.stat().st_size > 5_000
    model, tokenizer, _ = load_encoder(run)
    tokens, maps = attention_maps(model, tokenizer, "a cat")
    assert tokens == list("a cat") and maps.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0)
    assert main(["attention", "a cat", "--pair", "a dog", "--model", str(run)]) == 2
    assert "pair: this model's tokenizer is a CharTokenizer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="the text: 17 characters, more than the 16"):
        attention_maps(model, tokenizer, "a" * 17)
