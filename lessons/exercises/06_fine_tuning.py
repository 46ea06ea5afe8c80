"""Lesson 06 (fine-tuning): your implementations. Replace each `raise NotImplementedError` with
your code, then grade it:

    minilm check lessons/exercises/06_fine_tuning.py

Each function has the library's name and signature (`minilm.common.names.bert_depth`, the rest in
`minilm.layerwise`). Parameter names are Hugging Face's, e.g. for MiniLM-L6 (n_layers = 6):

    bert.embeddings.word_embeddings.weight                 depth 0
    bert.encoder.layer.0.attention.self.query.weight       depth 1  (block 0)
    bert.encoder.layer.5.output.LayerNorm.bias             depth 6  (block 5, the top block)
    bert.pooler.dense.weight, classifier.bias              depth 7  (n_layers + 1: the head)

The functions may call each other: layerwise_scales and frozen_names can use your bert_depth.
"""


def bert_depth(name, n_layers):
    """How far the parameter `name` sits from the input: 0 for `bert.embeddings.*`, i + 1 for
    `bert.encoder.layer.i.*` (i may have two digits), n_layers + 1 for everything else (the
    pooler and the task head)."""
    raise NotImplementedError


def layerwise_scales(names, n_layers, decay):
    """Layer-wise learning-rate decay: a dict {name: decay ** (n_layers + 1 - depth)} for every
    name in `names`. The head learns at the full rate (scale 1), the top block at `decay`, ...,
    the embeddings at decay ** (n_layers + 1)."""
    raise NotImplementedError


def lowest_trainable_depth(step, unfreeze_every, n_layers):
    """Gradual unfreezing, top down: at `step` (0-based) the parameters of depth >= the returned
    value train. Steps [0, K) train only the head (depth n_layers + 1), steps [K, 2K) add the top
    block (depth n_layers), and so on, one group more every K = unfreeze_every steps, until 0
    (everything trains) — and it stays 0."""
    raise NotImplementedError


def frozen_names(names, n_layers, lowest_depth):
    """The set of names whose depth is below `lowest_depth`: frozen (not updated) at this step."""
    raise NotImplementedError
