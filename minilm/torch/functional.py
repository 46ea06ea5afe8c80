"""Attention for the PyTorch twin, three ways, plus the one loss whose edge case torch handles
differently from the NumPy reference. Everything else the twin needs (linear, layer norm, GELU,
softmax, dropout) is `torch.nn.functional` itself: autograd writes the backward passes that
`minilm/numpy/functional.py` writes by hand.

Attention backends (the semantics are the NumPy reference's `attention_forward`, see DESIGN.md):

    "math"    softmax(Q K^T * scale, masked) V written out with tensor ops: the twin of the NumPy
              code, O(T^2) memory, any dtype; the readable baseline.
    "sdpa"    torch.nn.functional.scaled_dot_product_attention: PyTorch's fused kernels.
    "triton"  kernels.flash_attention: our own FlashAttention-2 kernel, forward and backward
              (CUDA, or the Triton interpreter on CPU when TRITON_INTERPRET=1).

Shared rules: boolean masks mean True = may attend; causal masks are aligned bottom-right (query i
sees key j iff j <= i + Nk - Nq); a query row that may attend nothing outputs zeros and passes zero
gradient, never NaN. Each entry point checks q, k, v (and the loss its targets) with the NumPy
reference's own rules (`minilm.common.checks`), and the "math" path and the loss compute float16
inputs in float32, as the reference does.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings

import torch
from torch import nn

from minilm.common.backends import check_device
from minilm.common.checks import (
    check_attention_inputs,
    check_cross_entropy_inputs,
    check_key_mask,
)
from minilm.common.names import IGNORE_INDEX

ATTENTION_BACKENDS = ("triton", "sdpa", "math")


# ---------------------------------------------------------------- choosing a backend


def triton_can_run() -> bool:
    """Triton is installed and has somewhere to run: a CUDA GPU, or its CPU interpreter
    (TRITON_INTERPRET=1, which triton reads when it is first imported)."""
    if importlib.util.find_spec("triton") is None:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def triton_unsupported(head_dim: int, dtype: torch.dtype) -> str | None:
    """Why the Triton kernel cannot run a model with this head width and dtype, or None if it can."""
    if not triton_can_run():
        return "Triton needs to be installed and a CUDA GPU or TRITON_INTERPRET=1"
    from minilm.kernels.flash_attention import MAX_HEAD_DIM, MIN_HEAD_DIM, SUPPORTED_DTYPES

    if not MIN_HEAD_DIM <= head_dim <= MAX_HEAD_DIM:
        return f"the kernel needs {MIN_HEAD_DIM} <= head_dim <= {MAX_HEAD_DIM}, got {head_dim}"
    if dtype not in SUPPORTED_DTYPES:
        return f"the kernel supports {SUPPORTED_DTYPES}, got {dtype}"
    return None


def check_attention(attention: str | None, head_dim: int, dtype: torch.dtype) -> str:
    """The backend a model with this head width and dtype uses.

    None picks "triton" whenever the kernel can run it (Triton installed, a CUDA GPU or
    TRITON_INTERPRET=1, 16 <= head_dim <= 128, a float32/float16/bfloat16 model), else "sdpa".
    An explicit "triton" that cannot run raises ValueError saying why.
    """
    if attention is None:
        return "sdpa" if triton_unsupported(head_dim, dtype) else "triton"
    if attention not in ATTENTION_BACKENDS:
        raise ValueError(f"attention must be one of {ATTENTION_BACKENDS} (or None), got {attention!r}")
    if attention == "triton":
        reason = triton_unsupported(head_dim, dtype)
        if reason:
            raise ValueError(f"attention='triton' cannot run this model: {reason}")
    return attention


def training_device_and_attention(device: str = "auto") -> tuple[str, str | None]:
    """Where to train the twin, and with which attention, for `device` (`--device`):

        "auto"  a CUDA GPU when torch sees one, else the CPU (Apple's "mps" only on request)
        "cuda"  attention None: the Triton kernel whenever it can run the model (`check_attention`),
                else SDPA
        "cpu"   SDPA: the Triton interpreter is for testing, far too slow to train with
        "mps"   SDPA (Triton has no Apple backend)

    A device the machine lacks is a ValueError naming it."""
    if check_device("torch", device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available[device]:
        raise ValueError(f"device {device!r}: torch sees no such device on this machine "
                         "(try --device auto)")
    return device, (None if device == "cuda" else "sdpa")


def backend_for_call(attention: str, dropout_p: float) -> str:
    """The backend that actually runs: the Triton kernel has no dropout, so while attention dropout
    is active (training with p > 0) a "triton" model runs that call through "sdpa", which drops
    attention weights exactly as the reference does (inverted dropout on the softmax weights).
    In eval mode, or with dropout 0, "triton" runs the kernel. A warning says so once."""
    if attention == "triton" and dropout_p > 0.0:
        warnings.warn(
            "attention='triton' has no dropout: while training with attention dropout > 0 the "
            "attention runs through 'sdpa' (eval mode, or dropout=0, runs the Triton kernel)",
            stacklevel=2,
        )
        return "sdpa"
    return attention


# ---------------------------------------------------------------- masks


def causal_mask(n_queries: int, n_keys: int, device=None) -> torch.Tensor:
    """Bottom-right aligned (Nq, Nk) bool: query i may attend key j iff j <= i + (Nk - Nq)."""
    i = torch.arange(n_queries, device=device)[:, None]
    j = torch.arange(n_keys, device=device)[None, :]
    return j <= i + (n_keys - n_queries)


def allowed_keys(attn_mask, causal: bool, n_queries: int, n_keys: int, device=None):
    """attn_mask (True = may attend, checked by `check_attention_inputs`) combined with the causal
    mask; None means everything allowed."""
    if not causal:
        return attn_mask
    tri = causal_mask(n_queries, n_keys, device)
    return tri if attn_mask is None else attn_mask & tri


# ---------------------------------------------------------------- the three backends


def math_attention(q, k, v, attn_mask=None, causal=False, scale=None, dropout_p=0.0):
    """softmax(q k^T * scale, masked) v, step by step; the twin of numpy `attention_forward`.

    q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv) -> (..., Nq, Dv).
    Dropout (training only, p = dropout_p) zeroes attention weights and rescales by 1 / (1 - p).
    float16 / bfloat16 inputs are computed in float32 (scores overflow float16 at 65504).
    """
    check_attention_inputs(q, k, v, scale, torch.Tensor, causal, attn_mask, dropout_p)
    dtype = q.dtype
    q, k, v = (x.to(torch.promote_types(dtype, torch.float32)) for x in (q, k, v))
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale  # (..., Nq, Nk)
    allowed = allowed_keys(attn_mask, causal, n_queries, n_keys, q.device)
    if allowed is None:
        probs = torch.softmax(scores, dim=-1)
    else:
        # torch.softmax of an all -inf row is NaN (and so is its gradient), so normalise by hand as
        # the NumPy reference does: a fully masked row has e = 0 everywhere and stays all zero.
        scores = scores.masked_fill(~allowed, float("-inf"))
        row_max = scores.detach().amax(dim=-1, keepdim=True)  # a shift: no gradient needed
        row_max = torch.where(torch.isfinite(row_max), row_max, 0.0)
        e = torch.exp(scores - row_max)  # exactly 0 where masked
        total = e.sum(dim=-1, keepdim=True)
        probs = e / torch.where(total > 0, total, 1.0)
    if dropout_p > 0.0:
        probs = nn.functional.dropout(probs, dropout_p, training=True)
    return (probs @ v).to(dtype)  # (..., Nq, Nk) @ (..., Nk, Dv) -> (..., Nq, Dv)


def sdpa_attention(q, k, v, attn_mask=None, causal=False, scale=None, dropout_p=0.0):
    """torch's scaled_dot_product_attention with the reference's edge cases made explicit.

    Without a mask, causal self-attention (Nq == Nk) is SDPA's own `is_causal`. Otherwise the
    masks become one boolean attn_mask; rows that may attend nothing (whose SDPA result has been
    NaN in some versions and backends) are let to attend everything and then multiplied by 0,
    which zeroes their output and their gradient.
    """
    check_attention_inputs(q, k, v, scale, torch.Tensor, causal, attn_mask, dropout_p)
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    if attn_mask is None and (not causal or n_queries == n_keys):
        return nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=causal, scale=scale
        )
    allowed = allowed_keys(attn_mask, causal, n_queries, n_keys, q.device)
    has_key = allowed.any(dim=-1, keepdim=True)  # (..., Nq, 1)
    out = nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=allowed | ~has_key, dropout_p=dropout_p, scale=scale
    )
    return out * has_key  # (..., Nq, Dv)


def triton_attention(q, k, v, key_mask=None, causal=False, scale=None):
    """kernels.flash_attention: q (B, H, Nq, D), k, v (B, H, Nk, D), key_mask (B, Nk) bool."""
    from minilm.kernels import flash_attention  # here: triton reads TRITON_INTERPRET on import

    check_attention_inputs(q, k, v, scale, torch.Tensor, causal)
    return flash_attention(q, k, v, causal=causal, key_mask=key_mask, scale=scale)


def attention(q, k, v, key_mask=None, causal=False, scale=None, dropout_p=0.0, backend="math"):
    """Multi-head attention through one backend, with the mask in the form that backend takes.

    q (B, H, Nq, D), k, v (B, H, Nk, D); key_mask (B, Nk) bool, True = a real token (padding is
    False); causal bottom-right. Returns (B, H, Nq, D). `backend` must already account for dropout
    (see `backend_for_call`): "triton" with dropout_p > 0 is an error here.
    """
    check_attention_inputs(q, k, v, scale, torch.Tensor, causal, dropout_p=dropout_p)
    if key_mask is not None:  # checked here: a wrong one would be named attn_mask below
        check_key_mask("attention: key_mask", key_mask, k, torch.Tensor)
    if backend == "triton":
        if dropout_p > 0.0:
            raise ValueError("attention: the triton backend has no dropout; see backend_for_call")
        return triton_attention(q, k, v, key_mask=key_mask, causal=causal, scale=scale)
    attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, Nk)
    if backend == "sdpa":
        return sdpa_attention(q, k, v, attn_mask, causal, scale, dropout_p)
    if backend == "math":
        return math_attention(q, k, v, attn_mask, causal, scale, dropout_p)
    raise ValueError(f"attention must be one of {ATTENTION_BACKENDS}, got {backend!r}")


# ---------------------------------------------------------------- cross-entropy


def cross_entropy(logits, targets, ignore_index=IGNORE_INDEX):
    """Mean over kept positions of -log softmax(logits)[target], like numpy `cross_entropy_forward`.

    logits (..., V), targets (...) integer. Where torch's mean would divide by zero (every target
    ignored, e.g. an MLM batch with nothing masked) this returns 0 with zero gradient, as the
    reference does. float16 / bfloat16 logits are computed in float32 (a finite float32 loss).
    """
    check_cross_entropy_inputs(logits, targets, ignore_index, torch.Tensor)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    total = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long(),
        ignore_index=ignore_index, reduction="sum",
    )
    n_kept = (targets != ignore_index).sum().clamp(min=1)
    return total / n_kept
