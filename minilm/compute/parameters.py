"""How many parameters a Transformer has, counted from its `ModelConfig` alone: no model is built.

With C = d_model, F = d_ff, L = n_layers, V = vocab_size, P = max_len, S = type_vocab_size:

    one block       attention       4 C^2 + 4 C     W_q, W_k, W_v, W_o (C x C each) and their biases
                    feed-forward    2 C F + F + C   C -> F -> C, with biases
                    layer norms     4 C             two, each a scale and a shift
    GPT-2 Decoder   V C + P C + L (4 C^2 + 2 C F + 9 C + F) + 2 C      (+ the final LayerNorm)
    BERT Encoder    V C + P C + S C + 2 C + L (...) + heads            (+ the embedding LayerNorm)

P C only with learned positions (sinusoidal ones are computed, not learned). With F = 4 C a block
holds 12 C^2 + 13 C: the "12 L C^2" of the scaling-law papers.

Tied weights count once: the output layer that turns hidden states into logits *is* the word
embedding matrix (GPT-2's LM head, BERT's MLM decoder), so it adds nothing. What else an encoder
counts is chosen by the same flags as the `Encoder` constructors, with the same defaults:

    mlm_head=True   BERT's MLM head: transform dense (C^2 + C), its LayerNorm (2 C), output bias (V)
    pooler=False    BERT's pooler: tanh(W h_[CLS] + b), C^2 + C, the input of the classifier

A published BERT (`BertModel`: bert-base's 110M, MiniLM-L6's 22.7M) is the encoder and its pooler,
without the MLM head: `parameter_count(config, "encoder", mlm_head=False, pooler=True)`;
`PRESET_MODELS` records that choice for every preset.
"""

from __future__ import annotations

from minilm.common.checks import check_flag
from minilm.config import ModelConfig, check_config

MODELS = ("decoder", "encoder")
ENCODER_PARTS = {"mlm_head": True, "pooler": False}  # the flags of Encoder(...), and their defaults

# What each preset in `minilm.config.PRESETS` is, as released: (model, parts).
PRESET_MODELS: dict[str, tuple[str, dict]] = {
    "tiny": ("decoder", {}),
    "demo": ("decoder", {}),
    "minilm-l6": ("encoder", dict(mlm_head=False, pooler=True)),  # a BertModel checkpoint
    "bert-base": ("encoder", dict(mlm_head=False, pooler=True)),
    "bert-large": ("encoder", dict(mlm_head=False, pooler=True)),
    "gpt2": ("decoder", {}),
    "gpt2-medium": ("decoder", {}),
    "gpt2-large": ("decoder", {}),
    "gpt2-xl": ("decoder", {}),
    "gpt3-175b": ("decoder", {}),
}


class Breakdown(dict):
    """Named terms of one quantity (parameters, FLOPs or bytes), in order; `total` is their sum."""

    @property
    def total(self):
        return sum(self.values())


def model_parts(config: ModelConfig, model: str, parts: dict) -> dict:
    """The checked `model` and its head flags, defaults filled in: {} for a decoder (GPT-2 has one
    head, tied), {"mlm_head": ..., "pooler": ...} for an encoder, each True or False."""
    check_config(config)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    known = ENCODER_PARTS if model == "encoder" else {}
    unknown = sorted(set(parts) - set(known))
    if unknown:
        raise ValueError(f"a {model} has no parts {unknown}; its parts are {sorted(known) or 'none'}")
    for part, value in parts.items():
        check_flag(part, value)
    return {**known, **parts}


def block_parameters(config: ModelConfig) -> Breakdown:
    """Parameters of one Transformer block, GPT-2's or BERT's (the same tensors, named apart):

        attention       4 C^2 + 4 C     W_q, W_k, W_v, W_o, each C x C with a bias of C
        feed_forward    2 C F + F + C   C -> F (weight and bias), F -> C (weight and bias)
        layer_norm      4 C             two LayerNorms, each a scale and a shift of C

        >>> block_parameters(ModelConfig.preset("gpt2")).total   # 12 C^2 + 13 C, C = 768
        7087872
    """
    c, f = check_config(config).d_model, config.d_ff
    return Breakdown(attention=4 * c * c + 4 * c, feed_forward=2 * c * f + f + c,
                     layer_norm=4 * c)


def parameter_count(config: ModelConfig, model: str = "decoder", **parts) -> Breakdown:
    """Parameters of a Decoder (GPT-2) or an Encoder (BERT, with its `parts`), per component:
    embeddings (word, position, token type), attention, feed_forward, layer_norm, heads.

        >>> parameter_count(ModelConfig.preset("gpt2")).total
        124439808
    """
    parts = model_parts(config, model, parts)
    c, n, block = config.d_model, config.n_layers, block_parameters(config)
    positions = config.max_len if config.positions == "learned" else 0
    count = Breakdown(
        embeddings=(config.vocab_size + positions) * c,
        attention=n * block["attention"],
        feed_forward=n * block["feed_forward"],
        layer_norm=n * block["layer_norm"] + 2 * c,  # + the final / the embedding LayerNorm
        heads=0,  # the LM head is the word embedding matrix
    )
    if model == "encoder":
        count["embeddings"] += config.type_vocab_size * c
        if parts["mlm_head"]:  # transform dense + output bias (the decoder matrix is tied)
            count["heads"] += c * c + c + config.vocab_size
            count["layer_norm"] += 2 * c
        if parts["pooler"]:
            count["heads"] += c * c + c
    return count
