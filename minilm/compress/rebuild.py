"""A model of the same kind as another, with another config and weights: what pruning (fewer heads)
and distillation (fewer layers) need after they have cut the weights down.

    smaller = rebuilt(model, config, params)    # same class, heads and backend as `model`
    reference = rebuilt(twin, twin.config, numpy_params(twin), backend="numpy")

The model is built in NumPy (`minilm.numpy`: Encoder, Decoder or a task head on an Encoder, with
the same MLM head and pooler as `model`), its weights loaded by name (`load_params` checks every
name and shape), and for a torch `model` turned into its twin with the same attention backend, on
the same device, in the same mode (train or eval) — unless `backend` asks for the other twin.
"""

from __future__ import annotations

import numpy as np

from minilm.common.backends import check_backend, is_torch_model, numpy_params, on_backend
from minilm.config import ModelConfig


def rebuilt(model, config: ModelConfig, params: dict[str, np.ndarray], backend: str | None = None):
    """A model of `model`'s class and heads with `config` and `params` (NumPy arrays), on
    `backend` ("numpy" | "torch"; default: `model`'s)."""
    import minilm.numpy as reference

    backend = check_backend(backend) if backend is not None else (
        "torch" if is_torch_model(model) else "numpy")

    kind = type(model).__name__
    if not hasattr(reference, kind):
        raise ValueError(f"cannot rebuild a {kind}; expected one of Encoder, Decoder, "
                         "SequenceClassifier, TokenClassifier, QuestionAnswering")
    dtype = next(iter(numpy_params(model).values())).dtype
    if kind == "Decoder":
        skeleton = reference.Decoder(config, dtype=dtype)
    else:
        encoder = getattr(model, "encoder", model)  # a task head's, or the model itself
        skeleton = reference.Encoder(config, dtype=dtype, mlm_head=encoder.mlm_head,
                                     pooler=encoder.pooler is not None)
        if kind != "Encoder":
            labels = {"num_labels": model.num_labels} if hasattr(model, "num_labels") else {}
            skeleton = getattr(reference, kind)(skeleton, **labels)
    skeleton.load_params(params)
    skeleton.train(model.training)
    if backend == "numpy":
        return skeleton
    import minilm.torch as twin

    if not is_torch_model(model):  # from NumPy: the twin's defaults, as `on_backend` picks them
        return on_backend(skeleton, "torch").train(model.training)
    attention = getattr(model, "encoder", model).attention
    device = next(model.parameters()).device
    return getattr(twin, kind).from_numpy(skeleton, attention=attention).to(device).train(
        model.training)
