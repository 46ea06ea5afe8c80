"""Lesson 11 (what it costs): reference solutions, written the way a learner would."""

BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
STATES = {"adamw": 2, "sgd-momentum": 1, "sgd": 0}


def block_parameters(config):
    c, f = config.d_model, config.d_ff
    attention = 4 * (c * c + c)  # W_q, W_k, W_v, W_o and their biases
    feed_forward = (c * f + f) + (f * c + c)  # C -> F, then F -> C
    layer_norms = 2 * (2 * c)  # two of them, a scale and a shift each
    return attention + feed_forward + layer_norms


def attention_flops(config, seq_len):
    c, t = config.d_model, seq_len
    head_width = c // config.n_heads
    projections = 4 * 2 * t * c * c  # (T x C) @ (C x C), four times
    scores = config.n_heads * 2 * t * t * head_width  # Q K^T per head: (T x D) @ (D x T)
    weighted_values = config.n_heads * 2 * t * t * head_width  # P V per head: (T x T) @ (T x D)
    return projections + scores + weighted_values


def optimizer_state_bytes(n_parameters, dtype="float32", optimizer="adamw"):
    return STATES[optimizer] * n_parameters * BYTES[dtype]
