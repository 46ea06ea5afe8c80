"""Reading a task head's outputs, and writing its targets: host-side NumPy for both twins.

`align_word_labels` turns word-level labels into token-level targets for a `TokenClassifier`;
`best_span` turns a `QuestionAnswering` head's start and end logits into answer spans. Neither needs
a gradient, so one NumPy copy serves both backends (the twin's logits go through `to_numpy`).
"""

from __future__ import annotations

import numpy as np

from minilm.common.backends import to_numpy
from minilm.common.checks import positive_int


def align_word_labels(word_ids, word_labels, ignore_index=-100):
    """Word-level labels -> token-level targets for `TokenClassifier` (the usual NER recipe).

    WordPiece splits a word into pieces ("unaffable" -> una ##ffa ##ble). The word's label goes on
    its first piece; every other token (later pieces, [CLS], [SEP], padding) gets ignore_index, so
    the loss counts each word once. `word_ids` (T,) gives, for each token, the index of the word it
    came from, or -1 (or None) for special tokens and padding. With minilm's WordPieceTokenizer and
    text already split into words:

        pieces = [tokenizer.tokenize(word) for word in words]
        word_ids = [-1] + [w for w, p in enumerate(pieces) for _ in p] + [-1]   # [CLS] ... [SEP]

    >>> align_word_labels([-1, 0, 1, 1, 1, 2, -1], [3, 0, 5]).tolist()
    [-100, 3, 0, -100, -100, 5, -100]
    """
    ids = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64).reshape(-1)  # (T,)
    labels = np.asarray(word_labels, dtype=np.int64).reshape(-1)  # (W,)
    if ids.size and ids.max() >= len(labels):
        raise ValueError(f"word_ids refer to word {ids.max()}, but there are {len(labels)} labels")
    previous = np.concatenate([[-1], ids[:-1]])  # the word of the token before
    first = (ids >= 0) & (ids != previous)  # (T,) a word's first piece
    targets = np.full(ids.shape, ignore_index, dtype=np.int64)
    targets[first] = labels[ids[first]]
    return targets


def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):
    """The most likely answer of each example: the span i..j (inclusive) maximising

        score(i, j) = start_i + end_j   over   i <= j < i + max_answer_len,  i and j both allowed

    (the argmax of the probability p_start(i) p_end(j), the logits' normalisers being constants).
    `allowed_mask` (B, T), True where an answer may lie: the context tokens, i.e. for
    "[CLS] question [SEP] context [SEP]" token_type_ids == 1 without the final [SEP] and padding.
    All pairs at once: S[b, i, j] (B, T, T), -inf where not allowed, one argmax over (i, j); ties
    go to the smallest i, then the smallest j. Returns starts (B,), ends (B,) and scores (B,).
    """
    start, end = to_numpy(start_logits), to_numpy(end_logits)
    if start.ndim != 2 or start.shape != end.shape:
        raise ValueError(
            f"start_logits and end_logits must both be (B, T), got {start.shape} and {end.shape}"
        )
    max_answer_len = positive_int("max_answer_len", max_answer_len)
    batch, time = start.shape
    i = np.arange(time)[:, None]
    j = np.arange(time)[None, :]
    valid = np.broadcast_to((i <= j) & (j < i + max_answer_len), (batch, time, time))  # (B, T, T)
    if allowed_mask is not None:
        allowed = to_numpy(allowed_mask)
        if allowed.shape != start.shape:
            raise ValueError(f"allowed_mask must have the shape {start.shape}, got {allowed.shape}")
        allowed = allowed.astype(bool)
        valid = valid & allowed[:, :, None] & allowed[:, None, :]
    empty = ~valid.any(axis=(1, 2))
    if empty.any():
        raise ValueError(f"examples {np.flatnonzero(empty).tolist()} allow no answer span")
    scores = np.where(valid, start[:, :, None] + end[:, None, :], -np.inf)  # (B, T, T)
    flat = scores.reshape(batch, -1).argmax(axis=1)  # (B,) index i * T + j
    starts, ends = np.divmod(flat, time)
    return starts, ends, scores.reshape(batch, -1)[np.arange(batch), flat]
