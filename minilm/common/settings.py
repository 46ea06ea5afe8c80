"""Settings dataclasses whose fields carry their own help text, so that each command's flags are
derived from the settings it fills (`minilm.cli.add_settings_arguments`) and never written twice.

    @dataclass
    class TrainSettings:
        steps: int = setting(1000, "optimizer steps")
        objective: str = setting("clm", "next token (clm) or masked tokens (mlm)",
                                 choices=("clm", "mlm"))
"""

from __future__ import annotations

import dataclasses


def setting(default, help: str, **flag):
    """A dataclass field with a default, a help text and argparse extras (choices, metavar, nargs,
    const) for its command-line flag."""
    return dataclasses.field(default=default, metadata={"help": help, **flag})
