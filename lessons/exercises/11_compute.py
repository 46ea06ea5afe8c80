"""Lesson 11 (what it costs): your implementations. Replace each `raise NotImplementedError` with
your code, then grade it:

    minilm check lessons/exercises/11_compute.py

Each function has the library's name and signature (`minilm.compute`). `config` is a
`minilm.ModelConfig`: config.d_model (C), config.d_ff (F), config.n_heads (H), config.n_layers,
config.vocab_size, config.max_len. Return a number (the library returns a dict of named parts,
`Breakdown`, whose `.total` is that number; you may return either). Use Python integers: GPT-3's
counts do not fit a float32.
"""


def block_parameters(config):
    """The number of parameters of one Transformer block (GPT-2's and BERT's have the same):
    the attention layer (the query, key, value and output projections, each a C x C matrix with a
    bias of C), the feed-forward network (C -> F -> C, each Linear with its bias) and two
    LayerNorms (a scale and a shift of C each)."""
    raise NotImplementedError


def attention_flops(config, seq_len):
    """The floating-point operations of the matrix products in one multi-head attention layer's
    forward pass over one sequence of T = seq_len tokens, counting 2 per multiply-add (an
    (m x k) @ (k x n) product is 2 m k n FLOPs): the four projections (Q, K, V from the input,
    and the output projection of the heads), the scores Q K^T and the weighted values P V of
    every head (H heads of width D = C / H)."""
    raise NotImplementedError


def optimizer_state_bytes(n_parameters, dtype="float32", optimizer="adamw"):
    """The bytes an optimizer keeps between steps for `n_parameters` parameters stored in `dtype`
    ("float64", "float32", "bfloat16" or "float16"): `optimizer` "adamw" keeps two numbers per
    parameter (the running means m and v), "sgd-momentum" one (the velocity), "sgd" none."""
    raise NotImplementedError
