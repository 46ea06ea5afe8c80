"""Under nbval (`make test`), every picture a lesson's cell draws must be the one stored in the
notebook, as its text output must be: nbval compares the text and skips pictures, so this adds the
pictures (`minilm.testing.pictures`: by their pixels, with a tolerance for the last bits of the
numbers drawn). A cell nbval does not check (tagged nbval-ignore-output) is not checked here either.
"""

import pytest
from nbval.plugin import NbCellError

from minilm.testing.pictures import stale_pictures


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # nbval ran the cell and compared its text
    drawn = getattr(item, "test_outputs", None)  # what the cell gave now (nbval's cells only)
    if drawn is not None and item.options.get("check") and item.cell.execution_count is not None:
        problems = stale_pictures(item.cell.outputs, drawn)
        if problems:  # reported as nbval reports a cell whose text differs
            raise NbCellError(item.cell_num, "the stored picture is stale: " + "; ".join(problems)
                              + " (make lessons-execute stores what the code draws now)",
                              item.cell.source)
    return result
