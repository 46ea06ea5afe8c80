"""Where the time goes on the CPU: per-op tables against the matmul ideal (issue 13, step 1).

Three workloads, each run a few times and profiled three ways:

- **NumPy MiniLM-L6 inference** (`Encoder.encode`, the pretrained weights, B x T tokens with padding);
- **NumPy demo training step** (`minilm.steps.NumpyStep` on the demo Decoder: forward,
  cross-entropy, backward, clipping, AdamW);
- **the twin vs Hugging Face `BertModel`** on MiniLM-L6 (torch.profiler, self CPU time per aten op),
  and the twin's demo training step.

For the NumPy workloads:

1. *Per op*: every op pair of `minilm.numpy.functional` (the tied LM head is a linear), the heads' split/merge
   and the optimizer are wrapped in timers that keep *exclusive* time (a nested op's time is its
   own, not its caller's). Each timed op also counts its matmul FLOPs from its arguments' shapes,
   and its *ideal* is those FLOPs at this machine's GEMM rate, measured in the same process (the
   best of several float32 products of the workload's own largest linear layer). "glue" is what
   no timer covers: the layers' concatenations, residual additions and Python.
2. *Per line* of minilm/numpy/*.py (a `sys.settrace` timer, exclusive per line): which line of an op
   costs what (the scores matmul, the exp, the where of a mask...).
3. *cProfile*, by total time per function, C functions included (concatenate, astype, ...).

Threads are pinned before NumPy and torch load (`--threads`, default 2 as in issue 13's table):
OMP/OpenBLAS/MKL variables and torch.set_num_threads. The machine is shared and noisy: absolute
times drift with the load (printed with the results); the per-op *shares* are what to read.

    python benchmarks/profile_cpu.py [--threads 2] [--repeats 5] [--label before]
    python benchmarks/profile_cpu.py --smoke --out /tmp/profile-cpu-smoke

Writes profile_cpu[_LABEL].md and .json into --out (benchmarks/results/ by default).

`--smoke` runs the same code in seconds (tests/test_benchmarks.py): 2 x 8 tokens of MiniLM-L6,
2 x 16 of the demo Decoder, 2 repeats. Its numbers mean nothing.
"""

from __future__ import annotations

from threads import pin_threads

THREADS = pin_threads(default=2)  # --threads N, before NumPy loads

# isort: split
from inference import padded_batch  # its batches are this script's inputs too

# isort: split
import argparse
import cProfile
import json
import linecache
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from flags import add_out_and_smoke, parse

import minilm.numpy
from minilm.common.backends import inference, on_backend
from minilm.config import ModelConfig
from minilm.distributed import ALONE
from minilm.numpy import functional as F
from minilm.numpy import layers, models, optim
from minilm.pretrained import default_model_path, load_pretrained
from minilm.train import TrainSettings, step_for

RESULTS = Path(__file__).parent / "results"
NUMPY_SOURCES = Path(minilm.numpy.__file__).parent
SMOKE_DEFAULTS = dict(repeats=2, minilm_batch=2, minilm_len=8, demo_batch=2, demo_len=16)


# ---------------------------------------------------------------- the workloads


def minilm_inference(batch, time_steps):
    """(name, run, largest linear (N, in, out)) of the NumPy MiniLM-L6 forward."""
    model = load_pretrained(default_model_path(), backend="numpy")
    ids, mask = padded_batch(batch, time_steps, model.config.vocab_size)

    def run():
        with inference(model):
            model.encode(ids, mask)

    c = model.config
    return run, (batch * time_steps, c.d_model, c.d_ff)


def demo_step(batch, time_steps, backend="numpy"):
    """(run, largest linear) of one training step of the demo Decoder (vocabulary 31, as `make
    demo`'s character tokenizer)."""
    config = ModelConfig.preset("demo", vocab_size=31, max_len=time_steps)
    settings = TrainSettings()
    model = on_backend(models.Decoder(config), backend)
    step = step_for(model, settings, ALONE)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(0, 31, (2, batch, time_steps))

    def run():
        step((inputs,), targets, lr=1e-4)

    return run, (batch * time_steps, config.d_model, config.d_ff)


def gemm_rate(shape, repeats=7) -> float:
    """FLOP/s of the best of `repeats` float32 products (N, in) @ (in, out): the machine's peak
    for this shape right now."""
    n, k, m = shape
    rng = np.random.default_rng(0)
    a, b = rng.random((n, k), dtype=np.float32), rng.random((k, m), dtype=np.float32)
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n * k * m / best


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------- 1. per-op timers


def _rows(x):
    return x.size // x.shape[-1]


# label -> matmul FLOPs of one call, from the call's own arguments
FLOPS = {
    "linear_forward": lambda x, weight, bias=None: 2 * _rows(x) * weight.size,
    "linear_backward": lambda dout, cache: 4 * _rows(dout) * cache.weight.size,
    "attention_forward": lambda q, k, v, *a, **kw: 2 * _rows(q) * k.shape[-2] * (q.shape[-1] + v.shape[-1]),
    "attention_backward": lambda dout, cache: (
        4 * _rows(cache.q) * cache.k.shape[-2] * (cache.q.shape[-1] + cache.v.shape[-1])),
}


class OpTimer:
    """Wraps functions in place with timers of exclusive time and FLOP counters; `restore()`."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.flops = defaultdict(float)
        self.calls = defaultdict(int)
        self._children = []  # time spent in timed callees of each open call
        self._originals = []

    def wrap(self, owner, name, label=None):
        original = getattr(owner, name)
        label = label or name
        count = FLOPS.get(name)

        def timed(*args, **kwargs):
            self._children.append(0.0)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[label] += elapsed - self._children.pop()
                if self._children:
                    self._children[-1] += elapsed
                self.calls[label] += 1
                if count is not None:
                    self.flops[label] += count(*args, **kwargs)

        self._originals.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self):
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()


def timed_ops() -> OpTimer:
    timer = OpTimer()
    for name in dir(F):
        if name.endswith(("_forward", "_backward")) and callable(getattr(F, name)):
            timer.wrap(F, name)
    timer.wrap(layers, "split_heads")
    timer.wrap(layers, "merge_heads")
    timer.wrap(layers.ParameterStore, "accumulate", "grad accumulate")
    timer.wrap(layers.ParameterStore, "zero_grad", "zero_grad")
    timer.wrap(optim.AdamW, "step", "AdamW step")
    for module in (optim, sys.modules["minilm.steps"]):
        timer.wrap(module, "clip_grad_norm", "clip_grad_norm")
    return timer


def op_table(run, repeats, rate):
    """{op: {ms, calls, gflop, ideal_ms}} per run (medians over repeats) and the total ms."""
    per_repeat, totals = [], []
    for _ in range(repeats):
        timer = timed_ops()
        try:
            total = _seconds(run)
        finally:
            timer.restore()
        glue = total - sum(timer.seconds.values())
        per_repeat.append({**timer.seconds, "glue (layers, Python)": glue})
        totals.append(total)
        calls, flops = dict(timer.calls), dict(timer.flops)
    table = {}
    for label in per_repeat[0]:
        ms = statistics.median(r.get(label, 0.0) for r in per_repeat) * 1e3
        gflop = flops.get(label, 0.0) / 1e9
        table[label] = {"ms": ms, "calls": calls.get(label, 0), "gflop": gflop,
                        "ideal_ms": gflop * 1e9 / rate * 1e3}
    return table, statistics.median(totals) * 1e3


# ---------------------------------------------------------------- 2. per-line timer


def line_table(run, top=25):
    """Exclusive seconds per source line of minilm/numpy/*.py over one run, the `top` costliest."""
    prefix = str(NUMPY_SOURCES)
    seconds = defaultdict(float)
    state = {"where": None, "since": time.perf_counter()}

    def advance(where):
        now = time.perf_counter()
        if state["where"] is not None:
            seconds[state["where"]] += now - state["since"]
        state["where"], state["since"] = where, now

    def local(frame, event, arg):
        if event == "line":
            advance((frame.f_code.co_filename, frame.f_lineno))
        elif event == "return":  # back in the caller's line, if the caller is traced
            caller = frame.f_back
            traced = caller is not None and caller.f_code.co_filename.startswith(prefix)
            advance((caller.f_code.co_filename, caller.f_lineno) if traced else None)
        return local

    def on_call(frame, event, arg):
        if frame.f_code.co_filename.startswith(prefix):
            advance((frame.f_code.co_filename, frame.f_lineno))
            return local
        return None

    sys.settrace(on_call)
    try:
        total = _seconds(run)
    finally:
        sys.settrace(None)
    advance(None)
    rows = sorted(seconds.items(), key=lambda item: -item[1])[:top]
    return [{"where": f"{Path(file).name}:{line}", "ms": s * 1e3, "share": s / total,
             "code": linecache.getline(file, line).strip()} for (file, line), s in rows]


# ---------------------------------------------------------------- 3. cProfile


def cprofile_table(run, top=20):
    profile = cProfile.Profile()
    profile.enable()
    total = _seconds(run)
    profile.disable()
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        where = name if file == "~" else f"{Path(file).name}:{line}({name})"
        rows.append({"function": where, "calls": ncalls, "tottime_ms": tottime * 1e3,
                     "share": tottime / total})
    return sorted(rows, key=lambda r: -r["tottime_ms"])[:top]


# ---------------------------------------------------------------- the twin vs Hugging Face


def torch_op_table(runs: dict, repeats, top=18):
    """Self CPU ms per call of the top aten ops, for each named run, profiled alternately."""
    per_run = {}
    for name, run in runs.items():
        run()  # warm up
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                run()
        per_run[name] = {event.key: event.self_cpu_time_total / repeats / 1e3
                         for event in prof.key_averages()}
    keys = set().union(*per_run.values())
    rows = sorted(keys, key=lambda key: -max(ops.get(key, 0.0) for ops in per_run.values()))[:top]
    return [{"op": key, **{name: per_run[name].get(key, 0.0) for name in runs}} for key in rows]


def minilm_twin_and_hf(batch, time_steps):
    from transformers import BertModel

    directory = default_model_path()
    twin = load_pretrained(directory, backend="torch", attention="sdpa")
    hf = BertModel.from_pretrained(directory).eval()
    ids, mask = padded_batch(batch, time_steps, twin.config.vocab_size)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)

    def run_twin():
        with torch.no_grad():
            twin.encode(ids_t, mask_t)

    def run_hf():
        with torch.no_grad():
            hf(input_ids=ids_t, attention_mask=mask_t)

    return {"twin (sdpa)": run_twin, "HF BertModel": run_hf}


# ---------------------------------------------------------------- report


def markdown_op_table(table, total_ms):
    lines = ["| op | calls | ms | share | GFLOP | ideal ms | ms / ideal |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, row in sorted(table.items(), key=lambda item: -item[1]["ms"]):
        ratio = f"{row['ms'] / row['ideal_ms']:.1f}" if row["ideal_ms"] else ""
        ideal = f"{row['ideal_ms']:.2f}" if row["ideal_ms"] else ""
        gflop = f"{row['gflop']:.3f}" if row["gflop"] else ""
        lines.append(f"| {label} | {row['calls']} | {row['ms']:.2f} | {row['ms'] / total_ms:.1%} | "
                     f"{gflop} | {ideal} | {ratio} |")
    ideal = sum(row["ideal_ms"] for row in table.values())
    lines.append(f"| **total** | | **{total_ms:.2f}** | 100% | "
                 f"{sum(r['gflop'] for r in table.values()):.3f} | {ideal:.2f} | "
                 f"{total_ms / ideal:.1f} |")
    return lines


def markdown_lines(rows):
    lines = ["| line | ms | share | code |", "|---|---:|---:|---|"]
    lines += [f"| {r['where']} | {r['ms']:.2f} | {r['share']:.1%} | `{r['code'][:90]}` |"
              for r in rows]
    return lines


def markdown_cprofile(rows):
    lines = ["| function | calls | tottime ms | share |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['function'][:80]}` | {r['calls']} | {r['tottime_ms']:.2f} | {r['share']:.1%} |"
              for r in rows]
    return lines


def markdown_torch(rows, names):
    lines = ["| aten op | " + " | ".join(f"{n} ms" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    lines += [f"| `{r['op']}` | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |" for r in rows]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="BLAS and torch threads (read before NumPy loads)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="", help="suffix of the result files, e.g. before")
    parser.add_argument("--minilm-batch", type=int, default=32)
    parser.add_argument("--minilm-len", type=int, default=64)
    parser.add_argument("--demo-batch", type=int, default=16)
    parser.add_argument("--demo-len", type=int, default=128)
    add_out_and_smoke(parser, RESULTS, smoke="tiny batches, 2 repeats")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    torch.set_num_threads(args.threads)

    workloads = {
        f"NumPy MiniLM-L6 encode, {args.minilm_batch} x {args.minilm_len} tokens (padded)":
            minilm_inference(args.minilm_batch, args.minilm_len),
        f"NumPy demo Decoder training step, {args.demo_batch} x {args.demo_len} tokens":
            demo_step(args.demo_batch, args.demo_len),
    }
    load_before = os.getloadavg()
    report = {"threads": args.threads, "repeats": args.repeats, "workloads": {}}
    md = [f"# Where the time goes on the CPU{' (' + args.label + ')' if args.label else ''}", "",
          (f"`python benchmarks/profile_cpu.py --threads {args.threads} --repeats {args.repeats}`: "
          f"{args.threads} BLAS/torch thread(s), float32, on a shared {os.cpu_count()}-core machine "
          "(absolute times drift with the load; the shares are what to read). Per op: exclusive "
          "time, median of the repeats; ideal = the op's matmul FLOPs at the GEMM rate measured in "
          "the same process on the workload's largest linear layer."), ""]
    for name, (run, shape) in workloads.items():
        run()  # warm up (allocations, first-call imports)
        rate = gemm_rate(shape, repeats=14)
        ops, total_ms = op_table(run, args.repeats, rate)
        lines = line_table(run)
        cprof = cprofile_table(run)
        report["workloads"][name] = {"gemm_gflops": rate / 1e9, "gemm_shape": shape,
                                     "total_ms": total_ms, "ops": ops, "lines": lines,
                                     "cprofile": cprof}
        md += [f"## {name}", "",
               (f"GEMM rate {rate / 1e9:.0f} GFLOP/s (float32, {shape[0]}x{shape[1]} @ "
               f"{shape[1]}x{shape[2]}, best of 14); total {total_ms:.1f} ms per run."), "",
               *markdown_op_table(ops, total_ms), "", ("Costliest lines (exclusive, one run under "
               "the line tracer):"), "", *markdown_lines(lines), "",
               "cProfile, total time per function:", "", *markdown_cprofile(cprof), ""]
        print(f"{name}: {total_ms:.1f} ms, GEMM {rate / 1e9:.0f} GFLOP/s")

    twin_hf = minilm_twin_and_hf(args.minilm_batch, args.minilm_len)
    rows = torch_op_table(twin_hf, args.repeats)
    report["twin_vs_hf"] = rows
    md += [(f"## The twin vs Hugging Face BertModel, MiniLM-L6, {args.minilm_batch} x "
           f"{args.minilm_len} tokens (padded), torch.profiler self CPU ms per forward"), "",
           *markdown_torch(rows, list(twin_hf)), ""]
    twin_step, _ = demo_step(args.demo_batch, args.demo_len, backend="torch")
    rows = torch_op_table({"twin step": twin_step}, args.repeats)
    report["twin_demo_step"] = rows
    md += [(f"## The twin's demo training step, {args.demo_batch} x {args.demo_len} tokens, "
           "torch.profiler self CPU ms per step"), "", *markdown_torch(rows, ["twin step"]), ""]

    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    md += [(f"Load average (1, 5, 15 min) before: {load_before[0]:.1f}, {load_before[1]:.1f}, "
           f"{load_before[2]:.1f}; after: {os.getloadavg()[0]:.1f}.")]
    suffix = f"_{args.label}" if args.label else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"profile_cpu{suffix}.json").write_text(json.dumps(report, indent=2))
    (args.out / f"profile_cpu{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
