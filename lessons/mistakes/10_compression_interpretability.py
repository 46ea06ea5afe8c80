"""Common mistakes of lesson 10, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import numpy as np
from scipy.special import log_softmax

from minilm.check.framework import mistake


@mistake("one scale for the whole matrix (per-tensor), so small rows lose their precision",
         breaks="stores int8 integers within +-(2^(bits-1) - 1), a row's largest |w| at the end "
                "of the range")
def quantize_per_channel(weight, bits=8):
    qmax = 2 ** (bits - 1) - 1
    scale = max(np.abs(weight).max() / qmax, 1e-12)
    q = np.clip(np.round(weight / scale), -qmax, qmax)
    return q.astype(np.int8), np.full(len(weight), scale)


@mistake("truncating instead of rounding (astype(int) cuts towards zero: up to a whole step off)",
         breaks="moves no weight by more than half a step: |w - scale q| <= scale/2")
def quantize_per_channel(weight, bits=8):  # noqa: F811 - each mistake is its own implementation
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(weight).max(axis=1) / qmax
    scale[scale == 0] = 1.0
    return (weight / scale[:, None]).astype(np.int8), scale


@mistake("scale = max|w| / 2^(bits-1): 128 levels, so the largest weight rounds to 128, which "
         "int8 wraps to -128",
         breaks="stores int8 integers within +-(2^(bits-1) - 1), a row's largest |w| at the end "
                "of the range")
def quantize_per_channel(weight, bits=8):  # noqa: F811
    levels = 2 ** (bits - 1)
    scale = np.abs(weight).max(axis=1) / levels
    scale[scale == 0] = 1.0
    return np.round(weight / scale[:, None]).astype(np.int8), scale


@mistake("q * scale: NumPy lines the scales up with the last axis, so they scale the columns",
         breaks="returns q * scale, one scale per row")
def dequantize_per_channel(q, scale):
    return q * scale


@mistake("dgate not summed over the batch for a shared gate (returns one row per example)",
         breaks="is the gradient of your head_gate_forward (finite differences)")
def head_gate_backward(dout, cache):
    heads, gate = cache
    return dout * gate[..., None, None], (dout * heads).sum(axis=(2, 3))


@mistake("dheads passed straight through, forgetting the gate's factor",
         breaks="is the gradient of your head_gate_forward (finite differences)")
def head_gate_backward(dout, cache):  # noqa: F811
    heads, gate = cache
    dgate = (dout * heads).sum(axis=(2, 3))
    return dout, dgate if gate.ndim == 2 else dgate.sum(axis=0)


@mistake("the T^2 factor left out: the soft term shrinks as 1/T^2 and the hard labels take over",
         breaks="matches torch: kl_div(batchmean) * T^2 and cross-entropy")
def distillation_loss_forward(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5):
    log_q = log_softmax(student_logits / temperature, axis=1)
    log_p = log_softmax(teacher_logits / temperature, axis=1)
    kl = (np.exp(log_p) * (log_p - log_q)).sum() / len(log_q)
    labelled = labels != -100
    ce = (-log_softmax(student_logits, axis=1)[labelled, labels[labelled]].sum()
          / max(labelled.sum(), 1))
    return alpha * kl + (1 - alpha) * ce, None


@mistake("soft-term gradient alpha T^2 (q - p) / N: the chain rule's 1/T from s / T forgotten",
         breaks="is the gradient of your distillation_loss_forward (finite differences)")
def distillation_loss_backward(cache, dloss=1.0):
    q, p, probs, labels, labelled, temperature, alpha = cache
    n, n_labelled = len(q), max(labelled.sum(), 1)
    onehot = np.zeros_like(probs)
    onehot[labelled, labels[labelled]] = 1.0
    dhard = (1 - alpha) * (probs - onehot) * labelled[:, None] / n_labelled
    return (alpha * temperature**2 * (q - p) / n + dhard) * dloss


@mistake("dloss ignored: right while the loss is the last op, wrong as soon as it is scaled",
         breaks="scales with dloss")
def distillation_loss_backward(cache, dloss=1.0):  # noqa: F811
    q, p, probs, labels, labelled, temperature, alpha = cache
    n, n_labelled = len(q), max(int(labelled.sum()), 1)
    onehot = np.zeros_like(probs)
    onehot[labelled, labels[labelled]] = 1.0
    dhard = (1 - alpha) * np.where(labelled[:, None], probs - onehot, 0.0) / n_labelled
    return alpha * temperature * (q - p) / n + dhard  # the upstream gradient dloss never used
