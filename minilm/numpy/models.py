"""BERT (`Encoder`) and GPT-2 (`Decoder`) in NumPy, with hand-written backward passes.

Parameter names, shapes and the arithmetic are Hugging Face's `BertForMaskedLM` and
`GPT2LMHeadModel`, so given the same weights the logits are the same (the tests prove it).

    Encoder:  x = LN(word[ids] + pos[t] + type[segment]);  x = post-LN blocks(x, padding mask)
              logits = LN(gelu(dense(x))) @ word^T + bias            (the MLM head, tied weights)
    Decoder:  x = wte[ids] + wpe[t];  x = pre-LN causal blocks(x);  logits = LN_f(x) @ wte^T

The Decoder can also read a sequence a few tokens at a time, keeping the keys and values of the
tokens it has read in a `KVCache` (see `minilm/common/kv_cache.py`): that is how it generates.
"""

from __future__ import annotations

import numpy as np

from minilm.common.checks import (
    check_attention_mask,
    check_flag,
    check_hidden_states,
    check_input_ids,
    check_token_type_ids,
    floating_dtype,
    int_at_least,
)
from minilm.common.kv_cache import KVCache, check_kv_cache
from minilm.common.names import BERT_BLOCK_NAMES, GPT2_BLOCK_NAMES, IGNORE_INDEX
from minilm.config import ModelConfig, check_config
from minilm.numpy import functional as F
from minilm.numpy.layers import (
    Dropout,
    Embedding,
    Gelu,
    LayerNorm,
    Linear,
    Module,
    ParameterStore,
    SinusoidalPositions,
    TransformerBlock,
)


def seeded_rng(seed) -> np.random.Generator:
    """The generator of a model's initial weights (then its dropout masks): `seed` an int >= 0,
    as the twin's `seeded_generator` requires too (NumPy alone says "expected non-negative
    integer", naming no argument)."""
    return np.random.default_rng(int_at_least("seed", seed, 0))


class _Model(Module):
    """What both models share: the parameter store, the generator for dropout, the positions."""

    def __init__(self, config: ModelConfig, seed: int, dtype, position_name: str):
        self.config = check_config(config)
        self.store = ParameterStore(floating_dtype(dtype))
        self.rng = seeded_rng(seed)  # initialisation, then dropout masks
        if config.positions == "learned":
            self.positions = Embedding(self.store, position_name, config.max_len, config.d_model, self.rng)
        else:
            self.positions = SinusoidalPositions(config.max_len, config.d_model, self.store.dtype)
        self.embedding_dropout = Dropout(config.dropout, self.rng)
        self._head_cache = None  # the output layer's input, kept by the last forward

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.store.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.store.grads

    @property
    def reached(self) -> set[str]:
        """The parameters the last backward gave a gradient (`ParameterStore.reached`)."""
        return self.store.reached

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy weights in by name; every key must exist with the same shape, and none be missing."""
        missing = sorted(set(self.params) - set(params))
        unexpected = sorted(set(params) - set(self.params))
        if missing or unexpected:
            raise ValueError(f"load_params: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, value in params.items():
            if np.shape(value) != self.params[name].shape:
                raise ValueError(
                    f"load_params: {name} has shape {np.shape(value)}, expected {self.params[name].shape}"
                )
            self.params[name][...] = value

    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def tied_logits(self, h):
        """logits = h W^T with W the word embeddings (B, T, C) -> (B, T, V): a linear layer
        without bias whose weight is the embedding matrix."""
        logits, self._head_cache = F.linear_forward(h, self.word.weight)
        return logits

    def tied_logits_backward(self, dlogits):
        """dW += dlogits^T h (summed over positions), into the embeddings' own gradient; returns
        dh = dlogits W. dlogits must be the gradient of the last forward's logits, of their shape
        (`linear_backward` checks it)."""
        if self._head_cache is None:
            raise ValueError(f"{type(self).__name__}.backward needs a forward first: call "
                             "forward(...), then backward(dlogits) with the gradient of its logits")
        dh, dweight, _ = F.linear_backward(dlogits, self._head_cache)
        self.store.accumulate(self.word.key, dweight)
        return dh


class Encoder(_Model):
    """BERT: bidirectional post-LN encoder with a masked-language-model head.

    forward(input_ids, attention_mask=None, token_type_ids=None) -> logits (B, T, V)
    encode(...) -> last hidden states (B, T, C)
    attention_mask (B, T): 1 for real tokens, 0 for padding (padding is never attended).
    `mlm_head=False` builds the bare encoder (Hugging Face's `BertModel`, e.g. MiniLM-L6, which
    ships without MLM-head weights): `encode` works, `forward` does not.
    `pooler=True` adds BERT's pooler, pooled = tanh(W h_[CLS] + b) (`bert.pooler.dense`), the
    input of BERT's sequence-classification head: `pool(hidden)` / `pool_backward(dpooled)`.
    """

    def __init__(self, config: ModelConfig, seed: int = 0, dtype=np.float32, mlm_head: bool = True,
                 pooler: bool = False):
        check_flag("mlm_head", mlm_head)
        check_flag("pooler", pooler)
        super().__init__(config, seed, dtype, "bert.embeddings.position_embeddings")
        c, store, rng = config.d_model, self.store, self.rng
        self.word = Embedding(store, "bert.embeddings.word_embeddings", config.vocab_size, c, rng)
        self.token_type = Embedding(
            store, "bert.embeddings.token_type_embeddings", config.type_vocab_size, c, rng
        )
        self.embedding_norm = LayerNorm(store, "bert.embeddings.LayerNorm", c, config.layer_norm_eps)
        self.blocks = [
            TransformerBlock(store, f"bert.encoder.layer.{i}.", BERT_BLOCK_NAMES, config, rng,
                             norm_first=False, n_heads=config.layer_heads(i))
            for i in range(config.n_layers)
        ]
        self.mlm_head = mlm_head
        if mlm_head:
            self.head_dense = Linear(store, "cls.predictions.transform.dense", c, c, rng)
            self.head_act = Gelu(config.activation)
            self.head_norm = LayerNorm(store, "cls.predictions.transform.LayerNorm", c, config.layer_norm_eps)
            store.add("cls.predictions.bias", np.zeros(config.vocab_size))
        self.pooler = Linear(store, "bert.pooler.dense", c, c, rng) if pooler else None

    def encode(self, input_ids, attention_mask=None, token_type_ids=None):
        """Last hidden states (B, T, C)."""
        ids = check_input_ids(input_ids, self.config)
        time = ids.shape[1]
        segments = check_token_type_ids(token_type_ids, ids, self.config)
        x = (
            self.word.forward(ids)
            + self.positions.forward(np.arange(time))[None]
            + self.token_type.forward(segments)
        )  # (B, T, C)
        x = self.embedding_dropout.forward(self.embedding_norm.forward(x))
        keys = None
        if attention_mask is not None:
            keys = check_attention_mask(attention_mask, ids)[:, None, None, :]
        for block in self.blocks:  # keys (B, 1, 1, T) broadcasts over heads and queries
            x = block.forward(x, attn_mask=keys)
        return x

    def encode_backward(self, dhidden):
        """Gradient of the hidden states -> parameter gradients of the encoder (accumulated)."""
        for block in reversed(self.blocks):
            dhidden = block.backward(dhidden)
        dx = self.embedding_norm.backward(self.embedding_dropout.backward(dhidden))
        self.word.backward(dx)
        self.positions.backward(dx.sum(axis=0))
        self.token_type.backward(dx)

    def _require_mlm_head(self):
        if not self.mlm_head:
            raise ValueError("this Encoder was built with mlm_head=False: use encode() for hidden states")

    def pool(self, hidden):
        """BERT's pooler on the first ([CLS]) position: (B, T, C) -> (B, C)."""
        if self.pooler is None:
            raise ValueError("this Encoder was built with pooler=False")
        check_hidden_states(hidden, self.config, np.ndarray)
        self._pooled = np.tanh(self.pooler.forward(hidden[:, 0]))
        self._hidden_shape = hidden.shape
        return self._pooled

    def pool_backward(self, dpooled):
        """d tanh(u) / du = 1 - tanh(u)^2; the gradient reaches only the [CLS] position."""
        dfirst = self.pooler.backward(dpooled * (1.0 - self._pooled * self._pooled))  # (B, C)
        dhidden = np.zeros(self._hidden_shape, dtype=dfirst.dtype)
        dhidden[:, 0] = dfirst
        return dhidden

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        self._require_mlm_head()
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        h = self.head_norm.forward(self.head_act.forward(self.head_dense.forward(hidden)))
        return self.tied_logits(h) + self.params["cls.predictions.bias"]  # (B, T, V)

    def backward(self, dlogits):
        """Fills `grads` with d loss / d params for the last forward (previous grads are cleared)."""
        self._require_mlm_head()
        self.store.zero_grad()
        dh = self.tied_logits_backward(dlogits)  # (checks dlogits)
        self.store.accumulate("cls.predictions.bias", dlogits.sum(axis=(0, 1)))
        dhidden = self.head_dense.backward(self.head_act.backward(self.head_norm.backward(dh)))
        self.encode_backward(dhidden)


class Decoder(_Model):
    """GPT-2: causal pre-LN decoder with a final LayerNorm and an LM head tied to `wte`.

    forward(input_ids) -> logits (B, T, V); position t only sees tokens 0..t.
    forward(new_ids, kv_cache) -> logits (B, T_new, V) of the tokens that follow the kv_cache.length
    cached ones (positions T_past .. T_past + T_new - 1), appending their keys and values to the
    cache: the same logits as the last T_new rows of forward(all ids), without recomputing the past.
    A cached forward is for inference: `backward` after it raises ValueError.
    """

    def __init__(self, config: ModelConfig, seed: int = 0, dtype=np.float32):
        super().__init__(config, seed, dtype, "transformer.wpe")
        c, store, rng = config.d_model, self.store, self.rng
        self.word = Embedding(store, "transformer.wte", config.vocab_size, c, rng)
        self.blocks = [
            TransformerBlock(store, f"transformer.h.{i}.", GPT2_BLOCK_NAMES, config, rng,
                             norm_first=True, n_heads=config.layer_heads(i))
            for i in range(config.n_layers)
        ]
        self.final_norm = LayerNorm(store, "transformer.ln_f", c, config.layer_norm_eps)
        self._used_kv_cache = False

    def new_kv_cache(self) -> KVCache:
        """An empty cache for `forward(ids, kv_cache)`, one entry per layer."""
        return KVCache(self.config.n_layers)

    def forward(self, input_ids, kv_cache=None):
        ids = check_input_ids(input_ids, self.config)  # (B, T): all tokens, or the new ones
        past = check_kv_cache(kv_cache, ids, self.config, np.ndarray,
                              self.store.dtype)  # T_past, 0 without a cache
        self._used_kv_cache = kv_cache is not None
        positions = np.arange(past, past + ids.shape[1])  # (T,) continuing after the cached tokens
        x = self.word.forward(ids) + self.positions.forward(positions)[None]  # (B, T, C)
        x = self.embedding_dropout.forward(x)
        layer_caches = kv_cache.layers if kv_cache is not None else [None] * len(self.blocks)
        for block, layer_cache in zip(self.blocks, layer_caches):
            x = block.forward(x, causal=True, kv_cache=layer_cache)  # bottom-right causal
        return self.tied_logits(self.final_norm.forward(x))  # (B, T, V)

    def backward(self, dlogits):
        """Fills `grads` with d loss / d params for the last forward (previous grads are cleared)."""
        if self._used_kv_cache:
            raise ValueError(
                "backward after a forward with kv_cache is not supported: the cached keys and "
                "values carry no record of how they were computed (cached forwards are for "
                "inference)"
            )
        self.store.zero_grad()
        dx = self.final_norm.backward(self.tied_logits_backward(dlogits))
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx = self.embedding_dropout.backward(dx)
        self.word.backward(dx)
        self.positions.backward(dx.sum(axis=0))


def loss_and_backward(model, logits, targets, ignore_index=IGNORE_INDEX):
    """Cross-entropy of `logits` against `targets`, then the model's backward; returns the loss."""
    loss, cache = F.cross_entropy_forward(logits, targets, ignore_index)
    model.backward(F.cross_entropy_backward(cache))
    return float(loss)
