"""One training loop for both backends (the NumPy reference and the PyTorch twin).

    for each step:  batch -> loss -> gradients -> clip to max norm -> AdamW with warmup + cosine
    every eval_every steps:  validation loss on held-out text (nats per token)

A run directory receives `model.safetensors` + `config.json` (the checkpoint), `metrics.json`
(validation loss, the corpus's entropy floor when known, the loss curve) and `loss_curve.png`.

Validation is a sliding window: windows of `seq_len` tokens advance by half a window and only the
second half of each window is scored (all of the first window), so every validation token is
predicted from at least seq_len/2 tokens of context and each is scored exactly once.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minilm import data
from minilm.checkpoint import save_checkpoint
from minilm.config import ModelConfig
from minilm.numpy import Decoder, Encoder
from minilm.numpy import functional as F
from minilm.numpy.models import loss_and_backward
from minilm.numpy.optim import AdamW, clip_grad_norm, lr_schedule
from minilm.tokenizers import CharTokenizer

OBJECTIVES = ("clm", "mlm")
BACKENDS = ("numpy", "torch")
IGNORE = -100


@dataclass
class TrainSettings:
    objective: str = "clm"  # "clm" (next token, Decoder) | "mlm" (masked tokens, Encoder)
    backend: str = "numpy"  # "numpy" | "torch"
    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    adam_beta2: float = 0.99  # shorter memory of g^2 than the usual 0.999: better for short runs
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_tokens: int = 20_000  # validation tokens scored at each evaluation
    seed: int = 0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {self.seq_len}")
        if not 0 <= self.adam_beta2 < 1:
            raise ValueError(f"adam_beta2 must be in [0, 1), got {self.adam_beta2}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")

    @property
    def kind(self) -> str:
        return "decoder" if self.objective == "clm" else "encoder"


# ---------------------------------------------------------------- backends


class NumpyTrainer:
    """The reference: hand-written backward, our AdamW."""

    def __init__(self, kind, config, settings):
        model_class = Decoder if kind == "decoder" else Encoder
        self.model = model_class(config, seed=settings.seed)
        self.optimizer = AdamW(self.model.params, lr=settings.lr, betas=(0.9, settings.adam_beta2),
                               weight_decay=settings.weight_decay)
        self.grad_clip = settings.grad_clip

    def train_step(self, inputs, targets, lr) -> float:
        self.model.train()
        loss = loss_and_backward(self.model, self.model.forward(inputs), targets, IGNORE)
        clip_grad_norm(self.model.grads, self.grad_clip)
        self.optimizer.step(self.model.grads, lr=lr)
        return loss

    def loss_sum(self, inputs, targets) -> tuple[float, int]:
        """Summed cross-entropy over scored targets and their count, in eval mode."""
        self.model.eval()
        loss, cache = F.cross_entropy_forward(self.model.forward(inputs), targets, IGNORE)
        return float(loss) * cache.n_kept, cache.n_kept

    def params(self) -> dict[str, np.ndarray]:
        return self.model.params


class TorchTrainer:
    """The twin: autograd, torch.optim.AdamW with the same no-decay rule (ndim >= 2 decays).

    Attention runs in our Triton kernel on CUDA and in PyTorch's SDPA on a CPU (the Triton
    interpreter is for testing, far too slow to train with).
    """

    def __init__(self, kind, config, settings):
        import torch

        from minilm.torch import Decoder as TorchDecoder
        from minilm.torch import Encoder as TorchEncoder
        from minilm.torch.functional import cross_entropy, training_device_and_attention

        self.torch, self.cross_entropy = torch, cross_entropy
        self.device, attention = training_device_and_attention()
        model_class = TorchDecoder if kind == "decoder" else TorchEncoder
        self.model = model_class(config, attention=attention, seed=settings.seed).to(self.device)
        named = list(self.model.named_parameters())
        groups = [
            {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": settings.weight_decay},
            {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, settings.adam_beta2))
        self.grad_clip = settings.grad_clip

    def _loss(self, inputs, targets):
        torch = self.torch
        logits = self.model(torch.from_numpy(inputs).to(self.device))
        return self.cross_entropy(logits, torch.from_numpy(targets).to(self.device), IGNORE)

    def train_step(self, inputs, targets, lr) -> float:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self._loss(inputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.item()

    def loss_sum(self, inputs, targets) -> tuple[float, int]:
        self.model.eval()
        n_kept = int((targets != IGNORE).sum())
        with self.torch.no_grad():
            return self._loss(inputs, targets).item() * n_kept, n_kept

    def params(self) -> dict[str, np.ndarray]:
        from minilm.torch import state_dict_to_params

        return state_dict_to_params(self.model.state_dict())


def make_trainer(kind, config, settings):
    return (NumpyTrainer if settings.backend == "numpy" else TorchTrainer)(kind, config, settings)


# ---------------------------------------------------------------- batches


def training_batch(ids, settings, tokenizer, rng):
    """(inputs, targets) for one step: next-token targets (CLM) or 80/10/10 masking (MLM)."""
    if settings.objective == "clm":
        return data.clm_batch(ids, settings.batch_size, settings.seq_len, rng)
    return data.mlm_batch(ids, settings.batch_size, settings.seq_len, rng, tokenizer.vocab_size,
                          tokenizer.mask_id, tokenizer.special_ids)


def validation_batches(ids, settings, tokenizer):
    """Deterministic (inputs, targets) covering the first `eval_tokens` validation tokens.

    CLM: a sliding window, stride seq_len/2, scoring each window's second half (`data.eval_batches`).
    MLM: consecutive windows masked with a fixed generator, so every evaluation sees the same masks.
    """
    ids = ids[: settings.eval_tokens + 1]
    if settings.objective == "clm":
        yield from data.eval_batches(ids, settings.batch_size, settings.seq_len,
                                     stride=settings.seq_len // 2, pad_id=tokenizer.pad_id)
        return
    masking_rng = np.random.default_rng(1234)
    for inputs, _ in data.eval_batches(ids, settings.batch_size, settings.seq_len,
                                       pad_id=tokenizer.pad_id):
        yield data.mask_tokens(inputs, masking_rng, tokenizer.vocab_size, tokenizer.mask_id,
                               tokenizer.special_ids)


def evaluate(trainer, val_ids, settings, tokenizer) -> float:
    """Mean validation cross-entropy in nats per scored token."""
    total, count = 0.0, 0
    for inputs, targets in validation_batches(val_ids, settings, tokenizer):
        loss_sum, n = trainer.loss_sum(inputs, targets)
        total, count = total + loss_sum, count + n
    return total / count


# ---------------------------------------------------------------- the loop


def load_corpus(text_path=None, seed=0):
    """(text, entropy floor or None): a UTF-8 file, or the built-in corpus and its exact floor."""
    if text_path is not None:
        return data.load_text(text_path), None
    return data.generate_corpus(n_stories=data.DEFAULT_STORIES, seed=seed), data.corpus_entropy_rate()


def train(settings: TrainSettings, config: ModelConfig | None = None, text_path=None,
          out_dir=None, progress=True) -> dict:
    """Train, evaluate, save the run directory; returns the metrics dict (also `metrics.json`)."""
    from tqdm.auto import tqdm

    text, floor = load_corpus(text_path, settings.seed)
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    train_ids, val_ids = data.split_train_val(ids, val_fraction=0.1)
    config = config or ModelConfig.preset("demo")
    config = ModelConfig.from_dict({**config.to_dict(), "vocab_size": tokenizer.vocab_size,
                                    "max_len": max(config.max_len, settings.seq_len)})
    trainer = make_trainer(settings.kind, config, settings)
    rng = np.random.default_rng(settings.seed)

    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    tokens_per_step = settings.batch_size * settings.seq_len
    started = time.perf_counter()
    bar = tqdm(range(settings.steps), disable=not progress, desc=f"train {settings.objective}",
               unit="step", dynamic_ncols=True)
    for step in bar:
        lr = lr_schedule(step, settings.lr, settings.steps, settings.warmup_steps, "cosine",
                         settings.min_lr)
        loss = trainer.train_step(*training_batch(train_ids, settings, tokenizer, rng), lr)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {step}; lower --lr")
        history["step"].append(step)
        history["train_loss"].append(loss)
        if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
            history["val_step"].append(step + 1)
            history["val_loss"].append(evaluate(trainer, val_ids, settings, tokenizer))
        elapsed = time.perf_counter() - started
        bar.set_postfix(loss=f"{loss:.3f}", val=f"{history['val_loss'][-1]:.3f}" if history["val_loss"] else "-",
                        tok_s=f"{(step + 1) * tokens_per_step / elapsed:.0f}")
    wall = time.perf_counter() - started

    metrics = {
        "objective": settings.objective,
        "backend": settings.backend,
        "val_loss": history["val_loss"][-1],
        "entropy_floor": floor,
        "unit": "nats per token (one token = one character)",
        "steps": settings.steps,
        "wall_seconds": wall,
        "tokens_per_second": settings.steps * tokens_per_step / wall,
        "num_parameters": int(sum(p.size for p in trainer.params().values())),
        "settings": asdict(settings),
        "history": history,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_checkpoint(out_dir, trainer.params(), settings.kind, config, tokenizer,
                        objective=settings.objective)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_loss_curve(history, floor, out_dir / "loss_curve.png", settings.objective)
    return metrics


def plot_loss_curve(history, floor, path, objective):
    """Training loss (smoothed), validation loss and, when known, the entropy floor."""
    import matplotlib

    matplotlib.use("Agg")
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
