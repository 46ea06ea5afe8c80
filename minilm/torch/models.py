"""BERT (`Encoder`) and GPT-2 (`Decoder`) in PyTorch: the twins of `minilm/numpy/models.py`.

Same parameter names and shapes (state_dict() keys == the NumPy model's `params` keys), same
arithmetic, so the same weights give the same logits and gradients; autograd replaces the
hand-written backward passes, and attention can run through our Triton kernel.

    Encoder:  x = LN(word[ids] + pos[t] + type[segment]);  x = post-LN blocks(x, padding mask)
              logits = LN(gelu(dense(x))) @ word^T + bias            (the MLM head, tied weights)
    Decoder:  x = wte[ids] + wpe[t];  x = pre-LN causal blocks(x);  logits = LN_f(x) @ wte^T

Tied heads reuse the embedding matrix in `nn.functional.linear`, so there is no `lm_head.weight` or
`cls.predictions.decoder.weight` key. Weights move between the twins by name:

    twin.load_state_dict(params_to_state_dict(numpy_model.params))
    numpy_model.load_params(state_dict_to_params(twin.state_dict()))
    twin = Encoder.from_numpy(numpy_model, attention="math")      # same config, dtype and weights

Dropout masks come from torch's global generator (`torch.manual_seed`); `seed` sets the init.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from minilm.common.backends import to_numpy
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
from minilm.common.names import BERT_BLOCK_NAMES, GPT2_BLOCK_NAMES, gelu_approximate
from minilm.config import ModelConfig, check_config
from minilm.torch import functional as TF
from minilm.torch.layers import (
    CrossAttention,
    Embedding,
    LayerNorm,
    Linear,
    Module,
    MultiHeadAttention,
    SinusoidalPositions,
    TransformerBlock,
    register,
)


def params_to_state_dict(params: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """NumPy params -> tensors (sharing memory; `load_state_dict` copies them into the model)."""
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in params.items()}


def state_dict_to_params(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors (any device) -> NumPy arrays (copies, so later training does not change them);
    float16 and bfloat16 become float32 (`to_numpy`: NumPy has no bfloat16)."""
    return {name: to_numpy(value).copy() for name, value in state_dict.items()}


def seeded_generator(seed) -> torch.Generator:
    """The generator of a model's initial weights: `seed` an int >= 0, as NumPy's twin requires
    (torch alone would take -1, and refuse 1.5 with a message that names no argument)."""
    return torch.Generator().manual_seed(int_at_least("seed", seed, 0))


def _torch_dtype(dtype) -> torch.dtype:
    """torch.float32 / torch.float64, or the NumPy spelling np.float32 / np.float64 (read by
    `common.checks.floating_dtype`, the NumPy twin's rule too, which refuses None: NumPy would
    read it as float64)."""
    if not isinstance(dtype, torch.dtype):
        try:
            dtype = torch.from_numpy(np.empty(0, dtype=floating_dtype(dtype))).dtype
        except (TypeError, ValueError):
            raise ValueError(f"dtype must be a floating torch or NumPy dtype, got {dtype!r}") from None
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    return dtype


class _Model(Module):
    """What both models share: config, attention backend, positions, embedding dropout.

    The model is its own parameter store: layers register their weights in it under their
    checkpoint names (see `minilm/torch/layers.py`).
    """

    def __init__(self, config, attention, dtype, generator, position_name):
        super().__init__()
        self.config = check_config(config)
        self._attention = TF.check_attention(attention, config.head_dim, dtype)
        c = config.d_model
        if config.positions == "learned":
            self.positions = Embedding(self, position_name, config.max_len, c, generator)
        else:
            self.positions = SinusoidalPositions(config.max_len, c)
        self.embedding_dropout = nn.Dropout(config.dropout)

    def _blocks(self, prefix, names, generator, norm_first):
        return nn.ModuleList(
            TransformerBlock(self, f"{prefix}{i}.", names, self.config, generator, norm_first,
                             self._attention, n_heads=self.config.layer_heads(i))
            for i in range(self.config.n_layers)
        )

    @property
    def attention(self) -> str:
        """The attention backend: "triton" | "sdpa" | "math". Assign to switch every layer
        (None re-applies the default rule of `functional.check_attention`)."""
        return self._attention

    @attention.setter
    def attention(self, name) -> None:
        self._attention = TF.check_attention(name, self.config.head_dim, self.word.weight.dtype)
        for module in self.modules():
            if isinstance(module, (MultiHeadAttention, CrossAttention)):  # CrossAttention: Seq2Seq
                module.attention = self._attention

    @classmethod
    def shaped_like(cls, numpy_model, attention=None):
        """A twin with the NumPy model's config, dtype and heads (mlm_head, pooler), weights not
        copied: the first half of `from_numpy`, and what a task head's twin builds on."""
        dtype = next(iter(numpy_model.params.values())).dtype
        flags = {}
        if hasattr(numpy_model, "mlm_head"):  # an Encoder: build the same heads
            flags = dict(mlm_head=numpy_model.mlm_head, pooler=numpy_model.pooler is not None)
        return cls(numpy_model.config, attention=attention, dtype=dtype, **flags)

    @classmethod
    def from_numpy(cls, numpy_model, attention=None):
        """The twin of a NumPy model: same config, dtype and weights."""
        twin = cls.shaped_like(numpy_model, attention)
        twin.load_state_dict(params_to_state_dict(numpy_model.params))
        return twin

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _device(self) -> torch.device:
        return self.word.weight.device

    def _tensor(self, values, host: np.ndarray) -> torch.Tensor:
        """Checked values as a tensor on the model's device (a tensor is moved, not re-copied)."""
        if isinstance(values, torch.Tensor):
            return values.to(self._device())
        return torch.as_tensor(host, device=self._device())

    def _input_ids(self, input_ids) -> tuple[torch.Tensor, np.ndarray]:
        """(B, T) ids checked by `common.checks.check_input_ids` (the NumPy twin's check: same
        rules, same errors), as a tensor on the model's device and as the host array checked."""
        host = check_input_ids(to_numpy(input_ids), self.config)
        return self._tensor(input_ids, host).long(), host

    def _key_mask(self, attention_mask, host_ids) -> torch.Tensor:
        """attention_mask (B, T) of 0/1 or bools, checked by `common.checks.check_attention_mask`
        as in the NumPy twin, as the kernel's key_mask: a bool tensor on the model's device, True =
        a real token."""
        host = check_attention_mask(to_numpy(attention_mask), host_ids)
        return self._tensor(attention_mask, host).bool()


class Encoder(_Model):
    """BERT: bidirectional post-LN encoder with a masked-language-model head.

    forward(input_ids, attention_mask=None, token_type_ids=None) -> logits (B, T, V)
    encode(...) -> last hidden states (B, T, C)
    attention_mask (B, T): 1 for real tokens, 0 for padding (padding is never attended).
    attention: "triton" | "sdpa" | "math" | None (= "triton" where the kernel can run this model,
    else "sdpa"; see `functional.check_attention`). With "triton", training with dropout > 0 runs
    attention through "sdpa" (the kernel has no dropout; see `functional.backend_for_call`).
    `mlm_head=False` builds the bare encoder (no `cls.*` weights; `forward` raises, `encode` works)
    and `pooler=True` adds BERT's pooler (`bert.pooler.dense`, `pool(hidden)`), as in the NumPy twin.
    """

    def __init__(self, config: ModelConfig, attention=None, seed: int = 0, dtype=torch.float32,
                 mlm_head: bool = True, pooler: bool = False):
        check_flag("mlm_head", mlm_head)
        check_flag("pooler", pooler)
        dtype, generator = _torch_dtype(dtype), seeded_generator(seed)
        super().__init__(config, attention, dtype, generator, "bert.embeddings.position_embeddings")
        c, eps = config.d_model, config.layer_norm_eps
        self.word = Embedding(self, "bert.embeddings.word_embeddings", config.vocab_size, c, generator)
        self.token_type = Embedding(
            self, "bert.embeddings.token_type_embeddings", config.type_vocab_size, c, generator
        )
        self.embedding_norm = LayerNorm(self, "bert.embeddings.LayerNorm", c, eps)
        self.blocks = self._blocks("bert.encoder.layer.", BERT_BLOCK_NAMES, generator, norm_first=False)
        self.mlm_head = mlm_head
        if mlm_head:
            self.head_dense = Linear(self, "cls.predictions.transform.dense", c, c, generator)
            self.head_approximate = gelu_approximate(config.activation)
            self.head_norm = LayerNorm(self, "cls.predictions.transform.LayerNorm", c, eps)
            register(self, "cls.predictions.bias", nn.Parameter(torch.zeros(config.vocab_size)))
        self.pooler = Linear(self, "bert.pooler.dense", c, c, generator) if pooler else None
        self.to(dtype)

    def _token_types(self, token_type_ids, ids, host_ids):
        """(B, T) segment ids in [0, type_vocab_size); zeros when not given."""
        if token_type_ids is None:
            return torch.zeros_like(ids)
        host = check_token_type_ids(to_numpy(token_type_ids), host_ids, self.config)
        return self._tensor(token_type_ids, host).long()

    def encode(self, input_ids, attention_mask=None, token_type_ids=None):
        """Last hidden states (B, T, C)."""
        ids, host_ids = self._input_ids(input_ids)  # (B, T)
        positions = torch.arange(ids.shape[1], device=ids.device)  # (T,)
        x = (
            self.word(ids)
            + self.positions(positions)[None]
            + self.token_type(self._token_types(token_type_ids, ids, host_ids))
        )  # (B, T, C)
        x = self.embedding_dropout(self.embedding_norm(x))
        key_mask = None  # (B, T) bool, True = real token: the kernel's key_mask
        if attention_mask is not None:
            key_mask = self._key_mask(attention_mask, host_ids)
        for block in self.blocks:
            x = block(x, key_mask=key_mask)
        return x

    def pool(self, hidden):
        """BERT's pooler on the first ([CLS]) position: tanh(W h_[CLS] + b), (B, T, C) -> (B, C)."""
        if self.pooler is None:
            raise ValueError("this Encoder was built with pooler=False")
        check_hidden_states(hidden, self.config, torch.Tensor)
        return torch.tanh(self.pooler(hidden[:, 0]))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if not self.mlm_head:
            raise ValueError(
                "this Encoder was built with mlm_head=False: use encode() for hidden states"
            )
        hidden = self.encode(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        h = nn.functional.gelu(self.head_dense(hidden), approximate=self.head_approximate)
        h = self.head_norm(h)
        bias = self.get_parameter("cls.predictions.bias")  # (V,)
        return nn.functional.linear(h, self.word.weight, bias)  # (B, T, C) @ (C, V) -> (B, T, V)


class Decoder(_Model):
    """GPT-2: causal pre-LN decoder with a final LayerNorm and an LM head tied to `wte`.

    forward(input_ids) -> logits (B, T, V); position t only sees tokens 0..t.
    forward(new_ids, kv_cache) -> logits (B, T_new, V) of the tokens after the cached ones,
    appending their keys and values to the `KVCache` (as the NumPy twin; the cache holds tensors).
    A cached forward is for inference: it runs without autograd (torch.no_grad), so calling
    backward on its logits raises torch's "does not require grad" error.
    attention: as for `Encoder`.
    """

    def __init__(self, config: ModelConfig, attention=None, seed: int = 0, dtype=torch.float32):
        dtype, generator = _torch_dtype(dtype), seeded_generator(seed)
        super().__init__(config, attention, dtype, generator, "transformer.wpe")
        c = config.d_model
        self.word = Embedding(self, "transformer.wte", config.vocab_size, c, generator)
        self.blocks = self._blocks("transformer.h.", GPT2_BLOCK_NAMES, generator, norm_first=True)
        self.final_norm = LayerNorm(self, "transformer.ln_f", c, config.layer_norm_eps)
        self.to(dtype)

    def new_kv_cache(self) -> KVCache:
        """An empty cache for `forward(ids, kv_cache)`, one entry per layer."""
        return KVCache(self.config.n_layers)

    def forward(self, input_ids, kv_cache=None):
        ids, host_ids = self._input_ids(input_ids)  # (B, T): all tokens, or the new ones
        past = check_kv_cache(kv_cache, host_ids, self.config, torch.Tensor,
                              self.word.weight.dtype)  # T_past, 0 without a cache
        # A cached forward builds no autograd graph, so the cache never holds one either.
        with torch.set_grad_enabled(torch.is_grad_enabled() and kv_cache is None):
            positions = torch.arange(past, past + ids.shape[1], device=ids.device)  # (T,)
            x = self.word(ids) + self.positions(positions)[None]  # (B, T, C)
            x = self.embedding_dropout(x)
            layer_caches = kv_cache.layers if kv_cache is not None else [None] * len(self.blocks)
            for block, layer_cache in zip(self.blocks, layer_caches):
                x = block(x, causal=True, kv_cache=layer_cache)  # bottom-right causal
            return nn.functional.linear(self.final_norm(x), self.word.weight)  # (B, T, V)
