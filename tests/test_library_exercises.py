"""The library against its own grader: every exercise of the course is a library function (same
name, same signature), and the library's implementation passes every property `minilm check`
grades a learner's with — the same properties, strategies and oracles, one copy (the properties
and their tolerances are stated in minilm/check/exercises/).

The implementation is found by name in the NumPy side of the package: modules whose name says
torch hold the twin's versions (minilm.torch.functional.causal_mask,
minilm.compress.quantize_torch), which are checked against the reference elsewhere.
"""

import importlib
import pkgutil

import pytest
from hypothesis import settings

import minilm
from minilm.check.catalogue import EXERCISES, PROPERTIES
from minilm.check.runner import run_property

NOT_SEARCHED = ("minilm.check", "minilm.testing", "minilm.kernels", "minilm.cli", "minilm.commands",
                "minilm.__main__")


def library_implementations() -> dict[str, list]:
    """Exercise name -> the functions of that name defined in the library's modules."""
    found: dict[str, list] = {name: [] for name in EXERCISES}
    for module_info in pkgutil.walk_packages(minilm.__path__, "minilm."):
        if module_info.name.startswith(NOT_SEARCHED) or "torch" in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for name in EXERCISES:
            function = getattr(module, name, None)
            if callable(function) and getattr(function, "__module__", None) == module_info.name:
                found[name].append(function)
    return found


IMPLEMENTATIONS = library_implementations()
LIBRARY = {name: functions[0] for name, functions in IMPLEMENTATIONS.items() if functions}


def test_every_exercise_is_one_library_function():
    """A learner writes what the library has: each exercise name is defined exactly once."""
    assert {name: len(f) for name, f in IMPLEMENTATIONS.items() if len(f) != 1} == {}


@pytest.mark.parametrize("prop", [p for p in PROPERTIES if all(n in LIBRARY for n in p.needs)],
                         ids=lambda p: f"{p.target}: {p.name}")
def test_the_library_has_every_property_minilm_check_grades(prop):
    result = run_property(prop, LIBRARY, settings())
    assert result.status == "passed", f"{result.message}\n{result.counterexample}"
