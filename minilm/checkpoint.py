"""Run directories: the one format that pre-training and fine-tuning write and every command reads.

    runs/clm/
        model.safetensors     the weights by Hugging Face name (both backends: `numpy_params`)
        config.json           {"kind": ..., "config": ModelConfig, "num_labels": ..., "metadata": ...}
        char_tokenizer.json   the tokenizer's own files: this, or vocab.txt + tokenizer_config.json
        metrics.json          what the loop measured (written by the loop, not read back here)

`kind` says which model the weights belong to, and so how to rebuild it: "decoder" (GPT-2, CLM),
"encoder" (BERT with its MLM head) or "sequence_classifier" (BERT, pooler and a `classifier` of
`num_labels` outputs). `metadata` is whatever the loop wants to keep (the objective, the label names,
the settings, the base model).

Never pickle: safetensors files hold only named arrays, so loading a run cannot run code. Each file
is written atomically (a temporary file in the same directory, flushed to disk, then renamed over
the old one), so a save that fails or is killed half way leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from minilm.common.backends import check_backend, numpy_params, on_backend
from minilm.config import ModelConfig
from minilm.tokenizers import load_tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# the class of a model (either backend) -> its kind in config.json
KIND_OF_CLASS = {"Decoder": "decoder", "Encoder": "encoder",
                 "SequenceClassifier": "sequence_classifier"}
KINDS = tuple(KIND_OF_CLASS.values())


class Run(NamedTuple):
    """What a run directory holds, as read by `read_run`."""

    params: dict[str, np.ndarray]
    kind: str
    config: ModelConfig
    tokenizer: object
    metadata: dict
    num_labels: int | None = None


def write_atomic(path, data: bytes) -> None:
    """Write `data` to `path` so that `path` always holds either its old or its new contents."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def save_run(directory, model, tokenizer, **metadata) -> Path:
    """Write `model` (NumPy or torch), its tokenizer and `metadata` (JSON-serialisable) into a run
    directory, created if needed; returns its path."""
    kind = KIND_OF_CLASS.get(type(model).__name__)
    if kind is None:
        raise ValueError(f"save_run: cannot save a {type(model).__name__}; expected one of "
                         f"{sorted(KIND_OF_CLASS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = {name: np.ascontiguousarray(value) for name, value in numpy_params(model).items()}
    write_atomic(directory / WEIGHTS_FILE, save(params))
    tokenizer.save(directory)
    meta = {"kind": kind, "config": model.config.to_dict(),
            "num_labels": getattr(model, "num_labels", None), "metadata": metadata}
    write_json(directory / CONFIG_FILE, meta)
    return directory


def read_run(directory) -> Run:
    """Read a run directory, with an error that names the path for anything missing or damaged."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"run directory {str(directory)!r} does not exist")
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (directory / name).is_file()]
    if missing:
        raise ValueError(
            f"run directory {str(directory)!r} lacks {missing}; expected {WEIGHTS_FILE} and "
            f"{CONFIG_FILE} as written by `minilm train` or `minilm finetune`"
        )
    where = directory / CONFIG_FILE
    try:
        meta = json.loads(where.read_text(encoding="utf-8"))
        kind, config = meta["kind"], ModelConfig.from_dict(meta["config"])
        num_labels, metadata = meta.get("num_labels"), meta.get("metadata", {})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
            AttributeError) as error:
        raise ValueError(f"{where} is not a minilm run config ({error!r})") from None
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    try:
        params = load((directory / WEIGHTS_FILE).read_bytes())
    except SafetensorError as error:
        raise ValueError(f"{directory / WEIGHTS_FILE} is not a readable safetensors file "
                         f"({error})") from None
    tokenizer = load_tokenizer(directory)
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens but "
                         f"{where} says vocab_size={config.vocab_size}")
    return Run(params, kind, config, tokenizer, metadata, num_labels)


def build_model(run: Run, backend: str = "numpy"):
    """The model a `Run` describes, its weights loaded, on `backend`, in eval mode."""
    from minilm.numpy import Decoder, Encoder, SequenceClassifier

    check_backend(backend)
    if run.kind == "decoder":
        model = Decoder(run.config)
    elif run.kind == "encoder":
        model = Encoder(run.config)
    else:
        model = SequenceClassifier(Encoder(run.config, mlm_head=False, pooler=True),
                                   run.num_labels)
    try:
        model.load_params(run.params)
    except ValueError as error:
        raise ValueError(f"the weights do not fit the {run.kind} the config describes: "
                         f"{error}") from None
    return on_backend(model, backend).eval()


def load_run(directory, backend: str = "numpy"):
    """-> (model in eval mode, the run as read): `build_model(read_run(directory), backend)`."""
    run = read_run(directory)
    return build_model(run, backend), run
