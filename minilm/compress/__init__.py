"""Making a trained model smaller (seed §7, model compression), three ways, each in both twins:

    quantize.py   int8 weights (per output channel) and inputs (per token): 4x fewer bytes for
                  every Linear, integer matrix products (quantize_torch.py: the twin's int8 kernel)
    prune.py      remove the least important attention heads for real: smaller matrices
    distill.py    train a student with fewer blocks on the teacher's softened outputs
    rebuild.py    a model of the same kind with another config (what pruning and distilling build)

Which heads matter is measured in `minilm.interpret` (`head_importance`). The measurements on
MiniLM-L6 fine-tuned for sentiment: benchmarks/compression.py, benchmarks/results/compression.md.
"""

from minilm.compress.distill import (
    DistillSettings,
    distill,
    distillation_loss,
    distillation_loss_backward,
    distillation_loss_forward,
    student_from_teacher,
)
from minilm.compress.prune import heads_to_prune, mask_heads, prune_heads, random_heads
from minilm.compress.quantize import (
    dequantize_per_channel,
    int8_linear_forward,
    model_bytes,
    quantize,
    quantize_per_channel,
)

__all__ = [
    "DistillSettings",
    "dequantize_per_channel",
    "distill",
    "distillation_loss",
    "distillation_loss_backward",
    "distillation_loss_forward",
    "heads_to_prune",
    "int8_linear_forward",
    "mask_heads",
    "model_bytes",
    "prune_heads",
    "quantize",
    "quantize_per_channel",
    "random_heads",
    "student_from_teacher",
]
