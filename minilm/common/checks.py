"""Input checks at the boundary of both twins: the same rules, the same messages.

A model checks what it is given once, where it enters (`forward`, `encode`), and refuses it with a
ValueError that names the argument and the form it expected, never a NaN, a silent broadcast or an
exception from deep inside NumPy or torch. The twin runs these same checks on a host copy of its
(B, T) integer inputs (one small copy; a check that can raise must look at the values).
"""

from __future__ import annotations

import numpy as np


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1 (bools are refused: True is not a count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def check_head_encoder(head, encoder, encoder_class) -> None:
    """A task head sits on an Encoder of its own backend, with BERT's pooler if it reads it.
    (ValueError, as the models raise for a bad config: one error type for bad arguments.)"""
    if not isinstance(encoder, encoder_class):
        raise ValueError(f"encoder must be a {encoder_class.__module__.rsplit('.', 1)[0]}.Encoder, "
                         f"got {type(encoder).__name__}")
    if head.needs_pooler and encoder.pooler is None:
        raise ValueError(
            f"{type(head).__name__} needs BERT's pooler: build the Encoder with pooler=True"
        )


def check_input_ids(input_ids, config) -> np.ndarray:
    """Token ids must be a (B, T) integer array with B >= 1, 1 <= T <= max_len and ids in the
    vocabulary."""
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"input_ids must be a (batch, time) integer array, got {ids.dtype} {ids.shape}"
        )
    if ids.shape[0] == 0:
        raise ValueError("input_ids has batch size 0; expected at least one sequence")
    if not 1 <= ids.shape[1] <= config.max_len:
        raise ValueError(
            f"input_ids has length {ids.shape[1]}; expected 1..max_len={config.max_len}"
        )
    if ids.min() < 0 or ids.max() >= config.vocab_size:
        raise ValueError(
            f"input_ids must lie in [0, vocab_size={config.vocab_size}), "
            f"got [{ids.min()}, {ids.max()}]"
        )
    return ids


def check_same_shape(name: str, array, ids: np.ndarray) -> np.ndarray:
    """A per-token input (mask, segment ids) must have exactly the shape of input_ids."""
    array = np.asarray(array)
    if array.shape != ids.shape:
        raise ValueError(f"{name} must have the shape of input_ids {ids.shape}, got {array.shape}")
    return array


def check_attention_mask(attention_mask, ids: np.ndarray) -> np.ndarray:
    """attention_mask (B, T): 1 (or True) for a real token, 0 (or False) for padding. Anything
    else (0.5, 2, -1, NaN) is refused rather than read as "attend". Returns a bool array."""
    mask = check_same_shape("attention_mask", attention_mask, ids)
    if mask.dtype != np.bool_:
        if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
            raise ValueError(f"attention_mask must hold 0/1 or booleans, got dtype {mask.dtype}")
        bad = (mask != 0) & (mask != 1)
        if bad.any():
            raise ValueError(
                f"attention_mask must hold only 0 (padding) and 1 (a real token), got "
                f"{mask[bad].reshape(-1)[0]!r} at {tuple(int(i) for i in np.argwhere(bad)[0])}"
            )
    return mask.astype(bool)


def check_token_type_ids(token_type_ids, ids: np.ndarray, config) -> np.ndarray:
    """Segment ids: the shape of input_ids, integers in [0, type_vocab_size); zeros when None."""
    if token_type_ids is None:
        return np.zeros_like(ids)
    segments = check_same_shape("token_type_ids", token_type_ids, ids)
    n_types = config.type_vocab_size
    if (not np.issubdtype(segments.dtype, np.integer) or segments.min() < 0
            or segments.max() >= n_types):
        raise ValueError(
            f"token_type_ids must be integers in [0, type_vocab_size={n_types}), got "
            f"{segments.dtype} values in [{segments.min()}, {segments.max()}]"
        )
    return segments
