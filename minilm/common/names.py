"""Names and constants both twins (and everything around them) agree on.

Parameter names are the Hugging Face checkpoints' own, so loading real weights is a walk over a
dict; the tables below say what each sub-layer of a Transformer block is called in each family.
"""

IGNORE_INDEX = -100  # the target of positions a loss skips (PyTorch's cross_entropy default)

# ModelConfig.activation -> the `approximate` argument of GELU (minilm's F.gelu_forward and
# torch.nn.functional.gelu spell it the same way): BERT's exact erf form, GPT-2's tanh form.
GELU_APPROXIMATE = {"gelu": "none", "gelu_tanh": "tanh"}

# Parameter names inside one block of each checkpoint family, relative to the block's prefix
# (`bert.encoder.layer.3.`, `transformer.h.3.`). BERT's three projections are separate matrices;
# GPT-2 fuses them into one (3C, C) `c_attn`.
BERT_BLOCK_NAMES = {
    "qkv": ("attention.self.query", "attention.self.key", "attention.self.value"),
    "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
    "ff_in": "intermediate.dense", "ff_out": "output.dense", "ff_norm": "output.LayerNorm",
}
GPT2_BLOCK_NAMES = {
    "qkv": "attn.c_attn", "attn_out": "attn.c_proj", "attn_norm": "ln_1",
    "ff_in": "mlp.c_fc", "ff_out": "mlp.c_proj", "ff_norm": "ln_2",
}


def gelu_approximate(activation: str) -> str:
    """The GELU form of a config's activation, or a ValueError naming the choices (a config edited
    after its own checks ran can still hold anything)."""
    if activation not in GELU_APPROXIMATE:
        raise ValueError(
            f"activation must be one of {tuple(GELU_APPROXIMATE)}, got {activation!r}"
        )
    return GELU_APPROXIMATE[activation]


def bert_depth(name: str, n_layers: int) -> int:
    """Depth of a BERT parameter counted from the input: embeddings 0, `bert.encoder.layer.i`
    i + 1, everything above the last block (pooler, task head) n_layers + 1."""
    if name.startswith("bert.embeddings."):
        return 0
    if name.startswith("bert.encoder.layer."):
        return int(name.split(".")[3]) + 1
    return n_layers + 1

# BART (`BartForConditionalGeneration`), the encoder-decoder minilm.numpy.Seq2Seq follows: an
# encoder layer is BERT's post-LN block under other names; a decoder layer adds cross-attention
# (`encoder_attn`: queries from the target, keys and values from the encoder's output) between its
# causal self-attention and its feed-forward network.
BART_BLOCK_NAMES = {
    "qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "attn_out": "self_attn.out_proj", "attn_norm": "self_attn_layer_norm",
    "ff_in": "fc1", "ff_out": "fc2", "ff_norm": "final_layer_norm",
}
BART_CROSS_ATTENTION_NAMES = {
    "qkv": ("encoder_attn.q_proj", "encoder_attn.k_proj", "encoder_attn.v_proj"),
    "attn_out": "encoder_attn.out_proj", "attn_norm": "encoder_attn_layer_norm",
}
