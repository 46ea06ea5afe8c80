"""Moving between the two builds: which backend a model is, its weights as NumPy arrays, its
outputs as NumPy arrays, and running it for inference. Every loop in minilm (training,
fine-tuning, evaluation, generation, embeddings) takes a model of either backend through these.

torch is never imported here unless a torch model exists (then it already is), so NumPy-only use
of minilm never loads it.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

BACKENDS = ("numpy", "torch")  # the hand-written reference, or the autograd twin


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def is_torch_model(model) -> bool:
    """Whether `model` is a torch module (a torch model can only exist if torch was imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def to_numpy(values) -> np.ndarray:
    """A NumPy array of `values`: arrays and lists as they are, tensors (any device) detached and
    copied to the host; float16 and bfloat16 become float32 (NumPy has no bfloat16)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(values, torch.Tensor):
        return np.asarray(values)
    values = values.detach()
    if values.is_floating_point():
        values = values.to(torch.promote_types(values.dtype, torch.float32))
    return values.cpu().numpy()


def numpy_params(model) -> dict[str, np.ndarray]:
    """A model's weights by checkpoint name as NumPy arrays, for either backend: a NumPy model's
    own `params` (the live arrays), or copies of a torch model's `state_dict()`."""
    if not is_torch_model(model):
        return model.params
    return {name: to_numpy(value).copy() for name, value in model.state_dict().items()}


@contextlib.contextmanager
def inference(model):
    """Run `model` for inference: eval mode (dropout off) and, for a torch model, no autograd
    graph. The model's own mode (train or eval) is restored afterwards, even after an error.

        with inference(model):
            logits = to_numpy(model.forward(ids))
    """
    was_training = model.training
    model.eval()
    try:
        if is_torch_model(model):
            import torch

            with torch.no_grad():
                yield model
        else:
            yield model
    finally:
        model.train(was_training)


def on_backend(numpy_model, backend: str, seed: int = 0):
    """The model to train on `backend`: the NumPy model itself, or its PyTorch twin (the class of
    the same name in `minilm.torch`, with the same weights) on the training device: a CUDA GPU with
    the Triton kernel when there is one, else the CPU with SDPA (the Triton interpreter is for
    testing, far too slow to train with). Building in NumPy first gives both backends the same
    initial weights from the same seed.

    The seeding rule: a NumPy model draws its dropout masks from its own generator (seeded when
    it was built); the twin draws them from torch's global generator, seeded here with `seed`, so
    the same seed gives the same run, on either backend, every time."""
    if check_backend(backend) == "numpy":
        return numpy_model
    import torch

    import minilm.torch as twin
    from minilm.torch.functional import training_device_and_attention

    torch.manual_seed(seed)

    device, attention = training_device_and_attention()
    twin_class = getattr(twin, type(numpy_model).__name__)
    return twin_class.from_numpy(numpy_model, attention=attention).to(device)
