"""The log of a run's evaluations, as it goes: each evaluation is one JSON object appended as a line
to `metrics.jsonl` in the run directory, printed as one readable line, and, with `--tensorboard`,
written as TensorBoard scalars (into RUN/tensorboard: `tensorboard --logdir runs`).

    log = MetricsLog(out_dir, tensorboard=False, echo=True)
    log.write({"step": 400, "val_loss": 0.4746, ...}, "step 400/1800: val loss 0.4746 ...")
    log.close()

JSON Lines because a line is whole the moment it is written: a run that dies keeps every
evaluation it made, `tail -f runs/clm/metrics.jsonl` follows a live run, and
`pandas.read_json(path, lines=True)` reads it into a table. (metrics.json, written once at the end,
is the summary.) A resumed run first drops the lines after its checkpoint's step: the interrupted
run wrote them after its last save, and the resumed one writes them again, so the file ends as the
uninterrupted run's does (`resume_step`); TensorBoard is told the same with `purge_step`.

TensorBoard is optional and minilm does not depend on it. The writer is torch's
(`torch.utils.tensorboard.SummaryWriter`), which needs the `tensorboard` package: asking for it
without is a ValueError saying what to install, raised before anything is trained
(`check_tensorboard`).
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from minilm.checkpoint import METRICS_LOG_FILE, TENSORBOARD_DIR
from minilm.files import write_atomic

TENSORBOARD_HELP = ("also write each evaluation as TensorBoard scalars into --out/tensorboard "
                    "(needs the tensorboard package, not a dependency of minilm)")


def check_tensorboard() -> None:
    """ValueError unless a TensorBoard writer can be made: torch and the tensorboard package."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as error:
        raise ValueError(f"--tensorboard needs torch and the tensorboard package ({error}); "
                         "`pip install tensorboard`, or leave --tensorboard out: the evaluations "
                         f"are in {METRICS_LOG_FILE} either way") from None


class MetricsLog:
    """Appends evaluation records to `directory`/metrics.jsonl (nothing when `directory` is None),
    prints each one's readable line when `echo`, and writes its numbers as TensorBoard scalars at
    its "step" when `tensorboard`. `resume_step`: the checkpoint a resumed run continues from; the
    records after it are dropped."""

    def __init__(self, directory, tensorboard: bool = False, echo: bool = True,
                 resume_step: int = 0):
        self.path = None if directory is None else Path(directory) / METRICS_LOG_FILE
        self.echo = echo
        self.writer = None
        if self.path is not None and resume_step > 0 and self.path.is_file():
            _keep_records_up_to(self.path, resume_step)
        if tensorboard:
            if directory is None:
                raise ValueError("--tensorboard writes into the run directory: give --out")
            check_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(directory) / TENSORBOARD_DIR),
                                        purge_step=resume_step + 1 if resume_step > 0 else None)

    def write(self, record: dict, line: str) -> None:
        """Log one evaluation: `record` (JSON-ready, with a "step") and its readable `line`."""
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if self.echo:
            from tqdm.auto import tqdm

            tqdm.write(line)  # above a progress bar, not through it
        if self.writer is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, numbers.Real) and not isinstance(value,
                                                                                         bool):
                    self.writer.add_scalar(name, value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics_log(path) -> list[dict]:
    """The records of a metrics.jsonl, in order (a last line cut short by a crash is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _keep_records_up_to(path: Path, step: int) -> None:
    kept = [record for record in read_metrics_log(path) if record.get("step", 0) <= step]
    write_atomic(path, "".join(json.dumps(record) + "\n" for record in kept).encode("utf-8"))
