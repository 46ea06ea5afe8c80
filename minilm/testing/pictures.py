"""Is a lesson's stored picture still what its code draws?

The lessons are committed executed, pictures included, and the test suite runs them under nbval,
which compares every cell's text output with the stored one but skips pictures. `lessons/conftest.py`
compares them with `stale_pictures`, so that a plot whose code, or the library under it, changed
without `make lessons-execute` fails like a stale number.

Drawing is deterministic (matplotlib's Agg renderer with its bundled fonts, at the pinned versions: a
re-execution stores the same bytes), but the numbers a plot draws may differ in their last bits on
another CPU, which can move an antialiased edge by a shade. So the pictures are compared by their
pixels, not their bytes: a pixel has changed when one of its channels moves by more than
CHANNEL_TOLERANCE (of 255), and a picture is stale when more than CHANGED_PIXELS of its pixels
changed, or its size did. A count, not a fraction of the picture: one printed number rewritten
changes about 25 pixels of an 8-point label whatever the figure's size (the tests show a number, a
word and data caught), while a curve whose points all moved by 1e-3 changes none.
"""

from __future__ import annotations

import base64
import io

import numpy as np

CHANNEL_TOLERANCE = 24  # of 255
CHANGED_PIXELS = 16  # more changed pixels than this: stale


def pixels(encoded: str) -> np.ndarray:
    """A base64 PNG, as a notebook stores it -> (height, width, 4) RGBA integers."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.int16)


def pictures_of(outputs) -> list[str]:
    """The base64 PNGs among a cell's outputs (nbformat's output dicts), in order."""
    return [output["data"]["image/png"] for output in outputs
            if "image/png" in output.get("data", {})]


def stale_pictures(stored_outputs, new_outputs) -> list[str]:
    """One line per picture of a cell that differs between the outputs stored in the notebook and
    those its code gives now (nbformat output dicts); [] when every picture is still the same."""
    stored, new = pictures_of(stored_outputs), pictures_of(new_outputs)
    if len(stored) != len(new):
        return [f"the cell draws {len(new)} picture(s), the notebook stores {len(stored)}"]
    problems = []
    for number, (old, now) in enumerate(zip(stored, new), start=1):
        if old == now:
            continue
        before, after = pixels(old), pixels(now)
        if before.shape != after.shape:
            problems.append(f"picture {number}: {after.shape[1]} x {after.shape[0]} pixels, the "
                            f"stored one {before.shape[1]} x {before.shape[0]}")
            continue
        changed = int((np.abs(before - after).max(axis=-1) > CHANNEL_TOLERANCE).sum())
        if changed > CHANGED_PIXELS:
            problems.append(f"picture {number}: {changed} of its {before.shape[0] * before.shape[1]}"
                            " pixels differ from the stored one's")
    return problems
