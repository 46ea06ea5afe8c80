"""The lessons' stored outputs are checked against what their code gives now: text by nbval, pictures
by lessons/conftest.py with `minilm.testing.pictures.stale_pictures` (nbval skips pictures).

- `stale_pictures` passes the same picture and one drawn from numbers 1e-6 away (another CPU's last
  bits), and rejects a word changed in a title, data moved by 0.01, another size and another
  number of pictures;
- end to end: a notebook executed as `lessons/execute.py` executes it passes under nbval with the
  lessons' conftest; the same notebook with one plotted number changed and its outputs kept (code
  edited, not re-executed) fails, naming the stale picture.
"""

import base64
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pytest

from minilm.testing.pictures import stale_pictures

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def drawn(title: str = "attention, causal", shift: float = 0.0, size=(10, 4.4),
          one_entry: float = 0.0) -> list[dict]:
    """A cell's outputs holding one picture like the lessons' (two annotated maps, each entry
    printed in it), as nbformat stores it; `one_entry` moves one entry of the first map alone."""
    second = np.random.default_rng(0).random((6, 6)) + shift
    first = second.copy()
    first[0, 0] += one_entry
    fig, axes = plt.subplots(1, 2, figsize=size, constrained_layout=True)
    for ax, probs in zip(axes, (first, second)):
        ax.imshow(probs, vmin=0.0, vmax=1.5)
        ax.set_title(title)
        for (i, j), weight in np.ndenumerate(probs):
            ax.text(j, i, f"{weight:.2f}", ha="center", va="center", fontsize=8)
    png = io.BytesIO()
    fig.savefig(png, format="png", bbox_inches="tight")  # as the notebook's inline backend does
    plt.close(fig)
    return [{"output_type": "display_data",
             "data": {"image/png": base64.b64encode(png.getvalue()).decode()}}]


STORED = drawn()


@pytest.mark.parametrize("outputs", [drawn(), drawn(shift=1e-6)], ids=["same", "last bits"])
def test_the_same_picture_is_not_stale(outputs):
    assert stale_pictures(STORED, outputs) == []


@pytest.mark.parametrize("outputs, message", [
    (drawn(title="attention, no mask"), "pixels differ from the stored one's"),
    (drawn(shift=0.01), "pixels differ from the stored one's"),
    (drawn(one_entry=0.05), "pixels differ from the stored one's"),
    (drawn(size=(8, 4.4)), "pixels, the stored one"),
    (drawn() + drawn(), "the cell draws 2 picture(s), the notebook stores 1"),
    ([], "the cell draws 0 picture(s), the notebook stores 1"),
], ids=["title", "data", "one printed number", "size", "one more", "none"])
def test_a_changed_picture_is_stale(outputs, message):
    (problem,) = stale_pictures(STORED, outputs)
    assert message in problem


def run_under_nbval(notebook: Path) -> subprocess.CompletedProcess:
    """pytest --nbval on `notebook`, alone in its folder with the lessons' conftest, its kernel
    drawing with the notebook's inline backend as the lessons' do."""
    environment = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "--nbval", "--nbval-current-env", "--rootdir", str(notebook.parent), str(notebook)],
        cwd=notebook.parent, env=environment, capture_output=True, text=True, timeout=300,
        check=False)


def test_a_lesson_whose_plot_changed_without_re_execution_fails(tmp_path):
    sys.path.insert(0, str(LESSONS))
    try:
        from execute import execute, kernel_specs
    finally:
        sys.path.remove(str(LESSONS))
    shutil.copyfile(LESSONS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's configuration
    notebook = tmp_path / "lesson.ipynb"
    code = "import matplotlib.pyplot as plt\nplt.plot([0, 1, 2], [0, 1, 4])\nplt.show()"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), notebook)
    with kernel_specs() as specs:
        execute(notebook, specs)
    fresh = run_under_nbval(notebook)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    stale = nbformat.read(notebook, as_version=4)
    stale.cells[0].source = code.replace("[0, 1, 4]", "[0, 1, 3]")  # edited, outputs kept
    nbformat.write(stale, notebook)
    result = run_under_nbval(notebook)
    assert result.returncode == 1 and "the stored picture is stale: picture 1:" in result.stdout, (
        result.stdout + result.stderr)
