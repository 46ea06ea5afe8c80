"""Pre-training data from any token stream: reading a text file, BERT's MLM masking, random CLM and
MLM batches, a contiguous train/validation split, and validation windows that score every token once.

The built-in corpus and its exact entropy rate live in `minilm.corpus` (also importable from here
as `data.generate_corpus` and `data.corpus_entropy_rate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np

from minilm.common.checks import int_at_least, is_int, number_in, positive_int
from minilm.common.names import IGNORE_INDEX
from minilm.corpus import corpus_entropy_rate, generate_corpus

__all__ = [
    "IGNORE_INDEX",
    "clm_batch",
    "corpus_entropy_rate",
    "count_rows",
    "eval_batches",
    "generate_corpus",
    "load_text",
    "mask_tokens",
    "mlm_batch",
    "read_text",
    "split_rows",
    "split_train_val",
]

# ---------------------------------------------------------------- any text file


def read_text(path) -> str:
    """The contents of a UTF-8 text file, maybe empty (a leading byte-order mark is dropped); a
    file in another encoding is a ValueError naming it and the first byte that is not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a directory, not a text file")
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path}")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (bad byte at offset {error.start}); "
                         "convert it first, e.g. `iconv -t utf-8`") from None


def load_text(path) -> str:
    """`read_text`, refusing an empty file (nothing to train on or to prompt with)."""
    text = read_text(path)
    if not text:
        raise ValueError(f"{path} is empty")
    return text


# ---------------------------------------------------------------- masked language modelling


def mask_tokens(ids, rng: np.random.Generator, vocab_size: int, mask_id: int, special_ids,
                mask_prob: float = 0.15, mask_token_prob: float = 0.8,
                random_token_prob: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking (seed article, MLM): (inputs, labels) for ids of any shape.

    Each non-special token is selected independently with probability `mask_prob`; special ids
    (padding, [MASK], ...) never are. A selected token becomes [MASK] with probability
    `mask_token_prob` (0.8), a random token with probability `random_token_prob` (0.1), and stays
    as it is otherwise (0.1). Labels hold the original id at selected positions and IGNORE_INDEX
    (-100) elsewhere, so the loss is taken only where the model had to reconstruct a token.

    The random token is uniform over the *non-special* ids (Hugging Face's collator draws from the
    whole vocabulary): a "random" [MASK] or padding would only blur the 80/10/10 split. It can equal
    the original token, as in BERT, so a selected token reads unchanged with probability
    0.1 + 0.1 / (number of non-special ids).

    `vocab_size` is an int >= 1, `mask_id` one of the integer `special_ids`, and the three
    probabilities numbers in [0, 1] (the last two summing to at most 1).
    """
    ids = np.asarray(ids)
    special_ids = np.unique(np.asarray(special_ids))
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    if special_ids.size and not np.issubdtype(special_ids.dtype, np.integer):  # 0.7 is not id 0
        raise ValueError(f"special_ids must be integer ids, got {special_ids.tolist()}")
    special_ids = special_ids.astype(np.int64)  # [] is float64
    vocab_size = positive_int("vocab_size", vocab_size)
    mask_id = int_at_least("mask_id", mask_id, 0)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, vocab_size={vocab_size}), "
                         f"got {ids.min()}..{ids.max()}")
    if special_ids.size and (special_ids.min() < 0 or special_ids.max() >= vocab_size):
        raise ValueError(f"special_ids must lie in [0, vocab_size={vocab_size}), "
                         f"got {special_ids.tolist()}")
    if mask_id not in special_ids:
        raise ValueError(f"mask_id ({mask_id}) must be one of special_ids {special_ids.tolist()}")
    for name, p in (("mask_prob", mask_prob), ("mask_token_prob", mask_token_prob),
                    ("random_token_prob", random_token_prob)):
        number_in(name, p, "[0, 1]")
    if mask_token_prob + random_token_prob > 1.0:
        raise ValueError(f"mask_token_prob + random_token_prob must be <= 1, "
                         f"got {mask_token_prob} + {random_token_prob}")
    ordinary_ids = np.setdiff1d(np.arange(vocab_size), special_ids)
    if ordinary_ids.size == 0:
        raise ValueError("special_ids cover the whole vocabulary: nothing left to mask")

    selected = (rng.random(ids.shape) < mask_prob) & ~np.isin(ids, special_ids)
    fate = rng.random(ids.shape)  # one uniform draw decides mask / random / keep
    to_mask = selected & (fate < mask_token_prob)
    to_random = selected & (fate >= mask_token_prob) & (fate < mask_token_prob + random_token_prob)
    inputs = ids.astype(np.int64)  # a copy
    inputs[to_mask] = mask_id
    inputs[to_random] = rng.choice(ordinary_ids, size=int(to_random.sum()))
    labels = np.where(selected, ids, IGNORE_INDEX).astype(np.int64)
    return inputs, labels


# ---------------------------------------------------------------- batches of a token stream


def _check_stream(ids, batch_size: int, seq_len: int) -> np.ndarray:
    """ids as a 1-D int64 stream; batch_size and seq_len ints >= 1."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D token stream, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    positive_int("batch_size", batch_size)
    positive_int("seq_len", seq_len)
    return ids.astype(np.int64, copy=False)


def _random_windows(ids: np.ndarray, batch_size: int, length: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(batch_size, length) windows of ids at uniformly random starts."""
    if length > len(ids):
        raise ValueError(f"the stream has {len(ids)} tokens, fewer than the {length} that one "
                         "window needs; lower seq_len or give more text")
    starts = rng.integers(0, len(ids) - length + 1, size=batch_size)  # (B,)
    return ids[starts[:, None] + np.arange(length)]                    # (B, length)


def clm_batch(ids, batch_size: int, seq_len: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Causal LM: random windows of the stream; the targets are the inputs shifted by one.

    A window of seq_len + 1 tokens x_0 .. x_T gives inputs x_0 .. x_{T-1} and targets x_1 .. x_T:
    position t predicts the token after it. Shapes (B, T), int64.
    """
    ids = _check_stream(ids, batch_size, seq_len)
    windows = _random_windows(ids, batch_size, seq_len + 1, rng)  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]                         # (B, T), (B, T)


def mlm_batch(ids, batch_size: int, seq_len: int, rng: np.random.Generator, vocab_size: int,
              mask_id: int, special_ids, mask_prob: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Masked LM: random windows of the stream through `mask_tokens`. (inputs, labels), (B, T)."""
    ids = _check_stream(ids, batch_size, seq_len)
    windows = _random_windows(ids, batch_size, seq_len, rng)  # (B, T)
    return mask_tokens(windows, rng, vocab_size, mask_id, special_ids, mask_prob)


def split_rows(batch, parts: int) -> list:
    """`batch` cut into `parts` consecutive pieces of rows, as equal as they can be: sizes differ
    by at most one, the longer pieces first (as np.array_split), so a batch of fewer rows than
    parts leaves the last pieces empty.

    `batch` is an array of B rows, or a tuple nesting arrays (all of B rows) and None, e.g.
    ((ids, mask, segments), targets); each piece has the same structure. This is how one step's
    batch is shared out (`minilm.steps`): part p of `world_size * grad_accum` is micro-batch
    p % grad_accum of process p // grad_accum, so the pieces are disjoint and together the batch.
    """
    parts = positive_int("parts", parts)
    size, longer = divmod(count_rows(batch), parts)  # the first `longer` pieces get one row more
    bounds = np.cumsum([0] + [size + (p < longer) for p in range(parts)])
    return [_take_rows(batch, slice(start, stop)) for start, stop in pairwise(bounds)]


def count_rows(batch) -> int:
    """The number of rows of a batch (its first array's first dimension)."""
    if isinstance(batch, tuple):
        return next(count_rows(item) for item in batch if item is not None)
    return len(batch)


def _take_rows(batch, rows: slice):
    if batch is None:
        return None
    if isinstance(batch, tuple):
        return tuple(_take_rows(item, rows) for item in batch)
    return np.asarray(batch)[rows]


def split_train_val(ids, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) of the stream for training, the rest for validation.

    Deterministic and contiguous: the validation text is never seen in training (a random split
    of windows would leak overlapping text).
    """
    ids = np.asarray(ids)
    number_in("val_fraction", val_fraction, "(0, 1)")
    n_val = round(len(ids) * val_fraction)
    if n_val < 1 or n_val >= len(ids):
        raise ValueError(f"a stream of {len(ids)} tokens cannot be split with "
                         f"val_fraction={val_fraction}: both parts must be non-empty")
    return ids[:-n_val], ids[-n_val:]


def eval_batches(ids, batch_size: int, seq_len: int, stride: int | None = None,
                 pad_id: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """CLM windows over the whole stream, in order: every token after the first is a target
    exactly once, so the mean loss over all batches is the stream's loss per token.

    Window k covers inputs ids[kS : kS + T] and targets ids[kS + 1 : kS + T + 1] (S = stride,
    default T: consecutive windows). With S < T the windows overlap (a sliding window) and each
    scores only its last S targets -- all T for the first window -- so every scored token after the
    first window is predicted from at least T - S tokens of context. Consecutive windows (S = T)
    start each window with an empty context, so their loss is a little above a sliding window's.
    The last window is padded: inputs with `pad_id`, targets with IGNORE_INDEX (a causal model's
    earlier positions never see the padding). Batches are (B, T) except possibly the last.
    The stream needs at least 2 tokens (one target); `pad_id` is an int >= 0.
    """
    ids = _check_stream(ids, batch_size, seq_len)
    if len(ids) < 2:
        raise ValueError(f"the stream has {len(ids)} tokens; scoring needs at least 2 "
                         "(an input and its target)")
    stride = seq_len if stride is None else stride
    if not is_int(stride) or not 1 <= stride <= seq_len:
        raise ValueError(f"stride must be an int in [1, seq_len={seq_len}], got {stride!r}")
    int_at_least("pad_id", pad_id, 0)
    n_targets = len(ids) - 1
    n_windows = 1 + max(0, -(-(n_targets - seq_len) // stride))  # the last one reaches the end
    length = (n_windows - 1) * stride + seq_len
    inputs = np.full(length, pad_id, dtype=np.int64)
    targets = np.full(length, IGNORE_INDEX, dtype=np.int64)
    inputs[:n_targets], targets[:n_targets] = ids[:-1], ids[1:]
    positions = np.arange(n_windows)[:, None] * stride + np.arange(seq_len)  # (W, T)
    inputs, targets = inputs[positions], targets[positions]
    targets[1:, : seq_len - stride] = IGNORE_INDEX  # already scored by the window before
    for first in range(0, n_windows, batch_size):
        yield inputs[first: first + batch_size], targets[first: first + batch_size]
