"""Lesson 10 (looking inside a model, making it smaller): reference solutions, written the way a
learner would."""

import numpy as np
from scipy.special import log_softmax


def quantize_per_channel(weight, bits=8):
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(weight).max(axis=1) / qmax  # one per row
    scale[scale == 0] = 1.0  # a row of zeros: any scale will do
    q = np.clip(np.round(weight / scale[:, None]), -qmax, qmax)
    return q.astype(np.int8), scale


def dequantize_per_channel(q, scale):
    return q * scale[:, None]


def head_gate_forward(heads, gate):
    return heads * gate[..., None, None], (heads, gate)  # the gate broadcast over T and D


def head_gate_backward(dout, cache):
    heads, gate = cache
    dheads = dout * gate[..., None, None]
    dgate = (dout * heads).sum(axis=(2, 3))  # (B, H): one per example
    if gate.ndim == 1:
        dgate = dgate.sum(axis=0)  # a gate shared by the batch collects every example's
    return dheads, dgate


def distillation_loss_forward(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5):
    n = len(student_logits)
    log_q = log_softmax(student_logits / temperature, axis=1)
    log_p = log_softmax(teacher_logits / temperature, axis=1)
    p = np.exp(log_p)
    kl = (p * (log_p - log_q)).sum() / n
    labelled = labels != -100
    log_probs = log_softmax(student_logits, axis=1)
    n_labelled = max(labelled.sum(), 1)
    ce = -log_probs[labelled, labels[labelled]].sum() / n_labelled
    loss = alpha * temperature**2 * kl + (1 - alpha) * ce
    return loss, (np.exp(log_q), p, np.exp(log_probs), labels, labelled, temperature, alpha)


def distillation_loss_backward(cache, dloss=1.0):
    q, p, probs, labels, labelled, temperature, alpha = cache
    n, n_labelled = len(q), max(int(labelled.sum()), 1)  # Python ints keep float32 float32
    dsoft = alpha * temperature * (q - p) / n  # T^2 * (q - p) / (T n)
    onehot = np.zeros_like(probs)
    onehot[labelled, labels[labelled]] = 1.0
    dhard = (1 - alpha) * np.where(labelled[:, None], probs - onehot, 0.0) / n_labelled
    return (dsoft + dhard) * dloss
