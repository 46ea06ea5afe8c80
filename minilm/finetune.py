"""Fine-tuning a pretrained BERT for sentence classification (seed §4) with the §3.4 strategies.

    minilm finetune --task sentiment --backend numpy            # MiniLM-L6, full fine-tuning
    minilm finetune --task sentiment --init random              # the same network, no pre-training
    minilm finetune --task train.csv --test test.csv --layerwise-lr-decay 0.9 --gradual-unfreezing

The model is Hugging Face's `BertForSequenceClassification`: the pretrained encoder, its pooler
(tanh of a Linear on the [CLS] state), dropout, and a new `classifier` Linear(C -> labels) that
starts from random weights. Every step: a batch of sentences -> logits (B, L) -> cross-entropy ->
gradients -> clip their global norm to 1 -> AdamW with the learning rate of the schedule. A run is
`--epochs` passes over the training split, or exactly `--max-steps` steps. After each epoch (or
every `--eval-every` steps) and after the last step the test split is classified: its loss,
accuracy, the confusion matrix and F1 (`minilm.classification`) make one line of metrics.jsonl.

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
computed once here, and one training step (`minilm.steps`) applies them. Only dropout masks differ
(NumPy's generator vs torch's), so with `dropout=0` the two loss curves agree to float32 rounding
(the tests check it with every strategy on).

The run directory (`minilm.checkpoint`, the format pre-training writes too; `--out`, checked before
anything is loaded) holds `model.safetensors` (all weights, encoder and head, by Hugging Face name),
`config.json` (Hugging Face's BertForSequenceClassification fields with id2label, and minilm's
block: the ModelConfig; label names, settings and base model as metadata), the tokenizer's
vocab.txt and tokenizer_config.json (so the directory is self-contained: `load_finetuned(directory)`,
`minilm predict`, and transformers' `AutoModelForSequenceClassification.from_pretrained`),
`training_state.safetensors` (the last checkpoint: saved every `save_every` steps, by default after
each evaluation, and at the end), `metrics.jsonl` (a line per evaluation), `metrics.json` and
`finetune_curves.png` (the loss, accuracy and macro-F1 against the step).
`resume_finetuning(directory)` (`minilm finetune --resume DIR`) continues from the checkpoint, in
the middle of an epoch if need be (the checkpoint keeps the epoch's order of examples), and ends
where the uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minilm import distributed
from minilm.checkpoint import (
    CONFIG_FILE,
    CURVES_FILE,
    METRICS_FILE,
    TRAINING_STATE_FILE,
    build_model,
    read_run,
)
from minilm.classification import classifier_inputs, scores_on_test_split
from minilm.common.backends import (
    BACKENDS,
    DEVICE_HELP,
    DEVICES,
    DTYPE_HELP,
    DTYPES,
    check_device,
    check_dtype,
    numpy_params,
    on_backend,
    restored_generator,
)
from minilm.common.checks import int_at_least, is_int, number_in
from minilm.common.settings import check_choices, setting
from minilm.config import ModelConfig
from minilm.files import write_json
from minilm.layerwise import (
    check_unfreezing,
    default_unfreeze_every,
    frozen_names,
    layerwise_scales,
    lowest_trainable_depth,
)
from minilm.metrics_log import TENSORBOARD_HELP, MetricsLog
from minilm.numpy import Encoder
from minilm.numpy.heads import SequenceClassifier
from minilm.numpy.optim import DECAY_KINDS, lr_schedule
from minilm.plots import plot_finetune_curves
from minilm.pretrained import check_vocab, default_model_path, load_pretrained, read_hf_config
from minilm.steps import check_finite_loss, make_step
from minilm.tasks import Task, load_task
from minilm.tokenizers import WordPieceTokenizer
from minilm.tokenizers.char import CHAR_TOKENIZER_FILE
from minilm.training_state import (
    check_history,
    due,
    prepare_run,
    read_checkpoint,
    restore_optimizer,
    resume_run,
    save_run_checkpoint,
    start_run,
    unreadable_checkpoint,
)

INITS = ("pretrained", "random")
DEFAULT_MAX_LENGTH = 64  # tokens per sentence, unless the model's positions end sooner


@dataclass
class FinetuneSettings:
    """Everything that defines a fine-tuning run (stored in config.json and metrics.json); each
    field is a flag of `minilm finetune`."""

    task: str = setting("sentiment", "'sentiment' (built in) or a labelled .csv/.jsonl file "
                                     "(columns text, label)")
    test: str | None = setting(None, "a test file for a file task (default: hold out 20%% of "
                                     "--task)")
    backend: str = setting("numpy", "numpy: hand-written backward; torch: the autograd twin "
                                    "(Triton attention on CUDA, SDPA on CPU)", choices=BACKENDS)
    device: str = setting("auto", DEVICE_HELP, choices=DEVICES)
    dtype: str = setting("float32", DTYPE_HELP, choices=DTYPES)
    init: str = setting("pretrained", "pretrained weights, or the same architecture freshly "
                                      "initialised (the value of pre-training)", choices=INITS)
    model: str | None = setting(None, "a Hugging Face BERT directory (default: the installed "
                                      "MiniLM-L6)")
    epochs: int = setting(3, "passes over the training split")
    max_steps: int | None = setting(
        None, "train exactly this many steps instead, whatever --epochs says (default: --epochs "
              "passes)", metavar="STEPS")
    eval_every: int | None = setting(
        None, "steps between evaluations on the test split (default: at each epoch's end); one "
              "is always made after the last step", metavar="STEPS")
    batch_size: int = setting(16, "sentences per step, over all the processes torchrun starts "
                                  "(minilm.distributed)")
    grad_accum: int = setting(1, distributed.GRAD_ACCUM_HELP, metavar="K")
    lr: float = setting(1e-4, "peak learning rate")
    warmup_ratio: float = setting(0.1, "fraction of the steps with a linearly rising learning rate")
    lr_decay: str = setting("linear", "after warmup ('constant': no decay)", choices=DECAY_KINDS)
    weight_decay: float = setting(0.01, "AdamW's decoupled decay (weight matrices and embeddings "
                                        "only)")
    dropout: float = setting(0.1, "dropout probability (replaces the checkpoint's)")
    layerwise_lr_decay: float | None = setting(
        None, "scale the learning rate by DECAY per layer below the head (0.9 if the flag has no "
              "value; off by default)", nargs="?", const=0.9, metavar="DECAY")
    gradual_unfreezing: bool = setting(
        False, "train the head first, then unfreeze one block more, top down, every "
               "--unfreeze-every steps")
    unfreeze_every: int | None = setting(
        None, "steps between thaws (default: all unfrozen halfway through training)",
        metavar="STEPS")
    max_length: int | None = setting(
        None, f"tokens per sentence, [CLS] and [SEP] included; longer ones are cut (default: "
              f"{DEFAULT_MAX_LENGTH}, or the model's max_len if smaller)")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this")
    save_every: int | None = setting(
        None, "steps between checkpoints in --out (default: after each evaluation); one is "
              "always saved at the end", metavar="STEPS")
    tensorboard: bool = setting(False, TENSORBOARD_HELP)
    seed: int = setting(0, "seeds the classifier's initialisation, the batch order and dropout")

    def __post_init__(self):
        check_choices(self)  # backend, device, dtype, init, lr_decay
        check_device(self.backend, self.device)
        check_dtype(self.backend, self.dtype)
        check_recipe(self)
        int_at_least("grad_accum", self.grad_accum, 1)
        number_in("dropout", self.dropout, "[0, 1)")
        if self.layerwise_lr_decay is not None:
            number_in("layerwise_lr_decay", self.layerwise_lr_decay, "(0, 1]")
        for name in ("max_steps", "eval_every", "unfreeze_every", "save_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.unfreeze_every is not None and not self.gradual_unfreezing:
            raise ValueError("unfreeze_every sets the pace of gradual_unfreezing, which is off: "
                             "add --gradual-unfreezing, or drop --unfreeze-every")


def check_recipe(settings) -> None:
    """Check the recipe's fields that `FinetuneSettings` and distillation's `DistillSettings`
    share: epochs and batch_size ints >= 1; max_length an int >= 3, or None (the default); lr and
    grad_clip > 0, warmup_ratio in [0, 1], weight_decay >= 0; seed an int >= 0. ValueError naming
    the first that is not."""
    for name in ("epochs", "batch_size"):
        int_at_least(name, getattr(settings, name), 1)
    if settings.max_length is not None and not (is_int(settings.max_length)
                                                and settings.max_length >= 3):
        raise ValueError("max_length must be an int >= 3 ([CLS], a token, [SEP]), got "
                         f"{settings.max_length!r}")
    number_in("lr", settings.lr, "(0, inf)")
    number_in("warmup_ratio", settings.warmup_ratio, "[0, 1]")
    number_in("weight_decay", settings.weight_decay, "[0, inf)")
    number_in("grad_clip", settings.grad_clip, "(0, inf)")
    int_at_least("seed", settings.seed, 0)


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
    described = check_model_directory(directory)
    tokenizer = WordPieceTokenizer.from_pretrained(directory)
    pretrained = None
    if settings.init == "pretrained":
        if config is not None:
            raise ValueError("config is for init='random'; a pretrained model brings its own")
        pretrained = load_pretrained(directory, backend="numpy")
        config = pretrained.config
    elif config is None:
        config = described
    check_vocab(tokenizer, config)
    fitted_max_length(settings.max_length, config.max_len)  # checked before the model is built
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


def fitted_max_length(max_length: int | None, max_len: int, model: str = "the model") -> int:
    """The tokens a text is cut to for a model of `max_len` positions: `max_length`, by default
    (None) DEFAULT_MAX_LENGTH or max_len if that is smaller; more than max_len is an error."""
    if max_length is None:
        return min(DEFAULT_MAX_LENGTH, max_len)
    if max_length > max_len:
        raise ValueError(f"max_length={max_length} exceeds {model}'s max_len={max_len}")
    return max_length


def check_model_directory(directory: Path) -> ModelConfig:
    """Check that the --model directory holds a BERT to fine-tune, and return its ModelConfig
    (`minilm.pretrained.read_hf_config`): a config.json of model_type "bert" beside BERT's
    WordPiece vocabulary, vocab.txt (the BERT of a `minilm train --objective mlm` run reads
    characters instead). ValueError naming --model and what it holds."""
    flag = f"--model {str(directory)!r}"
    if not (directory / CONFIG_FILE).is_file():
        raise ValueError(f"{flag} is not a model directory (no {CONFIG_FILE} in it); expected a "
                         "BERT's config.json, model.safetensors and vocab.txt")
    model_type, config = read_hf_config(directory)
    if model_type != "bert":
        raise ValueError(f"{flag} holds a {model_type} model; sentence classification fine-tunes "
                         "a BERT encoder")
    if not (directory / "vocab.txt").is_file():
        tokenizer = ("minilm's character tokenizer (char_tokenizer.json)"
                     if (directory / CHAR_TOKENIZER_FILE).is_file() else "no tokenizer")
        raise ValueError(f"{flag} holds a BERT with {tokenizer}; fine-tuning reads text with "
                         "BERT's WordPiece vocabulary, vocab.txt")
    return config


# ---------------------------------------------------------------- starting and resuming


class Plan(NamedTuple):
    """What the settings, the task and the model fix for the whole run."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    names: list[str]  # the parameters, by checkpoint name
    num_parameters: int
    lr_scale: dict[str, float] | None  # layer-wise learning-rate decay
    unfreeze_every: int | None  # gradual unfreezing


def plan(settings: FinetuneSettings, task: Task, model) -> Plan:
    """The run's Plan: its steps, warmup, parameters and the strategies' per-parameter settings."""
    params, n_layers = numpy_params(model), model.config.n_layers
    names = list(params)
    steps_per_epoch = math.ceil(len(task.train_texts) / settings.batch_size)
    total_steps = settings.max_steps or settings.epochs * steps_per_epoch
    lr_scale = (None if settings.layerwise_lr_decay is None
                else layerwise_scales(names, n_layers, settings.layerwise_lr_decay))
    unfreeze_every = None
    if settings.gradual_unfreezing:  # its pace, given or the default, must thaw every group
        unfreeze_every = settings.unfreeze_every or default_unfreeze_every(total_steps, n_layers)
        check_unfreezing(unfreeze_every, total_steps, n_layers)
    return Plan(steps_per_epoch, total_steps, math.ceil(settings.warmup_ratio * total_steps),
                names, sum(p.size for p in params.values()), lr_scale, unfreeze_every)


def step_for(model, settings: FinetuneSettings, run_plan: Plan, world):
    """The training step (minilm.steps) of `settings` for `model` in this process of `world`,
    with the plan's layer-wise learning-rate scales."""
    return make_step(model, settings.weight_decay, grad_clip=settings.grad_clip,
                     lr_scale=run_plan.lr_scale, dtype=settings.dtype,
                     grad_accum=settings.grad_accum, world=world)


def _absolute(task_file):
    """A task file's absolute path; None and the built-in task's name as they are."""
    return task_file if task_file in (None, "sentiment") else str(Path(task_file).resolve())


def finetune(settings: FinetuneSettings, out_dir=None, progress: bool = True,
             task: Task | None = None, config: ModelConfig | None = None) -> dict | None:
    """Fine-tune, evaluate after every epoch, checkpoint into the run directory `out_dir` (checked
    first); returns the metrics (None on the processes but rank 0 under torchrun).

    `task` overrides `settings.task` / `settings.test` with an in-memory `Task`; `config` gives the
    architecture for init="random" (default: the model directory's config.json).
    """
    world, out_dir = prepare_run(settings, out_dir, reads=settings.model)
    if task is None:  # task files saved as absolute paths: --resume may run in another directory
        settings = replace(settings, task=_absolute(settings.task), test=_absolute(settings.test))
        task = load_task(settings.task, settings.test, seed=settings.seed)
    task.check_learnable()
    numpy_model, tokenizer, base = build_classifier(settings, task.num_labels, config)
    settings = replace(settings, max_length=fitted_max_length(settings.max_length,
                                                              numpy_model.config.max_len))
    base = None if base is None else str(base)
    model = on_backend(numpy_model, settings.backend, settings.seed, settings.device)
    distributed.seed_dropout(world, settings.seed)
    if out_dir is not None:
        start_run(out_dir, model, tokenizer, label_names=list(task.label_names), base_model=base,
                  settings=asdict(settings), task_sha256=task.digest())
    run_plan = plan(settings, task, numpy_model)
    step_fn = step_for(model, settings, run_plan, world)
    history = new_history()
    position = Position(0, np.random.default_rng(settings.seed), None, 0.0)
    return _finetune_from(position, settings, task, model, tokenizer, step_fn, run_plan, history,
                          base, out_dir, progress)


def resume_finetuning(directory, progress: bool = True,
                      task: Task | None = None) -> dict | None:
    """Continue the fine-tuning run in `directory` from its last checkpoint (its settings, task,
    batch order and generators), checkpointing into the same directory; returns the metrics of the
    whole run. `task`: the in-memory Task the run was started with, if it was given one."""
    run, state = read_checkpoint(directory, "finetune")
    try:
        settings = FinetuneSettings(**run.metadata["settings"])
        sha256, base = run.metadata["task_sha256"], run.metadata["base_model"]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{directory} does not hold a `minilm finetune` run to resume (reading "
                         f"its config.json and checkpoint: {error!r})") from None
    history = check_history(state, directory, new_history(), ("loss", "lr",
                                                               "lowest_trainable_depth"))
    if task is None:
        task = load_task(settings.task, settings.test, seed=settings.seed)
    if tuple(task.label_names) != tuple(run.metadata["label_names"]) or task.digest() != sha256:
        raise ValueError(f"task {task.name!r} is not the one the run in {directory} started with "
                         "(its examples or labels differ): resuming would train on other data")
    try:
        position = Position.from_json(state.step, state.progress, len(task.train_texts))
    except (KeyError, ValueError) as error:
        problem = f"progress has no {error}" if isinstance(error, KeyError) else error
        raise unreadable_checkpoint(Path(directory) / TRAINING_STATE_FILE, problem) from None
    world, model, out_dir = resume_run(run, state, settings)
    run_plan = plan(settings, task, model)
    step_fn = step_for(model, settings, run_plan, world)
    restore_optimizer(step_fn, run, state)
    return _finetune_from(position, settings, task, model, run.tokenizer, step_fn, run_plan,
                          history, base, out_dir, progress)


# ---------------------------------------------------------------- the loop


class Position(NamedTuple):
    """Where a run stands in its data: steps done, the generator of the epochs' orders, this
    epoch's order (None before the first), and the training seconds of earlier sessions."""

    step: int
    order_rng: np.random.Generator
    order: np.ndarray | None
    seconds: float

    def to_json(self) -> dict:
        return {"order_generator": self.order_rng.bit_generator.state,
                "order": None if self.order is None else self.order.tolist(),
                "seconds": self.seconds}

    @classmethod
    def from_json(cls, step: int, saved: dict, n_examples: int) -> Position:
        """The position `to_json` saved for a task of `n_examples` training examples (ValueError
        if its order is not an order of them)."""
        order = saved["order"]
        if order is not None and not (isinstance(order, list) and all(type(i) is int for i in order)
                                      and sorted(order) == list(range(n_examples))):
            raise ValueError(f"progress.order must be null or an order of the task's {n_examples} "
                             f"training examples, got {order!r:.80}")
        order = None if order is None else np.array(order, dtype=np.int64)
        return cls(step, restored_generator(saved["order_generator"]), order, saved["seconds"])


def epoch_batch(task: Task, tokenizer, settings, order: np.ndarray, number: int):
    """(index, inputs): batch `number` of an epoch that visits the training examples in `order`
    (a permutation), settings.batch_size of them (fewer in the last batch), and their
    `classifier_inputs` cut to settings.max_length tokens."""
    index = order[number * settings.batch_size:(number + 1) * settings.batch_size]
    texts = [task.train_texts[i] for i in index]
    return index, classifier_inputs(tokenizer, texts, settings.max_length)


def new_history() -> dict[str, list]:
    """The history a run keeps and checkpoints: each step's loss, learning rate and lowest
    trainable depth, each epoch's training seconds, each evaluation's step and scores."""
    return {"loss": [], "lr": [], "lowest_trainable_depth": [], "epoch_train_seconds": [],
            "eval_step": [], "eval_loss": [], "eval_accuracy": [], "eval_macro_f1": []}


def _finetune_from(position: Position, settings, task, model, tokenizer, step_fn, run_plan, history,
                   base, out_dir, progress) -> dict | None:
    """Steps position.step .. total_steps - 1, one flat loop over (epoch, batch) = divmod(step,
    steps_per_epoch): each epoch starts by drawing an order of the examples from the one NumPy
    generator both backends share. An evaluation on the test split every eval_every steps
    (default: each epoch's end) and after the last, each a line of metrics.jsonl; a checkpoint
    every save_every steps (default: at each evaluation) and after the last. Under torchrun every
    process steps; rank 0 alone shows progress, evaluates, saves and returns the metrics (the
    others return None)."""
    from tqdm.auto import tqdm

    world = distributed.current()
    step, order_rng, order, seconds_before = position
    n_layers, per_epoch, total = model.config.n_layers, run_plan.steps_per_epoch, run_plan.total_steps
    eval_every = settings.eval_every or per_epoch
    save_every = settings.save_every or eval_every
    log = MetricsLog(out_dir, settings.tensorboard and world.is_main, echo=progress,
                     resume_step=step)
    bar = tqdm(initial=step, total=total, disable=not progress or not world.is_main, unit="step",
               dynamic_ncols=True, desc=f"finetune {settings.backend}")
    started, epoch_seconds = time.perf_counter(), 0.0
    test = None  # the last evaluation's scores
    while step < total:
        step_started = time.perf_counter()
        epoch, batch_number = divmod(step, per_epoch)
        if batch_number == 0:
            order = order_rng.permutation(len(task.train_texts))
        index, inputs = epoch_batch(task, tokenizer, settings, order, batch_number)
        lr = lr_schedule(step, settings.lr, total, run_plan.warmup_steps, settings.lr_decay)
        depth = (0 if run_plan.unfreeze_every is None
                 else lowest_trainable_depth(step, run_plan.unfreeze_every, n_layers))
        loss = step_fn(inputs, task.train_labels[index], lr,
                       frozen_names(run_plan.names, n_layers, depth))
        check_finite_loss(loss, step + 1)
        history["loss"].append(loss)
        history["lr"].append(lr)
        history["lowest_trainable_depth"].append(depth)
        step += 1
        epoch_seconds += time.perf_counter() - step_started  # training time, evaluations apart
        bar.update()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}")
        if step % per_epoch == 0:
            history["epoch_train_seconds"].append(epoch_seconds)
            epoch_seconds = 0.0
        evaluating, saving = due(step, eval_every, total), due(step, save_every, total)
        if evaluating and world.is_main:  # meanwhile the other processes wait at the barrier
            # a model the step's update made diverge: one line (below), not NumPy's warnings
            with np.errstate(over="ignore", invalid="ignore"):
                test = scores_on_test_split(model, tokenizer, task, settings.max_length)
            check_finite_loss(test["loss"], step, "test loss")  # before it is logged or saved
            record = evaluation_record(history, test, step, per_epoch, lr,
                                       seconds_before + time.perf_counter() - started)
            log.write(record, describe_evaluation(record, total))
        if saving:
            seconds = seconds_before + time.perf_counter() - started
            save_run_checkpoint(world, out_dir, model, step_fn, step, total, {
                "history": history, **Position(step, order_rng, order, seconds).to_json()})
        if evaluating or saving:
            distributed.barrier(world)
    bar.close()
    log.close()
    wall = seconds_before + time.perf_counter() - started
    if not world.is_main:
        return None

    if test is None:  # resumed after its last step (killed before its end): evaluate once more
        test = scores_on_test_split(model, tokenizer, task, settings.max_length)
    at_epoch_ends = [i for i, done in enumerate(history["eval_step"]) if done % per_epoch == 0]
    epoch_seconds = history["epoch_train_seconds"]  # whole epochs, of this process and earlier
    majority = float(np.bincount(task.test_labels).max() / len(task.test_labels))
    metrics = {
        "task": task.name,
        "backend": settings.backend,
        "init": settings.init,
        "eval_accuracy": test["accuracy"],  # the last evaluation's, after the last step
        "eval_macro_f1": test["macro_f1"],
        "eval_loss": test["loss"],
        "per_label": test["per_label"],
        "confusion_matrix": test["confusion_matrix"],
        "label_names": list(task.label_names),
        "majority_accuracy": majority,  # of always answering the most common test label
        "eval_steps": history["eval_step"],
        "eval_accuracy_per_epoch": [history["eval_accuracy"][i] for i in at_epoch_ends],
        "eval_loss_per_epoch": [history["eval_loss"][i] for i in at_epoch_ends],
        "final_train_loss": float(np.mean(history["loss"][-per_epoch:])),  # the last epoch's
        "loss_curve": history["loss"],
        "lr_curve": history["lr"],
        "lowest_trainable_depth": history["lowest_trainable_depth"],
        "unfreeze_every": run_plan.unfreeze_every,
        "steps": total,
        "world_size": world.size,  # processes (torchrun), each computing per_rank_batch rows
        "per_rank_batch": settings.batch_size // world.size,
        "warmup_steps": run_plan.warmup_steps,
        "train_seconds_per_epoch": epoch_seconds,
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "examples_per_second": (len(task.train_texts) / float(np.mean(epoch_seconds))
                                if epoch_seconds else None),
        "wall_seconds": wall,
        "num_train": len(task.train_texts),
        "num_test": len(task.test_texts),
        "num_parameters": run_plan.num_parameters,
        "base_model": base,
        "settings": asdict(settings),
    }
    if out_dir is not None:
        write_json(Path(out_dir) / METRICS_FILE, metrics)
        plot_finetune_curves(history, majority, Path(out_dir) / CURVES_FILE,
                             f"fine-tuning on {task.name} ({settings.init} init, "
                             f"{settings.backend})")
    return metrics


def evaluation_record(history, test: dict, step: int, per_epoch: int, lr: float,
                      seconds: float) -> dict:
    """Add an evaluation (`scores_on_test_split` after `step` steps) to the history and return
    its line of metrics.jsonl: the step and epoch, the mean training loss since the previous
    evaluation, the test split's loss, accuracy, macro-F1, per-label scores and confusion matrix,
    the learning rate, the seconds so far."""
    previous = history["eval_step"][-1] if history["eval_step"] else 0
    history["eval_step"].append(step)
    for name in ("loss", "accuracy", "macro_f1"):
        history[f"eval_{name}"].append(test[name])
    return {"step": step, "epoch": step / per_epoch,
            "train_loss": float(np.mean(history["loss"][previous:step])),
            **{f"eval_{name}": value for name, value in test.items()}, "lr": lr,
            "seconds": seconds}


def describe_evaluation(record: dict, total_steps: int) -> str:
    """The readable line of an evaluation record: "step 12/12 (epoch 0.48): train loss 0.6834,
    test loss 0.6765, accuracy 0.690, macro-F1 0.674"."""
    return (f"step {record['step']}/{total_steps} (epoch {record['epoch']:.2f}): train loss "
            f"{record['train_loss']:.4f}, test loss {record['eval_loss']:.4f}, accuracy "
            f"{record['eval_accuracy']:.3f}, macro-F1 {record['eval_macro_f1']:.3f}")


def load_finetuned(directory, backend: str = "numpy"):
    """A fine-tuning run directory -> (classifier in eval mode, tokenizer, label names), on either
    backend."""
    run = read_run(directory)
    if run.kind != "sequence_classifier":
        raise ValueError(f"{str(directory)!r} holds a run of kind {run.kind!r}, not a fine-tuned "
                         "sequence classifier")
    return build_model(run, backend), run.tokenizer, tuple(run.metadata["label_names"])
