"""English -> Kelish translation (seed §5): the `translation` Seq2Seq trained on the CPU by the NumPy
reference and by the PyTorch twin, scored on held-out stories' sentences.

1. Speed, the fair way on a shared machine: one training step of the same model (same weights, same
   batch) on each backend, alternately in one process (NumPy, torch, NumPy, ...), `--repeats`
   times; the medians and their ratio. Likewise greedy decoding of held-out sentences with and
   without the KV cache.
2. The runs: `minilm.train.train` with `--objective seq2seq` and the same settings on each backend
   (the loop `minilm train` runs), their loss curves, wall times, and the held-out scores: exact
   match, BLEU and chrF (sacrebleu), greedy and beam search, over all held-out sentences and over
   those that never occur in the training stories.

One BLAS/OpenMP thread and one torch thread by default (set before NumPy loads): on the 2-core
machine other work runs beside this, and more threads only make the times noisier. `--speed-only
--threads N` measures step 1 alone with N threads (the twin's torch runs its elementwise work on
every thread, NumPy's ufuncs on one) into translation_speed.json, kept per thread count, and
rewrites translation.md with it.

    python benchmarks/translation.py [--steps 1500] [--batch-size 64] [--repeats 30]
    python benchmarks/translation.py --speed-only --threads 2
    python benchmarks/translation.py --smoke --out /tmp/translation-smoke

Writes translation.{json,md,png} and translation_speed.json, and the NumPy run's model (weights,
config, tokenizer) into translation_model/, all in --out (benchmarks/results/ by default, whose
translation_model/ lesson 09 reads); --speed-only reads translation.json from there too.

`--smoke` runs the same code (tests/test_benchmarks.py): runs of 20 steps of 4 sentence pairs, 2
alternating repeats, the script's own step timing, scores and decoding on the sentences of 24
stories (20 for training, 4 held out). `minilm.train.train` still reads and scores the whole
corpus, which takes most of its time. Its numbers mean nothing.
"""

from __future__ import annotations

from threads import alternate, pin_threads

THREADS = pin_threads(default=1)

# isort: split
import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from flags import add_out_and_smoke, parse

from minilm.beam import greedy_decode
from minilm.checkpoint import load_run, save_run
from minilm.common.backends import on_backend
from minilm.distributed import ALONE
from minilm.numpy import Seq2Seq
from minilm.train import TrainSettings, step_for, train, training_batch
from minilm.translation import (
    TRANSLATION_MODEL,
    heldout_scores,
    pad_sources,
    translation_data,
)

RESULTS = Path(__file__).parent / "results"
TARGET_EXACT_MATCH, TARGET_SECONDS = 0.90, 300
# --smoke (see the module docstring); 20 steps: the plot's moving mean of the loss takes 20
SMOKE_DEFAULTS = dict(steps=20, batch_size=4, eval_every=20, repeats=2)
SMOKE_STORIES = dict(n_stories=20, n_heldout_stories=4)


def step_times(config, settings, data, repeats):
    """Median seconds of one training step on each backend, measured alternately."""
    steps = {backend: step_for(on_backend(Seq2Seq(config, seed=0), backend), settings, ALONE)
             for backend in ("numpy", "torch")}
    inputs, targets = training_batch(data.train, settings, data.tokenizer,
                                     np.random.default_rng(0))
    times, _ = alternate({name: lambda step=step: step(inputs, targets, lr=1e-4)
                          for name, step in steps.items()}, repeats)
    return {name: statistics.median(values) for name, values in times.items()}, times


def cache_times(model, data, repeats, n_sentences=256):
    """Median seconds to translate `n_sentences` held-out sentences greedily, with and without
    the cache, alternately (the same tokens either way)."""
    ids, mask = pad_sources([p.source for p in data.heldout[:n_sentences]], data.tokenizer.pad_id)

    def run(use_cache):
        return greedy_decode(model, ids, mask, data.tokenizer.cls_id, data.tokenizer.sep_id,
                             model.config.max_len, use_cache=use_cache)

    assert run(True) == run(False)
    times, _ = alternate({"cache": lambda: run(True), "no_cache": lambda: run(False)}, repeats,
                         warmup=1)
    return {name: statistics.median(values) for name, values in times.items()}


def scores(model, data, novel):
    """Held-out scores, greedy and beam search (4 beams, length penalty 1), all sentences and the
    novel ones."""
    out = {}
    for label, beams in (("greedy", 1), ("beam4", 4)):
        out[label] = heldout_scores(model, data.tokenizer, data.heldout, beams)
        out[f"{label}_novel"] = heldout_scores(model, data.tokenizer, novel, beams)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="BLAS and torch threads (read before NumPy loads)")
    parser.add_argument("--speed-only", action="store_true",
                        help="measure the training step's speed alone (translation_speed.json)")
    add_out_and_smoke(parser, RESULTS, smoke="short runs, a few stories")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    torch.set_num_threads(args.threads)

    settings = {backend: TrainSettings(objective="seq2seq", backend=backend, steps=args.steps,
                                       batch_size=args.batch_size, eval_every=args.eval_every)
                for backend in ("numpy", "torch")}
    data = translation_data(**SMOKE_STORIES) if args.smoke else translation_data()
    config = replace(TRANSLATION_MODEL, vocab_size=data.tokenizer.vocab_size)
    seen = {tuple(p.source) for p in data.train}
    novel = [p for p in data.heldout if tuple(p.source) not in seen]

    load = {"before": os.getloadavg()[0]}  # the 1-minute load average at the end of each phase
    median_step, all_step_times = step_times(config, settings["numpy"], data, args.repeats)
    load["steps"] = os.getloadavg()[0]
    speeds = record_speed(median_step, args.threads, args.batch_size, args.out)
    if args.speed_only:
        if (args.out / "translation.json").exists():  # the last full run's report, with the speeds
            result = json.loads((args.out / "translation.json").read_text())
            (args.out / "translation.md").write_text(report(result, speeds))
        return
    runs, models = {}, {}
    for backend, run_settings in settings.items():
        with tempfile.TemporaryDirectory() as out_dir:  # the run directory, as `minilm train`
            runs[backend] = train(run_settings, config, out_dir=out_dir, progress=False)
            models[backend] = load_run(out_dir, backend="numpy")[0]  # scored in NumPy
        load[f"{backend} run"] = os.getloadavg()[0]
        print(f"{backend}: {runs[backend]['wall_seconds']:.0f} s, held-out exact match "
              f"{runs[backend]['translation']['exact_match']:.4f}", flush=True)
    # the NumPy run's model, for lesson 09 (weights, config and tokenizer: about 1.3 MB)
    save_run(args.out / "translation_model", models["numpy"], data.tokenizer,
             objective="seq2seq", trained_by="benchmarks/translation.py",
             settings=asdict(settings["numpy"]))
    heldout = {backend: scores(model, data, novel) for backend, model in models.items()}
    decoding = cache_times(models["numpy"], data, max(3, args.repeats // 6))

    result = {
        "task": "English -> Kelish, held-out stories' sentences (minilm.translation)",
        "model": (f"Seq2Seq, minilm.translation.TRANSLATION_MODEL ({config.n_layers} + {config.n_layers} layers, "
                  f"C = {config.d_model}, {config.n_heads} heads, d_ff = {config.d_ff}, "
                  f"V = {config.vocab_size}), {Seq2Seq(config).num_parameters():,} parameters"),
        "config": asdict(config),
        "settings": asdict(settings["numpy"]),
        "train_sentences": len(data.train), "heldout_sentences": len(data.heldout),
        "novel_heldout_sentences": len(novel),
        "median_step_seconds": median_step,
        "numpy_over_torch_step_time": median_step["numpy"] / median_step["torch"],
        "runs": {backend: {key: run[key] for key in ("wall_seconds", "sentences_per_second",
                                                      "val_loss", "history")}
                 for backend, run in runs.items()},
        "heldout_scores": heldout,
        "greedy_decoding_seconds_256_sentences": decoding,
        "targets": {"exact_match": TARGET_EXACT_MATCH, "numpy_training_seconds": TARGET_SECONDS},
        "load_average_1min": load,
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "threads": args.threads, "numpy": np.__version__,
                    "torch": torch.__version__},
    }
    (args.out / "translation.json").write_text(json.dumps(result, indent=2))
    plot(runs, all_step_times, args.out / "translation.png")
    (args.out / "translation.md").write_text(report(result, speeds))
    print(report(result, speeds))


def record_speed(median_step, threads, batch_size, out) -> dict:
    """Keep this thread count's step times in `out`/translation_speed.json (other counts' kept);
    all."""
    path = out / "translation_speed.json"
    speeds = json.loads(path.read_text()) if path.exists() else {}
    ratio = median_step["numpy"] / median_step["torch"]
    speeds[str(threads)] = {"median_step_seconds": median_step, "batch_size": batch_size,
                            "numpy_over_torch_step_time": ratio, "load_average": os.getloadavg(),
                            "date": time.strftime("%Y-%m-%d %H:%M")}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(speeds, indent=2))
    print(f"{threads} thread(s): step NumPy {median_step['numpy'] * 1e3:.1f} ms, twin "
          f"{median_step['torch'] * 1e3:.1f} ms, NumPy / twin {ratio:.2f}")
    return speeds


def plot(runs, step_times_, path):
    """Loss curves of both runs (training, smoothed, and held-out), and the alternated step
    times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, steps) = plt.subplots(1, 2, figsize=(12, 4), width_ratios=[2, 1])
    for backend, run in runs.items():
        history = run["history"]
        losses = np.asarray(history["train_loss"])
        smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
        line, = curves.plot(np.asarray(history["step"])[19:] + 1, smooth, lw=1,
                            label=f"{backend}: training (mean of 20 steps)")
        curves.plot(history["val_step"], history["val_loss"], "o--", ms=3, color=line.get_color(),
                    label=f"{backend}: held-out sentences")
    curves.set_yscale("log")
    curves.set_xlabel("step")
    curves.set_ylabel("cross-entropy (nats / target word)")
    curves.set_title("English -> Kelish, the same Seq2Seq on each backend")
    curves.legend()
    for backend, values in step_times_.items():
        steps.plot(np.asarray(values) * 1e3, "o-", ms=3,
                   label=f"{backend}: median {statistics.median(values) * 1e3:.1f} ms")
    steps.set_xlabel("repeat (the backends alternate)")
    steps.set_ylabel("ms per training step")
    steps.set_ylim(bottom=0)
    steps.set_title("one training step, same batch")
    steps.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result, speeds) -> str:
    runs, scores_ = result["runs"], result["heldout_scores"]
    numpy_run = runs["numpy"]
    greedy = scores_["numpy"]["greedy"]
    met = (greedy["exact_match"] >= TARGET_EXACT_MATCH
           and numpy_run["wall_seconds"] <= TARGET_SECONDS)
    settings = result["settings"]
    lines = [
        "# English -> Kelish translation on the CPU",
        "",
        ("`python benchmarks/translation.py` (the numbers below are its output). "
        f"{result['model']}; {settings['steps']} steps of {settings['batch_size']} sentence "
        f"pairs, lr {settings['lr']:g} (warmup {settings['warmup_steps']}, cosine to "
        f"{settings['min_lr']:g}), AdamW (weight decay {settings['weight_decay']}, beta2 "
        f"{settings['adam_beta2']}). {result['train_sentences']} training sentences; "
        f"{result['heldout_sentences']} held-out sentences from 300 held-out stories, "
        f"{result['novel_heldout_sentences']} of them never seen in training."),
        "",
        ("The machine is a shared 2-core VM: absolute times vary with the other work that runs "
        "beside this one; each process uses one thread. The speed ratio is measured "
        "alternately in one process (medians), which a busy machine slows alike; the two "
        "training runs come one after the other, so their wall times compare only under the "
        "same load (the 1-minute load average at the end of each phase: "
        + ", ".join(f"{phase} {value:.1f}" for phase, value in
                    result["load_average_1min"].items())
        + ")."),
        "",
        (f"**Target**: the NumPy model reaches exact match >= {TARGET_EXACT_MATCH:.0%} on held-out "
        f"stories' sentences in <= {TARGET_SECONDS} s of training: **{'met' if met else 'missed'}** "
        f"(exact match {greedy['exact_match']:.4f} after {numpy_run['wall_seconds']:.0f} s)."),
        "",
        "| | NumPy (hand-written backward) | twin (torch autograd, SDPA, CPU) |",
        "|---|---:|---:|",
        (f"| median training step (alternating, {settings['batch_size']} pairs) | "
        f"{result['median_step_seconds']['numpy'] * 1e3:.1f} ms | "
        f"{result['median_step_seconds']['torch'] * 1e3:.1f} ms |"),
        f"| step time NumPy / twin | {result['numpy_over_torch_step_time']:.2f} | |",
        (f"| training run, wall time (one after the other; loop, evaluations every "
         f"{settings['eval_every']} steps, checkpoints) | {numpy_run['wall_seconds']:.0f} s | "
         f"{runs['torch']['wall_seconds']:.0f} s |"),
        (f"| final held-out loss (nats / target word) | {numpy_run['val_loss']:.4f} | "
        f"{runs['torch']['val_loss']:.4f} |"),
    ]
    for label, title in (("greedy", "greedy"), ("beam4", "beam search, 4 beams, length penalty 1"),
                         ("greedy_novel", "greedy, novel sentences only")):
        a, b = scores_["numpy"][label], scores_["torch"][label]
        lines.append(f"| {title}: exact match / BLEU / chrF | {a['exact_match']:.4f} / "
                     f"{a['bleu']:.1f} / {a['chrf']:.1f} | {b['exact_match']:.4f} / "
                     f"{b['bleu']:.1f} / {b['chrf']:.1f} |")
    ratio = result["numpy_over_torch_step_time"]
    decoding = result["greedy_decoding_seconds_256_sentences"]
    lines += [
        "",
(f"**The twin's speed**: its training step takes {1 / ratio:.2f} times the NumPy step's "
         f"time ({'faster' if ratio > 1 else 'slower'}); from one run to another on this busy "
         "machine the ratio moves by about 15% either way. At this size (C = 64, batches of 64 "
         "short sentences) a step is a few hundred small operations: a torch.profiler profile of "
         "the twin's step puts about 40% of its time in matrix products and 16% in attention, "
         "with autograd's bookkeeping on top: the same matrix products as NumPy's, so on one CPU "
         "thread neither has much to gain over the other (runs on this machine have measured "
         "NumPy / twin from 0.87 to 1.13). The twin's advantage is a GPU, where its attention runs "
         "through our Triton kernel; none was available to this run."),
        "",
        ("The training step by thread count (`--speed-only --threads N`, alternating, each call "
         "after a 0.25 s pause, medians; the machine's load average at the end):"),
        "",
        "| threads | NumPy step | twin step | NumPy / twin | load |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {n} | {s['median_step_seconds']['numpy'] * 1e3:.1f} ms | "
          f"{s['median_step_seconds']['torch'] * 1e3:.1f} ms | "
          f"{s['numpy_over_torch_step_time']:.2f} | {s['load_average'][0]:.1f} |"
          for n, s in sorted(speeds.items())),
        "",
        ("NumPy / twin > 1: the twin is faster. With more threads torch spreads its elementwise "
         "work (and autograd's) over every core, while NumPy's ufuncs run on one and only its "
         "matrix products use the BLAS threads."),
        "",
        (f"Greedy decoding of 256 held-out sentences by the NumPy model (medians, alternating): "
        f"{decoding['cache'] * 1e3:.0f} ms with the KV cache, {decoding['no_cache'] * 1e3:.0f} ms "
        f"without ({decoding['no_cache'] / decoding['cache']:.2f}x); the same tokens."),
        "",
        "![loss curves and step times](translation.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
