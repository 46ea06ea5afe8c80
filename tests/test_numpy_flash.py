"""FlashAttention in NumPy (`minilm.numpy.flash`): the kernel's algorithm, tile by tile.

Every property `minilm check` grades lesson 08 with (minilm/check/exercises/flash.py: the forward
equals plain attention for any N and tile sizes, causal or padded, returns L = logsumexp of the
allowed scores, gives zeros and L = +inf to a query with nothing to attend, never holds an (N, N)
matrix; the backward equals `functional.attention_backward`; `merge_attention` combines disjoint
key sets) runs here against the library itself, under the suite's hypothesis profile. Tolerance
1e-10 in float64 (worst seen over 300 examples per property: 1e-15).

Below them, what only the library promises: float32/float16 inputs, tile sizes that do not change
the answer, the causal loop bounds that skip tiles, split-KV decoding through `merge_attention`,
the Triton kernel (under the interpreter on a CPU) equal to this reference, outputs, L and
gradients, and the errors bad input gets.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilm.numpy import flash
from minilm.numpy import functional as F
from minilm.testing.oracles import peak_bytes, relative_error
from minilm.testing.strategies import flash_attention_cases


def attention_mask(case):
    return None if case["key_mask"] is None else case["key_mask"][:, None, None, :]


def run(case, **changes):
    case = {**case, **changes}
    return flash.flash_attention_forward(
        case["q"], case["k"], case["v"], causal=case["causal"], key_mask=case["key_mask"],
        scale=case["scale"], block_m=case["block_m"], block_n=case["block_n"])


# ---------------------------------------------------------------- dtypes and tile sizes


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-5), (np.float16, 2e-3)])
def test_low_precision_inputs_compute_in_float32_and_come_back_in_their_dtype(dtype, tolerance):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, 37, 8)).astype(dtype) for _ in range(3))
    dout = rng.standard_normal((2, 2, 37, 8)).astype(dtype)
    out, lse = flash.flash_attention_forward(q, k, v, causal=True)
    grads = flash.flash_attention_backward(dout, q, k, v, out, lse, causal=True)
    assert out.dtype == dtype and lse.dtype == np.float32
    assert all(grad.dtype == dtype for grad in grads)
    exact = [x.astype(np.float64) for x in (q, k, v, dout)]
    expected, cache = F.attention_forward(*exact[:3], causal=True)
    assert relative_error(expected, out) <= tolerance
    for grad, expected_grad in zip(grads, F.attention_backward(exact[3], cache)):
        assert relative_error(expected_grad, grad) <= 10 * tolerance


@given(flash_attention_cases())
def test_tile_sizes_do_not_change_the_answer(case):
    """One key at a time (a pure streaming softmax), the whole matrix as one tile (the plain
    algorithm) and the drawn tiles agree to rounding."""
    out, lse = run(case)
    nq, nk = case["q"].shape[2], case["k"].shape[2]
    for block_m, block_n in [(1, 1), (nq, nk)]:
        other_out, other_lse = run(case, block_m=block_m, block_n=block_n)
        assert relative_error(out, other_out) <= 1e-13
        assert np.array_equal(np.isinf(lse), np.isinf(other_lse))
        assert relative_error(lse[np.isfinite(lse)], other_lse[np.isfinite(lse)]) <= 1e-13


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 9), st.integers(1, 9))
def test_causal_loop_bounds_skip_only_tiles_with_nothing_to_attend(nq, nk, block_m, block_n):
    """Keys from `key_range_end` on are hidden from the whole query tile, and query tiles before
    `query_range_start` see nothing of the key tile; the bounds skip nothing else, so that
    causal attention visits about half of the (query tile, key tile) pairs."""
    allowed = F.causal_mask(nq, nk)  # (Nq, Nk)
    for start_m in range(0, nq, block_m):
        rows = allowed[start_m:start_m + block_m]
        end = flash.key_range_end(start_m, nq, nk, block_m, causal=True)
        assert not rows[:, max(end, 0):].any()
        if end > 0:
            assert rows[:, end - 1].any()  # the last key before the bound is needed
    for start_n in range(0, nk, block_n):
        start = flash.query_range_start(start_n, nq, nk, block_m, causal=True)
        assert start % block_m == 0
        assert not allowed[:start, start_n:start_n + block_n].any()
        if start > 0:  # the tile before the bound is needed
            assert allowed[start:start + block_m, start_n:start_n + block_n].any()


def test_causal_attention_visits_about_half_the_tiles():
    n, block_m, block_n = 1024, 32, 16
    visited = sum(len(range(0, flash.key_range_end(start_m, n, n, block_m, True), block_n))
                  for start_m in range(0, n, block_m))
    assert 0.5 < visited / ((n // block_m) * (n // block_n)) < 0.55


# ---------------------------------------------------------------- memory


def test_peak_memory_grows_linearly_and_tracing_may_already_be_on():
    """Doubling N doubles the forward's peak (O and L, (D + 1) numbers per query, plus a constant
    of tiles); measuring inside an outer tracemalloc session gives the same numbers."""
    import tracemalloc

    def peak(n):
        rng = np.random.default_rng(n)
        q, k, v = (rng.standard_normal((1, 1, n, 16)) for _ in range(3))
        return peak_bytes(flash.flash_attention_forward, q, k, v, block_m=64, block_n=64)

    peaks = [peak(n) for n in (512, 1024, 2048)]
    per_query = np.diff(peaks) / np.diff([512, 1024, 2048])
    np.testing.assert_allclose(per_query, (16 + 1) * 8, rtol=0.05)
    tracemalloc.start()
    try:
        assert abs(peak(1024) - peaks[1]) <= 0.05 * peaks[1]
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- merging partial results


@given(flash_attention_cases(), st.integers(1, 4))
def test_split_kv_decoding_merges_chunks_of_keys_into_the_whole(case, n_chunks):
    """Flash-Decoding: the keys cut into chunks, each chunk's attention computed on its own (as
    separate programs would) and the (out, lse) pairs merged one by one, equal attention over all
    keys. A chunk hidden by the key mask, or wholly in a query's causal future, weighs nothing."""
    nk = case["k"].shape[2]
    key_mask = np.ones((case["q"].shape[0], nk), bool) if case["key_mask"] is None else \
        case["key_mask"]
    edges = np.linspace(0, nk, n_chunks + 1).astype(int)
    out, lse = np.zeros(case["q"].shape[:3] + case["v"].shape[3:]), np.full(case["q"].shape[:3],
                                                                              np.inf)
    for start, end in itertools.pairwise(edges):
        chunk_mask = key_mask & (np.arange(nk) >= start) & (np.arange(nk) < end)
        out, lse = flash.merge_attention(out, lse, *run(case, key_mask=chunk_mask))
    expected_out, expected_lse = run(case)
    assert relative_error(expected_out, out) <= 1e-12
    assert np.array_equal(np.isinf(expected_lse), np.isinf(lse))
    finite = np.isfinite(lse)
    assert relative_error(expected_lse[finite], lse[finite]) <= 1e-12


def test_merging_with_nothing_changes_nothing_and_nothing_with_nothing_stays_empty():
    rng = np.random.default_rng(0)
    out, lse = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3))
    empty_out, empty_lse = np.zeros_like(out), np.full_like(lse, np.inf)
    for merged in (flash.merge_attention(out, lse, empty_out, empty_lse),
                   flash.merge_attention(empty_out, empty_lse, out, lse)):
        np.testing.assert_array_equal(merged[0], out)
        np.testing.assert_array_equal(merged[1], lse)
    merged_out, merged_lse = flash.merge_attention(empty_out, empty_lse, empty_out, empty_lse)
    assert not merged_out.any() and np.all(merged_lse == np.inf)


# ---------------------------------------------------------------- the Triton kernel


@pytest.mark.parametrize("shape, causal, padded", [((1, 2, 40, 40, 16), True, True),
                                                    ((2, 1, 23, 50, 32), True, False),
                                                    ((1, 1, 50, 19, 16), False, True)])
def test_the_triton_kernel_computes_what_this_reference_computes(shape, causal, padded):
    """Outputs, L (the one number per query the kernel stores) and gradients of the kernel, float32
    (under the Triton interpreter without a GPU), against this reference in float64."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    from minilm.kernels import flash_attention
    from minilm.kernels.flash_attention import attention_forward

    batch, heads, nq, nk, d = shape
    rng = np.random.default_rng(sum(shape))
    q, k, v = (rng.standard_normal((batch, heads, n, d)) for n in (nq, nk, nk))
    dout = rng.standard_normal((batch, heads, nq, d))
    key_mask = np.ones((batch, nk), bool)
    if padded:
        key_mask[-1, -nk // 3:] = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tensors = [torch.tensor(x, dtype=torch.float32, device=device, requires_grad=True)
               for x in (q, k, v)]
    mask = torch.tensor(key_mask, device=device)
    kernel_out, kernel_lse = attention_forward(*(t.detach() for t in tensors), causal, mask,
                                               1 / np.sqrt(d))
    flash_attention(*tensors, causal=causal, key_mask=mask).backward(
        torch.tensor(dout, dtype=torch.float32, device=device))

    out, lse = flash.flash_attention_forward(q, k, v, causal=causal, key_mask=key_mask)
    grads = flash.flash_attention_backward(dout, q, k, v, out, lse, causal=causal,
                                           key_mask=key_mask)
    assert relative_error(out, kernel_out.cpu().double().numpy()) <= 2e-5
    kernel_lse = kernel_lse.cpu().double().numpy()
    assert np.array_equal(np.isinf(lse), np.isinf(kernel_lse))
    assert relative_error(lse[np.isfinite(lse)], kernel_lse[np.isfinite(lse)]) <= 2e-5
    for grad, tensor in zip(grads, tensors):
        assert relative_error(grad, tensor.grad.cpu().double().numpy()) <= 2e-5


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "q": a["q"][0], "k": a["k"][0], "v": a["v"][0]}, "must be \\(B, H, N, D\\)"),
    (lambda a: {**a, "key_mask": np.ones((2, 5), bool)}, "key_mask must be bool of shape"),
    (lambda a: {**a, "key_mask": np.ones((1, 6), int)}, "key_mask must be bool of shape"),
    (lambda a: {**a, "block_m": 0}, "block_m must be an int >= 1"),
    (lambda a: {**a, "block_n": 2.0}, "block_n must be an int >= 1"),
    (lambda a: {**a, "k": a["k"][:, :, :, :3]}, "head dim"),
])
def test_bad_input_is_refused_with_a_message(change, message):
    rng = np.random.default_rng(0)
    good = {"q": rng.standard_normal((1, 2, 4, 4)), "k": rng.standard_normal((1, 2, 6, 4)),
            "v": rng.standard_normal((1, 2, 6, 4)), "key_mask": None, "block_m": 2, "block_n": 2}
    bad = change(good)
    with pytest.raises(ValueError, match=message):
        flash.flash_attention_forward(bad["q"], bad["k"], bad["v"], key_mask=bad["key_mask"],
                                      block_m=bad["block_m"], block_n=bad["block_n"])
