"""Reference solutions of lesson 00 (language models). `minilm check` this file: all pass."""

import numpy as np


def softmax_forward(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)  # exp never overflows; softmax is unchanged
    e = np.exp(shifted)
    probs = e / e.sum(axis=axis, keepdims=True)
    return probs, (probs, axis)


def softmax_backward(dprobs, cache):
    probs, axis = cache
    return probs * (dprobs - (dprobs * probs).sum(axis=axis, keepdims=True))


def cross_entropy_forward(logits, targets, ignore_index=-100):
    shape = logits.shape
    logits = logits.reshape(-1, shape[-1])  # (N, V)
    targets = np.asarray(targets).reshape(-1)  # (N,)
    kept = targets != ignore_index
    safe = np.where(kept, targets, 0)  # any valid index; ignored rows are multiplied by 0
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    n_kept = max(int(kept.sum()), 1)  # every target ignored: loss 0, not 0 / 0
    loss = -(log_probs[np.arange(len(safe)), safe] * kept).sum() / n_kept
    return loss, (np.exp(log_probs), safe, kept, n_kept, shape)


def cross_entropy_backward(cache, dloss=1.0):
    probs, safe, kept, n_kept, shape = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(safe)), safe] -= 1.0  # softmax - onehot(target)
    dlogits *= kept[:, None] * (dloss / n_kept)
    return dlogits.reshape(shape)
