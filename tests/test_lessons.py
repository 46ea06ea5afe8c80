"""The course's exercises, graded by `minilm check` (the notebooks themselves run under nbval, see
the Makefile's `test` target: every cell executes and its output must equal the stored one).

For every lesson NN:
- lessons/solutions/NN_*.py, the reference solutions, pass every property of their lesson, and
  define every exercise of it;
- lessons/exercises/NN_*.py, the stubs a learner starts from, read "not attempted" (or "blocked",
  for a backward whose forward is a stub) everywhere, and define every exercise of the lesson;
- every mistake of lessons/mistakes/NN_*.py (a wrong implementation marked with
  `@mistake(description, breaks=property)`) fails the property it names, with a message and a
  hint, when it replaces the solution's function of the same name — by the property's own check,
  not because the code crashed (unless the mistake is marked `crashes=True`).
"""

import importlib.util
import re
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from minilm.check import check
from minilm.check.catalogue import EXERCISES, PROPERTIES
from minilm.check.framework import MISTAKES

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def lesson_of(path: Path) -> str:
    return re.match(r"(\d\d)_", path.name).group(1)


def files(folder: str) -> list[Path]:
    return sorted((LESSONS / folder).glob("[0-9][0-9]_*.py"))


def load(path: Path):
    """Import a lesson file by path, under a name of its own."""
    name = f"lesson_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercises_of(lesson: str) -> set[str]:
    return {name for name, exercise in EXERCISES.items() if exercise.lesson == lesson}


def defined(module) -> dict:
    """The exercise functions a lesson file defines itself."""
    return {name: value for name, value in vars(module).items()
            if name in EXERCISES and getattr(value, "__module__", None) == module.__name__}


def solution_functions(lesson: str) -> dict:
    (path,) = [p for p in files("solutions") if lesson_of(p) == lesson]
    return defined(load(path))


def catalogued_mistakes():
    """(lesson, function) for every @mistake of lessons/mistakes/, in file order."""
    found = []
    for path in files("mistakes"):
        before = len(MISTAKES)
        load(path)
        found += [(lesson_of(path), function) for function in MISTAKES[before:]]
    return found


MISTAKE_CASES = catalogued_mistakes()


def test_every_lesson_with_exercises_has_stubs_solutions_and_mistakes():
    lessons = {exercise.lesson for exercise in EXERCISES.values()}
    for folder in ("exercises", "solutions"):
        assert {lesson_of(p) for p in files(folder)} == lessons, folder
    assert len(MISTAKE_CASES) >= 20


@pytest.mark.parametrize("path", files("solutions"), ids=lambda p: p.name)
def test_every_solution_passes(path):
    lesson = lesson_of(path)
    assert set(defined(load(path))) == exercises_of(lesson)
    report = check(path, settings=settings())
    assert report.ok and report.count("passed") == len(report.results), report.table()
    assert {r.exercise for r in report.results} == exercises_of(lesson)


@pytest.mark.parametrize("path", files("exercises"), ids=lambda p: p.name)
def test_every_stub_reads_not_attempted(path):
    lesson = lesson_of(path)
    assert set(defined(load(path))) == exercises_of(lesson)
    report = check(path, settings=settings(max_examples=2))
    assert {r.status for r in report.results} <= {"not attempted", "blocked"}, report.table()
    assert report.ok  # nothing attempted, nothing failed: exit status 0


@pytest.mark.parametrize("lesson, wrong", MISTAKE_CASES,
                         ids=[f"{lesson}-{f.__name__}: {f.mistake[0]}" for lesson, f in
                              MISTAKE_CASES])
def test_every_catalogued_mistake_is_caught(lesson, wrong):
    description, breaks, crashes = wrong.mistake
    functions = {**solution_functions(lesson), wrong.__name__: wrong}
    relevant = [p for p in PROPERTIES if wrong.__name__ in p.needs]
    assert breaks in {p.name for p in relevant}, f"{breaks!r} is not a property of {wrong.__name__}"
    # Found, not shrunk: a small counterexample matters to a learner, not to this test (and
    # shrinking is most of the cost of checking a wrong implementation).
    found = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])
    report = check(list(functions.values()), settings=found, properties=relevant)
    caught = [r for r in report.failed() if r.property == breaks]
    assert caught, f"{description}: {breaks!r} did not fail\n{report.table()}"
    assert caught[0].message and caught[0].hint
    # a wrong answer is caught by the property's own check, not by the code falling over
    assert caught[0].message.startswith("raised ") == crashes, caught[0].message
