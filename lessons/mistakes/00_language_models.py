"""Common mistakes of lesson 00, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import numpy as np

from minilm.check.framework import mistake


@mistake("softmax without the max subtraction", breaks="stays finite at scores of +-1e4")
def softmax_forward(x, axis=-1):
    e = np.exp(x)  # exp(1000) = inf, and inf / inf = NaN
    probs = e / e.sum(axis=axis, keepdims=True)
    return probs, (probs, axis)


@mistake("softmax normalised over the wrong axis", breaks="matches torch.softmax (float64)")
def softmax_forward(x, axis=-1):  # noqa: F811 - each mistake is its own implementation
    shifted = x - x.max()
    e = np.exp(shifted)
    probs = e / e.sum()  # the whole array sums to 1, not each row
    return probs, (probs, axis)


@mistake("softmax backward as if softmax were elementwise",
         breaks="is the gradient of your softmax_forward (finite differences)")
def softmax_backward(dprobs, cache):
    probs, _ = cache
    return dprobs * probs * (1 - probs)  # only the diagonal of the Jacobian


@mistake("cross-entropy that does not ignore -100", breaks="ignores the targets equal to ignore_index")
def cross_entropy_forward(logits, targets, ignore_index=-100):
    shape = logits.shape
    logits, targets = logits.reshape(-1, shape[-1]), np.asarray(targets).reshape(-1)
    safe = np.where(targets == ignore_index, 0, targets)  # ignored rows scored as if class 0
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -log_probs[np.arange(len(safe)), safe].mean()
    kept = np.ones(len(safe), dtype=bool)
    return loss, (np.exp(log_probs), safe, kept, len(safe), shape)


@mistake("cross-entropy backward not divided by the number of kept targets",
         breaks="matches torch autograd (float64)")
def cross_entropy_backward(cache, dloss=1.0):
    probs, safe, kept, _, shape = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(safe)), safe] -= 1.0
    dlogits *= kept[:, None] * dloss  # the gradient of the sum, not of the mean
    return dlogits.reshape(shape)


@mistake("cross-entropy backward that ignores dloss (right only when the loss is the last op)",
         breaks="is the gradient of your cross_entropy_forward")
def cross_entropy_backward(cache, dloss=1.0):  # noqa: F811
    probs, safe, kept, n_kept, shape = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(safe)), safe] -= 1.0
    dlogits *= kept[:, None] / n_kept  # the upstream gradient dloss never multiplies in
    return dlogits.reshape(shape)


def _log_rows(counts, vocab_size):
    """log(counts / row total), a row with nothing in it uniform (what the mistakes share)."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_probs = np.log(counts / totals)
    return np.where(totals > 0, log_probs, -np.log(vocab_size))


@mistake("bigram counted with counts[a, b] += 1 (a repeated pair counts once)",
         breaks="matches log((n(a, b) + k) / (n(a) + k V)), every pair counted")
def bigram_log_probs(ids, vocab_size, smoothing=1.0):
    counts = np.zeros((vocab_size, vocab_size))
    counts[ids[:-1], ids[1:]] += 1  # fancy-index assignment: duplicates are written, not added
    return _log_rows(counts + smoothing, vocab_size)


@mistake("bigram normalised over the wrong axis (columns sum to 1)",
         breaks="each row is a distribution over the next token")
def bigram_log_probs(ids, vocab_size, smoothing=1.0):  # noqa: F811 - each mistake stands alone
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return _log_rows((counts + smoothing).T, vocab_size).T  # p(previous | next)


@mistake("bigram smoothing added to the counts but not to the row total",
         breaks="each row is a distribution over the next token")
def bigram_log_probs(ids, vocab_size, smoothing=1.0):  # noqa: F811
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    totals = counts.sum(axis=1, keepdims=True)  # n(a), without the k V
    with np.errstate(divide="ignore", invalid="ignore"):
        log_probs = np.log((counts + smoothing) / totals)
    return np.where(totals > 0, log_probs, -np.log(vocab_size))


@mistake("bigram counted on a circular stream (np.roll pairs the last token with the first)",
         breaks="matches log((n(a, b) + k) / (n(a) + k V)), every pair counted")
def bigram_log_probs(ids, vocab_size, smoothing=1.0):  # noqa: F811
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids, np.roll(ids, -1)), 1)  # one pair too many: (ids[-1], ids[0])
    return _log_rows(counts + smoothing, vocab_size)


@mistake("bigram that always smooths by 1, whatever `smoothing` says",
         breaks="without smoothing, no table gives its training text a lower loss")
def bigram_log_probs(ids, vocab_size, smoothing=1.0):  # noqa: F811
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return _log_rows(counts + 1.0, vocab_size)


@mistake("bigram cross-entropy with previous and next swapped",
         breaks="is the mean of -log p(ids[t] | ids[t-1]) over the T-1 predictions")
def bigram_cross_entropy(log_probs, ids):
    return float(-log_probs[ids[1:], ids[:-1]].mean())  # p(previous | next)


@mistake("bigram cross-entropy divided by T instead of the T-1 predictions",
         breaks="a uniform model scores ln V nats on any text")
def bigram_cross_entropy(log_probs, ids):  # noqa: F811
    return float(-log_probs[ids[:-1], ids[1:]].sum() / len(ids))


@mistake("bigram cross-entropy in bits (log base 2) instead of nats",
         breaks="a uniform model scores ln V nats on any text")
def bigram_cross_entropy(log_probs, ids):  # noqa: F811
    return float(-log_probs[ids[:-1], ids[1:]].mean() / np.log(2))


@mistake("softmax that subtracts the max in place (x -= ...): the caller's scores change",
         breaks="matches torch.softmax (float64)")
def softmax_forward(x, axis=-1):  # noqa: F811
    x -= x.max(axis=axis, keepdims=True)  # writes into the caller's array
    e = np.exp(x)
    probs = e / e.sum(axis=axis, keepdims=True)
    return probs, (probs, axis)


@mistake("cross-entropy that ignores every negative target, not those equal to ignore_index",
         breaks="ignores the targets equal to ignore_index")
def cross_entropy_forward(logits, targets, ignore_index=-100):  # noqa: F811
    shape = logits.shape
    logits, targets = logits.reshape(-1, shape[-1]), np.asarray(targets).reshape(-1)
    kept = targets >= 0  # wrong when ignore_index is a class id, such as a padding id 0
    safe = np.where(kept, targets, 0)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    n_kept = max(int(kept.sum()), 1)
    loss = -(log_probs[np.arange(len(safe)), safe] * kept).sum() / n_kept
    return loss, (np.exp(log_probs), safe, kept, n_kept, shape)


@mistake("bigram cross-entropy returned as an array of one number, not a float",
         breaks="is the mean of -log p(ids[t] | ids[t-1]) over the T-1 predictions")
def bigram_cross_entropy(log_probs, ids):  # noqa: F811
    return -log_probs[ids[:-1], ids[1:]].mean(keepdims=True)  # shape (1,)
