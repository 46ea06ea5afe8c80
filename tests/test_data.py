"""Pre-training data from a token stream: loading text, MLM masking, CLM and MLM batches, the
train/validation split and the validation windows.

Statistical tests use fixed seeds and bounds of 4 standard errors (a false alarm about once in
16,000 runs for each bound).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilm import data
from minilm.testing.strategies import seeds

# ---------------------------------------------------------------- load_text


def test_load_text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("héllo\nwörld\n", encoding="utf-8")
    assert data.load_text(path) == "héllo\nwörld\n"
    path.write_bytes(b"\xef\xbb\xbfbom")
    assert data.load_text(str(path)) == "bom"
    with pytest.raises(FileNotFoundError, match="no such"):
        data.load_text(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="is a directory, not a text file"):
        data.load_text(tmp_path)
    path.write_bytes(b"caf\xe9")  # Latin-1
    with pytest.raises(ValueError, match="not UTF-8"):
        data.load_text(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        data.load_text(path)


# ---------------------------------------------------------------- MLM masking

VOCAB, MASK, SPECIALS = 31, 1, [0, 1]


def _binomial_ok(count, n, p):
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def test_masking_statistics():
    """15% of ordinary tokens selected; of those 80% [MASK], 10% random, 10% kept (a random token
    equal to the original reads as kept: 0.1 + 0.1 / K with K ordinary ids). Each count within 4
    binomial standard deviations."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(400, 500))
    inputs, labels = data.mask_tokens(ids, rng, VOCAB, MASK, SPECIALS)
    special = np.isin(ids, SPECIALS)
    selected = labels != data.IGNORE_INDEX
    n_ordinary, n_selected = int((~special).sum()), int(selected.sum())
    k = VOCAB - len(SPECIALS)
    assert _binomial_ok(n_selected, n_ordinary, 0.15)
    assert not (selected & special).any()
    assert np.array_equal(labels[selected], ids[selected])
    assert np.array_equal(inputs[~selected], ids[~selected])
    became_mask = int((inputs[selected] == MASK).sum())
    kept = int((inputs[selected] == ids[selected]).sum())
    assert _binomial_ok(became_mask, n_selected, 0.8)
    assert _binomial_ok(kept, n_selected, 0.1 + 0.1 / k)
    assert _binomial_ok(n_selected - became_mask - kept, n_selected, 0.1 * (1 - 1 / k))
    replaced = inputs[selected & (inputs != MASK) & (inputs != ids)]
    assert set(replaced.tolist()) == set(range(2, VOCAB))  # every ordinary id, no special one


@given(seeds, st.lists(st.integers(1, 6), min_size=1, max_size=3), st.floats(0, 1))
def test_masking_invariants(seed, shape, mask_prob):
    """For any shape and rate: int64 outputs of the same shape, labels are the original or -100,
    unselected and special positions untouched, mask_prob 0 changes nothing."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 8, size=shape)
    inputs, labels = data.mask_tokens(ids, rng, 8, 3, [0, 3], mask_prob=mask_prob)
    assert inputs.shape == labels.shape == ids.shape
    assert inputs.dtype == labels.dtype == np.int64
    selected = labels != data.IGNORE_INDEX
    assert np.array_equal(labels[selected], ids[selected])
    assert np.array_equal(inputs[~selected], ids[~selected])
    assert not np.isin(ids[selected], [0, 3]).any()
    if mask_prob == 0:
        assert not selected.any()


def test_masking_is_reproducible_and_leaves_its_input_alone():
    ids = np.arange(2, 31).repeat(10)
    first = data.mask_tokens(ids, np.random.default_rng(5), VOCAB, MASK, SPECIALS)
    second = data.mask_tokens(ids, np.random.default_rng(5), VOCAB, MASK, SPECIALS)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert np.array_equal(ids, np.arange(2, 31).repeat(10))


@pytest.mark.parametrize("kwargs, name", [
    ({"mask_prob": 1.5}, "mask_prob"), ({"mask_prob": -0.1}, "mask_prob"),
    ({"mask_token_prob": 2.0}, "mask_token_prob"),
    ({"mask_token_prob": 0.8, "random_token_prob": 0.3}, "random_token_prob"),
    ({"ids": np.array([0, 31])}, "ids"), ({"ids": np.array([-1])}, "ids"),
    ({"ids": np.array([0.5])}, "ids"), ({"mask_id": 5}, "mask_id"),
    ({"special_ids": [0, 1, 40]}, "special_ids"), ({"special_ids": list(range(31))}, "special"),
    ({"special_ids": [0.7, 1]}, "special_ids must be integer ids"),  # 0.7 is not id 0
    ({"mask_prob": "0.5"}, "mask_prob"), ({"mask_prob": float("nan")}, "mask_prob"),
    ({"random_token_prob": True}, "random_token_prob"), ({"vocab_size": 31.0}, "vocab_size"),
    ({"mask_id": 1.0}, "mask_id must be an int"),
])
def test_masking_rejects_bad_arguments(kwargs, name):
    args = {"ids": np.array([2, 3]), "rng": np.random.default_rng(0), "vocab_size": VOCAB,
            "mask_id": MASK, "special_ids": SPECIALS}
    with pytest.raises(ValueError, match=name):
        data.mask_tokens(**{**args, **kwargs})


# ---------------------------------------------------------------- batches


def test_clm_batch_targets_are_the_inputs_shifted_by_one():
    """With ids = 0, 1, 2, ... a window is a run of consecutive numbers; every start is reachable."""
    ids, seq_len = np.arange(20), 16
    inputs, targets = data.clm_batch(ids, 64, seq_len, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (64, seq_len)
    assert inputs.dtype == targets.dtype == np.int64
    assert np.array_equal(targets, inputs + 1)
    assert np.array_equal(np.diff(inputs, axis=1), np.ones((64, seq_len - 1)))
    assert set(inputs[:, 0].tolist()) == {0, 1, 2, 3}  # starts 0 .. len - seq_len - 1


def test_mlm_batch():
    ids = np.random.default_rng(0).integers(2, VOCAB, size=300)
    inputs, labels = data.mlm_batch(ids, 8, 300, np.random.default_rng(1), VOCAB, MASK, SPECIALS)
    assert inputs.shape == labels.shape == (8, 300)
    selected = labels != data.IGNORE_INDEX
    assert np.array_equal(labels[selected], np.broadcast_to(ids, (8, 300))[selected])
    assert np.array_equal(inputs[~selected], np.broadcast_to(ids, (8, 300))[~selected])


@pytest.mark.parametrize("ids, batch_size, seq_len, name", [
    (np.arange(16), 2, 16, "seq_len"), (np.arange(40), 0, 8, "batch_size"),
    (np.arange(40), 2, 0, "seq_len"), (np.zeros((4, 10), dtype=int), 2, 4, "1-D"),
    (np.linspace(0, 1, 40), 2, 8, "integers"),
    (np.arange(40), True, 8, "batch_size"), (np.arange(40), 2.0, 8, "batch_size"),
    (np.arange(40), 2, float("nan"), "seq_len"), (np.arange(40), 2, "8", "seq_len"),
])
def test_batches_reject_bad_arguments(ids, batch_size, seq_len, name):
    with pytest.raises(ValueError, match=name):
        data.clm_batch(ids, batch_size, seq_len, np.random.default_rng(0))


def test_split_train_val():
    ids = np.arange(1000)
    train, val = data.split_train_val(ids, 0.1)
    assert len(val) == 100 and np.array_equal(np.concatenate([train, val]), ids)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="val_fraction"):
            data.split_train_val(ids, bad)
    with pytest.raises(ValueError, match="non-empty"):
        data.split_train_val(np.arange(3), 0.1)


@pytest.mark.parametrize("call, expected", [
    (lambda: data.split_train_val(np.arange(10), float("nan")), "val_fraction must be a finite"),
    (lambda: data.split_train_val(np.arange(10), "0.1"), "val_fraction must be a finite"),
    (lambda: data.split_rows(np.arange(4), 2.0), "parts must be an int >= 1"),
    (lambda: data.split_rows(np.arange(4), True), "parts must be an int >= 1"),
    (lambda: next(data.eval_batches(np.arange(10), 2, 4, stride=1.5)), "stride must be an int"),
    (lambda: next(data.eval_batches(np.arange(10), 2, 4, pad_id=0.5)), "pad_id must be an int"),
    (lambda: next(data.eval_batches(np.arange(10), 2.5, 4)), "batch_size must be an int"),
    (lambda: next(data.eval_batches(np.arange(1), 2, 4)), "the stream has 1 tokens"),
])
def test_stream_helpers_reject_bad_counts(call, expected):
    """Counts are ints (not 2.0, True or NaN) and fractions finite numbers, each named."""
    with pytest.raises(ValueError, match=expected):
        call()


@given(st.integers(2, 300), st.integers(1, 5), st.integers(1, 40))
def test_eval_batches_cover_the_stream_once_in_order(n, batch_size, seq_len):
    """Every token after the first is a target exactly once, in order, after its own input; the
    padding is ignored; the same call gives the same batches."""
    ids = np.arange(100, 100 + n)
    batches = list(data.eval_batches(ids, batch_size, seq_len, pad_id=0))
    assert all(x.shape == y.shape and x.shape[1] == seq_len and 1 <= len(x) <= batch_size
               for x, y in batches)
    inputs = np.concatenate([x for x, _ in batches]).ravel()
    targets = np.concatenate([y for _, y in batches]).ravel()
    scored = targets != data.IGNORE_INDEX
    assert np.array_equal(targets[scored], ids[1:]) and np.array_equal(inputs[scored], ids[:-1])
    assert (inputs[~scored] == 0).all() and scored[: n - 1].all()
    assert len(targets) - (n - 1) < seq_len  # only the last window is padded
    again = list(data.eval_batches(ids, batch_size, seq_len, pad_id=0))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(batches, again))


@given(st.integers(2, 300), st.integers(1, 5), st.integers(1, 40), st.data())
def test_sliding_eval_windows_score_every_token_once_with_context(n, batch_size, seq_len, draw):
    """With a stride S < T, every token after the first is still scored exactly once, in order,
    right after its own input, and every token scored after the first window has at least T - S
    tokens of context in its window."""
    stride = draw.draw(st.integers(1, seq_len))
    ids = np.arange(100, 100 + n)
    inputs, targets = (np.concatenate(part) for part in
                       zip(*data.eval_batches(ids, batch_size, seq_len, stride=stride)))
    scored = targets != data.IGNORE_INDEX
    assert np.array_equal(targets[scored], ids[1:])
    assert np.array_equal(inputs[scored], ids[:-1])
    assert (np.nonzero(scored[1:])[1] >= seq_len - stride).all()
    with pytest.raises(ValueError, match="stride"):
        next(data.eval_batches(ids, batch_size, seq_len, stride=seq_len + 1))
