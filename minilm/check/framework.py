"""What a check is made of: exercises (the functions a learner writes), properties (what must hold
of them, each with the inputs it is tried on) and failures (what broke, by how much, and a hint).

    @prop("softmax_forward", "rows sum to 1", softmax_cases(), needs=("softmax_forward",),
          hint="divide exp(x - max) by its sum along `axis`")
    def softmax_rows_sum_to_one(impl, case):
        probs, _ = impl.softmax_forward(case["x"], case["axis"])
        assert_close("row sums", np.ones(...), probs.sum(axis=case["axis"]), tol=1e-12)

A property receives `impl` (the learner's functions, or the library's, as attributes) and one case
(a dict of named inputs drawn by its hypothesis strategy) and raises `Failure` when it does not
hold. The cache an op pair's forward returns is opaque: a property only ever hands it back to the
same implementation's backward, so a learner's cache of any form works.

The catalogue (`minilm.check.catalogue`) registers the exercises and properties of every lesson;
`minilm.check.runner` runs them. The project's own tests run the same properties against the
library (tests/test_functional.py and the lessons' tests), so there is one copy of each check.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


class Failure(AssertionError):
    """A property that does not hold: what broke (`message`), the largest error seen when there is
    one, and a `hint` when this way of failing needs another than the property's own (the runner
    shows the property's otherwise)."""

    def __init__(self, message: str, error: float | None = None, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.error = error
        self.hint = hint


@contextmanager
def on_case(case: dict):
    """Inside, a property checks `case`, a variant of the drawn one (the same inputs with a fixed
    scale, say): a Failure raised there, or an exception from the learner's code, carries `case`
    (as `checked_case`), which the runner shows as the counterexample: the inputs that failed."""
    try:
        yield case
    except Exception as error:
        if getattr(error, "checked_case", None) is None:  # an inner on_case's is more precise
            error.checked_case = case
        raise


@dataclass(frozen=True)
class Exercise:
    """A function a learner writes, with the library's name and signature."""

    name: str
    lesson: str  # "00".."99": the lesson whose exercises it belongs to
    signature: str  # "softmax_forward(x, axis=-1) -> (out, cache)"
    summary: str


@dataclass(frozen=True)
class Property:
    """One claim about an exercise, tried on the cases its strategy draws."""

    target: str  # the exercise it is listed under
    name: str  # stated as the property: "rows sum to 1"
    strategy: object  # a hypothesis SearchStrategy of cases (dicts of named inputs)
    check: Callable[[object, dict], None]
    needs: tuple[str, ...]  # the learner's functions it calls (target included)
    hint: str  # one line: what usually breaks this property
    max_examples: int | None = None  # None: the runner's default
    nonfinite: bool = False  # it is about NaN and inf: its hint fits a NaN result
    reads: tuple[str, ...] = ()  # properties of the target whose result it reads (fix them first)
    labels: dict = field(default_factory=dict, compare=False)


EXERCISES: dict[str, Exercise] = {}
PROPERTIES: list[Property] = []
MISTAKES: list[Callable] = []  # filled by @mistake as lessons/mistakes/ files are imported


def exercise(name: str, lesson: str, signature: str, summary: str) -> Exercise:
    """Register a checkable function name."""
    if name in EXERCISES:
        raise ValueError(f"exercise {name!r} is registered twice")
    EXERCISES[name] = Exercise(name, lesson, signature, summary)
    return EXERCISES[name]


def prop(target: str, name: str, strategy, needs: tuple[str, ...] = (), hint: str = "",
         max_examples: int | None = None, nonfinite: bool = False, reads: tuple[str, ...] = ()):
    """Decorator: register `check(impl, case)` as a property of the exercise `target`.

    nonfinite: the property is about NaN and inf (a fully masked row, an overflow): its hint is
    shown for a NaN result, which the other properties of `target` send to it. reads: the names
    of other properties of `target` whose result this one reads (a rate counted from the labels
    reads the labels): while one of them fails, this one says to fix it first."""

    def register(check):
        if target not in EXERCISES:
            raise ValueError(f"property {name!r}: unknown exercise {target!r}")
        required = tuple(dict.fromkeys((target, *needs)))
        unknown = [n for n in required if n not in EXERCISES]
        if unknown:
            raise ValueError(f"property {name!r} needs unknown exercises {unknown}")
        PROPERTIES.append(Property(target, name, strategy, check, required, hint, max_examples,
                                   nonfinite, tuple(reads)))
        return check

    return register


def mistake(description: str, breaks: str, crashes: bool = False):
    """Mark a function as a catalogued mistake (lessons/mistakes/): a wrong implementation of an
    exercise, and `breaks`, the property that must catch it. The test suite runs the checker on
    each one and asserts that this property fails with a message: a checker is proven by the
    wrong answers it rejects, not only by the right ones it accepts. The property must catch the
    wrong answer itself, not a crash, unless the mistake is one that `crashes` (then the report's
    "raised ..." line is the catch)."""

    def mark(function):
        function.mistake = (description, breaks, crashes)
        MISTAKES.append(function)  # several mistakes of one file may share a name
        return function

    return mark


# ---------------------------------------------------------------- what properties assert with


def max_error(expected, actual, floor: float = 1.0) -> float:
    """max|expected - actual| / max(floor, max|expected|): relative where values are large, absolute
    where they are small (the metric of `minilm.testing.oracles.relative_error`), NaN if `actual`
    holds a NaN or an inf that `expected` does not."""
    from minilm.testing.oracles import relative_error

    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise Failure(f"shape {actual.shape}, expected {expected.shape}")
    if not np.isfinite(actual).all() and np.isfinite(expected).all():
        return float("nan")
    return relative_error(expected, actual, floor)


def assert_close(what: str, expected, actual, tol: float, floor: float = 1.0) -> None:
    """Failure unless `actual` is within `tol` of `expected` (by `max_error`). A float64-grade
    check (tol < 1e-6) missed with a float32/float16 result names the dtype: the formula may be
    right and the dtype wrong; missed by a float64 result by 1e-9 to 1e-5, it names the usual
    causes of so small a difference. A shape that differs is named with `what` too."""
    if actual is None:
        raise Failure(f"{what}: got None")
    try:
        error = max_error(expected, actual, floor)
    except Failure as failure:  # the shapes differ: say which array
        raise Failure(f"{what}: {failure.message}") from None
    if not error <= tol:  # NaN fails too
        message = f"{what}: error {error:.3g} > {tol:g}"
        low_precision = getattr(actual, "dtype", None) in (np.float32, np.float16)
        if tol < 1e-6 and low_precision:
            message += (f" - the size of float32 rounding: the result is {actual.dtype}; keep "
                        "the inputs' dtype (float64 here)")
        elif tol < 1e-6 and 1e-9 <= error <= 1e-5:
            message += " - a small difference: an epsilon added, a value clipped, or float32 inside?"
        raise Failure(message, error)


def gradient_error(forward, dout, gradients: dict[str, tuple]) -> float:
    """`minilm.testing.oracles.finite_difference_error` over {name: (input, its gradient)}: the
    worst error of the gradients of sum(forward() * dout). A gradient not shaped like its input
    is a Failure naming it and both shapes ("dweight: shape (1, 2), expected (2, 1)"), not an
    error from inside the oracle."""
    from minilm.testing.oracles import finite_difference_error

    for name, (x, grad) in gradients.items():
        assert_true(np.shape(grad) == np.shape(x),
                    f"{name}: shape {np.shape(grad)}, expected {np.shape(x)}")
    return finite_difference_error(forward, dout, list(gradients.values()))


def as_float32(case: dict) -> dict:
    """The case with its float64 arrays in float32 (ids, masks and numbers left as they are)."""
    return {key: value.astype(np.float32) if getattr(value, "dtype", None) == np.float64 else value
            for key, value in case.items()}


def assert_float32(**outputs) -> None:
    """Failure unless every output that is an array (or a NumPy scalar) is float32: an op given
    float32 inputs keeps them float32, as the library's ops do (a float64 result doubles the
    memory of every activation after it). None and Python numbers are not checked."""
    for name, value in outputs.items():
        dtype = getattr(value, "dtype", None)
        assert_true(dtype is None or dtype == np.float32,
                    f"{name} is {dtype} for float32 inputs, expected float32: keep the inputs' "
                    "dtype (np.zeros(shape) is float64; np.zeros_like(x) or dtype=x.dtype is not)")


def assert_true(condition, message: str, error: float | None = None) -> None:
    if not condition:
        raise Failure(message, error)


def as_array(value, what: str) -> np.ndarray:
    """A learner's return value as a NumPy array, or a Failure saying what came back."""
    if value is None:
        raise Failure(f"{what}: got None (did the function forget to return?)")
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise Failure(f"{what}: expected an array, got {type(value).__name__}") from None


def returned(value, function: str, names: tuple[str, ...], arrays: bool = True) -> tuple:
    """A learner's tuple return value (names[0], names[1], ...), its items as arrays (as_array)
    unless `arrays` is False; a Failure saying what `function` must return when `value` is not a
    tuple of that length."""
    if not (isinstance(value, tuple) and len(value) == len(names)):
        raise Failure(f"{function} must return ({', '.join(names)}), got {type(value).__name__}"
                      + (f" of length {len(value)}" if isinstance(value, tuple) else ""))
    return tuple(as_array(item, name) for item, name in zip(value, names)) if arrays else value


def pair(value, what: str):
    """An op-pair forward's return value must be (out, cache)."""
    return returned(value, what, ("out", "cache"), arrays=False)
