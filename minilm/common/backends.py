"""Moving between the two builds: which backend a model is, its weights as NumPy arrays, its
outputs as NumPy arrays, running it for inference, and the generators it draws from. Every loop in
minilm (training, fine-tuning, evaluation, generation, embeddings) takes a model of either backend
through these.

The seeding rule, the same for both backends and every loop: one integer `seed` decides

    the initial weights    the NumPy model's generator, np.random.default_rng(seed); the twin is
                           built from the NumPy model (`on_backend`), so it starts from the same
    dropout masks          NumPy: that same generator, continued after the initialisation;
                           torch: torch's global generator (CPU and every GPU), reset by
                           `on_backend` with torch.manual_seed(seed); under torchrun, process
                           r's with seed + r (`minilm.distributed.seed_dropout`)
    the data               the loop's own np.random.default_rng(seed): random windows and MLM masks
                           (pre-training), the order of the examples (fine-tuning)

and nothing else draws random numbers, so the same seed gives the same loss curve in one process
or in another. (Across the two backends the curves agree too when there is no dropout: the masks
come from different generators.) A checkpoint saves every generator's state (`rng_state`) and
resuming restores it (`set_rng_state`), so a resumed run draws what the uninterrupted one would.

torch is never imported here unless a torch model exists (then it already is), so NumPy-only use
of minilm never loads it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys

import numpy as np

BACKENDS = ("numpy", "torch")  # the hand-written reference, or the autograd twin
DEVICES = ("auto", "cpu", "cuda", "mps")  # where the twin trains (`on_backend`)
DTYPES = ("float32", "bfloat16")  # the twin's training step: float32, or bfloat16 autocast
# the help texts of --device and --dtype, for every loop's settings
DEVICE_HELP = ("where the torch twin trains: auto (a CUDA GPU if there is one, else the CPU), "
               "cpu, cuda, mps; the NumPy reference runs on the CPU")
DTYPE_HELP = ("the torch twin's training step: float32, or bfloat16 mixed precision (matrix "
              "products in bfloat16 under torch.autocast; weights and AdamW stay float32)")


def check_backend(backend: str) -> str:
    """One of BACKENDS, with its library installed: the twin needs PyTorch, which `pip install
    minilm` (the NumPy reference alone) does not bring. (Looked up, not imported.)"""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" and importlib.util.find_spec("torch") is None:
        raise ValueError("backend 'torch' needs PyTorch, which is not installed: pip install "
                         "'minilm[torch]' (or use the NumPy reference, backend 'numpy')")
    return backend


def check_device(backend: str, device: str) -> str:
    """A device the backend runs on: the NumPy reference on the CPU ("auto" or "cpu"), the twin on
    any of DEVICES. (Whether the machine has it is known when the model moves there:
    `on_backend`.)"""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if check_backend(backend) == "numpy" and device not in ("auto", "cpu"):
        raise ValueError(f"device {device!r} is for backend 'torch': the NumPy reference runs on "
                         "the CPU")
    return device


def check_dtype(backend: str, dtype: str) -> str:
    """A training dtype the backend has: float32, or for the twin bfloat16 too (NumPy has none)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if check_backend(backend) == "numpy" and dtype != "float32":
        raise ValueError(f"dtype {dtype!r} is for backend 'torch': NumPy has no bfloat16")
    return dtype


def is_torch_model(model) -> bool:
    """Whether `model` is a torch module (a torch model can only exist if torch was imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def check_model_class(model, class_name: str, use: str, argument: str = "model") -> None:
    """`model` must be a `class_name` of either twin, told by the class's name, which both twins
    share (so the check needs no torch import): e.g. a Decoder given for sentence embeddings."""
    if type(model).__name__ != class_name:
        raise ValueError(f"{argument} is {_a(type(model).__name__)}; {use} needs "
                         f"{_a(class_name)} (minilm.numpy or minilm.torch)")


def _a(name: str) -> str:
    return f"an {name}" if name[0] in "AEIOU" else f"a {name}"


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
    from minilm.torch import state_dict_to_params

    return state_dict_to_params(model.state_dict())


@contextlib.contextmanager
def eval_mode(model):
    """`model` in eval mode (dropout off) for the duration; its own mode (train or eval) restored
    afterwards, even after an error. For gradients of a model in eval mode (saliency, head
    importance); `inference` when none are needed."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def inference(model):
    """Run `model` for inference: `eval_mode` and, for a torch model, no autograd graph.

        with inference(model):
            logits = to_numpy(model.forward(ids))
    """
    with eval_mode(model):
        if is_torch_model(model):
            import torch

            with torch.no_grad():
                yield model
        else:
            yield model


def on_backend(numpy_model, backend: str, seed: int = 0, device: str = "auto"):
    """The model to train on `backend`: the NumPy model itself, or its PyTorch twin (the class of
    the same name in `minilm.torch`, with the same weights) on `device` with the attention that
    suits it (`minilm.torch.functional.training_device_and_attention`: "auto" is a CUDA GPU with
    the Triton kernel when there is one, else the CPU with SDPA; the Triton interpreter is for
    testing, far too slow to train with). Building in NumPy first gives both backends the same
    initial weights from the same seed; for the twin, torch's global generator (its dropout masks)
    is reset here with `seed` (the seeding rule at the top of this module)."""
    if check_device(backend, device) and backend == "numpy":
        return numpy_model
    import torch

    import minilm.torch as twin
    from minilm.torch.functional import training_device_and_attention

    torch.manual_seed(seed)

    device, attention = training_device_and_attention(device)
    twin_class = getattr(twin, type(numpy_model).__name__)
    return twin_class.from_numpy(numpy_model, attention=attention).to(device)


def rng_state(model) -> dict:
    """The state of the generator that draws `model`'s dropout masks, as JSON-ready data: the NumPy
    model's own generator (a task head's is its encoder's), or torch's global generators (the
    CPU's and, when there is one, every GPU's) for a torch model."""
    if not is_torch_model(model):
        return {"numpy": _numpy_generator(model).bit_generator.state}
    import torch

    state = {"torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [device_state.tolist() for device_state in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(model, state: dict) -> None:
    """Put back what `rng_state` returned, so the next dropout masks are the ones that would have
    followed. A state saved on the other backend cannot be restored (ValueError)."""
    expected = "torch" if is_torch_model(model) else "numpy"
    if expected not in state:
        raise ValueError(f"the saved generator state is for {sorted(state)}, not this "
                         f"{expected} model")
    if expected == "numpy":
        _numpy_generator(model).bit_generator.state = state["numpy"]
        return
    import torch

    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if torch.cuda.is_available() and "cuda" in state:
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def restored_generator(state: dict) -> np.random.Generator:
    """A NumPy generator that continues from `bit_generator.state` (a loop's data generator, as
    a checkpoint saved it)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def _numpy_generator(model) -> np.random.Generator:
    """A NumPy model's generator; a task head draws from its encoder's."""
    return getattr(model, "encoder", model).rng
