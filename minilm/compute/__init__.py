"""What a Transformer costs, counted from its `ModelConfig` alone (seed §8): parameters, FLOPs,
memory and time, each function's formula in its docstring, each proven in tests/test_compute.py
against the built models, against measurement (FlopCounterMode, tracemalloc, torch.profiler) and
against the published numbers (GPT-3, BERT, GPT-2).

    parameters.py   parameter_count, block_parameters, the presets' architectures (PRESET_MODELS)
    flops.py        flops_per_token, attention_flops, training_flops (beside 6 N D),
                    time_estimate, measured_mfu
    memory.py       memory: weights, gradients, optimizer states (optimizer_state_bytes),
                    activations, KV cache
    report.py       the table `minilm compute PRESET` prints
"""

from minilm.compute.flops import (
    TrainingFlops,
    attention_flops,
    flops_per_token,
    measured_mfu,
    time_estimate,
    training_flops,
)
from minilm.compute.memory import (
    Memory,
    dtype_bytes,
    layer_activations,
    memory,
    optimizer_state_bytes,
)
from minilm.compute.parameters import PRESET_MODELS, Breakdown, block_parameters, parameter_count
from minilm.compute.report import report

__all__ = [
    "PRESET_MODELS", "Breakdown", "Memory", "TrainingFlops", "attention_flops", "block_parameters",
    "dtype_bytes", "flops_per_token", "layer_activations", "measured_mfu", "memory",
    "optimizer_state_bytes", "parameter_count", "report", "time_estimate", "training_flops",
]
