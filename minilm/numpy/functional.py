"""Forward and backward of every operation a Transformer needs, written by hand in NumPy.

Each operation is a pair: `*_forward(...)` returns `(out, cache)` and `*_backward(dout, cache)`
returns the gradients of the loss with respect to the forward's inputs, given `dout`, the gradient
with respect to its output. The backward reads as the chain rule of the forward beside it.

Notation in shape comments: B batch, T (or Nq, Nk) sequence, H heads, D head width, C channels.
Everything is vectorised: no Python loop runs over batch, time or heads.

Attention and cross-entropy check their inputs first (`minilm.common.checks`, the rules the PyTorch
twin applies too) and compute in at least float32: with float16 inputs, scores q.k overflow
float16's largest value (65504) long before float32's, and so does a log-sum-exp over a wide range.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import erf as scipy_erf

from minilm.common.checks import (
    check_attention_inputs,
    check_cross_entropy_inputs,
    check_finite,
    check_floating,
    check_gradient_shape,
    number_in,
)

# ---------------------------------------------------------------- linear: y = x W^T + b


class LinearCache(NamedTuple):
    x: np.ndarray
    weight: np.ndarray
    has_bias: bool


def linear_forward(x, weight, bias=None):
    """y = x W^T + b with W stored (out_features, in_features), as in torch.nn.Linear.

    Every position is a row: x (..., in) is flattened to N rows so that the product is one matrix
    multiplication, one BLAS call. (`x @ W.T` on a 3-D x is one call per leading index, and with
    several BLAS threads each call pays for waking them: on a busy 2-core machine, 30x slower.)
    """
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: x has {x.shape[-1]} features but weight expects {weight.shape[1]} "
            f"(weight shape {weight.shape} is (out_features, in_features))"
        )
    out = x.reshape(-1, x.shape[-1]) @ weight.T  # (N, in) @ (in, out) -> (N, out)
    if bias is not None:
        out += bias  # in place: no second (N, out) array
    return out.reshape(*x.shape[:-1], weight.shape[0]), LinearCache(x, weight, bias is not None)


def linear_backward(dout, cache):
    """dx = dy W;  dW = sum over all leading axes of dy^T x;  db = sum of dy (each one product of
    all N rows at once, as in the forward)."""
    x, weight, has_bias = cache
    check_gradient_shape("linear", dout, x.shape[:-1] + weight.shape[:1])  # (..., out)
    x2 = x.reshape(-1, x.shape[-1])  # (N, in)
    d2 = dout.reshape(-1, dout.shape[-1])  # (N, out)
    dx = (d2 @ weight).reshape(x.shape)  # (N, out) @ (out, in) -> (N, in) -> (..., in)
    dweight = d2.T @ x2  # (out, in)
    dbias = d2.sum(axis=0) if has_bias else None  # (out,)
    return dx, dweight, dbias


# ---------------------------------------------------------------- embedding: y = W[ids]


class EmbeddingCache(NamedTuple):
    ids: np.ndarray
    num_embeddings: int


def embedding_forward(ids, weight):
    """Row lookup y[b, t] = W[ids[b, t]]. Ids must lie in [0, num_embeddings)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        raise ValueError(
            f"embedding: ids must lie in [0, {weight.shape[0]}), got values in "
            f"[{ids.min()}, {ids.max()}]"
        )
    return weight[ids], EmbeddingCache(ids, weight.shape[0])  # (..., C)


def embedding_backward(dout, cache):
    """dW[v] = sum of dy at every position whose id is v (np.add.at handles repeated ids)."""
    ids, num_embeddings = cache
    dweight = np.zeros((num_embeddings, dout.shape[-1]), dtype=dout.dtype)
    np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))
    return dweight


# ---------------------------------------------------------------- layer norm


class LayerNormCache(NamedTuple):
    x_hat: np.ndarray
    inv_std: np.ndarray
    weight: np.ndarray


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * w + b over the last axis (biased variance, like torch).

    x_hat = (x - mu) * r with r = 1 / sqrt(var + eps).

    float16 inputs are computed in float32 (a float16 square overflows once x is 256 from its
    mean: var would be inf and the output the bias) and the output returned in float16.
    """
    number_in("layer_norm: eps", eps, "(0, inf)")  # NaN would make every output NaN
    dtype = x.dtype
    x = x.astype(np.promote_types(dtype, np.float32), copy=False)
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)  # (..., 1)
    inv_std = 1.0 / np.sqrt(var + eps)  # (..., 1)
    x_hat = centered * inv_std  # (..., C)
    out = (x_hat * weight + bias).astype(dtype, copy=False)
    return out, LayerNormCache(x_hat, inv_std, weight)


def layer_norm_backward(dout, cache):
    """With g = dy * w (gradient w.r.t. x_hat) and C channels:

        dx = r * (g - mean(g) - x_hat * mean(g * x_hat))

    the two subtracted means are the gradient flowing through the mean and the variance.
    """
    x_hat, inv_std, weight = cache
    check_gradient_shape("layer_norm", dout, x_hat.shape)
    lead = tuple(range(dout.ndim - 1))
    dweight = (dout * x_hat).sum(axis=lead)  # (C,)
    dbias = dout.sum(axis=lead)  # (C,)
    g = dout * weight  # (..., C)
    dx = inv_std * (
        g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    )
    return dx.astype(dout.dtype, copy=False), dweight.astype(weight.dtype, copy=False), dbias


# ---------------------------------------------------------------- GELU

GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# erf(z) ~ z P(z^2) / Q(z^2) on [-4, 4]: the float32 rational approximation of Eigen and XLA.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # z^12 ... z^0
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)  # z^8 ... z^0
_ERF_BLOCK = 65_536  # elements evaluated together: 256 KB of float32, within a core's cache


def _polynomial(coefficients, x):
    """c_0 x^n + c_1 x^(n-1) + ... + c_n by Horner's rule, (((c_0 x + c_1) x + c_2) x + ...),
    in one array updated in place, in x's dtype."""
    y = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        y *= x
        y += c
    return y


def erf(z):
    """The error function, erf(z) = 2/sqrt(pi) * integral from 0 to z of exp(-t^2) dt, to the
    precision of z's dtype.

    float64: scipy's erf, exact to rounding. float32 (and narrower, computed in float32):
    z P(z^2) / Q(z^2) with z clipped to [-4, 4] (erf(4) = 1 - 1.5e-8, which is 1 in float32),
    |error| < 5e-7: ten multiply-adds, several times faster than scipy's erf, which evaluates
    element by element in double precision. They run on one block of the array at a time: two
    dozen passes over 256 KB stay in the core's cache, over a whole activation (12 MB for
    MiniLM's feed-forward on 32 x 64 tokens) each pass would stream it from memory, 2x slower.
    """
    if np.promote_types(z.dtype, np.float32) != np.float32:
        return scipy_erf(z)
    z = np.asarray(z, dtype=np.float32, order="C")
    out = np.empty(z.shape, dtype=np.float32)
    z_flat, out_flat = z.reshape(-1), out.reshape(-1)  # views: both arrays are contiguous
    for start in range(0, z.size, _ERF_BLOCK):
        block = slice(start, start + _ERF_BLOCK)
        out_flat[block] = _erf_rational(z_flat[block])
    return out


def _erf_rational(z):
    """erf(z) ~ z P(z^2) / Q(z^2), float32, z clipped to [-4, 4] (see `erf`)."""
    z = np.clip(z, -4.0, 4.0)
    z2 = z * z
    return z * _polynomial(_ERF_P, z2) / _polynomial(_ERF_Q, z2)


class GeluCache(NamedTuple):
    x: np.ndarray
    cdf: np.ndarray  # Phi(x), exact or approximated, reused by the backward
    approximate: str


def gelu_forward(x, approximate="none"):
    """GELU(x) = x * Phi(x), Phi the standard normal CDF.

    "none" (BERT): Phi(x) = (1 + erf(x / sqrt 2)) / 2, exact (to float32's precision in float32,
    see `erf`).
    "tanh" (GPT-2): Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2.
    """
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"gelu: approximate must be one of {GELU_APPROXIMATIONS}, got {approximate!r}")
    check_floating("gelu: x", x)  # Phi(x) cast to an integer dtype is 0
    if approximate == "none":
        cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    else:
        cdf = 0.5 * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    cdf = cdf.astype(x.dtype, copy=False)
    return x * cdf, GeluCache(x, cdf, approximate)


def gelu_backward(dout, cache):
    """d/dx [x Phi(x)] = Phi(x) + x Phi'(x).

    exact: Phi'(x) = exp(-x^2 / 2) / sqrt(2 pi).
    tanh:  with u = sqrt(2/pi)(x + 0.044715 x^3) and t = tanh u = 2 Phi(x) - 1:
           Phi'(x) = (1 - t^2) / 2 * sqrt(2/pi)(1 + 3 * 0.044715 x^2).
    """
    x, cdf, approximate = cache
    check_gradient_shape("gelu", dout, x.shape)
    if approximate == "none":
        pdf = np.exp(-0.5 * x * x) * x.dtype.type(1.0 / math.sqrt(2.0 * math.pi))
    else:
        t = 2.0 * cdf - 1.0
        pdf = 0.5 * (1.0 - t * t) * (_SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x))
    return (dout * (cdf + x * pdf)).astype(dout.dtype, copy=False)


# ---------------------------------------------------------------- softmax


class SoftmaxCache(NamedTuple):
    probs: np.ndarray
    axis: int


def softmax_forward(x, axis=-1):
    """p_i = exp(x_i - max x) / sum_j exp(x_j - max x): subtracting the max changes nothing
    mathematically and keeps exp from overflowing."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not (
            -x.ndim <= axis < x.ndim):
        raise ValueError(f"softmax: axis must be an int in [-{x.ndim}, {x.ndim}) for x of shape "
                         f"{x.shape}, got {axis!r}")
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    probs = e / e.sum(axis=axis, keepdims=True)
    return probs, SoftmaxCache(probs, axis)


def softmax_backward(dout, cache):
    """Jacobian dp_i/dx_j = p_i (delta_ij - p_j), so dx = p * (dp - sum_j dp_j p_j)."""
    probs, axis = cache
    check_gradient_shape("softmax", dout, probs.shape)
    return probs * (dout - (dout * probs).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- dropout


class DropoutCache(NamedTuple):
    keep_scaled: np.ndarray | None  # mask / (1 - p), or None when dropout was a no-op


def dropout_forward(x, p, rng=None, training=True):
    """Inverted dropout: zero each element with probability p, scale survivors by 1 / (1 - p) so
    the expectation is unchanged. The mask is drawn from `rng` (a np.random.Generator) and reused
    by the backward. A no-op when not training or p == 0."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x, DropoutCache(None)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("dropout: rng must be a np.random.Generator when training with p > 0")
    keep_scaled = (rng.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    return x * keep_scaled, DropoutCache(keep_scaled)


def dropout_backward(dout, cache):
    """The same mask and scale: dx = dy * mask / (1 - p)."""
    return dout if cache.keep_scaled is None else dout * cache.keep_scaled


# ---------------------------------------------------------------- attention


class AttentionCache(NamedTuple):
    q: np.ndarray  # q, k, v in the working dtype (float32 for float16 inputs)
    k: np.ndarray
    v: np.ndarray
    probs: np.ndarray  # softmax weights, zero on masked keys (B.., Nq, Nk)
    dropped: np.ndarray  # probs after dropout: what multiplied v
    dropout: DropoutCache
    scale: float
    dtype: np.dtype  # the inputs' dtype, which the output and the gradients come back in


def causal_mask(n_queries, n_keys):
    """Bottom-right aligned: query i may attend key j iff j <= i + (Nk - Nq).

    With Nq == Nk this is the usual lower triangle; with Nq < Nk (decoding with a KV cache) the
    last query sees every key."""
    i = np.arange(n_queries)[:, None]
    j = np.arange(n_keys)[None, :]
    return j <= i + (n_keys - n_queries)  # (Nq, Nk) bool


def _allowed_keys(attn_mask, causal, scores_shape):
    """Combine the boolean mask (True = may attend; `check_attention_inputs` has checked that it
    broadcasts to the scores' shape (..., Nq, Nk)) with the causal mask; None = all allowed."""
    allowed = None if attn_mask is None else np.broadcast_to(attn_mask, scores_shape)
    if causal:
        tri = causal_mask(scores_shape[-2], scores_shape[-1])
        allowed = tri if allowed is None else allowed & tri
    return allowed


def attention_forward(q, k, v, attn_mask=None, causal=False, scale=None, dropout_p=0.0, rng=None):
    """out = softmax(q k^T * scale + mask) v.

    q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv); scale defaults to 1 / sqrt(D).
    attn_mask: boolean, broadcastable to (..., Nq, Nk), True = may attend (as PyTorch SDPA).
    A query row that may attend nothing outputs zeros (and passes zero gradient), not NaN.
    dropout_p > 0 drops attention weights (with `rng`), as BERT and GPT-2 do in training.
    float16 inputs are computed in float32 and the output returned in float16.
    """
    check_attention_inputs(q, k, v, scale, np.ndarray, causal, attn_mask, dropout_p)
    dtype = q.dtype
    q, k, v = (x.astype(np.promote_types(dtype, np.float32), copy=False) for x in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # q k^T * scale, the scale applied to q: Nq x D multiplications instead of Nq x Nk
    scores = (q * q.dtype.type(scale)) @ np.swapaxes(k, -1, -2)  # (..., Nq, Nk)
    allowed = _allowed_keys(attn_mask, causal, scores.shape)
    if allowed is None:
        probs, _ = softmax_forward(scores)
    else:
        # in place, on this function's own scores: at 16 x 4 x 128 x 128 (the demo) this takes
        # 0.7x the time of allocating a new array at each line
        np.copyto(scores, -np.inf, where=~allowed)
        row_max = scores.max(axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)  # fully masked rows: no -inf - -inf
        scores -= row_max
        probs = np.exp(scores, out=scores)  # exactly 0 where masked; normalised in place below
        total = probs.sum(axis=-1, keepdims=True)
        probs /= np.where(total > 0, total, 1.0)  # fully masked rows stay all zero
    dropped, dropout_cache = dropout_forward(probs, dropout_p, rng, training=dropout_p > 0)
    out = dropped @ v  # (..., Nq, Nk) @ (..., Nk, Dv) -> (..., Nq, Dv)
    return out.astype(dtype, copy=False), AttentionCache(q, k, v, probs, dropped, dropout_cache,
                                                         scale, dtype)


def attention_backward(dout, cache):
    """Chain rule through out = P' v, P' = dropout(P), P = softmax(S), S = q k^T * scale:

        dv = P'^T dout;   dP = dropout_backward(dout v^T);   dS = P * (dP - rowsum(dP * P));
        dq = dS k * scale;   dk = dS^T q * scale.

    Masked entries have P = 0, so they receive dS = 0; fully masked rows give dq = 0.
    """
    q, k, v, probs, dropped, dropout_cache, scale, dtype = cache
    check_gradient_shape("attention", dout, probs.shape[:-1] + v.shape[-1:])
    dout = dout.astype(q.dtype, copy=False)  # the working dtype of the forward
    dv = np.swapaxes(dropped, -1, -2) @ dout  # (..., Nk, Nq) @ (..., Nq, Dv) -> (..., Nk, Dv)
    dprobs = dropout_backward(dout @ np.swapaxes(v, -1, -2), dropout_cache)  # (..., Nq, Nk)
    dscores = softmax_backward(dprobs, SoftmaxCache(probs, -1))  # dS (..., Nq, Nk)
    # the scale multiplies the products (N x D numbers each), not dS (Nq x Nk)
    dq = (dscores @ k) * q.dtype.type(scale)  # (..., Nq, D)
    dk = (np.swapaxes(dscores, -1, -2) @ q) * q.dtype.type(scale)  # (..., Nk, D)
    return tuple(grad.astype(dtype, copy=False) for grad in (dq, dk, dv))


# ---------------------------------------------------------------- cross-attention (one head)


def cross_attention_forward(x, memory, w_q, w_k, w_v, memory_mask=None):
    """One head of cross-attention, the bridge of an encoder-decoder (seed §5): queries from the
    decoder's x (B, Tq, C), keys and values from the encoder's output memory (B, Tk, C):

        q = x W_q^T,  k = memory W_k^T,  v = memory W_v^T,  out = softmax(q k^T / sqrt(D)) v

    with W_q, W_k, W_v (D, C). memory_mask (B, Tk) bool, False at the source's padding (None: no
    padding), whose weight is 0. (`layers.CrossAttention` is the multi-head layer, with biases.)
    """
    q, k, v = x @ w_q.T, memory @ w_k.T, memory @ w_v.T  # (B, Tq, D), (B, Tk, D), (B, Tk, D)
    keys = None if memory_mask is None else np.asarray(memory_mask)[:, None, :]  # (B, 1, Tk)
    out, attention = attention_forward(q, k, v, attn_mask=keys)  # (B, Tq, D)
    return out, (x, memory, w_q, w_k, w_v, attention)


def cross_attention_backward(dout, cache):
    """(dx, dmemory, dw_q, dw_k, dw_v): attention's dq, dk, dv, then through the projections.
    The memory is read twice, as keys and as values, so dmemory = dk W_k + dv W_v: the gradient
    that flows back into the encoder."""
    x, memory, w_q, w_k, w_v, attention = cache
    dq, dk, dv = attention_backward(dout, attention)  # (B, Tq, D), (B, Tk, D), (B, Tk, D)
    dmemory = dk @ w_k + dv @ w_v  # (B, Tk, C)
    return (dq @ w_q, dmemory, np.einsum("btd,btc->dc", dq, x),
            np.einsum("btd,btc->dc", dk, memory), np.einsum("btd,btc->dc", dv, memory))


# ---------------------------------------------------------------- head gates: y_h = g_h x_h


def head_gate_forward(heads, gate):
    """out[b, h] = gate[h] * heads[b, h]: one multiplier per attention head's output (Michel et
    al. 2019). gate = 1 leaves a head as it is, 0 removes it; the gradient of the loss with respect
    to the gate measures how much the head matters.

    heads (B, H, T, D); gate (H,), shared by the batch, or (B, H), one gate per example, finite
    (a gate of another shape would broadcast over the wrong axis, or fail deep inside NumPy).
    """
    if heads.ndim != 4 or gate.shape not in ((heads.shape[1],), heads.shape[:2]):
        raise ValueError(f"head_gate: gate must have shape (H,) or (B, H) for heads (B, H, T, D) "
                         f"of shape {heads.shape}, got {gate.shape}")
    check_finite("head_gate: gate", gate)  # a NaN gate would make the head's output NaN
    return heads * gate[..., None, None], (heads, gate)  # (B, H, T, D)


def head_gate_backward(dout, cache):
    """dheads = gate * dout;  dgate[b, h] = sum_{t, d} dout[b, h, t, d] heads[b, h, t, d]
    (the head's output dotted with its upstream gradient), summed over b for a shared gate."""
    heads, gate = cache
    dheads = dout * gate[..., None, None]  # (B, H, T, D)
    dgate = np.einsum("bhtd,bhtd->bh", dout, heads)  # (B, H)
    return dheads, (dgate if gate.ndim == 2 else dgate.sum(axis=0))


# ---------------------------------------------------------------- cross-entropy


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray  # (N, V), in the working dtype (float32 for float16 logits)
    targets: np.ndarray  # (N,), ignore_index replaced by 0
    keep: np.ndarray  # (N,) bool
    n_kept: int
    logits_shape: tuple
    logits_dtype: np.dtype  # the gradient comes back in the logits' dtype


def cross_entropy_forward(logits, targets, ignore_index=-100):
    """Mean over kept positions of -log softmax(logits)[target].

    logits (..., V), targets (...) integer; positions whose target is ignore_index do not count.
    log softmax = x - logsumexp(x), with logsumexp computed as m + log sum exp(x - m), m = max x.
    If every target is ignored the loss is 0 (and so is its gradient), not NaN. float16 logits
    are computed in float32: the loss is a float32, the gradient float16.
    """
    targets = np.asarray(targets)
    check_cross_entropy_inputs(logits, targets, ignore_index, np.ndarray)
    vocab = logits.shape[-1]
    work = np.promote_types(logits.dtype, np.float32)
    flat_logits = logits.reshape(-1, vocab).astype(work, copy=False)  # (N, V)
    flat_targets = targets.reshape(-1)  # (N,)
    keep = flat_targets != ignore_index
    safe_targets = np.where(keep, flat_targets, 0)
    row_max = flat_logits.max(axis=-1, keepdims=True)
    shifted = flat_logits - row_max
    log_norm = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    log_probs = shifted - log_norm  # (N, V)
    n_kept = int(keep.sum())
    picked = log_probs[np.arange(len(safe_targets)), safe_targets]  # (N,)
    loss = np.where(keep, -picked, 0.0).sum() / max(n_kept, 1)  # +0.0 when all are ignored
    cache = CrossEntropyCache(np.exp(log_probs), safe_targets, keep, n_kept, logits.shape,
                              logits.dtype)
    return loss, cache


def cross_entropy_backward(cache, dloss=1.0):
    """d loss / d logits = (softmax(logits) - onehot(target)) / n_kept on kept rows, 0 elsewhere."""
    probs, targets, keep, n_kept, logits_shape, logits_dtype = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(targets)), targets] -= 1.0
    dlogits *= (keep[:, None] * (dloss / max(n_kept, 1))).astype(probs.dtype)
    return dlogits.reshape(logits_shape).astype(logits_dtype, copy=False)
