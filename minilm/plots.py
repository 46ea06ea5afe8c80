"""Pictures of a run: written into its run directory next to metrics.json."""

from __future__ import annotations

import numpy as np


def plot_loss_curve(history, floor, path, objective):
    """Training loss (smoothed), validation loss and, when known, the entropy floor."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works on a machine without a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    losses = np.asarray(history["train_loss"])
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.asarray(history["step"])[window - 1:] + 1, smooth, label="train (smoothed)", lw=1)
    ax.plot(history["val_step"], history["val_loss"], "o-", label="validation", ms=3)
    if floor is not None:
        label = "entropy rate of the corpus (floor)" if objective == "clm" else "entropy rate (CLM floor)"
        ax.axhline(floor, color="k", ls="--", lw=1, label=f"{label}: {floor:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(f"{objective.upper()} training")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
