"""Pictures of a run, written into its run directory next to metrics.json: the pre-training loss
curve (`minilm train`, loss_curve.png) and the fine-tuning curves (`minilm finetune`,
finetune_curves.png)."""

from __future__ import annotations

import numpy as np


def _figure(figsize):
    """A matplotlib Figure of its own, outside pyplot: drawing a run's pictures neither needs a
    display nor changes the backend or the figures of a notebook that calls the loop."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _smoothed(losses) -> tuple[int, np.ndarray]:
    """(window, moving average of the losses over ~1/50 of the run)."""
    losses = np.asarray(losses, dtype=np.float64)
    window = max(1, len(losses) // 50)
    return window, np.convolve(losses, np.ones(window) / window, mode="valid")


def plot_loss_curve(history, floor, path, objective):
    """Training loss (smoothed), validation loss and, when given, the entropy floor (a CLM's)."""
    fig = _figure((7, 4))
    ax = fig.subplots()
    window, smooth = _smoothed(history["train_loss"])
    ax.plot(np.asarray(history["step"])[window - 1:] + 1, smooth, label="train (smoothed)", lw=1)
    ax.plot(history["val_step"], history["val_loss"], "o-", label="validation", ms=3)
    if floor is not None:
        ax.axhline(floor, color="k", ls="--", lw=1,
                   label=f"entropy rate of the corpus (floor): {floor:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(f"{objective.upper()} training")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_finetune_curves(history, majority: float, path, title="fine-tuning"):
    """Two panels against the step: the training loss (each step's, and smoothed) with the test
    loss at each evaluation; the test accuracy and macro-F1 at each evaluation, with `majority`,
    the accuracy of always answering the most common test label, as a dotted line."""
    fig = _figure((11, 4))
    losses, scores = fig.subplots(1, 2)
    steps = np.arange(1, len(history["loss"]) + 1)
    window, smooth = _smoothed(history["loss"])
    losses.plot(steps, history["loss"], color="tab:blue", alpha=0.3, lw=1, label="train (step)")
    losses.plot(steps[window - 1:], smooth, color="tab:blue", lw=1.5, label="train (smoothed)")
    losses.plot(history["eval_step"], history["eval_loss"], "o-", color="tab:orange", ms=3,
                label="test")
    losses.set_xlabel("step")
    losses.set_ylabel("cross-entropy (nats)")
    losses.set_ylim(bottom=0)
    losses.legend()
    scores.plot(history["eval_step"], history["eval_accuracy"], "o-", ms=3, label="accuracy")
    scores.plot(history["eval_step"], history["eval_macro_f1"], "s--", ms=3, label="macro-F1")
    scores.axhline(majority, color="k", ls=":", lw=1, label=f"most common label: {majority:.3f}")
    scores.set_xlabel("step")
    scores.set_ylabel("on the test split")
    scores.set_ylim(0, 1.02)
    scores.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
