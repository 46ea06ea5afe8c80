"""Execute lesson notebooks in place, so that they are committed with their outputs (numbers and
pictures read on GitHub without running anything), and report how long each took.

    python lessons/execute.py                           # every lesson (make lessons-execute)
    python lessons/execute.py lessons/03_gpt_clm.ipynb  # some of them

The kernel is this interpreter (the project's virtual environment), started in lessons/ with one
BLAS thread, as the test suite's nbval run starts it, so the stored outputs are what `make test`
compares against: a lesson whose code (or the library under it) changed without re-executing
fails there.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parent
CELL_TIMEOUT_S = 600


@contextmanager
def kernel_specs():
    """-> a KernelSpecManager whose only "python3" kernel is this interpreter (never another
    Python), for the duration; meanwhile the kernels it starts inherit one BLAS thread, as
    tests/conftest.py runs the lessons under nbval (same outputs), and matplotlib's default backend
    (the notebook's inline one, which stores the pictures)."""
    saved = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    try:
        with tempfile.TemporaryDirectory() as kernels:
            write_kernel_spec(Path(kernels) / "python3")
            yield KernelSpecManager(kernel_dirs=[kernels], ensure_native_kernel=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(path: Path, kernel_specs: KernelSpecManager) -> float:
    """Run every cell of the notebook at `path` (in its folder), store the outputs in it; returns
    the seconds."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # timestamps of an earlier run
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    client = NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(Path(path).parent)}},
                            record_timing=False)  # no timestamps: a re-run changes only outputs
    started = time.perf_counter()
    try:
        client.execute()
    finally:  # a kernel nbclient did not start itself, it leaves running
        if kernel.has_kernel:
            kernel.shutdown_kernel(now=True)
    seconds = time.perf_counter() - started
    nbformat.write(notebook, path)
    return seconds


def main(paths: list[str]) -> None:
    notebooks = [Path(p).resolve() for p in paths] or sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    with kernel_specs() as specs:
        for notebook in notebooks:
            seconds = execute(notebook, specs)
            print(f"{notebook.name:40s} {seconds:6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
