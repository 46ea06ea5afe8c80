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


def bigram_log_probs(ids, vocab_size, smoothing=1.0):
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)  # unlike counts[a, b] += 1, counts repeated pairs
    counts += smoothing
    totals = counts.sum(axis=1, keepdims=True)  # n(a) + k V, one per previous token
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf; 0 / 0 handled below
        log_probs = np.log(counts / totals)
    return np.where(totals > 0, log_probs, -np.log(vocab_size))  # a row never seen: uniform


def bigram_cross_entropy(log_probs, ids):
    previous, following = ids[:-1], ids[1:]  # every token but the first is predicted
    return float(-log_probs[previous, following].mean())
