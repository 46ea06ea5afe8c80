"""The counting language models (`minilm.bigram`).

The properties `minilm check` grades a learner's bigram with (minilm/check/exercises/
language_models.py: rows are distributions, the table matches counting pair by pair in plain
Python, smoothing=0 is the maximum-likelihood table, the cross-entropy is the mean over the T-1
predictions and a uniform model scores ln V) are run here against the library itself; below them,
what only the library has: the unigram, smoothing's limit, the link to the op pairs, bad input.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import given

from minilm.bigram import bigram_counts, bigram_cross_entropy, bigram_log_probs, unigram_log_probs
from minilm.numpy import functional as F
from minilm.testing.strategies import bigram_cases, bigram_scoring_cases


def test_a_small_stream_by_hand():
    """0 1 0 0 1: the pairs are 0->1 twice and 1->0, 0->0 once each; token 2 is never seen."""
    ids = np.array([0, 1, 0, 0, 1])
    np.testing.assert_array_equal(bigram_counts(ids, 3), [[1, 2, 0], [1, 0, 0], [0, 0, 0]])
    table = np.exp(bigram_log_probs(ids, 3, smoothing=0.0))
    np.testing.assert_allclose(table, [[1 / 3, 2 / 3, 0], [1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    smoothed = np.exp(bigram_log_probs(ids, 3, smoothing=1.0))
    np.testing.assert_allclose(smoothed[0], [2 / 6, 3 / 6, 1 / 6])
    expected = -(math.log(2 / 3) + math.log(1) + math.log(1 / 3) + math.log(2 / 3)) / 4
    log_table = bigram_log_probs(ids, 3, smoothing=0.0)
    assert bigram_cross_entropy(log_table, ids) == pytest.approx(expected, rel=1e-12)


@given(bigram_cases())
def test_unigram_counts_tokens_and_smoothing_tends_to_uniform(case):
    """exp(unigram) = (n(b) + k) / (T + k V), a distribution; huge smoothing gives 1/V
    everywhere, for the unigram and for every row of the bigram."""
    ids, vocab, k = case["ids"], case["vocab_size"], case["smoothing"]
    probs = np.exp(unigram_log_probs(ids, vocab, k))
    counts = np.bincount(ids, minlength=vocab)
    if len(ids) or k:
        np.testing.assert_allclose(probs, (counts + k) / (len(ids) + k * vocab), rtol=1e-12)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-12)
    uniform = -math.log(vocab)
    np.testing.assert_allclose(unigram_log_probs(ids, vocab, 1e12), uniform, atol=1e-9)
    np.testing.assert_allclose(bigram_log_probs(ids, vocab, 1e12), uniform, atol=1e-9)


@given(bigram_scoring_cases())
def test_the_bigram_loss_is_the_cross_entropy_op_on_its_rows(case):
    """A bigram model is a model with logits log_probs[previous]: the op pair's cross-entropy of
    those logits against the next tokens is the bigram's cross-entropy (log-softmax of
    log-probabilities changes nothing)."""
    ids, log_probs = case["ids"], case["log_probs"]
    loss, _ = F.cross_entropy_forward(log_probs[ids[:-1]], ids[1:])
    assert bigram_cross_entropy(log_probs, ids) == pytest.approx(float(loss), rel=1e-12)


def test_a_pair_never_seen_costs_an_infinite_loss_without_smoothing():
    table = bigram_log_probs(np.array([0, 1, 0, 1]), 2, smoothing=0.0)
    assert np.isneginf(table[0, 0]) and bigram_cross_entropy(table, np.array([0, 0])) == math.inf
    assert np.isfinite(bigram_log_probs(np.array([0, 1, 0, 1]), 2, smoothing=0.1)).all()


def test_bad_inputs_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="ids must lie in"):
        bigram_log_probs(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match=re.escape("ids must be a 1-D array of token ids, got "
                                                   "shape (1, 2)")):
        bigram_log_probs(np.array([[0, 1]]), 3)
    with pytest.raises(ValueError, match="ids must be integer token ids, got float64 values"):
        unigram_log_probs(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="vocab_size must be an int >= 1"):
        bigram_log_probs(np.array([0]), 0)
    with pytest.raises(ValueError, match="smoothing must be a finite number"):
        bigram_log_probs(np.array([0, 1]), 2, smoothing=-1.0)
    with pytest.raises(ValueError, match="log_probs must be a"):
        bigram_cross_entropy(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="at least 2 tokens"):
        bigram_cross_entropy(np.zeros((2, 2)), np.array([1]))
