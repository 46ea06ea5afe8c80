"""Tokenizers: text <-> integer ids.

`CharTokenizer` (`char.py`) maps each character to an id (the demo models are character-level, so
the loss is in nats per character and can be compared to the built-in corpus's exact entropy rate).
`WordPieceTokenizer` (`wordpiece.py`) is BERT's tokenizer, read from a pretrained model's vocab.txt
(MiniLM's, say). `BPETokenizer` (`bpe.py`) is GPT-2's byte-level BPE, read from vocab.json +
merges.txt or trained on a text file. Each saves itself into a directory (`save(directory)`), and
`load_tokenizer` reads whichever a directory holds.
"""

from __future__ import annotations

from pathlib import Path

from minilm.tokenizers.bpe import MERGES_FILE, VOCAB_FILE, BPETokenizer
from minilm.tokenizers.char import CHAR_TOKENIZER_FILE, CharTokenizer
from minilm.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["BPETokenizer", "CharTokenizer", "WordPieceTokenizer", "load_tokenizer"]

# every file a tokenizer here saves (a run directory holds one tokenizer's)
TOKENIZER_FILES = (VOCAB_FILE, MERGES_FILE, "vocab.txt", "tokenizer_config.json",
                   CHAR_TOKENIZER_FILE)


def load_tokenizer(directory):
    """The tokenizer saved in a run or model directory: a BPETokenizer where there are vocab.json
    and merges.txt (GPT-2's), a WordPieceTokenizer where there is a vocab.txt (BERT's), a
    CharTokenizer where there is a char_tokenizer.json."""
    directory = Path(directory)
    if (directory / VOCAB_FILE).is_file() and (directory / MERGES_FILE).is_file():
        return BPETokenizer.from_pretrained(directory)
    if (directory / "vocab.txt").is_file():
        return WordPieceTokenizer.from_pretrained(directory)
    if (directory / CHAR_TOKENIZER_FILE).is_file():
        return CharTokenizer.from_pretrained(directory)
    raise FileNotFoundError(
        f"{str(directory)!r} holds no tokenizer: expected {VOCAB_FILE} + {MERGES_FILE} (BPE), "
        f"vocab.txt (WordPiece) or {CHAR_TOKENIZER_FILE}"
    )
