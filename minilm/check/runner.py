"""Run the catalogue's properties against a learner's functions and report what held.

    report = check("lessons/exercises/00_language_models.py")     # a file, a module,
    report = check(globals())                                      # a notebook's namespace,
    report = check([softmax_forward, softmax_backward])            # or the functions themselves
    print(report.table()); report.ok

Every function of the source whose name is an exercise of the catalogue is checked (the library's
own functions, imported into a notebook, are not). Each property runs under hypothesis: on failure
hypothesis shrinks the case to a small one, and the report shows that counterexample, the largest
error and the property's hint. A stub (a body that only raises NotImplementedError) is "not
attempted"; a property that also needs a stub, or a function the source does not define, is
"blocked" (a backward needs its own forward's cache). A function that is not a stub fails when it
raises NotImplementedError on some input, writes into an array it was given, returns something
other than its signature promises, calls exit() or does not return within TIME_LIMIT seconds. A
failure that may come from another of the learner's functions, one that fails its own properties
and that this property runs, names it: fix that first; one that may come from another failing
property of the same function (one it `reads`, or for a NaN the property about NaN) names that
row. A property's hint describes a wrong result: a crash, a write into an argument or a NaN gets
a hint of its own instead. The report is ok when nothing failed and every function written was
checked by at least one property.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import numbers
import re
import signal
import sys
import textwrap
import threading
import traceback
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minilm.check.catalogue import EXERCISES, PROPERTIES
from minilm.check.framework import Failure, Property, returned

STATUSES = ("passed", "failed", "not attempted", "blocked")
# How a failed row failed: the call did not return in time; it raised; its check named the way it
# failed (a write into an argument) with a hint of its own; NaN or inf where values were compared;
# a wrong value (the property's own hint describes it).
CAUSES = ("time-out", "exception", "named", "non-finite", "wrong value")
TIME_LIMIT = 10.0  # seconds one call of a learner's function may take (the cases are tiny)


@dataclass
class Result:
    """The outcome of one property for one learner's exercise."""

    exercise: str
    property: str
    status: str  # one of STATUSES
    message: str = ""
    error: float | None = None
    counterexample: str = ""
    hint: str = ""
    cause: str = ""  # of a failure: one of CAUSES, which decides the hint and what comes first
    fix_first: tuple[str, ...] = ()  # the learner's functions it uses that fail their own checks
    rows_first: tuple[str, ...] = ()  # failing properties of the same function it depends on


@dataclass
class Report:
    results: list[Result]
    source: str

    @property
    def ok(self) -> bool:
        """Everything attempted held: nothing failed, and every function written (not a stub) was
        checked by at least one property. A backward whose every property is blocked (its forward
        a stub or not defined) has not passed anything; stubs alone do not count."""
        return not self.failed() and not self.unchecked()

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]

    def unchecked(self) -> list[str]:
        """The functions whose every property is blocked: written, but nothing of them ran."""
        ran = {r.exercise for r in self.results if r.status != "blocked"}
        return list(dict.fromkeys(r.exercise for r in self.results
                                  if r.status == "blocked" and r.exercise not in ran))

    def table(self) -> str:
        """One row per exercise and property; under a failure its counterexample, largest error
        and hint; a summary line last."""
        width = max([len(r.exercise) for r in self.results] + [8])
        prop_width = max([len(r.property) for r in self.results] + [8])
        lines = [f"minilm check {self.source}", "",
                 f"{'function':<{width}}  {'property':<{prop_width}}  result"]
        for r in self.results:
            status = r.status.upper() if r.status == "failed" else r.status
            lines.append(f"{r.exercise:<{width}}  {r.property:<{prop_width}}  {status}")
            if r.status == "failed":
                indent = " " * 4
                lines.append(f"{indent}what broke: {r.message}")
                if r.error is not None and f"error {r.error:.3g}" not in r.message:
                    lines.append(f"{indent}largest error: {r.error:.3g}")  # unless just said
                if r.counterexample:
                    lines.append(f"{indent}counterexample (shrunk):")
                    lines += [f"{indent}  {line}" for line in r.counterexample.splitlines()]
                if r.fix_first:
                    lines.append(f"{indent}fix first: {', '.join(r.fix_first)}, which this uses "
                                 "and which fails its own properties (this may then pass)")
                if r.rows_first:
                    rows = ", ".join(f'"{row}"' for row in r.rows_first)
                    plural = "s" if len(r.rows_first) > 1 else ""
                    lines.append(f"{indent}fix first: the failing row{plural} {rows} of "
                                 f"{r.exercise}, which this one depends on (this may then pass)")
                if r.hint:
                    lines.append(f"{indent}hint: {r.hint}")
            elif r.status == "blocked":
                lines.append(f"    ({r.message})")
        summary = ", ".join(f"{self.count(s)} {s}" for s in STATUSES if self.count(s))
        lines += ["", summary or "nothing to check"]
        if self.unchecked():
            lines.append(f"not checked (every property blocked): {', '.join(self.unchecked())}")
        return "\n".join(lines)


# ---------------------------------------------------------------- finding the learner's functions


def _functions_of(source) -> tuple[dict[str, Callable], str, bool]:
    """(exercise name -> function, a label for the report, whether the functions were passed
    themselves) from a file, module, namespace or iterable of functions. From a file, module or
    namespace only the functions defined there are taken: what a notebook imported from minilm is
    the library's, not the learner's."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            raise ValueError(f"{path} is a directory; minilm check reads a .py file")
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        if path.suffix != ".py":
            raise ValueError(f"{path}: minilm check reads a .py file (in a notebook, call "
                             "minilm.check.check(globals()))")
        name = f"minilm_check_{abs(hash(path.resolve()))}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:  # noqa: BLE001 - the learner's file: one line
            del sys.modules[name]
            raise ValueError(f"{path} cannot be imported: {_where_raised(error, path)}") from None
        namespace, label = vars(module), str(path)
        owner = name
    elif isinstance(source, types.ModuleType):
        namespace, label, owner = vars(source), source.__name__, source.__name__
    elif isinstance(source, Mapping):
        namespace, label, owner = source, "namespace", "__main__"
    else:  # the functions themselves: every one given is checked
        functions = {getattr(f, "__name__", ""): f for f in source}
        label = ", ".join(functions)
        return {n: f for n, f in functions.items() if n in EXERCISES and callable(f)}, label, True
    found = {}
    for name, value in namespace.items():
        if name in EXERCISES and callable(value) and getattr(value, "__module__", None) == owner:
            found[name] = value  # written there, not imported (the library's own are not checked)
    return found, label, False


def _where_raised(error: Exception, path: Path) -> str:
    """'line N: ErrorType: message' for an exception raised while importing the file `path`: the
    line of a SyntaxError in it, otherwise the last line of it that the traceback passes through
    (an `import` of a module that fails, a statement that raises)."""
    if isinstance(error, SyntaxError) and Path(error.filename or "").resolve() == path.resolve():
        return f"line {error.lineno}: SyntaxError: {error.msg}"
    line = next((frame.lineno for frame in reversed(traceback.extract_tb(error.__traceback__))
                 if Path(frame.filename).resolve() == path.resolve()), None)
    return f"line {line}: {type(error).__name__}: {error}"


class _Implementation:
    """The learner's functions as attributes, each call held to what a library function does:
    arrays are copied on the way in (a function that writes into its arguments cannot corrupt the
    case or the next call) and compared afterwards (writing into them is a failure: the caller's
    data would be changed); what comes back must be what the signature promises; exit() and a call
    that does not return within TIME_LIMIT seconds are failures too. A backward may write into its
    own `cache`: the cache is the implementation's, made by its forward to be used once."""

    def __init__(self, functions: dict[str, Callable]):
        for name, function in functions.items():
            setattr(self, name, self._held(name, function))

    @staticmethod
    def _held(name: str, function):
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # no signature to read (a built-in): the call decides
            signature = None

        def call(*args, **kwargs):
            try:  # a function that cannot take the call fails here, not as a TypeError that
                if signature is not None:  # seems to come from the check
                    signature.bind(*args, **kwargs)
            except TypeError as error:
                raise Failure(f"{name} cannot be called as the library calls it ({error})",
                              hint=f"give it the library's signature: "
                                   f"{EXERCISES[name].signature}") from None
            copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            kwcopies = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
            try:
                with _time_limit(name):
                    result = function(*copies, **kwcopies)
            except SystemExit:
                raise Failure(f"{name} called exit(): a function returns its result",
                              hint="return the result: exit() ends the whole program") from None
            names = _parameter_names(function, len(args))
            for given, copy, argument in [*zip(args, copies, names),
                                          *((kwargs[k], kwcopies[k], k) for k in kwargs)]:
                if isinstance(given, np.ndarray) and argument != "cache" and not np.array_equal(
                        given, copy, equal_nan=given.dtype.kind in "fc"):
                    raise Failure(f"{name} wrote into its argument {argument}: copy it first "
                                  "(the caller's array must stay as it was)",
                                  hint=f"start with {argument} = {argument}.copy(): an in-place "
                                       "change (x[i] = ..., +=, np.copyto) then changes your copy")
            _check_promise(name, result)
            return result

        call.__wrapped__ = function
        return call


def _parameter_names(function, n_positional: int) -> list[str]:
    """The names of the first n positional parameters (`argument i` past a *args)."""
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        parameters = []
    return [parameters[i] if i < len(parameters) else f"argument {i}" for i in range(n_positional)]


def _check_promise(name: str, result) -> None:
    """Failure unless `result` is what the exercise's signature promises after its `->`: a tuple
    of that many items for `(out, cache)`-style names, an int for `int`, one number (not an
    array of one) for `float`. Array shapes, such as `(V, V)`, are the properties' to check."""
    promise = EXERCISES[name].signature.rpartition(" -> ")[2]
    names = re.fullmatch(r"\(([a-z]\w*(?:, [a-z]\w*)+)\)", promise)
    if names:
        returned(result, name, tuple(names.group(1).split(", ")), arrays=False)
    elif promise.startswith("int"):
        counts = result.values() if isinstance(result, dict) and "{" in promise else [result]
        if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in counts):
            raise Failure(f"{name} must return an int (a count), got {result!r}")
    elif promise == "float" and not (isinstance(result, numbers.Real)
                                     or getattr(result, "shape", None) == ()):
        raise Failure(f"{name} must return one number (a float), got "
                      f"{type(result).__name__} of shape {getattr(result, 'shape', '?')}")


@contextlib.contextmanager
def _time_limit(name: str):
    """Raise a _TimedOut if the block runs for more than TIME_LIMIT seconds (a SIGALRM timer: in
    the main thread of a Unix process; elsewhere the block runs without a limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _TimedOut(f"{name} did not return within {TIME_LIMIT:g} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _TimedOut(BaseException):
    """A learner's call ran past TIME_LIMIT. Not an Exception, so that neither the learner's own
    `except Exception` nor hypothesis catches it: hypothesis would try (and shrink) more cases,
    each taking TIME_LIMIT seconds; the property fails on the case at hand instead."""


# ---------------------------------------------------------------- running one property


class _Stub(Exception):
    """A learner's function raised NotImplementedError: which one."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def is_stub(function) -> bool | None:
    """Whether the function's body (after its docstring) is only `raise NotImplementedError...`:
    read from its source, so a stub is recognised without running anything. None when there is no
    source to read: a stub is then recognised when it raises NotImplementedError."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None
    body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else []
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def _stub_name(error: NotImplementedError, functions: dict[str, Callable]) -> str | None:
    """Which of the learner's functions raised NotImplementedError, or None when it came from
    somewhere else. (attempt() in run_property calls it by this name: hypothesis derives its
    derandomized examples from attempt()'s source, so an edit there changes every counterexample
    the checker shows.)"""
    return _raised_in(error, functions)


def _raised_in(error: BaseException, functions: dict[str, Callable]) -> str | None:
    """Which of the learner's functions raised `error` (the innermost one on the traceback), or
    None when it came from somewhere else (the check, on what they returned)."""
    codes = {getattr(f, "__code__", None): name for name, f in functions.items()}
    found = None
    traceback = error.__traceback__
    while traceback is not None:
        found = codes.get(traceback.tb_frame.f_code, found)
        traceback = traceback.tb_next
    return found


def describe(case: dict) -> str:
    """The counterexample, one input per line, arrays printed small."""
    lines = []
    for key, value in case.items():
        if key.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            text = np.array2string(value, precision=4, threshold=24, edgeitems=2,
                                   max_line_width=88, separator=", ")
            text = text.replace("\n", "\n" + " " * (len(key) + 3))
            lines.append(f"{key} = {text}  # shape {value.shape}, {value.dtype}")
        elif isinstance(value, np.random.Generator):
            continue
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines)


@contextlib.contextmanager
def _one_torch_thread():
    """The oracles run PyTorch on tiny tensors, where one thread is many times faster than a pool
    (and does not fight a busy machine for its cores); the caller's setting is restored."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_property(prop: Property, functions: dict[str, Callable], settings=None) -> Result:
    """Try `prop` on its strategy's cases (hypothesis; shrunk on failure) -> Result."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings

    impl = _Implementation(functions)
    last: dict = {}

    def attempt(case):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                prop.check(impl, case)
        except NotImplementedError as error:
            stub = _stub_name(error, functions)
            if stub is not None and is_stub(functions[stub]) is not False:
                raise _Stub(stub) from None
            written = " (not a stub: this input is part of the exercise)" if stub else ""
            last.update(case=case, failure=Failure(f"raised NotImplementedError: {error}{written}"))
            raise
        except _TimedOut as timeout:
            last.update(case=case, failure=Failure(str(timeout)))
            raise
        except Failure as failure:
            last.update(case=case, failure=failure)
            raise
        except Exception as error:  # the learner's code crashed: a failure
            last.update(case=case, failure=Failure(f"raised {type(error).__name__}: {error}"))
            raise

    base = settings if settings is not None else hypothesis_settings(
        max_examples=25, derandomize=True)
    options = dict(deadline=None, database=None, report_multiple_bugs=False,
                   suppress_health_check=list(HealthCheck))
    if prop.max_examples is not None:
        options["max_examples"] = min(prop.max_examples, base.max_examples)
    run = hypothesis_settings(base, **options)(given(prop.strategy)(attempt))
    try:
        with _one_torch_thread():
            run()
    except _Stub as stub:
        status = "not attempted" if stub.name == prop.target else "blocked"
        return Result(prop.target, prop.name, status,
                      message="" if status == "not attempted" else f"needs {stub.name}")
    except (Exception, _TimedOut) as error:  # noqa: BLE001 - recorded in `last` by attempt()
        failure = last.get("failure", Failure("failed"))
        cause, hint = _cause(prop, failure, error, functions)
        case = getattr(error, "checked_case", None) or last.get("case", {})  # framework.on_case
        return Result(prop.target, prop.name, "failed", failure.message, failure.error,
                      describe(case), hint, cause)
    return Result(prop.target, prop.name, "passed")


TIMEOUT_HINT = ("a loop whose condition never changes on this input? Call it on the "
                "counterexample and interrupt it: the traceback shows the line")
NONFINITE_HINT = ("the output holds NaN or inf where finite values were expected: a 0/0 (a sum "
                  "over nothing?), an exp that overflows or a log of 0; run it on the "
                  "counterexample under np.errstate(all='raise') to find the line")


def _crash_hint(function: str | None) -> str:
    """The hint of a failure by an exception: it came from the learner's `function`, or (None)
    from the check, on what the learner's functions returned."""
    if function is None:
        return ("the check raised this on what your functions returned, not your code: compare "
                "the shapes and types they return with their docstrings")
    return (f"your {function} raised this: fix the exception first (call it on the "
            "counterexample to see the line)")


def _cause(prop: Property, failure: Failure, error: BaseException,
           functions: dict[str, Callable]) -> tuple[str, str]:
    """How a row that failed with `failure`, on `error`, failed (one of CAUSES), and its hint: for
    a call that did not return or raised, one of its own; the failure's own (a write into an
    argument, a way of failing that its property names); NONFINITE_HINT for a NaN or inf where
    the property compares values (unless it is about NaN and inf itself); the property's
    otherwise. The property's hint describes a wrong result, and would blame code that may be
    right."""
    if isinstance(error, _TimedOut):
        return "time-out", TIMEOUT_HINT
    if failure.message.startswith(f"raised {type(error).__name__}"):  # attempt() saw it raised
        return "exception", _crash_hint(_raised_in(error, functions))
    if failure.hint:
        return "named", failure.hint
    if failure.error is not None and not np.isfinite(failure.error) and not prop.nonfinite:
        return "non-finite", NONFINITE_HINT
    return "wrong value", prop.hint


# ---------------------------------------------------------------- checking a source


def check(source, lesson: str | None = None, settings=None, properties=None) -> Report:
    """Check every exercise that `source` defines against its properties.

    source: a .py path, a module, a namespace dict (`globals()` in a notebook) or an iterable of
    functions. lesson: only that lesson's exercises ("03"). settings: hypothesis settings (default
    25 derandomized examples per property; the project's tests pass their profile's).
    properties: run only these (default: the whole catalogue). A forward without its backward is
    checked alone; a property of a defined function that needs another one the source does not
    define (a backward without its forward) is "blocked", and the report is not ok when nothing
    of a function ran.
    """
    with _folder_on_import_path(source):
        return _check(source, lesson, settings, properties)


@contextlib.contextmanager
def _folder_on_import_path(source):
    """A file's folder first on the import path while it is loaded and checked, as `python
    file.py` puts it: the file may import a module of the learner's beside it (at its top or
    inside a function). Removed afterwards."""
    if not isinstance(source, (str, Path)):
        yield
        return
    folder = str(Path(source).resolve().parent)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def _check(source, lesson, settings, properties) -> Report:
    """`check`, with the file's folder on the import path."""
    functions, label, as_functions = _functions_of(source)
    if lesson is not None:
        lesson = lesson_number(lesson)
        functions = {n: f for n, f in functions.items() if EXERCISES[n].lesson == lesson}
    if not functions:
        where = f" of lesson {lesson}" if lesson else ""
        raise ValueError(f"{label} defines no checkable function{where}; `minilm check --list` "
                         "shows the names")
    stubs = {name for name, function in functions.items() if is_stub(function)}
    results, ran = [], []
    for prop in PROPERTIES if properties is None else properties:
        if prop.target not in functions:
            continue
        missing = [name for name in prop.needs if name not in functions]
        if prop.target in stubs:
            results.append(Result(prop.target, prop.name, "not attempted"))
        elif missing:
            supply = ("pass it too" if as_functions else
                      f"define it too; an imported {missing[0]} is the library's, not yours")
            results.append(Result(prop.target, prop.name, "blocked",
                                  f"needs {missing[0]}: {supply}"))
        elif stubs.intersection(prop.needs):
            blocking = min(stubs.intersection(prop.needs))
            results.append(Result(prop.target, prop.name, "blocked", f"needs {blocking}"))
        else:
            results.append(run_property(prop, functions, settings))
        ran.append(prop)
    failing = {r.exercise for r in results if r.status == "failed"}
    failing_rows = {(r.exercise, r.property) for r in results if r.status == "failed"}
    for result, prop in zip(results, ran):
        if result.status == "failed":
            result.fix_first = tuple(sorted(_uses(prop, functions) & failing))
            result.rows_first = _rows_first(prop, result, ran, failing_rows)
            if result.rows_first:  # its own hint would be about a failure it may not have
                rows = "those rows are" if len(result.rows_first) > 1 else "that row is"
                result.hint = (f"the output holds NaN or inf, which {rows} about"
                               if result.cause == "non-finite" else "")
    return Report(results, label)


def _rows_first(prop: Property, result: Result, ran: list[Property],
                failing: set[tuple[str, str]]) -> tuple[str, ...]:
    """The failing properties of the same function that `result` may come from: those `prop`
    reads (a rate counted from the labels, the labels' property), and for a NaN or inf where
    values were compared, those about NaN and inf (a fully masked row, an overflow). None for a
    failure with a hint of its own (a crash, a write into an argument): that comes first."""
    reads = prop.reads if result.cause == "wrong value" else ()
    nonfinite = result.cause == "non-finite"
    return tuple(p.name for p in ran if p.target == prop.target
                 and (p.target, p.name) in failing
                 and (p.name in reads or nonfinite and p.nonfinite))


def _uses(prop: Property, functions: dict[str, Callable]) -> set[str]:
    """The learner's other functions a property of `prop.target` runs: those it calls itself
    (`prop.needs`: a backward needs its forward's cache), and those the target calls by name (an
    attention_forward that builds its mask with the learner's own causal_mask, in a loop or in a
    comprehension)."""
    code = getattr(functions[prop.target], "__code__", None)
    called = _names_read(code) if code is not None else set()
    return (set(prop.needs) | called) & set(functions) - {prop.target}


def _names_read(code: types.CodeType) -> set[str]:
    """The global names a function's code reads, with those of the code nested in it: a
    comprehension, generator expression, lambda or inner function is a code object of its own,
    kept in co_consts."""
    nested = (_names_read(c) for c in code.co_consts if isinstance(c, types.CodeType))
    return set(code.co_names).union(*nested)


def lesson_number(lesson) -> str:
    """A lesson as the catalogue names it: "03" for 3, "3" or "03"; ValueError naming the lessons
    that have exercises otherwise."""
    lessons = sorted({exercise.lesson for exercise in EXERCISES.values()})
    number = str(lesson).strip()
    number = number.zfill(2) if number.isdigit() else number
    if number not in lessons:
        raise ValueError(f"lesson must be one of {', '.join(lessons)}, got {lesson!r}")
    return number


def listing(lesson=None) -> str:
    """The checkable names per lesson (or of one lesson), with their signatures and how many
    properties each has."""
    lines = []
    by_lesson: dict[str, list] = {}
    wanted = None if lesson is None else lesson_number(lesson)
    for exercise in EXERCISES.values():
        if wanted in (None, exercise.lesson):
            by_lesson.setdefault(exercise.lesson, []).append(exercise)
    for number in sorted(by_lesson):
        lines.append(f"lesson {number}")
        for exercise in by_lesson[number]:
            n = sum(p.target == exercise.name for p in PROPERTIES)
            lines.append(f"  {exercise.signature}")
            lines.append(f"      {exercise.summary} ({n} {'property' if n == 1 else 'properties'})")
    return "\n".join(lines)
