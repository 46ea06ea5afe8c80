"""The pre-training loop, checkpoints and the command line, end to end on tiny models."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from minilm import ModelConfig
from minilm.checkpoint import load_run, read_run, save_run
from minilm.cli import main
from minilm.common.backends import to_numpy
from minilm.numpy import Decoder
from minilm.numpy.optim import DECAY_KINDS, lr_schedule
from minilm.tokenizers import CharTokenizer
from minilm.train import TrainSettings, describe_evaluation, perplexity_text, train

TINY = ModelConfig(max_len=32, d_model=32, n_heads=2, n_layers=1, d_ff=64)


def tiny_settings(**overrides):
    base = dict(steps=40, batch_size=8, seq_len=32, lr=3e-3, min_lr=3e-4, eval_every=20,
                eval_tokens=2000, seed=0)
    settings = {**base, **overrides}
    return TrainSettings(**{"warmup_steps": min(5, settings["steps"]), **settings})


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "abc.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log. " * 200)
    return path


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_a_short_run_lowers_the_validation_loss(objective, backend, text_file, tmp_path):
    """A short run on a repetitive text: the validation loss falls far below ln(vocab size), the
    loss of the near-uniform predictions at initialisation, and keeps falling between evaluations;
    the run directory holds a loadable checkpoint, metrics and the loss-curve plot. (MLM learns
    from 15% of the tokens, and a post-LN encoder sits on a plateau first: it gets more steps.)"""
    steps = 80 if objective == "clm" else 800
    settings = tiny_settings(objective=objective, backend=backend, steps=steps, batch_size=16,
                             eval_every=steps // 4)
    metrics = train(settings, TINY, text_file, tmp_path, progress=False)
    first, last = metrics["history"]["val_loss"][0], metrics["val_loss"]
    uniform = np.log(CharTokenizer.from_text(text_file.read_text()).vocab_size)
    assert np.isfinite(last) and last < first - 0.3 and last < uniform - 0.6
    assert metrics["entropy_floor"] is None  # a user's file has no known floor
    assert {p.name for p in tmp_path.iterdir()} >= {
        "model.safetensors", "config.json", "metrics.json", "loss_curve.png"
    }
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val_loss"] == pytest.approx(last)
    run = read_run(tmp_path)
    assert run.kind == ("decoder" if objective == "clm" else "encoder")
    assert run.config.vocab_size == run.tokenizer.vocab_size


def test_the_built_in_corpus_reports_its_entropy_floor(tmp_path):
    """Without --text, training uses the built-in corpus and reports its exact entropy rate."""
    from minilm.corpus import corpus_entropy_rate

    metrics = train(tiny_settings(steps=2, eval_every=2), TINY, None, tmp_path, progress=False)
    assert metrics["entropy_floor"] == pytest.approx(corpus_entropy_rate())
    assert 0.3 < metrics["entropy_floor"] < metrics["val_loss"]


@pytest.mark.parametrize("lr_decay", DECAY_KINDS)
def test_the_loop_follows_the_chosen_decay(lr_decay, tmp_path):
    """Each line of metrics.jsonl records the learning rate of its step: lr_schedule's, with the
    chosen decay (cosine by default, linear, constant), warmup and min_lr."""
    settings = tiny_settings(steps=12, eval_every=3, eval_tokens=200, warmup_steps=2,
                             lr_decay=lr_decay)
    train(settings, TINY, None, tmp_path, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [3, 6, 9, 12]
    expected = [lr_schedule(step - 1, settings.lr, 12, 2, lr_decay, settings.min_lr)
                for step in (3, 6, 9, 12)]
    assert [line["lr"] for line in lines] == pytest.approx(expected, rel=1e-12)
    if lr_decay != "constant":
        assert lines[-1]["lr"] < lines[0]["lr"]


def test_command_line_trains_then_generates(text_file, tmp_path, capsys):
    """`minilm train` then `minilm generate` on its checkpoint, through the real entry point."""
    run = tmp_path / "run"
    assert main(["train", "--objective", "clm", "--text", str(text_file), "--preset", "tiny",
                 "--steps", "6", "--warmup-steps", "2", "--batch-size", "4", "--seq-len", "16", "--eval-every", "3",
                 "--eval-tokens", "200", "--out", str(run)]) == 0
    assert "validation loss" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(run), "--prompt", "the ", "--max-new-tokens",
                 "20", "--samples", "2", "--top-k", "5"]) == 0
    samples = capsys.readouterr().out[:-1].split("\n---\n")  # a rule between samples, none after
    assert len(samples) == 2 and all(s.startswith("the") and "---" not in s for s in samples)


def test_python_dash_m_minilm_runs():
    """The package's own entry point, as a learner types it."""
    result = subprocess.run([sys.executable, "-m", "minilm", "--help"], capture_output=True,
                            text=True, check=True)
    assert all(word in result.stdout for word in ("train", "generate", "demo", "embed", "finetune"))


def test_generate_needs_a_decoder_checkpoint(text_file, tmp_path, capsys):
    """An MLM (encoder) checkpoint cannot generate: a clear error, exit status 2."""
    train(tiny_settings(objective="mlm", steps=2, eval_every=2), TINY, text_file, tmp_path,
          progress=False)
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "the"]) == 2
    assert "needs a decoder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.write_text("{}"), "is a file, not a run directory"),
        (lambda d: d.mkdir(), "lacks"),
        (lambda d: (d.mkdir(), (d / "model.safetensors").write_bytes(b"")), "config.json"),
        (lambda d: (d.mkdir(), (d / "model.safetensors").write_bytes(b""),
                    (d / "config.json").write_text("{}")), "not a minilm run config"),
    ],
    ids=["missing", "a file", "empty", "no-config", "bad-config"],
)
def test_bad_checkpoint_directories_are_named_in_the_error(setup, message, tmp_path):
    directory = tmp_path / "ckpt"
    setup(directory)
    with pytest.raises(ValueError, match=message):
        read_run(directory)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_run_directory_round_trip_is_exact(backend, tmp_path):
    """safetensors keeps every parameter bit for bit, and the kind, config, tokenizer and metadata
    come back; the model rebuilt from the directory is the one saved, on either backend."""
    tokenizer = CharTokenizer("abc ")
    config = ModelConfig.from_dict({**TINY.to_dict(), "vocab_size": tokenizer.vocab_size})
    model = Decoder(config, seed=3)
    save_run(tmp_path, model, tokenizer, note="x")
    run = read_run(tmp_path)
    assert run.kind == "decoder" and run.config == config and run.metadata == {"note": "x"}
    assert run.tokenizer.itos == tokenizer.itos
    assert all(np.array_equal(run.params[k], v) for k, v in model.params.items())
    loaded, _ = load_run(tmp_path, backend=backend)
    assert type(loaded).__name__ == "Decoder" and not loaded.training
    ids = np.array([[1, 2, 3]])
    np.testing.assert_allclose(to_numpy(loaded.forward(ids)), model.forward(ids), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize(
    "overrides, argument",
    [({"objective": "nsp"}, "objective"), ({"backend": "jax"}, "backend"),
     ({"steps": 0}, "steps"), ({"seq_len": 1}, "seq_len"),
     ({"steps": 4, "warmup_steps": 10}, "warmup_steps"), ({"adam_beta2": 1.0}, "adam_beta2"),
     ({"lr_decay": "step"}, "lr_decay")],
)
def test_bad_settings_name_the_argument(overrides, argument):
    with pytest.raises(ValueError, match=argument):
        tiny_settings(**overrides)


def test_command_line_reports_bad_input_without_a_traceback(tmp_path, capsys):
    """A missing text file is a one-line error and exit status 2, not a traceback."""
    assert main(["train", "--text", str(tmp_path / "missing.txt"), "--steps", "1",
                 "--warmup-steps", "0"]) == 2
    assert "missing.txt" in capsys.readouterr().err


# ---------------------------------------------------------------- a text too short for the run


@pytest.mark.parametrize("text, flags, message", [
    ("hello world\n", [],  # the default seq_len (10) fits training; validation is 1 character
     ("has 12 characters, 1 in its validation split (the last 10%), and validation needs 2 (a "
      "character and the one after it); give a longer text")),
    ("hello world\n", ["--seq-len", "30"],  # the advice --seq-len 10 would fail validation next
     ("has 12 characters, 1 in its validation split (the last 10%), and validation needs 2 (a "
      "character and the one after it); give a longer text")),
    ("hello world, again!\n", ["--seq-len", "30"],  # validation fits: a shorter window works
     ("has 20 characters, 18 in its training split (the first 90%): fewer than the 31 that one "
      "window of seq_len=30 needs; give --seq-len 17 or less, or a longer text")),
    ("hello", [],  # split_train_val's error named val_fraction, which is no flag
     "has 5 characters: too few to keep the last 10% for validation; give a longer text"),
    ("hello world, here we go again\n", ["--objective", "mlm"],  # 3 validation characters
     ("has 30 characters, 3 in its validation split (the last 10%), and validation needs enough "
      "that its masking selects one to score; give a longer text")),
])
def test_a_text_too_short_for_the_run_is_refused_before_the_first_step(text, flags, message,
                                                                      tmp_path, capsys,
                                                                      monkeypatch):
    """Said when the run is set up, with the text's size, what one window or one validation
    score needs and what to change, instead of after a step (clm: "the stream has 1 tokens")
    or at the first evaluation (mlm: a ZeroDivisionError)."""
    import minilm.train

    def no_model(*args):
        raise AssertionError("a model was built")

    monkeypatch.setattr(minilm.train, "initial_model", no_model)
    path = tmp_path / "t.txt"
    path.write_text(text)
    assert main(["train", "--text", str(path), "--preset", "tiny", "--steps", "4",
                 "--eval-every", "2", "--out", str(tmp_path / "run"), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"minilm train: error: --text {str(path)!r} {message}"


def test_the_default_seq_len_trains_every_text_whose_splits_can_hold_a_window(tmp_path):
    """The default window is as long as the training split allows, so the one text a clm run
    refuses is one whose validation split (the last 10%, rounded) is under 2 characters: texts of
    6 to 14 characters; from 15 on, every length trains with the default seq_len. (Under 6, no
    character is left for validation: refused before the split.)"""
    for n_chars in range(6, 25):
        path = tmp_path / f"{n_chars}.txt"
        path.write_text("abcdefghijklmnopqrstuvwxyz"[:n_chars])
        settings = TrainSettings(steps=1, batch_size=2, eval_every=1, warmup_steps=0)
        if n_chars < 15:
            with pytest.raises(ValueError, match="validation needs 2"):
                train(settings, TINY, path, progress=False)
        else:
            metrics = train(settings, TINY, path, progress=False)
            assert metrics["settings"]["seq_len"] == n_chars - round(n_chars / 10) - 1


@pytest.mark.parametrize("nats, text", [
    (3.1873, "24.22"), (math.log(999_999), "999999.00"),  # below a million: two decimals
    (math.log(1e6), "1.00e+06"), (533.2968, "4.05e+231"),
    (800.0, "2.73e+347"),  # past the largest float, e^709.78
    (math.log(9.9999e10), "1.00e+11"),  # a mantissa that rounds up to 10 carries into the power
])
def test_perplexity_text_writes_any_finite_loss(nats, text):
    assert perplexity_text(nats) == text


def test_a_validation_loss_past_709_nats_is_reported_not_an_overflow(tmp_path):
    """`--lr 30` sends the validation loss past 709 nats while the training loss stays finite:
    e^nats overflowed (OverflowError at the first evaluation). The perplexity is now None in the
    records (JSON null, not Infinity) and written in e-notation in the printed line."""
    settings = tiny_settings(lr=30.0, min_lr=0.0, steps=3, eval_every=3, eval_tokens=200,
                             batch_size=2, seq_len=16)
    metrics = train(settings, TINY, None, tmp_path, progress=False)
    assert math.isfinite(metrics["val_loss"]) and metrics["val_loss"] > 710
    assert metrics["val_perplexity"] is None
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_perplexity"] is None
    line = describe_evaluation(record, settings)
    assert f"perplexity {perplexity_text(record['val_loss'])} (" in line and "e+" in line
