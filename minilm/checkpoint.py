"""Checkpoints: a directory holding `model.safetensors` (the weights, by parameter name) and
`config.json` (which model, its ModelConfig, its tokenizer). Never pickle: safetensors files hold
only named arrays, so loading a checkpoint cannot run code.

The same files serve both backends: the NumPy model's `params` and the PyTorch twin's
`state_dict()` have the same keys and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from minilm.config import ModelConfig
from minilm.tokenizers import CharTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MODEL_KINDS = ("encoder", "decoder")


def save_checkpoint(directory, params: dict[str, np.ndarray], kind: str, config: ModelConfig,
                    tokenizer: CharTokenizer, **extra) -> Path:
    """Write weights and config; `extra` (JSON-serialisable) is stored under "extra"."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(value) for name, value in params.items()},
              str(directory / WEIGHTS_FILE))
    meta = {
        "kind": kind,
        "config": config.to_dict(),
        "tokenizer": json.loads(tokenizer.to_json()),
        "extra": extra,
    }
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def read_checkpoint(directory):
    """-> (params, kind, config, tokenizer, extra), with a clear error for anything missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"checkpoint directory {str(directory)!r} does not exist")
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (directory / name).is_file()]
    if missing:
        raise ValueError(
            f"checkpoint directory {str(directory)!r} lacks {missing}; expected {WEIGHTS_FILE} and "
            f"{CONFIG_FILE} as written by `minilm train`"
        )
    try:
        meta = json.loads((directory / CONFIG_FILE).read_text())
        kind, config = meta["kind"], ModelConfig.from_dict(meta["config"])
        tokenizer = CharTokenizer.from_json(json.dumps(meta["tokenizer"]))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{directory / CONFIG_FILE} is not a minilm checkpoint config ({error!r})"
        ) from None
    if kind not in MODEL_KINDS:
        raise ValueError(f"{directory / CONFIG_FILE}: kind must be one of {MODEL_KINDS}, got {kind!r}")
    params = load_file(str(directory / WEIGHTS_FILE))
    return params, kind, config, tokenizer, meta.get("extra", {})
