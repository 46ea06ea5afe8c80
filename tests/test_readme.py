"""The README's examples work as written: its Python runs, the values its comments show are the
values returned, and every `minilm` command line it shows parses.

Each ```python block of README.md runs top to bottom in a fresh namespace, in an empty working
directory (a block that saves writes there). A line `expression  # value` whose comment starts
with a Python literal (`124439808`, `['then', 'Ġthe', ...]`) or `array([...])` must evaluate to
exactly that; other comments are prose. The one block that reads run directories made by the
README's earlier shell commands (`from_pretrained("runs/...")`) is transformers loading our run
directories, proven in test_hf_interop.py.
"""

import ast
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from minilm.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"),
                    re.MULTILINE | re.DOTALL)
RUNNABLE = [block for block in BLOCKS if 'from_pretrained("runs/' not in block]


def shown_value(comment: str):
    """The value a comment shows, or None when the comment is prose: the comment, or its part
    before a `;`, read as a Python literal, or as `array([...])` (a NumPy array as printed)."""
    shown = comment.split(";")[0].strip()
    if shown.startswith("array(") and shown.endswith(")"):
        shown = shown[len("array("):-1]
        wrap = np.array
    else:
        wrap = None
    try:
        value = ast.literal_eval(shown)
    except (ValueError, SyntaxError):
        return None
    return value if wrap is None else wrap(value)


def claims(block: str) -> list[tuple[str, object]]:
    """(expression, shown value) for every line of a block that is `expression  # literal`."""
    found = []
    for line in block.splitlines():
        code, _, comment = line.partition("  #")
        if not comment or code.strip().startswith("#"):
            continue
        try:
            statement = ast.parse(code.strip()).body
        except SyntaxError:  # the first line of a call continued on the next
            continue
        value = shown_value(comment)
        if len(statement) == 1 and isinstance(statement[0], ast.Expr) and value is not None:
            found.append((code.strip(), value))
    return found


def test_the_readme_has_examples_with_shown_values():
    """The parsing above finds what it is meant to (else the tests below would pass vacuously)."""
    assert len(RUNNABLE) >= 3
    shown = [claim for block in RUNNABLE for claim in claims(block)]
    assert ("parameter_count(config).total", 124439808) in shown
    assert len(shown) >= 4
    assert shown_value(" 6 N_mm + 12 L T C = 854438400 (training)") is None  # prose
    assert (shown_value(" array([392, 259, 13])") == [392, 259, 13]).all()


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_example_runs_and_shows_its_values(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 (the README's own code)
    for expression, value in claims(block):
        got = eval(expression, namespace)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value, err_msg=expression)
        else:
            assert got == value, f"README: {expression} shows {value!r}, returns {got!r}"


def readme_commands() -> list[list[str]]:
    """The arguments of every `minilm ...` line in the README's shell blocks (torchrun's too,
    after `-m minilm`), its comment dropped."""
    text = README.read_text(encoding="utf-8")
    lines = [line for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
             for line in block.splitlines()]
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:1] == ["minilm"]:
            commands.append(words[1:])
        elif words[:1] == ["torchrun"]:
            commands.append(words[words.index("minilm") + 1:])
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_every_command():
    assert {arguments[0] for arguments in COMMANDS} >= {
        "--version", "check", "train", "generate", "tokenizer", "translate", "embed", "finetune",
        "predict", "attention", "compute"}


@pytest.mark.parametrize("arguments", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_readme_command_parses(arguments):
    """Each command line the README shows names flags, choices and files that exist (running
    them is the business of each command's own tests)."""
    if arguments == ["--version"]:
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args(arguments)
        assert stop.value.code == 0
        return
    build_parser().parse_args(arguments)  # SystemExit(2), with argparse's message, if not
    for argument in arguments:
        if argument.startswith("lessons/"):
            assert (README.parent / argument).is_file(), argument
