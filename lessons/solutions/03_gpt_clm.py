"""Reference solutions of lesson 03 (GPT and CLM). `minilm check` this file: all pass."""

import math

import numpy as np


def clm_batch(ids, batch_size, seq_len, rng):
    ids = np.asarray(ids)
    n_starts = len(ids) - seq_len  # a window of seq_len + 1 tokens fits at starts 0 .. n_starts - 1
    starts = rng.integers(0, n_starts, size=batch_size)  # (B,)
    windows = ids[starts[:, None] + np.arange(seq_len + 1)]  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # position t predicts the token after it


def lr_schedule(step, base_lr, total_steps, warmup_steps=0, decay="cosine", min_lr=0.0):
    if step < warmup_steps:  # (step + 1): the very first step already moves
        return base_lr * (step + 1) / warmup_steps
    if decay == "constant":
        return base_lr
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # 0 -> 1 after the warmup
    remaining = (1 + math.cos(math.pi * progress)) / 2 if decay == "cosine" else 1 - progress
    return min_lr + (base_lr - min_lr) * remaining


def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)  # decoupled: the decay never touches m or v
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad**2
    m_hat = exp_avg / (1 - beta1**step)  # undo the pull towards the zeros m and v started at
    v_hat = exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), exp_avg, exp_avg_sq


def default_decay_rule(params):
    # matrices and embeddings; not LayerNorm, not a bias (the encoder-decoder's is a (1, V) matrix)
    return lambda name: params[name].ndim >= 2 and not name.endswith("bias")


def sample_next(logits, rng, temperature=1.0, top_k=None):
    if temperature == 0:
        return logits.argmax(axis=-1)
    scaled = logits / temperature
    if top_k is not None:
        kth_largest = np.sort(logits, axis=-1)[:, -top_k][:, None]  # (B, 1)
        scaled = np.where(logits >= kth_largest, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    u = rng.random((len(probs), 1))  # one uniform number per row
    return (probs.cumsum(axis=-1) > u).argmax(axis=-1)  # the first id whose cumulative passes u
