"""Sentence embeddings from a pretrained BERT, as sentence-transformers' all-MiniLM-L6-v2 makes them.

    model = load_pretrained(directory, backend="numpy")          # or backend="torch"
    tokenizer = WordPieceTokenizer.from_pretrained(directory)
    embeddings = sentence_embeddings(model, tokenizer, ["a cat", "a kitten"])   # (2, 384)
    cosine_similarity_matrix(embeddings)                                         # (2, 2)

The model directory says how (`modules.json`: Transformer -> Pooling -> Normalize;
`1_Pooling/config.json`: `pooling_mode_mean_tokens: true`; `sentence_bert_config.json`:
`max_seq_length: 256`):

    e = sum_t mask_t h_t / sum_t mask_t      mean of the last hidden states over real tokens
    e = e / ||e||_2                          so that a dot product is the cosine similarity
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from minilm.common.backends import check_model_class, inference, to_numpy
from minilm.pretrained import check_vocab

# all-MiniLM-L6-v2's `sentence_bert_config.json`: longer inputs are cut to 256 tokens.
SENTENCE_MAX_LENGTH = 256
OUTPUT_SUFFIXES = (".npy", ".safetensors")  # where `save_embeddings` can write


def sentence_settings(path) -> dict:
    """What a sentence-transformers directory says about pooling, checked against what
    `sentence_embeddings` does (mean pooling, then L2 normalisation when a Normalize module is
    listed): {"max_seq_length": int, "normalize": bool}. A plain BERT directory gives the defaults
    of all-MiniLM-L6-v2."""
    directory = Path(path)
    settings = {"max_seq_length": SENTENCE_MAX_LENGTH, "normalize": True}
    pooling_file = directory / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        pooling = json.loads(pooling_file.read_text(encoding="utf-8"))
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
        if modes != ["pooling_mode_mean_tokens"]:
            raise ValueError(f"{pooling_file} asks for {modes}; minilm implements mean pooling "
                             "(pooling_mode_mean_tokens) only")
    sbert_file = directory / "sentence_bert_config.json"
    if sbert_file.is_file():
        settings["max_seq_length"] = json.loads(sbert_file.read_text())["max_seq_length"]
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        settings["normalize"] = any(m["type"].endswith(".Normalize") for m in modules)
    return settings


# ---------------------------------------------------------------- sentence embeddings


def mean_pool(hidden, attention_mask) -> np.ndarray:
    """Mean of the hidden states over real tokens: (B, T, C), (B, T) -> (B, C).

    Padding positions hold vectors too (the encoder computes every position); the mask keeps them
    out of the mean. The clamp guards an all-padding row, as sentence-transformers does."""
    hidden, mask = np.asarray(hidden), np.asarray(attention_mask)
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(f"mean_pool: hidden must be (B, T, C) and attention_mask (B, T), got "
                         f"shapes {hidden.shape} and {mask.shape}")
    mask = mask.astype(hidden.dtype)[..., None]  # (B, T, 1)
    total = (hidden * mask).sum(axis=1)  # (B, C)
    count = np.maximum(mask.sum(axis=1), 1e-9)  # (B, 1)
    return total / count


def l2_normalize(x, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit Euclidean length (B, C) -> (B, C); zero rows stay zero."""
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def cosine_similarity_matrix(embeddings) -> np.ndarray:
    """S[i, j] = cos(e_i, e_j): (N, C) -> (N, N), symmetric, ones on the diagonal."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:  # one vector (C,) would give a scalar, its own similarity
        raise ValueError(f"embeddings must be (N, C), one row per text, got shape "
                         f"{embeddings.shape}")
    unit = l2_normalize(embeddings)
    return unit @ unit.T


def last_hidden_states(model, batch: dict) -> np.ndarray:
    """`model.encode(...)` of a tokenized batch as a NumPy array (B, T, C), for either backend.
    Call it inside `inference(model)`: eval mode, and no autograd graph for the twin."""
    hidden = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    return to_numpy(hidden)  # (B, T, C)


def _text_list(texts) -> list[str]:
    """A str, or any iterable of them (a list, a NumPy array of str, a generator), as a list of str;
    else a ValueError naming the first thing that is not a string."""
    if isinstance(texts, str):
        return [texts]
    try:
        texts = list(texts)
    except TypeError:
        raise ValueError(f"texts must be a str or an iterable of str, got "
                         f"{type(texts).__name__}") from None
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts must be strings, got {type(text).__name__} {text!r} at index "
                             f"{index}")
    if not texts:
        raise ValueError("texts is empty: nothing to embed")
    return [str(text) for text in texts]  # np.str_ -> str


def sentence_embeddings(model, tokenizer, texts, batch_size: int = 32,
                        max_length: int = SENTENCE_MAX_LENGTH,
                        normalize: bool = True) -> np.ndarray:
    """Texts (a str, or any iterable of str) -> unit-length sentence vectors (N, C), as
    sentence-transformers' all-MiniLM-L6-v2.

    Texts longer than `max_length` tokens are truncated. Texts are batched by length (sorted, as
    sentence-transformers does) so that little time is spent on padding; the output keeps the
    input order. The model runs in eval mode (dropout off) and is put back in its mode after.
    """
    check_model_class(model, "Encoder", "a sentence embedding")  # a Seq2Seq's encode has no segments
    texts = _text_list(texts)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if max_length > model.config.max_len:
        raise ValueError(
            f"max_length={max_length} exceeds the model's max_len={model.config.max_len}"
        )
    check_vocab(tokenizer, model.config)
    order = np.argsort([-len(text) for text in texts], kind="stable")  # longest first
    pooled = []
    with inference(model):
        for start in range(0, len(texts), batch_size):
            chunk = [texts[i] for i in order[start:start + batch_size]]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length)
            hidden = last_hidden_states(model, batch)  # (b, T, C)
            pooled.append(mean_pool(hidden, batch["attention_mask"]))  # (b, C)
    embeddings = np.empty((len(texts), pooled[0].shape[1]), dtype=pooled[0].dtype)
    embeddings[order] = np.concatenate(pooled)  # back to the input order
    return l2_normalize(embeddings) if normalize else embeddings


def format_similarity_table(similarity: np.ndarray, texts: list[str], width: int = 40) -> str:
    """The matrix rounded to 3 decimals, one row per text, the text (shortened) at the end."""
    n = len(texts)
    lines = ["     " + "".join(f"{f'[{j}]':>7}" for j in range(n))]
    for i in range(n):
        text = texts[i] if len(texts[i]) <= width else texts[i][: width - 3] + "..."
        cells = "".join(f"{similarity[i, j]:7.3f}" for j in range(n))
        lines.append(f"{f'[{i}]':<5}{cells}   {text}")
    return "\n".join(lines)


def save_embeddings(file, embeddings: np.ndarray) -> None:
    """.npy (np.save) or .safetensors (one tensor named "embeddings")."""
    file = Path(file)
    if file.suffix == ".npy":
        np.save(file, embeddings)
    else:
        from safetensors.numpy import save_file

        save_file({"embeddings": np.ascontiguousarray(embeddings)}, str(file))
