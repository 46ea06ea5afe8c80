"""Lesson 07 (applications): reference solutions, written the way a learner would."""

import numpy as np


def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    batch, time = start_logits.shape
    starts = np.zeros(batch, dtype=np.int64)
    ends = np.zeros(batch, dtype=np.int64)
    scores = np.full(batch, -np.inf)
    for b in range(batch):
        allowed = np.ones(time, bool) if allowed_mask is None else np.asarray(allowed_mask[b], bool)
        for i in range(time):
            for j in range(i, min(time, i + max_answer_len)):  # at most max_answer_len tokens
                score = start_logits[b, i] + end_logits[b, j]
                if allowed[i] and allowed[j] and score > scores[b]:  # strict: ties keep the first
                    starts[b], ends[b], scores[b] = i, j, score
    return starts, ends, scores


def align_word_labels(word_ids, word_labels, ignore_index=-100):
    targets = []
    previous = None
    for word in word_ids:
        if word is None or word < 0:
            targets.append(ignore_index)  # [CLS], [SEP], padding
            word = None
        elif word == previous:
            targets.append(ignore_index)  # a later piece of the same word
        else:
            targets.append(word_labels[word])  # the word's first piece
        previous = word
    return np.array(targets, dtype=np.int64)
