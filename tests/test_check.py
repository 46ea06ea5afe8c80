"""`minilm check` itself: what it finds, how it reports, its exit status. (Whether its properties
accept right answers and reject wrong ones is tests/test_lessons.py and tests/test_functional.py.)
"""

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minilm.check import check, runner
from minilm.check.catalogue import PROPERTIES
from minilm.check.exercises.flash import MEMORY_N
from minilm.check.framework import Failure, assert_close
from minilm.check.runner import NONFINITE_HINT, is_stub
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


STUBS = """
def softmax_forward(x, axis=-1):
    '''Fill me in.'''
    raise NotImplementedError

def softmax_backward(dprobs, cache):
    raise NotImplementedError
"""


def test_stubs_are_not_attempted_and_their_dependants_blocked(tmp_path, capsys):
    """A file of stubs is ok (nothing attempted); a backward written while its forward is a stub
    is blocked everywhere: nothing of it was checked, so the report is not ok."""
    assert check(write(tmp_path, STUBS, "stubs.py")).ok
    stub = write(tmp_path, STUBS[:STUBS.rindex("raise")] + "return dprobs\n")
    report = check(stub)
    assert {r.status for r in report.results if r.exercise == "softmax_forward"} == {"not attempted"}
    assert {r.status for r in report.results if r.exercise == "softmax_backward"} == {"blocked"}
    assert not report.ok and report.unchecked() == ["softmax_backward"]
    assert main(["check", str(stub)]) == 1
    assert "not checked (every property blocked): softmax_backward" in capsys.readouterr().out


def test_a_stub_found_while_running_blocks_its_dependant():
    """A forward stub whose source cannot be read (made by exec, as some notebook tools do) is
    found only when it raises during a run: the backward that needs it is blocked ("needs
    softmax_forward"), not "not attempted" as if it were a stub too, so the report is not ok."""
    namespace = {}
    source = "def softmax_forward(x, axis=-1):\n    raise NotImplementedError\n"
    exec(source, namespace)  # noqa: S102 (a function with no source file)
    forward = namespace["softmax_forward"]
    assert is_stub(forward) is None  # no source: only the run can tell

    def softmax_backward(dprobs, cache):
        return dprobs  # never run: there is no forward to make its cache

    report = check([forward, softmax_backward])
    assert {r.status for r in report.results if r.exercise == forward.__name__} == {"not attempted"}
    backward = [r for r in report.results if r.exercise == "softmax_backward"]
    assert backward and {(r.status, r.message) for r in backward} == {
        ("blocked", "needs softmax_forward")}
    assert not report.ok and report.unchecked() == ["softmax_backward"]


BACKWARD_ALONE = "def layer_norm_backward(dout, cache):\n    return dout, None, None\n"
DEFINE_IT_TOO = ("needs layer_norm_forward: define it too; an imported layer_norm_forward is the "
                 "library's, not yours")


@pytest.mark.parametrize("imports", ["", "from minilm.numpy.functional import layer_norm_forward\n"])
def test_a_backward_without_its_forward_is_blocked_not_dropped(tmp_path, capsys, imports):
    """A backward alone cannot be checked (it needs its own forward's cache): each of its
    properties reads "blocked", never silently nothing, and the report is not ok (exit 1), also
    when the file imported the library's forward (the library's, not the learner's)."""
    path = write(tmp_path, imports + BACKWARD_ALONE)
    report = check(path)
    assert report.results and {r.status for r in report.results} == {"blocked"}
    assert {r.message for r in report.results} == {DEFINE_IT_TOO} and not report.ok
    assert main(["check", str(path)]) == 1
    assert f"({DEFINE_IT_TOO})" in capsys.readouterr().out


def test_a_backward_passed_without_its_forward_is_blocked():
    def layer_norm_backward(dout, cache):
        return dout, None, None

    report = check([layer_norm_backward])
    assert {r.message for r in report.results} == {"needs layer_norm_forward: pass it too"}
    assert report.results and not report.ok


def test_a_namespace_with_a_passing_function_and_an_unchecked_backward_is_not_ok():
    """A notebook that imported the library's layer_norm_forward and defined its own softmax and
    layer_norm_backward: the softmax passes, but the backward was not checked at all: not ok."""
    from minilm.numpy.functional import layer_norm_forward

    def softmax_forward(x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True), None

    def layer_norm_backward(dout, cache):
        return dout, None, None

    softmax_forward.__module__ = layer_norm_backward.__module__ = "__main__"  # notebook cells
    report = check({"layer_norm_forward": layer_norm_forward, "softmax_forward": softmax_forward,
                    "layer_norm_backward": layer_norm_backward, "__name__": "__main__"})
    assert report.count("passed") == 3 and report.count("blocked") > 0
    assert {r.message for r in report.results if r.status == "blocked"} == {DEFINE_IT_TOO}
    assert report.unchecked() == ["layer_norm_backward"] and not report.ok


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


def test_a_function_that_raises_not_implemented_on_some_inputs_fails(tmp_path):
    """Only a stub is "not attempted": a started function that raises NotImplementedError on some
    inputs fails there, its counterexample shown."""
    path = write(tmp_path, GOOD_SOFTMAX.replace("    e = np.exp", "    if x.ndim == 1:\n"
                                                "        raise NotImplementedError('later')\n"
                                                "    e = np.exp"))
    failed = check(path).failed()
    assert failed and all("raised NotImplementedError: later (not a stub" in r.message
                          for r in failed)


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


def test_a_function_that_writes_into_its_arguments_fails_and_the_case_stays_intact(tmp_path):
    path = write(tmp_path, GOOD_SOFTMAX.replace("    e = np.exp", "    x *= 0.0\n    e = np.exp"))
    failed = check(path).failed()
    assert failed and all("softmax_forward wrote into its argument x" in r.message
                          for r in failed)
    assert "x = [" in failed[0].counterexample and "x = [0., 0." not in failed[0].counterexample


def test_a_backward_may_write_into_its_own_cache(tmp_path):
    """The cache is the implementation's, made by its forward to be used once."""
    path = write(tmp_path, """
        import numpy as np

        def dropout_forward(x, p, rng=None, training=True):
            if not training or p == 0:
                return x, None
            keep = ((rng.random(x.shape) >= p) / (1 - p)).astype(x.dtype)
            return x * keep, keep

        def dropout_backward(dout, cache):
            if cache is None:
                return dout
            cache *= dout  # the gradient written into the cache
            return cache
        """)
    report = check(path)
    assert report.ok and report.count("passed") == len(report.results) > 2


@pytest.mark.parametrize("body, message", [
    ("return None", "softmax_forward must return (probs, cache), got NoneType"),
    ("return x, x, x", "softmax_forward must return (probs, cache), got tuple of length 3"),
])
def test_a_wrong_return_value_gets_the_same_message_from_every_property(tmp_path, body, message):
    report = check(write(tmp_path, f"def softmax_forward(x, axis=-1):\n    {body}\n"))
    assert report.failed() and {r.message for r in report.results} == {message}


@pytest.mark.parametrize("source, message", [
    ("def block_parameters(config):\n    return 12.0 * config.d_model ** 2\n",
     "block_parameters must return an int (a count), got"),
    ("import numpy as np\ndef bigram_cross_entropy(log_probs, ids):\n"
     + "    return -log_probs[ids[:-1], ids[1:]].mean(keepdims=True)\n",
     "bigram_cross_entropy must return one number (a float), got ndarray of shape (1,)"),
])
def test_an_int_or_float_promised_by_the_signature_is_held(tmp_path, source, message):
    failed = check(write(tmp_path, source)).failed()
    assert failed and all(message in r.message for r in failed)


def test_a_function_that_never_returns_fails_after_the_time_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "TIME_LIMIT", 0.2)
    path = write(tmp_path, "def softmax_forward(x, axis=-1):\n    while True:\n        pass\n")
    report = check(path, properties=PROPERTIES[:1])
    assert [r.message for r in report.results] == [
        "softmax_forward did not return within 0.2 s (an endless loop?)"]


def test_exit_in_a_function_fails_and_exit_at_import_is_a_clear_error(tmp_path, capsys):
    path = write(tmp_path, "def softmax_forward(x, axis=-1):\n    exit()\n")
    report = check(path)
    assert report.failed() and all("softmax_forward called exit()" in r.message
                                   for r in report.results)
    assert main(["check", str(path)]) == 1
    module_exit = write(tmp_path, "import sys\nsys.exit(3)\n", "exits.py")
    assert main(["check", str(module_exit)]) == 2
    assert "cannot be imported: line 2: SystemExit: 3" in capsys.readouterr().err


def test_a_file_imports_a_module_of_the_learners_beside_it(tmp_path):
    """As `python mine.py` would: the file's folder is on the import path while it is loaded and
    checked (and only then)."""
    (tmp_path / "helper_of_mine.py").write_text(
        "import numpy as np\n\ndef stable(x, axis):\n"
        "    e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
        "    return e / e.sum(axis=axis, keepdims=True)\n")
    path = write(tmp_path, "from helper_of_mine import stable\n\n"
                 "def softmax_forward(x, axis=-1):\n    probs = stable(x, axis)\n"
                 "    return probs, probs\n")
    report = check(path, properties=PROPERTIES[:1])
    assert [r.status for r in report.results] == ["passed"]
    # imported inside the function, when a property calls it
    inside = write(tmp_path, "def softmax_forward(x, axis=-1):\n"
                   "    from helper_of_mine import stable\n\n"
                   "    probs = stable(x, axis)\n    return probs, probs\n", "inside.py")
    sys.modules.pop("helper_of_mine")
    report = check(inside, properties=PROPERTIES[:1])
    assert [r.status for r in report.results] == ["passed"], report.table()
    assert str(tmp_path) not in sys.path


def test_a_directory_is_refused_with_one_line(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 2
    assert "is a directory; minilm check reads a .py file" in capsys.readouterr().err


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
    epsilon = GOOD_SOFTMAX.replace("e.sum(axis=axis, keepdims=True)",
                                   "(e.sum(axis=axis, keepdims=True) + 1e-8)")
    failed = check(write(tmp_path, epsilon, "epsilon.py")).failed()
    assert failed and not any("float32 rounding" in r.message for r in failed)
    assert any("an epsilon added" in r.message for r in failed)


def test_a_dropout_that_ignores_its_rng_fails_on_the_forward(tmp_path):
    """A forward drawing from a generator of its own passes its statistics, but fails "draws its
    mask from the rng it is given"; the backward's finite differences (which rerun the forward)
    then name the forward to fix first."""
    path = write(tmp_path, """
        import numpy as np

        def dropout_forward(x, p, rng=None, training=True):
            if not training or p == 0:
                return x, None
            rng = np.random.default_rng()  # not the rng it was given
            keep = ((rng.random(x.shape) >= p) / (1 - p)).astype(x.dtype)
            return x * keep, keep

        def dropout_backward(dout, cache):
            return dout if cache is None else dout * cache
        """)
    failed = {(r.exercise, r.property): r for r in check(path).failed()}
    rng = failed[("dropout_forward",
                  "draws its mask from the rng it is given (same seed, same mask)")]
    assert rng.message == "two calls with generators of the same seed gave different masks"
    assert "with the rng argument" in rng.hint
    backward = [r for (name, _), r in failed.items() if name == "dropout_backward"]
    assert backward and all(r.fix_first == ("dropout_forward",) for r in backward)


FLASH_SOLUTION = (REPO / "lessons" / "solutions" / "08_flash_attention.py").read_text()
SCORES = "s = qi @ k[:, :, cols].swapaxes(-1, -2) * scale  # (B, H, tm, tn)"


@pytest.mark.parametrize("right, wrong, message, hint", [
    ("m_safe = np.where(np.isinf(m_new), 0.0, m_new)", "m_safe = 0 * m_new",  # exp(s), no max
     "out at huge scores holds NaN or inf", "exp(1000) overflows"),
    ("(cols[None, :] <= rows[:, None] + (n_keys - n_queries))",  # top-left causal
     "(cols[None, :] <= rows[:, None])",
     "out at huge scores is wrong (error", "fix the other failing properties"),
    (SCORES, SCORES.replace("qi @ k", "np.clip(qi @ k").replace("* scale", "* scale, -50, 50)"),
     "(right at the default scale)", "exp(1000) overflows"),  # wrong only at huge scores
])
def test_flash_stability_blames_overflow_only_for_an_overflow(tmp_path, right, wrong, message,
                                                              hint):
    """"stays finite at +-1000" asserts finiteness first; a finite output that is wrong at the
    default scale too is not blamed on overflow: its hint points at the other properties."""
    assert right in FLASH_SOLUTION
    stable = [p for p in PROPERTIES if p.name == "stays finite at scores of +-1000"]
    (result,) = check(write(tmp_path, FLASH_SOLUTION.replace(right, wrong)),
                      properties=stable).results
    assert result.status == "failed" and message in result.message, result.message
    assert hint in result.hint


ROWS_AGAINST_EVERY_KEY = """
import numpy as np

def flash_attention_forward(q, k, v, causal=False, key_mask=None, scale=None, block_m=32,
                            block_n=16):
    out, lse = np.zeros(q.shape[:3] + v.shape[3:]), np.zeros(q.shape[:3])
    for i0 in range(0, q.shape[2], 128):  # 128 queries against every key: (128, N) scores
        s = q[:, :, i0:i0 + 128] @ k.swapaxes(-1, -2)
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        out[:, :, i0:i0 + 128] = (p / p.sum(axis=-1, keepdims=True)) @ v
    return out, lse
"""


@pytest.mark.parametrize("source, held", [
    (ROWS_AGAINST_EVERY_KEY, False),
    (ROWS_AGAINST_EVERY_KEY.replace("128", "2048"), True),  # the whole (N, N) matrix at once
])
def test_the_memory_budget_message_reports_the_peak_not_an_error(tmp_path, source, held):
    """Over budget: the peak, the budget and the sizes to compare it with; "(N, N) array was
    held" only when the peak reaches one; no "largest error" (a ratio of memory is not one) and
    a counterexample of sizes, not of q, k, v."""
    assert MEMORY_N == 2048  # the test's 2048 rows are the whole matrix
    memory = [p for p in PROPERTIES if p.name.startswith("never holds the (N, N) scores")]
    report = check(write(tmp_path, source), properties=memory)
    (result,) = report.results
    assert re.match(r"flash_attention_forward peaked at \d+\.\d\d MiB at N = 2048 \(block_m = "
                    r"128, block_n = \d+\), over the budget of 2 MiB; in float64 one \(block_m, "
                    r"block_n\) tile is", result.message), result.message
    assert ("at least one (N, N) array was held" in result.message) == held
    assert result.error is None and "largest error" not in report.table()
    assert "block_m = " in result.counterexample and "q = " not in result.counterexample


def solution(lesson: str) -> str:
    (path,) = (REPO / "lessons" / "solutions").glob(f"{lesson}_*.py")
    return path.read_text()


@pytest.mark.parametrize("caller", [
    "return {name: decay ** (top - bert_depth(name, n_layers)) for name in names}",  # the solution
    "return dict(map(lambda name: (name, decay ** (top - bert_depth(name, n_layers))), names))",
    "return dict(zip(names, (decay ** (top - bert_depth(n, n_layers)) for n in names)))",
])
def test_fix_first_finds_a_helper_called_inside_a_comprehension_or_lambda(tmp_path, caller):
    """A comprehension, generator expression or lambda is a code object of its own (Python
    3.11): a wrong bert_depth called from inside one is still named to fix first."""
    source = solution("06")
    right_depth = 'int(name.split(".")[3])'
    right_caller = "return {name: decay ** (top - bert_depth(name, n_layers)) for name in names}"
    assert right_depth in source and right_caller in source
    wrong = source.replace(right_depth, 'int(name.split(".")[3][0])').replace(right_caller, caller)
    failed = check(write(tmp_path, wrong)).failed()
    assert {r.exercise for r in failed} >= {"bert_depth", "layerwise_scales", "frozen_names"}
    assert all(r.fix_first == ("bert_depth",) for r in failed if r.exercise != "bert_depth")


def test_a_shape_mismatch_names_the_array_compared():
    with pytest.raises(Failure, match=r"^dw_q: shape \(2, 1\), expected \(1, 2\)$"):
        assert_close("dw_q", np.zeros((1, 2)), np.zeros((2, 1)), tol=1e-10)


@pytest.mark.parametrize("lesson, right, wrong, prop, message, hint", [
    # best_span: a span that is not allowed, or not the best, has not lost a tie
    ("07", "min(time, i + max_answer_len)", "min(time, i + max_answer_len + 1)",
     "breaks ties by", "tokens long, max_answer_len is", "fix the other failing properties"),
    ("07", "allowed[i] and allowed[j]", "allowed[i]", "breaks ties by",
     "on a token allowed_mask forbids): not a tie-breaking problem", "fix the other failing"),
    ("07", "min(time, i + max_answer_len)", "min(time, i + 1)", "breaks ties by",
     "below the best allowed score", "fix the other failing properties of best_span first"),
    ("07", "score > scores[b]", "score >= scores[b]", "breaks ties by",
     "but the first best-scoring span", "among equal scores keep the first pair"),
    # a gate's gradient of the wrong shape: its own hint, not the float32 property's dtype one
    ("10", "if gate.ndim == 1:", "if False:", "float32 inputs give float32 outputs and gradients",
     "dgate has shape", "sum it over the batch too"),
    # a count in integers, wrong: the formula, not "use Python integers"
    ("11", "layer_norms = 2 * (2 * c)", "layer_norms = 2 * c", "equals minilm.compute for",
     "block_parameters(bert-base) = 7086336", "two LayerNorms 2 C each"),
    # flash L wrong because the mask is: the other properties first, not L = m + log(l)
    ("08", "(cols[None, :] <= rows[:, None] + (n_keys - n_queries))",
     "(cols[None, :] <= rows[:, None])", "returns L =", "and out is wrong too",
     "fix the other failing properties of flash_attention_forward first"),
    ("08", "m + np.log(np.where(empty, 1.0, l))", "m", "returns L =",  # L = m: log(l) forgotten
     "L vs log sum exp of the allowed scores: error", "L = m + log(l)"),
    # mask_tokens with Hugging Face's fixed 0.5 of the rest: the draw, not the labels
    ("04", "(u < mask_token_prob + random_token_prob)", "(rng.random(ids.shape) < 0.5)",
     "a selected token left unchanged", "no token may change", "not by fixed shares"),
    # key_mask read as True = padding: the mask, not the online softmax's rescaling
    ("08", "allowed & key_mask[:, None, None, cols]", "allowed & ~key_mask[:, None, None, cols]",
     "equals attention for any N", "attention with key_mask inverted", "key_mask True = may"),
    # eps inside the square root: where eps goes, not the bias correction
    ("03", "(np.sqrt(v_hat) + eps)", "np.sqrt(v_hat + eps)", "the first step moves",
     "eps is inside the square root", "outside the root"),
    # a transposed dW under finite differences: the gradient and its shapes, not the oracle
    ("02", "rows_out.T @ rows_in", "rows_in.T @ rows_out", "is the gradient of your linear_f",
     "dweight: shape (", "dW = dout^T x"),
])
def test_a_hint_is_shown_only_for_the_failure_it_describes(tmp_path, lesson, right, wrong, prop,
                                                           message, hint):
    """A property's own hint describes the way it usually fails; a failure of another kind (a span
    that is not allowed, under the tie-breaking property; a shape, under a dtype property; a wrong
    formula, under "use Python integers"; a wrong mask, under L's formula) says so and gets the
    hint that fits it."""
    source = solution(lesson)
    assert right in source
    chosen = [p for p in PROPERTIES if p.name.startswith(prop)]
    report = check(write(tmp_path, source.replace(right, wrong)), properties=chosen)
    failed = [r for r in report.results if r.status == "failed"]
    assert failed, report.table()
    assert message in failed[0].message and hint in failed[0].hint, report.table()


@pytest.mark.parametrize("source, prop, hint, cause", [
    # a crash: the exception first, not the property's formula
    (GOOD_SOFTMAX.replace("    e = np.exp", "    if x.ndim == 1:\n        raise ValueError('later')\n"
                          "    e = np.exp"), "matches torch", "your softmax_forward raised this",
     "exception"),
    # the check fell over on what came back: not the learner's code that raised
    (GOOD_SOFTMAX.replace("return p, (p, axis)", "return 'p', (p, axis)"), "rows sum to 1",
     "the check raised this on what your functions returned", "exception"),
    (GOOD_SOFTMAX.replace("    e = np.exp", "    x *= 0.0\n    e = np.exp"), "matches torch",
     "start with x = x.copy()", "named"),
    ("def softmax_forward(x, axis=-1):\n    exit()\n", "matches torch", "return the result",
     "named"),
    # a NaN where values are compared, and no property about NaN fails
    (GOOD_SOFTMAX.replace("e / e.sum(", "e / (e - e).sum("), "matches torch", NONFINITE_HINT,
     "non-finite"),
])
def test_a_crash_a_write_or_a_nan_gets_a_hint_of_its_own(tmp_path, source, prop, hint, cause):
    """The property's hint describes a wrong result; a function that raised, wrote into its
    argument, exited or returned NaN may compute the right one, and gets the hint that fits."""
    (chosen,) = [p for p in PROPERTIES if p.target == "softmax_forward"
                 and p.name.startswith(prop)]
    (result,) = check(write(tmp_path, source), properties=[chosen]).results
    assert result.status == "failed" and result.hint.startswith(hint), result
    assert result.cause == cause and chosen.hint not in result.hint


EMPTY_ROW = "a query that may attend nothing outputs zeros, never NaN"


def test_a_nan_under_a_property_that_compares_values_names_the_row_about_nan(tmp_path):
    """Attention without the guard for rows that may attend nothing: the rows that compare values
    get NaN and name the failing row about NaN to fix first, not their own hints (a scale, a
    mask that are right); that row keeps its hint."""
    source = solution("01")
    guards = ("np.where(np.isfinite(row_max), row_max, 0.0)", "np.where(total > 0, total, 1.0)")
    assert all(guard in source for guard in guards)
    wrong = source.replace(guards[0], "row_max").replace(guards[1], "total")
    names = ("scale=None means 1/sqrt(D)", EMPTY_ROW)
    chosen = [p for p in PROPERTIES if p.target == "attention_forward" and p.name in names]
    report = check(write(tmp_path, wrong), properties=chosen)
    scale, empty = report.results
    assert scale.status == empty.status == "failed", report.table()
    assert scale.rows_first == (EMPTY_ROW,) and scale.hint == ("the output holds NaN or inf, "
                                                               "which that row is about")
    assert empty.rows_first == () and empty.hint == chosen[1].hint
    assert f'fix first: the failing row "{EMPTY_ROW}" of attention_forward' in report.table()


LABELS = "labels are the original token where selected and -100 elsewhere"


@pytest.mark.parametrize("lesson, right, wrong, target, read, readers", [
    # labels on the changed tokens only: the rates read what was selected from the labels
    ("04", "labels = np.where(selected, ids, -100)",
     "labels = np.where(becomes_mask | becomes_random, ids, -100)", "mask_tokens", LABELS,
     ("selected tokens become", "the rest", "defaults")),
    # a part-spelled word: MiniLM's vocabulary only repeats the small vocabularies' comparison
    ("05", "            return [unk_token]", "            return pieces + [unk_token]",
     "wordpiece_split", "matches Hugging Face's WordPiece", ("spells words like MiniLM",)),
])
def test_a_row_that_reads_a_failing_row_names_it_to_fix_first(tmp_path, lesson, right, wrong,
                                                               target, read, readers):
    """A row whose result rests on another row of the same function (a rate counted from the
    labels) names that row to fix first while it fails, instead of its own hint (about the
    draws, which may be right)."""
    source = solution(lesson)
    assert right in source
    chosen = [p for p in PROPERTIES if p.target == target
              and (p.name == read or p.name.startswith(readers))]
    report = check(write(tmp_path, source.replace(right, wrong)), properties=chosen)
    failed = {r.property: r for r in report.failed()}
    assert read in failed and failed[read].rows_first == (), report.table()
    reading = [r for name, r in failed.items() if name != read]
    assert reading and all(r.rows_first == (read,) and r.hint == "" for r in reading)
    assert f'fix first: the failing row "{read}" of {target}, which this one' in report.table()


def test_every_property_a_property_reads_is_one_of_its_function():
    names = {(p.target, p.name) for p in PROPERTIES}
    assert all((p.target, read) in names for p in PROPERTIES for read in p.reads)


def test_the_max_chars_counterexample_is_the_one_the_failing_call_used(tmp_path):
    source = solution("05")
    assert "if len(word) > max_chars:" in source
    wrong = source.replace("if len(word) > max_chars:", "if len(word) >= max_chars:")
    chosen = [p for p in PROPERTIES if p.name == "a word longer than max_chars becomes [UNK]"]
    (result,) = check(write(tmp_path, wrong), properties=chosen).results
    used = re.search(r"max_chars=(\d+)", result.message)
    assert used and f"max_chars = {used.group(1)}" in result.counterexample.splitlines()


def test_a_failure_on_a_variant_of_the_drawn_case_shows_the_variant(tmp_path):
    """attention_forward's torch property also checks every draw at scale 0.0: an attention that
    ignores its scale passes the drawn case whenever 1/sqrt(D) = 1 and fails the variant, whose
    inputs (scale = 0.0, not the drawn None) are the counterexample shown."""
    source = solution("01")
    scaled = "    scores = q @ np.swapaxes(k, -1, -2) * scale  # (..., Nq, Nk)"
    assert scaled in source
    wrong = source.replace(scaled, "    scores = q @ np.swapaxes(k, -1, -2)  # (..., Nq, Nk)")
    chosen = [p for p in PROPERTIES if p.target == "attention_forward"
              and p.name.startswith("matches softmax(q k^T * scale")]
    (result,) = check(write(tmp_path, wrong), properties=chosen).results
    assert result.status == "failed" and "with scale=0.0" in result.message, result
    assert "scale = 0.0" in result.counterexample, result.counterexample
    # a learner's code that raises on the variant only: its inputs too, where calling it raises
    dividing = source.replace(scaled, "    scores = q @ np.swapaxes(k, -1, -2) / (1 / scale)  # (..., Nq, Nk)")
    (result,) = check(write(tmp_path, dividing, "dividing.py"), properties=chosen).results
    assert result.status == "failed" and result.cause == "exception", result
    assert "scale = 0.0" in result.counterexample, result.counterexample


def test_a_function_with_another_signature_is_told_so(tmp_path):
    """A function that cannot take the library's call (the axis forgotten) fails with the
    signature to give it, not with a TypeError that seems to come from the check."""
    source = GOOD_SOFTMAX.replace("def softmax_forward(x, axis=-1):", "def softmax_forward(x):")
    assert source != GOOD_SOFTMAX
    report = check(write(tmp_path, source), properties=PROPERTIES[:2])
    assert [r.status for r in report.results] == ["failed", "failed"]
    for result in report.results:
        assert "cannot be called as the library calls it (too many positional" in result.message
        assert "softmax_forward(x, axis=-1) -> (probs, cache)" in result.hint


@pytest.mark.parametrize("lesson, right, wrong, prop, shown", [
    # the mask the property built, not the drawn attn_mask = None
    ("01", "allowed & attn_mask  # True = may attend", "allowed & ~attn_mask",
     "True in attn_mask means", "attn_mask = [[ True"),
    # the (rows, V) logits sample_next was called with, not the case's one row
    ("03", "[:, -top_k][:, None]  # (B, 1)", "[:, -top_k - 1][:, None]",
     "never draws a token outside", "# shape (2000, "),
])
def test_a_counterexample_shows_what_the_function_was_called_with(tmp_path, lesson, right, wrong,
                                                                  prop, shown):
    source = solution(lesson)
    assert right in source
    chosen = [p for p in PROPERTIES if p.name.startswith(prop)]
    (result,) = check(write(tmp_path, source.replace(right, wrong)), properties=chosen).results
    assert result.status == "failed" and shown in result.counterexample, result.counterexample


def test_mask_tokens_labels_of_another_integer_dtype_are_refused(tmp_path):
    """int32 labels are integers, but torch's cross-entropy refuses them as targets: the
    docstring's int64 is held."""
    source = solution("04")
    assert "    return inputs, labels" in source
    wrong = source.replace("    return inputs, labels", "    return inputs, labels.astype(np.int32)")
    failed = check(write(tmp_path, wrong)).failed()
    assert failed and all("labels must be int64 ids, got dtype int32" in r.message for r in failed)
