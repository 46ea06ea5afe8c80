"""The command line explains itself and never fails a valid request (minilm/cli.py, commands.py).

- Walking the whole parser: every command has a description with an example, every flag a help
  text and a shown default (or says it is required); `--version`.
- Defaults: no default makes a valid request fail (`train --steps 20`, a low `--lr`, a text
  shorter than the default window; a model with fewer positions than the default `--max-length`
  is in test_finetune.py); a missing file is reported before any setting is checked.
- What a run reports: bits per character and perplexity beside nats; the ratio to the entropy
  floor only where the floor bounds the loss (clm on the built-in corpus, not mlm); a line of
  metrics.jsonl per evaluation, printed too; TensorBoard only when its package is there (and a
  clear error before training when it is not).
- `--device` and `--dtype`: refused where they cannot apply, a device the machine lacks named;
  bfloat16 autocast in the twin's step with float32 weights.
- `generate --prompt-file`, `--top-p`.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import pytest
import torch

import minilm
from minilm import ModelConfig, commands
from minilm.checkpoint import METRICS_LOG_FILE, TENSORBOARD_DIR
from minilm.cli import build_parser, main
from minilm.commands import settings_from
from minilm.common.backends import on_backend
from minilm.corpus import corpus_entropy_rate
from minilm.finetune import FinetuneSettings
from minilm.metrics_log import read_metrics_log
from minilm.numpy import Decoder
from minilm.steps import make_step
from minilm.torch.functional import training_device_and_attention
from minilm.train import TrainSettings, train

TINY_RUN = ["--preset", "tiny", "--batch-size", "4", "--seq-len", "16", "--eval-tokens", "200"]


# ---------------------------------------------------------------- the parser explains itself


def leaf_commands(parser, path=()):
    """(command path, parser) of every command that runs something, subcommands included."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, subparser in group.choices.items():
            yield from leaf_commands(subparser, (*path, name))


def test_every_flag_of_every_command_has_help_and_a_shown_default():
    """Each command: a description with an example of it; each of its flags: a help text, which
    `--help` shows with the default (or the help says what the default is, or that the flag is
    required); each positional argument: a help text. A default is shown as its value, never as
    "None" (a help text says in words what no value means); a help text that mentions "default"
    otherwise hides the value argparse would show."""
    commands = list(leaf_commands(build_parser()))
    assert {" ".join(path) for path, _ in commands} >= {
        "train", "generate", "demo", "embed", "finetune", "predict", "tokenizer train"}
    for path, parser in commands:
        name = " ".join(path)
        assert f"minilm {name}" in (parser.description or "").split("example")[-1], name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = f"minilm {name} {action.option_strings or action.dest}"
            assert action.help and action.help.strip(), f"{flag} has no help text"
            shown = formatter._expand_help(action)
            assert "default: None" not in shown, f"{flag}: {shown!r}"
            if action.option_strings:
                assert "default" in shown or "required" in shown, f"{flag}: {shown!r}"
            if action.default not in (None, False) and not action.required:
                assert f"default: {action.default}" in shown, f"{flag}: {shown!r}"


@pytest.mark.parametrize("argv, hint", [
    (["train", "--out", "runs/x"], ("; `minilm train --resume runs/x` continues it from its "
                                    "last checkpoint (if it reached one)")),
    (["finetune", "--resume", "runs/y"], "; `minilm finetune --resume runs/y` continues it"),
    (["compute", "gpt2"], ""),
])
def test_ctrl_c_is_one_line_with_how_to_resume(argv, hint, monkeypatch, capsys):
    """Ctrl-C printed a KeyboardInterrupt traceback, exited 1 or by SIGINT depending on the
    backend, and did not say that --resume continues the run."""
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, f"command_{argv[0]}", interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err.startswith(f"minilm {argv[0]}: interrupted{hint}")


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["--version"])
    assert exit_status.value.code == 0
    assert capsys.readouterr().out == f"minilm {minilm.__version__}\n"


# ---------------------------------------------------------------- defaults and bad input


@pytest.mark.parametrize("argv", [
    ["--steps", "20"], ["--steps", "1"], ["--steps", "3", "--eval-every", "1000"],
    ["--lr", "1e-5"], ["--objective", "mlm", "--steps", "7"], ["--backend", "torch"],
])
def test_no_default_makes_a_valid_train_request_fail(argv):
    """Settings from the flags given and the defaults of all others are valid (the warmup and
    the final learning rate follow --steps and --lr)."""
    settings = settings_from(build_parser().parse_args(["train", *argv]), TrainSettings)
    assert 0 <= settings.warmup_steps <= settings.steps
    assert 0 <= settings.min_lr <= settings.lr


@pytest.mark.parametrize("steps, summary", [("20", "20 steps in"), ("1", "1 step in")])
def test_train_steps_20_runs_with_the_defaults(steps, summary, tmp_path, capsys):
    """The request of the issue, end to end: only --steps (and a small preset to keep it fast)."""
    assert main(["train", "--steps", steps, "--preset", "tiny", "--out", str(tmp_path)]) == 0
    assert summary in capsys.readouterr().out


def test_demo_runs_its_own_recipe_shortened(tmp_path, monkeypatch, capsys):
    """`minilm demo` with DEMO_SETTINGS (valid as they stand), cut to 4 steps: it trains the demo
    preset, prints its ratio to the entropy floor, then three sampled stories."""
    assert TrainSettings(**commands.DEMO_SETTINGS).steps == commands.DEMO_SETTINGS["steps"]
    monkeypatch.setattr(commands, "DEMO_SETTINGS", dict(commands.DEMO_SETTINGS, steps=4,
                                                        warmup_steps=1, eval_every=2))
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "entropy floor 0.4111 (ratio" in out and "4 steps in" in out
    assert out.count("\n---\n") == 2  # a rule between the three sampled stories
    assert ModelConfig.from_dict(json.loads((tmp_path / "config.json").read_text())["minilm"]
                                 ["config"]).d_model == ModelConfig.preset("demo").d_model


def test_a_short_text_trains_with_the_default_seq_len(tmp_path):
    """71 characters (a training split of 64): the default window is as long as the text allows,
    not 128 tokens that it does not have."""
    text = tmp_path / "short.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log. the end of it all here.")
    assert main(["train", "--text", str(text), "--steps", "2", "--preset", "tiny",
                 "--out", str(tmp_path / "run")]) == 0
    settings = json.loads((tmp_path / "run" / "metrics.json").read_text())["settings"]
    assert settings["seq_len"] == 63


@pytest.mark.parametrize("argv, flag", [
    (["train", "--text", "{missing}", "--steps", "20", "--warmup-steps", "50"], "--text"),
    (["finetune", "--task", "{missing}", "--epochs", "0"], "--task"),
    (["finetune", "--test", "{missing}", "--epochs", "0"], "--test"),
    (["generate", "--checkpoint", "nowhere", "--prompt-file", "{missing}"], "--prompt-file"),
    (["predict", "--checkpoint", "nowhere", "--file", "{missing}"], "--file"),
])
def test_a_missing_file_is_reported_before_any_setting(argv, flag, tmp_path, capsys):
    """The file a flag names is checked first: the error names it, not the bad setting beside it
    (--warmup-steps 50 > --steps 20, --epochs 0) or the missing checkpoint."""
    missing = str(tmp_path / "missing.txt")
    assert main([a.format(missing=missing) for a in argv]) == 2
    error = capsys.readouterr().err
    assert f"{flag} {missing!r}: no such file" in error and "Traceback" not in error
    assert "warmup" not in error and "epochs" not in error


# ---------------------------------------------------------------- what a run reports


def test_clm_reports_bits_perplexity_and_its_floor_mlm_no_floor(tmp_path, capsys):
    """On the built-in corpus: clm prints nats, bits = nats / ln 2 and perplexity = e^nats per
    character, and the ratio to the entropy floor; mlm the same units per masked character and no
    floor (metrics.json: entropy_floor None), since the CLM entropy rate does not bound it."""
    common = ["--steps", "2", "--eval-every", "2", *TINY_RUN]
    assert main(["train", "--objective", "clm", *common, "--out", str(tmp_path / "clm")]) == 0
    clm_out = capsys.readouterr().out
    assert main(["train", "--objective", "mlm", *common, "--out", str(tmp_path / "mlm")]) == 0
    mlm_out = capsys.readouterr().out
    clm, mlm = (json.loads((tmp_path / name / "metrics.json").read_text())
                for name in ("clm", "mlm"))
    assert clm["entropy_floor"] == pytest.approx(corpus_entropy_rate())
    assert mlm["entropy_floor"] is None
    for metrics in (clm, mlm):
        assert metrics["val_bits"] == pytest.approx(metrics["val_loss"] / math.log(2))
        assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]))
    summary = [line for line in clm_out.splitlines() if line.startswith("validation loss")]
    assert summary == [(
        f"validation loss {clm['val_loss']:.4f} nats/character = {clm['val_bits']:.4f} "
        f"bits/character, perplexity {clm['val_perplexity']:.3f}; entropy floor "
        f"{clm['entropy_floor']:.4f} (ratio {clm['val_loss'] / clm['entropy_floor']:.3f})")]
    assert "bits/masked character" in mlm_out and "perplexity" in mlm_out
    assert "floor" not in mlm_out and "ratio" not in mlm_out


def test_each_evaluation_is_a_printed_line_of_metrics_jsonl(text_file, tmp_path, capsys):
    """Evaluations at steps 2, 4, 6: three JSON lines with the step, the losses (the validation
    loss the history holds; the training loss averaged since the previous evaluation, not since
    step 0), bits, perplexity, learning rate and speed, each also printed."""
    out = tmp_path / "run"
    assert main(["train", "--text", str(text_file), "--steps", "6", "--eval-every", "2",
                 *TINY_RUN, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    records = read_metrics_log(out / METRICS_LOG_FILE)
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [r["step"] for r in records] == history["val_step"] == [2, 4, 6]
    assert [r["val_loss"] for r in records] == history["val_loss"]
    for record, previous in zip(records, [0, 2, 4]):
        assert record["train_loss"] == pytest.approx(
            np.mean(history["train_loss"][previous:record["step"]]), rel=1e-12)
    for record in records:
        assert {"val_bits", "val_perplexity", "lr", "tokens_per_second", "seconds"} <= set(record)
        assert "val_loss_over_floor" not in record  # a user's text: no floor
        assert (f"step {record['step']}/6: train loss {record['train_loss']:.4f}, val loss "
                f"{record['val_loss']:.4f} nats/character") in printed


def test_tensorboard_without_its_package_is_an_error_before_training(text_file, tmp_path,
                                                                     monkeypatch, capsys):
    """tensorboard is not a dependency: asking for it without the package says what to install,
    before any file is written; without --tensorboard nothing asks for it."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    out = tmp_path / "run"
    argv = ["train", "--text", str(text_file), "--steps", "2", *TINY_RUN, "--out", str(out)]
    assert main([*argv, "--tensorboard"]) == 2
    error = capsys.readouterr().err
    assert "--tensorboard needs torch and the tensorboard package" in error
    assert "pip install tensorboard" in error and not out.exists()
    with pytest.raises(ValueError, match="tensorboard package"):
        minilm.finetune.finetune(FinetuneSettings(tensorboard=True), tmp_path / "ft",
                                 progress=False)
    assert main(argv) == 0 and not (out / TENSORBOARD_DIR).exists()


def test_tensorboard_receives_every_evaluation(text_file, tmp_path):
    """With the package installed: the event file holds val_loss at each evaluation's step."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = TrainSettings(steps=4, batch_size=4, seq_len=16, eval_every=2, eval_tokens=200,
                             tensorboard=True)
    metrics = train(settings, ModelConfig.preset("tiny"), text_file, tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / TENSORBOARD_DIR))
    events.Reload()
    scalars = events.Scalars("val_loss")
    assert [s.step for s in scalars] == [2, 4]
    np.testing.assert_allclose([s.value for s in scalars], metrics["history"]["val_loss"],
                               rtol=1e-6)


# ---------------------------------------------------------------- device and dtype


@pytest.mark.parametrize("overrides, message", [
    ({"device": "cuda"}, "device 'cuda' is for backend 'torch'"),
    ({"dtype": "bfloat16"}, "dtype 'bfloat16' is for backend 'torch'"),
    ({"backend": "torch", "device": "tpu"}, "device must be one of"),
    ({"backend": "torch", "dtype": "float16"}, "dtype must be one of"),
])
def test_device_and_dtype_are_refused_where_they_cannot_apply(overrides, message):
    for settings_class in (TrainSettings, FinetuneSettings):
        with pytest.raises(ValueError, match=message):
            settings_class(**overrides)


def test_the_training_device_is_chosen_in_one_place():
    """auto: a CUDA GPU when there is one, else the CPU with SDPA; a device the machine lacks is
    an error naming it (checked where torch says so)."""
    expected = ("cuda", None) if torch.cuda.is_available() else ("cpu", "sdpa")
    assert training_device_and_attention("auto") == expected
    assert training_device_and_attention("cpu") == ("cpu", "sdpa")
    for device, there in (("cuda", torch.cuda.is_available()),
                          ("mps", torch.backends.mps.is_available())):
        if not there:
            with pytest.raises(ValueError, match=f"device '{device}': torch sees no such device"):
                training_device_and_attention(device)
            with pytest.raises(ValueError, match=f"device '{device}'"):
                on_backend(Decoder(ModelConfig.preset("tiny")), "torch", device=device)


def test_bfloat16_steps_run_the_matmuls_in_bfloat16_and_keep_float32_weights():
    """`--dtype bfloat16`: inside the twin's step the linear layers compute in bfloat16
    (autocast), the weights and AdamW's moments stay float32, and the loss is the float32 step's
    to bfloat16's precision (8 bits of mantissa: ~1%)."""
    config = ModelConfig.preset("tiny", vocab_size=20)
    ids = np.random.default_rng(0).integers(0, 20, (4, 9))
    losses = {}
    for dtype in ("float32", "bfloat16"):
        model = on_backend(Decoder(config, seed=0), "torch", device="cpu")
        seen = []
        hook = model.get_submodule("transformer.h.0.mlp.c_fc").register_forward_hook(
            lambda module, inputs, output, seen=seen: seen.append(output.dtype))
        step = make_step(model, 0.1, dtype=dtype)
        losses[dtype] = step((ids[:, :-1],), ids[:, 1:], 1e-3)
        hook.remove()
        assert seen == [torch.bfloat16 if dtype == "bfloat16" else torch.float32]
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(v.dtype == np.float32 for k, v in step.state_dict().items()
                   if not k.startswith("step."))
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=2e-2)
    with pytest.raises(ValueError, match="NumPy has no bfloat16"):
        make_step(Decoder(config), 0.1, dtype="bfloat16")


def test_train_with_the_twin_in_bfloat16_on_the_cpu(text_file, tmp_path, capsys):
    assert main(["train", "--text", str(text_file), "--backend", "torch", "--device", "cpu",
                 "--dtype", "bfloat16", "--steps", "4", "--eval-every", "4", *TINY_RUN,
                 "--out", str(tmp_path)]) == 0
    settings = json.loads((tmp_path / "metrics.json").read_text())["settings"]
    assert (settings["device"], settings["dtype"]) == ("cpu", "bfloat16")
    assert "validation loss" in capsys.readouterr().out


# ---------------------------------------------------------------- generate


def test_a_pipe_is_named_as_such_and_never_opened(tmp_path, capsys):
    """A FIFO as --prompt-file was 'no such file' (it exists); as --output, the writability trial
    opened it, which blocks until a reader comes (a reader then got an empty file and minilm
    hung at the real write)."""
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt-file", str(fifo)]) == 2
    assert f"--prompt-file {str(fifo)!r} is not a regular file" in capsys.readouterr().err
    assert main(["embed", "a cat", "--output", str(fifo)]) == 2
    assert f"--output {str(fifo)!r} is not a regular file" in capsys.readouterr().err


def test_a_file_of_texts_is_split_at_line_feeds_only(tmp_path, capsys):
    """str.splitlines also split at U+2028, form feeds and NEL, which pasted web and PDF text holds
    inside a line: a 3-line file gave 6 texts (and 6 rows of embeddings)."""
    texts = tmp_path / "texts.txt"
    texts.write_text("good\u2028food\nbad\x0cfood\r\nnice\x85day\n", encoding="utf-8")
    output = tmp_path / "e.npy"
    assert main(["embed", "--file", str(texts), "--output", str(output)]) == 0
    assert np.load(output).shape == (3, 384)


def test_generate_reads_its_prompt_from_a_file_and_samples_the_nucleus(text_file, tmp_path,
                                                                       capsys):
    run = tmp_path / "run"
    assert main(["train", "--text", str(text_file), "--steps", "2", *TINY_RUN, "--out",
                 str(run)]) == 0
    prompt = tmp_path / "prompt.txt"
    # the line break an editor adds is not the prompt's, a Windows editor's "\r\n" neither
    prompt.write_bytes(b"the dog sat on the \r\n")
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--prompt-file", str(prompt),
                 "--max-new-tokens", "5", "--samples", "2", "--top-p", "0.9"]) == 0
    samples = [s.strip("\n") for s in capsys.readouterr().out.split("---") if s.strip()]
    assert len(samples) == 2
    assert all(s.startswith("the dog sat on the ") for s in samples)
    assert main(["generate", "--checkpoint", str(run), "--prompt", "the \u00e9"]) == 2
    assert (f"--prompt: text contains characters outside the vocabulary: '\u00e9' (U+00E9), the "
            f"characters of the text {str(run)!r} was trained on") in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(run), "--prompt", "the", "--top-p", "1.5"]) == 2
    assert "top_p must be a finite number in (0, 1], got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --prompt and --prompt-file exclude each other
        main(["generate", "--checkpoint", str(run), "--prompt", "a", "--prompt-file",
              str(prompt)])


# ---------------------------------------------------------------- bad input, said in one line


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, text_file):
    """Files a user may hand over by mistake, and a CLM run to prompt."""
    where = tmp_path_factory.mktemp("bad_inputs")
    (where / "bad.txt").write_bytes(b"\xff\xfethe cat\n")  # UTF-16's byte-order mark
    (where / "newline.txt").write_text("\n")
    (where / "syntax.py").write_text("import numpy as np\ndef softmax_forward(x:\n")
    (where / "imports.py").write_text('"""mine"""\n\nimport no_such_module_of_minilm\n')
    (where / "ok.py").write_text("def softmax_forward(x, axis=-1):\n    raise NotImplementedError\n")
    (where / "folder").mkdir()
    (where / "folder.npy").mkdir()
    assert main(["train", "--text", str(text_file), "--steps", "1", *TINY_RUN, "--out",
                 str(where / "clm")]) == 0
    assert main(["train", "--objective", "seq2seq", "--preset", "tiny", "--steps", "1",
                 "--batch-size", "2", "--eval-tokens", "100", "--out", str(where / "s2s")]) == 0
    return {"dir": str(where / "folder"), "text": str(text_file), "clm": str(where / "clm"),
            "s2s": str(where / "s2s"),
            "npy_dir": str(where / "folder.npy"),
            **{path.stem: str(path) for path in where.glob("*.*") if path.is_file()}}


@pytest.mark.parametrize("argv, message", [
    (["attention", "the food", "--dpi", "0"],
     "--dpi must be in [1, 600] (dots per inch of the picture), got 0"),
    (["attention", "the food", "--dpi", "100000"], "--dpi must be in [1, 600]"),
    (["attention", "the food", "--out", "/proc/minilm.png"],
     "--out '/proc/minilm.png' cannot be written: "),
    (["embed", "a cat", "--output", "/proc/minilm.npy"],
     "--output '/proc/minilm.npy' cannot be written: "),
    (["embed", "a cat", "--output", "{npy_dir}"],
     "--output '{npy_dir}' is an existing directory; expected a file"),
    (["tokenizer", "train", "{text}", "--out", "{text}"],
     "--out '{text}' is an existing file; expected a directory"),
    (["tokenizer", "train", "{text}", "--out", "/proc/minilm"],
     "--out '/proc/minilm' cannot be written: "),
    (["tokenizer", "train", "{text}", "--out", ""], "--out must not be empty; expected a directory"),
    (["check", "{ok}", "--max-examples", "0"], "--max-examples must be an int >= 1, got 0"),
    (["check", "{syntax}"], "{syntax} cannot be imported: line 2: SyntaxError: "),
    (["check", "{imports}"],
     "{imports} cannot be imported: line 3: ModuleNotFoundError: No module named 'no_such_"),
    (["embed", "--file", "{bad}"], "{bad} is not UTF-8 text (bad byte at offset 0)"),
    (["predict", "--checkpoint", "nowhere", "--file", "{bad}"],
     "{bad} is not UTF-8 text (bad byte at offset 0)"),
    (["embed", "--file", "{dir}"], "--file '{dir}' is a directory, not a file"),
    (["embed", "a cat", " "], "TEXT 2 is empty: give sentences to embed"),  # it embedded ""
    (["predict", "--checkpoint", "nowhere", "--file", "{dir}"],
     "--file '{dir}' is a directory, not a file"),
    (["train", "--text", "{dir}"], "--text '{dir}' is a directory, not a file"),
    (["finetune", "--task", "{dir}"], "--task '{dir}' is a directory, not a file"),
    (["generate", "--checkpoint", "{clm}", "--prompt-file", "{dir}"],
     "--prompt-file '{dir}' is a directory, not a file"),
    (["generate", "--checkpoint", "{clm}", "--prompt-file", "{newline}"],
     "--prompt-file '{newline}' holds no prompt (only a final line break)"),
    (["generate", "--checkpoint", "{clm}", "--prompt", "a", "--seed", "-1"],
     "--seed must be an int >= 0, got -1"),
    # the settings' own checks, in the flags' names (they said save_every, warmup_steps=...)
    (["train", "--save-every", "0"], "--save-every must be an int >= 1, got 0"),
    (["train", "--steps", "2", "--warmup-steps", "5"],
     "--warmup-steps must be in [0, --steps=2], got 5"),
    (["finetune", "--unfreeze-every", "0"], "--unfreeze-every must be >= 1, got 0"),
])
def test_bad_command_lines_say_what_is_wrong_in_one_line(bad_inputs, argv, message, capsys):
    """Each is refused with exit status 2 and one line naming the flag or file and what was
    expected, before any model is loaded or run (nothing is printed): no traceback, no errno
    without the flag, no 'no such file' for a directory, no '--prompt' for --prompt-file."""
    assert main([a.format(**bad_inputs) for a in argv]) == 2
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert message.format(**bad_inputs) in error and "\n" not in error
    assert captured.out == ""


@pytest.mark.parametrize("argv, message", [
    (["generate", "--checkpoint", "{s2s}", "--prompt", "a"],
     "--checkpoint '{s2s}' holds a run of kind 'seq2seq'; generation needs a decoder"),
    (["translate", "--checkpoint", "{clm}", "the cat sings."],
     "--checkpoint '{clm}' holds a run of kind 'decoder'; translation needs a run of"),
    (["attention", "the cat", "--model", "{s2s}"],
     "--model '{s2s}' holds a run of kind 'seq2seq'; attention maps are drawn for a BERT"),
    (["embed", "a cat", "--model", "{s2s}"],
     "--model '{s2s}' is a Seq2Seq; a sentence embedding needs an Encoder"),
    (["embed", "a cat", "--model", "{clm}"],
     "--model '{clm}' is a Decoder; a sentence embedding needs an Encoder"),
])
def test_a_run_of_the_wrong_kind_is_named_with_what_the_command_needs(bad_inputs, argv, message,
                                                                       capsys):
    """Every command that reads a model says which kind of run it was given and which it needs:
    `embed` of a translation run failed with a TypeError inside Seq2Seq.encode, and of a GPT run
    with "no vocab.txt"."""
    assert main([a.format(**bad_inputs) for a in argv]) == 2
    error = capsys.readouterr().err.strip()
    assert message.format(**bad_inputs) in error and "\n" not in error


def test_trying_whether_an_output_can_be_written_leaves_no_trace(bad_inputs, tmp_path, capsys):
    """--out is tried before the tokenizer trains (creating the directories, then removing them):
    a refusal that comes after it (--vocab-size too small) leaves nothing behind."""
    out = tmp_path / "new" / "bpe"
    assert main(["tokenizer", "train", bad_inputs["text"], "--out", str(out),
                 "--vocab-size", "10"]) == 2
    assert "vocab_size must be" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["tokenizer", "train", bad_inputs["text"], "--out", str(out),
                 "--vocab-size", "260"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["merges.txt", "vocab.json"]


def test_settings_of_the_wrong_type_and_running_out_of_memory_are_one_line(tmp_path, capsys,
                                                                           monkeypatch):
    """A count given as a string is named (it failed in a comparison: "'<' not supported"); a
    NumPy array too large for the machine (say --seq-len 100000) ends in one line saying what to
    lower, exit status 2, not a MemoryError traceback; --file with only blank lines says so."""
    from minilm import commands
    from minilm.train import TrainSettings

    with pytest.raises(ValueError, match="steps must be an int >= 1, got '10'"):
        TrainSettings(steps="10")

    def too_large(args):
        raise MemoryError("Unable to allocate 298. GiB")

    monkeypatch.setattr(commands, "command_train", too_large)
    assert main(["train", "--steps", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("minilm train: error: out of memory") and "--seq-len" in error
    assert "\n" not in error
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert main(["embed", "--file", str(blank)]) == 2
    assert f"--file '{blank}' holds no text (only blank lines)" in capsys.readouterr().err
