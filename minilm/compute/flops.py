"""How many floating-point operations a Transformer does per token, and how long that takes.

Counted: the matrix multiplications, 2 FLOPs per multiply-add (an (m x k) @ (k x n) product is
2 m k n FLOPs). Not counted: element-wise work (LayerNorm, GELU, softmax, residual and bias adds)
and lookups (embeddings): O(T C) per layer against the matmuls' O(T C^2). PyTorch's
`FlopCounterMode`, which the tests measure against, counts exactly the matmuls too.

Forward, per token of a sequence of T tokens, with C = d_model, F = d_ff, V = vocab_size:

    per layer   Q, K, V and W_o projections     2 * 4 C^2
                scores S = Q K^T                2 T C      each query against all T keys (H heads of D)
                weighted values P V             2 T C
                feed-forward                    2 * 2 C F
    once        logits (tied output layer)      2 C V      BERT's MLM head transforms first: + 2 C^2
                pooler                          2 C^2 / T  once per sequence, on [CLS]

Backward: a matmul Y = A B needs dA = dY B^T and dB = A^T dY, two products of its size, so the
backward is 2 x the forward and a training step 3 x. With N_mm the parameters inside matmuls (every
weight matrix, the tied embedding once; not biases, LayerNorms, position or segment tables):

    training FLOPs per token = 6 N_mm + 12 L T C

which is the count behind PaLM's model FLOPs utilisation (Chowdhery et al. 2022, App. B), and
becomes the "6 N D" rule (6 N per token, Kaplan et al. 2020; Brown et al. 2020, Table D.1) when
attention is small (T << 6 C, roughly).

These are *model* FLOPs, what the math needs: work done twice is not counted (recomputing the
forward under activation checkpointing, FlashAttention's backward recomputing P). A causal mask
does not remove any either: naive attention computes the masked scores too; a kernel that skips
the masked tiles (ours, FlashAttention) does about half of the 4 L T C attention FLOPs.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

from minilm.common.checks import check_flag, is_int, number_in
from minilm.compute.parameters import Breakdown, model_parts, parameter_count
from minilm.config import ModelConfig


def check_seq_len(config: ModelConfig, seq_len: int) -> int:
    """`seq_len` as a Python int in [1, config.max_len] (`is_int`: NumPy integers taken, bools
    refused)."""
    if not (is_int(seq_len) and 1 <= seq_len <= config.max_len):
        raise ValueError(f"seq_len must be an int in [1, max_len={config.max_len}], got {seq_len!r}")
    return int(seq_len)


def _finite(what: str, value: float) -> float:
    """`value`, computed from finite arguments, unless it overflowed to inf: then a ValueError
    saying what overflowed, never an inf returned (or a NaN made of two: inf / inf)."""
    if not math.isfinite(value):
        raise ValueError(f"{what} overflows a float (the largest is {sys.float_info.max:.2g})")
    return value


def attention_flops(config: ModelConfig, seq_len: int) -> Breakdown:
    """Matmul FLOPs of one multi-head attention layer's forward over one sequence of T = seq_len
    tokens (H heads of width D = C / H):

        projections       4 * 2 T C^2    x W_q, x W_k, x W_v and heads W_o: (T x C) @ (C x C) each
        scores            2 T^2 C        S = Q K^T, per head (T x D) @ (D x T): 2 T^2 D, times H
        weighted_values   2 T^2 C        P V, per head (T x T) @ (T x D): 2 T^2 D, times H

    The head count cancels: H heads of width C / H cost what one head of width C would. Per token
    this is 8 C^2 + 4 T C, the attention rows of `flops_per_token`'s table.

        >>> attention_flops(ModelConfig.preset("gpt2"), 1024).total   # 8 T C^2 + 4 T^2 C
        8053063680
    """
    c, t = config.d_model, check_seq_len(config, seq_len)
    return Breakdown(projections=4 * 2 * t * c * c, scores=2 * t * t * c,
                     weighted_values=2 * t * t * c)


def flops_per_token(config: ModelConfig, seq_len: int, training: bool = True,
                    model: str = "decoder", **parts) -> Breakdown:
    """Matmul FLOPs per token of sequences of `seq_len` tokens: the forward (training=False) or
    forward + backward (3 x), per term: projections, attention, feed_forward, head.
    `model` and `parts` as in `parameter_count` (an encoder without its MLM head has no logits);
    `training` True or False."""
    parts = model_parts(config, model, parts)
    check_flag("training", training)
    c, f, n, t = config.d_model, config.d_ff, config.n_layers, check_seq_len(config, seq_len)
    layer = attention_flops(config, t)  # one sequence: divided by its T tokens, exactly
    forward = Breakdown(
        projections=n * layer["projections"] // t,
        attention=n * (layer["scores"] + layer["weighted_values"]) // t,
        feed_forward=n * 2 * 2 * c * f,
        head=2 * c * config.vocab_size,
    )
    if model == "encoder":
        forward["head"] = 2 * c * c + 2 * c * config.vocab_size if parts["mlm_head"] else 0
        if parts["pooler"]:
            forward["head"] += 2 * c * c / t
    passes = 3 if training else 1
    return Breakdown({term: passes * value for term, value in forward.items()})


class TrainingFlops(NamedTuple):
    exact: float  # flops_per_token(training=True) * n_tokens
    six_n_d: float  # 6 * parameters * n_tokens, the rule of thumb


def training_flops(config: ModelConfig, n_tokens: float, seq_len: int, model: str = "decoder",
                   **parts) -> TrainingFlops:
    """FLOPs to train on `n_tokens` tokens in sequences of `seq_len`: the exact matmul count
    beside the rule 6 N D (N all parameters, as Brown et al. 2020 count them; the two differ by
    the attention term 12 L T C per token, the parameters outside matmuls, and the MLM head)."""
    n_tokens = number_in("n_tokens", n_tokens, "(0, inf)")
    per_token = flops_per_token(config, seq_len, True, model, **parts).total
    n_params = parameter_count(config, model, **parts).total
    exact, six_n_d = per_token * n_tokens, 6 * n_params * n_tokens
    _finite(f"the FLOP count of {n_tokens:.3g} training tokens", max(exact, six_n_d))
    return TrainingFlops(exact=exact, six_n_d=six_n_d)


def time_estimate(flops: float, peak_flops: float, mfu: float = 1.0) -> float:
    """Seconds to do `flops` on hardware whose peak is `peak_flops` per second, running at the
    model FLOPs utilisation `mfu` (the fraction of peak the model's FLOPs achieve; large
    training runs reach 0.3-0.6): t = flops / (peak_flops * mfu)."""
    flops = number_in("flops", flops, "[0, inf)")
    peak_flops = number_in("peak_flops", peak_flops, "(0, inf)")
    mfu = number_in("mfu", mfu, "(0, 1]")
    return _finite(f"the time of {flops:.3g} FLOPs at {peak_flops:.3g} FLOP/s x MFU {mfu:g}",
                   flops / peak_flops / mfu)  # not / (peak_flops * mfu): 5e-324 * 0.5 is 0


def measured_mfu(flops: float, seconds: float, peak_flops: float) -> float:
    """Model FLOPs utilisation of a run that did `flops` model FLOPs in `seconds`:
    (flops / seconds) / peak_flops, the inverse of `time_estimate`."""
    flops = number_in("flops", flops, "[0, inf)")
    seconds = number_in("seconds", seconds, "(0, inf)")
    peak_flops = number_in("peak_flops", peak_flops, "(0, inf)")
    return _finite(f"the MFU of {flops:.3g} FLOPs in {seconds:.3g} s at {peak_flops:.3g} FLOP/s",
                   flops / seconds / peak_flops)
