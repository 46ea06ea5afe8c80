"""A run being trained: its directory prepared and started, its checkpoint written, and the
checkpoint read back, checked and restored for `--resume` (`minilm.train`, `minilm.finetune`).
The directory's format, and a finished model's files, are `minilm.checkpoint`'s.

Both loops go through the same life, written once here; each keeps only its data, its metrics and
its summary:

    start   prepare_run (TensorBoard, torchrun's processes, --out checked), the model built,
            distributed.seed_dropout, start_run on rank 0, the training step
    resume  read_checkpoint, the run's own settings, check_history, resume_run (the processes
            joined, the model and its generators restored), the training step, restore_optimizer
    step    evaluate when `due` (rank 0), save_run_checkpoint when `due` (every process gives its
            generators, rank 0 writes), then every process waits for the others (a barrier)

A training loop writes the directory in two steps. When the run starts (`start_run`): config.json
and the tokenizer, which never change. At every checkpoint (`save_checkpoint`, every `save_every`
steps and at the end): `model.safetensors`, then `training_state.safetensors`. The training state
holds the whole checkpoint in one file: the weights (`model.<name>`), the optimizer's state
(`optimizer.<slot>.<name>`, see `minilm.steps`) and, in its JSON header, the step, the states of
the generators (`minilm.common.backends.rng_state`) and the loop's own progress (its data
generator, the loss history so far). One file, so that one rename commits a checkpoint, and it is
written last; the weights alone go into model.safetensors first, for everything that reads a run
(`minilm generate`, `load_run`), the price of a commit that is a single rename. Reading the
training state back (`read_training_state`) checks that it is what a save writes: finite arrays (a
save refuses NaN), optimizer moments of their weights' shapes, generator states and a progress of
the form the loops read; so `--resume` of a damaged file stops at once with an error naming it,
not steps later. Every file is written atomically (`minilm.files.write_atomic`): killed before the
training state's rename, the directory holds the previous checkpoint (and model.safetensors may
hold the new weights already); killed after it, the new one. A run killed after its last
checkpoint but before its end (the final metrics.json) is resumed to that end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from minilm import distributed
from minilm.checkpoint import (
    CONFIG_FILE,
    CURVES_FILE,
    LOSS_CURVE_FILE,
    METRICS_FILE,
    METRICS_LOG_FILE,
    MINILM_BLOCK,
    TENSORBOARD_DIR,
    TRAINING_STATE_FILE,
    WEIGHTS_FILE,
    Run,
    build_model,
    contiguous,
    describe_run,
    read_run,
    remove_temporaries,
    weights_file,
)
from minilm.common.backends import numpy_params, rng_state, set_rng_state
from minilm.common.checks import check_finite, number_in
from minilm.files import check_writable, listing, write_atomic
from minilm.metrics_log import check_tensorboard
from minilm.numpy.optim import AdamW
from minilm.steps import TrainingDiverged
from minilm.tokenizers import TOKENIZER_FILES

# kind -> the command whose runs train a model of that kind (and `--resume` them)
COMMAND_OF_KIND = {"decoder": "train", "encoder": "train", "seq2seq": "train",
                   "sequence_classifier": "finetune"}
# the NumPy generator a loop keeps in its checkpoint's progress for the order of its data:
# minilm train's, minilm finetune's (`restored_generator`)
DATA_GENERATORS = ("data_generator", "order_generator")


class TrainingState(NamedTuple):
    """A checkpoint, as read (and checked) by `read_training_state`."""

    step: int  # steps completed: the next one to run
    total_steps: int
    params: dict[str, np.ndarray]  # the model's weights at `step`
    optimizer: dict[str, np.ndarray]  # the training step's `state_dict()`
    generators: dict  # `rng_state(model)`: where the dropout masks continue from
    progress: dict  # the loop's own (data generator, loss history, ...), JSON


def prepare_run_directory(directory, reads: Path | None = None) -> Path:
    """Check, before anything is read or trained, that a new run can be written to `directory`
    (--out, `check_writable`): a new or empty directory, or a finished minilm run, which is
    replaced. Nothing is left created (`start_run` creates it), so a run refused before it starts,
    for its text or its model, leaves no empty directory behind. Refused: a directory holding
    anything else (a Hugging Face model, a tokenizer, your files: replacing them would lose them),
    the directory `reads` (--model, the model the run starts from), and a directory holding an
    unfinished run, which `--resume` would continue (starting afresh there would throw its
    checkpoint away)."""
    check_writable("--out", directory, directory=True)
    directory = Path(directory)
    if reads is not None and directory.resolve() == Path(reads).resolve():
        raise ValueError(f"--out {str(directory)!r} is the directory of --model, which the run "
                         "reads its weights from: give another --out")
    held = listing(directory)
    if held and not _is_minilm_run(directory):
        raise ValueError(f"--out {str(directory)!r} holds files that are not a minilm run "
                         f"({held}), which the run would replace: give a new or empty directory "
                         "(or a finished minilm run, which is replaced)")
    if (directory / TRAINING_STATE_FILE).is_file():
        try:
            step, total_steps = _read_header(directory / TRAINING_STATE_FILE)[:2]
        except ValueError:  # a damaged checkpoint cannot be resumed: nothing to protect
            return directory
        if step < total_steps:
            raise ValueError(
                f"--out {str(directory)!r} holds an unfinished run (checkpoint at step {step} of "
                f"{total_steps}): continue it with --resume {directory}, or give another --out "
                "(or delete it) to start afresh"
            )
    return directory


def _is_minilm_run(directory: Path) -> bool:
    """Whether `directory` holds a run minilm wrote: a config.json with minilm's block."""
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and MINILM_BLOCK in config


def start_run(directory, model, tokenizer, **metadata) -> Path:
    """Begin a run in a directory checked by `prepare_run_directory`, created here: the files of
    the finished run it replaces go first (so nothing of it can be mistaken for this one's: its
    plots, its tokenizer, which `load_tokenizer` could pick over this run's), then config.json and
    the tokenizer are written once for the whole run."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # what the permissions could not tell (a read-only file system)
        raise ValueError(f"--out {str(directory)!r} cannot be created: {error.strerror}") from None
    for name in (WEIGHTS_FILE, TRAINING_STATE_FILE, METRICS_FILE, METRICS_LOG_FILE,
                 LOSS_CURVE_FILE, CURVES_FILE, *TOKENIZER_FILES):
        (directory / name).unlink(missing_ok=True)
    for events in (directory / TENSORBOARD_DIR).glob("events.out.tfevents.*"):
        events.unlink()
    remove_temporaries(directory)
    return describe_run(directory, model, tokenizer, metadata)


def save_checkpoint(directory, model, step_fn, step: int, total_steps: int,
                    progress: dict) -> None:
    """Commit a checkpoint after `step` steps: the weights into model.safetensors, then the
    training state (weights, `step_fn`'s optimizer state, generator states, the loop's JSON
    `progress`) in one atomic write, the commit: a run killed between the two has the previous
    checkpoint and can be resumed (written the other way round, a run killed during its first save
    had a checkpoint but no model.safetensors, and could be neither resumed nor started again).
    Non-finite weights are never saved: the previous checkpoint stays."""
    params = numpy_params(model)
    for name, value in params.items():
        if not np.isfinite(value).all():
            raise TrainingDiverged(
                f"training diverged by step {step}: {name} holds NaN or inf, so this checkpoint "
                "is not saved and the previous one stays. Try a lower --lr"
            )
    arrays = {f"model.{name}": value for name, value in params.items()}
    arrays |= {f"optimizer.{key}": value for key, value in step_fn.state_dict().items()}
    header = {"step": step, "total_steps": total_steps, "generators": rng_state(model),
              "progress": progress}
    directory = Path(directory)
    write_atomic(directory / WEIGHTS_FILE, weights_file(model, params))
    write_atomic(directory / TRAINING_STATE_FILE,
                 save(contiguous(arrays), metadata={"minilm": json.dumps(header)}))


def unreadable_checkpoint(path, problem) -> ValueError:
    """The error of a damaged training-state file: its path, and what is wrong with it."""
    return ValueError(f"{path} is not a readable minilm checkpoint ({problem})")


def _read_header(path: Path) -> tuple[int, int, dict, dict[str, np.ndarray]]:
    """(step, total_steps, header, arrays) of a training-state file, or ValueError naming it."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = json.loads((f.metadata() or {})["minilm"])
            names = f.keys()  # a safe_open is not iterable
            arrays = {name: f.get_tensor(name) for name in names}
        if not isinstance(header, dict):
            raise TypeError(f"its header must be a JSON object, got {header!r:.80}")
        step, total_steps = header["step"], header["total_steps"]
        if not (isinstance(step, int) and isinstance(total_steps, int)
                and 0 <= step <= total_steps):
            raise TypeError(f"step {step!r} of {total_steps!r}")
    except (SafetensorError, json.JSONDecodeError, KeyError, TypeError) as error:
        problem = f"its header has no {error}" if isinstance(error, KeyError) else error
        raise unreadable_checkpoint(path, problem) from None
    return step, total_steps, header, arrays


def read_training_state(directory) -> TrainingState:
    """The checkpoint in a run directory, checked to be what `save_checkpoint` wrote (finite
    arrays, the optimizer's state by `AdamW.check_state`, `_check_header`), with an error that
    names the path if there is none or it is damaged. (The check reads every array once more:
    little beside loading them.)"""
    path = Path(directory) / TRAINING_STATE_FILE
    if not path.is_file():
        raise ValueError(
            f"{str(directory)!r} holds no checkpoint to resume ({TRAINING_STATE_FILE}): the run "
            "was stopped before its first save, or was not written by a training loop"
        )
    step, total_steps, header, arrays = _read_header(path)

    def part(prefix):
        return {name.removeprefix(prefix): value for name, value in arrays.items()
                if name.startswith(prefix)}

    state = TrainingState(step, total_steps, part("model."), part("optimizer."),
                          header.get("generators"), header.get("progress"))
    try:
        for name, value in state.params.items():  # save_checkpoint never writes NaN or inf
            check_finite(f"model.{name}", value)  # (the optimizer's arrays: check_state's)
        shapes = {name: value.shape for name, value in state.params.items()}
        AdamW.check_state(state.optimizer, shapes, "optimizer")  # the training step's AdamW
        _check_header(state)
    except ValueError as error:
        raise unreadable_checkpoint(path, error) from None
    return state


def _check_header(state: TrainingState) -> None:
    """What the loops read back from the header has the form they saved it in (ValueError naming
    the first entry that has not): the dropout generators (`rng_state`), and the progress (the
    loop's own, so each entry only if it is there): the training seconds so far, the history's
    lists of numbers, the generator of the data order and, under torchrun, every process's
    dropout generators."""
    _check_generators("generators", state.generators)
    progress = state.progress
    if not isinstance(progress, dict):
        raise ValueError(f"progress must be a JSON object, got {progress!r}")
    if "seconds" in progress:
        number_in("progress.seconds", progress["seconds"], "[0, inf)")
    history = progress.get("history", {})
    if not (isinstance(history, dict) and all(isinstance(v, list) for v in history.values())):
        raise ValueError(f"progress.history must be a JSON object of lists, got {history!r:.80}")
    for key, values in history.items():
        for i, value in enumerate(values):
            number_in(f"progress.history.{key}[{i}]", value, "(-inf, inf)")
    for key in DATA_GENERATORS:
        if key in progress:
            _check_numpy_generator(f"progress.{key}", progress[key])
    processes = progress.get("process_generators")
    if processes is not None:
        if not isinstance(processes, list):
            raise ValueError(f"progress.process_generators must be a list (one entry per process), "
                             f"got {processes!r:.80}")
        for rank, states in enumerate(processes):
            _check_generators(f"progress.process_generators[{rank}]", states)


def _check_generators(name: str, states) -> None:
    """`states` is what `rng_state` returns: {"numpy": a generator state}, or torch's
    {"torch": the CPU's state bytes} with "cuda": [a GPU's bytes, ...] where there were GPUs."""
    def is_bytes(value):
        return isinstance(value, list) and all(type(b) is int and 0 <= b < 256 for b in value)

    if isinstance(states, dict) and set(states) == {"numpy"}:
        _check_numpy_generator(f"{name}.numpy", states["numpy"])
    elif not (isinstance(states, dict) and set(states) in ({"torch"}, {"torch", "cuda"})
              and is_bytes(states["torch"]) and isinstance(states.get("cuda", []), list)
              and all(is_bytes(device) for device in states.get("cuda", []))):
        shown = sorted(states) if isinstance(states, dict) else repr(states)
        raise ValueError(f"{name} must be the state of NumPy's generator ({{'numpy': ...}}) or "
                         f"torch's ({{'torch': [bytes], ...}}), got {shown!s:.80}")


def _check_numpy_generator(name: str, state) -> None:
    """`state` is a NumPy generator's `bit_generator.state`: NumPy's own setter checks its form."""
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ValueError(f"{name} must be a NumPy PCG64 generator state, got "
                         f"{state!r:.80}") from None


def check_history(state: TrainingState, directory, fresh: dict, per_step: tuple[str, ...]) -> dict:
    """The loop's history in a checkpoint (numbers, by `_check_header`), if it has the lists of
    `fresh`, a new run's, and those named in `per_step` hold a number for each step done; else the
    checkpoint's error."""
    history = state.progress.get("history", {})
    if set(history) != set(fresh):
        raise unreadable_checkpoint(Path(directory) / TRAINING_STATE_FILE,
                                    f"progress.history has {sorted(history)}; expected "
                                    f"{sorted(fresh)}")
    for key in per_step:
        if len(history[key]) != state.step:
            raise unreadable_checkpoint(Path(directory) / TRAINING_STATE_FILE,
                                        f"progress.history.{key} has {len(history[key])} "
                                        f"entries for the {state.step} steps done")
    return history


def read_checkpoint(directory, command: str) -> tuple[Run, TrainingState]:
    """(the run, its last checkpoint) of a run of `minilm {command}` ("train" or "finetune") to
    resume; ValueError if it is a run of the other command, or there is nothing to resume: no
    checkpoint yet, or a run that ended (its last checkpoint and its metrics.json written; a run
    killed between the two is resumed to write its end). (The temporary files of a save killed
    half way are removed by `resume_run`, on rank 0 alone.)"""
    directory = Path(directory)
    if (directory / CONFIG_FILE).is_file() and not (directory / WEIGHTS_FILE).is_file():
        read_training_state(directory)  # a run stopped before its first save: its error says so
    run = read_run(directory)
    if COMMAND_OF_KIND[run.kind] != command:
        other = COMMAND_OF_KIND[run.kind]
        raise ValueError(f"{str(directory)!r} holds a run of `minilm {other}` (of kind "
                         f"{run.kind!r}), not of `minilm {command}`: continue it with `minilm "
                         f"{other} --resume`")
    check_writable("--resume", directory, directory=True)  # the run goes on writing there
    state = read_training_state(directory)
    if state.step == state.total_steps and (directory / METRICS_FILE).is_file():
        raise ValueError(f"nothing to resume: the run in {str(directory)!r} finished all its "
                         f"{state.total_steps} steps")
    return run, state


def restore_model(run: Run, state: TrainingState, backend: str, device: str = "auto"):
    """The model of a checkpoint, in train mode, on `backend` (and `device`): its weights, and its
    dropout generator where the checkpoint left it. (The optimizer's state goes into the loop's
    training step: `restore_optimizer`.) ValueError naming the checkpoint if they do not fit."""
    path = run.directory / TRAINING_STATE_FILE
    try:
        model = build_model(run._replace(params=state.params, directory=None), backend, device)
    except ValueError as error:
        raise unreadable_checkpoint(path, error) from None
    try:
        set_rng_state(model, state.generators)  # after build_model, whose on_backend reseeds torch
    except (ValueError, RuntimeError) as error:  # torch's RuntimeError: a state of another length
        raise unreadable_checkpoint(path, error) from None
    return model.train()


def restore_optimizer(step_fn, run: Run, state: TrainingState) -> None:
    """Put the checkpoint's optimizer state into the loop's training step (`minilm.steps`), or
    ValueError naming the checkpoint."""
    try:
        step_fn.load_state_dict(state.optimizer)
    except ValueError as error:
        raise unreadable_checkpoint(run.directory / TRAINING_STATE_FILE, error) from None


# ---------------------------------------------------------------- what every loop does around its steps


def prepare_run(settings, out_dir, reads=None) -> tuple[distributed.World, Path | None]:
    """What a training loop (`minilm.train`, `minilm.finetune`) does first, before it reads data
    or builds a model, so that a run refused for its flags stops at once: TensorBoard checked if
    `settings.tensorboard` asks for it, this process's place among those torchrun started
    (`distributed.join_run`), and the run directory `out_dir` (--out, or None for none) checked
    by `prepare_run_directory` (`reads`: the model directory the run starts from, if any).
    Returns (world, out_dir); out_dir is None on every process but rank 0, which alone writes
    the run directory."""
    if settings.tensorboard:
        check_tensorboard()
    world = distributed.join_run(settings)
    if not world.is_main:
        out_dir = None  # rank 0 alone writes the run directory
    if out_dir is not None:
        out_dir = prepare_run_directory(out_dir, reads)
    return world, out_dir


def resume_run(run: Run, state: TrainingState, settings) -> tuple[distributed.World, object,
                                                                    Path | None]:
    """`prepare_run` for a run continued from its checkpoint (`read_checkpoint`) with the
    settings it started with; then its model, with the checkpoint's weights and every process's
    dropout generator where it was (`restore_model`, `distributed.restore_generators`). Returns
    (world, model, out_dir): out_dir is the run's directory on rank 0, None on the others. (The
    loop then builds its training step and puts the optimizer's state into it:
    `restore_optimizer`.)"""
    world, _ = prepare_run(settings, None)  # no new directory: the run's own goes on
    if world.is_main:  # rank 0 alone writes there: another rank removing its temporary files
        remove_temporaries(run.directory)  # would break rank 0's next atomic write
    model = restore_model(run, state, settings.backend, settings.device)
    distributed.restore_generators(model, state.progress.get("process_generators"), world)
    return world, model, (run.directory if world.is_main else None)


def due(done: int, every: int, total_steps: int) -> bool:
    """Whether what a loop does every `every` steps (evaluate, save a checkpoint) is due after
    `done` steps of `total_steps`: at each multiple of `every`, and after the last step."""
    return done % every == 0 or done == total_steps


def save_run_checkpoint(world, out_dir, model, step_fn, step: int, total_steps: int,
                        progress: dict) -> None:
    """The checkpoint after `step` steps of a run in one process or several. Every process calls
    it at the same step: the states of their dropout generators are gathered
    (`distributed.generator_states`, a collective; None alone), and rank 0, the one process with
    an `out_dir`, saves them with the loop's `progress` (`save_checkpoint`)."""
    generators = distributed.generator_states(model, world)  # every process's dropout's
    if out_dir is not None:  # None on every process but rank 0
        save_checkpoint(out_dir, model, step_fn, step, total_steps,
                        {**progress, "process_generators": generators})
