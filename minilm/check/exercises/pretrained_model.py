"""Lesson 05, a real pretrained model: WordPiece's greedy longest match
(`minilm.tokenizers.wordpiece.wordpiece_split`) and the sentence embedding's two steps, mean
pooling over real tokens and cosine similarity (`minilm.embeddings`).

Oracles: Hugging Face's `tokenizers` WordPiece model (the Rust code BertTokenizerFast runs), on
small random vocabularies and on MiniLM-L6's own 30522 pieces; the definitions themselves, written
one row at a time in float64 (1e-12); `torch.nn.functional.cosine_similarity` in float64 (1e-10).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from minilm.check.framework import Failure, as_array, assert_close, assert_true, exercise, prop
from minilm.testing.oracles import hf_wordpiece
from minilm.testing.strategies import embedding_rows, pooling_cases, seeds, wordpiece_cases

LESSON = "05"
EXACT_TOL = 1e-12  # float64, the same sums in another order
TORCH_TOL = 1e-10

exercise("wordpiece_split", LESSON,
         'wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##", max_chars=100) '
         "-> pieces",
         "spell one word with vocabulary pieces, greedy longest-match-first; [UNK] if impossible")
exercise("mean_pool", LESSON, "mean_pool(hidden, attention_mask) -> (B, C)",
         "mean of the hidden states over the real tokens of each sequence (padding left out)")
exercise("cosine_similarity_matrix", LESSON, "cosine_similarity_matrix(embeddings) -> (N, N)",
         "S[i, j] = cos(e_i, e_j) for every pair of rows")


# ---------------------------------------------------------------- WordPiece


def split(impl, case, word=None, vocab=None, max_chars=None) -> list[str]:
    """The learner's pieces of the case's word (or of `word`), checked to be a list of str."""
    vocab = {t: i for i, t in enumerate(case["vocab"])} if vocab is None else vocab
    pieces = impl.wordpiece_split(case["word"] if word is None else word, vocab,
                                  case["unk_token"], case["continuation"],
                                  case["max_chars"] if max_chars is None else max_chars)
    assert_true(isinstance(pieces, (list, tuple)) and all(isinstance(p, str) for p in pieces),
                f"wordpiece_split must return a list of str, got {pieces!r}")
    return list(pieces)


def spellable(case) -> bool:
    return hf_wordpiece(case["word"], case["vocab"], case["unk_token"], case["continuation"],
                        case["max_chars"]) != [case["unk_token"]]


HUGGING_FACE = "matches Hugging Face's WordPiece"


@prop("wordpiece_split", HUGGING_FACE, wordpiece_cases(),
      hint="from the left: the longest piece in vocab (with ## after the first), then on from "
           "where it ended; [UNK] for the whole word if no piece fits")
def matches_hugging_face(impl, case):
    expected = hf_wordpiece(case["word"], case["vocab"], case["unk_token"], case["continuation"],
                            case["max_chars"])
    pieces = split(impl, case)
    assert_true(pieces == expected, f"pieces {pieces}, Hugging Face gives {expected}")


@prop("wordpiece_split", "the pieces spell the word, ## on every piece but the first",
      wordpiece_cases().filter(spellable),
      hint="the first piece is a plain prefix; every later piece is continuation + the next "
           "letters; together, without the ##, they are the word")
def pieces_spell_the_word(impl, case):
    pieces = split(impl, case)
    prefix = case["continuation"]
    assert_true(len(pieces) > 0, "no pieces for a word that can be spelled")
    assert_true(not pieces[0].startswith(prefix),
                f"the first piece {pieces[0]!r} carries {prefix!r}: it starts the word")
    later = [p for p in pieces[1:] if not p.startswith(prefix)]
    assert_true(not later, f"pieces after the first must carry {prefix!r}: {later} do not")
    joined = pieces[0] + "".join(p[len(prefix):] for p in pieces[1:])
    assert_true(joined == case["word"], f"the pieces {pieces} spell {joined!r}, not "
                                        f"{case['word']!r}")
    vocab = set(case["vocab"])
    unknown = [p for p in pieces if p not in vocab]
    assert_true(not unknown, f"pieces {unknown} are not in the vocabulary")


@prop("wordpiece_split", "takes the longest piece that matches at each step",
      wordpiece_cases().filter(spellable),
      hint="start with the whole rest of the word and shrink it from the right until it is in "
           "vocab (not grow it from one letter)")
def longest_match_first(impl, case):
    pieces, word, prefix = split(impl, case), case["word"], case["continuation"]
    vocab = set(case["vocab"])
    start = 0
    for i, piece in enumerate(pieces):
        length = len(piece) - (len(prefix) if i else 0)
        for longer in range(len(word), start + length, -1):
            candidate = (prefix if i else "") + word[start:longer]
            if candidate in vocab:
                raise Failure(f"piece {i} is {piece!r}, but the longer {candidate!r} is in the "
                              "vocabulary and matches there too")
        start += length


@prop("wordpiece_split", "a word it cannot spell becomes [UNK] alone, never part-spelled",
      wordpiece_cases().map(lambda c: {**c, "word": c["word"] + "d", "max_chars": 16}),
      hint="if at some position no piece (not even one letter) is in vocab, return [unk_token] "
           "for the whole word, dropping the pieces found so far")
def unknown_words_become_unk(impl, case):
    pieces = split(impl, case)
    assert_true(pieces == [case["unk_token"]],
                f"{case['word']!r} ends in 'd', which no piece holds: expected "
                f"[{case['unk_token']!r}], got {pieces}")


def at_the_limit(drawn) -> dict:
    """A spellable case with max_chars at the word's length, minus one if `over` (the word is
    then one character too long): the counterexample shows the max_chars of the failing call."""
    case, over = drawn
    return {**case, "max_chars": len(case["word"]) - over}


@prop("wordpiece_split", "a word longer than max_chars becomes [UNK]",
      st.tuples(wordpiece_cases().filter(spellable), st.booleans()).map(at_the_limit),
      hint="check len(word) > max_chars first: such a word is [unk_token], however spellable")
def long_words_become_unk(impl, case):
    word, max_chars = case["word"], case["max_chars"]
    pieces = split(impl, case)
    if max_chars < len(word):
        assert_true(pieces == [case["unk_token"]],
                    f"{word!r} has {len(word)} > max_chars={max_chars} characters: expected "
                    f"[{case['unk_token']!r}], got {pieces}")
    else:
        assert_true(pieces != [case["unk_token"]],
                    f"{word!r} has exactly max_chars={max_chars} characters and can be "
                    f"spelled, but gave {pieces}")


_MINILM: dict = {}  # read once: "vocab" {piece: id}, "letters" the pieces made of a-z alone


def minilm_vocab() -> dict[str, int]:
    """MiniLM-L6's vocab.txt as {piece: id}."""
    if not _MINILM:
        from minilm.pretrained import default_model_path

        lines = (default_model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
        _MINILM["vocab"] = {token: i for i, token in enumerate(lines)}
        bare = (token.removeprefix("##") for token in lines)
        _MINILM["letters"] = sorted({b for b in bare if b.isascii() and b.isalpha()})
    return _MINILM["vocab"]


@st.composite
def minilm_words(draw):
    """A lower-case word glued from 1..3 pieces of MiniLM's vocabulary (so it often is no word of
    the vocabulary itself), or a word with a character no piece holds."""
    rng = np.random.default_rng(draw(seeds))
    minilm_vocab()
    parts = rng.choice(_MINILM["letters"], size=draw(st.integers(1, 3)))
    word = "".join(parts).lower()
    if draw(st.integers(0, 9)) == 0:
        word += "\u2603"  # a snowman: in no piece
    return {"word": word, "unk_token": "[UNK]", "continuation": "##", "max_chars": 100}


@prop("wordpiece_split", "spells words like MiniLM-L6's tokenizer (its 30522 pieces)",
      minilm_words(), max_examples=25, reads=(HUGGING_FACE,),
      hint="the rules of the small vocabularies, on a real one: a word with a character no "
           "piece holds is [UNK] alone; look pieces up with `in` (a dict), not by scanning")
def matches_minilm(impl, case):
    vocab = minilm_vocab()
    expected = hf_wordpiece(case["word"], vocab, "[UNK]", "##", 100)
    pieces = split(impl, case, vocab=vocab)
    assert_true(pieces == expected, f"{case['word']!r}: pieces {pieces}, MiniLM's tokenizer "
                                    f"gives {expected}")


# ---------------------------------------------------------------- mean pooling


def pooled(impl, hidden, attention_mask) -> np.ndarray:
    out = as_array(impl.mean_pool(hidden, attention_mask), "mean_pool's output")
    expected_shape = (hidden.shape[0], hidden.shape[2])
    assert_true(out.shape == expected_shape, f"output of shape {out.shape}, expected "
                                             f"{expected_shape} (one vector per sequence)")
    return out


@prop("mean_pool", "is the mean of each sequence's real tokens", pooling_cases(),
      hint="sum hidden * mask[..., None] over the tokens, divide by mask.sum(axis=1) per row")
def mean_over_real_tokens(impl, case):
    hidden, mask = case["hidden"], case["attention_mask"]
    expected = np.stack([h[m.astype(bool)].mean(axis=0) for h, m in zip(hidden, mask)])
    assert_close("pooled vs the mean of the real tokens, row by row", expected,
                 pooled(impl, hidden, mask), EXACT_TOL)


@prop("mean_pool", "ignores whatever the padding positions hold", pooling_cases(),
      hint="padding positions hold vectors too (the encoder computes them): multiply by the "
           "mask so that they add nothing, and do not count them")
def ignores_padding(impl, case):
    hidden, mask = case["hidden"], case["attention_mask"]
    before = pooled(impl, hidden, mask)
    changed = hidden.copy()
    padded = ~mask.astype(bool)
    changed[padded] = 1e3 * np.random.default_rng(case["seed"]).standard_normal(
        changed[padded].shape)
    assert_close("pooled after changing the padding positions' vectors", before,
                 pooled(impl, changed, mask), EXACT_TOL)


@prop("mean_pool", "the mean of copies of one vector is that vector", pooling_cases(),
      hint="divide by the number of real tokens of each row, not by the sequence length T")
def mean_of_copies(impl, case):
    hidden, mask = case["hidden"], case["attention_mask"]
    same = np.broadcast_to(hidden[:, :1], hidden.shape).copy()  # every token = the row's first
    same[~mask.astype(bool)] = 0.0  # and zeros on padding, as a careless mean would count them
    assert_close("pooled copies vs the copied vector", hidden[:, 0], pooled(impl, same, mask),
                 EXACT_TOL)


def with_padding_row(case):
    """The case with one more sequence, made of padding only (a last row of mask 0)."""
    mask, hidden = case["attention_mask"], case["hidden"]
    return {**case, "hidden": np.concatenate([hidden, hidden[:1] + 1.0]),
            "attention_mask": np.concatenate([mask, np.zeros_like(mask[:1])])}


@prop("mean_pool", "a sequence of padding only gives zeros, not NaN",
      pooling_cases().map(with_padding_row),
      hint="clamp the count of real tokens to a tiny positive number (1e-9) before dividing",
      nonfinite=True)
def all_padding_row(impl, case):
    out = pooled(impl, case["hidden"], case["attention_mask"])
    assert_true(np.isfinite(out).all(), "a row without real tokens gave NaN or inf")
    assert_close("the all-padding row", np.zeros_like(out[-1]), out[-1], EXACT_TOL)


# ---------------------------------------------------------------- cosine similarity


def similarities(impl, embeddings) -> np.ndarray:
    out = as_array(impl.cosine_similarity_matrix(embeddings), "the similarity matrix")
    n = embeddings.shape[0]
    assert_true(out.shape == (n, n), f"similarities of shape {out.shape} for {n} rows: expected "
                                     f"({n}, {n})")
    return out


@prop("cosine_similarity_matrix", "matches torch's cosine_similarity (float64)", embedding_rows(),
      hint="S = U U^T with U the rows divided by their Euclidean norms (axis=-1, keepdims=True)")
def matches_torch(impl, case):
    import torch

    e = torch.as_tensor(case["embeddings"])
    expected = torch.nn.functional.cosine_similarity(e[:, None, :], e[None, :, :], dim=-1)
    assert_close("similarities vs torch", expected.numpy(), similarities(impl, case["embeddings"]),
                 TORCH_TOL)


@prop("cosine_similarity_matrix", "ignores the length of each vector", embedding_rows(),
      hint="cosine compares directions: normalise each row to length 1 before the dot products")
def ignores_lengths(impl, case):
    e = case["embeddings"]
    scales = 10.0 ** np.random.default_rng(case["seed"]).uniform(-2, 2, size=(len(e), 1))
    assert_close("similarities after rescaling each row", similarities(impl, e),
                 similarities(impl, scales * e), 1e-10)


@prop("cosine_similarity_matrix", "is symmetric, ones on the diagonal, every entry in [-1, 1]",
      embedding_rows(),
      hint="cos(a, b) = a.b / (|a| |b|): divide by both rows' norms, and each row by its own")
def symmetric_and_bounded(impl, case):
    s = similarities(impl, case["embeddings"])
    assert_close("S vs its transpose", s.T, s, EXACT_TOL)
    assert_close("the diagonal", np.ones(len(s)), np.diag(s), 1e-10)
    assert_true(np.all(np.abs(s) <= 1 + 1e-12), f"an entry of {np.abs(s).max():.4g} is outside "
                                                 "[-1, 1]")
