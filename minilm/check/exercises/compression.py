"""Lesson 10, looking inside and making smaller: per-channel int8 quantization
(`minilm.compress.quantize`), the per-head gate whose gradient measures a head's importance
(`minilm.numpy.functional.head_gate_*`) and the knowledge-distillation loss
(`minilm.compress.distill.distillation_loss_*`).

Oracles: the rounding bound itself (|w - s q| <= s/2, 1e-12 relative for the float rounding),
`torch.quantize_per_channel` given the learner's scales (the same integers), the definitions of
the range and of dequantization (exact); for the two op pairs torch in float64 (TORCH_TOL = 1e-10:
`kl_div(batchmean) * T^2` and cross-entropy, DistilBERT's formula; heads * gate) and finite
differences of the learner's own forward (FD_TOL = 1e-8; worst seen with the library over 300
examples: 4e-11 for the gate, 4e-11 for the distillation loss).
"""

from __future__ import annotations

import numpy as np

from minilm.check.exercises.language_models import FD_TOL, TORCH_TOL
from minilm.check.framework import (
    Failure,
    as_array,
    as_float32,
    assert_close,
    assert_float32,
    assert_true,
    exercise,
    gradient_error,
    pair,
    prop,
    returned,
)
from minilm.testing.oracles import numerical_gradient
from minilm.testing.strategies import distillation_cases, head_gate_cases, quantization_cases

LESSON = "10"

exercise("quantize_per_channel", LESSON, "quantize_per_channel(weight, bits=8) -> (q, scale)",
         "symmetric quantization of each row: scale = max|row| / (2^(bits-1) - 1), q = "
         "round(w / scale) as int8")
exercise("dequantize_per_channel", LESSON, "dequantize_per_channel(q, scale) -> weight",
         "the weight the integers stand for: q * scale, one scale per row")
exercise("head_gate_forward", LESSON, "head_gate_forward(heads, gate) -> (out, cache)",
         "multiply each attention head's output by its gate: gate (H,) or (B, H)")
exercise("head_gate_backward", LESSON, "head_gate_backward(dout, cache) -> (dheads, dgate)",
         "the gate's gradient (a head's importance) and the heads'")
exercise("distillation_loss_forward", LESSON,
         "distillation_loss_forward(student_logits, teacher_logits, labels, temperature=2.0, "
         "alpha=0.5) -> (loss, cache)",
         "alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) cross-entropy(s, labels)")
exercise("distillation_loss_backward", LESSON,
         "distillation_loss_backward(cache, dloss=1.0) -> dstudent_logits",
         "the gradient of the distillation loss with respect to the student's logits")


# ---------------------------------------------------------------- quantization


def _quantized(impl, case):
    q, scale = returned(impl.quantize_per_channel(case["weight"], case["bits"]),
                        "quantize_per_channel", ("q", "scale"))
    rows = case["weight"].shape[0]
    assert_true(q.shape == case["weight"].shape, f"q has shape {q.shape}, expected the "
                                                 f"weight's {case['weight'].shape}")
    assert_true(scale.shape == (rows,), f"scale has shape {scale.shape}, expected ({rows},): one "
                                        "per row (output channel)")
    return q, scale


@prop("quantize_per_channel", "stores int8 integers within +-(2^(bits-1) - 1), a row's largest "
      "|w| at the end of the range", quantization_cases(),
      hint="scale = max|row| / qmax with qmax = 2 ** (bits - 1) - 1 (127 for 8 bits): the "
           "largest weight becomes +-qmax; cast with .astype(np.int8) after rounding")
def quantized_integers_fill_the_range(impl, case):
    q, _ = _quantized(impl, case)
    assert_true(q.dtype == np.int8, f"q is {q.dtype}; store the integers as int8 (1 byte each)")
    qmax = 2 ** (case["bits"] - 1) - 1
    widest = np.abs(q.astype(np.int64)).max(axis=1)
    assert_true(widest.max() <= qmax, f"an integer of magnitude {widest.max()} does not fit "
                                      f"{case['bits']} bits symmetric (at most {qmax})")
    nonzero = np.abs(case["weight"]).max(axis=1) > 0
    assert_true(np.all(widest[nonzero] == qmax),
                f"rows' largest |q| are {widest.tolist()}, expected {qmax} for every non-zero "
                "row: one scale per row, set by that row's largest |w|")


@prop("quantize_per_channel", "moves no weight by more than half a step: |w - scale q| <= scale/2",
      quantization_cases(), hint="round to the nearest integer (np.round), not towards zero "
                                 "(astype(int) truncates); a row of zeros needs a scale > 0")
def quantization_error_is_at_most_half_a_step(impl, case):
    q, scale = _quantized(impl, case)
    assert_true(np.all(np.isfinite(scale)) and np.all(scale > 0),
                f"scales {scale.tolist()}: each must be a positive number (a row of zeros too: "
                "any positive scale gives q = 0)")
    weight = case["weight"]
    error = np.abs(weight - q.astype(np.float64) * scale[:, None])
    ratio = error / (scale[:, None] / 2)
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert_true(ratio.max() <= 1 + 1e-12,
                f"weight[{worst[0]}, {worst[1]}] = {weight[worst]:.6g} comes back as "
                f"{q[worst]} * {scale[worst[0]]:.6g}: off by {error[worst]:.3g}, more than half "
                f"a step ({scale[worst[0]] / 2:.3g})", float(ratio.max()))


@prop("quantize_per_channel", "gives the integers torch.quantize_per_channel gives (8 bits)",
      quantization_cases(bits=8), hint="round half to even, as np.round does; q = "
                                       "round(w / scale), then clip to [-127, 127]")
def quantization_matches_torch(impl, case):
    import torch

    case = {**case, "weight": case["weight"].astype(np.float32)}  # torch quantizes float32
    q, scale = _quantized(impl, case)
    scale = np.where(scale > 0, scale, 1.0)
    theirs = torch.quantize_per_channel(torch.from_numpy(case["weight"]),
                                        torch.from_numpy(scale.astype(np.float64)),
                                        torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8)
    expected = theirs.int_repr().numpy()
    differ = np.argwhere(expected != q)
    if len(differ):
        i, j = differ[0]
        raise Failure(f"q[{i}, {j}] = {q[i, j]}, torch gives {expected[i, j]} for weight "
                      f"{case['weight'][i, j]:.6g} / scale {scale[i]:.6g} "
                      f"({len(differ)} integers differ)")


@prop("dequantize_per_channel", "returns q * scale, one scale per row", quantization_cases(),
      hint="scale[:, None] multiplies row i by scale[i]; scale[None, :] would scale columns")
def dequantize_scales_rows(impl, case):
    rng = np.random.default_rng(case["weight"].size)
    qmax = 2 ** (case["bits"] - 1) - 1
    q = rng.integers(-qmax, qmax + 1, case["weight"].shape).astype(np.int8)
    scale = rng.uniform(0.01, 2.0, case["weight"].shape[0])
    weight = as_array(impl.dequantize_per_channel(q, scale), "weight")
    assert_close("dequantized weight", q.astype(np.float64) * scale[:, None], weight, 1e-12)


@prop("dequantize_per_channel", "undoes quantize_per_channel to within half a step",
      quantization_cases(), needs=("quantize_per_channel",),
      hint="dequantize(quantize(w)) = scale * round(w / scale)")
def dequantize_inverts_quantize(impl, case):
    q, scale = _quantized(impl, case)
    back = as_array(impl.dequantize_per_channel(q, scale), "weight")
    error = np.abs(back - case["weight"]).max(axis=1) / (np.maximum(scale, 1e-300) / 2)
    assert_true(error.max() <= 1 + 1e-12, f"a row comes back {error.max():.3g} half-steps away "
                                          "from the weight", float(error.max()))


# ---------------------------------------------------------------- the head gate


def _gate_forward(impl, case):
    return pair(impl.head_gate_forward(case["heads"], case["gate"]), "head_gate_forward")


@prop("head_gate_forward", "multiplies head h's output by gate[h] (or gate[b, h])",
      head_gate_cases(), hint="heads * gate[..., None, None]: the gate broadcast over T and D")
def head_gate_forward_scales_heads(impl, case):
    out = as_array(_gate_forward(impl, case)[0], "out")
    assert_close("out", case["heads"] * case["gate"][..., None, None], out, TORCH_TOL)


def _gate_gradients(impl, case):
    """The learner's (dheads, dgate); a dgate not of the gate's shape fails with a hint of its
    own, in every property that reads it (the float32 one's hint is about dtypes)."""
    _, cache = _gate_forward(impl, case)
    dheads, dgate = returned(impl.head_gate_backward(case["dout"], cache), "head_gate_backward",
                             ("dheads", "dgate"))
    if dgate.shape != case["gate"].shape:
        raise Failure(f"dgate has shape {dgate.shape}, expected the gate's {case['gate'].shape}: "
                      "a gate shared by the batch sums its gradient over the batch",
                      hint="(dout * heads).sum(axis=(-2, -1)) is (B, H); for a gate of shape "
                           "(H,) sum it over the batch too (axis 0)")
    return dheads, dgate


@prop("head_gate_backward", "is the gradient of your head_gate_forward (finite differences)",
      head_gate_cases(), needs=("head_gate_forward",),
      hint="dheads = dout * gate; dgate[b, h] = sum over t and d of dout * heads, then summed "
           "over b when the gate is (H,)")
def head_gate_backward_is_the_gradient(impl, case):
    dheads, dgate = _gate_gradients(impl, case)
    error = gradient_error(lambda: _gate_forward(impl, case)[0], case["dout"],
                           {"dheads": (case["heads"], dheads), "dgate": (case["gate"], dgate)})
    assert_true(error <= FD_TOL, f"gradients vs finite differences: error {error:.3g} > "
                                 f"{FD_TOL:g}", error)


@prop("head_gate_backward", "matches torch autograd (float64)", head_gate_cases(),
      needs=("head_gate_forward",), hint="dgate = (dout * heads).sum(axis=(-2, -1)), summed "
                                         "over the batch for a shared gate")
def head_gate_backward_matches_torch(impl, case):
    from minilm.testing.oracles import torch_forward_backward

    dheads, dgate = _gate_gradients(impl, case)
    _, (theirs_heads, theirs_gate) = torch_forward_backward(
        lambda h, g: h * g[..., None, None], [case["heads"], case["gate"]], case["dout"])
    assert_close("dheads vs torch autograd", theirs_heads, dheads, TORCH_TOL)
    assert_close("dgate vs torch autograd", theirs_gate, dgate, TORCH_TOL)


@prop("head_gate_backward", "float32 inputs give float32 outputs and gradients",
      head_gate_cases().map(as_float32), needs=("head_gate_forward",), max_examples=5,
      hint="keep the inputs' dtype: no np.zeros(shape) or float64 arrays in between")
def head_gate_keeps_float32(impl, case):
    out = as_array(_gate_forward(impl, case)[0], "out")
    dheads, dgate = _gate_gradients(impl, case)
    assert_float32(out=out, dheads=dheads, dgate=dgate)


# ---------------------------------------------------------------- the distillation loss


def _distillation(impl, case, student=None):
    student = case["student_logits"] if student is None else student
    result = impl.distillation_loss_forward(student, case["teacher_logits"], case["labels"],
                                            case["temperature"], case["alpha"])
    return pair(result, "distillation_loss_forward")


def torch_distillation_loss(case) -> float:
    """DistilBERT's formula from torch's own pieces: kl_div(batchmean) * T^2, cross-entropy."""
    import torch

    s, t = torch.from_numpy(case["student_logits"]), torch.from_numpy(case["teacher_logits"])
    temperature, alpha = case["temperature"], case["alpha"]
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / temperature, -1),
                                    torch.softmax(t / temperature, -1), reduction="batchmean")
    labels = torch.as_tensor(case["labels"])
    kept = labels != -100
    ce = (torch.nn.functional.cross_entropy(s[kept], labels[kept]) if kept.any()
          else torch.tensor(0.0, dtype=torch.float64))
    return float(alpha * temperature**2 * kl + (1 - alpha) * ce)


@prop("distillation_loss_forward", "matches torch: kl_div(batchmean) * T^2 and cross-entropy",
      distillation_cases(),
      hint="KL(p || q) = sum p (log p - log q) with p = softmax(t / T), q = softmax(s / T), "
           "averaged over examples and times T^2; the cross-entropy skips labels of -100")
def distillation_loss_matches_torch(impl, case):
    loss = float(as_array(_distillation(impl, case)[0], "loss"))
    assert_close("loss vs torch", torch_distillation_loss(case), loss, TORCH_TOL)


@prop("distillation_loss_backward", "is the gradient of your distillation_loss_forward "
      "(finite differences)", distillation_cases(), needs=("distillation_loss_forward",),
      hint="alpha T (q - p) / N for the soft part (T^2 times the 1/T of s/T), plus (1 - alpha) "
           "times cross-entropy's (softmax(s) - onehot) / n_labelled")
def distillation_backward_is_the_gradient(impl, case):
    _, cache = _distillation(impl, case)
    grad = as_array(impl.distillation_loss_backward(cache), "dstudent_logits")
    numeric = numerical_gradient(lambda s: _distillation(impl, case, s)[0],
                                 case["student_logits"].copy())
    assert_close("gradient vs finite differences", numeric, grad, FD_TOL)


@prop("distillation_loss_backward", "scales with dloss", distillation_cases(),
      needs=("distillation_loss_forward",), hint="multiply the whole gradient by dloss")
def distillation_backward_scales(impl, case):
    _, cache = _distillation(impl, case)
    one = as_array(impl.distillation_loss_backward(cache), "dstudent_logits")
    _, cache = _distillation(impl, case)
    three = as_array(impl.distillation_loss_backward(cache, dloss=3.0), "dstudent_logits")
    assert_close("gradient with dloss=3", 3 * one, three, 1e-12)


@prop("distillation_loss_backward", "float32 logits give a float32 gradient",
      distillation_cases().map(as_float32), needs=("distillation_loss_forward",),
      max_examples=5, hint="keep the logits' dtype: a bool mask divided by a NumPy count is "
                           "float64 (np.where(mask, x, 0) / int(count) is not), or cast at the "
                           "end with .astype(student_logits.dtype)")
def distillation_backward_keeps_float32(impl, case):
    _, cache = _distillation(impl, case)
    assert_float32(dstudent_logits=impl.distillation_loss_backward(cache))
