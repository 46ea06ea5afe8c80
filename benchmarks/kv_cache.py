"""Benchmark: generation speed with and without the KV cache, NumPy reference and torch twin.

Without a cache, step t of `minilm.generation.generate` runs the Decoder on all t tokens of the
context; with one, it runs it on the newest token only and attends the cached keys and values. So
the projections and feed-forward cost O(T) instead of O(T^2) token-steps over T new tokens, and
the speed-up grows with the length generated.

Two cases, each for the NumPy Decoder and the torch twin (float32, batch 1, greedy decoding, random
initial weights: speed does not depend on what the weights say):

    demo     ModelConfig.preset("demo", vocab_size=40)               prompt 16, 100 new tokens
    long     the same with max_len=256                               prompt 16, 200 new tokens

Each timing is the best of `--repeats` runs. The script also checks that both ways produce the
same tokens. Writes kv_cache.json into --out (benchmarks/results/ by default) and prints a table.
NumPy and torch run single-threaded (override with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS).

    python benchmarks/kv_cache.py
    python benchmarks/kv_cache.py --repeats 5 --batch 4
    python benchmarks/kv_cache.py --smoke --out /tmp/kv-cache-smoke

`--smoke` runs the same code in seconds (tests/test_benchmarks.py): both cases with a prompt of 4
tokens and 8 new ones, best of 2 runs. Its numbers mean nothing.
"""

import os

# One thread for OpenBLAS (NumPy) and for torch unless the caller says otherwise: these models are
# too small to gain from threads, and on a small shared CPU competing thread pools make timings
# 10-50x slower and erratic. Set before NumPy and torch load their libraries.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from flags import add_out_and_smoke, parse

from minilm import ModelConfig
from minilm.generation import generate
from minilm.numpy import Decoder
from minilm.torch import Decoder as TorchDecoder

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {  # name: (config overrides, prompt length, new tokens)
    "demo": ({}, 16, 100),
    "long": ({"max_len": 256}, 16, 200),
}
# --smoke (see the module docstring): each case's model, a prompt of 4 tokens and 8 new ones
SMOKE_CASES = {name: (overrides, 4, 8) for name, (overrides, _, _) in CASES.items()}
SMOKE_DEFAULTS = dict(repeats=2)


def best_time(run, repeats):
    """The fastest of `repeats` calls of run() (seconds) and the last result."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure(model, prompt, new_tokens, repeats):
    """Seconds and tokens for generate() with and without the cache (greedy, so no rng in play)."""
    row = {"seconds": {}, "tokens_per_second": {}}
    tokens = {}
    for use_cache in (False, True):
        key = "cache" if use_cache else "no_cache"
        seconds, tokens[key] = best_time(
            lambda use_cache=use_cache: generate(
                model, prompt, new_tokens, np.random.default_rng(0), temperature=0.0,
                use_cache=use_cache,
            ),
            repeats,
        )
        row["seconds"][key] = seconds
        row["tokens_per_second"][key] = prompt.shape[0] * new_tokens / seconds
    row["speedup"] = row["seconds"]["no_cache"] / row["seconds"]["cache"]
    row["identical_tokens"] = bool(np.array_equal(tokens["cache"], tokens["no_cache"]))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    add_out_and_smoke(parser, RESULTS, smoke="a few tokens, 2 repeats")
    args = parse(parser, argv, SMOKE_DEFAULTS)

    rows = []
    for case, (overrides, prompt_len, new_tokens) in (SMOKE_CASES if args.smoke else CASES).items():
        config = ModelConfig.preset("demo", vocab_size=40, **overrides)
        numpy_model = Decoder(config, seed=0, dtype=np.float32)
        twin = TorchDecoder.from_numpy(numpy_model)  # default attention: triton on CUDA, else sdpa
        device = "cuda" if torch.cuda.is_available() else "cpu"
        twin.to(device)
        prompt = np.random.default_rng(1).integers(0, config.vocab_size, (args.batch, prompt_len))
        for backend, model in (("numpy", numpy_model), ("torch", twin)):
            row = {
                "case": case, "backend": backend,
                "attention": twin.attention if backend == "torch" else "numpy",
                "device": device if backend == "torch" else "cpu",
                "batch": args.batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
                "config": config.to_dict(),
                **measure(model, prompt, new_tokens, args.repeats),
            }
            rows.append(row)
            print(
                f"{case:5s} {backend:6s} {row['attention']:7s} "
                f"no cache {row['seconds']['no_cache']:7.3f} s "
                f"({row['tokens_per_second']['no_cache']:7.1f} tok/s)   "
                f"cache {row['seconds']['cache']:7.3f} s "
                f"({row['tokens_per_second']['cache']:7.1f} tok/s)   "
                f"speed-up x{row['speedup']:.1f}   same tokens: {row['identical_tokens']}",
                flush=True,
            )

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "kv_cache",
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"], "numpy": np.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "timing": f"best of {args.repeats} runs of generate(), greedy, wall-clock seconds",
        "results": rows,
    }
    path = args.out / "kv_cache.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
