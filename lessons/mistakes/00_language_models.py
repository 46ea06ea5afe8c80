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
    probs, axis = cache
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
