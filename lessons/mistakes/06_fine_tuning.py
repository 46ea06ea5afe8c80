"""Common mistakes of lesson 06, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

from minilm.check.framework import mistake
from minilm.common.names import bert_depth as depth  # the right one, for the other mistakes


@mistake("block number read as one character (layer 10 becomes 1)",
         breaks="puts embeddings at 0, block i at i + 1 and the head on top")
def bert_depth(name, n_layers):
    if name.startswith("bert.embeddings."):
        return 0
    if name.startswith("bert.encoder.layer."):
        return int(name[len("bert.encoder.layer.")]) + 1  # only the first digit
    return n_layers + 1


@mistake("head put at depth n_layers, level with the top block",
         breaks="puts embeddings at 0, block i at i + 1 and the head on top")
def bert_depth(name, n_layers):  # noqa: F811 - each mistake is its own implementation
    if name.startswith("bert.embeddings."):
        return 0
    if name.startswith("bert.encoder.layer."):
        return int(name.split(".")[3]) + 1
    return n_layers


@mistake("layer-wise decay inverted: the embeddings at the full rate, the head slowest",
         breaks="the head learns at the full rate and each layer below more slowly")
def layerwise_scales(names, n_layers, decay):
    return {name: decay ** depth(name, n_layers) for name in names}


@mistake("exponent off by one: the head at decay, the embeddings at decay ** (n_layers + 2)",
         breaks="gives each name decay ** (n_layers + 1 - depth)")
def layerwise_scales(names, n_layers, decay):  # noqa: F811
    return {name: decay ** (n_layers + 2 - depth(name, n_layers)) for name in names}


@mistake("unfreezing bottom-up: the embeddings first, the head last",
         breaks="starts with only the head trainable")
def lowest_trainable_depth(step, unfreeze_every, n_layers):
    # "thaw one group per K steps" read as raising the frozen floor from the bottom
    return min(n_layers + 1, step // unfreeze_every)


@mistake("the top block thawed from step 0 (one group too early)",
         breaks="starts with only the head trainable")
def lowest_trainable_depth(step, unfreeze_every, n_layers):  # noqa: F811
    return max(0, n_layers - step // unfreeze_every)


@mistake("no floor at 0: the depth keeps falling below the embeddings",
         breaks="thaws one group every unfreeze_every steps, top down, to 0")
def lowest_trainable_depth(step, unfreeze_every, n_layers):  # noqa: F811
    return n_layers + 1 - step // unfreeze_every


@mistake("frozen up to and including lowest_depth (<= instead of <)",
         breaks="freezes exactly the parameters below lowest_depth")
def frozen_names(names, n_layers, lowest_depth):
    return {name for name in names if depth(name, n_layers) <= lowest_depth}
