"""Common mistakes of lesson 07, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import numpy as np

from minilm.check.framework import mistake


def _positions(start_logits):
    """i (T, 1) and j (1, T): the start and end index of every pair."""
    time = np.shape(start_logits)[1]
    return np.arange(time)[:, None], np.arange(time)[None, :]


def _best(start_logits, end_logits, valid):
    """The argmax over the valid pairs of S[b, i, j] = start[b, i] + end[b, j]."""
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    scores = np.where(valid, start_logits[:, :, None] + end_logits[:, None, :], -np.inf)
    batch, time, _ = scores.shape
    flat = scores.reshape(batch, -1).argmax(axis=1)
    starts, ends = np.divmod(flat, time)
    return starts, ends, scores.reshape(batch, -1)[np.arange(batch), flat]


@mistake("start and end chosen separately: the span can end before it starts",
         breaks="never ends before it starts nor runs longer than max_answer_len")
def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    if allowed_mask is not None:
        start_logits = np.where(allowed_mask, start_logits, -np.inf)
        end_logits = np.where(allowed_mask, end_logits, -np.inf)
    starts, ends = start_logits.argmax(axis=1), end_logits.argmax(axis=1)
    rows = np.arange(len(starts))
    return starts, ends, start_logits[rows, starts] + end_logits[rows, ends]


@mistake("spans one token longer than max_answer_len (j <= i + max_answer_len)",
         breaks="never ends before it starts nor runs longer than max_answer_len")
def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):  # noqa: F811
    i, j = _positions(start_logits)
    valid = (i <= j) & (j <= i + max_answer_len)  # a span i..j has j - i + 1 tokens
    if allowed_mask is not None:
        valid = valid & allowed_mask[:, :, None] & allowed_mask[:, None, :]
    return _best(start_logits, end_logits, valid)


@mistake("allowed_mask ignored: the answer can be in the question or on [SEP]",
         breaks="answers only where allowed_mask is True")
def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):  # noqa: F811
    i, j = _positions(start_logits)
    return _best(start_logits, end_logits, (i <= j) & (j < i + max_answer_len))  # mask never read


@mistake("ties go to the last best pair (>= in the loop)",
         breaks="breaks ties by the smallest start, then the smallest end")
def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):  # noqa: F811
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    batch, time = start_logits.shape
    starts, ends = np.zeros(batch, np.int64), np.zeros(batch, np.int64)
    scores = np.full(batch, -np.inf)
    for b in range(batch):
        ok = np.ones(time, bool) if allowed_mask is None else allowed_mask[b]
        for i in range(time):
            for j in range(i, min(time, i + max_answer_len)):
                score = start_logits[b, i] + end_logits[b, j]
                if ok[i] and ok[j] and score >= scores[b]:
                    starts[b], ends[b], scores[b] = i, j, score
    return starts, ends, scores


@mistake("every word piece labelled, not only the first",
         breaks="ignores later pieces, special tokens and padding")
def align_word_labels(word_ids, word_labels, ignore_index=-100):
    targets = [ignore_index if w is None or w < 0 else word_labels[w] for w in word_ids]
    return np.array(targets, dtype=np.int64)


@mistake("special tokens looked up as word -1: they get the last word's label",
         breaks="ignores later pieces, special tokens and padding")
def align_word_labels(word_ids, word_labels, ignore_index=-100):  # noqa: F811
    ids = np.array([-1 if w is None else w for w in word_ids])
    previous = np.concatenate([[-2], ids[:-1]])
    targets = np.full(len(ids), ignore_index, dtype=np.int64)
    first = ids != previous  # [CLS] (-1) counts as a "new word" too ...
    targets[first] = np.asarray(word_labels)[ids[first]]  # ... and labels[-1] is the last word's
    return targets


@mistake("-100 written in place of the ignore_index argument",
         breaks="ignores later pieces, special tokens and padding")
def align_word_labels(word_ids, word_labels, ignore_index=-100):  # noqa: F811
    targets, previous = [], None
    for word in word_ids:
        word = None if word is None or word < 0 else word
        targets.append(word_labels[word] if word is not None and word != previous else -100)
        previous = word
    return np.array(targets, dtype=np.int64)
