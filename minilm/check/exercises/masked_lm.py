"""Lesson 04, BERT and masked language modelling: BERT's masking (`minilm.data.mask_tokens`).

mask_tokens is random, so most of its properties count: on thousands of tokens, a rate counted
from n trials is asserted within 6 standard errors of its probability p (|k - n p| <= 6 sqrt(n p
(1 - p)) + 3, the +3 for the normal approximation at small n p), which fails by chance with
probability about 2e-9 per rate. The rest are exact: special tokens and padding are never
touched, a label is the original token or -100, the same generator state gives the same masking.
The rates read what was selected from the labels: while the labels' property fails, they say to
fix it first.
"""

from __future__ import annotations

import math

import numpy as np

from minilm.check.framework import Failure, assert_true, exercise, prop, returned
from minilm.common.names import IGNORE_INDEX
from minilm.testing.strategies import masking_cases

LESSON = "04"

exercise("mask_tokens", LESSON,
         "mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15, "
         "mask_token_prob=0.8, random_token_prob=0.1) -> (inputs, labels)",
         "BERT's masking: select ~15% of the ordinary tokens, 80% -> [MASK], 10% -> random, "
         "10% unchanged; labels -100 where nothing is predicted")


def masked(impl, case, defaults=False, seed=None):
    """(ids, inputs, labels) of the learner's mask_tokens on the case (its own probabilities, or
    the function's defaults), checked to be int64 arrays shaped like ids (the dtype the model's
    embedding takes and torch's cross-entropy requires of its targets)."""
    ids = case["ids"]
    rng = np.random.default_rng(case["rng_seed"] if seed is None else seed)
    args = (ids, rng, case["vocab_size"], case["mask_id"], list(case["special_ids"]))
    kwargs = {} if defaults else {k: case[k] for k in
                                  ("mask_prob", "mask_token_prob", "random_token_prob")}
    inputs, labels = returned(impl.mask_tokens(*args, **kwargs), "mask_tokens", ("inputs", "labels"))
    for name, array in (("inputs", inputs), ("labels", labels)):
        assert_true(array.shape == ids.shape, f"{name} has shape {array.shape}, ids {ids.shape}")
        assert_true(array.dtype == np.int64,
                    f"{name} must be int64 ids, got dtype {array.dtype} (torch's cross-entropy "
                    "takes int64 targets only)")
    return ids, inputs, labels


def assert_rate(what: str, count: int, trials: int, p: float) -> None:
    """Failure unless `count` successes in `trials` is within 6 standard errors (+3) of trials * p
    (exactly 0 or `trials` when p is 0 or 1)."""
    expected = trials * p
    if p in (0.0, 1.0):
        assert_true(count == expected, f"{what}: {count} of {trials}, expected exactly "
                                        f"{expected:.0f} (probability {p:g})")
        return
    slack = 6 * math.sqrt(trials * p * (1 - p)) + 3
    assert_true(abs(count - expected) <= slack,
                f"{what}: {count} of {trials} ({count / max(trials, 1):.3f}), expected "
                f"{expected:.0f} +- {slack:.0f} (probability {p:.3f})")


def ordinary(case, ids):
    """Where ids holds an ordinary (non-special) token."""
    return ~np.isin(ids, case["special_ids"])


def n_ordinary_ids(case) -> int:
    return case["vocab_size"] - len(set(case["special_ids"]))


# ---------------------------------------------------------------- exact properties

LABELS = "labels are the original token where selected and -100 elsewhere"


@prop("mask_tokens", "never selects special tokens or padding", masking_cases(),
      hint="select only where ~np.isin(ids, special_ids): [CLS], [SEP], [PAD] are never "
           "predicted or changed")
def never_selects_special_tokens(impl, case):
    ids, inputs, labels = masked(impl, case)
    special = ~ordinary(case, ids)
    changed = special & (inputs != ids)
    if changed.any():
        raise Failure(f"{int(changed.sum())} special tokens or padding were changed (e.g. "
                      f"{ids[changed][0]} -> {inputs[changed][0]})")
    labelled = special & (labels != IGNORE_INDEX)
    if labelled.any():
        raise Failure(f"{int(labelled.sum())} special tokens or padding have a label (e.g. "
                      f"{labels[labelled][0]}): the loss would be asked to predict them")


@prop("mask_tokens", LABELS, masking_cases(),
      hint="labels = np.where(selected, ids, -100): the loss must ignore every position that "
           "was not selected, and only those")
def labels_are_originals_or_ignored(impl, case):
    ids, inputs, labels = masked(impl, case)
    labelled = labels != IGNORE_INDEX
    wrong = labelled & (labels != ids)
    if wrong.any():
        raise Failure(f"{int(wrong.sum())} labels are neither the original token nor -100 (e.g. "
                      f"label {labels[wrong][0]} where the token was {ids[wrong][0]})")
    untouched = ~labelled & (inputs != ids)
    assert_true(not untouched.any(), f"{int(untouched.sum())} tokens were changed but have label "
                                     "-100: the model is never told what they were")
    kept = ordinary(case, ids)
    assert_rate("ordinary tokens with a label (not -100)", int(labelled[kept].sum()),
                int(kept.sum()), case["mask_prob"])


@prop("mask_tokens", "a selected token left unchanged still has its label",
      masking_cases(split=(0.0, 0.0)),
      hint="the label marks what was selected, not what was changed: the unchanged 10% are "
           "predicted too (labels = np.where(selected, ids, -100))")
def unchanged_tokens_are_labelled(impl, case):
    """With mask_token_prob = random_token_prob = 0 every selected token stays as it is: the
    inputs equal the ids, and still a mask_prob share of the ordinary tokens is labelled. Changed
    inputs are not about the labels: that failure has a hint of its own."""
    ids, inputs, labels = masked(impl, case)
    if not np.array_equal(inputs, ids):
        raise Failure("with mask_token_prob = random_token_prob = 0 no token may change",
                      hint="decide [MASK], random or unchanged by the mask_token_prob and "
                           "random_token_prob given, not by fixed shares such as Hugging "
                           "Face's 0.5 of the rest")
    kept = ordinary(case, ids)
    assert_rate("ordinary tokens with a label although none changed",
                int((labels != IGNORE_INDEX)[kept].sum()), int(kept.sum()), case["mask_prob"])


@prop("mask_tokens", "draws its randomness from rng alone (same seed, same masking)",
      masking_cases(mask_prob=0.5), max_examples=10,
      hint="draw every random number from the `rng` argument (rng.random, rng.choice, "
           "rng.integers), never from np.random's global functions")
def reproducible(impl, case):
    _, inputs, labels = masked(impl, case)
    _, inputs2, labels2 = masked(impl, case)
    assert_true(np.array_equal(inputs, inputs2) and np.array_equal(labels, labels2),
                "two calls with generators of the same seed gave different maskings")
    _, inputs3, labels3 = masked(impl, case, seed=case["rng_seed"] + 1)
    assert_true(not (np.array_equal(inputs, inputs3) and np.array_equal(labels, labels3)),
                "generators of different seeds gave the same masking: is rng used at all?")


# ---------------------------------------------------------------- rates


@prop("mask_tokens", "selected tokens become [MASK] with probability mask_token_prob",
      masking_cases(), reads=(LABELS,),
      hint="one uniform draw u per selected token: [MASK] if u < mask_token_prob, a random "
           "token if u < mask_token_prob + random_token_prob, else unchanged; a [MASK] where "
           "mask_token_prob is 0 is a random replacement that drew mask_id (draw from the "
           "ordinary ids)")
def mask_share(impl, case):
    _, inputs, labels = masked(impl, case)
    selected = labels != IGNORE_INDEX
    assert_rate("selected tokens that became [MASK]", int((inputs[selected] ==
                case["mask_id"]).sum()), int(selected.sum()), case["mask_token_prob"])


@prop("mask_tokens", "the rest: a random token with probability random_token_prob, else unchanged",
      masking_cases(), reads=(LABELS,),
      hint="random_token_prob is a share of all selected tokens, not of those left after "
           "[MASK]: decide both with the same u; a random replacement can draw the original "
           "token again, so it looks unchanged with probability 1/(number of ordinary ids)")
def random_and_unchanged_shares(impl, case):
    """A random replacement is uniform over the n ordinary ids, so it differs from the original
    with probability random_token_prob (1 - 1/n), and a selected token reads unchanged with
    probability 1 - mask_token_prob - random_token_prob + random_token_prob / n."""
    ids, inputs, labels = masked(impl, case)
    selected = labels != IGNORE_INDEX
    n, p_random = n_ordinary_ids(case), case["random_token_prob"]
    replaced = selected & (inputs != case["mask_id"]) & (inputs != ids)
    unchanged = selected & (inputs == ids)
    trials = int(selected.sum())
    assert_rate("selected tokens replaced by another token", int(replaced.sum()), trials,
                p_random * (1 - 1 / n))
    assert_rate("selected tokens left unchanged", int(unchanged.sum()), trials,
                1 - case["mask_token_prob"] - p_random + p_random / n)


@prop("mask_tokens", "random replacements are ordinary tokens, each equally likely",
      masking_cases(n_tokens=32768, mask_prob=1.0, split=(0.0, 1.0)), max_examples=10,
      reads=(LABELS,),
      hint="draw replacements with rng.choice(ordinary_ids): never [MASK], [PAD] or another "
           "special id, and every ordinary id (the last one too)")
def replacements_are_uniform_over_ordinary_ids(impl, case):
    _, inputs, labels = masked(impl, case)
    selected = labels != IGNORE_INDEX
    drawn = inputs[selected]
    special = np.isin(drawn, case["special_ids"])
    if special.any():
        raise Failure(f"{int(special.sum())} random replacements are special tokens (e.g. "
                      f"{drawn[special][0]}), which the model never has to predict and "
                      "fine-tuning never shows")
    outside = (drawn < 0) | (drawn >= case["vocab_size"])
    if outside.any():
        raise Failure(f"replacement {drawn[outside][0]} is not an id of the vocabulary "
                      f"[0, {case['vocab_size']})")
    counts = np.bincount(drawn, minlength=case["vocab_size"])
    n = n_ordinary_ids(case)
    for token in np.setdiff1d(np.arange(case["vocab_size"]), case["special_ids"]):
        assert_rate(f"replacements by token {token}", int(counts[token]), len(drawn), 1 / n)


@prop("mask_tokens", "defaults are BERT's: 15% selected, then 80/10/10",
      masking_cases(mask_prob=0.15, split=(0.8, 0.1)), reads=(LABELS,),
      hint="mask_prob=0.15, mask_token_prob=0.8, random_token_prob=0.1 (the unchanged 10% is "
           "what is left)")
def defaults_are_berts(impl, case):
    ids, inputs, labels = masked(impl, case, defaults=True)
    kept = ordinary(case, ids)
    selected = labels != IGNORE_INDEX
    assert_rate("ordinary tokens selected", int(selected[kept].sum()), int(kept.sum()), 0.15)
    trials = int(selected.sum())
    assert_rate("selected tokens that became [MASK]",
                int((inputs[selected] == case["mask_id"]).sum()), trials, 0.8)
    n = n_ordinary_ids(case)
    assert_rate("selected tokens replaced by another token",
                int((selected & (inputs != case["mask_id"]) & (inputs != ids)).sum()), trials,
                0.1 * (1 - 1 / n))
