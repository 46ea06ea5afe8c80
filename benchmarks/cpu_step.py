"""One training step of the same Decoder: the NumPy reference vs the PyTorch twin (SDPA), on a CPU.

A step = forward, cross-entropy, backward, gradient clipping, AdamW update. Both models start
from the same weights; the two are timed alternately in one process (NumPy step, torch step,
NumPy step, ...) so that a busy machine slows both alike, each after a pause that lets the other's
BLAS/OpenMP threads stop spinning, and the median of each is reported.

    python benchmarks/cpu_step.py [--repeats 20] [--batch-size 16] [--seq-len 128] [--label loaded]
    python benchmarks/cpu_step.py --smoke --out /tmp/cpu-step-smoke

Threads are pinned before NumPy and torch load (`--threads N`, default 2: OMP/OpenBLAS/MKL
variables and torch.set_num_threads); the load average is recorded with the result (the machine is
shared and noisy).

Writes cpu_step.json (cpu_step_<N>threads.json for --threads N other than 2; --label LABEL adds
_LABEL) and its .png into --out (benchmarks/results/ by default).

`--smoke` runs the same code in seconds (tests/test_benchmarks.py): batches of 2 x 16 tokens, 2
timed repeats. Its numbers mean nothing.
"""

from __future__ import annotations

from threads import alternate, pin_threads

THREADS = pin_threads(default=2)  # --threads N, before NumPy loads

# isort: split
import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
from flags import add_out_and_smoke, parse

from minilm.common.backends import on_backend
from minilm.config import ModelConfig
from minilm.distributed import ALONE
from minilm.numpy import Decoder
from minilm.train import TrainSettings, step_for

RESULTS = Path(__file__).parent / "results"
SMOKE_DEFAULTS = dict(repeats=2, batch_size=2, seq_len=16)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="BLAS and torch threads (read before NumPy loads)")
    parser.add_argument("--label", default="", help="suffix of the result files, e.g. loaded")
    add_out_and_smoke(parser, RESULTS, smoke="tiny batches, 2 repeats")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    config = ModelConfig.preset(args.preset, vocab_size=64, max_len=args.seq_len)
    settings = TrainSettings()  # the training defaults: weight decay, betas, clipping
    steps = {  # the same weights in both: the twin starts as a copy of the NumPy model
        backend: step_for(on_backend(Decoder(config), backend), settings, ALONE)
        for backend in ("numpy", "torch")
    }
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.seq_len)
    inputs, targets = rng.integers(0, 64, shape), rng.integers(0, 64, shape)

    times, cpu_times = alternate({name: lambda step=step: step((inputs,), targets, lr=1e-4)
                                  for name, step in steps.items()}, args.repeats)

    tokens = args.batch_size * args.seq_len
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_times.items()}
    result = {
        "model": f"Decoder preset {args.preset!r}, {Decoder(config).num_parameters()} parameters",
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "dtype": "float32",
        "torch_attention": "sdpa",
        "median_step_seconds": median,
        "tokens_per_second": {name: tokens / t for name, t in median.items()},
        "numpy_over_torch_step_time": median["numpy"] / median["torch"],
        # with one thread, CPU time is what a quiet machine's wall time would be; with more it
        # adds up every thread's (spinning included), so it is left out
        "median_cpu_step_seconds": cpu if args.threads == 1 else None,
        "numpy_over_torch_cpu_time": cpu["numpy"] / cpu["torch"] if args.threads == 1 else None,
        "repeats": args.repeats,
        "threads": args.threads,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
                    "torch": torch.__version__},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cpu_step" if args.threads == 2 else f"cpu_step_{args.threads}threads"
    name += f"_{args.label}" if args.label else ""
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    plot(times, tokens, args.out / f"{name}.png")
    for name in ("numpy", "torch"):
        print(f"{name:6s} {median[name] * 1e3:8.1f} ms/step  {tokens / median[name]:9.0f} tokens/s")
    print(f"NumPy step time / torch step time = {result['numpy_over_torch_step_time']:.2f} "
          f"(issue 13's target: <= 0.8); {args.threads} thread(s), load {load_before[0]:.1f}")
    if args.threads == 1:
        print(f"CPU time: NumPy / torch = {result['numpy_over_torch_cpu_time']:.2f}")


def plot(times, tokens, path):
    """Every timed step of both backends, in the order they ran, and the medians."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in times.items():
        rates = tokens / np.asarray(values)
        ax.plot(rates, "o-", ms=3, label=f"{name}: median {tokens / statistics.median(values):.0f}")
    ax.set_xlabel("repeat (the two backends alternate)")
    ax.set_ylabel("tokens / s (one training step)")
    ax.set_ylim(bottom=0)
    ax.set_title("demo Decoder, one training step on the CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
