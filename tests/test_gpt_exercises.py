"""The library's own `clm_batch` (minilm.data) and `sample_next` (minilm.generation) pass every
property `minilm check` grades a learner's versions with in lesson 03 (the optimizer's are run in
test_optim.py): one copy of each check, shared by the tests and the checker."""

import pytest
from hypothesis import settings

from minilm import data, generation
from minilm.check.catalogue import PROPERTIES
from minilm.check.runner import run_property

LIBRARY = {"clm_batch": data.clm_batch, "sample_next": generation.sample_next}


@pytest.mark.parametrize("prop", [p for p in PROPERTIES if p.target in LIBRARY],
                         ids=lambda p: f"{p.target}: {p.name}")
def test_the_library_has_every_property_minilm_check_grades(prop):
    result = run_property(prop, LIBRARY, settings())
    assert result.status == "passed", f"{result.message}\n{result.counterexample}"
