"""Sampling text from a causal language model (the `Decoder`), one token at a time.

Each step turns the last position's logits into a distribution: divide by the temperature (< 1
sharpens, > 1 flattens), optionally keep only the `top_k` most likely tokens, optionally keep only
the nucleus of probability `top_p`, softmax, sample. Temperature 0 means greedy decoding (always the
most likely token).

Top-p (nucleus) sampling (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"):
rank the tokens by probability and keep the smallest set of the most likely ones whose
probabilities add up to at least p; renormalise over them. Top-k keeps k tokens whatever the
distribution looks like: too few when the model is unsure (many continuations are fine), too many
when it is sure (the tail is nonsense). The nucleus adapts: one token when the model is certain,
hundreds when it is not. A token is kept exactly when the tokens ranked above it hold less than p
of the mass, so the most likely one always is; top_p=1 keeps every token.

One loop serves both backends: `generate` takes a NumPy `minilm.numpy.Decoder` or its torch twin
`minilm.torch.Decoder`, brings the last position's logits to NumPy and samples them with
`sample_next`, so both draw the same random numbers in the same order.

With `use_cache=True` (the default) the model keeps the keys and values of the tokens it has
already read in a `KVCache` and each step feeds it only the newest token; without it every step
feeds the whole context again. Both produce the same tokens (see `generate`).
"""

from __future__ import annotations

import numpy as np

from minilm.common.backends import inference, to_numpy
from minilm.common.checks import check_finite, int_at_least, number_in, positive_int
from minilm.numpy import functional as F


def check_sampling(temperature, top_k, vocab_size: int, top_p=None) -> None:
    """temperature a finite number >= 0 (NaN would turn every probability into NaN, and the
    sampler would then always pick token 0); top_k None or an int in [1, vocab_size]; top_p None
    or a number in (0, 1]."""
    number_in("temperature", temperature, "[0, inf)")
    if top_k is not None and positive_int("top_k", top_k) > vocab_size:
        raise ValueError(f"top_k must be in [1, vocab_size={vocab_size}], got {top_k}")
    if top_p is not None:
        number_in("top_p", top_p, "(0, 1]")


def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """logits (B, V) -> next ids (B,). NaN or inf logits are an error, not token 0.

    Draws exactly one uniform number per row from `rng` when sampling, none when greedy.
    """
    if np.ndim(logits) != 2:
        raise ValueError(f"logits must be a (batch, vocab) array, got shape {np.shape(logits)}")
    check_sampling(temperature, top_k, logits.shape[-1], top_p)
    check_finite("logits", logits)
    if temperature == 0:
        return logits.argmax(axis=-1)
    logits = logits.astype(np.float64)
    # shifted before the division: the best token at 0, the others <= 0. A tiny temperature then
    # sends them to -inf at worst (probability 0, the intended limit), where logits / 1e-310
    # overflowed to +inf, inf - inf was NaN and the sampler picked token 0
    with np.errstate(over="ignore"):
        scaled = (logits - logits.max(axis=-1, keepdims=True)) / temperature
    if top_k is not None:  # chosen on the logits themselves: dividing could round two into a tie
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]  # (B, 1)
        scaled = np.where(logits < kth, -np.inf, scaled)
    if top_p is not None:
        scaled = np.where(outside_nucleus(scaled, top_p), -np.inf, scaled)
    probs, _ = F.softmax_forward(scaled)
    cumulative = probs.cumsum(axis=-1)
    draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
    return (cumulative < draws).sum(axis=-1)  # inverse-CDF sampling, vectorised over the batch


def outside_nucleus(scaled, top_p: float) -> np.ndarray:
    """scaled logits (B, V) -> bool (B, V), True for the tokens top-p sampling drops: those whose
    better-ranked tokens already hold >= top_p of the probability. Equal probabilities are ranked
    by id, the lower id first: where a tie straddles the cut, the lower ids are kept (Hugging
    Face's TopPLogitsWarper keeps the higher ones; the number kept is the same)."""
    if top_p >= 1:  # every token: the running sum may round to 1.0 before the tail is reached
        return np.zeros(scaled.shape, dtype=bool)
    probs, _ = F.softmax_forward(scaled)  # (B, V)
    order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V) most likely first
    ranked = np.take_along_axis(probs, order, axis=-1)  # (B, V) sorted probabilities
    above = np.cumsum(ranked, axis=-1)  # (B, V) the mass ranked above each, itself included...
    above = np.concatenate([np.zeros_like(above[:, :1]), above[:, :-1]], axis=-1)  # ...excluded
    outside = np.empty_like(above, dtype=bool)
    np.put_along_axis(outside, order, above >= top_p, axis=-1)  # back to token order
    return outside


def generate(model, prompt_ids, max_new_tokens, rng=None, temperature=1.0, top_k=None,
             use_cache=True, top_p=None):
    """Extend `prompt_ids` (B, T0) by `max_new_tokens`, feeding the model its own samples.

    Returns (B, T0 + max_new_tokens) int64. The model sees at most its `max_len` last tokens.

    use_cache=False: every step runs the model on the context cropped to the last max_len tokens.
    use_cache=True: the first step reads the prompt into a KVCache ("prefill"), each later step
    only the token sampled last, at the next position. That is the same computation while the
    sequence fits in max_len positions; once it does not, the cropped window slides by one token
    per step, every token's position changes, and the cached keys and values (computed at the old
    positions) no longer apply: generation then drops the cache and recomputes the window each
    step, exactly as use_cache=False does. The tokens are the same either way, up to floating
    point rounding of the logits (different summation orders could only matter at an exact tie).
    """
    ids = np.asarray(prompt_ids)
    if ids.ndim != 2 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"prompt_ids must be a non-empty (batch, time) integer array, got "
                         f"{ids.dtype} {ids.shape}")  # 1.7 is no token id: not read as 1
    vocab_size = model.config.vocab_size
    if ids.min() < 0 or ids.max() >= vocab_size:  # before the cast: 2**63 + 5 would wrap around
        raise ValueError(f"prompt_ids must lie in [0, vocab_size={vocab_size}), got "
                         f"[{ids.min()}, {ids.max()}]")
    ids = ids.astype(np.int64)
    int_at_least("max_new_tokens", max_new_tokens, 0)
    check_sampling(temperature, top_k, model.config.vocab_size, top_p)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)) or None, "
                         f"got {type(rng).__name__} {rng!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    max_len = model.config.max_len
    kv_cache = model.new_kv_cache() if use_cache else None
    with inference(model):
        for _ in range(max_new_tokens):
            if kv_cache is not None and ids.shape[1] > max_len:
                kv_cache = None  # the window starts sliding: positions shift, the cache is stale
            if kv_cache is None:
                logits = model.forward(ids[:, -max_len:])  # (B, T, V)
            else:  # only the tokens the cache has not seen: the prompt, then one at a time
                logits = model.forward(ids[:, kv_cache.length:], kv_cache=kv_cache)  # (B, T, V)
            next_ids = sample_next(to_numpy(logits[:, -1]), rng, temperature, top_k,
                                   top_p)  # (B,)
            ids = np.concatenate([ids, next_ids[:, None]], axis=1)  # (B, T + 1)
    return ids
