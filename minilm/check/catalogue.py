"""Every lesson's exercises and properties: importing an exercises module registers its lesson;
here they are listed in lesson order (within a lesson, in the order the module defines them)."""

from minilm.check import framework
from minilm.check.exercises import (  # noqa: F401 - importing a module registers its lesson
    applications,
    attention,
    block,
    compression,
    compute,
    finetuning,
    flash,
    gpt,
    language_models,
    masked_lm,
    pretrained_model,
    translation,
)

EXERCISES = dict(sorted(framework.EXERCISES.items(), key=lambda item: item[1].lesson))
PROPERTIES = sorted(framework.PROPERTIES, key=lambda p: EXERCISES[p.target].lesson)

__all__ = ["EXERCISES", "PROPERTIES"]
