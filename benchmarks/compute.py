"""What `minilm.compute` predicts against what this CPU measures, and the published models.

For the demo Decoder and MiniLM-L6 (with its MLM head), both backends, one process:
- FLOPs of a training step: predicted vs torch's FlopCounterMode (the twin, attention="math");
- activation memory: predicted vs tracemalloc (NumPy) and torch.profiler (the twin, SDPA, which is a
  flash kernel on a CPU);
- step time (forward, cross-entropy, backward, clipping, AdamW; `minilm.steps`): the time the model
  FLOPs would take at this core's peak vs the measured median, whose ratio is the measured MFU.
  The peak is measured too, in every round: the best of three float32 matmuls (torch, 2048^3).
Then the published models: parameters and training compute against the papers.

Threads are pinned to one (the machine has 2 cores and is shared): every number is for one core,
and the backends and the peak are timed alternately in one process, so that a busy machine slows
them alike. Dropout is 0, as in tests/test_compute.py.

    python benchmarks/compute.py [--repeats 5]
    python benchmarks/compute.py --smoke --out /tmp/compute-smoke

Writes compute.json and compute.md into --out (benchmarks/results/ by default).

`--smoke` runs the same code in seconds (tests/test_benchmarks.py): both presets shrunk to one layer
of width 32 and a vocabulary of 64, at 2 x 16 tokens, one timed round after the warm-up, and a
256^3 peak matmul. Its numbers mean nothing; its md says so.
"""

from __future__ import annotations

from threads import pin_threads

pin_threads(default=1)  # before NumPy and torch load their BLAS

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

from minilm.common.backends import on_backend
from minilm.compute import (
    PRESET_MODELS,
    flops_per_token,
    measured_mfu,
    memory,
    parameter_count,
    training_flops,
)
from minilm.compute.measure import (
    measured_flops,
    numpy_activation_bytes,
    torch_activation_bytes,
)
from minilm.config import ModelConfig
from minilm.numpy import Decoder, Encoder
from minilm.steps import make_step

RESULTS = Path(__file__).parent / "results"
MODELS = {  # name -> (preset, model, batch, seq_len)
    "demo Decoder": ("demo", "decoder", 16, 128),
    "MiniLM-L6 + MLM head": ("minilm-l6", "encoder", 8, 128),
}
PEAK_SIZE = 2048  # of the matmul whose FLOP/s is the peak
SMOKE_SHRINK = dict(vocab_size=64, max_len=32, d_model=32, n_heads=2, n_layers=1, d_ff=64)
SMOKE_BATCH, SMOKE_SEQ_LEN, SMOKE_PEAK_SIZE = 2, 16, 256
SMOKE_DEFAULTS = dict(repeats=1)
PUBLISHED = [  # (preset, published parameters, source)
    ("bert-base", 110e6, "Devlin et al. 2019, BERT, section 3"),
    ("bert-large", 340e6, "Devlin et al. 2019, BERT, section 3"),
    ("gpt2", 124e6, "github.com/openai/gpt-2, model names (the paper's Table 2 said 117M)"),
    ("gpt2-medium", 355e6, "github.com/openai/gpt-2, model names (the paper's Table 2 said 345M)"),
    ("gpt2-large", 774e6, "github.com/openai/gpt-2, model names"),
    ("gpt2-xl", 1558e6, "github.com/openai/gpt-2, model names"),
    ("gpt3-175b", 174.6e9, "Brown et al. 2020, GPT-3, Table D.1"),
]
GPT3_TRAINING = (300e9, 3.14e23, "Brown et al. 2020, GPT-3, Table D.1")  # tokens, FLOPs, source


def matmul_peak(size):
    """FLOP/s of one float32 (size x size) @ (size x size) product: 2 size^3 FLOPs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    start = time.perf_counter()
    torch.mm(a, b)
    return 2 * size**3 / (time.perf_counter() - start)


def measure(name, repeats, smoke=False):
    preset, model, batch, seq_len = MODELS[name]
    peak_size = PEAK_SIZE
    if smoke:
        batch, seq_len, peak_size = SMOKE_BATCH, SMOKE_SEQ_LEN, SMOKE_PEAK_SIZE
    config = ModelConfig.preset(preset, dropout=0.0, **(SMOKE_SHRINK if smoke else {}))
    numpy_model = (Decoder(config) if model == "decoder" else Encoder(config))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, (batch, seq_len))
    tokens = batch * seq_len

    twin = on_backend(numpy_model, "torch")  # the CPU twin: SDPA
    math_twin = type(twin).from_numpy(numpy_model, attention="math")
    forward, backward = measured_flops(math_twin, torch.from_numpy(ids))
    step_flops = flops_per_token(config, seq_len, True, model).total * tokens
    activations = {
        "numpy": (memory(config, batch, seq_len, implementation="numpy", model=model),
                  numpy_activation_bytes(numpy_model, ids)),
        "torch": (memory(config, batch, seq_len, attention="flash", model=model),
                  torch_activation_bytes(twin, torch.from_numpy(ids))),
    }

    steps = {backend: make_step(m, weight_decay=0.1) for backend, m in
             (("numpy", numpy_model), ("torch", twin))}
    times, peaks = {"numpy": [], "torch": []}, []
    for repeat in range(repeats + 1):  # the first round warms up
        peaks.append(max(matmul_peak(peak_size) for _ in range(3)))
        for backend, step in steps.items():
            start = time.perf_counter()
            step((ids,), ids, lr=1e-4)
            if repeat:
                times[backend].append(time.perf_counter() - start)
    peaks = peaks[1:]  # without the warm-up round's
    peak = statistics.median(peaks)
    seconds = {backend: statistics.median(values) for backend, values in times.items()}
    mfu = {  # each round's step against the same round's peak
        backend: [measured_mfu(step_flops, t, round_peak) for t, round_peak in zip(values, peaks)]
        for backend, values in times.items()
    }
    return {
        "preset": preset, "model": model, "batch": batch, "seq_len": seq_len, "dtype": "float32",
        "parameters": parameter_count(config, model).total,
        "peak_matmul_size": peak_size,
        "flops_per_step": {"predicted": step_flops, "measured": forward + backward},
        "activation_bytes": {
            backend: {"predicted": estimate.activations.total, "measured": measured}
            for backend, (estimate, measured) in activations.items()
        },
        "peak_flops_per_second": peak,
        "peak_flops_per_second_all": peaks,
        "step_seconds": {
            backend: {"at_peak": step_flops / peak, "measured": seconds[backend],
                      "all": times[backend], "mfu": statistics.median(mfu[backend]),
                      "mfu_all": mfu[backend]}
            for backend in steps
        },
    }


def published():
    rows = []
    for preset, count, source in PUBLISHED:
        model, parts = PRESET_MODELS[preset]
        ours = parameter_count(ModelConfig.preset(preset), model, **parts).total
        rows.append({"model": preset, "ours": ours, "published": count,
                     "gap": ours / count - 1, "source": source})
    tokens, flops, source = GPT3_TRAINING
    compute = training_flops(ModelConfig.preset("gpt3-175b"), tokens, seq_len=2048)
    return {"parameters": rows, "gpt3_training": {
        "tokens": tokens, "published": flops, "six_n_d": compute.six_n_d, "exact": compute.exact,
        "source": source}}


def markdown(result):
    machine = result["machine"]
    load = machine["load_average"]
    lines = ["# What it costs: predicted vs measured", ""]
    if result["smoke"]:
        lines += [(f"**Smoke run** (`--smoke`): the models shrunk to one layer of width "
                   f"{SMOKE_SHRINK['d_model']}, {SMOKE_BATCH} x {SMOKE_SEQ_LEN} tokens, a "
                   f"{SMOKE_PEAK_SIZE}^3 peak matmul. It checks the script's code paths; its "
                   "numbers mean nothing."), ""]
    lines += [(f"One core of this machine ({machine['processor'] or 'x86_64'}, "
               f"{machine['cpu_count']} cores, shared: load average {load[0]:.1f} when the run "
               f"began, {load[1]:.1f} when it ended), threads pinned to 1, float32, dropout 0. "
               "Ratios and medians come from one process, the backends and the peak timed "
               "alternately. `python benchmarks/compute.py` writes this file."), "",
              "| model | quantity | predicted | measured | measured / predicted |",
              "|---|---|---:|---:|---:|"]
    for name, r in result["models"].items():
        shape = f"{name}, {r['batch']} x {r['seq_len']} tokens"
        f = r["flops_per_step"]
        lines.append(f"| {shape} | FLOPs of a training step (FlopCounterMode) | "
                     f"{f['predicted']:.4g} | {f['measured']:.4g} | "
                     f"{f['measured'] / f['predicted']:.4f} |")
        for backend, how in (("numpy", "NumPy, tracemalloc"), ("torch", "twin (SDPA), profiler")):
            a = r["activation_bytes"][backend]
            lines.append(f"| | activation memory, {how} | {a['predicted'] / 2**20:.1f} MiB | "
                         f"{a['measured'] / 2**20:.1f} MiB | {a['measured'] / a['predicted']:.4f} |")
        for backend in ("numpy", "torch"):
            s = r["step_seconds"][backend]
            lines.append(f"| | step time, {backend} (at peak vs measured) | "
                         f"{s['at_peak'] * 1e3:.0f} ms | {s['measured'] * 1e3:.0f} ms | "
                         f"{s['measured'] / s['at_peak']:.2f} (MFU {s['mfu']:.0%}, rounds "
                         f"{min(s['mfu_all']):.0%}-{max(s['mfu_all']):.0%}) |")
    peaks = ", ".join(f"{r['peak_flops_per_second'] / 1e9:.0f}" for r in result["models"].values())
    size = next(iter(result["models"].values()))["peak_matmul_size"]
    lines += ["", (f"Peak: the best of three float32 {size}^3 matmuls, timed in every round between "
                   f"the steps (medians {peaks} GFLOP/s in the two models' runs). MFU = model FLOPs "
                   "of the step / step time / that round's peak, the median over the rounds; the "
                   "time at peak uses the median peak. "
                   "The peak is measured, not the datasheet's: this VM does not say its clock "
                   "(at 64 float32 FLOPs per cycle with AVX-512 and the 2.6 GHz TSC, one core "
                   "would peak at 166 GFLOP/s), so these MFUs are relative to what one large "
                   "matmul achieves here. Predicted activation memory: `memory(..., "
                   "implementation=\"numpy\")` for the reference, `attention=\"flash\"` (autograd) "
                   "for the twin, whose SDPA runs a flash kernel on the CPU."), "",
              "## Published models", "",
              "| model | parameters (ours) | published | gap | source |", "|---|---:|---:|---:|---|"]
    for row in result["published"]["parameters"]:
        lines.append(f"| {row['model']} | {row['ours']:,} | {row['published'] / 1e6:,.1f}M | "
                     f"{row['gap']:+.2%} | {row['source']} |")
    g = result["published"]["gpt3_training"]
    lines += ["", (f"GPT-3 175B trained on {g['tokens'] / 1e9:.0f}B tokens: {g['published']:.3g} "
                   f"FLOPs published ({g['source']}, counted as 6 N D); 6 N D here "
                   f"{g['six_n_d']:.4g} ({g['six_n_d'] / g['published'] - 1:+.2%}); the exact "
                   f"matmul count {g['exact']:.4g} ({g['exact'] / g['published'] - 1:+.2%}): the "
                   "attention term 12 L T C per token, which the paper leaves out.")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds after the warm-up one (default 5; 1 with --smoke)")
    add_out_and_smoke(parser, RESULTS, smoke="shrunk models, tiny shapes")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    models = {name: measure(name, args.repeats, args.smoke) for name in MODELS}
    result = {
        "smoke": args.smoke,
        "models": models,
        "published": published(),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "load_average": [load_before, os.getloadavg()[0]],
                    "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
                    "torch": torch.__version__},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compute.json").write_text(json.dumps(result, indent=2))
    (args.out / "compute.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
