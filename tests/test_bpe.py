"""BPETokenizer (GPT-2's byte-level BPE) against Hugging Face's `tokenizers` and `transformers`.

Everything is built offline, here: a byte-level BPE trained by `tokenizers`' BpeTrainer on a corpus
(the built-in stories, multilingual text, emoji), saved as vocab.json + merges.txt and read back by
`transformers.GPT2TokenizerFast` (as any GPT-2 directory is read). Properties checked:

- pre-tokenisation equals `tokenizers`' ByteLevel on one string holding every Unicode code point
  in order: a code point the two regex engines class differently (letter, digit, space, other)
  would move a word boundary (GPT-2's pattern run on `regex`'s newer Unicode tables fails this);
- ids equal HF's on hypothesis-generated text (any Unicode, the corpus's words, <|endoftext|>),
  and decode(encode(x)) == x;
- decode equals HF's on any ids, including ones that cut a character's UTF-8 bytes (U+FFFD);
- training: on the same text and vocab_size, our merges equal those of HF's BpeTrainer (ByteLevel
  pre-tokenizer, the 256 bytes as initial alphabet, <|endoftext|> as special token), in the same
  order, and so do the vocabularies up to where <|endoftext|> sits (HF: id 0, every other id one
  higher; ours: the last id, as in GPT-2). Both merge the most frequent pair (occurrences counted
  over words, overlaps included) and break ties toward the pair whose tokens came first in the
  vocabulary, so this holds on any text: checked on the corpus and on hypothesis-generated texts;
- `minilm tokenizer train` writes what transformers reads, and `minilm generate` on a GPT-2-format
  directory (a tiny random GPT2LMHeadModel, a BPE trained here) samples greedily what
  transformers' `generate` does.
"""

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minilm.cli import main
from minilm.corpus import generate_corpus
from minilm.testing.strategies import unicode_text, vocabulary_text
from minilm.tokenizers import BPETokenizer, load_tokenizer
from minilm.tokenizers.bpe import END_OF_TEXT, pre_tokenize

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the oracles read local files only
tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

MULTILINGUAL = (
    "naïve café résumé, l'été! 東京と北京 你好世界 Привет, мир. ñandú 😀😀 🤗 it's we'll they're "
    "I'm she'd 2024 3.14159 $100 #tag @user C++ x=y+1;\t\r\n  indented\n\n"
)
CORPUS = generate_corpus(n_chars=30_000) + MULTILINGUAL * 30
VOCAB_SIZE = 600


def hf_trained(text, vocab_size):
    """`tokenizers`' own byte-level BPE trainer -> (vocab, merges), as GPT-2 lays them out."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[END_OF_TEXT], show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def assert_same_training(text, vocab_size):
    ours = BPETokenizer.train(text, vocab_size)
    vocab, merges = hf_trained(text, vocab_size)
    assert ours.merges == merges
    # HF puts its special token first; GPT-2 (and we) put it last
    assert ours.vocab == {token: (i - 1 if token != END_OF_TEXT else len(vocab) - 1)
                          for token, i in vocab.items()}


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """vocab.json + merges.txt of a BPE that `tokenizers` trained on the corpus."""
    directory = tmp_path_factory.mktemp("bpe")
    vocab, merges = hf_trained(CORPUS, VOCAB_SIZE)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(" ".join(pair) for pair in merges)]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def ours(bpe_dir):
    return BPETokenizer.from_pretrained(bpe_dir)


@pytest.fixture(scope="module")
def hf(bpe_dir):
    return transformers.GPT2TokenizerFast.from_pretrained(bpe_dir)


CORPUS_WORDS = sorted(set(CORPUS.split()))
texts = st.lists(
    st.one_of(unicode_text, vocabulary_text(CORPUS_WORDS), st.just(END_OF_TEXT)), max_size=4
).map("".join)


# ---------------------------------------------------------------- against Hugging Face


def test_pre_tokenization_equals_hf_on_every_code_point():
    from tokenizers.pre_tokenizers import ByteLevel

    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    hf_words = ByteLevel(add_prefix_space=False).pre_tokenize_str(every)
    assert pre_tokenize(every) == [word for word, _ in hf_words]


@given(text=texts)
def test_ids_equal_hf_and_decode_inverts_encode(ours, hf, text):
    ids = ours.encode(text)
    assert ids.dtype == np.int64
    assert ids.tolist() == hf.encode(text), f"ids differ on {text!r}"
    assert ours.decode(ids) == text


@given(data=st.data())
def test_decode_equals_hf_on_any_ids(ours, hf, data):
    """Any ids, so also sequences that stop inside a character: both show U+FFFD there."""
    ids = data.draw(st.lists(st.integers(0, ours.vocab_size - 1), max_size=12))
    assert ours.decode(ids) == hf.decode(ids)


def test_trained_merges_equal_hf_on_the_corpus():
    assert_same_training(CORPUS, VOCAB_SIZE)


@given(text=st.one_of(texts, st.text("ab é中 \n!1'", max_size=300)),
       vocab_size=st.integers(257, 320))
def test_trained_merges_equal_hf_on_any_text(text, vocab_size):
    """Any text (<|endoftext|> in it is plain text to both trainers), and texts over few
    characters: many ties, pairs that overlap ("aaa"), words that run out of pairs before
    vocab_size is reached."""
    assert_same_training(text, vocab_size)


# ---------------------------------------------------------------- files and errors


def test_save_then_load_tokenizer_round_trip(ours, tmp_path):
    ours.save(tmp_path / "runs" / "bpe")  # a directory save creates
    loaded = load_tokenizer(tmp_path / "runs" / "bpe")
    assert isinstance(loaded, BPETokenizer)
    assert loaded.vocab == ours.vocab and loaded.merges == ours.merges


def test_merges_of_hash_signs_survive_the_round_trip(tmp_path):
    """merges.txt starts with a "#version" line; a merge of "#" and "#" is a line starting with
    "#" too, which a reader that skipped every "#" line would drop (the corpus has none)."""
    text = "## Title\n### Section\n#include <stdio.h>\n" * 50
    trained = BPETokenizer.train(text, 300)
    assert ("#", "#") in trained.merges
    trained.save(tmp_path)
    loaded = BPETokenizer.from_pretrained(tmp_path)
    assert loaded.merges == trained.merges
    hf = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)
    assert loaded.encode(text).tolist() == hf(text)["input_ids"]


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "merges.txt").unlink(), "no merges.txt"),
    (lambda d: (d / "merges.txt").write_text("#version: 0.2\na b c\n"), "line 2"),
    (lambda d: (d / "merges.txt").write_text("zq zq\n"), "the vocabulary lacks"),
    (lambda d: (d / "vocab.json").write_text("{not json"), "not a JSON vocabulary"),
    (lambda d: (d / "vocab.json").write_text('{"a": 0}'), "256 byte tokens"),
])
def test_bad_files_are_named_in_the_error(ours, tmp_path, setup, message):
    ours.save(tmp_path)
    setup(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        BPETokenizer.from_pretrained(tmp_path)


def test_argument_errors(ours):
    with pytest.raises(ValueError, match="vocab_size must be"):
        BPETokenizer.train("some text", 256)
    with pytest.raises(ValueError, match="ids must lie in"):
        ours.decode([ours.vocab_size])
    with pytest.raises(TypeError, match="must be a str"):
        ours.encode(b"bytes")


# ---------------------------------------------------------------- the command line


def test_tokenizer_train_command_writes_what_transformers_reads(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    assert main(["tokenizer", "train", "--vocab-size", "400", str(corpus),
                 "--out", str(tmp_path / "bpe")]) == 0
    assert "vocab_size 400" in capsys.readouterr().out
    ours = load_tokenizer(tmp_path / "bpe")
    assert ours.merges == BPETokenizer.train(CORPUS, 400).merges
    hf = transformers.GPT2TokenizerFast.from_pretrained(tmp_path / "bpe")
    assert ours.encode(MULTILINGUAL).tolist() == hf.encode(MULTILINGUAL)


def test_generate_runs_on_a_gpt2_directory(tmp_path, capsys):
    """A tiny random GPT2LMHeadModel saved by transformers, with a BPE trained here: greedy
    samples printed by `minilm generate` equal transformers' `generate`."""
    tokenizer = BPETokenizer.train(CORPUS, 300)
    tokenizer.save(tmp_path)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32,
                                     n_layer=2, n_head=2, initializer_range=0.2)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(tmp_path)
    prompt, new_tokens = "the cat", 12
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", prompt,
                 "--max-new-tokens", str(new_tokens), "--temperature", "0"]) == 0
    printed = capsys.readouterr().out.removesuffix("\n")  # one sample: no rule

    prompt_ids = torch.from_numpy(tokenizer.encode(prompt))[None]
    with torch.no_grad():
        expected = model.generate(prompt_ids, max_new_tokens=new_tokens, do_sample=False,
                                  pad_token_id=tokenizer.vocab[END_OF_TEXT])
    assert printed == transformers.GPT2TokenizerFast.from_pretrained(tmp_path).decode(expected[0])
    assert len(expected[0]) == len(prompt_ids[0]) + new_tokens
