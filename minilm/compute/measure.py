"""The measurements `minilm.compute`'s predictions are checked against (tests/test_compute.py,
benchmarks/compute.py): what a model really does and holds, as opposed to what its config implies.

    measured_flops(twin, *inputs)            FLOPs of the twin's forward and backward, counted by
                                             torch.utils.flop_counter.FlopCounterMode
    numpy_activation_bytes(model, *inputs)   bytes the NumPy forward allocates and still holds when
                                             it returns (tracemalloc: NumPy reports its buffers)
    torch_activation_bytes(twin, *inputs)    the same for the twin (torch.profiler, profile_memory)

"Still holds when it returns" is the definition of activation memory in `memory.py`: everything
the backward will read, plus the logits. The inputs are made before measuring, so they do not count.

FlopCounterMode counts matrix multiplications (mm, addmm, bmm, and SDPA's CUDA kernels) by formula,
and nothing element-wise: exactly what `flops_per_token` counts. It has no formula for SDPA's CPU
kernel (`_scaled_dot_product_flash_attention_for_cpu`), so on a CPU measure a twin built with
attention="math", whose attention is two visible matmuls.
"""

from __future__ import annotations

import gc
import tracemalloc


def measured_flops(twin, *inputs) -> tuple[int, int]:
    """(forward FLOPs, backward FLOPs) of twin(*inputs) and the backward of the sum of its output."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        output = twin(*inputs)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        output.sum().backward()
    return forward, counter.get_total_flops()


def numpy_activation_bytes(model, *inputs) -> int:
    """Bytes allocated by model.forward(*inputs) and alive after it returns (its output kept)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        output = model.forward(*inputs)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del output
    return held


def torch_activation_bytes(twin, *inputs) -> int:
    """Bytes allocated by twin(*inputs) (autograd recording) and alive after it returns: the sum
    over the profiled operations of what each allocated minus what it freed."""
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        output = twin(*inputs)
    del output
    return sum(event.self_cpu_memory_usage for event in profiler.events())
