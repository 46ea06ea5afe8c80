"""Input checks at the boundary of both twins: the same rules, the same messages.

A model checks what it is given once, where it enters (`forward`, `encode`), and refuses it with a
ValueError that names the argument and the form it expected, never a NaN, a silent broadcast or an
exception from deep inside NumPy or torch. The twin runs these same checks on a host copy of its
(B, T) integer inputs (one small copy; a check that can raise must look at the values).

The op-level checks (`check_attention_inputs`, `check_cross_entropy_inputs`) read only what NumPy
arrays and torch tensors share (`shape`, `ndim`, `dtype`, comparisons), so the reference's op pairs
and the twin's functional call the same function, each naming its own array type. One error type
for every bad argument, types included: ValueError (see the ruff configuration in pyproject.toml).
"""

from __future__ import annotations

import math
import sys

import numpy as np

# ---------------------------------------------------------------- numbers


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1 (bools are refused: True is not a count)."""
    return int_at_least(name, value, 1)


def is_int(value) -> bool:
    """`value` is a Python or NumPy integer (a length from an array's shape is an np.int64), and
    not a bool: True is not a number of anything."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def int_at_least(name: str, value, minimum: int) -> int:
    """`value` as a Python int >= `minimum` (`is_int`: NumPy integers taken, bools refused). A
    seed is `int_at_least("seed", seed, 0)`: NumPy's and torch's generators take no float, and torch
    would take a negative seed that NumPy refuses, so the twins would disagree. The value returned
    is a Python int, whose products never wrap around as an np.int64's do past 2**63."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_flag(name: str, value) -> None:
    """`value` is True or False: a string such as "yes" (or "no") would be read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def number_in(name: str, value, interval: str) -> float:
    """`value` as a float in `interval`, written as in mathematics: "[0, 1)", "(0, inf)".

    NaN and +-inf are refused whatever the interval says, so `--lr inf` or `temperature=nan` stops
    before anything runs instead of turning every later number into NaN."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    is_number = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not (
            is_number and math.isfinite(value)
            and (low < value if interval[0] == "(" else low <= value)
            and (value < high if interval[-1] == ")" else value <= high)):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_finite(name: str, array) -> None:
    """Every entry of an array (NumPy, or a torch tensor on any device) is a finite number; else
    the first NaN or inf and where."""
    if hasattr(array, "isfinite"):  # a torch tensor
        first = (~array.isfinite()).nonzero()[:1]
    else:
        first = np.argwhere(~np.isfinite(array))[:1]
    if len(first):
        where = tuple(int(i) for i in first[0])
        raise ValueError(f"{name} must be finite numbers, got {float(array[where])} at index "
                         f"{where}")


def floating_dtype(dtype) -> np.dtype:
    """A model's weight dtype as a NumPy floating dtype (float16, float32, float64). Integer or bool
    weights would round every initial value (std 0.02) to 0 and every update away; None is refused
    too, as NumPy would read it as float64 (twice the memory of the default float32, silently)."""
    try:
        if dtype is None:
            raise TypeError
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a NumPy floating dtype such as np.float32, got "
                         f"{dtype!r}") from None
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype (np.float32, np.float64), got {dtype}")
    return dtype


# ---------------------------------------------------------------- arrays of either twin


def _kind(array) -> str:
    """NumPy's dtype.kind ('f' floating, 'i'/'u' integer, 'b' bool, 'c' complex) of a NumPy array
    or a torch tensor (a tensor can only exist if torch is imported)."""
    dtype = array.dtype
    if isinstance(dtype, np.dtype):
        return dtype.kind
    if dtype.is_floating_point:
        return "f"
    if dtype.is_complex:
        return "c"
    return "b" if dtype == sys.modules["torch"].bool else "i"


def check_floating(name: str, array) -> None:
    """`array` (NumPy or torch) holds floating-point numbers: an op computed in an integer dtype
    rounds every fraction away (GELU's Phi(x) in int64 is 0, so every output is 0)."""
    if not hasattr(array, "dtype") or _kind(array) != "f":
        raise ValueError(f"{name} must be a floating-point array, got "
                         f"{getattr(array, 'dtype', type(array).__name__)}")


def check_gradient_shape(op: str, dout, shape) -> None:
    """A backward's `dout` (d loss / d output) has the shape of the forward's output: a wrong one
    would broadcast into gradients of the wrong shape, or fail deep inside a product."""
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"{op}: dout must have the forward output's shape {tuple(shape)}, got "
                         f"{tuple(dout.shape)}")


def check_array(name: str, value, array_type) -> None:
    """`value` is an array of the op's own kind: np.ndarray for the reference, torch.Tensor for
    the twin (a NumPy array handed to the twin would fail deep inside torch)."""
    if not isinstance(value, array_type):
        raise ValueError(f"{name} must be a {array_type.__module__}.{array_type.__name__}, got "
                         f"{type(value).__module__}.{type(value).__name__}")


def check_attention_inputs(q, k, v, scale, array_type, causal=False, attn_mask=None,
                           dropout_p=0.0) -> None:
    """q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv), `array_type` arrays of one floating dtype
    with the same leading (batch, head) axes and at least one key; `scale` None or finite;
    `causal` True or False; `attn_mask` None or a boolean `array_type` array that broadcasts to
    the scores' shape (..., Nq, Nk); `dropout_p` in [0, 1).

    What each rule prevents: integer inputs would compute the scale 1/sqrt(D) in integers (0);
    leading axes that differ would broadcast, and the backward return gradients of the broadcast
    shape, not the input's; k and v of different lengths pair keys with the wrong values; with no
    key at all the softmax has nothing to normalise; a mask with more or longer leading axes than
    the scores would broadcast the output into copies of the batch."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_array(f"attention: {name}", x, array_type)
        if x.ndim < 2 or _kind(x) != "f":
            raise ValueError(f"attention: {name} must be a floating-point array (..., N, D), got "
                             f"{x.dtype} of shape {tuple(x.shape)}")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"attention: q, k and v must have one dtype, got {q.dtype}, {k.dtype}, "
                         f"{v.dtype}")
    if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(
            f"attention: q, k and v must have the same leading (batch, head) axes before "
            f"(N, D), got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q has head dim {q.shape[-1]} but k has {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k has {k.shape[-2]} keys but v has {v.shape[-2]}")
    if k.shape[-2] == 0:
        raise ValueError("attention: k and v hold no keys (Nk = 0); expected at least one")
    if scale is not None:
        number_in("attention: scale", scale, "(-inf, inf)")
    check_flag("attention: causal", causal)
    if attn_mask is not None:
        check_array("attention: attn_mask", attn_mask, array_type)
        if _kind(attn_mask) != "b":
            raise ValueError(f"attention: attn_mask must be boolean (True = may attend), got "
                             f"{attn_mask.dtype}")
        scores = (*q.shape[:-1], k.shape[-2])  # (..., Nq, Nk)
        try:
            fits = np.broadcast_shapes(tuple(attn_mask.shape), scores) == scores
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"attention: attn_mask of shape {tuple(attn_mask.shape)} does not "
                             f"broadcast to the scores' shape {scores} (..., Nq, Nk)")
    number_in("attention: dropout_p", dropout_p, "[0, 1)")


def check_key_mask(name: str, key_mask, k, array_type) -> None:
    """A padding mask over the keys k (B, H, Nk, D): a (B, Nk) boolean `array_type` array, True =
    a real key that may be attended. (The kernel's form of the mask; the twin's other backends
    expand it to (B, 1, 1, Nk), where a wrong length would fail deep inside torch.)"""
    check_array(name, key_mask, array_type)
    expected = (k.shape[0], k.shape[-2])
    if _kind(key_mask) != "b" or tuple(key_mask.shape) != expected:
        raise ValueError(f"{name} must be bool of shape (B, Nk) = {expected} (True = may attend), "
                         f"got {key_mask.dtype} of shape {tuple(key_mask.shape)}")


def check_cross_entropy_inputs(logits, targets, ignore_index, array_type) -> None:
    """logits (..., V) floating, targets (...) integer class ids in [0, V) or `ignore_index`, both
    `array_type` arrays. (Float targets would be read as class ids after rounding, wrong shapes be
    flattened into a pairing of the wrong rows.)"""
    check_array("cross_entropy: logits", logits, array_type)
    check_array("cross_entropy: targets", targets, array_type)
    if logits.ndim < 1 or _kind(logits) != "f":
        raise ValueError(f"cross_entropy: logits must be a floating-point array (..., V), got "
                         f"{logits.dtype} of shape {tuple(logits.shape)}")
    if _kind(targets) not in "iu":
        raise ValueError(f"cross_entropy: targets must be integer class ids, got dtype "
                         f"{targets.dtype}")
    if tuple(logits.shape[:-1]) != tuple(targets.shape):
        raise ValueError(
            f"cross_entropy: targets shape {tuple(targets.shape)} must equal logits shape "
            f"without its last axis {tuple(logits.shape[:-1])}"
        )
    if not is_int(ignore_index):  # 2.5 would ignore nothing, silently
        raise ValueError(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    vocab = logits.shape[-1]
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= vocab))
    if bad.any():
        raise ValueError(
            f"cross_entropy: targets must lie in [0, {vocab}) or equal ignore_index="
            f"{ignore_index}, got {targets[bad][:5].tolist()}"
        )


# ---------------------------------------------------------------- models


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


def check_token_ids(ids, vocab_size: int) -> np.ndarray:
    """Ids to decode, one sequence (a list or a 1-D array; a single id is one token), as an
    integer array, each in [0, vocab_size): a float id (1.5) would be cut to an int and decoded as
    another token, and the rows of a batch run together into one text, silently."""
    if ids is None:
        raise ValueError("ids must be a sequence of token ids, got None")
    ids = np.asarray(ids)
    if ids.ndim > 1:
        raise ValueError(f"ids must be one sequence of token ids (1-D), got shape {ids.shape}: "
                         "decode each row of a batch")
    ids = ids.reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integer token ids, got {ids.dtype} values such as "
                         f"{ids[0].item()!r}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, {vocab_size}), got {ids.min()}..{ids.max()}")
    return ids.astype(np.int64)


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
                f"{mask[bad].reshape(-1)[0].item()!r} at {tuple(int(i) for i in np.argwhere(bad)[0])}"
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



def check_named_ids(name: str, ids, config) -> np.ndarray:
    """`check_input_ids` for a model with two inputs of ids (a Seq2Seq's `source_ids` and
    `target_ids`): the same rules, the error naming the argument."""
    try:
        return check_input_ids(ids, config)
    except ValueError as error:
        raise ValueError(str(error).replace("input_ids", name)) from None


def check_seq2seq_config(config) -> None:
    """A Seq2Seq's ModelConfig has no pruned heads, which only BERT's and GPT-2's blocks read (a
    Seq2Seq would be built whole, not as its config says)."""
    if config.pruned_heads:
        raise ValueError(f"config.pruned_heads must be empty for a Seq2Seq (heads are pruned from "
                         f"BERT and GPT-2 models only), got {config.pruned_heads}")


def check_memory(memory, batch: int, config, array_type, dtype) -> None:
    """A Seq2Seq decoder's `memory`: the encoder output (B, S, d_model) for its B target
    sequences, S >= 1, an `array_type` array of the model's `dtype`, finite. (Another array type,
    width or dtype would fail deep inside a matrix product; a NaN would make every logit NaN.)"""
    check_array("memory", memory, array_type)
    if (memory.ndim != 3 or memory.dtype != dtype or memory.shape[0] != batch
            or memory.shape[1] == 0 or memory.shape[2] != config.d_model):
        raise ValueError(f"memory must be the encoder's output, {dtype} of shape (B={batch}, "
                         f"S >= 1, d_model={config.d_model}), got {memory.dtype} of shape "
                         f"{tuple(memory.shape)}")
    check_finite("memory", memory)


def check_paired(target_ids, batch: int) -> None:
    """Seq2Seq.forward's targets pair up with its `batch` sources row by row: as many of each.
    (Unchecked, the decoder's check would blame `memory`, which the caller did not pass.)"""
    shape = np.shape(target_ids)
    if shape and shape[0] != batch:
        raise ValueError(f"target_ids has {shape[0]} sequences but source_ids has {batch}; "
                         "expected one target per source")


def check_hidden_states(hidden, config, array_type) -> None:
    """An encoder's output (B, T >= 1, d_model) as an `array_type` array, for a head on top of it
    (the pooler reads its first position: a (B, C) array would silently pool the first sentence)."""
    check_array("hidden", hidden, array_type)
    if hidden.ndim != 3 or hidden.shape[1] == 0 or hidden.shape[2] != config.d_model:
        raise ValueError(f"hidden must be the encoder's output (B, T >= 1, d_model="
                         f"{config.d_model}), got shape {tuple(hidden.shape)}")


def check_source_mask(source_mask, ids: np.ndarray) -> np.ndarray:
    """A source's padding mask: `check_attention_mask`'s rules (None: no padding), the error naming
    `source_mask`, and at least one real token per row. A source of padding alone is empty: there
    would be nothing to translate, and cross-attention no key to attend."""
    try:
        mask = np.ones(ids.shape, dtype=bool) if source_mask is None else check_attention_mask(
            source_mask, ids)
    except ValueError as error:
        message = str(error).replace("attention_mask", "source_mask")
        raise ValueError(message.replace("input_ids", "source_ids")) from None
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise ValueError(f"source_mask row {int(empty[0])} holds no real token: an empty source "
                         "(every sequence must have at least one token to translate)")
    return mask
