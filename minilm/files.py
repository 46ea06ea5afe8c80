"""Writing files safely: so that a file always holds either its old or its new contents
(`write_atomic`, `write_json`), and so that an output a command names is known to be writable
before any work is done (`check_writable`). Run directories (`minilm.checkpoint`), the metrics log
and the commands write through these.

Test hook: with MINILM_TEST_SAVE_PAUSE="NAME:SECONDS" in the environment, each atomic write of a
file called NAME waits SECONDS between writing its temporary file and renaming it, so a test can
kill a real training process in the middle of a save (tests/test_checkpoints.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path


def write_atomic(path, data: bytes) -> None:
    """Write `data` to `path` so that `path` always holds either its old or its new contents."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    # created with the permissions of an ordinary file (0o666 less the umask): mkstemp's 0o600
    # would make every file of a run private to its owner
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _test_pause(path)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable (POSIX can fsync a directory)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _test_pause(path: Path) -> None:
    """The test hook of the module docstring (MINILM_TEST_SAVE_PAUSE="NAME:SECONDS")."""
    name, _, seconds = os.environ.get("MINILM_TEST_SAVE_PAUSE", "").partition(":")
    if name == path.name:
        time.sleep(float(seconds))


def write_json(path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def listing(directory, besides=frozenset()) -> str:
    """The names in `directory` other than `besides`, sorted, the first four joined by commas
    (", ..." after them when there are more), for an error about what an output would replace;
    "" for an empty or missing directory."""
    directory = Path(directory)
    names = sorted({path.name for path in directory.iterdir()} - set(besides)
                   if directory.is_dir() else ())
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def check_writable(flag: str, path, directory: bool = False) -> None:
    """What a flag names as an output (a file, or a `directory` created if need be) can be
    written: said before any work is done, and by trying, since permissions alone do not tell
    (root may write anywhere but /proc). The trial leaves no trace: what it created, it removes.
    Refused: an empty path (Path("") is the current directory, whose files the output would join),
    a file where a directory is wanted or the reverse, a path below a file, and what the system
    will not write."""
    expected = "a directory" if directory else "a file"
    if not str(path).strip():
        raise ValueError(f"{flag} must not be empty; expected {expected}")
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):  # opening a FIFO blocks
        raise ValueError(f"{flag} {str(path)!r} is not a regular file (a pipe or a device); "
                         f"expected {expected}")
    if path.exists() and path.is_dir() != directory:
        raise ValueError(f"{flag} {str(path)!r} is an existing "
                         f"{'file' if directory else 'directory'}; expected {expected}")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if existing != path and not existing.is_dir():
        raise ValueError(f"{flag} {str(path)!r} cannot be written: {str(existing)!r} is a file")
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        if directory:
            path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path).close()
        else:
            open(path, "ab").close()  # appends nothing to a file that exists
    except OSError as error:
        raise ValueError(f"{flag} {str(path)!r} cannot be written: {error.strerror}") from None
    finally:
        for made in created:
            if made.is_dir():
                made.rmdir()
            elif made.exists():
                made.unlink()
