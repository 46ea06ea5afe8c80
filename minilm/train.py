"""One pre-training loop for both backends (the NumPy reference and the PyTorch twin).

    for each step:  batch -> one training step (minilm.steps): loss, gradients, clip, AdamW
                    with the learning rate of warmup + cosine decay
    every eval_every steps:  validation loss on held-out text (nats per token)

The model is built in NumPy from `seed` and, for `--backend torch`, handed to its twin with the same
weights (`minilm.common.backends.on_backend`), so both backends start from the same point.
A run directory (`minilm.checkpoint`) receives `model.safetensors` + `config.json` + the tokenizer
(the checkpoint), `metrics.json` (validation loss, the corpus's entropy floor when known, the loss
curve) and `loss_curve.png`.

Validation is a sliding window: windows of `seq_len` tokens advance by half a window and only the
second half of each window is scored (all of the first window), so every validation token is
predicted from at least seq_len/2 tokens of context and each is scored exactly once.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minilm import corpus, data
from minilm.checkpoint import save_run, write_json
from minilm.common.backends import BACKENDS, inference, on_backend, to_numpy
from minilm.common.settings import setting
from minilm.config import ModelConfig
from minilm.numpy import Decoder, Encoder
from minilm.numpy import functional as F
from minilm.numpy.optim import lr_schedule
from minilm.plots import plot_loss_curve
from minilm.steps import make_step
from minilm.tokenizers import CharTokenizer

OBJECTIVES = ("clm", "mlm")


@dataclass
class TrainSettings:
    """Everything that defines a pre-training run; each field is a flag of `minilm train`."""

    objective: str = setting("clm", "clm: next token (a GPT-style Decoder); mlm: masked tokens "
                                    "(a BERT-style Encoder)", choices=OBJECTIVES)
    backend: str = setting("numpy", "numpy: the hand-written reference; torch: the twin (Triton "
                                    "attention on CUDA, SDPA on CPU)", choices=BACKENDS)
    steps: int = setting(1000, "optimizer steps")
    batch_size: int = setting(16, "sequences per step")
    seq_len: int = setting(128, "tokens (characters) per sequence")
    lr: float = setting(3e-3, "peak learning rate, reached after warmup")
    min_lr: float = setting(3e-4, "learning rate at the end of the cosine decay")
    warmup_steps: int | None = setting(
        None, "steps of linearly rising learning rate (default: min(50, steps // 10))")
    weight_decay: float = setting(0.1, "AdamW's decoupled decay (matrices and embeddings only)")
    adam_beta2: float = setting(0.99, "Adam's beta2: a shorter memory of g^2 than the usual 0.999, "
                                      "better for short runs")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this")
    eval_every: int = setting(100, "steps between validation-loss evaluations")
    eval_tokens: int = setting(20_000, "validation tokens scored at each evaluation")
    seed: int = setting(0, "seeds the corpus, the initial weights, the batches and dropout")

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
        if self.warmup_steps is None:
            self.warmup_steps = min(50, self.steps // 10)
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")

    @property
    def kind(self) -> str:
        return "decoder" if self.objective == "clm" else "encoder"


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


def evaluate(model, batches) -> float:
    """Mean cross-entropy in nats per scored token over (inputs, targets) batches, in inference
    mode, for a model of either backend."""
    total, count = 0.0, 0
    with inference(model):
        for inputs, targets in batches:
            loss, cache = F.cross_entropy_forward(to_numpy(model.forward(inputs)), targets)
            total, count = total + float(loss) * cache.n_kept, count + cache.n_kept
    return total / count


# ---------------------------------------------------------------- the loop


def load_corpus(text_path=None, seed=0):
    """(text, entropy floor or None): a UTF-8 file, or the built-in corpus and its exact floor."""
    if text_path is not None:
        return data.load_text(text_path), None
    text = corpus.generate_corpus(n_stories=corpus.DEFAULT_STORIES, seed=seed)
    return text, corpus.corpus_entropy_rate()


def initial_model(kind: str, config: ModelConfig, settings: TrainSettings):
    """The model to pre-train, initialised in NumPy from `settings.seed`, on `settings.backend`."""
    numpy_model = (Decoder if kind == "decoder" else Encoder)(config, seed=settings.seed)
    return on_backend(numpy_model, settings.backend, settings.seed)


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
    model = initial_model(settings.kind, config, settings)
    step_fn = make_step(model, settings.weight_decay, betas=(0.9, settings.adam_beta2),
                        grad_clip=settings.grad_clip)
    rng = np.random.default_rng(settings.seed)

    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    tokens_per_step = settings.batch_size * settings.seq_len
    started = time.perf_counter()
    bar = tqdm(range(settings.steps), disable=not progress, desc=f"train {settings.objective}",
               unit="step", dynamic_ncols=True)
    for step in bar:
        lr = lr_schedule(step, settings.lr, settings.steps, settings.warmup_steps, "cosine",
                         settings.min_lr)
        inputs, targets = training_batch(train_ids, settings, tokenizer, rng)
        loss = step_fn((inputs,), targets, lr)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {step}; lower --lr")
        history["step"].append(step)
        history["train_loss"].append(loss)
        if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
            history["val_step"].append(step + 1)
            history["val_loss"].append(
                evaluate(model, validation_batches(val_ids, settings, tokenizer)))
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
        "num_parameters": int(model.num_parameters()),
        "settings": asdict(settings),
        "history": history,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_run(out_dir, model, tokenizer, objective=settings.objective)
        write_json(out_dir / "metrics.json", metrics)
        plot_loss_curve(history, floor, out_dir / "loss_curve.png", settings.objective)
    return metrics
