"""Sampling text from a causal language model (the `Decoder`), one token at a time.

Each step turns the last position's logits into a distribution: divide by the temperature (< 1
sharpens, > 1 flattens), optionally keep only the `top_k` most likely tokens, softmax, sample.
Temperature 0 means greedy decoding (always the most likely token).
"""

from __future__ import annotations

import numpy as np

from minilm.numpy import functional as F


def sample_next(logits, rng, temperature=1.0, top_k=None):
    """logits (B, V) -> next ids (B,)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= logits.shape[-1]:
        raise ValueError(f"top_k must be in [1, vocab_size={logits.shape[-1]}], got {top_k}")
    if temperature == 0:
        return logits.argmax(axis=-1)
    scaled = logits.astype(np.float64) / temperature
    if top_k is not None:
        kth = np.partition(scaled, -top_k, axis=-1)[:, -top_k][:, None]  # (B, 1)
        scaled = np.where(scaled < kth, -np.inf, scaled)
    probs, _ = F.softmax_forward(scaled)
    cumulative = probs.cumsum(axis=-1)
    draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
    return (cumulative < draws).sum(axis=-1)  # inverse-CDF sampling, vectorised over the batch


def generate(model, prompt_ids, max_new_tokens, rng=None, temperature=1.0, top_k=None):
    """Extend `prompt_ids` (B, T0) by `max_new_tokens`, feeding the model its own samples.

    The context is cropped to the model's last `max_len` tokens. Returns (B, T0 + max_new_tokens).
    """
    ids = np.asarray(prompt_ids, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"prompt_ids must be a non-empty (batch, time) array, got shape {ids.shape}")
    rng = np.random.default_rng(0) if rng is None else rng
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        logits = model.forward(ids[:, -model.config.max_len:])  # (B, T, V)
        next_ids = sample_next(logits[:, -1], rng, temperature, top_k)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    model.train(was_training)
    return ids
