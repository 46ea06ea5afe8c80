"""The layers of `minilm/numpy/layers.py`, class for class, as torch modules.

The math is the NumPy twin's (read it there, next to its hand-written backward); here autograd
differentiates. What is particular to this file is how the weights get their checkpoint names.

Names. `state_dict()` keys must be the Hugging Face checkpoint's, exactly as the NumPy model's
`params` are ("bert.encoder.layer.0.attention.self.query.weight"). In BERT those names do not follow
the computation (the attention's LayerNorm sits under "attention.output", the feed-forward is split
between "intermediate" and "output"), so a module tree shaped like the computation cannot produce
them. The NumPy layers solve this with a `ParameterStore` keyed by name; here the model itself is the
store: every layer with weights is registered in the model under its dotted checkpoint name by
`register` (which creates empty container modules along the way), and the layers that compute with
it (`MultiHeadAttention`, `FeedForward`, `TransformerBlock`) only *refer* to it. `Module` below makes
that reference an ordinary attribute, so `self.out = Linear(store, ...)` reads as usual yet the weight
appears once, under its checkpoint name, in `state_dict()`, `named_parameters()` and `parameters()`.

Shapes: B batch, T time, H heads, D head width, C channels (d_model).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minilm.common.names import gelu_approximate
from minilm.torch import functional as TF


def register(store: nn.Module, name: str, value: nn.Module | nn.Parameter):
    """Register a layer (or a bare parameter) in `store` under a dotted checkpoint name.

    "bert.encoder.layer.0.output.dense" becomes store.bert.encoder.layer[0].output.dense: each
    missing step is an empty nn.Module, so state_dict() prefixes are exactly the dotted name.
    """
    *path, leaf = name.split(".")
    parent = store
    for part in path:
        if part not in parent._modules:
            parent.add_module(part, nn.Module())
        parent = parent._modules[part]
    if leaf in parent._modules or leaf in parent._parameters:
        raise ValueError(f"parameter {name!r} is defined twice")
    if isinstance(value, nn.Parameter):
        parent.register_parameter(leaf, value)
    else:
        parent.add_module(leaf, value)
        value.checkpoint_name = name
    return value


class Module(nn.Module):
    """nn.Module that refers to layers registered elsewhere instead of registering them again.

    Assigning a layer that `register` already placed in the store (it carries `checkpoint_name`)
    stores a plain reference; anything else (Dropout, sub-blocks, buffers) registers as usual.
    `train()`, `eval()` and `.to()` reach every weight once, through its checkpoint path.
    """

    def __setattr__(self, name, value):
        if isinstance(value, nn.Module) and "checkpoint_name" in vars(value):
            object.__setattr__(self, name, value)  # a reference, not a sub-module
        else:
            super().__setattr__(name, value)


class Linear(nn.Linear):
    """torch.nn.Linear (W stored (out_features, in_features)), weight ~ N(0, std^2), bias 0."""

    def __init__(self, store, name, in_features, out_features, generator, std=0.02, bias=True):
        super().__init__(in_features, out_features, bias=bias)
        with torch.no_grad():
            nn.init.normal_(self.weight, 0.0, std, generator=generator)
            if bias:
                self.bias.zero_()
        register(store, name, self)


class Embedding(nn.Embedding):
    """torch.nn.Embedding: y = W[ids], W (num_embeddings, dim) ~ N(0, std^2)."""

    def __init__(self, store, name, num_embeddings, dim, generator, std=0.02):
        super().__init__(num_embeddings, dim)
        with torch.no_grad():
            nn.init.normal_(self.weight, 0.0, std, generator=generator)
        register(store, name, self)


class LayerNorm(nn.LayerNorm):
    """torch.nn.LayerNorm over the last axis (biased variance, eps inside the sqrt), w = 1, b = 0."""

    def __init__(self, store, name, dim, eps):
        super().__init__(dim, eps=eps)
        register(store, name, self)


class SinusoidalPositions(nn.Module):
    """Fixed positions of "Attention Is All You Need" (seed §3.2), see the NumPy twin:
    PE[t, 2i] = sin(t / 10000^(2i/C)),  PE[t, 2i+1] = cos(t / 10000^(2i/C)).

    The table is a non-persistent buffer: it follows `.to(device, dtype)` but is not in
    state_dict(), since it is not learned (the NumPy model has no parameter for it either).
    """

    def __init__(self, max_len, dim):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
        frequency = torch.exp(
            -math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim
        )  # (ceil(C/2),)
        table = torch.zeros(max_len, dim, dtype=torch.float64)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
        self.register_buffer("table", table, persistent=False)  # (T, C), cast with the model

    def forward(self, position_ids):
        return self.table[position_ids]


def split_heads(x, n_heads):
    """(B, T, C) -> (B, H, T, C/H)."""
    batch, time, channels = x.shape
    return x.reshape(batch, time, n_heads, channels // n_heads).transpose(1, 2)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, H*D)."""
    batch, heads, time, dim = x.shape
    return x.transpose(1, 2).reshape(batch, time, heads * dim)


class MultiHeadAttention(Module):
    """softmax(Q K^T / sqrt(D) + mask) V on H heads, then an output projection.

    `qkv_names` is one name (GPT-2's fused `c_attn`, weight (3C, C)) or three (BERT's query, key,
    value, each (C, C)); either way the projections produce [Q | K | V] along the last axis.

    `attention` picks the backend ("triton" | "sdpa" | "math", see `functional.py`). The Triton
    kernel has no dropout: while training with attention dropout > 0 a "triton" layer runs
    through "sdpa" for that call (with a warning); `last_backend` records what ran last.

    With a `LayerKVCache` (minilm.common.kv_cache, holding tensors here), x holds only the new tokens,
    as in the NumPy twin: every backend takes Nq = T_new < Nk = T_past + T_new with the causal mask
    aligned bottom-right (SDPA's own `is_causal` is top-left, so `functional.sdpa_attention` passes
    an explicit mask then; the Triton kernel aligns bottom-right itself).

    `n_heads` (fewer once heads are pruned) and `head_gate` (a tensor (H,) or (B, H) multiplying
    each head's output; autograd gives its gradient) as in the NumPy twin.
    """

    def __init__(self, store, qkv_names, out_name, config, generator, out_std, attention,
                 n_heads=None):
        super().__init__()
        c = config.d_model
        self.n_heads = config.n_heads if n_heads is None else n_heads
        inner = self.n_heads * config.head_dim  # C, less once heads are pruned
        names = [qkv_names] if isinstance(qkv_names, str) else list(qkv_names)
        width = 3 * inner // len(names)
        self.projections = tuple(Linear(store, name, c, width, generator) for name in names)
        self.out = Linear(store, out_name, inner, c, generator, std=out_std)
        self.head_gate = None  # (H,) or (B, H), or None: no gate
        self.attention_dropout = config.dropout
        self.attention = attention  # already checked by the model (functional.check_attention)
        self.last_backend = None

    def forward(self, x, key_mask=None, causal=False, kv_cache=None):
        """x (B, T, C); key_mask (B, T) bool, True = real token; returns (B, T, C)."""
        outputs = [proj(x) for proj in self.projections]  # Q, K, V or one [Q | K | V]
        parts = outputs if len(outputs) == 3 else outputs[0].chunk(3, dim=-1)  # views, no copy
        q, k, v = (split_heads(part, self.n_heads) for part in parts)  # 3 x (B, H, T, D)
        if kv_cache is not None:  # x holds only the new tokens: prepend the cached keys and values
            if kv_cache.keys is not None:
                k = torch.cat([kv_cache.keys, k], dim=2)  # (B, H, T_past + T, D)
                v = torch.cat([kv_cache.values, v], dim=2)  # (B, H, T_past + T, D)
            kv_cache.keys, kv_cache.values = k, v
        dropout_p = self.attention_dropout if self.training else 0.0
        self.last_backend = TF.backend_for_call(self.attention, dropout_p)
        heads = TF.attention(
            q, k, v, key_mask=key_mask, causal=causal, dropout_p=dropout_p, backend=self.last_backend
        )  # (B, H, T, D): one output per query
        if self.head_gate is not None:
            heads = heads * self.head_gate[..., None, None]  # F.head_gate_forward of the NumPy twin
        return self.out(merge_heads(heads))  # (B, T, C)


class CrossAttention(Module):
    """Queries from the decoder's x (B, Tq, C), keys and values from the encoder's output `memory`
    (B, Tk, C), as in the NumPy twin (read the math there). `memory_key_mask` (B, Tk) bool, True = a
    real source token, is the kernel's key_mask; no causal mask. With a `LayerKVCache`, K and V
    are computed from the memory at the first call and read from the cache after it."""

    def __init__(self, store, names, out_name, config, generator, attention, out_std=0.02):
        super().__init__()
        c = config.d_model
        self.query, self.key, self.value = (Linear(store, name, c, c, generator) for name in names)
        self.out = Linear(store, out_name, c, c, generator, std=out_std)
        self.n_heads = config.n_heads
        self.attention_dropout = config.dropout
        self.attention = attention  # already checked by the model (functional.check_attention)
        self.last_backend = None

    def forward(self, x, memory, memory_key_mask=None, kv_cache=None):
        q = split_heads(self.query(x), self.n_heads)  # (B, H, Tq, D)
        if kv_cache is not None and kv_cache.keys is not None:
            k, v = kv_cache.keys, kv_cache.values  # computed from the memory at the first step
        else:
            k = split_heads(self.key(memory), self.n_heads)  # (B, H, Tk, D)
            v = split_heads(self.value(memory), self.n_heads)  # (B, H, Tk, D)
            if kv_cache is not None:
                kv_cache.keys, kv_cache.values = k, v
        dropout_p = self.attention_dropout if self.training else 0.0
        self.last_backend = TF.backend_for_call(self.attention, dropout_p)
        heads = TF.attention(q, k, v, key_mask=memory_key_mask, dropout_p=dropout_p,
                             backend=self.last_backend)  # (B, H, Tq, D)
        return self.out(merge_heads(heads))  # (B, Tq, C)


class FeedForward(Module):
    """Linear(C -> d_ff), GELU, Linear(d_ff -> C), applied to each position independently."""

    def __init__(self, store, in_name, out_name, config, generator, out_std):
        super().__init__()
        self.fc_in = Linear(store, in_name, config.d_model, config.d_ff, generator)
        self.approximate = gelu_approximate(config.activation)
        self.fc_out = Linear(store, out_name, config.d_ff, config.d_model, generator, std=out_std)

    def forward(self, x):
        hidden = nn.functional.gelu(self.fc_in(x), approximate=self.approximate)  # (B, T, d_ff)
        return self.fc_out(hidden)  # (B, T, C)


class TransformerBlock(Module):
    """Attention and feed-forward sub-layers, each with a residual connection and a LayerNorm.

    post-LN (BERT, the original Transformer):  h = LN(x + drop(attn(x)));  y = LN(h + drop(ff(h)))
    pre-LN  (GPT-2):                           h = x + drop(attn(LN(x)));  y = h + drop(ff(LN(h)))

    `names` is BERT_BLOCK_NAMES or GPT2_BLOCK_NAMES of `minilm.common.names` (the checkpoint names of the
    six sub-layers, relative to `prefix`).
    """

    def __init__(self, store, prefix, names, config, generator, norm_first, attention,
                 n_heads=None):
        super().__init__()
        # GPT-2 scales the init of projections into the residual stream by 1/sqrt(2 * n_layers).
        out_std = 0.02 / math.sqrt(2 * config.n_layers) if norm_first else 0.02
        qkv = names["qkv"]
        qkv = f"{prefix}{qkv}" if isinstance(qkv, str) else [f"{prefix}{n}" for n in qkv]
        eps = config.layer_norm_eps
        self.attn = MultiHeadAttention(
            store, qkv, prefix + names["attn_out"], config, generator, out_std, attention, n_heads
        )
        self.attn_norm = LayerNorm(store, prefix + names["attn_norm"], config.d_model, eps)
        self.ff = FeedForward(
            store, prefix + names["ff_in"], prefix + names["ff_out"], config, generator, out_std
        )
        self.ff_norm = LayerNorm(store, prefix + names["ff_norm"], config.d_model, eps)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.ff_dropout = nn.Dropout(config.dropout)
        self.norm_first = norm_first

    def forward(self, x, key_mask=None, causal=False, kv_cache=None):
        """x (B, T, C) -> (B, T, C); `kv_cache` (a LayerKVCache) goes to the attention."""
        if self.norm_first:
            h = x + self.attn_dropout(self.attn(self.attn_norm(x), key_mask, causal, kv_cache))
            return h + self.ff_dropout(self.ff(self.ff_norm(h)))
        h = self.attn_norm(x + self.attn_dropout(self.attn(x, key_mask, causal, kv_cache)))
        return self.ff_norm(h + self.ff_dropout(self.ff(h)))
