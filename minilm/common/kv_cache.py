"""The KV cache: a decoder's memory of the tokens it has already read. One class serves both twins
(the arrays it holds are the backend's: NumPy arrays or torch tensors)."""

from __future__ import annotations

import numpy as np

from minilm.common.checks import check_array, positive_int


class LayerKVCache:
    """The keys and values (B, H, T_past, D) one attention layer has computed so far (None before
    the first cached forward). Plain storage: each backend's attention appends to it."""

    def __init__(self):
        self.keys = None
        self.values = None


class KVCache:
    """A decoder's memory of the tokens it has already read, for generating one token at a time.

    Without it, step t of generation runs the model on all t tokens again, recomputing the keys
    and values of the t - 1 old ones, which are the same as before: causal attention means a token's
    hidden states (hence its K and V in every layer) never depend on later tokens. Over T steps
    that is O(T^2) token projections. With it, each step projects only the new token, appends its K
    and V to `layers[i]`, and lets its query attend every cached key: O(T) projections in all
    (the attention itself still reads all t keys at step t).

    `layers[i]` holds layer i's keys and values (B, H, T_past, D); `length` is T_past, the position
    the next token gets. The cache is extended in place by `Decoder.forward(new_ids, kv_cache)`,
    NumPy or torch (the arrays are the backend's), and serves one batch of sequences.
    """

    def __init__(self, n_layers: int):
        self.layers = [LayerKVCache() for _ in range(positive_int("n_layers", n_layers))]

    @property
    def length(self) -> int:
        """How many tokens are cached (T_past)."""
        keys = self.layers[0].keys if self.layers else None
        return 0 if keys is None else keys.shape[2]

    @property
    def batch_size(self) -> int | None:
        """The batch the cache serves; None while it is empty."""
        keys = self.layers[0].keys if self.layers else None
        return None if keys is None else keys.shape[0]


def check_kv_cache(kv_cache, ids: np.ndarray, config, array_type, dtype) -> int:
    """The number of cached tokens (0 without a cache), after checking that `kv_cache` fits: a
    KVCache with one entry per layer, filled (if at all) by a model like this one (`array_type`
    arrays of its `dtype`, each layer's heads and head width), for the batch of `ids`, with room
    for its T_new tokens. A cache filled by another model would fail deep inside the
    concatenation of its keys with the new ones, or be read as this model's, silently."""
    if kv_cache is None:
        return 0
    if not isinstance(kv_cache, KVCache):
        raise ValueError(f"kv_cache must be a KVCache, got {type(kv_cache).__name__}")
    if len(kv_cache.layers) != config.n_layers:
        raise ValueError(
            f"kv_cache has {len(kv_cache.layers)} layers; the model has n_layers={config.n_layers}"
        )
    for i, layer in enumerate(kv_cache.layers):
        if layer.keys is None:
            continue
        check_array(f"kv_cache layer {i}'s keys", layer.keys, array_type)
        found = (layer.keys.shape[1], layer.keys.shape[3], layer.keys.dtype)  # keys (B, H, T, D)
        expected = (config.layer_heads(i), config.head_dim, dtype)
        if found != expected:
            raise ValueError(
                "kv_cache was filled by another model: layer {} holds {} heads of width {} in {}; "
                "this model's has {} heads of width {} in {}".format(i, *found, *expected)
            )
    if kv_cache.batch_size not in (None, ids.shape[0]):
        raise ValueError(
            f"kv_cache holds a batch of {kv_cache.batch_size} sequences; input_ids has "
            f"{ids.shape[0]}"
        )
    past, new = kv_cache.length, ids.shape[1]
    if past + new > config.max_len:
        raise ValueError(
            f"kv_cache holds {past} tokens and input_ids adds {new}: more than max_len="
            f"{config.max_len} positions (generate() stops caching there and crops the context)"
        )
    return past


class Seq2SeqCache:
    """What an encoder-decoder keeps while it decodes one batch of sources a token at a time.

    `self_attention` is a KVCache of the target tokens read so far, as a decoder-only model keeps
    (it grows by one token per step). `cross_attention[i]` holds layer i's keys and values of the
    *encoder output* (B, H, T_source, D): they depend on the source alone, so they are computed at
    the first step and only read after it, never recomputed for each new target token. `memory`
    is the encoder output they were computed from (None before the first step): every later step
    must read the same one (`check_seq2seq_cache`).
    """

    def __init__(self, n_layers: int):
        self.self_attention = KVCache(n_layers)
        self.cross_attention = [LayerKVCache() for _ in range(n_layers)]
        self.memory = None

    @property
    def length(self) -> int:
        """How many target tokens are cached (the position the next one gets)."""
        return self.self_attention.length

    def select(self, rows) -> None:
        """Keep the cached rows `rows` (B',) of the batch, in that order, repeats allowed: what
        beam search does when it keeps the best continuations of each hypothesis (and of the
        memory, which it selects alike). `rows` are ints in [0, B); an empty cache has none."""
        batch = self.self_attention.batch_size
        if batch is None:
            return
        rows = np.asarray(rows)
        if (rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer)
                or rows.min() < 0 or rows.max() >= batch):
            raise ValueError(f"rows must be a non-empty 1-D array of ints in [0, {batch}) (rows of "
                             f"the cached batch), got {rows.dtype} {rows.tolist()}")
        for layer in self.self_attention.layers + self.cross_attention:
            if layer.keys is not None:
                layer.keys, layer.values = layer.keys[rows], layer.values[rows]
        self.memory = self.memory[rows]


def check_seq2seq_cache(cache, ids: np.ndarray, memory, config, array_type, dtype) -> int:
    """`check_kv_cache` for an encoder-decoder's `cache` (a Seq2SeqCache, the messages naming
    `cache` and `target_ids`), which also holds the cross-attention keys and values of the memory
    read at the first step: the first step records that memory, and every later one must pass the
    same (the same array, or equal values: beam search selects rows of both), else it would
    attend another source through stale keys, silently. Returns the number of cached tokens."""
    if cache is None:
        return 0
    if not isinstance(cache, Seq2SeqCache):
        raise ValueError(f"cache must be a Seq2SeqCache (model.new_cache()), got "
                         f"{type(cache).__name__}")
    try:
        past = check_kv_cache(cache.self_attention, ids, config, array_type, dtype)
    except ValueError as error:
        message = str(error).replace("kv_cache", "cache").replace("input_ids", "target_ids")
        raise ValueError(message) from None
    if cache.memory is None:
        cache.memory = memory
    elif memory is not cache.memory and not (
            memory.shape == cache.memory.shape and bool((memory == cache.memory).all())):
        raise ValueError("cache was filled reading another memory (another source): its "
                         "cross-attention keys and values are that source's; start a new cache "
                         "(model.new_cache()) for each source")
    return past
