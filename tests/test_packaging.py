"""minilm as a user gets it: the sdist built from this checkout, installed (not editable) into a
fresh virtual environment, then imported, run and tested there.

The fixture builds the sdist with setuptools from a copy of the checkout (without its build
leftovers), unpacks it, creates a virtual environment without pip and runs `pip install --no-deps
--no-build-isolation` on the unpacked sdist: a wheel is built from it and installed. The new environment sees this one's site-packages through a .pth line, so
torch, numpy, pytest, setuptools and pip are not installed again (`venv --system-site-packages`
would show the base interpreter's packages, not this environment's); its own minilm comes first
on sys.path. Checked there:

- `minilm.kernels` imports, no top-level `kernels` is installed, py.typed and LICENSE ship, the
  version is minilm.__version__, Triton is required on Linux only;
- every package directory of the checkout is installed (pyproject.toml lists them by hand);
- `minilm --help` (the console script) and every command's --help exit 0;
- the sdist's own tests run against the installed package: they need conftest.py, helpers.py and
  minilm.testing, and the kernel under the Triton interpreter; it carries the benchmark results its
  lessons read, and no hypothesis caches;

and, in this environment: without Triton, `import minilm.kernels` still works, calling the kernel
says what is missing, and the twin runs its attention with SDPA; without PyTorch (`pip install
minilm`), `--backend torch` says in one line what to install.
"""

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# fast tests of the sdist's own suite that together use conftest.py (its hypothesis profile, the
# Triton interpreter), helpers.py, minilm.testing and the kernel (the twin's heads on "triton")
SDIST_TESTS = ["tests/test_heads.py::test_torch_heads_with_triton_kernel_match_numpy[sequence]",
               "tests/test_bpe.py::test_ids_equal_hf_and_decode_inverts_encode"]


def run(command, **kwargs):
    """Run a command; on failure, the assertion shows its output."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class Installed:
    def __init__(self, work: Path, sdist_root: Path, python: Path):
        self.work, self.sdist_root, self.python = work, sdist_root, python

    def python_json(self, code: str, **kwargs):
        """Run `code` in the new environment, outside any source tree; it prints one JSON value."""
        return json.loads(run([str(self.python), "-c", code], cwd=self.work, **kwargs))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("packaging")
    # built from a copy without the checkout's build leftovers: setuptools adds every file an old
    # minilm.egg-info/SOURCES.txt lists, which would hide a file MANIFEST.in forgets
    source = work / "checkout"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "build", "dist", "runs", "__pycache__", ".hypothesis",
        ".pytest_cache", ".ruff_cache"))
    build_sdist = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    sdist = run([sys.executable, "-c", build_sdist, str(work)], cwd=source)
    sdist = work / sdist.strip().splitlines()[-1]
    shutil.unpack_archive(sdist, work, filter="data")
    sdist_root = work / sdist.name.removesuffix(".tar.gz")

    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site_packages = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site_packages.strip()) / "parent_environment.pth").write_text("\n".join(sorted(ours)))
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--ignore-installed", "--no-index", "--no-cache-dir", "--no-warn-script-location",
         str(sdist_root)], cwd=work)
    return Installed(work, sdist_root, python)


def test_minilm_kernels_installs_inside_the_package(installed):
    found = installed.python_json("""if True:
        import importlib.metadata, importlib.util, json, minilm, minilm.kernels
        dist = importlib.metadata.distribution("minilm")
        print(json.dumps({
            "files": [str(f) for f in dist.files],
            "minilm": minilm.__file__, "kernels": minilm.kernels.__file__,
            "kernel_is_callable": callable(minilm.kernels.flash_attention),
            "top_level_kernels": importlib.util.find_spec("kernels") is not None,
            "version": dist.version, "__version__": minilm.__version__,
            "license": dist.metadata["License-Expression"],
            "requires": dist.metadata.get_all("Requires-Dist"),
        }))""")
    site_packages = Path(found["minilm"]).parents[1]
    assert site_packages.is_relative_to(installed.work / "venv")  # not the checkout's minilm
    assert Path(found["kernels"]) == site_packages / "minilm" / "kernels" / "__init__.py"
    assert found["kernel_is_callable"] and not found["top_level_kernels"]
    top_level = {name.split("/")[0] for name in found["files"]
                 if not name.startswith("..") and ".dist-info" not in name}
    assert top_level == {"minilm"}, "only the minilm package is installed, no top-level kernels"
    assert "minilm/py.typed" in found["files"]
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in found["files"])
    assert found["license"] == "MIT"
    assert found["version"] == found["__version__"]
    triton = [line for line in found["requires"] if line.startswith("triton")]
    assert len(triton) == 1 and 'sys_platform == "linux"' in triton[0], triton


def test_every_package_directory_is_installed(installed):
    """pyproject.toml lists the packages by hand (kernels/ is mapped into minilm): a package
    directory added to the checkout must be added there too."""
    files = installed.python_json(
        "import importlib.metadata, json; "
        "print(json.dumps([str(f) for f in importlib.metadata.distribution('minilm').files]))"
    )
    installed_packages = {str(Path(name).parent) for name in files if name.endswith(".py")}
    checkout = {str(path.parent.relative_to(REPO)) for path in (REPO / "minilm").rglob("*.py")
                if "__pycache__" not in path.parts}
    checkout |= {"minilm/kernels"}
    missing = sorted(checkout - installed_packages)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_every_command_help_runs(installed):
    console_script = installed.python.parent / "minilm"
    assert "usage: minilm" in run([str(console_script), "--help"], cwd=installed.work)
    helps = installed.python_json("""if True:
        import argparse, contextlib, io, json
        from minilm.cli import build_parser, main

        def commands(parser, path=()):
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, subparser in action.choices.items():
                        yield (*path, name)
                        yield from commands(subparser, (*path, name))

        helps = {}
        for path in commands(build_parser()):
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
                main([*path, "--help"])
            helps[" ".join(path)] = out.getvalue()
        print(json.dumps(helps))""")
    assert {"train", "generate", "tokenizer", "tokenizer train", "finetune"} <= set(helps)
    for command, text in helps.items():
        assert text.startswith(f"usage: minilm {command}"), (command, text)


def test_the_sdist_carries_what_its_lessons_read_and_no_caches(installed):
    """The lessons (which the sdist's suite executes) read committed benchmark results by relative
    path, `../benchmarks/results/...`: each must be in the sdist. Hypothesis' example databases,
    left in tests/ and lessons/ by a run, must not."""
    root = installed.sdist_root
    read = {match for notebook in (root / "lessons").glob("*.ipynb")
            for match in re.findall(r"\.\./(benchmarks/results/[\w./]+)", notebook.read_text())}
    assert len(read) >= 5, read  # kv_cache, finetune, translation (+ model), compression
    missing = sorted(path for path in read if not (root / path).exists())
    assert not missing, f"the sdist lacks {missing}: MANIFEST.in"
    assert not [path for path in root.rglob(".hypothesis")], "prune .hypothesis in MANIFEST.in"


def test_the_sdists_tests_run(installed):
    """Against the installed package: `-I` keeps the sdist's own minilm/ (where kernels/ is not
    yet minilm.kernels) off sys.path."""
    out = run([str(installed.python), "-I", "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *SDIST_TESTS], cwd=installed.sdist_root)
    assert " passed" in out and "failed" not in out


def test_without_torch_the_torch_backend_is_refused_in_one_line(tmp_path):
    """`pip install minilm` has no torch: every command's --backend torch says what to install
    (exit status 2), and the NumPy reference still runs."""
    out = run([sys.executable, "-c", """if True:
        import sys
        sys.modules["torch"] = None  # as if it were not installed
        sys.stderr = sys.stdout  # the error lines, in order
        from minilm.cli import main
        for argv in (["train", "--backend", "torch", "--steps", "2", "--preset", "tiny"],
                     ["finetune", "--backend", "torch", "--max-steps", "1"],
                     ["embed", "--backend", "torch", "a cat"]):
            print("status", main(argv))
        print("status", main(["train", "--steps", "2", "--preset", "tiny", "--eval-every", "2",
                              "--eval-tokens", "500", "--seq-len", "16", "--out", "run"]))
    """], cwd=tmp_path)
    statuses = [line.split()[1] for line in out.splitlines() if line.startswith("status")]
    assert statuses == ["2", "2", "2", "0"], out
    assert out.count("needs PyTorch, which is not installed: pip install 'minilm[torch]'") == 3


def test_without_triton_the_kernel_package_imports_and_the_twin_uses_sdpa():
    """As on macOS or Windows, where Triton has no wheels: `import triton` fails."""
    out = run([sys.executable, "-c", """if True:
        import sys
        sys.modules["triton"] = None  # `import triton` now raises ModuleNotFoundError
        import minilm.kernels
        try:
            minilm.kernels.flash_attention(None, None, None)
        except ModuleNotFoundError as error:
            print(error)
        from minilm import ModelConfig
        from minilm.torch import Decoder
        print(Decoder(ModelConfig.preset("tiny")).attention)
    """], cwd=REPO)
    message, attention = out.strip().splitlines()
    assert "needs triton, which is not installed" in message
    assert attention == "sdpa"
