"""Test-suite set-up: hypothesis profiles, the Triton interpreter on CPU-only machines, GPU skips.

Profiles: `ci` (default: 30 examples per property, derandomized so that a run is reproducible
and CI cannot fail on a new random draw) and `thorough` (300 fresh random examples per property;
select with `pytest --hypothesis-profile=thorough` or HYPOTHESIS_PROFILE=thorough).
"""

import os

import pytest
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


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
