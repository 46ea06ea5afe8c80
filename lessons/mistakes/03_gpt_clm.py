"""Common mistakes of lesson 03, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import math

import numpy as np

from minilm.check.framework import mistake


@mistake("CLM targets not shifted: each position is asked for its own token",
         breaks="targets are the inputs shifted by one, both windows of the stream")
def clm_batch(ids, batch_size, seq_len, rng):
    ids = np.asarray(ids)
    starts = rng.integers(0, len(ids) - seq_len, size=batch_size)
    windows = ids[starts[:, None] + np.arange(seq_len)]  # (B, T)
    return windows, windows.copy()  # the model learns to copy its input


@mistake("CLM windows that never start at the last possible position (off by one)",
         breaks="draws every window start equally often")
def clm_batch(ids, batch_size, seq_len, rng):  # noqa: F811 - each mistake is its own function
    ids = np.asarray(ids)
    starts = rng.integers(0, max(1, len(ids) - seq_len - 1), size=batch_size)  # one start short
    windows = ids[starts[:, None] + np.arange(seq_len + 1)]
    return windows[:, :-1], windows[:, 1:]


@mistake("warmup from lr = 0: the first step does nothing",
         breaks="warms up linearly: base_lr * (s + 1) / W for steps s < W")
def lr_schedule(step, base_lr, total_steps, warmup_steps=0, decay="cosine", min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps  # step 0 -> lr 0
    if decay == "constant":
        return base_lr
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    if decay == "cosine":
        return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
    return min_lr + (base_lr - min_lr) * (1 - progress)


@mistake("cosine decay counted from step 0, not from the end of the warmup",
         breaks="then decays from base_lr at s = W to min_lr at s = total_steps")
def lr_schedule(step, base_lr, total_steps, warmup_steps=0, decay="cosine", min_lr=0.0):  # noqa: F811
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if decay == "constant":
        return base_lr
    if step >= total_steps:
        return min_lr
    progress = step / total_steps  # already part-way down when the warmup ends
    if decay == "cosine":
        return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
    return min_lr + (base_lr - min_lr) * (1 - progress)


@mistake("AdamW folding the decay into the gradient (L2, Adam's weight_decay)",
         breaks="decay is decoupled: it shrinks p by lr * wd * p, whatever the gradient")
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0):
    beta1, beta2 = betas
    grad = grad + weight_decay * param  # the decay now goes through 1/sqrt(v)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad**2
    m_hat, v_hat = exp_avg / (1 - beta1**step), exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), exp_avg, exp_avg_sq


@mistake("AdamW without bias correction: the first steps are off by (1 - b1) / sqrt(1 - b2)",
         breaks="the first step moves each entry by lr * g / (|g| + eps) (bias correction)")
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,  # noqa: F811
                 weight_decay=0.0):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad**2
    return param - lr * exp_avg / (np.sqrt(exp_avg_sq) + eps), exp_avg, exp_avg_sq


@mistake("AdamW with eps inside the square root",
         breaks="matches torch.optim.AdamW step after step (float64)")
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,  # noqa: F811
                 weight_decay=0.0):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad**2
    m_hat, v_hat = exp_avg / (1 - beta1**step), exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / np.sqrt(v_hat + eps), exp_avg, exp_avg_sq


@mistake("AdamW decaying biases and LayerNorm too",
         breaks="decays the matrices and embeddings, never a bias or a LayerNorm")
def default_decay_rule(params):
    return lambda name: True


@mistake("decay chosen by name: every '.weight' decays, LayerNorm weights included",
         breaks="decays the matrices and embeddings, never a bias or a LayerNorm")
def default_decay_rule(params):  # noqa: F811
    return lambda name: name.endswith("weight")


@mistake("decay chosen by shape alone: the encoder-decoder's (1, V) output bias decays",
         breaks="decays the matrices and embeddings, never a bias or a LayerNorm")
def default_decay_rule(params):  # noqa: F811
    return lambda name: params[name].ndim >= 2


@mistake("top-k keeping k + 1 tokens", breaks="never draws a token outside the k most likely")
def sample_next(logits, rng, temperature=1.0, top_k=None):
    if temperature == 0:
        return logits.argmax(axis=-1)
    scaled = logits / temperature
    if top_k is not None:
        threshold = np.sort(logits, axis=-1)[:, -top_k - 1][:, None]  # the (k+1)-th largest...
        scaled = np.where(logits >= threshold, scaled, -np.inf)  # ...is kept as well
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    u = rng.random((len(probs), 1))  # one uniform number per row
    return (probs.cumsum(axis=-1) > u).argmax(axis=-1)  # the first id whose cumulative passes u


@mistake("softmax without subtracting the max: exp overflows at large logits (or small "
         "temperatures)", breaks="logits in the thousands draw the most likely token (no overflow)")
def sample_next(logits, rng, temperature=1.0, top_k=None):  # noqa: F811
    if temperature == 0:
        return logits.argmax(axis=-1)
    scaled = logits / temperature
    if top_k is not None:
        kth_largest = np.sort(logits, axis=-1)[:, -top_k][:, None]
        scaled = np.where(logits >= kth_largest, scaled, -np.inf)
    probs = np.exp(scaled)  # inf once a logit / temperature passes ~709
    probs /= probs.sum(axis=-1, keepdims=True)  # inf / inf = NaN
    u = rng.random((len(probs), 1))
    return (probs.cumsum(axis=-1) > u).argmax(axis=-1)


@mistake("temperature multiplying the logits instead of dividing them",
         breaks="draws follow softmax(logits / temperature) over the kept tokens")
def sample_next(logits, rng, temperature=1.0, top_k=None):  # noqa: F811
    if temperature == 0:
        return logits.argmax(axis=-1)
    scaled = logits * temperature  # T = 2 sharpens instead of flattening
    if top_k is not None:
        kth_largest = np.sort(logits, axis=-1)[:, -top_k][:, None]
        scaled = np.where(logits >= kth_largest, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    u = rng.random((len(probs), 1))  # one uniform number per row
    return (probs.cumsum(axis=-1) > u).argmax(axis=-1)  # the first id whose cumulative passes u
