"""How much memory training a Transformer takes, counted from its `ModelConfig`: the weights, their
gradients, the optimizer's states, the activations the forward keeps for the backward; and the
KV cache that generating text keeps.

Per parameter, with b the bytes of `dtype`: weights b, gradients b, optimizer states 2 b for AdamW
(m and v), b for SGD with momentum, 0 for plain SGD. Everything is in one dtype; mixed-precision
training also keeps float32 master weights and float32 Adam states (16 bytes per parameter in all;
Rajbhandari et al. 2020, ZeRO), which this does not model.

**Activation memory** is the bytes the forward pass allocates and still holds when it returns:
every tensor the backward will read, plus the output (the logits). That is what the tests measure
(tracemalloc around the NumPy forward, torch.profiler around the twin's). Per layer and token,
elements of b bytes unless said (C = d_model, F = d_ff, H = n_heads, T = seq_len):

    layer norm inputs            2 C   (NumPy keeps the normalised input x_hat: the same size)
    layer norm statistics        4     mean and 1/sigma of each, float32 (NumPy: 1/sigma, 2 in all)
    attention input              C     what the Q, K, V projections' weight gradients read
    q, k, v                      3 C
    attention weights P          H T   naive attention: the O(T^2) term, softmax(Q K^T) per head
    log-sum-exp                  H     flash attention instead, float32: the backward recomputes P
    attention output             C     the input of W_o
    feed-forward input           C
    GELU input                   F
    GELU output                  F     the input of the second linear layer
    GELU Phi(x)                  F     NumPy only: its backward reuses Phi(x), PyTorch recomputes it
    with dropout (p > 0):
    dropout masks                H T + 2 C   attention weights (naive only: a flash kernel
                                             regenerates its mask) and the two residual branches
    dropped attention weights    H T   naive only: dropout(P), the input of P V

`implementation="autograd"` is what PyTorch's autograd saves, with the 1-byte masks of its fused
dropout (CUDA). In 16-bit with dropout and F = 4 C that is s b h (34 + 5 a s / h) bytes per layer
(sequence s, batch b, hidden h, heads a): Korthikanti et al. 2022, eq. 1, plus the statistics.
`implementation="numpy"` is minilm's NumPy reference: Phi(x) kept, masks in the activation dtype
(PyTorch's CPU dropout, which multiplies by a float mask, keeps b bytes per mask element too).

Outside the layers: GPT-2 keeps the final LayerNorm's input, the LM head's input and the logits
(C + C + V, + 2 statistics); BERT the embedding LayerNorm's input (C + 2) and, with its MLM head,
the dense input, GELU input (and Phi(x) in NumPy), LayerNorm input, decoder input and logits
(4 C + V + 2), or without it the hidden states it returns (C). With dropout, one more mask of C.

Activation checkpointing (full recomputation) keeps only each layer's input (C per token) and
recomputes one layer's forward at a time in the backward, so one layer's full set is alive at once.

Not modelled: transient buffers (one layer's scores during the forward, the logits' gradient, ...),
the allocator's rounding and fragmentation, a framework's workspaces; NumPy's float16 attention,
which keeps q, k, v and P in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

from minilm.common.checks import check_flag, int_at_least, positive_int
from minilm.compute.flops import check_seq_len
from minilm.compute.parameters import Breakdown, model_parts, parameter_count
from minilm.config import ModelConfig

DTYPE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
DTYPE_ALIASES = {"fp64": "float64", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
OPTIMIZER_STATES = {"adamw": 2, "sgd-momentum": 1, "sgd": 0}  # arrays shaped like the parameters
ATTENTION_KINDS = ("naive", "flash")
IMPLEMENTATIONS = ("autograd", "numpy")


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype name: float64 8, float32 4, bfloat16 / float16 2."""
    name = DTYPE_ALIASES.get(dtype, dtype)
    if name not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES) + sorted(DTYPE_ALIASES)}, "
                         f"got {dtype!r}")
    return DTYPE_BYTES[name]


def _choice(argument: str, value: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{argument} must be one of {tuple(choices)}, got {value!r}")
    return value


def optimizer_state_bytes(n_parameters: int, dtype: str = "float32",
                          optimizer: str = "adamw") -> int:
    """Bytes an optimizer keeps between steps for `n_parameters` parameters in `dtype`: arrays
    shaped like the parameters, AdamW two (the running mean of the gradient m and of its square
    v), SGD with momentum one (the velocity), plain SGD none. (The step count, one number per
    tensor in minilm and torch, is left out: it does not grow with N.)

        >>> optimizer_state_bytes(124_439_808, "float32")   # GPT-2's AdamW: 2 x 4 bytes x N
        995518464
    """
    n_parameters = int_at_least("n_parameters", n_parameters, 0)
    states = OPTIMIZER_STATES[_choice("optimizer", optimizer, OPTIMIZER_STATES)]
    return states * n_parameters * dtype_bytes(dtype)


def _statistic_bytes(b: int, in_numpy: bool) -> int:
    """Bytes of one per-row statistic (a LayerNorm's mean or 1/sigma, a log-sum-exp): NumPy keeps
    it in the activation dtype, PyTorch in float32 at least."""
    return b if in_numpy else max(4, b)


def _mask_bytes(b: int, in_numpy: bool) -> int:
    """Bytes of one dropout-mask element: NumPy's is a float (mask / (1 - p)), autograd's a bool."""
    return b if in_numpy else 1


def layer_activations(config: ModelConfig, seq_len: int, dtype: str = "float32",
                      attention: str = "naive", implementation: str = "autograd") -> Breakdown:
    """Bytes one Transformer block keeps for its backward, per token, by tensor (the module's
    table)."""
    b = dtype_bytes(dtype)
    c, f, h, t = config.d_model, config.d_ff, config.n_heads, check_seq_len(config, seq_len)
    naive = _choice("attention", attention, ATTENTION_KINDS) == "naive"
    in_numpy = _choice("implementation", implementation, IMPLEMENTATIONS) == "numpy"
    kept = Breakdown({
        "layer norm inputs": 2 * c * b,
        "layer norm statistics": (2 if in_numpy else 4) * _statistic_bytes(b, in_numpy),
        "attention input": c * b,
        "q, k, v": 3 * c * b,
        "attention weights P": h * t * b if naive else 0,
        "log-sum-exp": 0 if naive else h * _statistic_bytes(b, in_numpy),
        "attention output": c * b,
        "feed-forward input": c * b,
        "GELU input": f * b,
        "GELU output": f * b,
        "GELU Phi(x)": f * b if in_numpy else 0,
    })
    if config.dropout > 0:
        kept["dropout masks"] = ((h * t if naive else 0) + 2 * c) * _mask_bytes(b, in_numpy)
        kept["dropped attention weights"] = h * t * b if naive else 0
    return Breakdown({name: value for name, value in kept.items() if value})


def _outside_layers(config, model, parts, b, in_numpy) -> int:
    """Bytes per token kept outside the blocks (the module's table)."""
    c, v = config.d_model, config.vocab_size
    statistics = (1 if in_numpy else 2) * _statistic_bytes(b, in_numpy)  # one LayerNorm's
    mask = c * _mask_bytes(b, in_numpy) if config.dropout > 0 else 0
    if model == "decoder":  # final LayerNorm input, LM head input, logits
        return (2 * c + v) * b + statistics + mask
    embedding_norm = c * b + statistics
    if not parts["mlm_head"]:
        return embedding_norm + c * b + mask  # + the hidden states it returns
    head = (4 * c + (c if in_numpy else 0) + v) * b + statistics
    return embedding_norm + head + mask


@dataclass(frozen=True)
class Memory:
    """Bytes. `training` = weights + gradients + optimizer_states + activations;
    `generation` = weights + kv_cache. `activations` is split into "layers" (or, with
    checkpointing, "layer inputs" + "recomputed layer") and "embeddings and head";
    `activations_per_layer` names the tensors one layer keeps, for the whole batch."""

    weights: int
    gradients: int
    optimizer_states: int
    activations: Breakdown
    activations_per_layer: Breakdown
    kv_cache: int

    @property
    def training(self) -> int:
        return self.weights + self.gradients + self.optimizer_states + self.activations.total

    @property
    def generation(self) -> int:
        return self.weights + self.kv_cache


def memory(config: ModelConfig, batch: int, seq_len: int, dtype: str = "float32",
           optimizer: str = "adamw", attention: str = "naive", checkpointing: bool = False,
           implementation: str = "autograd", model: str = "decoder", **parts) -> Memory:
    """Memory of training on batches of `batch` x `seq_len` tokens (and of generating them with a
    KV cache), everything in `dtype`, with activation checkpointing if `checkpointing` (True or
    False); see the module docstring for what each term holds.

        weights = gradients = N b;   optimizer_states = k N b  (k: AdamW 2, SGD momentum 1, SGD 0)
        activations = L * tokens * per-layer + tokens * outside    (tokens = batch * seq_len)
                      checkpointing: L * tokens * C b + tokens * (per-layer + outside)
        kv_cache = 2 L C b * tokens                                (keys and values; decoder only)
    """
    parts = model_parts(config, model, parts)
    batch = positive_int("batch", batch)
    check_flag("checkpointing", checkpointing)
    b = dtype_bytes(dtype)
    n_params = parameter_count(config, model, **parts).total
    tokens = batch * check_seq_len(config, seq_len)
    per_layer = layer_activations(config, seq_len, dtype, attention, implementation)
    layer_bytes = per_layer.total * tokens
    if checkpointing:
        activations = Breakdown({"layer inputs": config.n_layers * config.d_model * b * tokens,
                                 "recomputed layer": layer_bytes})
    else:
        activations = Breakdown(layers=config.n_layers * layer_bytes)
    in_numpy = implementation == "numpy"
    activations["embeddings and head"] = _outside_layers(config, model, parts, b, in_numpy) * tokens
    kv_cache = 2 * config.n_layers * config.d_model * b * tokens if model == "decoder" else 0
    return Memory(
        weights=n_params * b,
        gradients=n_params * b,
        optimizer_states=optimizer_state_bytes(n_params, dtype, optimizer),
        activations=activations,
        activations_per_layer=Breakdown({name: v * tokens for name, v in per_layer.items()}),
        kv_cache=kv_cache,
    )
