"""Lesson 06 (fine-tuning): reference solutions, written the way a learner would."""


def bert_depth(name, n_layers):
    if name.startswith("bert.embeddings."):
        return 0
    if name.startswith("bert.encoder.layer."):
        block = int(name.split(".")[3])  # "bert", "encoder", "layer", "<i>", ...
        return block + 1
    return n_layers + 1  # the pooler and the task head sit above the last block


def layerwise_scales(names, n_layers, decay):
    top = n_layers + 1
    return {name: decay ** (top - bert_depth(name, n_layers)) for name in names}


def lowest_trainable_depth(step, unfreeze_every, n_layers):
    thawed = step // unfreeze_every  # groups below the head thawed so far
    return max(0, n_layers + 1 - thawed)


def frozen_names(names, n_layers, lowest_depth):
    return {name for name in names if bert_depth(name, n_layers) < lowest_depth}
