"""Lesson 10 (looking inside a model, making it smaller): your implementations. Replace each
`raise NotImplementedError` with your code, then grade it:

    minilm check lessons/exercises/10_compression_interpretability.py

Each function has the library's name and signature: `minilm.compress.quantize` (the first two),
`minilm.numpy.functional` (the head gate) and `minilm.compress.distill` (the distillation loss).
A forward returns (out, cache); its backward gets the cache back, whatever you put in it.
"""

import numpy as np  # noqa: F401 - you will need them
from scipy.special import log_softmax  # noqa: F401 - log(softmax(x)) without overflow


def quantize_per_channel(weight, bits=8):
    """Symmetric quantization of each row of `weight` (out, in): returns (q, scale) with
    q an int8 array of the weight's shape and scale one float per row, such that
    weight ~ q * scale[:, None].

    qmax = 2 ** (bits - 1) - 1 (127 for 8 bits); scale = max |row| / qmax, so that the row's
    largest weight becomes +-qmax; q = round(weight / scale), clipped to [-qmax, qmax]. A row of
    zeros would get scale 0: give it scale 1 (its q is 0 either way)."""
    raise NotImplementedError


def dequantize_per_channel(q, scale):
    """The weight the integers stand for: q * scale, row i multiplied by scale[i]."""
    raise NotImplementedError


def head_gate_forward(heads, gate):
    """out[b, h] = gate[h] * heads[b, h] for a gate (H,) shared by the batch, or
    gate[b, h] * heads[b, h] for a gate (B, H); heads (B, H, T, D). Returns (out, cache)."""
    raise NotImplementedError


def head_gate_backward(dout, cache):
    """(dheads, dgate): dheads = gate * dout; dgate[b, h] = sum over t and d of
    dout[b, h, t, d] * heads[b, h, t, d], summed over b when the gate is (H,). dgate has the
    gate's shape."""
    raise NotImplementedError


def distillation_loss_forward(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5):
    """L = alpha T^2 KL(p || q) + (1 - alpha) CE, for logits (N, L) and labels (N,):

        p = softmax(teacher_logits / T), q = softmax(student_logits / T)
        KL = sum_k p_k (log p_k - log q_k), averaged over the N examples
        CE = cross-entropy of student_logits (at T = 1) with the labels, averaged over the
             examples whose label is not -100 (0 if there are none)

    Returns (loss, cache)."""
    raise NotImplementedError


def distillation_loss_backward(cache, dloss=1.0):
    """d L / d student_logits (N, L), times dloss."""
    raise NotImplementedError
