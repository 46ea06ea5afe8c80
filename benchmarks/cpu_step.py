"""One training step of the same Decoder: the NumPy reference vs the PyTorch twin (SDPA), on a CPU.

A step = forward, cross-entropy, backward, gradient clipping, AdamW update. Both models start
from the same weights; the two are timed alternately in one process (NumPy step, torch step,
NumPy step, ...) so that a busy machine slows both alike, and the median of each is reported.

    python benchmarks/cpu_step.py [--repeats 20] [--batch-size 16] [--seq-len 128]

Writes benchmarks/results/cpu_step.json and cpu_step.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from minilm.common.backends import on_backend
from minilm.config import ModelConfig
from minilm.numpy import Decoder
from minilm.steps import make_step
from minilm.train import TrainSettings

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--preset", default="demo")
    args = parser.parse_args(argv)

    config = ModelConfig.preset(args.preset, vocab_size=64, max_len=args.seq_len)
    settings = TrainSettings()  # the training defaults: weight decay, betas, clipping
    steps = {  # the same weights in both: the twin starts as a copy of the NumPy model
        backend: make_step(on_backend(Decoder(config), backend), settings.weight_decay,
                           betas=(0.9, settings.adam_beta2), grad_clip=settings.grad_clip)
        for backend in ("numpy", "torch")
    }
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.seq_len)
    inputs, targets = rng.integers(0, 64, shape), rng.integers(0, 64, shape)

    times = {"numpy": [], "torch": []}
    for repeat in range(args.repeats + 2):  # the first two rounds warm up
        for name, step in steps.items():
            start = time.perf_counter()
            step((inputs,), targets, lr=1e-4)
            if repeat >= 2:
                times[name].append(time.perf_counter() - start)

    tokens = args.batch_size * args.seq_len
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "model": f"Decoder preset {args.preset!r}, {Decoder(config).num_parameters()} parameters",
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "dtype": "float32",
        "torch_attention": "sdpa",
        "median_step_seconds": median,
        "tokens_per_second": {name: tokens / t for name, t in median.items()},
        "numpy_over_torch_step_time": median["numpy"] / median["torch"],
        "repeats": args.repeats,
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
                    "torch": torch.__version__},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_step.json").write_text(json.dumps(result, indent=2))
    plot(times, tokens, RESULTS / "cpu_step.png")
    for name in ("numpy", "torch"):
        print(f"{name:6s} {median[name] * 1e3:8.1f} ms/step  {tokens / median[name]:9.0f} tokens/s")
    print(f"NumPy step time / torch step time = {result['numpy_over_torch_step_time']:.2f} "
          "(target: <= 1.5)")


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
