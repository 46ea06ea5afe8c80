"""Benchmark: the Triton FlashAttention-2 kernel against PyTorch's attention backends (GPU).

For every sequence length N, head dim D, causal or not, and dtype (bf16, fp16), this times the
forward pass, the backward pass and both together with `triton.testing.do_bench` (median), for

    triton           minilm.kernels.flash_attention
    sdpa-flash       torch's scaled_dot_product_attention pinned to FLASH_ATTENTION
    sdpa-cudnn       ... pinned to CUDNN_ATTENTION
    sdpa-efficient   ... pinned to EFFICIENT_ATTENTION (memory-efficient, xFormers-style)
    sdpa-math        ... pinned to MATH (plain matmul + softmax: materialises the N x N scores)

A backend that refuses a configuration is recorded with its reason (the error, and the warnings in
which SDPA says why); MATH is skipped above N = 4096, where its N x N scores take too much memory
and time. Throughput counts the matmul FLOPs, 4 * B * H * N^2 * D for the forward (halved when
causal) and 2.5 times that for the backward (five matmuls instead of two); peak memory is the most
allocated during one forward + backward beyond the inputs. B * N is held at 16k tokens, with
H = 16 heads of D = 64 or H = 8 of D = 128 (a model width of 1024 either way), so an
implementation whose memory is linear in N has the same peak at every N, and one that stores the
N x N scores a peak that grows with N. Every output is compared with triton's (max |difference|),
a sanity check that all of them compute the same attention.

Writes, into --out (benchmarks/results/ by default):
    attention.json   every record, and the configurations not run
    attention.md     TFLOP/s and peak-memory tables, and issue 12's targets, each with its
                     verdict computed from the records: met, missed by how much, or not measured
    attention.png    forward and forward + backward TFLOP/s against N
(json and md after every configuration, so that a run cut short keeps what it measured).

    python benchmarks/attention.py                    # the full sweep (bf16 first, D=128 first)
    python benchmarks/attention.py --quick            # bf16, N in {1k, 4k, 16k}
    python benchmarks/attention.py --time-budget 300  # stop starting new configurations after 300 s
    TRITON_INTERPRET=1 python benchmarks/attention.py --smoke --out /tmp/attention-smoke

`--smoke` runs every code path of the GPU run on the CPU (tests/test_gpu_scripts.py): the kernel
under the Triton interpreter, tiny shapes, time.perf_counter medians instead of do_bench, no peak
memory; the SDPA backends that refuse the CPU are recorded as skipped. Its timings mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from flags import add_out_and_smoke

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODES = ("forward", "backward", "forward_backward")
FLOPS_FACTOR = {"forward": 1.0, "backward": 2.5, "forward_backward": 3.5}
IMPLEMENTATIONS = ("triton", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math")
SMOKE_REPEATS = 2  # perf_counter calls per median on the CPU


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What one run measures, in the order it runs: dtype, then D, then causal, then N."""

    tokens: int  # B * N, the same for every N
    seq_lens: tuple[int, ...]
    head_dims: tuple[int, ...]
    dtypes: tuple[str, ...]
    width: int  # H * D, the same for every D
    math_max_len: int  # sdpa-math is skipped above this N

    def heads(self, head_dim: int) -> int:
        return self.width // head_dim

    def configurations(self) -> list[tuple[str, int, bool, int]]:
        """bf16 first, so that a time budget cuts fp16; D=128 (the forward target's) first."""
        return [(dtype, head_dim, causal, seq_len) for dtype in self.dtypes
                for head_dim in self.head_dims for causal in (False, True)
                for seq_len in self.seq_lens]


FULL = Sweep(tokens=16 * 1024, seq_lens=(512, 1024, 2048, 4096, 8192, 16384), head_dims=(128, 64),
             dtypes=("bfloat16", "float16"), width=1024, math_max_len=4096)
QUICK = dataclasses.replace(FULL, seq_lens=(1024, 4096, 16384), dtypes=("bfloat16",))
# Tiny shapes for the interpreter; N = 32 is above math_max_len, so the MATH skip runs too.
SMOKE = Sweep(tokens=32, seq_lens=(16, 32), head_dims=(16,), dtypes=("bfloat16",), width=16,
              math_max_len=16)

# ---------------------------------------------------------------- issue 12's targets (H200, bf16)
TARGET_DTYPE = "bfloat16"
FORWARD_TARGET = {"head_dim": 128, "causal": False, "min_seq_len": 4096, "vs_flash": 1.0,
                  "tflops": 450.0}
TRAINING_TARGET = {"head_dims": (64, 128), "min_seq_len": 2048, "vs_flash": 1.0}
# Peak memory per sequence against N on a log-log scale: slope 1 is linear, 2 quadratic. Above
# this slope the memory is not called linear.
LINEAR_SLOPE_MAX = 1.2


# ---------------------------------------------------------------- where it runs


def select_device(smoke: bool) -> str:
    """"cuda" for a measurement, "cpu" for a smoke run: the one place the device is chosen
    (benchmarks/gpu_steps.py uses it too). Exits with a message where neither can run."""
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if smoke:
        if not interpreted:
            sys.exit("--smoke runs the kernel on the CPU under the Triton interpreter: set "
                     "TRITON_INTERPRET=1 before starting Python")
        return "cpu"
    if interpreted:
        sys.exit("unset TRITON_INTERPRET: the interpreter is for testing, not timing (or pass "
                 "--smoke for a CPU run of the script's code paths)")
    if not torch.cuda.is_available():
        sys.exit(f"{Path(sys.argv[0]).name} needs a CUDA GPU, and torch.cuda.is_available() is "
                 "False here (--smoke with TRITON_INTERPRET=1 runs its code paths on the CPU)")
    return "cuda"


def versions(device: str) -> dict:
    """The machine and the libraries, printed first and written into every result."""
    import numpy
    import triton

    name = (torch.cuda.get_device_name() if device == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}), Triton interpreter")
    return {"device": name, "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": triton.__version__, "numpy": numpy.__version__}


def median_ms(device: str):
    """timer(fn, grad_to_none) -> median milliseconds of fn(): triton's do_bench on a GPU (CUDA
    events, the L2 cache flushed between calls), time.perf_counter over SMOKE_REPEATS calls on
    the CPU. grad_to_none: tensors whose .grad is reset before every call."""
    if device == "cuda":
        from triton.testing import do_bench

        def timer(fn, grad_to_none=None):
            return do_bench(fn, grad_to_none=grad_to_none, return_mode="median")
        return timer

    def perf_counter_timer(fn, grad_to_none=None):
        times = []
        for _ in range(SMOKE_REPEATS):
            for tensor in grad_to_none or ():
                tensor.grad = None
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3
    return perf_counter_timer


def peak_memory_mib(run, device: str) -> float | None:
    """Most memory allocated while `run()` executes, beyond what was allocated before it (None on
    the CPU, which keeps no such count)."""
    if device != "cuda":
        run()
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


# ---------------------------------------------------------------- measuring


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


def measure(attention, q, k, v, dout, causal, device):
    """Median milliseconds for forward, backward, forward + backward; peak MiB; the output."""
    timer = median_ms(device)
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
    peak = peak_memory_mib(forward_backward, device)  # includes the new q, k, v gradients
    timings = {
        "forward": timer(forward),
        "forward_backward": timer(forward_backward, grad_to_none=inputs),
    }
    out = forward()  # its graph is kept (retain_graph) so the backward can be timed alone
    timings["backward"] = timer(lambda: out.backward(dout, retain_graph=True),
                                grad_to_none=inputs)
    clear_grads()
    return timings, peak, out.detach()


def refusal(error, caught) -> str:
    """Why a backend did not run: the error's first line and the warnings it raised on the way
    (SDPA warns which backend it could not use, then why)."""
    def first_line(text):
        return (str(text).strip().splitlines() or [""])[0][:300]

    reason = f"{type(error).__name__}: {first_line(error)}"
    said = "; ".join(dict.fromkeys(first_line(w.message) for w in caught))
    return f"{reason} (warnings: {said[:600]})" if said else reason


def benchmark_configuration(impls, sweep, device, dtype_name, head_dim, causal, seq_len):
    """One record per implementation for this shape."""
    from triton.errors import TritonError

    dtype = getattr(torch, dtype_name)
    batch, heads = sweep.tokens // seq_len, sweep.heads(head_dim)
    generator = torch.Generator(device=device).manual_seed(0)

    def randn():
        shape = (batch, heads, seq_len, head_dim)
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)

    q, k, v = (randn().requires_grad_() for _ in range(3))
    dout = randn()
    flops = forward_flops(batch, heads, seq_len, head_dim, causal)
    shape = {"dtype": dtype_name, "head_dim": head_dim, "causal": causal, "seq_len": seq_len,
             "batch": batch, "heads": heads}
    records, triton_out = [], None
    for name, (attention, context) in impls.items():
        record = {**shape, "impl": name}
        records.append(record)
        if name == "sdpa-math" and seq_len > sweep.math_max_len:
            record["skipped"] = (f"MATH materialises N x N scores: skipped for "
                                 f"N > {sweep.math_max_len}")
            continue
        with context(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # SDPA warns about every backend it cannot use
            try:
                timings, peak, out = measure(attention, q, k, v, dout, causal, device)
            except (RuntimeError, TritonError) as error:  # no kernel for this shape, out of memory
                record["skipped"] = refusal(error, caught)
                q.grad = k.grad = v.grad = None
                if device == "cuda":
                    torch.cuda.empty_cache()
                continue
        if name == "triton":
            triton_out = out
        if name != "triton" and triton_out is not None:  # does everyone compute the same?
            record["max_abs_diff_vs_triton"] = (out.float() - triton_out.float()).abs().max().item()
        record["peak_mib"] = None if peak is None else round(peak, 1)
        for mode in MODES:
            record[f"{mode}_ms"] = timings[mode]
            record[f"{mode}_tflops"] = flops * FLOPS_FACTOR[mode] / (timings[mode] * 1e-3) / 1e12
    return records


# ---------------------------------------------------------------- the targets' verdicts


def find(records, impl, dtype, head_dim, causal, seq_len):
    """The record of `impl` at this shape, or None when the shape was not run."""
    for r in records:
        if (r["impl"], r["dtype"], r["head_dim"], r["causal"], r["seq_len"]) == (
                impl, dtype, head_dim, causal, seq_len):
            return r
    return None


def why_missing(record) -> str:
    return "not run" if record is None else f"skipped: {record['skipped']}"


def label(head_dim, causal, seq_len=None):
    text = f"D={head_dim} {'causal' if causal else 'non-causal'}"
    return text if seq_len is None else f"{text} N={seq_len}"


def verdict(target, shortfalls, missing, measured):
    """A target's result: "met" when every point was measured and none falls short, "missed by"
    the shortfalls, "not measured" when no point was; partial measurements say which are missing."""
    if shortfalls:
        status, summary = "missed", "missed by " + "; ".join(shortfalls)
    elif not measured:
        status, summary = "not measured", "not measured"
    elif missing:
        status, summary = "met where measured", "met where measured; not measured: " + ", ".join(
            missing)
    else:
        status, summary = "met", "met"
    return {"target": target, "status": status, "verdict": summary, "measured": measured,
            "shortfalls": shortfalls, "not_measured": missing}


def versus_flash(records, mode, shapes, vs_flash, min_tflops=None):
    """Triton's `mode` TFLOP/s at each (D, causal, N) shape, against sdpa-flash's and a floor."""
    shortfalls, missing, measured = [], [], []
    for head_dim, causal, seq_len in shapes:
        where = label(head_dim, causal, seq_len)
        ours = find(records, "triton", TARGET_DTYPE, head_dim, causal, seq_len)
        flash = find(records, "sdpa-flash", TARGET_DTYPE, head_dim, causal, seq_len)
        if ours is None or "skipped" in ours:
            missing.append(f"{where} (triton {why_missing(ours)})")
            continue
        tflops = ours[f"{mode}_tflops"]
        point = f"{where}: {tflops:.1f} TFLOP/s"
        if flash is None or "skipped" in flash:
            missing.append(f"{where} (sdpa-flash {why_missing(flash)})")
        else:
            ratio = tflops / flash[f"{mode}_tflops"]
            point += f", {ratio:.2f}x sdpa-flash ({flash[f'{mode}_tflops']:.1f})"
            if ratio < vs_flash:
                shortfalls.append(f"{where}: {ratio:.2f}x sdpa-flash, {vs_flash - ratio:.2f} "
                                  f"below {vs_flash:.1f}x")
        if min_tflops is not None and tflops < min_tflops:
            shortfalls.append(f"{where}: {tflops:.1f} TFLOP/s, {min_tflops - tflops:.1f} below "
                              f"{min_tflops:.0f}")
        measured.append(point)
    return shortfalls, missing, measured


def log_log_slope(points):
    """Least-squares slope of log(y) against log(x): 1 when y grows linearly in x, 2 when
    quadratically."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    return (sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
            / sum((x - x_mean) ** 2 for x in xs))


def peak_per_sequence(records, impl, head_dim, causal):
    """[(N, peak MiB / B)] of `impl`'s measured records: the memory one sequence of N costs."""
    return sorted((r["seq_len"], r["peak_mib"] / r["batch"]) for r in records
                  if (r["impl"], r["dtype"], r["head_dim"], r["causal"]) == (
                      impl, TARGET_DTYPE, head_dim, causal)
                  and r.get("peak_mib") is not None and r["peak_mib"] > 0)


def memory_verdict(records, head_dims):
    """Peak memory per sequence linear in N: triton's log-log slope at most LINEAR_SLOPE_MAX, for
    every (D, causal) measured at two or more N (sdpa-math's slope alongside, for contrast)."""
    shortfalls, missing, measured = [], [], []
    for head_dim in head_dims:
        for causal in (False, True):
            where = label(head_dim, causal)
            points = peak_per_sequence(records, "triton", head_dim, causal)
            if len(points) < 2:
                missing.append(f"{where} (peak memory at {len(points)} N; needs 2)")
                continue
            slope = log_log_slope(points)
            per_token = [peak / n * 1024 for n, peak in points]  # KiB per token
            point = (f"{where}: slope {slope:.2f} over N {points[0][0]}..{points[-1][0]}, "
                     f"{min(per_token):.1f}..{max(per_token):.1f} KiB per token")
            math_points = peak_per_sequence(records, "sdpa-math", head_dim, causal)
            if len(math_points) >= 2:
                point += f" (sdpa-math: slope {log_log_slope(math_points):.2f})"
            measured.append(point)
            if slope > LINEAR_SLOPE_MAX:
                shortfalls.append(f"{where}: slope {slope:.2f}, {slope - LINEAR_SLOPE_MAX:.2f} "
                                  f"above {LINEAR_SLOPE_MAX}")
    return shortfalls, missing, measured


def target_verdicts(records):
    """Issue 12's three targets on an H200 in bf16, each judged from the records."""
    f, t = FORWARD_TARGET, TRAINING_TARGET
    long_lens = [n for n in FULL.seq_lens if n >= f["min_seq_len"]]
    training_lens = [n for n in FULL.seq_lens if n >= t["min_seq_len"]]
    forward = versus_flash(records, "forward",
                           [(f["head_dim"], f["causal"], n) for n in long_lens],
                           f["vs_flash"], min_tflops=f["tflops"])
    training = versus_flash(records, "forward_backward",
                            [(d, c, n) for d in t["head_dims"] for c in (False, True)
                             for n in training_lens], t["vs_flash"])
    return [
        verdict(f"forward, bf16, D={f['head_dim']}, N >= {f['min_seq_len']}, non-causal: "
                f">= {f['vs_flash']:.1f}x sdpa-flash and >= {f['tflops']:.0f} TFLOP/s", *forward),
        verdict(f"forward + backward, bf16, N >= {t['min_seq_len']}, D in {t['head_dims']}, "
                f"causal and not: >= {t['vs_flash']:.1f}x sdpa-flash", *training),
        verdict(f"peak memory linear in N (bf16, per sequence: log-log slope <= "
                f"{LINEAR_SLOPE_MAX}; 1 = linear, 2 = quadratic)",
                *memory_verdict(records, FULL.head_dims)),
    ]


# ---------------------------------------------------------------- writing the results


def table(records, dtype, column):
    """Markdown rows (D, causal, N) x implementations of `column(record)`; 'skip' where skipped."""
    impls = [name for name in IMPLEMENTATIONS if any(r["impl"] == name for r in records)]
    shapes = dict.fromkeys((r["head_dim"], r["causal"], r["seq_len"]) for r in records
                           if r["dtype"] == dtype)
    lines = ["| D | causal | N | " + " | ".join(impls) + " |",
             "|---:|:---|---:|" + "---:|" * len(impls)]
    for head_dim, causal, seq_len in shapes:
        cells = []
        for name in impls:
            r = find(records, name, dtype, head_dim, causal, seq_len)
            cells.append("" if r is None else "skip" if "skipped" in r else column(r))
        lines.append(f"| {head_dim} | {'yes' if causal else 'no'} | {seq_len} | "
                     + " | ".join(cells) + " |")
    return lines


def ratio_table(records, dtype):
    """triton / sdpa-flash TFLOP/s per shape and mode, and the largest |output - triton's|."""
    lines = ["| D | causal | N | forward | backward | forward + backward | max abs diff |",
             "|---:|:---|---:|---:|---:|---:|---:|"]
    shapes = dict.fromkeys((r["head_dim"], r["causal"], r["seq_len"]) for r in records
                           if r["dtype"] == dtype)
    for head_dim, causal, seq_len in shapes:
        ours = find(records, "triton", dtype, head_dim, causal, seq_len)
        flash = find(records, "sdpa-flash", dtype, head_dim, causal, seq_len)
        both = all(r is not None and "skipped" not in r for r in (ours, flash))
        ratios = [f"{ours[f'{m}_tflops'] / flash[f'{m}_tflops']:.2f}" if both else "n/a"
                  for m in MODES]
        diffs = [r["max_abs_diff_vs_triton"] for r in records
                 if (r["dtype"], r["head_dim"], r["causal"], r["seq_len"]) == (
                     dtype, head_dim, causal, seq_len) and "max_abs_diff_vs_triton" in r]
        diff = f"{max(diffs):.2e}" if diffs else "n/a"
        lines.append(f"| {head_dim} | {'yes' if causal else 'no'} | {seq_len} | "
                     + " | ".join(ratios) + f" | {diff} |")
    return lines


def preamble(title, report, smoke_shapes):
    """The first lines of a GPU result (attention.md, gpu_steps.md): the title, a warning when it
    comes from a smoke run, the device and the versions."""
    v = report["versions"]
    lines = [f"# {title}", ""]
    if report["smoke"]:
        lines += [(f"**Smoke run** (`--smoke`): CPU, the kernel under the Triton interpreter, "
                   f"{smoke_shapes}. It checks the script's code paths; its timings mean "
                   "nothing."), ""]
    return lines + [f"- device: {v['device']}",
                    (f"- python {v['python']}, torch {v['torch']} (CUDA {v['cuda']}), triton "
                     f"{v['triton']}, numpy {v['numpy']}")]


def markdown(report):
    """attention.md: what ran where, the targets' verdicts, the tables, the skips."""
    records = report["records"]
    lines = preamble("Attention: the Triton FlashAttention-2 kernel vs PyTorch's SDPA backends",
                     report, "tiny shapes, time.perf_counter medians of a few calls, no peak "
                     "memory")
    lines += [f"- timing: {report['timing']}",
              f"- FLOPs: {report['flops']}",
              (f"- shapes: B * N = {report['tokens']} tokens, H * D = {report['width']}; "
               f"sdpa-math skipped above N = {report['math_max_len']}"),
              (f"- run: {report['elapsed_s']} s, time budget {report['time_budget_s']} s, "
               f"{len(report['not_run'])} configurations not run"), "",
              "## Issue 12's targets (H200, bf16)", ""]
    for t in report["targets"]:
        lines += [f"- **{t['target']}**: {t['verdict']}"]
        lines += [f"  - {point}" for point in t["measured"]]
    lines.append("")
    for dtype in dict.fromkeys(r["dtype"] for r in records):
        for mode, title in (("forward", "Forward"), ("forward_backward", "Forward + backward")):
            lines += [f"## {title} TFLOP/s, {dtype}", ""]
            lines += table(records, dtype, lambda r, mode=mode: f"{r[f'{mode}_tflops']:.1f}")
            lines.append("")
        lines += [f"## triton / sdpa-flash TFLOP/s, {dtype}", ""]
        lines += ratio_table(records, dtype) + [""]
        lines += [f"## Peak memory of one forward + backward, MiB, {dtype}", ""]
        lines += table(records, dtype, lambda r: "n/a" if r["peak_mib"] is None
                       else f"{r['peak_mib']:.0f}")
        lines.append("")
    skips = {}
    for r in records:
        if "skipped" in r:
            skips.setdefault((r["impl"], r["skipped"]), []).append(
                f"{r['dtype']} {label(r['head_dim'], r['causal'], r['seq_len'])}")
    lines += ["## Skipped", ""] + [f"- {impl} ({len(where)} shapes, e.g. {where[0]}): {reason}"
                                   for (impl, reason), where in skips.items()]
    if not skips:
        lines.append("- none")
    lines += ["", "## Not run (the time budget ran out, or the run was stopped)", ""]
    lines += [f"- {dtype} {label(d, c, n)}" for dtype, d, c, n in report["not_run"]] or ["- none"]
    return "\n".join(lines) + "\n"


def plot(records, path, title, head_dims):
    """Forward and forward + backward TFLOP/s against N, one panel per (D, causal), first dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in records if "forward_ms" in r]
    if not measured:
        return
    dtype = measured[0]["dtype"]
    panels = [(d, c) for d in head_dims for c in (False, True)]
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
    fig.suptitle(f"{title}, {dtype}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(report, out, with_plot):
    """attention.json and .md (and .png) in `out`; returns the markdown."""
    report["targets"] = target_verdicts(report["records"])
    text = markdown(report)
    (out / "attention.json").write_text(json.dumps(report, indent=1))
    (out / "attention.md").write_text(text)
    if with_plot:
        plot(report["records"], out / "attention.png",
             f"attention on {report['versions']['device']}, B*N = {report['tokens']} tokens",
             report["head_dims"])
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a reduced sweep (bf16, 3 lengths)")
    add_out_and_smoke(parser, RESULTS, smoke="CPU, Triton interpreter, tiny shapes",
                      smoke_group=size)
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="start no new configuration after this many seconds")
    args = parser.parse_args(argv)

    device = select_device(args.smoke)
    sweep = SMOKE if args.smoke else QUICK if args.quick else FULL
    report = {
        "versions": versions(device), "smoke": args.smoke, "quick": args.quick,
        "time_budget_s": args.time_budget, "tokens": sweep.tokens, "width": sweep.width,
        "head_dims": sweep.head_dims, "math_max_len": sweep.math_max_len,
        "flops": "forward 4*B*H*N^2*D (x0.5 causal); backward 2.5x forward",
        "timing": ("triton.testing.do_bench, median ms" if device == "cuda" else
                   f"time.perf_counter, median of {SMOKE_REPEATS} calls, ms"),
        # what is still to run: a run cut short, by the budget or killed, says what it lacks
        "records": [], "not_run": [list(c) for c in sweep.configurations()], "elapsed_s": 0.0,
    }
    print(json.dumps(report["versions"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    impls = implementations()
    start = time.perf_counter()
    for dtype, head_dim, causal, seq_len in sweep.configurations():
        if args.time_budget is not None and time.perf_counter() - start > args.time_budget:
            print(f"time budget reached: {len(report['not_run'])} configurations not run")
            break
        print(f"{dtype} D={head_dim} causal={causal} N={seq_len} ...", flush=True)
        report["records"] += benchmark_configuration(impls, sweep, device, dtype, head_dim,
                                                     causal, seq_len)
        report["not_run"].remove([dtype, head_dim, causal, seq_len])
        report["elapsed_s"] = round(time.perf_counter() - start, 1)
        write_results(report, args.out, with_plot=False)  # a run cut short keeps its results
    print("\n" + write_results(report, args.out, with_plot=True))
    print(f"wrote {', '.join(str(args.out / f'attention.{e}') for e in ('json', 'md', 'png'))}")
    failed = [r for r in report["records"] if r["impl"] == "triton" and "skipped" in r]
    if failed:
        sys.exit(f"the Triton kernel failed on {len(failed)} configurations: "
                 f"{failed[0]['skipped']}")


if __name__ == "__main__":
    main()
