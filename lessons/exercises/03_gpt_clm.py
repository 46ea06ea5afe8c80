"""Lesson 03 (GPT and CLM): your implementations. Replace each `raise NotImplementedError` with
your code, then grade it:

    minilm check lessons/exercises/03_gpt_clm.py
"""

import math  # noqa: F401 - you will need them

import numpy as np  # noqa: F401


def clm_batch(ids, batch_size, seq_len, rng):
    """(inputs, targets), both (batch_size, seq_len) integer arrays: each row is a window of
    seq_len + 1 consecutive tokens of the 1-D stream `ids`, starting at a uniformly random position
    drawn with `rng` (every start where the window fits); inputs are its first seq_len tokens and
    targets its last seq_len (the inputs shifted by one)."""
    raise NotImplementedError


def lr_schedule(step, base_lr, total_steps, warmup_steps=0, decay="cosine", min_lr=0.0):
    """The learning rate at `step` (0-based): base_lr * (step + 1) / warmup_steps during the
    warmup; then, with progress = (step - warmup_steps) / (total_steps - warmup_steps),
    "cosine": min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2,
    "linear": min_lr + (base_lr - min_lr) * (1 - progress), "constant": base_lr;
    min_lr from total_steps on (base_lr for "constant")."""
    raise NotImplementedError


def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0):
    """One AdamW update of one tensor; `step` counts its updates, 1 on the first. Returns the new
    (param, exp_avg, exp_avg_sq): shrink param by (1 - lr * weight_decay), update the running means
    m of grad and v of grad**2, correct their bias (divide by 1 - beta**step), and move param by
    -lr * m_hat / (sqrt(v_hat) + eps)."""
    raise NotImplementedError


def default_decay_rule(params):
    """A function name -> bool: True for the parameters of `params` (a dict name -> array) that
    AdamW decays — the weight matrices and embedding tables — False for biases and LayerNorm
    (every bias: lesson 09's encoder-decoder stores its output bias as a (1, V) matrix)."""
    raise NotImplementedError


def sample_next(logits, rng, temperature=1.0, top_k=None):
    """logits (B, V) -> the next id of each row (B,). Temperature 0: the most likely id. Otherwise
    divide the logits by the temperature, keep only the top_k largest (if top_k is given), softmax,
    and draw one id per row with `rng`."""
    raise NotImplementedError
