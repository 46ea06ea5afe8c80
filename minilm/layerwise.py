"""The layer-wise fine-tuning strategies of seed §3.4, as functions of parameter names and steps
(why they help: `minilm/finetune.py`'s docstring). Both backends use them the same way: the scales
become `lr_scale`, the frozen set goes to each step (`minilm.steps`).

Depth counts from the input (`minilm.common.names.bert_depth`): embeddings 0, block i -> i + 1,
everything above the last block (pooler, classifier) L + 1 for an L-layer encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from minilm.common.checks import number_in
from minilm.common.names import bert_depth


def layerwise_lr_scale(
    names: Iterable[str], depth_of: Callable[[str], int], max_depth: int, decay: float
) -> dict[str, float]:
    """Layer-wise learning-rate decay: `{name: decay ** (max_depth − depth_of(name))}`.

    Depth counts from the input: for an L-layer encoder, embeddings 0, block i → i + 1, the
    task head L + 1 = max_depth. The head then learns at the full rate and each step down
    multiplies by `decay`, so the embeddings get decay^(L+1): general low-level features move
    least while fine-tuning. Pass the result as either step's `lr_scale`. For BERT names,
    `layerwise_scales` below.
    """
    number_in("decay", decay, "(0, 1]")
    scales = {}
    for name in names:
        depth = depth_of(name)
        if not 0 <= depth <= max_depth:
            raise ValueError(f"depth_of({name!r}) = {depth} is outside [0, max_depth={max_depth}]")
        scales[name] = decay ** (max_depth - depth)
    return scales


def layerwise_scales(names, n_layers: int, decay: float) -> dict[str, float]:
    """Learning-rate multipliers decay^(n_layers + 1 − depth): 1 for the head, decay for the top
    block, ..., decay^(n_layers + 1) for the embeddings."""
    return layerwise_lr_scale(names, lambda name: bert_depth(name, n_layers), n_layers + 1, decay)


def default_unfreeze_every(total_steps: int, n_layers: int) -> int:
    """Steps between unfreezings so that the embeddings (the last of n_layers + 1 thaws) become
    trainable halfway through training: max(1, (total_steps // 2) // (n_layers + 1)). With fewer
    than 2 (n_layers + 1) steps that is one thaw per step, which still reaches the embeddings
    before the last step if there are at least n_layers + 2 steps (`check_unfreezing`)."""
    return max(1, (total_steps // 2) // (n_layers + 1))


def check_unfreezing(unfreeze_every: int, total_steps: int, n_layers: int) -> None:
    """Gradual unfreezing must thaw every group, the embeddings last, before the last of
    `total_steps` steps: (n_layers + 1) * unfreeze_every < total_steps. Otherwise the bottom of
    the encoder never trains (with 2 steps, only the head and the top block would): that is
    fine-tuning with a frozen encoder, not what --gradual-unfreezing says, so it is refused
    rather than run, naming the steps it would take."""
    lowest = lowest_trainable_depth(total_steps - 1, unfreeze_every, n_layers)
    if lowest > 0:
        groups = n_layers + 1  # the blocks and the embeddings, below the head
        raise ValueError(
            f"--gradual-unfreezing thaws the {groups} groups below the head one every "
            f"{unfreeze_every} step(s), the embeddings last: {total_steps} steps thaw "
            f"{groups - lowest}, so the embeddings{' and the lowest blocks' if lowest > 1 else ''}"
            f" would never train; give at least {groups * unfreeze_every + 1} steps (--max-steps "
            f"or --epochs){', a smaller --unfreeze-every' if unfreeze_every > 1 else ''} or drop "
            "--gradual-unfreezing")


def lowest_trainable_depth(step: int, unfreeze_every: int, n_layers: int) -> int:
    """Gradual unfreezing: parameters with bert_depth >= this are trainable at `step` (0-based).

    Steps [0, K) train depth n_layers + 1 only (pooler + classifier), [K, 2K) add the top block,
    and so on, one group down every K = unfreeze_every steps, until depth 0 (everything).
    """
    return max(0, n_layers + 1 - step // unfreeze_every)


def frozen_names(names, n_layers: int, lowest_depth: int) -> frozenset[str]:
    """The parameters below `lowest_depth`: frozen at this step."""
    return frozenset(name for name in names if bert_depth(name, n_layers) < lowest_depth)
