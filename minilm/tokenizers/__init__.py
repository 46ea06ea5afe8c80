"""Tokenizers: text <-> integer ids.

`CharTokenizer` (`char.py`) maps each character to an id (the demo models are character-level, so
the loss is in nats per character and can be compared to the built-in corpus's exact entropy rate).
`WordPieceTokenizer` (`wordpiece.py`) is BERT's tokenizer, read from a pretrained model's vocab.txt
(MiniLM's, say). Each saves itself into a run directory (`save(directory)`), and `load_tokenizer`
reads whichever a directory holds.
"""

from __future__ import annotations

from pathlib import Path

from minilm.tokenizers.char import CHAR_TOKENIZER_FILE, CharTokenizer
from minilm.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["CharTokenizer", "WordPieceTokenizer", "load_tokenizer"]


def load_tokenizer(directory):
    """The tokenizer saved in a run or model directory: a WordPieceTokenizer where there is a
    vocab.txt, a CharTokenizer where there is a char_tokenizer.json."""
    directory = Path(directory)
    if (directory / "vocab.txt").is_file():
        return WordPieceTokenizer.from_pretrained(directory)
    if (directory / CHAR_TOKENIZER_FILE).is_file():
        return CharTokenizer.from_pretrained(directory)
    raise FileNotFoundError(
        f"{str(directory)!r} holds no tokenizer: expected vocab.txt (WordPiece) or "
        f"{CHAR_TOKENIZER_FILE}"
    )
