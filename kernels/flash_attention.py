"""FlashAttention-2 in Triton: exact attention in O(N) memory, forward and backward.

Attention for one (batch, head) pair, with Q (Nq, D), K (Nk, D), V (Nk, D):

    S = scale * Q K^T          (Nq, Nk)   scores
    P = softmax(S) row-wise    (Nq, Nk)   attention weights (masked scores count as -inf)
    O = P V                    (Nq, D)    output

The plain implementation writes S and P to memory: O(N^2) bytes per head, read and written several
times, so it is limited by memory traffic, not by arithmetic. FlashAttention never builds S or P.

Forward: online softmax
-----------------------
One Triton program owns a tile of BLOCK_M query rows and keeps it on chip. It streams K and V in
tiles of BLOCK_N keys and keeps, for each of its rows, three running quantities:

    m   the largest score seen so far               (BLOCK_M,)
    l   sum_j exp(s_j - m) over the keys seen        (BLOCK_M,)
    acc sum_j exp(s_j - m) v_j over the keys seen    (BLOCK_M, D)

For a new tile of scores s (BLOCK_M, BLOCK_N):

    m_new = max(m, rowmax(s))
    alpha = exp(m - m_new)                       rescales what was summed against the old max
    p     = exp(s - m_new)                       (BLOCK_M, BLOCK_N), every entry <= 1: no overflow
    l     = alpha * l + rowsum(p)
    acc   = alpha * acc + p V_tile

After the last tile, O = acc / l: the exact softmax-weighted sum, as if the whole row had been seen
at once. The only thing saved for the backward pass besides O is one number per row, the logsumexp

    L = m + log(l) = log sum_j exp(s_j)          so that   P_ij = exp(S_ij - L_i).

Saving O and L costs O(N) memory instead of the O(N^2) of P; the backward pass recomputes P tile by
tile from Q, K and L, trading a little arithmetic for a lot of memory traffic.

Backward: the chain rule through softmax
----------------------------------------
Given dO = dLoss/dO (Nq, D):

    dV = P^T dO                                   (Nk, D)
    dP = dO V^T                                   (Nq, Nk)
    dS = P * (dP - delta),  delta_i = sum_j P_ij dP_ij = rowsum(dO * O)_i   (softmax backward)
    dQ = scale * dS K                             (Nq, D)
    dK = scale * dS^T Q                           (Nk, D)

delta is computed once by a small preprocessing kernel, from dO and O, as rowsum(dO * O): the same
number as sum_j P_ij dP_ij, since O = P V, but without needing P.

How the backward is split across programs, and why it needs no atomics: dK and dV for a tile of
keys are sums over *all* queries, and dQ for a tile of queries is a sum over *all* keys. If one
program per key tile also added its share into dQ, several programs would write the same dQ rows,
which needs atomic adds (slow, and non-deterministic in floating point). Instead, two kernels:

    dK/dV kernel: one program per tile of BLOCK_N keys, loops over query tiles, accumulates dK, dV
    dQ kernel:    one program per tile of BLOCK_M queries, loops over key tiles, accumulates dQ

Each output tile has exactly one owner, so plain stores suffice. The price is computing P and dP
twice (once in each kernel); the reward is determinism and no atomic traffic.

Masks and empty rows
--------------------
`causal` is aligned bottom-right: query i may attend key j iff j <= i + (Nk - Nq), so the last query
sees every key (the convention of KV-cached decoding). `key_mask (B, Nk)` marks real tokens (True)
versus padding (False). One helper, `_may_attend`, builds the (BLOCK_M, BLOCK_N) mask for all three
kernels. A row that may attend nothing (causal with Nq > Nk, or all keys masked) ends with l = 0;
its output is defined as 0 and its L as +inf, so that exp(S - L) recomputes to exactly 0 in the
backward pass and the row receives and passes zero gradient, never NaN. The running max of such a
row stays -inf, so the kernel subtracts 0 instead of it (exp(-inf - (-inf)) would be NaN).
With `causal`, tiles wholly above the diagonal are never visited (`_key_range_end`,
`_query_range_start` set the loop bounds), so causal attention costs about half as much.

Precision: tiles are loaded in the input dtype; scores, softmax statistics and all accumulators are
fp32. On a GPU, fp16/bf16 tiles go into `tl.dot` in their own dtype (tensor cores, fp32 accumulate);
fp32 dots run as three TF32 products ("tf32x3"), about as accurate as fp32 and unlike plain TF32,
with a small fixed tile (fp32 is for checking, not speed). Under the Triton interpreter
(TRITON_INTERPRET=1, CPU) every tile is upcast to fp32 before the dots, because the interpreter's
low-precision matmuls do not match the GPU's (bf16 math there is wrong); its fp32 -> bf16 stores
truncate rather than round, so bf16 results on the CPU can be one bf16 unit further off.
delta is read from the stored O, in the input dtype, as FlashAttention-2 does: in fp16/bf16 with a
saturated softmax (very large scale) that rounding dominates the error of dQ and dK.

The file, top to bottom: helpers shared by the kernels (tile loads and stores, the mask, the causal
loop bounds); tile configurations; the forward kernel; the three backward kernels (delta, dK/dV,
dQ); their launchers (`LAUNCHES` counts the calls); the autograd.Function; `flash_attention`, the
entry point that checks its arguments; and `attention_reference`, plain PyTorch in float64 to
validate against.
"""

import collections
import math
import os

import torch
import triton
import triton.language as tl

from minilm.common.checks import check_flag, check_key_mask, number_in

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

# How many times each launcher ran: LAUNCHES["forward"] and LAUNCHES["backward"]. Tests read it to
# prove that a model's attention really went through these kernels.
LAUNCHES = collections.Counter()

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 128
MAX_BATCH_HEADS = 65_535  # every launch puts B * H on the grid's second axis, which CUDA caps


# ---------------------------------------------------------------- helpers shared by the kernels


@triton.jit
def _load_tile(base_ptr, row_idx, n_rows, stride_row, stride_d, dim_idx, D, UPCAST: tl.constexpr):
    """Rows `row_idx` of a (n_rows, D) matrix as a (rows, BLOCK_D) tile; rows >= n_rows and columns
    >= D read as 0 (zero columns add nothing to a dot product, so padding D is harmless)."""
    pointers = base_ptr + row_idx[:, None] * stride_row + dim_idx[None, :] * stride_d
    in_bounds = (row_idx[:, None] < n_rows) & (dim_idx[None, :] < D)
    tile = tl.load(pointers, mask=in_bounds, other=0.0)
    if UPCAST:
        tile = tile.to(tl.float32)
    return tile


@triton.jit
def _store_tile(base_ptr, tile, row_idx, n_rows, stride_row, stride_d, dim_idx, D):
    """Write a (rows, BLOCK_D) tile into rows `row_idx` of a (n_rows, D) matrix, in its dtype."""
    pointers = base_ptr + row_idx[:, None] * stride_row + dim_idx[None, :] * stride_d
    in_bounds = (row_idx[:, None] < n_rows) & (dim_idx[None, :] < D)
    tl.store(pointers, tile.to(base_ptr.dtype.element_ty), mask=in_bounds)


@triton.jit
def _may_attend(
    query_idx, key_idx, Nq, Nk, key_mask_row_ptr, stride_mask_n,
    CAUSAL: tl.constexpr, HAS_KEY_MASK: tl.constexpr,
):
    """(BLOCK_M, BLOCK_N) bool: True where query `query_idx[i]` may attend key `key_idx[j]`."""
    allowed = (query_idx[:, None] < Nq) & (key_idx[None, :] < Nk)  # (BLOCK_M, BLOCK_N)
    if CAUSAL:
        # Bottom-right alignment: the last query (Nq - 1) sees the last key (Nk - 1).
        allowed = allowed & (key_idx[None, :] <= query_idx[:, None] + (Nk - Nq))
    if HAS_KEY_MASK:
        key_mask_ptrs = key_mask_row_ptr + key_idx * stride_mask_n
        key_is_real = tl.load(key_mask_ptrs, mask=key_idx < Nk, other=0) != 0  # (BLOCK_N,)
        allowed = allowed & key_is_real[None, :]
    return allowed


@triton.jit
def _key_range_end(start_m, Nq, Nk, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr):
    """One past the last key that queries start_m .. start_m + BLOCK_M - 1 may see."""
    end = Nk
    if CAUSAL:
        # The tile's last query i = start_m + BLOCK_M - 1 sees keys j <= i + Nk - Nq.
        end = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq)
    return end


@triton.jit
def _query_range_start(start_n, Nq, Nk, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr):
    """First query tile (a multiple of BLOCK_M) that may see any key from start_n on."""
    start = 0
    if CAUSAL:
        # Key j is first seen by query i = j - (Nk - Nq): earlier query tiles are skipped.
        start = (tl.maximum(start_n - (Nk - Nq), 0) // BLOCK_M) * BLOCK_M
    return start


# ---------------------------------------------------------------- tile configurations


def _config(block_m, block_n, num_warps, num_stages):
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=num_warps, num_stages=num_stages
    )


# fp32 tiles take twice the bytes of fp16/bf16 ones: the larger tiles below overflow shared memory
# (227 KiB per block on an H100/H200) or spill registers, and take long to compile. fp32 is for
# checking accuracy, not for speed, so fp32 inputs on a GPU get this one small tile.
FP32_CONFIG = _config(32, 32, 4, 1)


def _configs(choices_16bit):
    """Autotuning candidates on a GPU: (BLOCK_M, BLOCK_N, num_warps, num_stages) choices for
    fp16/bf16, plus FP32_CONFIG. Under the interpreter, one small fixed tile: autotuning needs a GPU
    driver, and small tiles run fastest. BLOCK_M != BLOCK_N there on purpose, so that the tests
    exercise the tile-boundary arithmetic."""
    if INTERPRETED:
        return [_config(32, 16, 4, 1)]
    return [_config(*choice) for choice in choices_16bit] + [FP32_CONFIG]


def _configs_for_dtype(configs, named_args, **kwargs):
    """Autotuner pruning: FP32_CONFIG alone for fp32 inputs, the other candidates for fp16/bf16."""
    if named_args["q_ptr"].dtype == torch.float32:
        return [FP32_CONFIG]
    return [config for config in configs if config is not FP32_CONFIG]


def _quick_bench(kernel_call, quantiles):
    """Autotuning timer; shorter than Triton's default so sweeps over many shapes stay quick."""
    return triton.testing.do_bench(kernel_call, warmup=5, rep=20, quantiles=quantiles)


# fp16/bf16 candidates. A dK/dV program keeps two (BLOCK_N, D) fp32 accumulators plus its K and V
# tiles on chip, so its own tile (BLOCK_N) stays small; a dQ program owns BLOCK_M queries and
# streams BLOCK_N keys. Compiled ahead of time for sm_90 (no GPU; Triton 3.6 and 3.9, 2026-12-02):
# every candidate compiles; the forward and dQ spill no registers (one 4-byte case); at D = 128
# every dK/dV candidate spills a little (4-152 bytes), and (128, 64, 8, 3) needs more shared memory
# than a block has under Triton 3.6 (the autotuner skips it). Not yet timed on a GPU (issue 12).
FORWARD_CONFIGS = _configs([(128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3), (64, 32, 4, 3)])
DKDV_CONFIGS = _configs([(128, 64, 8, 3), (64, 64, 8, 3), (32, 64, 4, 3), (32, 128, 8, 3)])
DQ_CONFIGS = _configs([(64, 64, 8, 3), (64, 32, 4, 3), (128, 64, 8, 3), (128, 32, 8, 3)])
TUNING_KEY = ["Nq", "Nk", "D", "CAUSAL", "HAS_KEY_MASK"]  # and, implicitly, the tensors' dtypes
AUTOTUNE = {"key": TUNING_KEY, "do_bench": _quick_bench,
            "prune_configs_by": {"early_config_prune": _configs_for_dtype}}


# ---------------------------------------------------------------- forward


@triton.autotune(configs=FORWARD_CONFIGS, **AUTOTUNE)
@triton.jit
def _attention_forward_kernel(
    q_ptr, k_ptr, v_ptr, key_mask_ptr, out_ptr, lse_ptr,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_mask_b, stride_mask_n,
    H, Nq, Nk, D, scale,
    CAUSAL: tl.constexpr, HAS_KEY_MASK: tl.constexpr, UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (cdiv(Nq, BLOCK_M), B * H): O and L for one tile of BLOCK_M queries of one head."""
    start_m = tl.program_id(0) * BLOCK_M
    batch_head = tl.program_id(1).to(tl.int64)  # 64-bit offsets: large tensors overflow int32
    batch, head = batch_head // H, batch_head % H
    q_head = q_ptr + batch * stride_qb + head * stride_qh
    k_head = k_ptr + batch * stride_kb + head * stride_kh
    v_head = v_ptr + batch * stride_vb + head * stride_vh
    key_mask_row = key_mask_ptr + batch * stride_mask_b

    query_idx = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    dim_idx = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    # (BLOCK_M, BLOCK_D)
    q = _load_tile(q_head, query_idx, Nq, stride_qm, stride_qd, dim_idx, D, UPCAST)

    row_max = tl.full([BLOCK_M], float("-inf"), tl.float32)  # m
    row_sum = tl.zeros([BLOCK_M], tl.float32)  # l
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # unnormalised output

    for start_n in range(0, _key_range_end(start_m, Nq, Nk, BLOCK_M, CAUSAL), BLOCK_N):
        key_idx = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
        # (BLOCK_N, BLOCK_D) each
        k = _load_tile(k_head, key_idx, Nk, stride_kn, stride_kd, dim_idx, D, UPCAST)
        v = _load_tile(v_head, key_idx, Nk, stride_vn, stride_vd, dim_idx, D, UPCAST)

        # S = scale * Q K^T, masked entries -inf                                (BLOCK_M, BLOCK_N)
        scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
        allowed = _may_attend(
            query_idx, key_idx, Nq, Nk, key_mask_row, stride_mask_n, CAUSAL, HAS_KEY_MASK
        )
        scores = tl.where(allowed, scores, float("-inf"))

        new_max = tl.maximum(row_max, tl.max(scores, 1))  # (BLOCK_M,)
        # A row with no allowed key yet has max -inf: subtract 0 instead (its p are all 0 anyway).
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # (BLOCK_M,)
        p = tl.exp(scores - shift[:, None])  # (BLOCK_M, BLOCK_N)
        rescale = tl.exp(row_max - shift)  # (BLOCK_M,) alpha: from the old max to the new one
        row_sum = row_sum * rescale + tl.sum(p, 1)
        acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        row_max = new_max

    # A row that attended nothing has row_sum 0 and acc 0: divide by 1, and give it L = +inf.
    row_has_keys = row_sum > 0  # (BLOCK_M,)
    safe_sum = tl.where(row_has_keys, row_sum, 1.0)  # (BLOCK_M,)
    out = acc / safe_sum[:, None]  # (BLOCK_M, BLOCK_D)
    logsumexp = tl.where(row_has_keys, row_max + tl.log(safe_sum), float("inf"))  # (BLOCK_M,)

    out_head = out_ptr + batch * stride_ob + head * stride_oh
    _store_tile(out_head, out, query_idx, Nq, stride_om, stride_od, dim_idx, D)
    tl.store(lse_ptr + batch_head * Nq + query_idx, logsumexp, mask=query_idx < Nq)


# ---------------------------------------------------------------- backward


@triton.jit
def _attention_backward_delta_kernel(
    out_ptr, dout_ptr, delta_ptr,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_dob, stride_doh, stride_dom, stride_dod,
    H, Nq, D,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Grid (cdiv(Nq, BLOCK_M), B * H): delta = rowsum(dO * O) for one tile of queries."""
    start_m = tl.program_id(0) * BLOCK_M
    batch_head = tl.program_id(1).to(tl.int64)
    batch, head = batch_head // H, batch_head % H
    out_head = out_ptr + batch * stride_ob + head * stride_oh
    dout_head = dout_ptr + batch * stride_dob + head * stride_doh

    query_idx = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    dim_idx = tl.arange(0, BLOCK_D)
    # (BLOCK_M, BLOCK_D) each, in fp32
    out = _load_tile(out_head, query_idx, Nq, stride_om, stride_od, dim_idx, D, True)
    dout = _load_tile(dout_head, query_idx, Nq, stride_dom, stride_dod, dim_idx, D, True)
    delta = tl.sum(out * dout, 1)  # (BLOCK_M,)
    tl.store(delta_ptr + batch_head * Nq + query_idx, delta, mask=query_idx < Nq)


@triton.jit
def _probabilities_and_score_gradients(
    q, k, v, dout, logsumexp, delta, query_idx, key_idx, Nq, Nk, key_mask_row, stride_mask_n,
    scale, CAUSAL: tl.constexpr, HAS_KEY_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """What both backward kernels recompute for one (query tile, key tile) pair:

        P  = exp(S - L), 0 where attention is not allowed                   (BLOCK_M, BLOCK_N)
        dS = P * (dP - delta), with dP = dO V^T                             (BLOCK_M, BLOCK_N)
    """
    scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
    allowed = _may_attend(
        query_idx, key_idx, Nq, Nk, key_mask_row, stride_mask_n, CAUSAL, HAS_KEY_MASK
    )
    p = tl.exp(tl.where(allowed, scores - logsumexp[:, None], float("-inf")))
    dp = tl.dot(dout, tl.trans(v), input_precision=DOT_PRECISION)
    return p, p * (dp - delta[:, None])


@triton.autotune(configs=DKDV_CONFIGS, **AUTOTUNE)
@triton.jit
def _attention_backward_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, key_mask_ptr, dout_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    stride_mask_b, stride_mask_n,
    H, Nq, Nk, D, scale,
    CAUSAL: tl.constexpr, HAS_KEY_MASK: tl.constexpr, UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (cdiv(Nk, BLOCK_N), B * H): dK and dV for one tile of keys, summed over all queries."""
    start_n = tl.program_id(0) * BLOCK_N
    batch_head = tl.program_id(1).to(tl.int64)
    batch, head = batch_head // H, batch_head % H
    q_head = q_ptr + batch * stride_qb + head * stride_qh
    k_head = k_ptr + batch * stride_kb + head * stride_kh
    v_head = v_ptr + batch * stride_vb + head * stride_vh
    dout_head = dout_ptr + batch * stride_dob + head * stride_doh
    key_mask_row = key_mask_ptr + batch * stride_mask_b

    key_idx = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    dim_idx = tl.arange(0, BLOCK_D)
    # (BLOCK_N, BLOCK_D) each: this program's keys and values stay on chip for the whole loop
    k = _load_tile(k_head, key_idx, Nk, stride_kn, stride_kd, dim_idx, D, UPCAST)
    v = _load_tile(v_head, key_idx, Nk, stride_vn, stride_vd, dim_idx, D, UPCAST)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)

    for start_m in range(_query_range_start(start_n, Nq, Nk, BLOCK_M, CAUSAL), Nq, BLOCK_M):
        query_idx = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
        # (BLOCK_M, BLOCK_D) each
        q = _load_tile(q_head, query_idx, Nq, stride_qm, stride_qd, dim_idx, D, UPCAST)
        dout = _load_tile(dout_head, query_idx, Nq, stride_dom, stride_dod, dim_idx, D, UPCAST)
        in_range = query_idx < Nq
        # (BLOCK_M,) each
        logsumexp = tl.load(lse_ptr + batch_head * Nq + query_idx, mask=in_range, other=0.0)
        delta = tl.load(delta_ptr + batch_head * Nq + query_idx, mask=in_range, other=0.0)

        p, ds = _probabilities_and_score_gradients(  # (BLOCK_M, BLOCK_N) each
            q, k, v, dout, logsumexp, delta, query_idx, key_idx, Nq, Nk, key_mask_row,
            stride_mask_n, scale, CAUSAL, HAS_KEY_MASK, DOT_PRECISION,
        )
        # dV += P^T dO                                                          (BLOCK_N, BLOCK_D)
        dv += tl.dot(tl.trans(p).to(dout.dtype), dout, input_precision=DOT_PRECISION)
        # dK += dS^T Q (times scale, applied once at the end)                   (BLOCK_N, BLOCK_D)
        dk += tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=DOT_PRECISION)

    dk_head = dk_ptr + batch * stride_dkb + head * stride_dkh
    dv_head = dv_ptr + batch * stride_dvb + head * stride_dvh
    _store_tile(dk_head, dk * scale, key_idx, Nk, stride_dkn, stride_dkd, dim_idx, D)
    _store_tile(dv_head, dv, key_idx, Nk, stride_dvn, stride_dvd, dim_idx, D)


@triton.autotune(configs=DQ_CONFIGS, **AUTOTUNE)
@triton.jit
def _attention_backward_dq_kernel(
    q_ptr, k_ptr, v_ptr, key_mask_ptr, dout_ptr, lse_ptr, delta_ptr, dq_ptr,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    stride_mask_b, stride_mask_n,
    H, Nq, Nk, D, scale,
    CAUSAL: tl.constexpr, HAS_KEY_MASK: tl.constexpr, UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (cdiv(Nq, BLOCK_M), B * H): dQ for one tile of queries, summed over all keys."""
    start_m = tl.program_id(0) * BLOCK_M
    batch_head = tl.program_id(1).to(tl.int64)
    batch, head = batch_head // H, batch_head % H
    q_head = q_ptr + batch * stride_qb + head * stride_qh
    k_head = k_ptr + batch * stride_kb + head * stride_kh
    v_head = v_ptr + batch * stride_vb + head * stride_vh
    dout_head = dout_ptr + batch * stride_dob + head * stride_doh
    key_mask_row = key_mask_ptr + batch * stride_mask_b

    query_idx = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    dim_idx = tl.arange(0, BLOCK_D)
    # (BLOCK_M, BLOCK_D) each: this program's queries and output gradients stay on chip
    q = _load_tile(q_head, query_idx, Nq, stride_qm, stride_qd, dim_idx, D, UPCAST)
    dout = _load_tile(dout_head, query_idx, Nq, stride_dom, stride_dod, dim_idx, D, UPCAST)
    in_range = query_idx < Nq
    # (BLOCK_M,) each
    logsumexp = tl.load(lse_ptr + batch_head * Nq + query_idx, mask=in_range, other=0.0)
    delta = tl.load(delta_ptr + batch_head * Nq + query_idx, mask=in_range, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)

    for start_n in range(0, _key_range_end(start_m, Nq, Nk, BLOCK_M, CAUSAL), BLOCK_N):
        key_idx = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
        # (BLOCK_N, BLOCK_D) each
        k = _load_tile(k_head, key_idx, Nk, stride_kn, stride_kd, dim_idx, D, UPCAST)
        v = _load_tile(v_head, key_idx, Nk, stride_vn, stride_vd, dim_idx, D, UPCAST)

        _, ds = _probabilities_and_score_gradients(  # (BLOCK_M, BLOCK_N)
            q, k, v, dout, logsumexp, delta, query_idx, key_idx, Nq, Nk, key_mask_row,
            stride_mask_n, scale, CAUSAL, HAS_KEY_MASK, DOT_PRECISION,
        )
        # dQ += dS K (times scale, applied once at the end)                     (BLOCK_M, BLOCK_D)
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)

    dq_head = dq_ptr + batch * stride_dqb + head * stride_dqh
    _store_tile(dq_head, dq * scale, query_idx, Nq, stride_dqm, stride_dqd, dim_idx, D)


# ---------------------------------------------------------------- launchers


def _kernel_options(q, causal, key_mask):
    """Compile-time switches shared by the three attention kernels."""
    return {
        "CAUSAL": causal,
        "HAS_KEY_MASK": key_mask is not None,
        "UPCAST": INTERPRETED,
        # fp32 dots as three TF32 tensor-core products: about fp32 accuracy (plain TF32 keeps only
        # 10 mantissa bits; "ieee" dots compile to slow, register-hungry code). fp16/bf16 ignore it.
        "DOT_PRECISION": "tf32x3",
        "BLOCK_D": max(16, triton.next_power_of_2(q.shape[-1])),
    }


def _key_mask_args(key_mask, q):
    """The key mask as bytes (a zero-copy view of the bool tensor) and its two strides. Without a
    mask, q stands in as a pointer that is never read (HAS_KEY_MASK is False)."""
    if key_mask is None:
        return q, 0, 0
    return key_mask.view(torch.uint8), *key_mask.stride()


def attention_forward(q, k, v, causal, key_mask, scale):
    """Launch the forward kernel: O (B, H, Nq, D) in q's dtype and L (B, H, Nq) in fp32."""
    LAUNCHES["forward"] += 1
    batch, heads, n_queries, head_dim = q.shape
    n_keys = k.shape[2]
    out = torch.empty_like(q)
    logsumexp = torch.empty((batch, heads, n_queries), device=q.device, dtype=torch.float32)
    key_mask_bytes, *mask_strides = _key_mask_args(key_mask, q)

    def grid(meta):
        return (triton.cdiv(n_queries, meta["BLOCK_M"]), batch * heads)

    _attention_forward_kernel[grid](
        q, k, v, key_mask_bytes, out, logsumexp,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), *mask_strides,
        heads, n_queries, n_keys, head_dim, scale,
        **_kernel_options(q, causal, key_mask),
    )
    return out, logsumexp


def attention_backward(dout, q, k, v, out, logsumexp, causal, key_mask, scale):
    """Launch the backward kernels: dQ, dK, dV with the shapes and dtypes of q, k, v. dout may have
    any strides (autograd hands out expanded, stride-0 gradients for `out.sum()`)."""
    LAUNCHES["backward"] += 1
    batch, heads, n_queries, head_dim = q.shape
    n_keys = k.shape[2]
    options = _kernel_options(q, causal, key_mask)
    key_mask_bytes, *mask_strides = _key_mask_args(key_mask, q)

    delta = torch.empty_like(logsumexp)  # (B, H, Nq) fp32
    delta_block_m = 32 if INTERPRETED else 64
    _attention_backward_delta_kernel[(triton.cdiv(n_queries, delta_block_m), batch * heads)](
        out, dout, delta, *out.stride(), *dout.stride(), heads, n_queries, head_dim,
        BLOCK_M=delta_block_m, BLOCK_D=options["BLOCK_D"],
    )

    def key_tiles(meta):
        return (triton.cdiv(n_keys, meta["BLOCK_N"]), batch * heads)

    def query_tiles(meta):
        return (triton.cdiv(n_queries, meta["BLOCK_M"]), batch * heads)

    dk, dv = torch.empty_like(k), torch.empty_like(v)
    _attention_backward_dkdv_kernel[key_tiles](
        q, k, v, key_mask_bytes, dout, logsumexp, delta, dk, dv,
        *q.stride(), *k.stride(), *v.stride(), *dout.stride(), *dk.stride(), *dv.stride(),
        *mask_strides, heads, n_queries, n_keys, head_dim, scale,
        **options,
    )
    dq = torch.empty_like(q)
    _attention_backward_dq_kernel[query_tiles](
        q, k, v, key_mask_bytes, dout, logsumexp, delta, dq,
        *q.stride(), *k.stride(), *v.stride(), *dout.stride(), *dq.stride(),
        *mask_strides, heads, n_queries, n_keys, head_dim, scale,
        **options,
    )
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """Autograd glue: the forward saves only O and L (O(N) memory); the backward recomputes P."""

    @staticmethod
    def forward(ctx, q, k, v, causal, key_mask, scale):
        out, logsumexp = attention_forward(q, k, v, causal, key_mask, scale)
        ctx.save_for_backward(q, k, v, out, logsumexp, key_mask)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # the backward is a kernel, not autograd ops
    def backward(ctx, dout):
        q, k, v, out, logsumexp, key_mask = ctx.saved_tensors
        dq, dk, dv = attention_backward(
            dout, q, k, v, out, logsumexp, ctx.causal, key_mask, ctx.scale
        )
        return dq, dk, dv, None, None, None


# ---------------------------------------------------------------- public entry point


def _describe(value):
    if isinstance(value, torch.Tensor):
        return f"a {value.dim()}-D {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _check_inputs(q, k, v, key_mask, causal, scale):
    """Raise ValueError, naming the argument, for anything the kernels cannot handle (`causal` and
    `scale` by the rules the NumPy reference and the twin apply: True or False, None or finite)."""
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (B, H, N, D), got {_describe(tensor)}")
        if tensor.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} has dtype {tensor.dtype}; supported: float32, float16, "
                             "bfloat16")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape (B, H, Nk, D), got "
                         f"k {tuple(k.shape)} and v {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q and k must have the same batch and heads (B, H), got "
                         f"q {tuple(q.shape)} and k {tuple(k.shape)}")
    if q.shape[3] != k.shape[3]:
        raise ValueError(f"q and k must have the same head dim D, got {q.shape[3]} and "
                         f"{k.shape[3]}")
    if not MIN_HEAD_DIM <= q.shape[3] <= MAX_HEAD_DIM:
        raise ValueError(f"q has head dim D={q.shape[3]}: the kernel supports "
                         f"{MIN_HEAD_DIM} <= D <= {MAX_HEAD_DIM}")
    if q.shape[0] * q.shape[1] > MAX_BATCH_HEADS:
        raise ValueError(f"q has B * H = {q.shape[0]} * {q.shape[1]} = {q.shape[0] * q.shape[1]} "
                         f"(batch, heads) pairs: the kernel runs at most {MAX_BATCH_HEADS:,} (CUDA's "
                         "limit on the grid's second axis); split the batch")
    if min(q.shape[0], q.shape[1], q.shape[2], k.shape[2]) < 1:
        raise ValueError(f"q and k must be non-empty, got q {tuple(q.shape)} and "
                         f"k {tuple(k.shape)}")
    if key_mask is not None:
        check_key_mask("key_mask", key_mask, k, torch.Tensor)
    check_flag("causal", causal)
    if scale is not None:
        number_in("scale", scale, "(-inf, inf)")
    devices = sorted({str(t.device) for t in (q, k, v, key_mask) if t is not None})
    if len(devices) > 1:
        raise ValueError(f"q, k, v and key_mask must be on one device, got {devices}")
    if q.device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"q, k, v are on {q.device}: Triton kernels need CUDA tensors, or "
                         "TRITON_INTERPRET=1 set before triton is imported to run on the CPU")


def flash_attention(q, k, v, causal=False, key_mask=None, scale=None):
    """softmax(scale * q k^T, masked) v, fused in Triton; differentiable in q, k, v.

    q (B, H, Nq, D); k, v (B, H, Nk, D); key_mask (B, Nk) bool, True = a real token that may be
    attended; causal is aligned bottom-right (query i sees key j iff j <= i + Nk - Nq); scale
    defaults to 1/sqrt(D). Rows that may attend nothing output 0. Returns (B, H, Nq, D) in q's
    dtype.
    """
    _check_inputs(q, k, v, key_mask, causal, scale)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return FlashAttention.apply(q, k, v, bool(causal), key_mask, scale)


# ---------------------------------------------------------------- reference


def attention_reference(q, k, v, causal=False, key_mask=None, scale=None, dtype=torch.float64):
    """The same attention in plain PyTorch, computed in `dtype` (float64 by default): the CPU
    reference the kernel is validated against. Differentiable; returns a tensor of `dtype`.

    It materialises the (B, H, Nq, Nk) scores, so it is for small shapes. Rows that may attend
    nothing output 0 and have zero gradient, as in the kernel.
    """
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    n_queries, n_keys, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    allowed = torch.ones(n_queries, n_keys, dtype=torch.bool, device=q.device)  # (Nq, Nk)
    if causal:
        allowed = torch.tril(allowed, diagonal=n_keys - n_queries)
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]  # (B, 1, Nq, Nk)
    scores = (q @ k.transpose(-1, -2)) * scale  # (B, H, Nq, Nk)
    scores = scores.masked_fill(~allowed, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True).detach()  # (B, H, Nq, 1)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(scores - row_max)  # (B, H, Nq, Nk): exactly 0 where not allowed
    row_sum = weights.sum(dim=-1, keepdim=True)  # (B, H, Nq, 1)
    weights = weights / torch.where(row_sum > 0, row_sum, torch.ones_like(row_sum))
    return weights @ v  # (B, H, Nq, D)
