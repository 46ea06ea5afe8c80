"""What a Transformer costs, counted from its `ModelConfig` alone (seed §8): parameters, FLOPs,
memory and time, each function's formula in its docstring, each proven in tests/test_compute.py
against the built models, against measurement (FlopCounterMode, tracemalloc, torch.profiler) and
against the published numbers (GPT-3, BERT, GPT-2).

    parameters.py   parameter_count, the presets' architectures (PRESET_MODELS)
    flops.py        flops_per_token, training_flops (beside 6 N D), time_estimate, measured_mfu
    memory.py       memory: weights, gradients, optimizer states, activations, KV cache
    report.py       the table `minilm compute PRESET` prints
"""

from minilm.compute.flops import (
    TrainingFlops,
    flops_per_token,
    measured_mfu,
    time_estimate,
    training_flops,
)
from minilm.compute.memory import Memory, dtype_bytes, layer_activations, memory
from minilm.compute.parameters import PRESET_MODELS, Breakdown, parameter_count
from minilm.compute.report import report

__all__ = [
    "PRESET_MODELS", "Breakdown", "Memory", "TrainingFlops", "dtype_bytes", "flops_per_token",
    "layer_activations", "measured_mfu", "memory", "parameter_count", "report", "time_estimate",
    "training_flops",
]
