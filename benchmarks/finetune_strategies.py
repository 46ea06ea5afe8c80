"""Fine-tuning strategies on MiniLM-L6 (seed §3.4, §4): what pre-training and each strategy bring.

Every row fine-tunes `BertForSequenceClassification` on the built-in sentiment task (400 training
sentences; 200 test sentences from other domains, mostly in words the training set never uses) for
3 epochs, batch 16, sentences cut to 48 tokens, AdamW lr 1e-4, and changes one thing:

    full FT (numpy / torch)       pretrained, warmup 10% + linear decay, wd 0.01, dropout 0.1
    full FT, seed 1               the same, another seed (head init, batch order, dropout): noise
    random init                   the same architecture and recipe from freshly initialised weights
    random init, lr 1e-3          ... with a 10x larger learning rate, so that it can fit the data
    random init, 10 epochs        ... lr 3e-4 for 10 epochs (250 steps): time to fit the train set
    layer-wise LR decay 0.9       lr x 0.9 per layer below the head (embeddings x 0.9^7)
    gradual unfreezing            head first, one block more every 5 steps (all from step 35 of 75)
    constant LR, no warmup        the schedule off
    dropout 0.2, weight decay 0.1 stronger regularisation

Noise: 200 test sentences give accuracy a binomial standard error of sqrt(p(1-p)/200), 2.5 points
at p = 0.85; the seed-1 row shows the run-to-run spread. Differences of a few points between the
strategies are within that noise; pre-trained vs random is not.

The NumPy and torch rows run the same recipe from the same start (the NumPy model's weights are
copied into the twin, one generator orders the batches); with dropout their losses differ only
through the dropout masks (tests/test_finetune.py shows that with dropout 0 they agree to float32
rounding). Timing: BLAS and torch are pinned to one thread each (`--threads`), because this machine
is shared and oversubscribed threads slow down by up to 10x; seconds per epoch are training only.

    python benchmarks/finetune_strategies.py [--epochs 3] [--threads 1] [--rows NAME ... --merge]
    python benchmarks/finetune_strategies.py --smoke --out /tmp/finetune-smoke

Writes finetune.json (after every run), finetune.md (a table) and finetune.png (eval accuracy per
row as bars with the binomial standard error, and the training loss curves) into --out
(benchmarks/results/ by default); --merge and --replot read finetune.json from there too.

`--smoke` runs the same code in seconds (tests/test_benchmarks.py): two rows (full FT on NumPy,
random init on torch), one epoch of 5 steps over the first 5 training sentences of each label,
batches of 2 sentences cut to 16 tokens, evaluated on 2 test sentences of each label. Its numbers
mean nothing.
"""

from __future__ import annotations

from threads import pin_threads

if __name__ == "__main__":  # before NumPy loads its BLAS (not when another script imports this)
    pin_threads(default=1)

# isort: split
import argparse
import json
import math
import os
import platform
from pathlib import Path

import numpy as np
import torch
from flags import add_out_and_smoke, parse

from minilm.finetune import FinetuneSettings, finetune
from minilm.pretrained import default_model_path
from minilm.tasks import load_task

RESULTS = Path(__file__).parent / "results"

# (row name, changes to the baseline settings)
ROWS = [
    ("full FT (numpy)", {"backend": "numpy"}),
    ("full FT (torch)", {"backend": "torch"}),
    ("full FT (torch), seed 1", {"backend": "torch", "seed": 1}),
    ("random init (torch)", {"backend": "torch", "init": "random"}),
    ("random init, lr 1e-3 (torch)", {"backend": "torch", "init": "random", "lr": 1e-3}),
    ("random init, lr 3e-4, 10 epochs (torch)",
     {"backend": "torch", "init": "random", "lr": 3e-4, "epochs": 10}),
    ("layer-wise LR decay 0.9 (torch)", {"backend": "torch", "layerwise_lr_decay": 0.9}),
    ("gradual unfreezing (torch)", {"backend": "torch", "gradual_unfreezing": True}),
    ("constant LR, no warmup (torch)",
     {"backend": "torch", "warmup_ratio": 0.0, "lr_decay": "constant"}),
    ("dropout 0.2, weight decay 0.1 (torch)",
     {"backend": "torch", "dropout": 0.2, "weight_decay": 0.1}),
]


# --smoke (see the module docstring); 5 steps: the plot's moving mean of the loss takes 5
SMOKE_DEFAULTS = dict(epochs=1, batch_size=2, max_length=16,
                      rows=["full FT (numpy)", "random init (torch)"])
SMOKE_TRAIN, SMOKE_TEST = 5, 2  # sentences per label


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent examples: sqrt(p (1 - p) / n)."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def run_row(name, changes, base, task=None) -> dict:
    """Fine-tune with the baseline settings `base` and the row's `changes`; `task`: an in-memory
    Task in place of the settings' (--smoke)."""
    settings = FinetuneSettings(**{**base, **changes})
    print(f"\n== {name}", flush=True)
    metrics = finetune(settings, out_dir=None, progress=False, task=task)
    return {
        "name": name,
        "backend": settings.backend,
        "changes": changes,
        "eval_accuracy": metrics["eval_accuracy"],
        "eval_accuracy_se": binomial_se(metrics["eval_accuracy"], metrics["num_test"]),
        "eval_accuracy_per_epoch": metrics["eval_accuracy_per_epoch"],
        "eval_loss_per_epoch": metrics["eval_loss_per_epoch"],
        "final_train_loss": metrics["final_train_loss"],
        "loss_curve": metrics["loss_curve"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "wall_seconds": metrics["wall_seconds"],
        "settings": metrics["settings"],
        "num_parameters": metrics["num_parameters"],
        "num_train": metrics["num_train"],
        "num_test": metrics["num_test"],
    }


def write_table(result, path):
    lines = [
        "| strategy | backend | eval accuracy | per epoch | final train loss | s/epoch | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        per_epoch = " / ".join(f"{a:.3f}" for a in row["eval_accuracy_per_epoch"])
        lines.append(
            f"| {row['name']} | {row['backend']} | {row['eval_accuracy']:.3f} ± "
            f"{row['eval_accuracy_se']:.3f} | {per_epoch} | {row['final_train_loss']:.4f} | "
            f"{row['seconds_per_epoch']:.1f} | {row['wall_seconds']:.0f} |"
        )
    setup = result["setup"]
    note = (
        f"MiniLM-L6 ({setup['num_parameters'] / 1e6:.1f}M parameters) on the built-in sentiment "
        f"task ({setup['num_train']} train / {setup['num_test']} test sentences, test domains and "
        f"words unseen in training); {setup['epochs']} epochs, batch {setup['batch_size']}, "
        f"max_length {setup['max_length']}, AdamW lr {setup['lr']}. ± is the binomial standard "
        f"error sqrt(p(1-p)/{setup['num_test']}). Final train loss: mean over the last epoch's "
        f"batches (dropout on). s/epoch: training only, {setup['threads']} thread(s), on a shared "
        f"{setup['cpu_count']}-core CPU whose load varied between rows (load average "
        f"{setup['load_average']:.1f} at the start): compare the two backends by the first two "
        "rows, which ran back to back."
    )
    path.write_text("\n".join([*lines, "", note]) + "\n")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 5))
    colors = ["tab:orange" if row["backend"] == "numpy" else "tab:blue" for row in rows]
    y = np.arange(len(rows))
    bars.barh(y, [row["eval_accuracy"] for row in rows],
              xerr=[row["eval_accuracy_se"] for row in rows], color=colors, capsize=3)
    bars.set_yticks(y, [row["name"] for row in rows])
    bars.invert_yaxis()
    bars.axvline(0.5, color="k", ls=":", lw=1, label="chance")
    bars.set_xlim(0.4, 1.0)
    bars.set_xlabel(f"eval accuracy ({result['setup']['num_test']} test sentences; "
                    "bars: ± binomial s.e.)")
    bars.set_title("after fine-tuning (orange: NumPy, blue: torch)")
    bars.legend(loc="lower right")
    for row in rows:
        losses = np.asarray(row["loss_curve"])
        steps_per_epoch = len(losses) / row["settings"]["epochs"]
        window = 5
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        epochs = np.arange(window, len(losses) + 1) / steps_per_epoch
        curves.plot(epochs, smooth, label=row["name"], lw=1.2)
    curves.set_xlabel("epoch")
    curves.set_ylabel("training cross-entropy (moving mean of 5 steps)")
    curves.set_title("training loss")
    curves.set_ylim(bottom=0)
    curves.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--rows", nargs="*", default=None, help="run only rows whose name contains "
                        "one of these strings")
    parser.add_argument("--merge", action="store_true", help="keep the other rows of an existing "
                        "finetune.json (to add or redo some rows)")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw finetune.md and finetune.png from finetune.json")
    add_out_and_smoke(parser, RESULTS, smoke="two rows, a few sentences")
    args = parse(parser, argv, SMOKE_DEFAULTS)
    if args.replot:
        result = json.loads((args.out / "finetune.json").read_text())
        write_table(result, args.out / "finetune.md")
        plot(result, args.out / "finetune.png")
        return
    torch.set_num_threads(args.threads)

    base = {"task": "sentiment", "epochs": args.epochs, "batch_size": args.batch_size,
            "max_length": args.max_length, "lr": args.lr}
    rows = [(name, changes) for name, changes in ROWS
            if not args.rows or any(part in name for part in args.rows)]
    result = {
        "setup": {
            **base, "model": str(default_model_path()), "threads": args.threads,
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
            "processor": platform.processor(), "numpy": np.__version__, "torch": torch.__version__,
        },
        "rows": [],
    }
    kept = {}
    if args.merge and (args.out / "finetune.json").is_file():
        previous = json.loads((args.out / "finetune.json").read_text())
        result["setup"] = previous["setup"]
        kept = {row["name"]: row for row in previous["rows"]}
    task = (load_task("sentiment").first_of_each_label(SMOKE_TRAIN, SMOKE_TEST) if args.smoke
            else None)  # None: the settings' task
    args.out.mkdir(parents=True, exist_ok=True)
    for name, changes in rows:
        row = kept[name] = run_row(name, changes, base, task)
        result["rows"] = [kept[row_name] for row_name, _ in ROWS if row_name in kept]
        for key in ("num_parameters", "num_train", "num_test"):
            result["setup"][key] = row[key]
        result["total_seconds"] = sum(kept_row["wall_seconds"] for kept_row in result["rows"])
        (args.out / "finetune.json").write_text(json.dumps(result, indent=2))
        write_table(result, args.out / "finetune.md")
    plot(result, args.out / "finetune.png")
    print()
    print((args.out / "finetune.md").read_text())
    print(f"total {result['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
