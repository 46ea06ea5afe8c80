"""Benchmark: the Triton FlashAttention-2 kernel against PyTorch's attention backends (GPU only).

For every sequence length N, head dim D, causal or not, and dtype (bf16, fp16), this times the
forward pass, the backward pass and both together with `triton.testing.do_bench` (median), for

    triton           minilm.kernels.flash_attention
    sdpa-flash       torch's scaled_dot_product_attention pinned to FLASH_ATTENTION
    sdpa-cudnn       ... pinned to CUDNN_ATTENTION
    sdpa-efficient   ... pinned to EFFICIENT_ATTENTION (memory-efficient, xFormers-style)
    sdpa-math        ... pinned to MATH (plain matmul + softmax: materialises the N x N scores)

A backend that refuses a configuration is recorded with its reason; MATH is skipped above
N = 4096, where its N x N scores take too much memory and time. Throughput counts the matmul
FLOPs, 4 * B * H * N^2 * D for the forward (halved when causal) and 2.5 times that for the
backward (five matmuls instead of two); peak memory is the most allocated during one forward +
backward beyond the inputs. B * N is held at 16k tokens, with H = 16 heads of D = 64 or
H = 8 of D = 128 (a model width of 1024 either way).

Writes benchmarks/results/attention.json (after every configuration, so a run cut short keeps its
results) and benchmarks/results/attention.png, and prints a table.

    python benchmarks/attention.py                    # the full sweep
    python benchmarks/attention.py --quick            # bf16, N in {1k, 4k, 16k}
    python benchmarks/attention.py --time-budget 300  # stop starting new configurations after 300 s
"""

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TOKENS = 16 * 1024  # B * N
SEQ_LENS = (512, 1024, 2048, 4096, 8192, 16384)
QUICK_SEQ_LENS = (1024, 4096, 16384)
HEAD_DIMS = (64, 128)
DTYPES = ("bfloat16", "float16")
MATH_MAX_LEN = 4096
MODES = ("forward", "backward", "forward_backward")
FLOPS_FACTOR = {"forward": 1.0, "backward": 2.5, "forward_backward": 3.5}


def heads_for(head_dim):
    """H * D = 1024: the same model width for both head dims."""
    return 1024 // head_dim


def forward_flops(batch, heads, seq_len, head_dim, causal):
    """Two matmuls (Q K^T and P V) of 2 * N * N * D flops each, per head; half of them if causal."""
    flops = 4 * batch * heads * seq_len * seq_len * head_dim
    return flops / 2 if causal else flops


def implementations():
    """name -> (attention(q, k, v, causal), context manager to run it in)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention

    from minilm.kernels import flash_attention

    def sdpa(q, k, v, causal):
        return scaled_dot_product_attention(q, k, v, is_causal=causal)

    impls = {"triton": (lambda q, k, v, causal: flash_attention(q, k, v, causal=causal),
                        contextlib.nullcontext)}
    for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION),
                          ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION),
                          ("sdpa-math", SDPBackend.MATH)):
        impls[name] = (sdpa, lambda backend=backend: sdpa_kernel(backend))
    return impls


def peak_memory_mib(run):
    """Most memory allocated while `run()` executes, beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def measure(attention, q, k, v, dout, causal):
    """Median milliseconds for forward, backward, forward + backward; peak MiB; the output."""
    from triton.testing import do_bench

    inputs = [q, k, v]

    def forward():
        return attention(q, k, v, causal)

    def forward_backward():
        forward().backward(dout)

    def clear_grads():
        for t in inputs:
            t.grad = None

    forward_backward()  # compiles and autotunes outside the timed region
    clear_grads()
    peak = peak_memory_mib(forward_backward)  # includes the new q, k, v gradients
    timings = {
        "forward": do_bench(forward, return_mode="median"),
        "forward_backward": do_bench(forward_backward, grad_to_none=inputs, return_mode="median"),
    }
    out = forward()  # its graph is kept (retain_graph) so the backward can be timed alone
    timings["backward"] = do_bench(lambda: out.backward(dout, retain_graph=True),
                                   grad_to_none=inputs, return_mode="median")
    clear_grads()
    return timings, peak, out.detach()


def benchmark_configuration(impls, dtype_name, head_dim, causal, seq_len):
    """One record per implementation for this shape."""
    from triton.errors import TritonError

    dtype = getattr(torch, dtype_name)
    batch, heads = TOKENS // seq_len, heads_for(head_dim)
    generator = torch.Generator(device="cuda").manual_seed(0)

    def randn():
        shape = (batch, heads, seq_len, head_dim)
        return torch.randn(shape, device="cuda", dtype=dtype, generator=generator)

    q, k, v = (randn().requires_grad_() for _ in range(3))
    dout = randn()
    flops = forward_flops(batch, heads, seq_len, head_dim, causal)
    shape = {"dtype": dtype_name, "head_dim": head_dim, "causal": causal, "seq_len": seq_len,
             "batch": batch, "heads": heads}
    records, triton_out = [], None
    for name, (attention, context) in impls.items():
        record = {**shape, "impl": name}
        records.append(record)
        if name == "sdpa-math" and seq_len > MATH_MAX_LEN:
            record["skipped"] = f"MATH materialises N x N scores: skipped for N > {MATH_MAX_LEN}"
            continue
        try:
            with context(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SDPA warns about every backend it cannot use
                timings, peak, out = measure(attention, q, k, v, dout, causal)
        except (RuntimeError, TritonError) as error:  # no kernel for this shape, out of memory
            first_line = (str(error).strip().splitlines() or [""])[0]
            record["skipped"] = f"{type(error).__name__}: {first_line[:300]}"
            q.grad = k.grad = v.grad = None
            torch.cuda.empty_cache()
            continue
        if name == "triton":
            triton_out = out
        if triton_out is not None:  # a sanity check that everyone computes the same attention
            record["max_abs_diff_vs_triton"] = (out.float() - triton_out.float()).abs().max().item()
        record["peak_mib"] = round(peak, 1)
        for mode in MODES:
            record[f"{mode}_ms"] = timings[mode]
            record[f"{mode}_tflops"] = flops * FLOPS_FACTOR[mode] / (timings[mode] * 1e-3) / 1e12
    return records


def sweep(quick):
    """(dtype, D, causal, N) in the order they run: bf16 first, so a time budget cuts fp16."""
    dtypes, seq_lens = (DTYPES[:1], QUICK_SEQ_LENS) if quick else (DTYPES, SEQ_LENS)
    return [(dtype, head_dim, causal, seq_len) for dtype in dtypes for head_dim in HEAD_DIMS
            for causal in (False, True) for seq_len in seq_lens]


def plot(records, path):
    """Forward and forward + backward TFLOP/s against N, one panel per (D, causal), first dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in records if "forward_ms" in r]
    if not measured:
        return
    dtype = measured[0]["dtype"]
    panels = [(d, c) for d in HEAD_DIMS for c in (False, True)]
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 7), squeeze=False)
    for row, mode in enumerate(("forward", "forward_backward")):
        for col, (head_dim, causal) in enumerate(panels):
            ax = axes[row][col]
            for impl in dict.fromkeys(r["impl"] for r in measured):
                points = sorted((r["seq_len"], r[f"{mode}_tflops"]) for r in measured
                                if r["impl"] == impl and r["dtype"] == dtype
                                and r["head_dim"] == head_dim and r["causal"] == causal)
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=impl,
                            linewidth=2.5 if impl == "triton" else 1.2)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{mode.replace('_', ' + ')}, D={head_dim}, "
                         f"{'causal' if causal else 'full'}", fontsize=10)
            ax.set_xlabel("sequence length N")
            ax.set_ylabel("TFLOP/s")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"attention on {torch.cuda.get_device_name()}, {dtype}, B*N = {TOKENS} tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(records):
    """Forward + backward TFLOP/s (and peak MiB) per shape and implementation."""
    impls = list(dict.fromkeys(r["impl"] for r in records))
    print(f"\n{'dtype':9} {'D':>4} {'causal':>6} {'N':>6} | "
          + " | ".join(f"{name:>16}" for name in impls))
    print("forward+backward TFLOP/s (peak MiB); '-' = skipped (reason in the JSON)")
    shapes = dict.fromkeys((r["dtype"], r["head_dim"], r["causal"], r["seq_len"]) for r in records)
    for shape in shapes:
        cells = []
        for name in impls:
            match = [r for r in records
                     if (r["dtype"], r["head_dim"], r["causal"], r["seq_len"]) == shape
                     and r["impl"] == name]
            if match and "forward_backward_tflops" in match[0]:
                r = match[0]
                cells.append(f"{r['forward_backward_tflops']:7.1f} ({r['peak_mib']:6.0f})")
            else:
                cells.append(f"{'-':>16}")
        dtype, head_dim, causal, seq_len = shape
        print(f"{dtype:9} {head_dim:>4} {causal!s:>6} {seq_len:>6} | " + " | ".join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced sweep (bf16, 3 lengths)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="start no new configuration after this many seconds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        sys.exit("benchmarks/attention.py needs a CUDA GPU, and torch.cuda.is_available() is "
                 "False here. (On CPU the kernel only runs under the Triton interpreter, which "
                 "is for testing, not timing.)")
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: the interpreter is for testing, not timing")
    import triton

    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / "attention.json", args.out / "attention.png"
    impls = implementations()
    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "triton": triton.__version__,
        "python": platform.python_version(),
        "tokens": TOKENS, "quick": args.quick, "time_budget_s": args.time_budget,
        "flops": "forward 4*B*H*N^2*D (x0.5 causal); backward 2.5x forward",
        "timing": "triton.testing.do_bench, median ms", "records": [], "not_run": [],
    }
    start = time.perf_counter()
    for dtype, head_dim, causal, seq_len in sweep(args.quick):
        if args.time_budget is not None and time.perf_counter() - start > args.time_budget:
            report["not_run"].append([dtype, head_dim, causal, seq_len])
            continue
        print(f"{dtype} D={head_dim} causal={causal} N={seq_len} ...", flush=True)
        report["records"] += benchmark_configuration(impls, dtype, head_dim, causal, seq_len)
        report["elapsed_s"] = round(time.perf_counter() - start, 1)
        json_path.write_text(json.dumps(report, indent=1))
    if report["not_run"]:
        print(f"time budget reached: {len(report['not_run'])} configurations not run")
    json_path.write_text(json.dumps(report, indent=1))
    plot(report["records"], png_path)
    print_table(report["records"])
    print(f"\nwrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
