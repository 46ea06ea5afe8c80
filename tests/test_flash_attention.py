"""The Triton FlashAttention-2 kernel (kernels/flash_attention.py), forward and backward.

Without a GPU the kernel runs under the Triton interpreter (conftest sets TRITON_INTERPRET=1), so
shapes stay small here; the `gpu` tests cover long sequences and tensor-core fp16/bf16 math.

Outputs and the gradients dq, dk, dv are compared with the float64 reference `attention_reference`
run on the same (rounded) inputs, by the suite's one metric `relative_error(expected, actual)` =
max |expected - actual| / max(1, max |expected|):
- float32: relative_error <= FP32_TOLERANCE.
- float16 / bfloat16, FlashAttention's rule: the kernel's error may be at most twice the error of
  the same attention computed by PyTorch in that dtype, plus a floor of LOW_PRECISION_FLOOR units
  of the dtype's epsilon.
"""

import functools
import importlib
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minilm.kernels import flash_attention
from minilm.kernels.flash_attention import LAUNCHES, attention_reference
from minilm.testing.oracles import relative_error
from minilm.testing.strategies import attention_problems

# `minilm.kernels.flash_attention` the attribute is the function; the module itself comes from the
# import system (for monkeypatching its INTERPRETED flag).
flash_attention_module = importlib.import_module("minilm.kernels.flash_attention")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_TOLERANCE = 2e-5
LOW_PRECISION_FLOOR = 2.0
LOW_PRECISIONS = (torch.float16, torch.bfloat16)


def make_inputs(batch, heads, n_queries, n_keys, head_dim, dtype=torch.float32, seed=0):
    """Random q (B, H, Nq, D), k and v (B, H, Nk, D), and an upstream gradient like the output."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device=DEVICE, dtype=dtype)

    q = randn(batch, heads, n_queries, head_dim)
    k, v = randn(batch, heads, n_keys, head_dim), randn(batch, heads, n_keys, head_dim)
    return q, k, v, randn(batch, heads, n_queries, head_dim)


def output_and_grads(attention, q, k, v, dout, **options):
    """(out, dq, dk, dv) of attention(q, k, v, **options) for the upstream gradient dout."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = attention(*leaves, **options)
    out.backward(dout.to(out.dtype))
    return (out.detach(), *(t.grad for t in leaves))


def reference_output_and_grads(q, k, v, dout, dtype=torch.float64, **options):
    """The same, from the PyTorch reference computed in `dtype` (float64: the ground truth)."""
    reference = functools.partial(attention_reference, dtype=dtype)
    return output_and_grads(reference, *(t.to(dtype) for t in (q, k, v, dout)), **options)


def error(expected, actual):
    """relative_error of two torch tensors, on any device and in any dtype."""
    return relative_error(*(t.detach().double().cpu().numpy() for t in (expected, actual)))


def assert_fp32_close(actual, expected, what, tolerance=FP32_TOLERANCE):
    relative = error(expected, actual)
    assert relative <= tolerance, f"{what}: relative error {relative:.3g} > {tolerance:.3g}"


def fp32_tolerance(name, scale, head_dim):
    """dq and dk pass through dS = P * (dP - delta), a cancellation whose rounding error grows with
    |dP| ~ scale * sqrt(D) (delta = rowsum(dO * O) and dP = dO V^T are the same sums taken in a
    different order; with one key they are equal and dS is exactly 0). At the standard scale
    1/sqrt(D) that factor is 1; larger scales multiply the tolerance by it."""
    if name in ("dq", "dk") and scale is not None:
        return FP32_TOLERANCE * max(1.0, scale * math.sqrt(head_dim))
    return FP32_TOLERANCE


def assert_within_twice_baseline(actual, baseline, expected, dtype, what):
    """FlashAttention's rule: error(kernel) <= 2 * error(PyTorch in the same dtype) + floor."""
    bound = 2 * error(expected, baseline) + LOW_PRECISION_FLOOR * torch.finfo(dtype).eps
    relative = error(expected, actual)
    assert relative <= bound, f"{what}: relative error {relative:.3g} > {bound:.3g}"


def problem_tensors(problem, dtype):
    shape = [problem[name] for name in ("batch", "heads", "n_queries", "n_keys", "head_dim")]
    q, k, v, dout = make_inputs(*shape, dtype=dtype, seed=problem["seed"])
    key_mask = problem["key_mask"]
    options = {
        "causal": problem["causal"],
        "key_mask": None if key_mask is None else torch.from_numpy(key_mask).to(DEVICE),
        "scale": problem["scale"],
    }
    return (q, k, v, dout), options


NAMES = ("out", "dq", "dk", "dv")


# ---------------------------------------------------------------- agreement with the reference


@given(problem=attention_problems())
def test_float32_matches_float64_reference(problem):
    """Output and all three gradients agree with float64 attention, for any sizes, head dims
    (including non-powers of two), causal or not, key masks and scales."""
    tensors, options = problem_tensors(problem, torch.float32)
    kernel = output_and_grads(flash_attention, *tensors, **options)
    reference = reference_output_and_grads(*tensors, **options)
    for name, actual, expected in zip(NAMES, kernel, reference, strict=True):
        assert_fp32_close(
            actual, expected, name, fp32_tolerance(name, problem["scale"], problem["head_dim"])
        )


@pytest.mark.parametrize("dtype", LOW_PRECISIONS, ids=str)
@given(problem=attention_problems(scales=st.none()))
def test_low_precision_within_twice_pytorch_error(dtype, problem):
    """In fp16/bf16 the kernel is at most twice as far from float64 as PyTorch in the same dtype.

    At the standard scale 1/sqrt(D), as in FlashAttention's own tests. With much larger scales the
    softmax saturates, dS = P * (dP - delta) becomes a cancellation, and delta = rowsum(dO * O) read
    from the rounded low-precision O (as FlashAttention-2 does, to save memory) dominates dq and dk.
    """
    tensors, options = problem_tensors(problem, dtype)
    kernel = output_and_grads(flash_attention, *tensors, **options)
    baseline = reference_output_and_grads(*tensors, dtype=dtype, **options)
    reference = reference_output_and_grads(*tensors, **options)
    for name, actual, low, expected in zip(NAMES, kernel, baseline, reference, strict=True):
        assert actual.dtype == dtype, name
        assert_within_twice_baseline(actual, low, expected, dtype, name)


# ---------------------------------------------------------------- edge cases


def test_rows_with_nothing_to_attend_output_zero_and_get_zero_gradient():
    """Causal with Nq > Nk leaves the first Nq - Nk query rows without keys; a key mask of all False
    leaves a whole batch entry without keys. Those rows output exactly 0, receive and pass zero
    gradient, and nothing anywhere is NaN."""
    n_queries, n_keys = 45, 17
    q, k, v, dout = make_inputs(2, 2, n_queries, n_keys, 32, seed=1)
    key_mask = torch.ones(2, n_keys, dtype=torch.bool, device=DEVICE)
    key_mask[1] = False
    out, dq, dk, dv = output_and_grads(flash_attention, q, k, v, dout, causal=True,
                                       key_mask=key_mask)
    for name, tensor in zip(NAMES, (out, dq, dk, dv), strict=True):
        assert not tensor.isnan().any(), name
    empty_rows = n_queries - n_keys
    assert torch.equal(out[:, :, :empty_rows], torch.zeros_like(out[:, :, :empty_rows]))
    assert torch.equal(dq[:, :, :empty_rows], torch.zeros_like(dq[:, :, :empty_rows]))
    for name, tensor in zip(NAMES, (out, dq, dk, dv), strict=True):
        assert torch.equal(tensor[1], torch.zeros_like(tensor[1])), f"{name} of masked batch"
    reference = reference_output_and_grads(q, k, v, dout, causal=True, key_mask=key_mask)
    for name, actual, expected in zip(NAMES, (out, dq, dk, dv), reference, strict=True):
        assert_fp32_close(actual, expected, name)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_queries, n_keys", [(1, 1), (1, 37), (37, 1)])
def test_single_query_or_single_key(n_queries, n_keys, causal):
    """One-token sequences: decoding one query against a cache, or many queries and one key."""
    tensors = make_inputs(2, 1, n_queries, n_keys, 16, seed=2)
    kernel = output_and_grads(flash_attention, *tensors, causal=causal)
    reference = reference_output_and_grads(*tensors, causal=causal)
    for name, actual, expected in zip(NAMES, kernel, reference, strict=True):
        assert_fp32_close(actual, expected, name)


def test_causal_matches_pytorch_when_square():
    """For Nq == Nk the bottom-right causal mask is PyTorch's `is_causal`."""
    q, k, v, _ = make_inputs(1, 2, 50, 50, 32, seed=3)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert_fp32_close(flash_attention(q, k, v, causal=True), expected, "out")


def test_causal_is_aligned_bottom_right():
    """With Nq < Nk the queries are the *last* Nq positions (KV-cached decoding): the last Nq rows
    of a square causal call equal a call with only those Nq queries, and the last query sees every
    key, as in non-causal attention."""
    n_keys, n_queries = 53, 20
    q, k, v, _ = make_inputs(1, 2, n_keys, n_keys, 32, seed=4)
    full = flash_attention(q, k, v, causal=True)
    tail = flash_attention(q[:, :, -n_queries:], k, v, causal=True)
    assert_fp32_close(tail, full[:, :, -n_queries:], "out")
    last_query = flash_attention(q[:, :, -1:], k, v, causal=False)
    assert_fp32_close(tail[:, :, -1:], last_query, "last query")


def test_future_keys_do_not_change_past_outputs():
    """Causal attention: changing keys and values after position p leaves rows 0..p unchanged."""
    q, k, v, _ = make_inputs(2, 1, 40, 40, 24, seed=5)
    position = 22
    changed_k, changed_v = k.clone(), v.clone()
    changed_k[:, :, position + 1:] += 1.0
    changed_v[:, :, position + 1:] -= 2.0
    before = flash_attention(q, k, v, causal=True)
    after = flash_attention(q, changed_k, changed_v, causal=True)
    assert torch.equal(before[:, :, : position + 1], after[:, :, : position + 1])
    assert not torch.equal(before[:, :, position + 1:], after[:, :, position + 1:])


def test_masked_padding_keys_are_ignored():
    """Padding keys masked out give exactly the attention over the real keys alone, and receive
    zero gradient."""
    n_real, n_padding = 27, 13
    q, k, v, dout = make_inputs(1, 2, 30, n_real + n_padding, 64, seed=6)
    key_mask = torch.arange(n_real + n_padding, device=DEVICE)[None, :] < n_real  # (1, Nk)
    padded = output_and_grads(flash_attention, q, k, v, dout, key_mask=key_mask)
    real_only = output_and_grads(flash_attention, q, k[:, :, :n_real], v[:, :, :n_real], dout)
    for name, actual, expected in zip(NAMES, padded, real_only, strict=True):
        assert_fp32_close(actual[..., :n_real, :] if name in ("dk", "dv") else actual, expected,
                          name)
    for name, grad in zip(("dk", "dv"), padded[2:], strict=True):
        assert torch.equal(grad[:, :, n_real:], torch.zeros_like(grad[:, :, n_real:])), name


def test_strided_inputs_give_the_same_results_as_contiguous_ones():
    """Transposed views (B, N, H, D) -> (B, H, N, D), slices of a packed k/v tensor, a head dim with
    stride 2, a strided key mask and a stride-0 upstream gradient (from out.sum()) are read through
    their strides, with the same results as contiguous copies."""
    batch, heads, n_queries, n_keys, head_dim = 2, 2, 33, 41, 24
    generator = torch.Generator().manual_seed(7)
    q_wide = torch.randn(batch, n_queries, heads, 2 * head_dim, generator=generator).to(DEVICE)
    kv_packed = torch.randn(batch, n_keys, 2, heads, head_dim, generator=generator).to(DEVICE)
    q = q_wide[..., ::2].transpose(1, 2)  # (B, H, Nq, D) with stride 2 along D
    k, v = (kv_packed[:, :, i].transpose(1, 2) for i in range(2))  # (B, H, Nk, D) views
    mask_wide = torch.rand(batch, 2 * n_keys, generator=generator).to(DEVICE) > 0.3
    key_mask = mask_wide[:, ::2]  # (B, Nk) with stride 2
    assert not any(t.is_contiguous() for t in (q, k, v, key_mask))

    def sum_and_grads(q, k, v, key_mask):
        leaves = [t.detach().requires_grad_() for t in (q, k, v)]
        out = flash_attention(*leaves, causal=True, key_mask=key_mask)
        out.sum().backward()  # dO is ones expanded with stride 0
        return (out.detach(), *(t.grad for t in leaves))

    strided = sum_and_grads(q, k, v, key_mask)
    contiguous = sum_and_grads(*(t.contiguous() for t in (q, k, v, key_mask)))
    for name, actual, expected in zip(NAMES, strided, contiguous, strict=True):
        assert torch.allclose(actual, expected, rtol=0, atol=1e-6), name


@pytest.mark.parametrize("dtype", [torch.float32, *LOW_PRECISIONS], ids=str)
def test_output_and_gradients_keep_the_input_dtype(dtype):
    """The output has q's shape and dtype; each gradient has its input's dtype."""
    q, k, v, dout = make_inputs(1, 1, 20, 20, 16, dtype=dtype)
    out, dq, dk, dv = output_and_grads(flash_attention, q, k, v, dout)
    assert out.shape == q.shape
    assert {t.dtype for t in (out, dq, dk, dv)} == {dtype}


def test_launch_counter_proves_the_kernels_ran():
    """LAUNCHES counts forward launches always and backward launches only when grads flow."""
    q, k, v, dout = make_inputs(1, 1, 8, 8, 16)
    before = LAUNCHES.copy()
    with torch.no_grad():
        flash_attention(q, k, v)
    assert LAUNCHES["forward"] == before["forward"] + 1
    assert LAUNCHES["backward"] == before["backward"]
    output_and_grads(flash_attention, q, k, v, dout)
    assert LAUNCHES["forward"] == before["forward"] + 2
    assert LAUNCHES["backward"] == before["backward"] + 1


# ---------------------------------------------------------------- bad inputs


def _good():
    q, k, v, _ = make_inputs(2, 2, 8, 8, 16)
    return {"q": q, "k": k, "v": v, "key_mask": torch.ones(2, 8, dtype=torch.bool, device=DEVICE)}


BAD_INPUTS = {
    "q rank": (lambda a: {**a, "q": a["q"][0]}, r"^q must be a 4-D tensor"),
    "k rank": (lambda a: {**a, "k": a["k"][..., None]}, r"^k must be a 4-D tensor"),
    "v not a tensor": (lambda a: {**a, "v": [[1.0]]}, r"^v must be a 4-D tensor"),
    "q dtype": (lambda a: {**a, "q": a["q"].double()}, r"^q has dtype torch.float64"),
    "mixed dtypes": (lambda a: {**a, "v": a["v"].half()}, r"q, k, v must share one dtype"),
    "k and v lengths": (lambda a: {**a, "v": a["v"][:, :, :5]}, r"k and v must have the same"),
    "k and v head dims": (lambda a: {**a, "v": torch.cat([a["v"], a["v"]], -1)},
                          r"k and v must have the same"),
    "batch": (lambda a: {**a, "q": a["q"][:1]}, r"q and k must have the same batch and heads"),
    "heads": (lambda a: {**a, "k": a["k"][:, :1], "v": a["v"][:, :1]},
              r"q and k must have the same batch and heads"),
    "q and k head dims": (lambda a: {**a, "q": torch.cat([a["q"], a["q"]], -1)},
                          r"q and k must have the same head dim"),
    "head dim too small": (lambda a: {k: t[..., :8] if k != "key_mask" else t
                                      for k, t in a.items()}, r"q has head dim D=8"),
    "head dim too large": (lambda a: {k: t.repeat(1, 1, 1, 9) if k != "key_mask" else t
                                      for k, t in a.items()}, r"q has head dim D=144"),
    "empty q": (lambda a: {**a, "q": a["q"][:, :, :0]}, r"q and k must be non-empty"),
    # CUDA's grid limit (65,535 on the second axis, where B * H goes), checked on every device
    "too many (batch, heads)": (lambda a: {**a, **{n: a[n][:1, :1].expand(65_536, 1, -1, -1)
                                                  for n in ("q", "k", "v")}},
                                r"^q has B \* H = 65536 \* 1 = 65536 \(batch, heads\) pairs"),
    "key_mask dtype": (lambda a: {**a, "key_mask": a["key_mask"].float()},
                       r"^key_mask must be bool of shape \(B, Nk\) = \(2, 8\)"),
    "key_mask shape": (lambda a: {**a, "key_mask": a["key_mask"][:, :4]},
                       r"^key_mask must be bool of shape \(B, Nk\) = \(2, 8\)"),
    "key_mask per query": (lambda a: {**a, "key_mask": a["key_mask"][:, None].expand(2, 8, 8)},
                           r"^key_mask must be bool of shape"),
    "key_mask a NumPy array": (lambda a: {**a, "key_mask": a["key_mask"].cpu().numpy()},
                               r"^key_mask must be a torch\.Tensor, got numpy\.ndarray"),
    # the reference's and the twin's rules (a NaN scale made every output NaN; "no" ran causal)
    "scale nan": (lambda a: {**a, "scale": math.nan},
                  r"^scale must be a finite number in \(-inf, inf\), got nan"),
    "scale -inf": (lambda a: {**a, "scale": -math.inf}, r"^scale must be a finite number"),
    "scale a string": (lambda a: {**a, "scale": "0.5"}, r"^scale must be a finite number"),
    "scale True": (lambda a: {**a, "scale": True}, r"^scale must be a finite number"),
    "causal 'no'": (lambda a: {**a, "causal": "no"}, r"^causal must be True or False, got 'no'"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_raise_value_errors_naming_the_argument(case):
    """Each malformed argument gets a ValueError that names it and says what was expected."""
    corrupt, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        flash_attention(**corrupt(_good()))


def test_tensors_on_different_devices_are_rejected():
    arguments = _good()
    arguments["key_mask"] = arguments["key_mask"].to("meta")
    with pytest.raises(ValueError, match="must be on one device"):
        flash_attention(**arguments)


def test_cpu_tensors_without_the_interpreter_are_rejected(monkeypatch):
    monkeypatch.setattr(flash_attention_module, "INTERPRETED", False)
    q, k, v, _ = make_inputs(1, 1, 4, 4, 16)
    with pytest.raises(ValueError, match="need CUDA tensors, or TRITON_INTERPRET=1"):
        flash_attention(q.cpu(), k.cpu(), v.cpu())


# ---------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", LOW_PRECISIONS, ids=str)
def test_gpu_long_sequences_in_low_precision(dtype, causal):
    """N = 2048, D = 128 with tensor-core fp16/bf16 dots: FlashAttention's 2x rule holds."""
    tensors = make_inputs(1, 2, 2048, 2048, 128, dtype=dtype, seed=8)
    kernel = output_and_grads(flash_attention, *tensors, causal=causal)
    baseline = reference_output_and_grads(*tensors, dtype=dtype, causal=causal)
    reference = reference_output_and_grads(*tensors, causal=causal)
    for name, actual, low, expected in zip(NAMES, kernel, baseline, reference, strict=True):
        assert_within_twice_baseline(actual, low, expected, dtype, name)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_gpu_ragged_shapes(dtype):
    """Sizes that are not tile multiples, Nq != Nk, D = 80 and a key mask, on the GPU's tiles."""
    q, k, v, dout = make_inputs(2, 3, 1000, 1531, 80, dtype=dtype, seed=9)
    key_mask = torch.rand(2, 1531, device=DEVICE) > 0.2
    key_mask[1, :] = False
    options = {"causal": True, "key_mask": key_mask}
    kernel = output_and_grads(flash_attention, q, k, v, dout, **options)
    reference = reference_output_and_grads(q, k, v, dout, **options)
    if dtype == torch.float32:
        for name, actual, expected in zip(NAMES, kernel, reference, strict=True):
            assert_fp32_close(actual, expected, name)
    else:
        baseline = reference_output_and_grads(q, k, v, dout, dtype=dtype, **options)
        for name, actual, low, expected in zip(NAMES, kernel, baseline, reference, strict=True):
            assert_within_twice_baseline(actual, low, expected, dtype, name)


@pytest.mark.gpu
@pytest.mark.parametrize("masking", ["causal", "padded"])
@pytest.mark.parametrize("head_dim", [16, 40, 64, 96])
@pytest.mark.parametrize("dtype", LOW_PRECISIONS, ids=str)
def test_gpu_every_head_dim_in_low_precision(dtype, head_dim, masking, n_queries=1023,
                                             n_keys=1031):
    """The head dims the other gpu tests leave out (they cover 80 and 128), odd N that no tile
    divides, causal (bottom-right, Nq != Nk) or with padded keys: FlashAttention's 2x rule."""
    q, k, v, dout = make_inputs(2, 2, n_queries, n_keys, head_dim, dtype=dtype, seed=head_dim)
    if masking == "causal":
        options = {"causal": True}
    else:
        key_mask = torch.rand(2, n_keys, device=DEVICE) > 0.3
        options = {"key_mask": key_mask}
    kernel = output_and_grads(flash_attention, q, k, v, dout, **options)
    baseline = reference_output_and_grads(q, k, v, dout, dtype=dtype, **options)
    reference = reference_output_and_grads(q, k, v, dout, **options)
    for name, actual, low, expected in zip(NAMES, kernel, baseline, reference, strict=True):
        assert_within_twice_baseline(actual, low, expected, dtype, name)
