"""Benchmark: one training step of the PyTorch twin on a GPU, attention="triton" vs "sdpa".

A step is `minilm.train.step_for` with `TrainSettings(backend="torch", dtype="bfloat16")`: the forward pass and the loss under
bf16 autocast, the backward pass, gradient clipping and AdamW (weights, gradients and Adam's
moments stay float32), with the training defaults of `minilm.train.TrainSettings`. Workloads:

    MiniLM-L6 sequence classifier  32 x 128 and 8 x 512 tokens: a SequenceClassifier (2 labels)
                                   on an Encoder of ModelConfig.preset("minilm-l6"), padded
                                   batches (lengths uniform in [T/2, T], the attention mask
                                   becomes the kernel's key mask; padded positions count as tokens)
    demo Decoder                   16 x 128 and 64 x 128 tokens: preset "demo", next-token targets

The weights are random (seed 0): the pretrained MiniLM-L6 is not installed on the GPU machine, and
a step's time does not depend on the weights' values. Dropout is 0 in both arms: the kernel has no
dropout, and with dropout > 0 a "triton" model trains its attention through SDPA
(`minilm.torch.functional.backend_for_call`), which would time SDPA against itself.

For each workload, two models with the same weights (one per attention) first take one step on
the same batch: their losses must agree within LOSS_TOLERANCE, and the kernel's launch counter must
show that the triton arm ran the kernel (forward and backward, once per layer) and the sdpa arm did
not. Then the two arms alternate (triton, sdpa, triton, ...) for --repeats rounds after --warmup
rounds, each step between two torch.cuda.synchronize() calls, and each arm's median step time
gives its tokens/s (B * T / median); the ratio triton / sdpa > 1 means the kernel's step is faster.

Writes gpu_steps.json and gpu_steps.md into --out (benchmarks/results/ by default).

    python benchmarks/gpu_steps.py [--repeats 20] [--time-budget 90]
    TRITON_INTERPRET=1 python benchmarks/gpu_steps.py --smoke --out /tmp/steps-smoke

`--smoke` runs the same code on the CPU (tests/test_gpu_scripts.py): the kernel under the Triton
interpreter, both workload kinds shrunk to one small layer and 2 x 16 tokens, 2 rounds. Its timings
mean nothing.
"""

from __future__ import annotations

# benchmarks/attention.py chooses the device (one place for both scripts); benchmarks/ is on
# sys.path when this file runs as a script.
from attention import RESULTS, peak_memory_mib, preamble, refusal, select_device, versions

# isort: split
import argparse
import dataclasses
import json
import statistics
import sys
import time

import numpy as np
import torch
from flags import add_out_and_smoke, parse

from minilm.config import ModelConfig
from minilm.distributed import ALONE
from minilm.torch.heads import SequenceClassifier
from minilm.torch.models import Decoder, Encoder
from minilm.train import TrainSettings, step_for

LR = 1e-5  # small: the timed steps should not move the weights far
# The two arms' first losses, relative: bf16 keeps 8 bits of mantissa (2^-8 = 0.4 %), and the
# two attentions round differently; the loss averages over the batch.
LOSS_TOLERANCE = 1e-2
NUM_LABELS = 2


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    model: str  # "classifier" | "decoder"
    preset: str
    batch: int
    seq_len: int

    def config(self, smoke: bool) -> ModelConfig:
        """The preset with dropout 0 (see the module docstring); shrunk for a smoke run."""
        shrink = dict(vocab_size=64, max_len=32, d_model=32, n_heads=2, n_layers=1, d_ff=64)
        return ModelConfig.preset(self.preset, dropout=0.0, **(shrink if smoke else {}))


CLASSIFIER, DECODER = "MiniLM-L6 sequence classifier", "demo Decoder"
WORKLOADS = (Workload(CLASSIFIER, "classifier", "minilm-l6", 32, 128),
             Workload(CLASSIFIER, "classifier", "minilm-l6", 8, 512),
             Workload(DECODER, "decoder", "demo", 16, 128),
             Workload(DECODER, "decoder", "demo", 64, 128))
SMOKE_WORKLOADS = (Workload(CLASSIFIER, "classifier", "minilm-l6", 2, 16),
                   Workload(DECODER, "decoder", "demo", 2, 16))
SMOKE_DEFAULTS = dict(repeats=2, warmup=1)


def build(workload, config, attention, device):
    """The model with weights from seed 0, on `device`."""
    if workload.model == "classifier":
        encoder = Encoder(config, attention=attention, seed=0, mlm_head=False, pooler=True)
        model = SequenceClassifier(encoder, NUM_LABELS, seed=0)
    else:
        model = Decoder(config, attention=attention, seed=0)
    return model.to(device)


def make_batch(workload, config, rng):
    """(inputs, targets) as the training loops pass them: NumPy arrays, moved by the model."""
    shape = (workload.batch, workload.seq_len)
    if workload.model == "classifier":
        lengths = rng.integers(workload.seq_len // 2, workload.seq_len + 1, size=workload.batch)
        mask = (np.arange(workload.seq_len)[None, :] < lengths[:, None]).astype(np.int64)  # (B, T)
        ids = rng.integers(1, config.vocab_size, shape) * mask  # padding is id 0
        labels = rng.integers(0, NUM_LABELS, workload.batch)  # (B,)
        return (ids, mask, np.zeros(shape, dtype=np.int64)), labels
    ids = rng.integers(0, config.vocab_size, (workload.batch, workload.seq_len + 1))
    return (ids[:, :-1],), ids[:, 1:]  # next-token targets


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(step, batch, device):
    """Seconds of one step, from an idle device to an idle device."""
    synchronize(device)
    start = time.perf_counter()
    step(*batch, lr=LR)
    synchronize(device)
    return time.perf_counter() - start


def check_step(steps, batch, n_layers):
    """One step of each arm on the same batch from the same weights: the losses, how many times
    the kernel ran during each, and whether they agree (see the module docstring)."""
    from minilm.kernels.flash_attention import LAUNCHES

    check = {}
    for attention, step in steps.items():
        before = LAUNCHES.copy()
        loss = step(*batch, lr=LR)
        launches = {kind: LAUNCHES[kind] - before[kind] for kind in ("forward", "backward")}
        check[attention] = {"loss": loss, "kernel_launches": launches}
    expected = {"triton": {"forward": n_layers, "backward": n_layers},
                "sdpa": {"forward": 0, "backward": 0}}
    difference = abs(check["triton"]["loss"] - check["sdpa"]["loss"])
    check["loss_difference"] = difference
    check["loss_close"] = difference <= LOSS_TOLERANCE * max(1.0, abs(check["sdpa"]["loss"]))
    check["kernel_ran_only_in_triton_arm"] = all(
        check[attention]["kernel_launches"] == launches for attention, launches in expected.items())
    return check


def peak_mib(step, batch, device):
    """Most memory allocated during one step beyond what was allocated before it (activations,
    gradients, temporaries; not the two models' weights and Adam moments), MiB; None on the CPU."""
    peak = peak_memory_mib(lambda: step(*batch, lr=LR), device)
    return None if peak is None else round(peak, 1)


def benchmark_workload(workload, smoke, device, warmup, repeats):
    """The record of one workload: the check, peak memory, the alternating timings."""
    config = workload.config(smoke)
    settings = TrainSettings(backend="torch", dtype="bfloat16")  # the defaults, in bf16
    models = {"triton": build(workload, config, "triton", device)}
    models["sdpa"] = build(workload, config, "sdpa", device)
    models["sdpa"].load_state_dict(models["triton"].state_dict())
    steps = {attention: step_for(model, settings, ALONE)
             for attention, model in models.items()}  # triton first: the order they alternate in
    batch = make_batch(workload, config, np.random.default_rng(0))
    record = {"workload": workload.name, "batch": workload.batch, "seq_len": workload.seq_len,
              "config": config.to_dict(),
              "parameters": sum(p.numel() for p in models["triton"].parameters()),
              "check": check_step(steps, batch, config.n_layers)}
    for _ in range(warmup - 1):  # the check step was the first warm-up (compiles, autotunes)
        for step in steps.values():
            timed(step, batch, device)
    record["peak_mib"] = {attention: peak_mib(step, batch, device)
                          for attention, step in steps.items()}
    times = {attention: [] for attention in steps}
    for _ in range(repeats):
        for attention, step in steps.items():
            times[attention].append(timed(step, batch, device))
    tokens = workload.batch * workload.seq_len
    record["step_seconds"] = times
    record["median_step_ms"] = {a: statistics.median(t) * 1e3 for a, t in times.items()}
    record["tokens_per_second"] = {a: tokens / statistics.median(t) for a, t in times.items()}
    record["triton_over_sdpa"] = (record["tokens_per_second"]["triton"]
                                  / record["tokens_per_second"]["sdpa"])
    return record


def markdown(report):
    """gpu_steps.md: what ran where, and one row per workload."""
    lines = preamble('One training step on the GPU: the twin with attention="triton" vs "sdpa"',
                     report, "shrunk models")
    lines += [f"- step: {report['step']}",
              f"- timing: {report['timing']}",
              "- weights: random (seed 0); a step's time does not depend on their values",
              ("- dropout 0 in both arms: the kernel has no dropout (with dropout > 0 a triton "
               "model trains its attention through SDPA)"), "",
              ("| workload | B x T | parameters | triton ms | sdpa ms | triton tokens/s | "
               "sdpa tokens/s | triton / sdpa | loss triton / sdpa | kernel ran (fwd, bwd) | "
               "peak MiB above the step's start, triton / sdpa |"),
              "|:---|---:|---:|---:|---:|---:|---:|---:|:---|:---|:---|"]
    for r in report["records"]:
        size = f"{r['batch']} x {r['seq_len']}"
        if "error" in r:
            lines.append(f"| {r['workload']} | {size} | failed: {r['error']} |")
            continue
        check, ms, rate, peak = r["check"], r["median_step_ms"], r["tokens_per_second"], \
            r["peak_mib"]
        launches = check["triton"]["kernel_launches"]
        ran = (f"{launches['forward']}, {launches['backward']}"
               + ("" if check["kernel_ran_only_in_triton_arm"] else " (UNEXPECTED)"))
        losses = (f"{check['triton']['loss']:.4f} / {check['sdpa']['loss']:.4f}"
                  + ("" if check["loss_close"] else " (DIFFER)"))
        peaks = " / ".join("n/a" if p is None else f"{p:.0f}" for p in peak.values())
        lines.append(f"| {r['workload']} | {size} | {r['parameters']:,} | "
                     f"{ms['triton']:.2f} | {ms['sdpa']:.2f} | {rate['triton']:.0f} | "
                     f"{rate['sdpa']:.0f} | {r['triton_over_sdpa']:.2f} | {losses} | {ran} | "
                     f"{peaks} |")
    lines += ["", f"Run: {report['elapsed_s']} s, time budget {report['time_budget_s']} s. "
              "Not run (the time budget ran out, or the run was stopped): "
              + (", ".join(f"{w} {b} x {t}" for w, b, t in report["not_run"]) or "none")]
    return "\n".join(lines) + "\n"


def write_results(report, out):
    """gpu_steps.json and gpu_steps.md in `out`; returns the markdown."""
    text = markdown(report)
    (out / "gpu_steps.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_steps.md").write_text(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed rounds per workload (default 20; 2 with --smoke)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed rounds before them, the check step included (default 3; "
                             "1 with --smoke)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="start no new workload after this many seconds")
    add_out_and_smoke(parser, RESULTS, smoke="CPU, Triton interpreter, shrunk models")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.warmup < 1:
        parser.error(f"--warmup must be >= 1 (the check step is the first), got {args.warmup}")

    device = select_device(args.smoke)
    report = {
        "versions": versions(device), "smoke": args.smoke, "time_budget_s": args.time_budget,
        "step": "minilm.train.step_for, TrainSettings(dtype='bfloat16'): forward + loss under bf16 autocast, "
                "backward, clip, AdamW (TrainSettings defaults), lr 1e-5",
        "timing": (f"arms alternating, {args.repeats} rounds after {args.warmup} warm-up rounds, "
                   "each step synchronised, medians"),
        "records": [], "elapsed_s": 0.0,
    }
    workloads = SMOKE_WORKLOADS if args.smoke else WORKLOADS
    # what is still to run: a run cut short, by the budget or killed, says what it lacks
    report["not_run"] = [[w.name, w.batch, w.seq_len] for w in workloads]
    print(json.dumps(report["versions"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for workload in workloads:
        if args.time_budget is not None and time.perf_counter() - start > args.time_budget:
            print(f"time budget reached: {len(report['not_run'])} workloads not run")
            break
        print(f"{workload.name} {workload.batch} x {workload.seq_len} ...", flush=True)
        try:
            record = benchmark_workload(workload, args.smoke, device, args.warmup, args.repeats)
        except Exception as error:  # noqa: BLE001 (one workload failing must not cost the others)
            record = {"workload": workload.name, "batch": workload.batch,
                      "seq_len": workload.seq_len, "error": refusal(error, ())}
        report["records"].append(record)
        report["not_run"].remove([workload.name, workload.batch, workload.seq_len])
        report["elapsed_s"] = round(time.perf_counter() - start, 1)
        write_results(report, args.out)  # after every workload: a run cut short keeps them
    print("\n" + write_results(report, args.out))
    print(f"wrote {args.out / 'gpu_steps.json'} and {args.out / 'gpu_steps.md'}")
    failed = [r for r in report["records"] if "error" in r or not r["check"]["loss_close"]
              or not r["check"]["kernel_ran_only_in_triton_arm"]]
    if failed:
        sys.exit(f"{len(failed)} workloads failed or disagreed: see gpu_steps.md")


if __name__ == "__main__":
    main()
