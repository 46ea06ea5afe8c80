"""int8 post-training quantization: every Linear of a trained model computes in 8-bit integers.

A float32 weight takes 4 bytes; an int8 one takes 1. Quantizing means storing each number as a
small integer times a scale shared by a whole row. Symmetric, per row (per *channel* for a weight):

    s_i = max_j |W_ij| / 127          one float per output channel i of W (out, in)
    Q_ij = round(W_ij / s_i)          in [-127, 127]: int8 (-128 is left out, so that -Q fits)
    W_ij ~ s_i Q_ij,   |W_ij - s_i Q_ij| <= s_i / 2        (rounding moves by at most half a step)

Per channel rather than one scale for the whole matrix: rows differ in size, and one outlier row
would otherwise set the step for all of them. Post-training: nothing is retrained; the quantized
model is the trained one, rounded.

Dynamic quantization (`quantize` here): the input x (N, in) of each Linear is quantized too, per
row (per token) at every call, with the same function, so that the matrix product runs on integers
(`torch.ao.quantization.quantize_dynamic` is dynamic too, but coarser by default: one scale for a
whole weight matrix, and one for each call's whole batch of inputs, unsigned with an offset):

    r_t = max_j |x_tj| / 127,   X_tj = round(x_tj / r_t)
    y_ti = sum_j x_tj W_ij + b_i  ~  r_t s_i sum_j X_tj Q_ij + b_i        the sum exact in int32

Writing x = r X + e_x and W = s Q + e_w (|e_x| <= r/2, |e_w| <= s/2), the error of y_ti is
sum_j (r_t X_tj e_w,ij + s_i Q_ij e_x,tj + e_x,tj e_w,ij), at most
sum_j (|r_t X_tj| s_i / 2 + |s_i Q_ij| r_t / 2 + r_t s_i / 4): `int8_linear_error_bound`, which the
tests hold every output to. In practice the errors have random signs and mostly cancel.

    small = quantize(model)        # a copy; either twin; every Linear -> QuantizedLinear
    model_bytes(small)             # int8 weights + float32 scales and the rest

Only the Linear layers change (Q, K, V, attention output, feed-forward, pooler, classifier: 11M of
MiniLM-L6's 22.7M weights); embeddings and LayerNorms stay float32. A quantized model is for
inference: it has no backward. In NumPy the integer sums run as float64 matrix products, exact for
integers below 2^53 (here below 1536 * 127^2 ~ 2.5e7): NumPy has no int8 matrix product, so the
reference shows the arithmetic and the PyTorch twin (`quantize_torch.py`, int8 x int8 -> int32 by
`torch._int_mm`) the speed.
"""

from __future__ import annotations

import copy

import numpy as np

from minilm.common.backends import is_torch_model
from minilm.common.checks import check_finite, check_floating, int_at_least
from minilm.numpy.layers import Linear, Module

QMAX = 127  # int8, symmetric


def quantize_per_channel(weight, bits: int = 8):
    """Symmetric quantization of each row of `weight` (..., n): (q int8 (..., n), scale (...,)),
    weight ~ q * scale[..., None]. `weight` holds finite floating-point numbers (an integer
    weight's scale would be cast to 0, an inf one's make its row NaN); bits an int in [2, 8]. A
    row of zeros gets scale 1 (and q = 0)."""
    return _quantize_rows("weight", weight, bits)


def _quantize_rows(name: str, rows, bits: int = 8):
    """`quantize_per_channel` of the array called `name` (the weight, or a Linear's input x)."""
    if int_at_least("bits", bits, 2) > 8:
        raise ValueError(f"bits must be at most 8 (the integers are stored as int8), got {bits}")
    rows = np.asarray(rows)
    check_floating(name, rows)
    qmax = 2 ** (bits - 1) - 1  # 127 for 8 bits
    scale = np.abs(rows).max(axis=-1) / qmax  # (...,): one per row
    if not np.isfinite(scale).all():  # a NaN or inf makes its row's scale NaN or inf:
        check_finite(name, rows)  # find it (checking the scales alone costs 1/n of the rows)
    scale = np.where(scale > 0, scale, 1).astype(rows.dtype, copy=False)
    q = np.clip(np.round(rows / scale[..., None]), -qmax, qmax)  # (..., n), guards rounding
    return q.astype(np.int8), scale


def dequantize_per_channel(q, scale):
    """The weight the integers stand for: q * scale[..., None], in the scale's dtype."""
    return np.asarray(q).astype(scale.dtype) * scale[..., None]


def _check_int8_weight(x, q, scale, bias=None) -> None:
    """q an int8 (out, in) array, scale and bias (out,), x's last axis `in`: a mismatch would
    broadcast, or fail inside NumPy's matmul in words that name no argument."""
    q, scale = np.asarray(q), np.asarray(scale)
    if q.ndim != 2 or q.dtype != np.int8:
        raise ValueError(f"q must be an int8 (out, in) array, got {q.dtype} of shape {q.shape}")
    for name, value in (("scale", scale), ("bias", bias)):
        if value is not None and np.shape(value) != q.shape[:1]:
            raise ValueError(f"{name} must have shape (out,) = {q.shape[:1]} for q of shape "
                             f"{q.shape}, got {np.shape(value)}")
    if np.ndim(x) == 0 or np.shape(x)[-1] != q.shape[1]:
        raise ValueError(f"x must be (..., in) with in = {q.shape[1]} (q's columns), got shape "
                         f"{np.shape(x)}")


def int8_linear_forward(x, q, scale, bias=None):
    """y = x W^T + b with W = q * scale (int8, per output channel) and x quantized per row:

        y[t, i] = r_t s_i sum_j X[t, j] Q[i, j] + b_i

    x (..., in); q (out, in) int8; scale (out,); bias None or (out,); returns (..., out) in x's
    dtype."""
    _check_int8_weight(x, q, scale, bias)
    xq, x_scale = _quantize_rows("x", x)  # (..., in) int8, (...,): one scale per token
    integer_sums = xq.astype(np.float64) @ q.T.astype(np.float64)  # (..., out): exact integers
    out = integer_sums * x_scale[..., None] * scale  # (..., out)
    if bias is not None:
        out = out + bias
    return out.astype(x.dtype, copy=False)


def int8_linear_error_bound(x, q, scale):
    """The most int8_linear_forward(x, q, scale) can differ from x (q * scale)^T, from the rounding
    of both operands (module docstring): r_t s_i (sum_j |X_tj| / 2 + sum_j |Q_ij| / 2 + n / 4),
    (..., out)."""
    _check_int8_weight(x, q, scale)
    xq, x_scale = _quantize_rows("x", x)  # (..., n), (...,)
    x_sums = np.abs(xq.astype(np.float64)).sum(axis=-1)[..., None]  # (..., 1)
    q_sums = np.abs(q.astype(np.float64)).sum(axis=-1)  # (out,)
    n = q.shape[-1]
    return x_scale[..., None] * scale * (x_sums / 2 + q_sums / 2 + n / 4)  # (..., out)


class QuantizedLinear(Module):
    """A Linear whose weight is int8 with a scale per output channel and whose input is quantized
    per row at every call (`int8_linear_forward`). Made from a Linear by `quantize`, whose weight
    it takes out of the model's parameters; the bias stays there, in float32. Inference only."""

    def __init__(self, linear: Linear):
        store, self.name = linear.store, linear.name
        weight = store.params.pop(f"{self.name}.weight")
        store.grads.pop(f"{self.name}.weight")
        self.weight, self.scale = quantize_per_channel(weight)  # (out, in) int8, (out,)
        self.bias = store.params[f"{self.name}.bias"] if linear.bias else None

    def forward(self, x):
        return int8_linear_forward(x, self.weight, self.scale, self.bias)

    def backward(self, dout):
        raise ValueError(no_backward(self.name))


def no_backward(name: str) -> str:
    """What a quantized layer `name` says when asked for a gradient (either twin)."""
    return (f"{name} is quantized: an int8 model is for inference and has no backward (train the "
            "float model, then quantize it)")


def check_not_quantized(model, what: str,
                        advice: str = "use the float model, then quantize the result") -> None:
    """Refuse to `what` ("prune its heads", ...) for a quantized `model` (either twin): that needs
    the float weights, which quantizing took out of the model's parameters."""
    if is_torch_model(model):
        from minilm.compress.quantize_torch import QuantizedLinear as quantized_layer
        layers = model.modules()
    else:
        quantized_layer, layers = QuantizedLinear, _all_modules(model)
    if any(isinstance(layer, quantized_layer) for layer in layers):
        raise ValueError(f"cannot {what}: the model is quantized (its float weights are gone); "
                         f"{advice}")


def quantize(model):
    """A copy of `model` (either twin) with every Linear quantized to int8 (dynamic quantization:
    weights per output channel, inputs per token). `model` is left as it is."""
    if is_torch_model(model):
        from minilm.compress.quantize_torch import quantize as quantize_twin

        return quantize_twin(model)
    quantized = copy.deepcopy(model)
    replace_modules(quantized, Linear, QuantizedLinear)
    return quantized.eval()


def replace_modules(model, old_class, make) -> None:
    """Swap every `old_class` layer of `model` for make(layer), in place, wherever it is referred
    to: attributes and lists/tuples of layers, in the NumPy model's tree or, for the twin, also
    where the layer is registered under its checkpoint name. A layer referred to twice (a torch
    layer is registered once and referred to by the layer that computes with it) is made once."""
    made = {}

    def swap(value):
        if isinstance(value, old_class):
            if id(value) not in made:
                made[id(value)] = make(value)
            return made[id(value)]
        if isinstance(value, (list, tuple)) and any(isinstance(v, old_class) for v in value):
            return type(value)(swap(v) for v in value)
        return value

    for module in _all_modules(model):
        for name, value in list(vars(module).items()):
            vars(module)[name] = swap(value)
        registered = getattr(module, "_modules", None)  # a torch module's registered children
        if registered is not None:
            for name, child in list(registered.items()):
                registered[name] = swap(child)


def _all_modules(model) -> list:
    """Every module of either twin once (a task head's encoder included), before any swap."""
    seen, order, stack = set(), [], [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        order.append(module)
        children = list(vars(module).values()) + list(getattr(module, "_modules", {}).values())
        for child in children:
            items = child if isinstance(child, (list, tuple)) else [child]
            stack.extend(item for item in items if _is_module(item))
    return order


def _is_module(value) -> bool:
    if isinstance(value, Module):
        return True
    return is_torch_model(value)


def model_bytes(model) -> int:
    """Bytes of everything a model stores: its float parameters, plus the int8 weights and scales
    of its quantized layers (either twin)."""
    if is_torch_model(model):
        return sum(t.numel() * t.element_size() for t in model.state_dict().values())
    quantized = [m for m in _all_modules(model) if isinstance(m, QuantizedLinear)]
    return (sum(p.nbytes for p in model.params.values())
            + sum(m.weight.nbytes + m.scale.nbytes for m in quantized))
