"""Every lesson notebook in lessons/ runs top to bottom without a cell error.

The notebooks carry their own assertions (each checks its math against the library or against
finite differences), so executing them is the test. One test per notebook, found by glob, so a new
lesson is picked up without editing this file.

The kernel: a private "python3" kernelspec is written into a temporary directory with
`ipykernel.kernelspec.write_kernel_spec`, whose command is *this* interpreter (`sys.executable`),
and only that directory is searched. So the lessons run in the same environment as the tests, on a
fresh machine where only the virtual environment exists, and whatever other "python3" kernelspecs
(user-level, system-wide, another Python) the machine may have installed are never picked up.
"""

import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
NOTEBOOKS = sorted(path.name for path in LESSONS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory):
    """A kernelspec manager that knows one kernel, "python3", launched with sys.executable."""
    kernels_dir = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels_dir / "python3")
    return KernelSpecManager(kernel_dirs=[str(kernels_dir)], ensure_native_kernel=False)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_lesson_runs(notebook, kernel_spec_manager, tmp_path, monkeypatch):
    """The notebook executes in lessons/ with a non-interactive matplotlib backend; any cell error
    (a failed assertion included) fails the test with the cell's traceback."""
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits this environment
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # leave ~/.ipython alone
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=kernel_spec_manager)
    assert km.kernel_spec.argv[0] == sys.executable, km.kernel_spec.argv

    nb = nbformat.read(LESSONS_DIR / notebook, as_version=4)
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(LESSONS_DIR)}},  # the kernel's working directory
    )
    client.execute()
