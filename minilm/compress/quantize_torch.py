"""The PyTorch twin of `quantize.py`: the same int8 dynamic quantization (weights per output
channel, inputs per token, symmetric, 127 levels each side), with the integer matrix product run
by an int8 kernel: `torch._int_mm` (int8 x int8 -> int32, exact), where the speed comes from.

The arithmetic is the NumPy twin's, step for step (read the math there); both round halves to
even, so the same inputs give the same integers (tests/test_compress.py).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from minilm.common.checks import check_finite
from minilm.compress.quantize import QMAX, no_backward, replace_modules
from minilm.torch.layers import Linear


def quantize_per_channel(rows: torch.Tensor, name: str = "weight"):
    """Each row of `rows` (..., n), the tensor called `name` (a weight, or a Linear's input x) ->
    (q int8 (..., n), scale (...,)); a row of zeros gets scale 1. A NaN or inf is refused, as in
    NumPy: its row's scale would be NaN or inf and the row would round to zeros, silently."""
    scale = rows.abs().amax(dim=-1) / QMAX  # (...,)
    if not bool(scale.isfinite().all()):  # a NaN or inf makes its row's scale NaN or inf:
        check_finite(name, rows)  # find it (checking the scales alone costs 1/n of the rows)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / scale[..., None]).clamp(-QMAX, QMAX)  # (..., n)
    return q.to(torch.int8), scale


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (N, K) int8 @ b (K, M) int8 -> (N, M) int32, exactly. On the CPU by `torch._int_mm`;
    elsewhere in float64 (exact below 2^53), since CUDA's int8 kernel needs N > 16 and K, M
    multiples of 8."""
    if a.device.type == "cpu":
        if b.shape[0] == 1:  # torch 2.13's _int_mm misreads a (1, M) view with strides (1, 1)
            b = b.clone(memory_format=torch.contiguous_format)  # strides (M, 1)
        return torch._int_mm(a, b)
    return (a.double() @ b.double()).to(torch.int32)


class QuantizedLinear(nn.Module):
    """A Linear with an int8 weight (`weight`, (out, in)), a float scale per output channel
    (`scale`) and its float bias, as buffers; the input is quantized per token at every call.
    Inference only: rounding has no useful gradient, so an input that needs one is refused."""

    def __init__(self, linear: Linear, name: str = "this Linear"):
        super().__init__()
        self.name = name
        with torch.no_grad():
            weight, scale = quantize_per_channel(linear.weight)
        self.register_buffer("weight", weight)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x):
        if x.requires_grad and torch.is_grad_enabled():  # only the input's scale would carry one
            raise ValueError(no_backward(self.name))
        rows = x.reshape(-1, x.shape[-1])  # (N, in)
        xq, x_scale = quantize_per_channel(rows, "x")  # (N, in) int8, (N,)
        integer_sums = int8_matmul(xq, self.weight.t())  # (N, out) int32
        out = integer_sums.to(x.dtype) * x_scale[:, None] * self.scale  # (N, out)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], -1)  # (..., out)


def quantize(model):
    """A copy of the twin `model` with every Linear quantized (see `minilm.compress.quantize`),
    its remaining float parameters (embeddings, LayerNorms) frozen: it is for inference."""
    quantized = copy.deepcopy(model)
    names = {id(module): name for name, module in quantized.named_modules()}
    replace_modules(quantized, Linear, lambda linear: QuantizedLinear(linear, names[id(linear)]))
    return quantized.requires_grad_(False).eval()
