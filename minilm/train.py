"""One pre-training loop for both backends (the NumPy reference and the PyTorch twin).

Three objectives: clm (a GPT-style Decoder predicts the next character), mlm (a BERT-style Encoder
the masked ones) and seq2seq (an encoder-decoder `Seq2Seq` translates English into Kelish, the
built-in parallel corpus of `minilm.translation`; batches are sentence pairs, validation is held-out
stories' sentences, and the run ends by translating them: exact match, BLEU, chrF).

    for each step:  batch -> one training step (minilm.steps): loss, gradients, clip, AdamW
                    with the learning rate of warmup + decay (cosine by default, or linear)
    every eval_every steps:  validation loss on held-out text, one line of metrics.jsonl

The model is built in NumPy from `seed` and, for `--backend torch`, handed to its twin with the same
weights (`minilm.common.backends.on_backend`), so both backends start from the same point; the
seeding rule for weights, dropout and batches is written out in `minilm.common.backends`.

A run directory (`minilm.checkpoint`, `--out`) is checked before anything is trained, receives
`config.json` + the tokenizer when the run starts, a checkpoint every `save_every` steps (by
default at each evaluation) and at the end: `training_state.safetensors` (weights, AdamW's moments,
the step, the generators' states, the loss history) and `model.safetensors`; then `metrics.json`
(validation loss, the corpus's entropy floor when known, the loss curve) and `loss_curve.png`.
Each evaluation is also a line of `metrics.jsonl`, written and printed as it happens
(`minilm.metrics_log`; `--tensorboard` adds TensorBoard scalars).

The loss is reported three ways. In nats per token: the mean of -ln p(token), what the loss
function computes. In bits per token, -log2 p = nats / ln 2: the characters here are tokens, so
bits per character, the unit of text compression (a model at b bits per character could compress
the text to b/8 bytes per character with an arithmetic coder). And as perplexity, e^nats: the
model is as unsure as if it chose uniformly among that many tokens. The built-in corpus's entropy
rate (`minilm.corpus.corpus_entropy_rate`) bounds a CLM loss from below: no next-character
predictor can beat it, so the ratio val_loss / floor says how far the model is from perfect. It is
reported for clm only: a masked token is predicted from both sides, so an MLM loss is not bounded
by the left-to-right entropy rate (it can fall below it), and no floor is known for a user's text.
`resume_training(directory)` (`minilm train --resume DIR`) continues from the last checkpoint with
the run's own settings, text and generators, so an interrupted and resumed run ends with the
weights and the loss curve of the uninterrupted one.

Validation is a sliding window: windows of `seq_len` tokens advance by half a window and only the
second half of each window is scored (all of the first window), so every validation token is
predicted from at least seq_len/2 tokens of context and each is scored exactly once.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minilm import corpus, data, distributed, translation
from minilm.checkpoint import LOSS_CURVE_FILE, METRICS_FILE
from minilm.common.backends import (
    BACKENDS,
    DEVICE_HELP,
    DEVICES,
    DTYPE_HELP,
    DTYPES,
    check_device,
    check_dtype,
    inference,
    on_backend,
    restored_generator,
    to_numpy,
)
from minilm.common.checks import int_at_least, number_in
from minilm.common.settings import check_choices, setting
from minilm.config import ModelConfig
from minilm.files import write_json
from minilm.metrics_log import TENSORBOARD_HELP, MetricsLog
from minilm.numpy import Decoder, Encoder, Seq2Seq
from minilm.numpy import functional as F
from minilm.numpy.optim import DECAY_KINDS, lr_schedule
from minilm.plots import plot_loss_curve
from minilm.steps import check_finite_loss, make_step
from minilm.tokenizers import CharTokenizer
from minilm.training_state import (
    check_history,
    due,
    prepare_run,
    read_checkpoint,
    restore_optimizer,
    resume_run,
    save_run_checkpoint,
    start_run,
)

OBJECTIVES = ("clm", "mlm", "seq2seq")
DEFAULT_SEQ_LEN = 128
VAL_FRACTION = 0.1  # the end of the text held out for validation
MODEL_OF_KIND = {"decoder": Decoder, "encoder": Encoder, "seq2seq": Seq2Seq}
# what one token of each objective's loss is, for the units ("nats per character")
TOKEN_OF_OBJECTIVE = {"clm": "character", "mlm": "masked character", "seq2seq": "target word"}


@dataclass
class TrainSettings:
    """Everything that defines a pre-training run; each field is a flag of `minilm train`."""

    objective: str = setting("clm", "clm: next token (a GPT-style Decoder); mlm: masked tokens "
                                    "(a BERT-style Encoder); seq2seq: English -> Kelish "
                                    "translation (an encoder-decoder)", choices=OBJECTIVES)
    backend: str = setting("numpy", "numpy: the hand-written reference; torch: the twin (Triton "
                                    "attention on CUDA, SDPA on CPU)", choices=BACKENDS)
    device: str = setting("auto", DEVICE_HELP, choices=DEVICES)
    dtype: str = setting("float32", DTYPE_HELP, choices=DTYPES)
    steps: int = setting(1000, "optimizer steps")
    batch_size: int = setting(16, "sequences (seq2seq: sentence pairs) per step, over all the "
                                  "processes torchrun starts (minilm.distributed)")
    grad_accum: int = setting(1, distributed.GRAD_ACCUM_HELP, metavar="K")
    seq_len: int | None = setting(
        None, f"tokens (characters) per sequence, clm and mlm (default: {DEFAULT_SEQ_LEN}, or "
              "fewer when the text's training split is shorter)")
    lr: float = setting(3e-3, "peak learning rate, reached after warmup")
    lr_decay: str = setting("cosine", "after warmup, from --lr towards --min-lr, reached one "
                                      "step after the last ('constant': no decay)",
                            choices=DECAY_KINDS)
    min_lr: float | None = setting(None, "learning rate the decay ends at, one step after the last "
                                         "(default: --lr / 10)")
    warmup_steps: int | None = setting(
        None, "steps of linearly rising learning rate (default: min(50, steps // 10))")
    weight_decay: float = setting(0.1, "AdamW's decoupled decay (matrices and embeddings only)")
    adam_beta2: float = setting(0.99, "Adam's beta2: a shorter memory of g^2 than the usual 0.999, "
                                      "better for short runs")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this")
    eval_every: int = setting(100, "steps between validation-loss evaluations")
    eval_tokens: int = setting(20_000, "validation tokens scored at each evaluation")
    save_every: int | None = setting(
        None, "steps between checkpoints in --out (default: at each evaluation, --eval-every); "
              "one is always saved at the end")
    tensorboard: bool = setting(False, TENSORBOARD_HELP)
    seed: int = setting(0, "seeds the corpus, the initial weights, the batches and dropout")

    def __post_init__(self):
        check_choices(self)  # objective, backend, device, dtype, lr_decay
        check_device(self.backend, self.device)
        check_dtype(self.backend, self.dtype)
        if self.save_every is None:
            self.save_every = self.eval_every
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_tokens",
                     "save_every"):
            int_at_least(name, getattr(self, name), 1)
        if self.seq_len is not None and self.objective == "seq2seq":
            raise ValueError(f"seq_len is for clm and mlm, got seq_len={self.seq_len}: seq2seq "
                             "sets its own lengths (each batch pads to its longest sentence)")
        if self.seq_len is not None:
            int_at_least("seq_len", self.seq_len, 2)
        number_in("lr", self.lr, "(0, inf)")
        if self.min_lr is None:
            self.min_lr = self.lr / 10
        number_in("min_lr", self.min_lr, f"[0, {self.lr}]")
        number_in("weight_decay", self.weight_decay, "[0, inf)")
        number_in("adam_beta2", self.adam_beta2, "[0, 1)")
        number_in("grad_clip", self.grad_clip, "(0, inf)")
        if self.warmup_steps is None:
            self.warmup_steps = min(50, self.steps // 10)
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")
        int_at_least("seed", self.seed, 0)

    @property
    def kind(self) -> str:
        return {"clm": "decoder", "mlm": "encoder", "seq2seq": "seq2seq"}[self.objective]


# ---------------------------------------------------------------- batches


def training_batch(ids, settings, tokenizer, rng):
    """(inputs, targets) for one step, inputs the tuple of the model's forward arguments:
    next-token targets (CLM), 80/10/10 masking (MLM) or random sentence pairs (seq2seq)."""
    if settings.objective == "seq2seq":  # ids: the encoded training pairs
        rows = rng.integers(0, len(ids), size=settings.batch_size)
        return translation.seq2seq_batch(ids, rows, tokenizer)
    if settings.objective == "clm":
        inputs, targets = data.clm_batch(ids, settings.batch_size, settings.seq_len, rng)
    else:
        inputs, targets = data.mlm_batch(ids, settings.batch_size, settings.seq_len, rng,
                                         tokenizer.vocab_size, tokenizer.mask_id,
                                         tokenizer.special_ids)
    return (inputs,), targets


def validation_batches(ids, settings, tokenizer):
    """Deterministic (inputs, targets) covering the first `eval_tokens` validation tokens.

    CLM: a sliding window, stride seq_len/2, scoring each window's second half (`data.eval_batches`).
    MLM: consecutive windows masked with a fixed generator, so every evaluation sees the same masks.
    seq2seq: every held-out sentence pair, in order.
    """
    if settings.objective == "seq2seq":
        yield from translation.batches_in_order(ids, settings.batch_size, tokenizer)
        return
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
    mode, for a model of either backend. `inputs`: ids, or the tuple of the forward's arguments."""
    total, count = 0.0, 0
    with inference(model):
        for inputs, targets in batches:
            logits = model.forward(*inputs) if isinstance(inputs, tuple) else model.forward(inputs)
            loss, cache = F.cross_entropy_forward(to_numpy(logits), targets)
            total, count = total + float(loss) * cache.n_kept, count + cache.n_kept
    return total / count


# ---------------------------------------------------------------- the data


class TrainingData(NamedTuple):
    """The text a run trains on, tokenized and split."""

    tokenizer: CharTokenizer
    train_ids: np.ndarray
    val_ids: np.ndarray
    floor: float | None  # the corpus's entropy rate, when known (the built-in corpus)
    text_path: str | None  # absolute, or None for the built-in corpus
    sha256: str  # of the text: a resumed run checks that it trains on the same


def load_corpus(text_path=None, seed=0):
    """(text, entropy floor or None): a UTF-8 file, or the built-in corpus and its exact floor."""
    if text_path is not None:
        return data.load_text(text_path), None
    text = corpus.generate_corpus(n_stories=corpus.DEFAULT_STORIES, seed=seed)
    return text, corpus.corpus_entropy_rate()


def training_data(text_path=None, seed=0) -> TrainingData:
    """`load_corpus`, its character tokenizer and the train/validation split (the last
    VAL_FRACTION of the text for validation)."""
    text, floor = load_corpus(text_path, seed)
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    path = None if text_path is None else str(Path(text_path).resolve())
    if round(len(ids) * VAL_FRACTION) < 1:  # said here: split_train_val would name val_fraction
        raise ValueError(f"{_text_named(path)} has {len(ids)} characters: too few to keep the last "
                         f"{VAL_FRACTION:.0%} for validation; give a longer text")
    train_ids, val_ids = data.split_train_val(ids, VAL_FRACTION)
    return TrainingData(tokenizer, train_ids, val_ids, floor, path,
                        hashlib.sha256(text.encode("utf-8")).hexdigest())


def _text_named(text_path) -> str:
    return "the built-in corpus" if text_path is None else f"--text {text_path!r}"


def translation_training_data(seed=0) -> TrainingData:
    """The English -> Kelish pairs (`minilm.translation`): train_ids and val_ids hold the encoded
    pairs of the training and the held-out stories."""
    pairs = translation.translation_data(seed=seed)
    text = "\n".join(f"{source}\t{target}" for source, target in pairs.train_pairs)
    return TrainingData(pairs.tokenizer, pairs.train, pairs.heldout, None, None,
                        hashlib.sha256(text.encode("utf-8")).hexdigest())


def check_text_length(corpus_data: TrainingData, settings: TrainSettings) -> None:
    """Before the first step (clm and mlm), the text must hold what the run reads:

        training split    one window: seq_len + 1 tokens for clm (the inputs and the token after
                          each), seq_len for mlm
        validation split  one scored token: its windows are padded, so 2 tokens for clm (an input
                          and the token after it), and for mlm a token the fixed masking selects

    Otherwise the run would stop at its first step, or at its first evaluation. The default
    seq_len (as long as the training split allows) always fits the training split; only a longer
    text lengthens the validation split, which is checked first (so that a shorter --seq-len,
    the advice for a short training split, is given only where it works)."""
    n_train, n_val = len(corpus_data.train_ids), len(corpus_data.val_ids)
    size = f"{_text_named(corpus_data.text_path)} has {n_train + n_val} characters"
    scores_one = n_val >= 2 and (settings.objective == "clm" or any(
        (targets != data.IGNORE_INDEX).any()
        for _, targets in validation_batches(corpus_data.val_ids, settings, corpus_data.tokenizer)))
    if not scores_one:
        needs = ("2 (a character and the one after it)" if settings.objective == "clm"
                 else "enough that its masking selects one to score")
        raise ValueError(f"{size}, {n_val} in its validation split (the last {VAL_FRACTION:.0%}), "
                         f"and validation needs {needs}; give a longer text")
    extra = int(settings.objective == "clm")  # the token after the window
    if n_train < settings.seq_len + extra:
        longest_fit = n_train - extra
        change = (f"give --seq-len {longest_fit} or less, or a longer text" if longest_fit >= 2
                  else "give a longer text")
        raise ValueError(f"{size}, {n_train} in its training split (the first "
                         f"{1 - VAL_FRACTION:.0%}): fewer than the {settings.seq_len + extra} "
                         f"that one window of seq_len={settings.seq_len} needs; {change}")


def initial_model(kind: str, config: ModelConfig, settings: TrainSettings):
    """The model to pre-train, initialised in NumPy from `settings.seed`, on `settings.backend`
    (and `settings.device`)."""
    numpy_model = MODEL_OF_KIND[kind](config, seed=settings.seed)
    return on_backend(numpy_model, settings.backend, settings.seed, settings.device)


def step_for(model, settings: TrainSettings, world):
    """The training step (minilm.steps) of `settings` for `model` in this process of `world`."""
    return make_step(model, settings.weight_decay, betas=(0.9, settings.adam_beta2),
                     grad_clip=settings.grad_clip, dtype=settings.dtype,
                     grad_accum=settings.grad_accum, world=world)


def loss_units(nats: float) -> dict[str, float | None]:
    """A cross-entropy in nats per token, also in bits per token (nats / ln 2) and as perplexity
    (e^nats), see the module docstring. The perplexity is None past the largest float, e^709.78 =
    1.8e308, where a run with too high a learning rate can be while its loss is finite (it is
    still printed: `perplexity_text`)."""
    try:
        perplexity = math.exp(nats)
    except OverflowError:
        perplexity = None
    return {"bits": nats / math.log(2), "perplexity": perplexity}


def perplexity_text(nats: float, decimals: int = 2) -> str:
    """The perplexity e^nats for a line of text: with `decimals` below a million ("24.22"), in
    e-notation from there ("2.73e+347"), worked out from nats so that no float overflows."""
    if nats < math.log(1e6):
        return f"{math.exp(nats):.{decimals}f}"
    tens = nats / math.log(10)  # e^nats = 10^tens = 10^(tens % 1) * 10^floor(tens)
    mantissa, carry = f"{10 ** (tens % 1):.2e}".split("e")  # "9.999" rounds to "1.00e+01"
    return f"{mantissa}e+{math.floor(tens) + int(carry):02d}"


# ---------------------------------------------------------------- starting and resuming


def train(settings: TrainSettings, config: ModelConfig | None = None, text_path=None,
          out_dir=None, progress=True) -> dict | None:
    """Train from fresh weights, evaluate, checkpoint into `out_dir` (checked first); returns the
    metrics dict (also `metrics.json`), or None on the processes but rank 0 under torchrun.
    `config` gives the model's shape (vocab_size comes from the text); by default the demo preset,
    or `translation.TRANSLATION_MODEL` for seq2seq."""
    if settings.objective == "seq2seq" and text_path is not None:
        raise ValueError("--text is for clm and mlm: seq2seq trains on the built-in English -> "
                         "Kelish corpus")
    if settings.objective == "seq2seq":
        translation.scorer()  # BLEU and chrF at the end need sacrebleu: say so before training
    world, out_dir = prepare_run(settings, out_dir)
    corpus_data = _data_for(settings, text_path)
    if settings.objective != "seq2seq":
        if settings.seq_len is None:  # a short text still makes a window: it decides, not a default
            settings = replace(settings, seq_len=max(2, min(DEFAULT_SEQ_LEN,
                                                            len(corpus_data.train_ids) - 1)))
        check_text_length(corpus_data, settings)
    tokenizer = corpus_data.tokenizer
    if config is None:  # the default shape: the demo preset, or the translation model
        config = (translation.TRANSLATION_MODEL if settings.objective == "seq2seq"
                  else ModelConfig.preset("demo"))
    longest = (translation.longest(corpus_data.train_ids + corpus_data.val_ids)
               if settings.objective == "seq2seq" else settings.seq_len)
    config = ModelConfig.from_dict({**config.to_dict(), "vocab_size": tokenizer.vocab_size,
                                    "max_len": max(config.max_len, longest)})
    model = initial_model(settings.kind, config, settings)
    distributed.seed_dropout(world, settings.seed)
    if out_dir is not None:
        start_run(out_dir, model, tokenizer, objective=settings.objective,
                  settings=asdict(settings), text=corpus_data.text_path,
                  text_sha256=corpus_data.sha256)
    step_fn = step_for(model, settings, world)
    history = new_history()
    rng = np.random.default_rng(settings.seed)
    return _train_from(0, settings, model, step_fn, corpus_data, history, rng, 0.0, out_dir,
                       progress)


def resume_training(directory, progress=True) -> dict | None:
    """Continue the run in `directory` from its last checkpoint, with the settings, text and
    generators it had, checkpointing into the same directory; returns the metrics of the whole
    run. The weights and the loss curve at the end are those of the uninterrupted run."""
    run, state = read_checkpoint(directory, "train")
    try:
        settings = TrainSettings(**run.metadata["settings"])
        text_path, sha256 = run.metadata["text"], run.metadata["text_sha256"]
        generator, seconds = state.progress["data_generator"], state.progress["seconds"]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{directory} does not hold a `minilm train` run to resume (reading "
                         f"its config.json and checkpoint: {error!r})") from None
    history = check_history(state, directory, new_history(), ("step", "train_loss"))
    corpus_data = _data_for(settings, text_path)
    if corpus_data.sha256 != sha256:
        raise ValueError(f"{text_path} has changed since the run in {directory} started: "
                         "resuming would train on different text")
    world, model, out_dir = resume_run(run, state, settings)
    step_fn = step_for(model, settings, world)
    restore_optimizer(step_fn, run, state)
    return _train_from(state.step, settings, model, step_fn, corpus_data, history,
                       restored_generator(generator), seconds, out_dir, progress)


def new_history() -> dict[str, list]:
    """The history a run keeps and checkpoints: each step's number and training loss, each
    evaluation's step and validation loss."""
    return {"step": [], "train_loss": [], "val_step": [], "val_loss": []}


def _data_for(settings, text_path) -> TrainingData:
    if settings.objective == "seq2seq":
        return translation_training_data(settings.seed)
    return training_data(text_path, settings.seed)


# ---------------------------------------------------------------- the loop


def _train_from(first_step, settings, model, step_fn, corpus_data, history, rng,
                seconds_before, out_dir, progress) -> dict | None:
    """Steps `first_step` .. settings.steps - 1, evaluating every eval_every steps (a line of
    metrics.jsonl each) and saving a checkpoint every save_every steps and after the last; then
    the metrics (and their files). Under torchrun every process steps; rank 0 alone shows
    progress, evaluates, saves and returns the metrics (the others return None)."""
    from tqdm.auto import tqdm

    world = distributed.current()
    tokenizer = corpus_data.tokenizer
    floor = corpus_data.floor if settings.objective == "clm" else None  # see the module docstring
    # what a step reads: sentence pairs (seq2seq), or tokens
    unit, per_step = (("sentences", settings.batch_size) if settings.objective == "seq2seq"
                      else ("tokens", settings.batch_size * settings.seq_len))
    log = MetricsLog(out_dir, settings.tensorboard and world.is_main, echo=progress,
                     resume_step=first_step)
    started = time.perf_counter()
    bar = tqdm(range(first_step, settings.steps), initial=first_step, total=settings.steps,
               disable=not progress or not world.is_main, desc=f"train {settings.objective}",
               unit="step",
               dynamic_ncols=True)
    for step in bar:
        lr = lr_schedule(step, settings.lr, settings.steps, settings.warmup_steps,
                         settings.lr_decay, settings.min_lr)
        inputs, targets = training_batch(corpus_data.train_ids, settings, tokenizer, rng)
        loss = check_finite_loss(step_fn(inputs, targets, lr), step + 1)
        history["step"].append(step)
        history["train_loss"].append(loss)
        done = step + 1
        elapsed = time.perf_counter() - started
        throughput = (done - first_step) * per_step / elapsed
        evaluating = due(done, settings.eval_every, settings.steps)
        saving = due(done, settings.save_every, settings.steps)
        if evaluating and world.is_main:  # meanwhile the other processes wait at the barrier
            previous = history["val_step"][-1] if history["val_step"] else 0
            # a model the step's update made diverge: one line (below), not NumPy's warnings
            with np.errstate(over="ignore", invalid="ignore"):
                val_loss = evaluate(model, validation_batches(corpus_data.val_ids, settings,
                                                              tokenizer))
            check_finite_loss(val_loss, done, "validation loss")  # before it is logged or saved
            history["val_step"].append(done)
            history["val_loss"].append(val_loss)
            record = evaluation_record(history, previous, floor, lr,
                                       {f"{unit}_per_second": throughput,
                                        "seconds": seconds_before + elapsed})
            log.write(record, describe_evaluation(record, settings))
        if saving:
            save_run_checkpoint(world, out_dir, model, step_fn, done, settings.steps, {
                "history": history, "data_generator": rng.bit_generator.state,
                "seconds": seconds_before + time.perf_counter() - started})
        if evaluating or saving:
            distributed.barrier(world)
        bar.set_postfix(loss=f"{loss:.3f}",
                        val=f"{history['val_loss'][-1]:.3f}" if history["val_loss"] else "-",
                        **{f"{unit[:3]}_s": f"{throughput:.0f}"})
    log.close()
    wall = seconds_before + time.perf_counter() - started
    if not world.is_main:
        return None

    val_loss = history["val_loss"][-1]
    units = loss_units(val_loss)
    metrics = {
        "objective": settings.objective,
        "backend": settings.backend,
        "val_loss": val_loss,
        "val_bits": units["bits"],
        "val_perplexity": units["perplexity"],
        "entropy_floor": floor,
        "unit": f"nats per {TOKEN_OF_OBJECTIVE[settings.objective]}",
        "token": TOKEN_OF_OBJECTIVE[settings.objective],
        "steps": settings.steps,
        "world_size": world.size,  # processes (torchrun), each computing per_rank_batch rows
        "per_rank_batch": settings.batch_size // world.size,
        "wall_seconds": wall,
        f"{unit}_per_second": settings.steps * per_step / wall,
        "num_parameters": int(model.num_parameters()),
        "settings": asdict(settings),
        "history": history,
    }
    if settings.objective == "seq2seq":  # greedy translations of the held-out sentences
        metrics["translation"] = translation.heldout_scores(model, tokenizer, corpus_data.val_ids)
    if out_dir is not None:
        write_json(out_dir / METRICS_FILE, metrics)
        plot_loss_curve(history, floor, out_dir / LOSS_CURVE_FILE, settings.objective)
    return metrics


def evaluation_record(history, previous: int, floor, lr: float, speed: dict) -> dict:
    """One line of metrics.jsonl: the step, the mean training loss since the `previous`
    evaluation, the validation loss in nats, bits and perplexity (and over the floor, when there
    is one), the learning rate, and `speed` (throughput, seconds so far)."""
    step, val_loss = history["val_step"][-1], history["val_loss"][-1]
    units = loss_units(val_loss)
    record = {"step": step, "train_loss": float(np.mean(history["train_loss"][previous:step])),
              "val_loss": val_loss, "val_bits": units["bits"],
              "val_perplexity": units["perplexity"]}
    if floor is not None:
        record["val_loss_over_floor"] = val_loss / floor
    return {**record, "lr": lr, **speed}


def describe_evaluation(record: dict, settings: TrainSettings) -> str:
    """The readable line of an evaluation record, e.g. "step 10/20: train loss 3.3135, val loss
    3.1873 nats/character = 4.598 bits/character, perplexity 24.22 (7.754 x the entropy floor);
    82503 tokens/s"."""
    token = TOKEN_OF_OBJECTIVE[settings.objective]
    line = (f"step {record['step']}/{settings.steps}: train loss {record['train_loss']:.4f}, "
            f"val loss {record['val_loss']:.4f} nats/{token} = {record['val_bits']:.3f} "
            f"bits/{token}, perplexity {perplexity_text(record['val_loss'])}")
    if "val_loss_over_floor" in record:
        line += f" ({record['val_loss_over_floor']:.3f} x the entropy floor)"
    unit = next(key for key in record if key.endswith("_per_second"))
    return line + f"; {record[unit]:.0f} {unit.removesuffix('_per_second')}/s"
