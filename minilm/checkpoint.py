"""Run directories: the one format that pre-training and fine-tuning write, every command reads,
and Hugging Face `transformers` loads as it is.

    runs/clm/
        config.json                  Hugging Face's fields, and minilm's own in a "minilm" block
        char_tokenizer.json          the tokenizer's own files (or vocab.txt + tokenizer_config.json)
        model.safetensors            the weights by Hugging Face name, laid out as transformers
                                     stores them (both backends: `numpy_params`)
        training_state.safetensors   the last checkpoint, whole: what `--resume` continues from
        metrics.jsonl                one line per evaluation, appended as the run goes
                                     (`minilm.metrics_log`; with --tensorboard, tensorboard/ too)
        metrics.json                 what the loop measured (written by the loop, not read back here)

`kind` says which model the weights belong to, and so how to rebuild it: "decoder" (GPT-2, CLM),
"encoder" (BERT, with the heads its weights hold: the MLM head, the pooler, both or neither),
"sequence_classifier" (BERT, pooler and a `classifier` of `num_labels` outputs) or "seq2seq" (the
BART encoder-decoder; an untied output layer shows as an `lm_head.weight` among the weights).
`metadata` is whatever the loop wants to keep (the objective, the label names, the settings, the
base model).

config.json, one file for two readers:

    {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
     "hidden_size": 384, "num_hidden_layers": 6, ..., "id2label": {"0": "negative", ...},
     "minilm": {"kind": "sequence_classifier", "config": {ModelConfig}, "num_labels": 2,
                "metadata": {...}}}

The "minilm" block is the whole truth for minilm: the kind, the ModelConfig field by field, the
number of labels, the metadata. Around it, Hugging Face's fields describe the same model in
transformers' names (`hf_config_fields`): model_type and architectures (a kind's are in
`HF_ARCHITECTURES`: GPT2LMHeadModel, BertForMaskedLM (BertModel without the MLM head),
BertForSequenceClassification, BartForConditionalGeneration), the sizes, the activation, dropout,
the epsilon, and id2label / label2id for a classifier, so that

    AutoModelForSequenceClassification.from_pretrained("runs/sentiment")

builds our classifier and computes our logits. Why both rather than one: transformers can describe
only some of what minilm builds. Sinusoidal positions, pruned heads (transformers 5 has no
`pruned_heads`), a layer-norm epsilon other than BART's, say, have no Hugging Face field; such a run
gets the "minilm" block alone (no model_type, so transformers refuses the directory instead of
building a different model) and still round-trips exactly. Whether the fields say it all is not a
list kept by hand: they are read back through `minilm.pretrained`'s mapping (`bert_config`,
`gpt2_config`, `bart_config`, the one copy of Hugging Face -> ModelConfig), and written only when
that gives the ModelConfig back. Reading a run checks the same way that the two still agree, so a
field edited on one side only is an error naming the fields, not silently ignored; and a directory
that transformers' `save_pretrained` rewrites (it keeps the block) is still ours.

The weights are laid out as transformers stores them, so it loads model.safetensors as it is: by
Hugging Face name (minilm's names are HF's), with the "format": "pt" metadata transformers asks
for, and GPT-2's four projections in the (in, out) layout of its Conv1D layers (`hf_weights`);
reading a run puts them back through `minilm.pretrained` (`gpt2_params`, `bert_params`,
`bart_params`), which also drops tied copies a transformers save may add.

A training loop writes the same files in two steps and keeps its checkpoint beside them
(`minilm.training_state`).

Never pickle: safetensors files hold only named arrays, so loading a run cannot run code. Every file
is written atomically (`minilm.files.write_atomic`: a temporary file in the same directory, flushed
to disk, then renamed over the old one), so a save that fails or is killed half way leaves the
previous file, and so the previous checkpoint, intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from safetensors.numpy import save

from minilm.common.backends import check_backend, numpy_params, on_backend
from minilm.config import ModelConfig
from minilm.files import write_atomic, write_json
from minilm.pretrained import (  # CONFIG_FILE, WEIGHTS_FILE: a model directory's, so a run's
    CONFIG_FILE,
    GPT2_CONV1D,
    HF_ACTIVATIONS,
    HF_CONFIG_READERS,
    WEIGHTS_FILE,
    bart_params,
    bert_heads,
    bert_params,
    gpt2_params,
    read_weights,
)
from minilm.tokenizers import load_tokenizer

TRAINING_STATE_FILE = "training_state.safetensors"
METRICS_FILE = "metrics.json"
METRICS_LOG_FILE = "metrics.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"  # minilm train's picture
CURVES_FILE = "finetune_curves.png"  # minilm finetune's
TENSORBOARD_DIR = "tensorboard"  # TensorBoard's event files, with --tensorboard
MINILM_BLOCK = "minilm"  # config.json's key for what only minilm reads
BLOCK_KEYS = ("kind", "config", "num_labels", "metadata")
# the class of a model (either backend) -> its kind in config.json
KIND_OF_CLASS = {"Decoder": "decoder", "Encoder": "encoder",
                 "SequenceClassifier": "sequence_classifier", "Seq2Seq": "seq2seq"}
KINDS = tuple(KIND_OF_CLASS.values())
# kind -> (Hugging Face model_type, the transformers class its weights are)
HF_ARCHITECTURES = {"decoder": ("gpt2", "GPT2LMHeadModel"),
                    "encoder": ("bert", "BertForMaskedLM"),
                    "sequence_classifier": ("bert", "BertForSequenceClassification"),
                    "seq2seq": ("bart", "BartForConditionalGeneration")}
# model_type -> its weights -> ours (its fields -> ModelConfig: minilm.pretrained.HF_CONFIG_READERS)
READ_HF_WEIGHTS = {"gpt2": gpt2_params, "bart": bart_params,
                   "bert": bert_params}


class Run(NamedTuple):
    """What a run directory holds, as read by `read_run`."""

    params: dict[str, np.ndarray]
    kind: str
    config: ModelConfig
    tokenizer: object
    metadata: dict
    num_labels: int | None = None
    directory: Path | None = None  # where it was read from, for error messages


# ---------------------------------------------------------------- leftovers of a killed save


def remove_temporaries(directory) -> None:
    """Delete the temporary files that saves killed half way left behind (never read)."""
    for name in (WEIGHTS_FILE, CONFIG_FILE, TRAINING_STATE_FILE, METRICS_FILE, METRICS_LOG_FILE):
        for leftover in Path(directory).glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)


# ---------------------------------------------------------------- a finished model


def save_run(directory, model, tokenizer, **metadata) -> Path:
    """Write `model` (NumPy or torch), its tokenizer and `metadata` (JSON-serialisable) into a run
    directory, created if needed; returns its path. (A training loop writes the same files in two
    steps: `minilm.training_state`'s `start_run` and `save_checkpoint`.) `metadata["label_names"]`,
    if given, names a classifier's labels in Hugging Face's id2label."""
    directory = describe_run(directory, model, tokenizer, metadata)
    write_atomic(directory / WEIGHTS_FILE, weights_file(model, numpy_params(model)))
    return directory


def describe_run(directory, model, tokenizer, metadata: dict) -> Path:
    """config.json and the tokenizer: what the weights are and how to read text into them. A
    quantized model is refused: its int8 weights and scales are no Hugging Face parameters (the
    directory would load in transformers with those Linears freshly initialised)."""
    from minilm.compress.quantize import check_not_quantized

    check_not_quantized(model, "save it as a run", "save the float model, and quantize it after "
                                                   "loading (quantize(load_run(...)[0]))")
    kind = kind_of(model)
    if tokenizer.vocab_size != model.config.vocab_size:  # read_run would refuse the directory
        raise ValueError(f"save_run: the tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"model's vocab_size is {model.config.vocab_size}")
    num_labels = getattr(model, "num_labels", None)
    label_names = ()
    if num_labels is not None:  # given, or transformers' defaults; read_run expects them
        label_names = metadata.get("label_names") or [f"LABEL_{i}" for i in range(num_labels)]
        check_label_names("save_run: label_names", label_names, num_labels)
        metadata = {**metadata, "label_names": list(label_names)}
    tied = getattr(model, "tie_word_embeddings", True)  # a seq2seq model's output layer
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(directory)
    block = {"kind": kind, "config": model.config.to_dict(), "num_labels": num_labels,
             "metadata": metadata}
    hf_fields = hf_config_fields(kind, model.config, label_names, tied,
                                 mlm_head=getattr(model, "mlm_head", True))
    write_json(directory / CONFIG_FILE, {**hf_fields, MINILM_BLOCK: block})
    return directory


def check_label_names(name: str, label_names, num_labels: int) -> None:
    """A classifier's label names: a list of `num_labels` distinct strings, the name of each output
    in order (they become Hugging Face's id2label and label2id, which a repeated name would break)."""
    if not (isinstance(label_names, (list, tuple)) and len(label_names) == num_labels
            and all(isinstance(label, str) for label in label_names)
            and len(set(label_names)) == num_labels):
        raise ValueError(f"{name} must be a list of {num_labels} distinct strings (num_labels="
                         f"{num_labels}), got {label_names!r}")


def kind_of(model) -> str:
    """The kind of a model of either backend ("decoder", ...), or ValueError."""
    kind = KIND_OF_CLASS.get(type(model).__name__)
    if kind is None:
        raise ValueError(f"save_run: cannot save a {type(model).__name__}; expected one of "
                         f"{sorted(KIND_OF_CLASS)}")
    return kind


def hf_config_fields(kind: str, config: ModelConfig, label_names=(),
                     tie_word_embeddings: bool = True, mlm_head: bool = True) -> dict:
    """The Hugging Face config.json fields that describe a model of `kind` and `config` exactly,
    or {} when they cannot (see the module docstring): each ModelConfig field under its Hugging
    Face name, then read back through `minilm.pretrained`'s mapping and kept only if that gives
    `config` again. Token ids transformers would otherwise assume (GPT-2's 50256, BART's 0 and 2)
    are None: a minilm vocabulary has its own."""
    if kind not in HF_ARCHITECTURES:
        return {}
    model_type, architecture = HF_ARCHITECTURES[kind]
    if kind == "encoder" and not mlm_head:
        architecture = "BertModel"  # the bare encoder: hidden states (and the pooler, if built)
    c = config
    activation = next(name for name, ours in HF_ACTIVATIONS.items() if ours == c.activation)
    fields = {
        "gpt2": dict(n_positions=c.max_len, n_embd=c.d_model, n_head=c.n_heads,
                     n_layer=c.n_layers, n_inner=c.d_ff, activation_function=activation,
                     resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
                     layer_norm_epsilon=c.layer_norm_eps, bos_token_id=None, eos_token_id=None),
        "bert": dict(max_position_embeddings=c.max_len, hidden_size=c.d_model,
                     num_attention_heads=c.n_heads, num_hidden_layers=c.n_layers,
                     intermediate_size=c.d_ff, hidden_act=activation,
                     hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout,
                     layer_norm_eps=c.layer_norm_eps, type_vocab_size=c.type_vocab_size),
        "bart": dict(max_position_embeddings=c.max_len, d_model=c.d_model,
                     encoder_layers=c.n_layers, decoder_layers=c.n_layers,
                     encoder_attention_heads=c.n_heads, decoder_attention_heads=c.n_heads,
                     encoder_ffn_dim=c.d_ff, decoder_ffn_dim=c.d_ff,
                     activation_function=activation, dropout=c.dropout,
                     attention_dropout=c.dropout, activation_dropout=0.0, scale_embedding=False,
                     tie_word_embeddings=tie_word_embeddings, bos_token_id=None,
                     eos_token_id=None, decoder_start_token_id=None, forced_eos_token_id=None),
    }[model_type]
    fields = {"model_type": model_type, "architectures": [architecture],
              "vocab_size": c.vocab_size, **fields, "pad_token_id": c.pad_token_id}
    if kind == "sequence_classifier":
        fields |= hf_label_fields(label_names)
    try:
        described = HF_CONFIG_READERS[model_type](fields, Path(CONFIG_FILE))
    except ValueError:  # e.g. a combination pretrained.py rejects
        return {}
    return fields if described == config else {}


def hf_label_fields(label_names) -> dict:
    """A classifier's labels in Hugging Face's fields: id2label (its JSON keys are strings) and
    label2id."""
    return {"id2label": {str(i): name for i, name in enumerate(label_names)},
            "label2id": {name: i for i, name in enumerate(label_names)}}


def hf_weights(kind: str, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """minilm's weights as transformers stores them: the same names; a decoder's four GPT-2
    projections transposed to Conv1D's (in, out); for a seq2seq model with an untied output layer,
    the encoder's and decoder's `embed_tokens` as copies of `model.shared`, which transformers 5
    then reads from the file rather than tying. (Reading back: `READ_HF_WEIGHTS`, which drops
    the copies.)"""
    if kind == "decoder":
        return {name: value.T if name.endswith(GPT2_CONV1D) else value
                for name, value in params.items()}
    if kind == "seq2seq" and "lm_head.weight" in params:
        shared = params["model.shared.weight"]
        return {**params, "model.encoder.embed_tokens.weight": shared,
                "model.decoder.embed_tokens.weight": shared}
    return params


def weights_file(model, params: dict[str, np.ndarray]) -> bytes:
    """model.safetensors's bytes: `hf_weights`, with the metadata transformers checks for."""
    return save(contiguous(hf_weights(kind_of(model), params)), metadata={"format": "pt"})


def contiguous(arrays: dict) -> dict[str, np.ndarray]:
    """C-ordered arrays for safetensors (np.asarray keeps a 0-d count 0-d, where
    np.ascontiguousarray would make it 1-d)."""
    return {name: np.asarray(value, order="C") for name, value in arrays.items()}


# ---------------------------------------------------------------- reading a run


def read_run(directory) -> Run:
    """Read a run directory, with an error that names the path for anything missing or damaged:
    config.json (JSON object, known kind, a valid ModelConfig), the weights (a safetensors file of
    floating-point arrays) and the tokenizer (its vocabulary the config's)."""
    directory = Path(directory)
    if directory.is_file():
        raise ValueError(f"{str(directory)!r} is a file, not a run directory (the directory that "
                         f"holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not directory.is_dir():
        raise ValueError(f"run directory {str(directory)!r} does not exist")
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (directory / name).is_file()]
    if missing:
        raise ValueError(
            f"run directory {str(directory)!r} lacks {missing}; expected {WEIGHTS_FILE} and "
            f"{CONFIG_FILE} as written by `minilm train` or `minilm finetune`"
        )
    kind, config, num_labels, metadata = _read_config(directory / CONFIG_FILE)
    where = directory / WEIGHTS_FILE
    params = read_weights(where)  # the reader of every model directory (bfloat16 is refused)
    for name, value in params.items():
        if value.dtype.kind != "f":
            raise ValueError(f"{where}: {name} holds {value.dtype} values; expected floating-point "
                             "weights")
    params = READ_HF_WEIGHTS[HF_ARCHITECTURES[kind][0]](params, where)  # transformers' layout
    try:
        tokenizer = load_tokenizer(directory)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{directory}: the tokenizer cannot be read ({error})") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens but "
                         f"{directory / CONFIG_FILE} says vocab_size={config.vocab_size}")
    return Run(params, kind, config, tokenizer, metadata, num_labels, directory)


def _read_config(where: Path) -> tuple[str, ModelConfig, int | None, dict]:
    """(kind, config, num_labels, metadata) of a run's config.json (its "minilm" block, checked
    against the Hugging Face fields beside it), or ValueError naming it."""
    try:
        meta = json.loads(where.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise TypeError(f"a JSON object was expected, not a {type(meta).__name__}")
        if MINILM_BLOCK not in meta:
            hint = ("; a Hugging Face model directory is read by minilm.pretrained.load_pretrained"
                    if "model_type" in meta else
                    "; its top-level kind and config are an earlier minilm's layout, before run "
                    "directories were Hugging Face's: train it again" if "kind" in meta else "")
            raise ValueError(f"no {MINILM_BLOCK!r} block{hint}")
        block = meta[MINILM_BLOCK]
        if not isinstance(block, dict):
            raise ValueError(f"its {MINILM_BLOCK!r} block must be a JSON object, got {block!r}")
        unknown = sorted(set(block) - set(BLOCK_KEYS))
        if unknown:
            raise ValueError(f"unknown keys {unknown} in its {MINILM_BLOCK!r} block; expected "
                             f"{', '.join(BLOCK_KEYS)}")
        missing = [key for key in ("kind", "config") if key not in block]
        if missing:
            raise ValueError(f"its {MINILM_BLOCK!r} block lacks {missing}; expected "
                             f"{', '.join(BLOCK_KEYS)}")
        if not isinstance(block["config"], dict):
            raise ValueError(f"its {MINILM_BLOCK!r} block's config must be a JSON object of "
                             f"ModelConfig fields, got {block['config']!r}")
        kind, config = block["kind"], ModelConfig.from_dict(block["config"])
        num_labels, metadata = block.get("num_labels"), block.get("metadata", {})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError,
            ValueError) as error:
        raise ValueError(f"{where} is not a minilm run config ({error})") from None
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: metadata must be a JSON object, got {metadata!r}")
    if kind == "sequence_classifier" and (isinstance(num_labels, bool)
                                          or not isinstance(num_labels, int) or num_labels < 2):
        raise ValueError(f"{where}: num_labels must be an int >= 2 for a sequence classifier, "
                         f"got {num_labels!r}")
    if kind == "sequence_classifier":
        check_label_names(f"{where}: the {MINILM_BLOCK!r} block's metadata.label_names",
                          metadata.get("label_names"), num_labels)
    _check_hf_fields(meta, kind, config, metadata.get("label_names"), where)
    return kind, config, num_labels, metadata


def _check_hf_fields(meta: dict, kind: str, config: ModelConfig, label_names, where: Path) -> None:
    """The Hugging Face fields of config.json, if it has them, describe the model of its "minilm"
    block: the kind's model_type, the same ModelConfig through `minilm.pretrained`'s mapping, the
    same labels (id2label and label2id: `label_names` and their ids). (A run that transformers
    cannot describe has no model_type: nothing to check.)"""
    if "model_type" not in meta:
        return
    model_type = HF_ARCHITECTURES[kind][0]
    if meta["model_type"] != model_type:
        raise ValueError(f"{where}: model_type {meta['model_type']!r} does not fit the "
                         f"{MINILM_BLOCK!r} block's kind {kind!r} (a {model_type!r} model)")
    try:
        described = HF_CONFIG_READERS[model_type](meta, where).to_dict()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: its Hugging Face fields cannot be read ({error})") from None
    differ = sorted(name for name, value in config.to_dict().items() if described[name] != value)
    if differ:
        raise ValueError(f"{where}: the Hugging Face fields and the {MINILM_BLOCK!r} block "
                         f"describe different models (ModelConfig {differ}: "
                         f"{[described[name] for name in differ]} vs "
                         f"{[config.to_dict()[name] for name in differ]}); edit both or neither")
    if kind != "sequence_classifier":
        return
    # a field transformers leaves out is the one it assumes: two labels, LABEL_0 and LABEL_1
    theirs = {**hf_label_fields(["LABEL_0", "LABEL_1"]), **meta}
    if len(theirs["id2label"] or {}) != len(label_names):
        raise ValueError(f"{where}: id2label names {len(theirs['id2label'] or {})} labels but "
                         f"the {MINILM_BLOCK!r} block says num_labels={len(label_names)}")
    for field, ours in hf_label_fields(label_names).items():
        if theirs[field] != ours:
            raise ValueError(f"{where}: {field} {theirs[field]!r} and the {MINILM_BLOCK!r} "
                             f"block's label_names {label_names} name different labels; edit "
                             "both or neither")


def build_model(run: Run, backend: str = "numpy", device: str = "auto"):
    """The model a `Run` describes, its weights loaded, on `backend` (and, for the twin, `device`,
    see `on_backend`), in eval mode."""
    from minilm.numpy import Decoder, Encoder, Seq2Seq, SequenceClassifier

    check_backend(backend)
    if run.kind == "decoder":
        model = Decoder(run.config)
    elif run.kind == "encoder":  # with the heads its weights hold (a pretrained BertModel: none)
        model = Encoder(run.config, **bert_heads(run.params))
    elif run.kind == "seq2seq":
        model = Seq2Seq(run.config, tie_word_embeddings="lm_head.weight" not in run.params)
    else:
        model = SequenceClassifier(Encoder(run.config, mlm_head=False, pooler=True),
                                   run.num_labels)
    try:
        model.load_params(run.params)
    except ValueError as error:
        source = "" if run.directory is None else f"{run.directory / WEIGHTS_FILE}: "
        raise ValueError(f"{source}the weights do not fit the {run.kind} the config describes: "
                         f"{error}") from None
    return on_backend(model, backend, device=device).eval()


def is_run_directory(directory) -> bool:
    """Whether `directory` holds a run's config.json (one with the "minilm" block, or an older
    run's "kind", which read_run explains), rather than a plain Hugging Face model's, or none."""
    try:
        config = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and (MINILM_BLOCK in config or "kind" in config)


def load_run(directory, backend: str = "numpy"):
    """-> (model in eval mode, the run as read): `build_model(read_run(directory), backend)`."""
    run = read_run(directory)
    return build_model(run, backend), run
