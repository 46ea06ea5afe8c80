"""Lesson 07 (applications): your implementations. Replace each `raise NotImplementedError` with
your code, then grade it:

    minilm check lessons/exercises/07_applications.py

Both functions have the library's names and signatures (`minilm.common.spans`).
"""

import numpy as np  # noqa: F401 - you will need it


def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):
    """The answer span of each example of a question-answering head's output.

    start_logits, end_logits: (B, T) scores of each token as the answer's first / last token.
    Among the pairs (i, j) with i <= j < i + max_answer_len, and, when allowed_mask (B, T) is
    given, allowed_mask[b, i] and allowed_mask[b, j] both True, pick the one maximising
    start_logits[b, i] + end_logits[b, j]; on a tie, the smallest i, then the smallest j.
    Returns starts (B,) and ends (B,) as integer arrays and scores (B,), the winning sums.
    """
    raise NotImplementedError


def align_word_labels(word_ids, word_labels, ignore_index=-100):
    """Word-level labels -> token-level targets (T,) of integers.

    word_ids (T,): for each token, the index of the word it belongs to, or None / -1 for special
    tokens ([CLS], [SEP]) and padding. A word split into several pieces has consecutive tokens
    with the same word id. The first piece of word w gets word_labels[w]; every other token
    (later pieces, special tokens, padding) gets ignore_index.
    """
    raise NotImplementedError
