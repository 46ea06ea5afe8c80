"""Byte-level BPE: GPT-2's tokenizer, read from vocab.json + merges.txt (any GPT-2-format
directory), with ids equal to Hugging Face's, and trained on a text file.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import regex

from minilm.common.checks import check_token_ids

#
# GPT-2 reads *bytes*, not characters: the UTF-8 bytes of any text, so no text is ever out of
# vocabulary (there is no [UNK]), yet common byte sequences ("Ġthe", "ing") are single tokens.
# Byte-pair encoding (BPE) builds those tokens: start from the 256 bytes and learn *merges*, each
# gluing two adjacent tokens into one, most frequent pair first. merges.txt lists them in the order
# they were learned (their *rank*); vocab.json gives every token its id.
#
# Turning text into ids takes three steps, each below as its own small piece:
#   1. bytes -> characters:  every byte gets a printable character ("Ġ" for the space, 0x20), so a
#                            token is a plain string and vocab.json / merges.txt are readable text
#   2. pre-tokenise:         GPT-2's regular expression cuts the text into words (letters, digits,
#                            punctuation, each run with at most one leading space; runs of
#                            whitespace); merges never cross a word boundary
#   3. merge by rank:        in each word, merge the adjacent pair learned earliest, again and
#                            again, until no pair of the word is in merges.txt
# Training (`BPETokenizer.train`) learns the merges: count the adjacent pairs over the corpus's
# words, merge the most frequent everywhere, repeat. tests/test_bpe.py checks ids, pre-tokenisation
# and trained merges against Hugging Face's `tokenizers`.

VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
MERGES_HEADER = "#version: 0.2"  # the first line of GPT-2's merges.txt (Hugging Face writes it too)
END_OF_TEXT = "<|endoftext|>"  # GPT-2's one special token: the last id of its vocabulary


# ---------------------------------------------------------------- 1. bytes -> characters


def _bytes_to_unicode() -> list[str]:
    """GPT-2's table, byte -> character. The 188 bytes that are printable characters in Latin-1
    ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the other 68 (control characters, the
    space, the soft hyphen, ...) take the characters from U+0100 on, in byte order: the space 0x20
    becomes "Ġ" (U+0120), the newline 0x0A "Ċ" (U+010A)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    others = [byte for byte in range(256) if byte not in table]
    table.update({byte: chr(256 + n) for n, byte in enumerate(others)})
    return [table[byte] for byte in range(256)]


BYTE_TO_CHAR = _bytes_to_unicode()
CHAR_TO_BYTE = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}
# The 256 one-byte tokens in code point order, which is the order of GPT-2's first 256 ids (and of
# Hugging Face's trainer, after its special tokens).
BYTE_ALPHABET = sorted(BYTE_TO_CHAR)


# ---------------------------------------------------------------- 2. pre-tokenisation

# GPT-2's pattern, tried left to right at each position: English contractions; a run of letters,
# of digits, or of anything else (punctuation, symbols), each with one optional leading space; then
# whitespace, where `\s+(?!\S)` leaves the last space of a run to start the next word (" the").
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _code_points(ranges: str) -> str:
    """'0558 058B-058C' -> the regex set body '\\U00000558\\U0000058b-\\U0000058c'."""
    items = []
    for item in ranges.split():
        low, _, high = item.partition("-")
        items.append("-".join(f"\\U{int(end, 16):08x}" for end in (low, high) if end))
    return "".join(items)


# Which characters are letters (\p{L}) or digits (\p{N}) depends on the Unicode version of the
# tables consulted. Hugging Face's pre-tokeniser (Oniguruma, in Rust) knows fewer than the `regex`
# package: the code points below, assigned in Unicode 17, are letters or digits to `regex` but
# "anything else" to Hugging Face (found by comparing the two on every code point, with regex
# 2026.11.19 and tokenizers 0.23.3). Taking them out of \p{L} and \p{N} gives Hugging Face's words
# on all 1.1 million code points; none of them is common text.
_NEWER_LETTERS = _code_points("""
    0558 058B-058C 088F 0C5C 0CDC 208F 209D-209F A7CE-A7CF A7D2 A7D4 A7DD A7E2 A7F1 AB6C-AB6D
    107BB-107BF 10940-10959 10EC5-10EC7 10ED9-10EEE 11B0A 11DB0-11DDB 11DF1 16EA0-16EB8
    16EBB-16ED3 16FF2-16FF3 187F8-187FF 18CD6-18CDA 18D09-18D20 18D80-18DF2 18E00-19191
    191A0-191D2 1B123-1B128 1B168 1D6A6 1DF1F-1DF24 1DF2B-1DF81 1DF90-1DF96 1DFCD-1DFFF
    1E6C0-1E6DE 1E6E0-1E6E2 1E6E4-1E6E5 1E6E7-1E6ED 1E6F0-1E6F4 1E6FE-1E6FF 2B73A-2B73F 2B81E
    2CEA2-2CEAD 323B0-33479 3D000-3FC3F
""")
_NEWER_DIGITS = _code_points("11DE0-11DE9 1246F 12475-1247F 12550-12686 16FF4-16FF6")
# regex's V1 syntax allows set difference (--) inside a character class, nested classes included.
_WORDS = regex.compile(
    GPT2_PATTERN.replace(r"\p{L}", rf"[\p{{L}}--[{_NEWER_LETTERS}]]")
    .replace(r"\p{N}", rf"[\p{{N}}--[{_NEWER_DIGITS}]]"),
    regex.VERSION1,
)


def pre_tokenize(text: str) -> list[str]:
    """Steps 1 and 2: text -> words, each written with the byte characters of its UTF-8 bytes.

    >>> pre_tokenize("Hello  world's 2024 café!")
    ['Hello', 'Ġ', 'Ġworld', "'s", 'Ġ2024', 'ĠcafÃ©', '!']

    A lone surrogate ("\\ud800", half of a UTF-16 pair that Python strings can hold) has no UTF-8
    bytes: it is refused.
    """
    try:
        return ["".join(BYTE_TO_CHAR[byte] for byte in word.encode("utf-8"))
                for word in _WORDS.findall(text)]
    except UnicodeEncodeError as error:
        raise ValueError(f"text holds {error.object[error.start]!r}, a lone surrogate (half of a "
                         "UTF-16 pair), which has no UTF-8 bytes to tokenize") from None


# ---------------------------------------------------------------- 3. merges


def merge_pair(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Every occurrence of `pair` in `symbols` merged into one symbol, left to right:
    ("a", "a", "a") with ("a", "a") -> ("aa", "a"). Encoding and training both use it."""
    first, second = pair
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


class BPETokenizer:
    """GPT-2's byte-level BPE tokenizer.

    >>> tok = BPETokenizer.train("the cat sat on the mat; the cat ate. " * 20, vocab_size=270)
    >>> tok.tokenize("the cat sat")
    ['the', 'Ġcat', 'Ġsat']
    >>> tok.decode(tok.encode("naïve café, 東京")) == "naïve café, 東京"  # any text round-trips
    True

    `vocab` maps each token (a string of byte characters) to its id; `merges` are the learned
    pairs, earliest (lowest rank, applied first) first. `<|endoftext|>` written in the text is the
    special token itself, as in Hugging Face's GPT-2 tokenizer.
    """

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        missing = [char for char in BYTE_ALPHABET if char not in vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 byte tokens, e.g. "
                             f"{missing[:5]}: not a byte-level BPE vocabulary")
        if END_OF_TEXT not in vocab:
            raise ValueError(f"the vocabulary lacks GPT-2's special token {END_OF_TEXT}")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("the vocabulary's ids must be 0, 1, ..., len(vocab) - 1")
        for rank, (first, second) in enumerate(merges):
            unknown = [token for token in (first, second, first + second) if token not in vocab]
            if unknown:
                raise ValueError(f"merge {rank} ({first} {second}) uses {unknown}, which the "
                                 "vocabulary lacks")
        self.vocab = dict(vocab)
        self.merges = [tuple(pair) for pair in merges]
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.id_to_token = {i: token for token, i in self.vocab.items()}
        self._special = regex.compile(f"({regex.escape(END_OF_TEXT)})")
        self._word_cache: dict[str, tuple[str, ...]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # ------------------------------------------------------------ encoding and decoding

    def bpe(self, word: str) -> tuple[str, ...]:
        """Step 3 on one pre-tokenised word: merge its adjacent pair of lowest rank, again and
        again, until none of its pairs is a merge. ("Ġ", "t", "h", "e") -> ("Ġthe",) if "t h",
        "Ġ th", "Ġth e" are merges."""
        if word in self._word_cache:
            return self._word_cache[word]
        symbols = tuple(word)
        while len(symbols) > 1:
            best = min(pairwise(symbols), key=lambda pair: self.ranks.get(pair, math.inf))
            if best not in self.ranks:
                break
            symbols = merge_pair(symbols, best)
        if len(self._word_cache) < 1 << 16:  # words repeat: remember the first 65k
            self._word_cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[str]:
        """Text -> tokens. `<|endoftext|>` is cut out first and kept whole; the text between is
        pre-tokenised and each word spelled with merges."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        tokens = []
        for i, part in enumerate(self._special.split(text)):
            if i % 2 == 1:  # split with a group puts the special tokens at odd indices
                tokens.append(part)
            else:
                tokens.extend(token for word in pre_tokenize(part) for token in self.bpe(word))
        return tokens

    def encode(self, text: str) -> np.ndarray:
        """Text -> ids (T,) int64."""
        return np.array([self.vocab[token] for token in self.tokenize(text)], dtype=np.int64)

    def decode(self, ids) -> str:
        """Ids -> text: the tokens' bytes joined and read as UTF-8. A sequence cut inside a
        character (a sample can stop anywhere) shows U+FFFD there, as in GPT-2."""
        tokens = [self.id_to_token[i] for i in check_token_ids(ids, self.vocab_size).tolist()]
        data = b"".join(token.encode("utf-8") if token == END_OF_TEXT
                        else bytes(CHAR_TO_BYTE[char] for char in token) for token in tokens)
        return data.decode("utf-8", errors="replace")

    # ------------------------------------------------------------ training

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """Learn merges on `text` until the vocabulary holds `vocab_size` tokens: the 256 bytes,
        one token per new merge, `<|endoftext|>` last (GPT-2's layout). Stops early when no pair
        is left to merge.

        Each round merges the most frequent adjacent pair (counted over every word occurrence,
        overlaps included: "aaa" holds ("a", "a") twice) in every word. On a tie, the pair whose
        tokens came first in the vocabulary wins (first token, then second), which is also Hugging
        Face's rule, so both learn the same merges. Only the words holding the chosen pair are
        respelled, and only their pairs recounted.
        """
        if not isinstance(vocab_size, int) or vocab_size < len(BYTE_ALPHABET) + 1:
            raise ValueError(f"vocab_size must be an int >= {len(BYTE_ALPHABET) + 1} (256 bytes "
                             f"and {END_OF_TEXT}), got {vocab_size!r}")
        if not isinstance(text, str):
            raise ValueError(f"text must be a str (the corpus), got {type(text).__name__}")
        vocab = {char: i for i, char in enumerate(BYTE_ALPHABET)}
        word_counts = Counter(pre_tokenize(text))
        spellings = {word: tuple(word) for word in word_counts}
        pair_counts = Counter()
        words_with = defaultdict(set)  # pair -> the words holding it (a superset, never pruned)
        for word, count in word_counts.items():
            for pair in pairwise(word):
                pair_counts[pair] += count
                words_with[pair].add(word)

        merges = []
        while len(vocab) + 1 < vocab_size and pair_counts:
            best = max(pair_counts,
                       key=lambda pair: (pair_counts[pair], -vocab[pair[0]], -vocab[pair[1]]))
            merges.append(best)
            vocab.setdefault(best[0] + best[1], len(vocab))  # ("a", "bc") and ("ab", "c") meet
            for word in words_with.pop(best):
                old, new = spellings[word], merge_pair(spellings[word], best)
                for pair in pairwise(old):
                    pair_counts[pair] -= word_counts[word]
                for pair in pairwise(new):
                    pair_counts[pair] += word_counts[word]
                    words_with[pair].add(word)
                spellings[word] = new
            pair_counts = +pair_counts  # drop the pairs no word holds any more
        vocab[END_OF_TEXT] = len(vocab)
        return cls(vocab, merges)

    # ------------------------------------------------------------ files

    def save(self, directory) -> None:
        """Write vocab.json and merges.txt into `directory`, created if need be (GPT-2's format,
        which Hugging Face's GPT2Tokenizer reads; `load_tokenizer` reads it back)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / VOCAB_FILE).write_text(json.dumps(self.vocab, ensure_ascii=False),
                                            encoding="utf-8")
        lines = [MERGES_HEADER, *(f"{first} {second}" for first, second in self.merges)]
        (directory / MERGES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory) -> BPETokenizer:
        """Load a GPT-2-format tokenizer directory: vocab.json (token -> id) and merges.txt (one
        merge "first second" per line, by rank, after an optional "#version" line)."""
        directory = Path(directory)
        paths = [directory / VOCAB_FILE, directory / MERGES_FILE]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"no {' or '.join(missing)} in tokenizer directory "
                                    f"{str(directory)!r}")
        try:
            vocab = json.loads(paths[0].read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{paths[0]} is not a JSON vocabulary ({error})") from None
        merges = []
        lines = paths[1].read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line or line.startswith("#version"):
                continue
            pair = tuple(line.split(" "))
            if len(pair) != 2:
                raise ValueError(f"{paths[1]}, line {number}: expected two tokens separated by "
                                 f"one space, got {line!r}")
            merges.append(pair)
        return cls(vocab, merges)
