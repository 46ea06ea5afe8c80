"""Fine-tuning a pretrained BERT for sentence classification (seed §4) with the §3.4 strategies.

    minilm finetune --task sentiment --backend numpy            # MiniLM-L6, full fine-tuning
    minilm finetune --task sentiment --init random              # the same network, no pre-training
    minilm finetune --task train.csv --test test.csv --layerwise-lr-decay 0.9 --gradual-unfreezing

The model is Hugging Face's `BertForSequenceClassification`: the pretrained encoder, its pooler
(tanh of a Linear on the [CLS] state), dropout, and a new `classifier` Linear(C -> labels) that
starts from random weights. Every step: a batch of sentences -> logits (B, L) -> cross-entropy ->
gradients -> clip their global norm to 1 -> AdamW with the learning rate of the schedule. After each
epoch the test split is classified and its accuracy recorded.

The strategies (seed §3.4), each a setting of `FinetuneSettings` / a flag of the command:

Full fine-tuning from the pretrained weights (the default; §3.4.1 "parameter sharing")
    Every weight starts where pre-training left it and all of them train. Pre-training on billions
    of words has already put "dreadful" next to "terrible", so a few hundred labelled sentences
    suffice to learn the task, and the model's knowledge carries over to words the labelled data
    never shows (the built-in test split is made of such words). `--init random` trains the same
    network from freshly initialised weights: the difference in test accuracy is the value of
    pre-training.

Learning-rate warmup, then linear decay (the default; §3.4.3 "learning-rate adjustment")
    `--warmup-ratio 0.1`: the learning rate climbs linearly from ~0 over the first 10% of the steps,
    then falls linearly to 0 (`--lr-decay constant` keeps it flat). Why warm up: Adam divides by
    √v̂, its running estimate of the squared gradient, and in the first steps that estimate rests
    on a handful of gradients, so the step sizes are erratic; meanwhile the classifier is random,
    so the early gradients reaching the encoder are large and meaningless. Full-size steps then can
    wreck pretrained features before the head has learnt anything (*catastrophic forgetting*).
    Small steps first let both settle. Decaying at the end settles the weights into a minimum
    instead of bouncing around it.

Layer-wise learning-rate decay (`--layerwise-lr-decay 0.9`, off by default; §3.4.3)
    Parameter at depth d (embeddings 0, block i -> i + 1, pooler and classifier L + 1) learns with
    lr · decay^(L + 1 − d): the head at the full rate, each block below 10% slower, MiniLM's
    embeddings at 0.9^7 ≈ 0.48 of it. Lower layers hold general features (word pieces, syntax) that
    every task needs; upper layers are the most task-specific. Moving the lower layers less keeps
    what pre-training taught them (less forgetting) while the top adapts.

Gradual unfreezing (`--gradual-unfreezing`, off by default; §3.4.2 "layer-by-layer fine-tuning")
    ULMFiT's recipe, top first. Training starts with only the top group trainable (the pooler and
    the classifier); every `unfreeze_every` steps one more group below becomes trainable: block
    L − 1, then L − 2, ..., then the embeddings. By default `unfreeze_every` is chosen so that the
    last group (the embeddings) is unfrozen halfway through training: max(1, (T // 2) // (L + 1))
    for T steps (MiniLM, 75 steps: every 5 steps, all trainable from step 35). A frozen parameter
    is not updated at all and its optimizer state (Adam moments, step count, weight decay) stands
    still, so when it thaws it starts as if fresh. Why: the random head first learns to read the
    pretrained features, so by the time a layer thaws the gradients reaching it are informative,
    not noise from a random classifier — another guard against catastrophic forgetting.
    (ULMFiT unfreezes one group per epoch; with 3 epochs and 8 groups we count steps instead.)

Regularisation: weight decay and dropout (`--weight-decay 0.01 --dropout 0.1`; §3.4.4)
    AdamW shrinks every weight matrix and embedding by (1 − lr · wd) per step (decoupled weight
    decay), never biases or LayerNorm gains and shifts (see `minilm.numpy.optim.AdamW`): a pull
    towards small weights that resists fitting 400 sentences by heart. Dropout (on embeddings,
    attention weights, residual branches and before the classifier) zeroes a random 10% of the
    activations in training, so no prediction can rely on one feature. `--dropout` replaces the
    checkpoint's `hidden_dropout_prob`.

Both backends run the same recipe from the same start: the NumPy model is built (pretrained
weights, classifier initialised from `seed`) and the torch twin copies its weights; one NumPy
generator draws the batch order for both; the schedule, layer-wise scales and frozen groups are
computed once here. Only dropout masks differ (NumPy's generator vs torch's), so with `dropout=0`
the two loss curves agree to float32 rounding (the tests check it with every strategy on).

A run directory holds `model.safetensors` (all weights, encoder and head, by Hugging Face name),
`config.json` (the ModelConfig, label names, settings, base model), the tokenizer's `vocab.txt`
(so the directory is self-contained: `load_finetuned(directory)`), and `metrics.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from minilm.config import ModelConfig
from minilm.datasets import Task, load_task
from minilm.numpy import Encoder
from minilm.numpy import functional as F
from minilm.numpy.heads import SequenceClassifier
from minilm.numpy.models import loss_and_backward
from minilm.numpy.optim import DECAY_KINDS, AdamW, clip_grad_norm, layerwise_lr_scale, lr_schedule
from minilm.pretrained import bert_config, check_vocab, default_model_path, load_pretrained
from minilm.tokenizers import WordPieceTokenizer

BACKENDS = ("numpy", "torch")
INITS = ("pretrained", "random")
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json")
EVAL_BATCH_SIZE = 64


@dataclass
class FinetuneSettings:
    """Everything that defines a fine-tuning run (stored in config.json and metrics.json)."""

    task: str = "sentiment"  # "sentiment" (built in) or a labelled .csv / .jsonl file
    test: str | None = None  # a test file for a file task (else 20% of `task` is held out)
    backend: str = "numpy"  # "numpy" (hand-written backward) | "torch" (autograd twin)
    init: str = "pretrained"  # "pretrained" | "random" (same architecture, fresh weights)
    model: str | None = None  # Hugging Face BERT directory (default: the installed MiniLM-L6)
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4
    warmup_ratio: float = 0.1  # fraction of the steps spent warming up
    lr_decay: str = "linear"  # after warmup: "linear" | "cosine" | "constant"
    weight_decay: float = 0.01
    dropout: float = 0.1
    layerwise_lr_decay: float | None = None  # e.g. 0.9; None = every layer at the same rate
    gradual_unfreezing: bool = False
    unfreeze_every: int | None = None  # steps between thaws (None: default_unfreeze_every)
    max_length: int = 64  # tokens per sentence, [CLS] and [SEP] included (longer ones are cut)
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.lr_decay not in DECAY_KINDS:
            raise ValueError(f"lr_decay must be one of {DECAY_KINDS}, got {self.lr_decay!r}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 3:
            raise ValueError(
                f"max_length must be >= 3 ([CLS], a token, [SEP]), got {self.max_length}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio <= 1:
            raise ValueError(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1], got {self.layerwise_lr_decay}")
        if self.unfreeze_every is not None and self.unfreeze_every < 1:
            raise ValueError(f"unfreeze_every must be >= 1, got {self.unfreeze_every}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")


# ---------------------------------------------------------------- the strategies, as functions


def bert_depth(name: str, n_layers: int) -> int:
    """Depth of a parameter counted from the input: embeddings 0, `bert.encoder.layer.i` i + 1,
    everything above the last block (pooler, classifier) n_layers + 1."""
    if name.startswith("bert.embeddings."):
        return 0
    if name.startswith("bert.encoder.layer."):
        return int(name.split(".")[3]) + 1
    return n_layers + 1


def layerwise_scales(names, n_layers: int, decay: float) -> dict[str, float]:
    """Learning-rate multipliers decay^(n_layers + 1 − depth): 1 for the head, decay for the top
    block, ..., decay^(n_layers + 1) for the embeddings."""
    return layerwise_lr_scale(names, lambda name: bert_depth(name, n_layers), n_layers + 1, decay)


def default_unfreeze_every(total_steps: int, n_layers: int) -> int:
    """Steps between unfreezings so that the embeddings (the last of n_layers + 1 thaws) become
    trainable halfway through training: max(1, (total_steps // 2) // (n_layers + 1))."""
    return max(1, (total_steps // 2) // (n_layers + 1))


def lowest_trainable_depth(step: int, unfreeze_every: int, n_layers: int) -> int:
    """Gradual unfreezing: parameters with bert_depth >= this are trainable at `step` (0-based).

    Steps [0, K) train depth n_layers + 1 only (pooler + classifier), [K, 2K) add the top block,
    and so on, one group down every K = unfreeze_every steps, until depth 0 (everything).
    """
    return max(0, n_layers + 1 - step // unfreeze_every)


def frozen_names(names, n_layers: int, lowest_depth: int) -> frozenset[str]:
    """The parameters below `lowest_depth`: frozen at this step."""
    return frozenset(name for name in names if bert_depth(name, n_layers) < lowest_depth)


# ---------------------------------------------------------------- the model


def build_classifier(settings: FinetuneSettings, num_labels: int,
                     config: ModelConfig | None = None):
    """(NumPy SequenceClassifier, tokenizer, base model directory or None) for `settings`.

    init "pretrained": the encoder's weights come from `settings.model` (a Hugging Face BERT
    directory, default MiniLM-L6); the architecture is the checkpoint's, with `settings.dropout`.
    Weights the checkpoint lacks (a pooler, for a BertForMaskedLM) keep their fresh initialisation;
    an MLM head it has is not used.
    init "random": the same architecture (or `config`, e.g. a tiny one for tests) initialised from
    `settings.seed`. The tokenizer is always the model directory's; its vocabulary size must equal
    the config's (ValueError otherwise). The classifier is initialised from `settings.seed`.
    """
    directory = Path(settings.model) if settings.model else default_model_path()
    tokenizer = WordPieceTokenizer.from_pretrained(directory)
    pretrained = None
    if settings.init == "pretrained":
        if config is not None:
            raise ValueError("config is for init='random'; a pretrained model brings its own")
        pretrained = load_pretrained(directory, backend="numpy")
        if not isinstance(pretrained, Encoder):
            raise ValueError(f"{str(directory)!r} holds a {type(pretrained).__name__}; sentence "
                             "classification fine-tunes a BERT encoder")
        config = pretrained.config
    elif config is None:
        config = _read_bert_config(directory)
    check_vocab(tokenizer, config)
    if settings.max_length > config.max_len:
        raise ValueError(
            f"max_length={settings.max_length} exceeds the model's max_len={config.max_len}")
    # Dropout is fixed when the layers are built, so the encoder is built with our value and the
    # pretrained weights are copied in by name.
    encoder = Encoder(replace(config, dropout=settings.dropout), seed=settings.seed, mlm_head=False,
                      pooler=True)
    if pretrained is not None:
        for name, value in pretrained.params.items():
            if name in encoder.params:
                encoder.params[name][...] = value
    model = SequenceClassifier(encoder, num_labels, seed=settings.seed)
    return model, tokenizer, (directory if pretrained is not None else None)


def _read_bert_config(directory: Path) -> ModelConfig:
    """The ModelConfig a Hugging Face BERT directory's config.json describes (no weights read)."""
    where = directory / "config.json"
    if not where.is_file():
        raise FileNotFoundError(f"no config.json in model directory {str(directory)!r}")
    hf = json.loads(where.read_text(encoding="utf-8"))
    if hf.get("model_type") != "bert":
        raise ValueError(f"{where}: model_type {hf.get('model_type')!r}; sentence classification "
                         "fine-tunes a BERT encoder")
    return bert_config(hf, where)


def _torch_twin(model: SequenceClassifier, device: str, attention: str):
    """The torch SequenceClassifier with the NumPy model's config and weights, on `device`."""
    from minilm.torch import Encoder as TorchEncoder
    from minilm.torch import params_to_state_dict
    from minilm.torch.heads import SequenceClassifier as TorchSequenceClassifier

    encoder = TorchEncoder(model.config, attention=attention, mlm_head=False, pooler=True)
    twin = TorchSequenceClassifier(encoder, model.params["classifier.weight"].shape[0])
    twin.load_state_dict(params_to_state_dict(model.params))
    return twin.to(device)


def predict_logits(model, tokenizer, texts, max_length: int = 64,
                   batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Logits (N, L) of a classifier (either backend) for `texts`, in eval mode (no dropout)."""
    is_torch = not isinstance(model, SequenceClassifier)
    model.eval()
    logits = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                          max_length=max_length)
        inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        if is_torch:
            import torch

            with torch.no_grad():
                logits.append(model(*inputs).float().cpu().numpy())
        else:
            logits.append(model.forward(*inputs))  # (B, L)
    return np.concatenate(logits)


# ---------------------------------------------------------------- one step, per backend


class NumpyFinetuner:
    """The reference: hand-written backward, minilm's AdamW (per-name lr_scale and frozen set)."""

    def __init__(self, model: SequenceClassifier, settings: FinetuneSettings, lr_scale: dict):
        self.model = model
        self.optimizer = AdamW(model.params, lr=settings.lr, weight_decay=settings.weight_decay,
                               lr_scale=lr_scale)
        self.grad_clip = settings.grad_clip

    def train_step(self, batch: dict, labels: np.ndarray, lr: float, frozen: frozenset) -> float:
        model = self.model
        model.train()
        logits = model.forward(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        loss = loss_and_backward(model, logits, labels)  # fills model.grads (all of them)
        # Clip over the trainable gradients only (frozen ones are not applied), as torch does.
        clip_grad_norm({n: g for n, g in model.grads.items() if n not in frozen}, self.grad_clip)
        self.optimizer.frozen = frozen
        self.optimizer.step(model.grads, lr=lr)
        return loss

    def eval_model(self):
        return self.model

    def params(self) -> dict[str, np.ndarray]:
        return self.model.params


class TorchFinetuner:
    """The twin: autograd and torch.optim.AdamW, arranged to do exactly what NumpyFinetuner does.

    One parameter group per parameter, holding its `lr_scale` and its weight decay (wd for
    ndim >= 2, else 0: `minilm.numpy.optim.default_decay_rule`); each step sets
    group["lr"] = lr · lr_scale. A frozen parameter gets requires_grad=False, so autograd leaves
    its .grad None and torch's AdamW skips it entirely (no move, no decay, no state advance), which
    is the NumPy optimizer's `frozen`; clipping sees only the gradients that exist.
    """

    def __init__(self, model: SequenceClassifier, settings: FinetuneSettings, lr_scale: dict):
        import torch

        from minilm.torch.functional import cross_entropy, training_device_and_attention

        self.torch, self.cross_entropy = torch, cross_entropy
        self.device, attention = training_device_and_attention()
        torch.manual_seed(settings.seed)  # dropout masks
        self.model = _torch_twin(model, self.device, attention)
        self.named = list(self.model.named_parameters())
        groups = [
            {"params": [p], "lr_scale": lr_scale.get(name, 1.0),
             "weight_decay": settings.weight_decay if p.ndim >= 2 else 0.0}
            for name, p in self.named
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=settings.lr)
        self.grad_clip = settings.grad_clip

    def train_step(self, batch: dict, labels: np.ndarray, lr: float, frozen: frozenset) -> float:
        torch = self.torch
        self.model.train()
        for name, p in self.named:
            p.requires_grad_(name not in frozen)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        logits = self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        loss = self.cross_entropy(logits, torch.from_numpy(labels).to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in self.named if p.grad is not None],
                                       self.grad_clip)
        self.optimizer.step()
        return loss.item()

    def eval_model(self):
        return self.model

    def params(self) -> dict[str, np.ndarray]:
        from minilm.torch import state_dict_to_params

        return state_dict_to_params(self.model.state_dict())


# ---------------------------------------------------------------- the loop


def batches(n: int, batch_size: int, rng: np.random.Generator):
    """One epoch of index arrays: a permutation drawn from `rng`, cut into batches (the last one
    may be smaller). The same generator serves both backends, so they see the same batches."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def finetune(settings: FinetuneSettings, out_dir=None, progress: bool = True,
             task: Task | None = None, config: ModelConfig | None = None) -> dict:
    """Fine-tune, evaluate after every epoch, write the run directory; returns the metrics.

    `task` overrides `settings.task` / `settings.test` with an in-memory `Task`; `config` gives the
    architecture for init="random" (default: the model directory's config.json).
    """
    from tqdm.auto import tqdm

    if task is None:
        task = load_task(settings.task, settings.test, seed=settings.seed)
    if len(task.train_texts) == 0 or len(task.test_texts) == 0:
        raise ValueError(f"task {task.name!r} has {len(task.train_texts)} training and "
                         f"{len(task.test_texts)} test examples; both splits need at least one")
    model, tokenizer, base = build_classifier(settings, task.num_labels, config)
    config = model.config
    n_layers = config.n_layers
    names = list(model.params)
    steps_per_epoch = math.ceil(len(task.train_texts) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    warmup_steps = math.ceil(settings.warmup_ratio * total_steps)
    lr_scale = ({} if settings.layerwise_lr_decay is None
                else layerwise_scales(names, n_layers, settings.layerwise_lr_decay))
    unfreeze_every = None
    if settings.gradual_unfreezing:
        unfreeze_every = settings.unfreeze_every or default_unfreeze_every(total_steps, n_layers)
    trainer = (NumpyFinetuner if settings.backend == "numpy" else TorchFinetuner)(
        model, settings, lr_scale)
    if settings.backend == "torch":
        del model  # the twin holds the weights from here on

    order_rng = np.random.default_rng(settings.seed)
    history = {"loss": [], "lr": [], "lowest_trainable_depth": [], "epoch_accuracy": [],
               "epoch_eval_loss": [], "epoch_train_seconds": []}
    bar = tqdm(total=total_steps, disable=not progress, unit="step", dynamic_ncols=True,
               desc=f"finetune {settings.backend}")
    step, started = 0, time.perf_counter()
    for epoch in range(settings.epochs):
        epoch_started, seen = time.perf_counter(), 0
        for index in batches(len(task.train_texts), settings.batch_size, order_rng):
            batch = tokenizer([task.train_texts[i] for i in index], padding=True, truncation=True,
                              max_length=settings.max_length)
            lr = lr_schedule(step, settings.lr, total_steps, warmup_steps, settings.lr_decay)
            depth = 0 if unfreeze_every is None else lowest_trainable_depth(step, unfreeze_every,
                                                                           n_layers)
            loss = trainer.train_step(batch, task.train_labels[index], lr,
                                      frozen_names(names, n_layers, depth))
            if not math.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss} at step {step}; lower --lr")
            history["loss"].append(loss)
            history["lr"].append(lr)
            history["lowest_trainable_depth"].append(depth)
            step, seen = step + 1, seen + len(index)
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}",
                            ex_s=f"{seen / (time.perf_counter() - epoch_started):.1f}")
        history["epoch_train_seconds"].append(time.perf_counter() - epoch_started)
        accuracy, eval_loss = evaluate(trainer.eval_model(), tokenizer, task, settings.max_length)
        history["epoch_accuracy"].append(accuracy)
        history["epoch_eval_loss"].append(eval_loss)
        bar.write(f"epoch {epoch + 1}: eval accuracy {accuracy:.3f}, eval loss {eval_loss:.4f}")
    bar.close()
    wall = time.perf_counter() - started

    seconds_per_epoch = float(np.mean(history["epoch_train_seconds"]))
    metrics = {
        "task": task.name,
        "backend": settings.backend,
        "init": settings.init,
        "eval_accuracy": history["epoch_accuracy"][-1],
        "eval_accuracy_per_epoch": history["epoch_accuracy"],
        "eval_loss_per_epoch": history["epoch_eval_loss"],
        "final_train_loss": float(np.mean(history["loss"][-steps_per_epoch:])),  # last epoch's mean
        "loss_curve": history["loss"],
        "lr_curve": history["lr"],
        "lowest_trainable_depth": history["lowest_trainable_depth"],
        "unfreeze_every": unfreeze_every,
        "steps": total_steps,
        "warmup_steps": warmup_steps,
        "train_seconds_per_epoch": history["epoch_train_seconds"],
        "seconds_per_epoch": seconds_per_epoch,
        "examples_per_second": len(task.train_texts) / seconds_per_epoch,
        "wall_seconds": wall,
        "num_train": len(task.train_texts),
        "num_test": len(task.test_texts),
        "num_parameters": int(sum(p.size for p in trainer.params().values())),
        "base_model": None if base is None else str(base),
        "settings": asdict(settings),
    }
    if out_dir is not None:
        save_run(out_dir, trainer.params(), config, task.label_names, settings, base, metrics,
                 tokenizer_dir=Path(settings.model) if settings.model else default_model_path())
    return metrics


def evaluate(model, tokenizer, task: Task, max_length: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the test split, in eval mode."""
    logits = predict_logits(model, tokenizer, task.test_texts, max_length).astype(np.float64)
    loss, _ = F.cross_entropy_forward(logits, task.test_labels)
    accuracy = float(np.mean(logits.argmax(axis=-1) == task.test_labels))
    return accuracy, float(loss)


# ---------------------------------------------------------------- the run directory


def save_run(directory, params, config: ModelConfig, label_names, settings: FinetuneSettings,
             base, metrics: dict, tokenizer_dir: Path) -> Path:
    """model.safetensors + config.json + the tokenizer files + metrics.json (safetensors and
    JSON only: nothing in a run directory can run code when loaded)."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(value) for name, value in params.items()},
              str(directory / "model.safetensors"))
    meta = {
        "kind": "sequence_classifier",
        "config": config.to_dict(),
        "label_names": list(label_names),
        "base_model": None if base is None else str(base),
        "settings": asdict(settings),
    }
    (directory / "config.json").write_text(json.dumps(meta, indent=2))
    for name in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).is_file():
            shutil.copyfile(Path(tokenizer_dir) / name, directory / name)
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return directory


def load_finetuned(directory, backend: str = "numpy"):
    """A run directory -> (classifier, tokenizer, label names), on either backend (eval mode)."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    missing = [n for n in ("model.safetensors", "config.json", "vocab.txt")
               if not (directory / n).is_file()]
    if missing:
        raise ValueError(
            f"{str(directory)!r} is not a fine-tuning run directory: it lacks {missing}")
    meta = json.loads((directory / "config.json").read_text())
    if meta.get("kind") != "sequence_classifier":
        raise ValueError(f"{directory / 'config.json'} is not a sequence classifier's config")
    config = ModelConfig.from_dict(meta["config"])
    tokenizer = WordPieceTokenizer.from_pretrained(directory)
    check_vocab(tokenizer, config)
    label_names = tuple(meta["label_names"])
    model = SequenceClassifier(Encoder(config, mlm_head=False, pooler=True), len(label_names))
    model.encoder.load_params(load_file(str(directory / "model.safetensors")))
    if backend == "torch":
        from minilm.torch.functional import training_device_and_attention

        model = _torch_twin(model, *training_device_and_attention())
    elif backend != "numpy":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return model.eval(), tokenizer, label_names


# ---------------------------------------------------------------- command line


def add_finetune_command(subparsers) -> argparse.ArgumentParser:
    """Add `minilm finetune` to a `parser.add_subparsers()` object."""
    d = FinetuneSettings()
    p = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained BERT (MiniLM-L6) for sentence classification",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=d.task,
                   help="'sentiment' (built in) or a labelled .csv/.jsonl file (text, label)")
    p.add_argument("--test", default=None,
                   help="test file for a file task (default: hold out 20%% of --task)")
    p.add_argument("--backend", choices=BACKENDS, default=d.backend,
                   help="numpy: hand-written backward; torch: autograd twin (Triton attention on "
                        "CUDA, SDPA on CPU)")
    p.add_argument("--init", choices=INITS, default=d.init,
                   help="pretrained weights, or the same architecture freshly initialised")
    p.add_argument("--model", default=None,
                   help="Hugging Face BERT directory (default: the installed MiniLM-L6)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio,
                   help="fraction of the steps with a linearly rising learning rate")
    p.add_argument("--lr-decay", choices=DECAY_KINDS, default=d.lr_decay,
                   help="after warmup ('constant': no decay)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="AdamW's decoupled decay (weight matrices and embeddings only)")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--layerwise-lr-decay", type=float, nargs="?", const=0.9, default=None,
                   metavar="DECAY",
                   help="scale the learning rate by DECAY per layer below the head (0.9 if no "
                        "value; off by default)")
    p.add_argument("--gradual-unfreezing", action="store_true",
                   help="train the head first, then unfreeze one block more, top down, every "
                        "--unfreeze-every steps (default: all unfrozen halfway through training)")
    p.add_argument("--unfreeze-every", type=int, default=None, metavar="STEPS")
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default="runs/finetune", help="run directory")
    p.set_defaults(run=command_finetune)
    return p


def settings_from_args(args) -> FinetuneSettings:
    fields = FinetuneSettings.__dataclass_fields__
    return FinetuneSettings(**{name: getattr(args, name) for name in fields})


def command_finetune(args) -> dict:
    """Run `minilm finetune`; bad input (an unknown label, an empty file, a vocabulary that does
    not match the model) raises ValueError / FileNotFoundError, which `minilm.cli.main` prints as
    one line and exit status 2."""
    settings = settings_from_args(args)
    metrics = finetune(settings, args.out)
    per_epoch = ", ".join(f"{a:.3f}" for a in metrics["eval_accuracy_per_epoch"])
    print(f"eval accuracy {metrics['eval_accuracy']:.3f} (per epoch: {per_epoch}) on "
          f"{metrics['num_test']} test examples; "
          f"final train loss {metrics['final_train_loss']:.4f}")
    print(f"{metrics['steps']} steps in {metrics['wall_seconds']:.0f} s "
          f"({metrics['seconds_per_epoch']:.1f} s per epoch, {metrics['examples_per_second']:.1f} "
          f"examples/s); run directory: {args.out}")
    return metrics
