"""One id per character: the tokenizer of the demo models, whose loss is then in nats per character
and can be compared with the built-in corpus's exact entropy rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from minilm.common.checks import check_token_ids

CHAR_TOKENIZER_FILE = "char_tokenizer.json"


class CharTokenizer:
    """One id per character. Id 0 is reserved for padding, id 1 for [MASK] (MLM needs one)."""

    PAD, MASK = "<pad>", "<mask>"

    def __init__(self, chars: str | list[str]):
        unique = sorted(set(chars) - {self.PAD, self.MASK})
        self.itos: list[str] = [self.PAD, self.MASK, *unique]
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not text:
            raise ValueError("text must be non-empty to build a CharTokenizer")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def mask_id(self) -> int:
        return 1

    @property
    def special_ids(self) -> list[int]:
        return [self.pad_id, self.mask_id]

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:  # with code points: a precomposed é and e + a combining accent look alike
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in unknown[:10])
            raise ValueError(f"text contains characters outside the vocabulary: {shown}")
        return np.array([self.stoi[ch] for ch in text], dtype=np.int64)

    def decode(self, ids) -> str:
        ids = check_token_ids(ids, self.vocab_size)
        return "".join(self.itos[i] for i in ids if i >= len(self.special_ids))

    def to_json(self) -> str:
        return json.dumps({"type": "char", "chars": self.itos[len(self.special_ids):]})

    @classmethod
    def from_json(cls, text: str) -> CharTokenizer:
        data = json.loads(text)
        if data.get("type") != "char":
            raise ValueError(f"tokenizer JSON has type {data.get('type')!r}, expected 'char'")
        return cls(data["chars"])

    def save(self, directory) -> None:
        """Write `char_tokenizer.json` into `directory`, created if need be (read back by
        `load_tokenizer`)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / CHAR_TOKENIZER_FILE).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory) -> CharTokenizer:
        path = Path(directory) / CHAR_TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {CHAR_TOKENIZER_FILE} in {str(directory)!r}")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path} is not a CharTokenizer file ({error!r})") from None
