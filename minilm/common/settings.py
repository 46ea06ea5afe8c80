"""Settings dataclasses whose fields carry their own help text, so that each command's flags are
derived from the settings it fills (`minilm.cli.add_settings_arguments`) and never written twice;
`check_choices` holds the Python API to the same choices as the flags.

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


def check_choices(settings) -> None:
    """Every field of a settings dataclass declared with `choices` holds one of them (ValueError
    naming the field otherwise): the flag's choices, checked for the Python API too."""
    for field in dataclasses.fields(settings):
        choices = field.metadata.get("choices")
        value = getattr(settings, field.name)
        if choices is not None and value not in choices:
            raise ValueError(f"{field.name} must be one of {tuple(choices)}, got {value!r}")
