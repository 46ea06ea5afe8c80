"""Transformer layers built from the op pairs in `functional.py`.

Every layer keeps its parameters in a `ParameterStore` shared by the whole model, under the name the
Hugging Face checkpoint uses (`prefix + "weight"`), so loading pretrained weights is a walk over a
dict and tied weights (the LM head reusing the word embeddings) are simply the same key.

`forward(x)` remembers what its backward needs; `backward(dout)` returns the gradient with respect
to the input and *adds* parameter gradients into `store.grads` (adding is what makes tied weights
and shared inputs correct). One forward is in flight per layer at a time.
"""

from __future__ import annotations

import math

import numpy as np

from minilm.common.names import gelu_approximate
from minilm.numpy import functional as F


class ParameterStore:
    """Two dicts with the same keys: `params` (the weights) and `grads` (their gradients), and
    `reached`: the names a backward has added a gradient to since the last `zero_grad`. A parameter
    the loss does not depend on (a pooler under an MLM loss) keeps a zero gradient and stays out of
    `reached`, which is how a training step tells it from one whose gradient happens to be 0."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.reached: set[str] = set()

    def add(self, name: str, value: np.ndarray) -> None:
        if name in self.params:
            raise ValueError(f"parameter {name!r} is defined twice")
        self.params[name] = np.ascontiguousarray(value, dtype=self.dtype)
        self.grads[name] = np.zeros_like(self.params[name])

    def accumulate(self, name: str, grad: np.ndarray) -> None:
        self.grads[name] += grad
        self.reached.add(name)

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad.fill(0.0)
        self.reached.clear()


class Module:
    """Base class: a `training` flag that `train()`/`eval()` set on every sub-layer."""

    training = True

    def children(self):
        for value in vars(self).values():
            if isinstance(value, Module):
                yield value
            elif isinstance(value, (list, tuple)):
                yield from (item for item in value if isinstance(item, Module))

    def train(self, mode: bool = True):
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)


class Linear(Module):
    """y = x W^T + b, W (out_features, in_features), initialised N(0, std^2), b = 0."""

    def __init__(self, store, name, in_features, out_features, rng, std=0.02, bias=True):
        self.store, self.name, self.bias = store, name, bias
        store.add(f"{name}.weight", rng.normal(0.0, std, (out_features, in_features)))
        if bias:
            store.add(f"{name}.bias", np.zeros(out_features))

    def forward(self, x):
        p = self.store.params
        out, self.cache = F.linear_forward(
            x, p[f"{self.name}.weight"], p[f"{self.name}.bias"] if self.bias else None
        )
        return out

    def backward(self, dout):
        dx, dweight, dbias = F.linear_backward(dout, self.cache)
        self.store.accumulate(f"{self.name}.weight", dweight)
        if self.bias:
            self.store.accumulate(f"{self.name}.bias", dbias)
        return dx


class Embedding(Module):
    """y = W[ids], W (num_embeddings, dim) initialised N(0, std^2)."""

    def __init__(self, store, name, num_embeddings, dim, rng, std=0.02):
        self.store, self.key = store, f"{name}.weight"
        store.add(self.key, rng.normal(0.0, std, (num_embeddings, dim)))

    @property
    def weight(self):
        return self.store.params[self.key]

    def forward(self, ids):
        out, self.cache = F.embedding_forward(ids, self.weight)
        return out

    def backward(self, dout):
        self.store.accumulate(self.key, F.embedding_backward(dout, self.cache))


def sinusoidal_positions(max_len, dim):
    """The fixed position table of "Attention Is All You Need" (seed §3.2), (max_len, dim) float64:

        PE[t, 2i] = sin(t / 10000^(2i/C)),   PE[t, 2i+1] = cos(t / 10000^(2i/C)),   C = dim.

    Channel pair (2i, 2i+1) is a point on the unit circle turning at its own frequency
    10000^(-2i/C): one radian per position for the first pair, a full turn over 2 pi 10000^((C-2)/C)
    positions for the last (47,000 for C = 64, toward 63,000 as C grows). Moving k positions on turns every pair by a fixed angle, so PE[t + k] is the same
    linear map (a rotation) of PE[t] for every t: relative offsets are easy to read off. An odd
    `dim` ends with a sine channel whose cosine partner does not fit.
    """
    position = np.arange(max_len)[:, None]  # (T, 1)
    frequency = np.exp(-math.log(10000.0) * np.arange(0, dim, 2) / dim)  # (ceil(C/2),)
    table = np.zeros((max_len, dim))
    table[:, 0::2] = np.sin(position * frequency)  # (T, ceil(C/2))
    table[:, 1::2] = np.cos(position * frequency[: dim // 2])  # (T, floor(C/2))
    return table  # (T, C)


class SinusoidalPositions(Module):
    """Fixed positions (`sinusoidal_positions`), looked up like an embedding; no parameters."""

    def __init__(self, max_len, dim, dtype):
        self.table = sinusoidal_positions(max_len, dim).astype(dtype)  # (T, C)

    def forward(self, position_ids):
        return self.table[position_ids]

    def backward(self, dout):
        """Nothing to learn: the gradient stops here."""


class LayerNorm(Module):
    def __init__(self, store, name, dim, eps):
        self.store, self.name, self.eps = store, name, eps
        store.add(f"{name}.weight", np.ones(dim))
        store.add(f"{name}.bias", np.zeros(dim))

    def forward(self, x):
        p = self.store.params
        out, self.cache = F.layer_norm_forward(
            x, p[f"{self.name}.weight"], p[f"{self.name}.bias"], self.eps
        )
        return out

    def backward(self, dout):
        dx, dweight, dbias = F.layer_norm_backward(dout, self.cache)
        self.store.accumulate(f"{self.name}.weight", dweight)
        self.store.accumulate(f"{self.name}.bias", dbias)
        return dx


class Dropout(Module):
    """Inverted dropout with masks drawn from the model's generator; identity in eval mode."""

    def __init__(self, p, rng):
        self.p, self.rng = p, rng

    def forward(self, x):
        out, self.cache = F.dropout_forward(x, self.p, self.rng, self.training)
        return out

    def backward(self, dout):
        return F.dropout_backward(dout, self.cache)


class Gelu(Module):
    def __init__(self, activation):
        self.approximate = gelu_approximate(activation)  # config.activation -> F.gelu's argument

    def forward(self, x):
        out, self.cache = F.gelu_forward(x, self.approximate)
        return out

    def backward(self, dout):
        return F.gelu_backward(dout, self.cache)


def split_heads(x, n_heads):
    """(B, T, C) -> (B, H, T, C/H)."""
    batch, time, channels = x.shape
    return x.reshape(batch, time, n_heads, channels // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, H*D)."""
    batch, heads, time, dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, time, heads * dim)


class MultiHeadAttention(Module):
    """softmax(Q K^T / sqrt(D) + mask) V on H heads, then an output projection.

    `qkv_names` is one name (GPT-2's fused `c_attn`, weight (3C, C)) or three (BERT's query, key,
    value, each (C, C)); either way the projections produce [Q | K | V] along the last axis.

    With a `LayerKVCache` (`minilm.common.kv_cache`), x holds only the new tokens: their keys and
    values are appended to the cached ones and their queries attend past + new keys (Nq = T_new <
    Nk = T_past + T_new; causal masks are bottom-right aligned, so new token i sees the past and
    new tokens 0..i).

    `n_heads` (default config.n_heads) is fewer once heads are pruned: the projections then have
    n_heads * D rows, the output projection n_heads * D columns. `head_gate`, when set, multiplies
    each head's output (`F.head_gate_forward`); the backward leaves its gradient in
    `head_gate_grad` (how much each head matters, `minilm.interpret.head_importance`).
    """

    def __init__(self, store, qkv_names, out_name, config, rng, out_std, n_heads=None):
        c = config.d_model
        self.n_heads = config.n_heads if n_heads is None else n_heads
        inner = self.n_heads * config.head_dim  # C, less once heads are pruned
        names = [qkv_names] if isinstance(qkv_names, str) else list(qkv_names)
        width = 3 * inner // len(names)
        self.projections = [Linear(store, name, c, width, rng) for name in names]
        self.out = Linear(store, out_name, inner, c, rng, std=out_std)
        self.head_gate = None  # (H,) or (B, H), or None: no gate
        self.attention_dropout = config.dropout
        self.rng = rng

    def forward(self, x, attn_mask=None, causal=False, kv_cache=None):
        outputs = [proj.forward(x) for proj in self.projections]  # Q, K, V or one [Q | K | V]
        parts = outputs if len(outputs) == 3 else np.split(outputs[0], 3, axis=-1)  # views, no copy
        q, k, v = (split_heads(part, self.n_heads) for part in parts)  # 3 x (B, H, T, D)
        if kv_cache is not None:  # x holds only the new tokens: prepend the cached keys and values
            if kv_cache.keys is not None:
                k = np.concatenate([kv_cache.keys, k], axis=2)  # (B, H, T_past + T, D)
                v = np.concatenate([kv_cache.values, v], axis=2)  # (B, H, T_past + T, D)
            kv_cache.keys, kv_cache.values = k, v
        dropout_p = self.attention_dropout if self.training else 0.0
        heads, self.cache = F.attention_forward(
            q, k, v, attn_mask=attn_mask, causal=causal, dropout_p=dropout_p, rng=self.rng
        )  # (B, H, T, D): one output per query
        self.gate_cache = None
        if self.head_gate is not None:
            heads, self.gate_cache = F.head_gate_forward(heads, self.head_gate)
        return self.out.forward(merge_heads(heads))  # (B, T, C)

    def backward(self, dout):
        dheads = split_heads(self.out.backward(dout), self.n_heads)  # (B, H, T, D)
        if self.gate_cache is not None:
            dheads, self.head_gate_grad = F.head_gate_backward(dheads, self.gate_cache)
        dq, dk, dv = F.attention_backward(dheads, self.cache)
        parts = [merge_heads(d) for d in (dq, dk, dv)]  # 3 x (B, T, C)
        if len(self.projections) == 1:  # one fused projection: its gradient is [dQ | dK | dV]
            parts = [np.concatenate(parts, axis=-1)]  # (B, T, 3C)
        return sum(proj.backward(d) for proj, d in zip(self.projections, parts))


class CrossAttention(Module):
    """Attention from one sequence to another, the bridge of an encoder-decoder (seed §5): queries
    from the decoder's x (B, Tq, C), keys and values from the encoder's output `memory` (B, Tk, C).

        out = softmax(Q K^T / sqrt(D) + source mask) V,  Q = x W_q^T,  K = memory W_k^T,  V = memory W_v^T

    Nq = Tq and Nk = Tk differ; there is no causal mask (every target position may read the whole
    source) and `memory_mask` (broadcastable to (B, H, Tq, Tk), True = may attend) hides the
    source's padding. `names` are the three projections' (query, key, value).

    `backward` returns two gradients: dx, and d memory, which flows back into the encoder. The
    memory enters through both W_k and W_v, so its gradient is the sum of the two paths.

    With a `LayerKVCache`, K and V are computed from `memory` at the first call and read from the
    cache after that: the source does not change while the target grows, so neither do they.
    """

    def __init__(self, store, names, out_name, config, rng, out_std=0.02):
        c = config.d_model
        self.query, self.key, self.value = (Linear(store, name, c, c, rng) for name in names)
        self.out = Linear(store, out_name, c, c, rng, std=out_std)
        self.n_heads = config.n_heads
        self.attention_dropout = config.dropout
        self.rng = rng

    def forward(self, x, memory, memory_mask=None, kv_cache=None):
        q = split_heads(self.query.forward(x), self.n_heads)  # (B, H, Tq, D)
        if kv_cache is not None and kv_cache.keys is not None:
            k, v = kv_cache.keys, kv_cache.values  # computed from the memory at the first step
        else:
            k = split_heads(self.key.forward(memory), self.n_heads)  # (B, H, Tk, D)
            v = split_heads(self.value.forward(memory), self.n_heads)  # (B, H, Tk, D)
            if kv_cache is not None:
                kv_cache.keys, kv_cache.values = k, v
        dropout_p = self.attention_dropout if self.training else 0.0
        heads, self.cache = F.attention_forward(
            q, k, v, attn_mask=memory_mask, dropout_p=dropout_p, rng=self.rng
        )  # (B, H, Tq, D): one output per target position
        return self.out.forward(merge_heads(heads))  # (B, Tq, C)

    def backward(self, dout):
        """(dx, dmemory): the query path reaches x, the key and value paths reach the memory."""
        dheads = split_heads(self.out.backward(dout), self.n_heads)  # (B, H, Tq, D)
        dq, dk, dv = F.attention_backward(dheads, self.cache)
        dx = self.query.backward(merge_heads(dq))  # (B, Tq, C)
        dmemory = self.key.backward(merge_heads(dk)) + self.value.backward(merge_heads(dv))
        return dx, dmemory  # (B, Tq, C), (B, Tk, C)


class FeedForward(Module):
    """Linear(C -> d_ff), GELU, Linear(d_ff -> C), applied to each position independently."""

    def __init__(self, store, in_name, out_name, config, rng, out_std):
        self.fc_in = Linear(store, in_name, config.d_model, config.d_ff, rng)
        self.act = Gelu(config.activation)
        self.fc_out = Linear(store, out_name, config.d_ff, config.d_model, rng, std=out_std)

    def forward(self, x):
        return self.fc_out.forward(self.act.forward(self.fc_in.forward(x)))

    def backward(self, dout):
        return self.fc_in.backward(self.act.backward(self.fc_out.backward(dout)))


class Branch(Module):
    """What a residual connection adds to its input: a sub-layer (attention or feed-forward),
    then dropout. Extra forward arguments go to the sub-layer (the attention's mask)."""

    def __init__(self, layer, p, rng):
        self.layer, self.dropout = layer, Dropout(p, rng)

    def forward(self, x, *args):
        return self.dropout.forward(self.layer.forward(x, *args))

    def backward(self, dout):
        return self.layer.backward(self.dropout.backward(dout))


# A residual sub-layer, the two ways a Transformer wraps a branch with a LayerNorm and a skip
# connection. Op pairs whose inputs include layers: `norm` and `branch` remember what their own
# backward needs, so the cache is just the two of them.


def pre_norm_residual_forward(x, norm, branch, *branch_args):
    """Pre-LN (GPT-2): y = x + branch(norm(x)). Returns (y, cache)."""
    return x + branch.forward(norm.forward(x), *branch_args), (norm, branch)


def pre_norm_residual_backward(dout, cache):
    """dx = dy + norm'(x)^T branch'^T dy: the residual sends dy straight through *and* through the
    branch, and the two gradients add (the sum rule). The straight path reaches x unchanged."""
    norm, branch = cache
    return dout + norm.backward(branch.backward(dout))


def post_norm_residual_forward(x, norm, branch, *branch_args):
    """Post-LN (BERT, the original Transformer): y = norm(x + branch(x)). Returns (y, cache)."""
    return norm.forward(x + branch.forward(x, *branch_args)), (norm, branch)


def post_norm_residual_backward(dout, cache):
    """ds = norm'^T dy is the gradient of the sum s = x + branch(x), then dx = ds + branch'^T ds:
    here every path to x goes through the norm, the straight one included."""
    norm, branch = cache
    dsum = norm.backward(dout)
    return dsum + branch.backward(dsum)


class TransformerBlock(Module):
    """Attention and feed-forward sub-layers, each with a residual connection and a LayerNorm.

    post-LN (BERT, the original Transformer):  h = LN(x + drop(attn(x)));  y = LN(h + drop(ff(h)))
    pre-LN  (GPT-2):                           h = x + drop(attn(LN(x)));  y = h + drop(ff(LN(h)))

    Pre-LN keeps an un-normalised residual path from input to output, which is why deep GPTs train
    without warmup tricks; post-LN needs warmup but was what BERT used.
    """

    def __init__(self, store, prefix, names, config, rng, norm_first, n_heads=None):
        # GPT-2 scales the init of projections into the residual stream by 1/sqrt(2 * n_layers).
        out_std = 0.02 / math.sqrt(2 * config.n_layers) if norm_first else 0.02
        qkv = names["qkv"]
        qkv = f"{prefix}{qkv}" if isinstance(qkv, str) else [f"{prefix}{n}" for n in qkv]
        self.attn = MultiHeadAttention(store, qkv, prefix + names["attn_out"], config, rng, out_std,
                                       n_heads)
        self.attn_norm = LayerNorm(store, prefix + names["attn_norm"], config.d_model, config.layer_norm_eps)
        self.ff = FeedForward(store, prefix + names["ff_in"], prefix + names["ff_out"], config, rng, out_std)
        self.ff_norm = LayerNorm(store, prefix + names["ff_norm"], config.d_model, config.layer_norm_eps)
        self.attn_branch = Branch(self.attn, config.dropout, rng)
        self.ff_branch = Branch(self.ff, config.dropout, rng)
        self.norm_first = norm_first

    def forward(self, x, attn_mask=None, causal=False, kv_cache=None):
        """x (B, T, C) -> (B, T, C); `kv_cache` (a LayerKVCache) goes to the attention."""
        residual = pre_norm_residual_forward if self.norm_first else post_norm_residual_forward
        h, self.attn_cache = residual(x, self.attn_norm, self.attn_branch, attn_mask, causal,
                                      kv_cache)
        y, self.ff_cache = residual(h, self.ff_norm, self.ff_branch)
        return y

    def backward(self, dout):
        """The forward's two residual sub-layers, in reverse order."""
        backward = pre_norm_residual_backward if self.norm_first else post_norm_residual_backward
        dh = backward(dout, self.ff_cache)  # through the feed-forward sub-layer
        return backward(dh, self.attn_cache)  # through the attention sub-layer
