"""Lesson 07, applications: reading a question-answering head's output (`best_span`) and writing a
token classifier's targets (`align_word_labels`), `minilm.common.spans`.

Oracles: brute force. `best_span` is checked against a double loop over every (start, end) pair
(exact: the scores are sums of two given floats); `align_word_labels` against a loop over the
tokens that labels the first piece of each word.
"""

from __future__ import annotations

import numpy as np

from minilm.check.framework import Failure, as_array, assert_true, exercise, prop, returned
from minilm.testing.strategies import span_cases, word_alignment_cases

LESSON = "07"

exercise("best_span", LESSON,
         "best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None) "
         "-> (starts, ends, scores)",
         "per example, the span i..j maximising start_i + end_j with i <= j < i + max_answer_len")
exercise("align_word_labels", LESSON,
         "align_word_labels(word_ids, word_labels, ignore_index=-100) -> targets (T,)",
         "word labels onto tokens: a word's label on its first piece, ignore_index elsewhere")


# ---------------------------------------------------------------- best_span


def spans_of(impl, case):
    """The learner's (starts, ends, scores), each checked to be (B,) integers / floats."""
    result = impl.best_span(case["start_logits"], case["end_logits"], case["max_answer_len"],
                            case["allowed_mask"])
    starts, ends, scores = returned(result, "best_span", ("starts", "ends", "scores"))
    batch = case["start_logits"].shape[0]
    for values, what in ((starts, "starts"), (ends, "ends"), (scores, "scores")):
        assert_true(values.shape == (batch,), f"{what} has shape {values.shape}, expected "
                                              f"({batch},): one per example")
    assert_true(np.issubdtype(starts.dtype, np.integer) and np.issubdtype(ends.dtype, np.integer),
                f"starts and ends must be integer token indices, got {starts.dtype}, {ends.dtype}")
    return starts, ends, scores


def allowed_pairs(case, b):
    """Every (i, j) an answer of example b may span, in order of i, then j."""
    time = case["start_logits"].shape[1]
    mask = case["allowed_mask"]
    ok = np.ones(time, bool) if mask is None else mask[b]
    return [(i, j) for i in range(time) for j in range(i, min(time, i + case["max_answer_len"]))
            if ok[i] and ok[j]]


def is_valid(case, b, i, j) -> bool:
    return (int(i), int(j)) in set(allowed_pairs(case, b))


def why_invalid(case, b, i, j) -> str:
    time, longest = case["start_logits"].shape[1], case["max_answer_len"]
    if not (0 <= i < time and 0 <= j < time):
        return f"outside the {time} tokens"
    if j < i:
        return "it ends before it starts"
    if j - i + 1 > longest:
        return f"it is {j - i + 1} tokens long, max_answer_len is {longest}"
    return "it starts or ends on a token allowed_mask forbids"


def check_valid(case, starts, ends):
    for b, (i, j) in enumerate(zip(starts, ends)):
        if not is_valid(case, b, i, j):
            raise Failure(f"example {b}: span ({i}, {j}) is not allowed: {why_invalid(case, b, i, j)}")


@prop("best_span", "returns the best allowed span (brute force over every pair)", span_cases(),
      hint="score every pair start[i] + end[j] with i <= j < i + max_answer_len (both allowed), "
           "take the argmax over pairs, not over i and j separately")
def best_span_is_the_best(impl, case):
    starts, ends, scores = spans_of(impl, case)
    check_valid(case, starts, ends)
    start, end = case["start_logits"], case["end_logits"]
    for b, (i, j) in enumerate(zip(starts, ends)):
        best = max(start[b, p] + end[b, q] for p, q in allowed_pairs(case, b))
        mine = start[b, i] + end[b, j]
        assert_true(mine == best, f"example {b}: span ({i}, {j}) scores {mine:.6g}, but the best "
                                  f"allowed span scores {best:.6g}", best - mine)
        assert_true(abs(scores[b] - best) <= 1e-12 * max(1.0, abs(best)),
                    f"example {b}: returned score {scores[b]:.6g}, but start[i] + end[j] = "
                    f"{best:.6g}", abs(scores[b] - best))


@prop("best_span", "never ends before it starts nor runs longer than max_answer_len",
      span_cases(masked=False),
      hint="keep only pairs with i <= j and j - i + 1 <= max_answer_len (j < i + max_answer_len)")
def best_span_is_a_span(impl, case):
    starts, ends, _ = spans_of(impl, case)
    check_valid(case, starts, ends)


@prop("best_span", "answers only where allowed_mask is True", span_cases(masked=True),
      hint="a pair counts only if allowed_mask[b, i] and allowed_mask[b, j] are both True")
def best_span_keeps_to_the_context(impl, case):
    starts, ends, _ = spans_of(impl, case)
    mask = case["allowed_mask"]
    for b, (i, j) in enumerate(zip(starts, ends)):
        assert_true(mask[b, i] and mask[b, j],
                    f"example {b}: span ({i}, {j}) but allowed_mask[{b}] = "
                    f"{mask[b].astype(int).tolist()} (start allowed: {bool(mask[b, i])}, "
                    f"end allowed: {bool(mask[b, j])})")


@prop("best_span", "breaks ties by the smallest start, then the smallest end",
      span_cases(tied=True),
      hint="among equal scores keep the first pair in the order (i, then j): update only on a "
           "strictly larger score, or use argmax (first occurrence) over the flattened (i, j)")
def best_span_breaks_ties_early(impl, case):
    """A span that is not allowed, or scores less than the best, has not lost a tie: that failure
    says so and names the other properties (the hint about ties would mislead)."""
    starts, ends, _ = spans_of(impl, case)
    start, end = case["start_logits"], case["end_logits"]
    for b, (i, j) in enumerate(zip(starts, ends)):
        pairs = allowed_pairs(case, b)
        best = max(start[b, p] + end[b, q] for p, q in pairs)
        first = next((p, q) for p, q in pairs if start[b, p] + end[b, q] == best)
        if (int(i), int(j)) == first:
            continue
        if not is_valid(case, b, i, j):
            wrong = f"is not allowed ({why_invalid(case, b, i, j)})"
        elif start[b, i] + end[b, j] < best:
            wrong = f"scores {start[b, i] + end[b, j]:g}, below the best allowed score {best:g}"
        else:
            raise Failure(f"example {b}: span ({i}, {j}), but the first best-scoring span in the "
                          f"order of (start, end) is {first} (score {best:g})")
        raise Failure(f"example {b}: span ({i}, {j}) {wrong}: not a tie-breaking problem",
                      hint="fix the other failing properties of best_span first (the best "
                           "allowed span, its length, allowed_mask): this one may then pass")


# ---------------------------------------------------------------- align_word_labels


def aligned(impl, case) -> np.ndarray:
    targets = as_array(impl.align_word_labels(case["word_ids"], case["word_labels"],
                                              case["ignore_index"]), "targets")
    length = len(case["word_ids"])
    assert_true(targets.shape == (length,), f"targets has shape {targets.shape}, expected "
                                            f"({length},): one per token")
    return targets


def word_of(token_word):
    return -1 if token_word is None else int(token_word)


def show(case) -> str:
    words = [word_of(w) for w in case["word_ids"]]
    return f"word_ids {words}, labels {case['word_labels'].tolist()}"


@prop("align_word_labels", "puts each word's label on its first piece", word_alignment_cases(),
      hint="a token is a word's first piece when its word id is not None/-1 and differs from "
           "the previous token's; it gets word_labels[word id]")
def first_pieces_get_the_label(impl, case):
    targets = aligned(impl, case)
    seen = set()
    for t, word in enumerate(map(word_of, case["word_ids"])):
        if word >= 0 and word not in seen:
            seen.add(word)
            expected = case["word_labels"][word]
            assert_true(targets[t] == expected, f"token {t} is the first piece of word {word} and "
                                                f"should get its label {expected}, got "
                                                f"{targets[t]} ({show(case)})")


@prop("align_word_labels", "ignores later pieces, special tokens and padding",
      word_alignment_cases(),
      hint="every token that is not a word's first piece gets ignore_index (the argument, not "
           "a hard-coded -100); None/-1 never indexes word_labels")
def other_tokens_are_ignored(impl, case):
    targets = aligned(impl, case)
    previous = -1
    for t, word in enumerate(map(word_of, case["word_ids"])):
        if word < 0 or word == previous:
            what = "a special token or padding" if word < 0 else f"a later piece of word {word}"
            assert_true(targets[t] == case["ignore_index"],
                        f"token {t} is {what} and should get ignore_index "
                        f"{case['ignore_index']}, got {targets[t]} ({show(case)})")
        previous = word
