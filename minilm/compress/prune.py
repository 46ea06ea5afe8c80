"""Head pruning (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): remove whole
attention heads for real — smaller matrices, not a mask.

Head h of a block owns D = d_model / n_heads consecutive rows of the query, key and value
projections (rows h*D .. h*D + D - 1 of each (H*D, C) weight, and of their biases) and the same D
columns of the output projection (C, H*D). Its output reaches the residual stream only through
those columns, so deleting the rows and the columns removes the head exactly: the pruned model
computes what the full model computes with that head's output multiplied by 0
(`mask_heads`, the per-head gates of `minilm.interpret`; tests/test_compress.py checks both equal).

    heads = heads_to_prune(importance, fraction=0.5)     # {layer: [heads]}, least important first
    smaller = prune_heads(model, heads)                  # either twin; config.pruned_heads records it

Heads are named by their index in the unpruned model, as Hugging Face's `pruned_heads` names them;
pruning a pruned model again removes more (heads already gone are skipped). Every block keeps at
least one head (`ModelConfig` refuses a block without any).

What it saves, per head: D rows of each of Q, K, V with their biases and D columns of the output
projection, 4 D C + 3 D weights: 49,248 for MiniLM-L6 (D = 384 / 12 = 32, C = 384), 3.5M for all 72
heads of its 22.7M (11.7M of which are word embeddings). Attention's matrix work falls in
proportion; the feed-forward layers do not change, and they are about two thirds of a block's
matrix work at these lengths (16 C^2 multiply-adds per token against attention's 8 C^2 + 4 T C).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from minilm.common.backends import numpy_params
from minilm.common.checks import check_finite, int_at_least, is_int, number_in
from minilm.common.names import BERT_BLOCK_NAMES, GPT2_BLOCK_NAMES
from minilm.compress.quantize import check_not_quantized
from minilm.compress.rebuild import rebuilt

__all__ = ["heads_to_prune", "mask_heads", "prune_heads", "random_heads"]


def heads_to_prune(importance, fraction: float, keep_per_layer: int = 1) -> dict[int, list[int]]:
    """The round(fraction * L * H) least important heads over the whole model (a global ranking,
    as Michel et al.), never the last `keep_per_layer` of a block: {layer: sorted heads}.

    importance (L, H), finite: the scores of an unpruned model (`head_importance` marks a pruned
    head NaN; rank the full model's heads instead). Ties go to the lower (layer, head). fraction
    in [0, 1]; keep_per_layer in [1, H] (a block keeps at least one head: `ModelConfig` refuses
    one without any). At most L * (H - keep_per_layer) heads can go; asking for more is a
    ValueError naming the limit.
    """
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 2:
        raise ValueError(f"importance must be (n_layers, n_heads), got shape {importance.shape}")
    check_finite("importance", importance)
    n_layers, n_heads = importance.shape
    number_in("fraction", fraction, "[0, 1]")
    if int_at_least("keep_per_layer", keep_per_layer, 1) > n_heads:
        raise ValueError(f"keep_per_layer must be at most the {n_heads} heads of a block, got "
                         f"{keep_per_layer}")
    wanted = round(fraction * n_layers * n_heads)
    limit = n_layers * (n_heads - keep_per_layer)
    if wanted > limit:
        raise ValueError(f"fraction={fraction} asks to prune {wanted} heads, but keeping "
                         f"{keep_per_layer} per layer allows at most {limit}")
    order = np.argsort(importance, axis=None, kind="stable")  # least important first
    chosen: dict[int, list[int]] = {}
    for flat in order:
        if sum(map(len, chosen.values())) == wanted:
            break
        layer, head = divmod(int(flat), n_heads)
        if len(chosen.get(layer, [])) < n_heads - keep_per_layer:
            chosen.setdefault(layer, []).append(head)
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def random_heads(n_layers: int, n_heads: int, fraction: float, rng: np.random.Generator,
                 keep_per_layer: int = 1) -> dict[int, list[int]]:
    """The baseline: as many heads as `heads_to_prune` would take, chosen at random (random
    scores ranked by the same rule)."""
    return heads_to_prune(rng.random((n_layers, n_heads)), fraction, keep_per_layer)


def _checked_heads(config, heads) -> dict[int, set[int]]:
    """`heads` ({layer: heads}, both by their index in the unpruned model) as {layer: set of
    heads}: every layer an int in [0, n_layers), every head an int in [0, n_heads) (NumPy ints
    too). A negative index would name another head, 1.7 be cut to 1, "1" compare with nothing."""
    if not isinstance(heads, dict):
        raise ValueError(f"heads must be a dict {{layer: [heads]}}, got {type(heads).__name__}")
    checked = {}
    for layer, removed in heads.items():
        removed = list(removed) if isinstance(removed, Iterable) else removed
        if not (_is_index(layer, config.n_layers) and isinstance(removed, list)
                and all(_is_index(head, config.n_heads) for head in removed)):
            raise ValueError(f"heads: layer {layer!r} -> {removed!r} is not an int layer in "
                             f"[0, {config.n_layers}) with a list of int heads in "
                             f"[0, {config.n_heads})")
        checked[int(layer)] = {int(head) for head in removed}
    return checked


def _is_index(value, stop: int) -> bool:
    """An int (Python's or NumPy's; not a bool, a float or a str) in [0, stop)."""
    return is_int(value) and 0 <= value < stop


def _block_names(params: dict, layer: int) -> tuple[str, dict]:
    """The block's prefix and its sub-layer names, BERT's or GPT-2's, read off the weights."""
    for prefix, names in ((f"bert.encoder.layer.{layer}.", BERT_BLOCK_NAMES),
                          (f"transformer.h.{layer}.", GPT2_BLOCK_NAMES)):
        if any(name.startswith(prefix) for name in params):
            return prefix, names
    raise ValueError(f"no block {layer} among the weights (expected BERT or GPT-2 names)")


def _kept_rows(remaining: list[int], heads: set[int], head_dim: int) -> np.ndarray:
    """Rows (in the current, possibly pruned, layout) of the heads of `remaining` not in `heads`."""
    kept = [position for position, head in enumerate(remaining) if head not in heads]
    kept = np.asarray(kept, dtype=np.int64)
    return (kept[:, None] * head_dim + np.arange(head_dim)).reshape(-1)  # (H' D,)


def prune_heads(model, heads: dict[int, list[int]]):
    """A copy of `model` (either twin, any BERT or GPT-2 model of minilm) without `heads`
    ({layer: heads, by their index in the unpruned model}); `model` is left as it is."""
    check_not_quantized(model, "prune its heads")
    config = model.config
    pruned = {layer: set(done) for layer, done in config.pruned_heads.items()}
    params = dict(numpy_params(model))
    for layer, removed in _checked_heads(config, heads).items():
        removed -= pruned.get(layer, set())
        if not removed:
            continue
        remaining = [h for h in range(config.n_heads) if h not in pruned.get(layer, set())]
        rows = _kept_rows(remaining, removed, config.head_dim)
        prefix, names = _block_names(params, layer)
        qkv, out = names["qkv"], prefix + names["attn_out"]
        if isinstance(qkv, str):  # GPT-2's fused (3 H D, C): the same rows of each third
            width = len(remaining) * config.head_dim
            rows_qkv = np.concatenate([rows + part * width for part in range(3)])
            projections = [(prefix + qkv, rows_qkv)]
        else:  # BERT's query, key, value, each (H D, C)
            projections = [(prefix + name, rows) for name in qkv]
        for name, keep in projections:
            params[f"{name}.weight"] = params[f"{name}.weight"][keep]  # (H' D, C)
            params[f"{name}.bias"] = params[f"{name}.bias"][keep]  # (H' D,)
        params[f"{out}.weight"] = params[f"{out}.weight"][:, rows]  # (C, H' D)
        pruned[layer] = pruned.get(layer, set()) | removed
    smaller = dataclasses.replace(config, pruned_heads=pruned)  # checked: a head left per block
    return rebuilt(model, smaller, params)


def mask_heads(model, heads: dict[int, list[int]]) -> None:
    """Switch `heads` off without removing them, in place: gate 0 on their outputs, 1 on the others
    (`minilm.interpret.set_head_gates`) of an unpruned `model`. What pruning computes, at full
    size."""
    from minilm.interpret import set_head_gates

    gates = np.ones((model.config.n_layers, model.config.n_heads))
    for layer, removed in _checked_heads(model.config, heads).items():
        gates[layer, list(removed)] = 0.0
    set_head_gates(model, gates)
