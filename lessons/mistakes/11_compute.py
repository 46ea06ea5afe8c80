"""Common mistakes of lesson 11, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

from minilm.check.framework import mistake


@mistake("the '12 C^2 per block' rule taken as exact: no biases, no LayerNorms",
         breaks="equals the parameters of block 0 of a built GPT-2 and BERT")
def block_parameters(config):
    c, f = config.d_model, config.d_ff
    return 4 * c * c + 2 * c * f


@mistake("one LayerNorm per block instead of two",
         breaks="equals the parameters of block 0 of a built GPT-2 and BERT")
def block_parameters(config):  # noqa: F811 - each mistake is its own implementation
    c, f = config.d_model, config.d_ff
    return 4 * (c * c + c) + (2 * c * f + f + c) + 2 * c


@mistake("the feed-forward width taken as 4 C whatever config.d_ff says",
         breaks="equals the parameters of block 0 of a built GPT-2 and BERT")
def block_parameters(config):  # noqa: F811
    c = config.d_model
    f = 4 * c
    return 4 * (c * c + c) + (2 * c * f + f + c) + 4 * c


@mistake("a multiply-add counted as one FLOP",
         breaks="equals the matmul FLOPs torch counts in one attention layer")
def attention_flops(config, seq_len):
    c, t = config.d_model, seq_len
    return 4 * t * c * c + 2 * t * t * c


@mistake("the scores and weighted values of one head only (2 T^2 D instead of 2 T^2 C)",
         breaks="equals the matmul FLOPs torch counts in one attention layer")
def attention_flops(config, seq_len):  # noqa: F811
    c, t = config.d_model, seq_len
    head_width = c // config.n_heads
    return 8 * t * c * c + 4 * t * t * head_width


@mistake("the output projection W_o forgotten: three projections",
         breaks="equals the matmul FLOPs torch counts in one attention layer")
def attention_flops(config, seq_len):  # noqa: F811
    c, t = config.d_model, seq_len
    return 3 * 2 * t * c * c + 4 * t * t * c


@mistake("AdamW given one state per parameter (m without v)",
         breaks="equals what minilm's optimizers hold after a step")
def optimizer_state_bytes(n_parameters, dtype="float32", optimizer="adamw"):
    size = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}[dtype]
    return (0 if optimizer == "sgd" else 1) * n_parameters * size


@mistake("4 bytes per number whatever the dtype",
         breaks="equals what minilm's optimizers hold after a step")
def optimizer_state_bytes(n_parameters, dtype="float32", optimizer="adamw"):  # noqa: F811
    return {"adamw": 2, "sgd-momentum": 1, "sgd": 0}[optimizer] * n_parameters * 4


@mistake("plain SGD given a momentum buffer",
         breaks="equals what minilm's optimizers hold after a step")
def optimizer_state_bytes(n_parameters, dtype="float32", optimizer="adamw"):  # noqa: F811
    size = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}[dtype]
    return (2 if optimizer == "adamw" else 1) * n_parameters * size


@mistake("the head width as c / n_heads (a float): the count comes out a float, not an int",
         breaks="equals minilm.compute for the published models at full context")
def attention_flops(config, seq_len):  # noqa: F811
    c, t = config.d_model, seq_len
    head_width = c / config.n_heads  # true division: 32.0, not 32
    return 4 * 2 * t * c * c + 2 * config.n_heads * 2 * t * t * head_width
