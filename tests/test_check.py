"""`minilm check` itself: what it finds, how it reports, its exit status. (Whether its properties
accept right answers and reject wrong ones is tests/test_lessons.py and tests/test_functional.py.)
"""

import re
import textwrap
from pathlib import Path

import pytest

from minilm.check import check
from minilm.check.runner import is_stub
from minilm.cli import main

REPO = Path(__file__).resolve().parents[1]

GOOD_SOFTMAX = """
import numpy as np

def softmax_forward(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    return p, (p, axis)
"""


def write(tmp_path, source, name="mine.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_a_forward_without_its_backward_is_checked_alone(tmp_path):
    report = check(write(tmp_path, GOOD_SOFTMAX))
    assert report.ok and {r.exercise for r in report.results} == {"softmax_forward"}
    assert report.count("passed") == len(report.results) == 3


def test_a_failure_shows_what_broke_a_shrunk_counterexample_and_a_hint(tmp_path, capsys):
    path = write(tmp_path, GOOD_SOFTMAX.replace("x - x.max(axis=axis, keepdims=True)", "x"))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"stays finite at scores of \+-1e4 +FAILED", out)
    assert "what broke: probs at huge scores: error nan > 1e-10" in out
    assert "largest error" not in out  # the message gave it already
    assert "counterexample (shrunk):" in out
    assert "hint: exp(1e4) overflows" in out and "2 passed, 1 failed" in out


def test_stubs_are_not_attempted_and_their_dependants_blocked(tmp_path):
    stub = write(tmp_path, """
        def softmax_forward(x, axis=-1):
            '''Fill me in.'''
            raise NotImplementedError

        def softmax_backward(dprobs, cache):
            return dprobs
        """)
    report = check(stub)
    assert {r.status for r in report.results if r.exercise == "softmax_forward"} == {"not attempted"}
    assert {r.status for r in report.results if r.exercise == "softmax_backward"} == {"blocked"}
    assert report.ok and main(["check", str(stub)]) == 0


def test_is_stub_reads_only_a_raise_as_a_stub():
    def stub(x):
        """Docstring."""
        raise NotImplementedError("todo")

    def started(x):
        y = x + 1
        raise NotImplementedError(y)

    def other_error(x):
        raise ValueError

    assert is_stub(stub) and not is_stub(started) and not is_stub(other_error)


def test_a_function_that_raises_not_implemented_on_some_inputs_is_not_attempted(tmp_path):
    """A stub the source reader cannot recognise is still recognised when it runs."""
    path = write(tmp_path, """
        def softmax_forward(x, axis=-1):
            if x.ndim >= 0:
                raise NotImplementedError("later")
        """)
    assert {r.status for r in check(path).results} == {"not attempted"}


def test_a_notebook_namespace_checks_its_own_functions_not_the_librarys():
    from minilm.numpy.functional import softmax_backward, softmax_forward

    def cross_entropy_forward(logits, targets, ignore_index=-100):
        raise NotImplementedError

    namespace = {"softmax_forward": softmax_forward, "softmax_backward": softmax_backward,
                 "cross_entropy_forward": cross_entropy_forward, "__name__": "__main__"}
    cross_entropy_forward.__module__ = "__main__"  # as if defined in a notebook cell
    report = check(namespace)
    assert {r.exercise for r in report.results} == {"cross_entropy_forward"}


def test_crashes_and_wrong_return_types_are_failures_not_tracebacks(tmp_path):
    path = write(tmp_path, """
        def softmax_forward(x, axis=-1):
            return x[0, 0, 0]
        """)
    report = check(path)
    assert not report.ok
    messages = {r.message for r in report.failed()}
    assert any("raised IndexError" in m or "must return (out, cache)" in m for m in messages)


def test_a_file_with_nothing_to_check_is_a_clear_error(tmp_path, capsys):
    path = write(tmp_path, "def helper():\n    return 1\n")
    assert main(["check", str(path)]) == 2
    assert "defines no checkable function" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.py")]) == 2


def test_list_shows_every_lesson_and_signature(capsys):
    assert main(["check", "--list"]) == 0
    out = capsys.readouterr().out
    assert "lesson 00" in out and "softmax_forward(x, axis=-1) -> (probs, cache)" in out


@pytest.mark.parametrize("lesson, expected", [("00", {"softmax_forward"}), ("01", set())])
def test_lesson_restricts_the_check(tmp_path, lesson, expected):
    path = write(tmp_path, GOOD_SOFTMAX)
    if expected:
        assert {r.exercise for r in check(path, lesson=lesson).results} == expected
    else:
        with pytest.raises(ValueError, match="of lesson 01"):
            check(path, lesson=lesson)


def test_list_of_one_lesson_shows_that_lesson_only(capsys):
    assert main(["check", "--list", "--lesson", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lesson 03") and "clm_batch(" in out
    assert "lesson 00" not in out and "softmax_forward(" not in out


@pytest.mark.parametrize("lesson", ["12", "x", "003x"])
def test_an_unknown_lesson_is_refused_naming_the_lessons(tmp_path, capsys, lesson):
    assert main(["check", "--list", "--lesson", lesson]) == 2
    assert "lesson must be one of 00, 01," in capsys.readouterr().err
    with pytest.raises(ValueError, match="lesson must be one of 00"):
        check(write(tmp_path, GOOD_SOFTMAX), lesson=lesson)


def test_inputs_are_copied_so_a_function_that_writes_into_them_cannot_corrupt_the_case(tmp_path):
    path = write(tmp_path, GOOD_SOFTMAX.replace("    e = np.exp", "    x *= 0.0\n    e = np.exp"))
    report = check(path)
    assert not report.ok  # softmax of zeros is wrong, but the case itself was not changed
    assert "x = [" in report.failed()[0].counterexample


def test_a_failure_caused_by_another_wrong_function_names_it_to_fix_first(tmp_path, capsys):
    """The reference attention of lesson 01 with a top-left causal_mask: causal_mask fails its
    own properties; attention_forward's failures, which it calls by name, name it to fix first,
    and attention_backward's name the forward whose cache they need (the chain leads back); with
    the right causal_mask nothing does."""
    solution = (REPO / "lessons" / "solutions" / "01_self_attention.py").read_text()
    right = "return key <= query + (n_keys - n_queries)"
    assert right in solution
    report = check(write(tmp_path, solution.replace(right, "return key <= query")))
    failed = report.failed()
    assert {r.exercise for r in failed} >= {"causal_mask", "attention_forward"}
    assert all(r.fix_first == () for r in failed if r.exercise == "causal_mask")
    forward = [r for r in failed if r.exercise == "attention_forward"]
    assert forward and all(r.fix_first == ("causal_mask",) for r in forward)
    backward = [r for r in failed if r.exercise == "attention_backward"]  # through the forward
    assert all(r.fix_first == ("attention_forward",) for r in backward)
    assert main(["check", str(tmp_path / "mine.py")]) == 1
    assert "fix first: causal_mask, which this uses" in capsys.readouterr().out
    assert all(r.fix_first == () for r in check(write(tmp_path, solution, "right.py")).results)


def test_float32_rounding_is_named_as_such(tmp_path):
    """A right softmax computed in float32 misses the float64-grade checks by float32's rounding:
    the failure says it is the dtype, not the formula; a wrong formula does not get that note."""
    in_float32 = GOOD_SOFTMAX.replace("e = np.exp(x - x.max(axis=axis, keepdims=True))",
                                      "x = x.astype(np.float32)\n"
                                      "    e = np.exp(x - x.max(axis=axis, keepdims=True))")
    failed = check(write(tmp_path, in_float32)).failed()
    assert failed and all("the size of float32 rounding" in r.message for r in failed)
    wrong = GOOD_SOFTMAX.replace("p = e / e.sum(axis=axis, keepdims=True)", "p = e / e.max()")
    failed = check(write(tmp_path, wrong, "wrong.py")).failed()
    assert failed and not any("float32" in r.message for r in failed)
