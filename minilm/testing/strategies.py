"""Hypothesis strategies shared by the test suite and `minilm check` (in the manner of minitorch's
tests/strategies.py): one copy, so a learner's code is checked on the inputs the project's own code
is tested on.

Each section belongs to one part of the library; add new strategies to the section they serve.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ---------------------------------------------------------------- arrays


def float_arrays(shape, dtype=np.float64, low=-3.0, high=3.0):
    """Finite floats in [low, high]: the range where finite differences stay well conditioned."""
    return hnp.arrays(dtype, shape, elements=st.floats(low, high, width=64 if dtype == np.float64 else 32))


seeds = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------- models


@st.composite
def model_configs(draw, positions=None, activation=None, max_layers=2, max_heads=4, dropout=0.0):
    """Tiny `ModelConfig`s: 1..max_layers layers, 1..max_heads heads of width 2..4, a short max_len.

    d_model >= 4: LayerNorm over 2 channels sends every row to +-(1, -1), a function so sharply
    curved where the two channels nearly agree that finite differences lose their accuracy.
    `positions` / `activation` fix those fields (default: drawn)."""
    from minilm.config import ACTIVATIONS, POSITION_KINDS, ModelConfig

    n_heads = draw(st.integers(1, max_heads))
    return ModelConfig(
        vocab_size=draw(st.integers(3, 13)),
        max_len=draw(st.integers(2, 8)),
        d_model=n_heads * draw(st.integers(max(2, -(-4 // n_heads)), 4)),
        n_heads=n_heads,
        n_layers=draw(st.integers(1, max_layers)),
        d_ff=draw(st.integers(2, 16)),
        dropout=dropout,
        activation=activation or draw(st.sampled_from(ACTIVATIONS)),
        layer_norm_eps=draw(st.sampled_from([1e-5, 1e-12])),
        positions=positions or draw(st.sampled_from(POSITION_KINDS)),
    )


@st.composite
def token_batches(draw, config, max_batch=3, time=None):
    """A (B, T) int64 array of ids in [0, vocab_size), T in 1..max_len (or exactly `time`)."""
    batch = draw(st.integers(1, max_batch))
    time = draw(st.integers(1, config.max_len)) if time is None else time
    return draw(hnp.arrays(np.int64, (batch, time), elements=st.integers(0, config.vocab_size - 1)))


@st.composite
def padding_masks(draw, batch, time):
    """A (B, T) int64 attention mask of right padding: 1 for the first n_b >= 1 tokens, 0 after."""
    lengths = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
    return (np.arange(time)[None, :] < np.array(lengths)[:, None]).astype(np.int64)

# ---------------------------------------------------------------- attention kernel

ATTENTION_HEAD_DIMS = (16, 24, 32, 64, 80, 96, 128)  # powers of two and not (padded in the kernel)


DEFAULT_SCALES = st.none() | st.floats(0.05, 1.0)  # None: the kernel's default 1/sqrt(D)


@st.composite
def attention_problems(draw, max_len=70, scales=DEFAULT_SCALES):
    """One flash_attention call: sizes B, H, Nq, Nk (independent, often not multiples of a tile),
    head dim D, causal or not, an optional key mask (B, Nk) that sometimes masks a whole batch
    entry, a scale drawn from `scales` (None = 1/sqrt(D)) and a seed for the tensors. Head dims
    above 64 get sequences half as long, to keep the Triton interpreter quick."""
    head_dim = draw(st.sampled_from(ATTENTION_HEAD_DIMS))
    longest = max_len if head_dim <= 64 else max_len // 2
    batch, heads = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n_queries, n_keys = draw(st.integers(1, longest)), draw(st.integers(1, longest))
    key_mask = draw(st.none() | hnp.arrays(np.bool_, (batch, n_keys), elements=st.booleans()))
    if key_mask is not None and draw(st.booleans()):
        key_mask[0] = False  # a batch entry with no real key: every one of its rows attends nothing
    return {
        "batch": batch, "heads": heads, "n_queries": n_queries, "n_keys": n_keys,
        "head_dim": head_dim, "causal": draw(st.booleans()), "key_mask": key_mask,
        "scale": draw(scales), "seed": draw(seeds),
    }

# ---------------------------------------------------------------- text

# Characters that tokenizers get wrong: controls, NUL, U+FFFD, every kind of whitespace, zero-width
# and format characters, combining marks, precomposed accents, CJK ideographs (basic and the edge of
# Extension E), fullwidth forms, Greek capitals (final sigma), dotted capital I, ASCII symbols.
TRICKY_CHARS = (
    "\x00\t\n\r\x0b\x0c\x1c\x1f\x7f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\ufffd\ue000"
    "\u0301\u0308\u0327\u0344\u20dd\u0489\u1734"
    "éÉñçøÅœßİıΣσς\u1e9e"
    "我爱北京中文\u3400\uf900\U00020000\U0002b81f\U0002b820\U0002b920"
    "ＡＢｃ１２！？。、「」"
    "$+<=>^`|~#@&*\\'\"-_.,;:!?()[]{}…—–«»¡¿·"
    "αΩЖжع中ि\u0e01\u0e34"
)
SPECIAL_TOKEN_STRINGS = ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "[mask]", "[MASK", "MASK]")

# Any text a str can hold in UTF-8 (every code point but the surrogates, so unassigned and
# private-use ones too), with the tricky characters and special-token spellings mixed in.
unicode_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(TRICKY_CHARS),
        st.sampled_from(SPECIAL_TOKEN_STRINGS),
    ),
    max_size=40,
).map("".join)


def vocabulary_text(words, max_words=12):
    """Text that reads like text: `words` (a tokenizer's vocabulary, say) in lower, Title or UPPER
    case, some with an accent added (composed or as a combining mark, so that NFD has work to do),
    separated by spaces, runs of punctuation, other whitespace, special tokens or nothing at all.
    Build it once and reuse it: `sampled_from` over a large vocabulary is costly to create."""
    accents = st.sampled_from(["", "", "", "\u0301", "\u0308", "\u0327", "\u0303"])
    separators = (
        st.sampled_from([" ", " ", " ", "", "\t", "\n", "  ", "\u00a0"])
        | st.text(st.sampled_from(".,;:!?'\"-()…"), min_size=1, max_size=3).map(lambda s: s + " ")
        | st.sampled_from(SPECIAL_TOKEN_STRINGS).map(lambda s: f" {s} ")
    )
    styled_words = st.tuples(
        st.sampled_from(sorted(words)),
        st.sampled_from([str.lower, str.title, str.upper]),
        accents,
        st.integers(0, 64),
        st.sampled_from(["NFC", "NFD"]),
        separators,
    ).map(_styled_word)
    return st.lists(styled_words, max_size=max_words).map("".join)


def _styled_word(choice):
    import unicodedata

    word, case, accent, position, form, separator = choice
    word = case(word)
    if accent and word:
        at = 1 + position % len(word)
        word = unicodedata.normalize(form, word[:at] + accent + word[at:])
    return word + separator


# ---- torch twin


def _heads_and_widths(min_head_dim):
    """(n_heads, d_model) pairs with 1 <= n_heads <= 4, 16 <= d_model <= 48, head_dim >= min."""
    return [
        (heads, width)
        for heads in range(1, 5)
        for width in range(16, 49, heads)
        if width % heads == 0 and width // heads >= min_head_dim
    ]


@st.composite
def twin_configs(draw, max_len=12, min_head_dim=1):
    """Small random ModelConfigs (dropout 0) for NumPy <-> PyTorch comparisons: 1-2 layers, 1-4
    heads, d_model 16-48, both position kinds and both activations. `min_head_dim=16` keeps to
    head widths the Triton kernel accepts."""
    from minilm.config import ACTIVATIONS, POSITION_KINDS, ModelConfig

    n_heads, d_model = draw(st.sampled_from(_heads_and_widths(min_head_dim)))
    return ModelConfig(
        vocab_size=draw(st.integers(5, 40)),
        max_len=max_len,
        d_model=d_model,
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 2)),
        d_ff=draw(st.integers(8, 64)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        layer_norm_eps=draw(st.sampled_from([1e-5, 1e-12])),
        type_vocab_size=draw(st.integers(1, 3)),
        positions=draw(st.sampled_from(POSITION_KINDS)),
    )

# ---------------------------------------------------------------- the op pairs (numpy/functional)
#
# Each strategy draws one case: a dict of the op's named inputs, plus "seed" for the random
# upstream gradient a backward check multiplies by (every entry of dout then matters).

small_dims = st.integers(1, 4)
lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@st.composite
def linear_cases(draw):
    """x (..., in), weight (out, in), bias (out,) or None."""
    rng = np.random.default_rng(draw(seeds))
    lead, n_in, n_out = draw(lead_shapes), draw(small_dims), draw(small_dims)
    bias = rng.standard_normal(n_out) if draw(st.booleans()) else None
    return {"x": rng.standard_normal(lead + (n_in,)), "weight": rng.standard_normal((n_out, n_in)),
            "bias": bias, "seed": draw(seeds)}


@st.composite
def embedding_cases(draw):
    """A few rows and many ids, so ids repeat and their gradients must add up."""
    rng = np.random.default_rng(draw(seeds))
    vocab = draw(st.integers(1, 4))
    ids = rng.integers(0, vocab, size=draw(st.sampled_from([(6,), (2, 5), (3, 4)])))
    return {"ids": ids, "weight": rng.standard_normal((vocab, draw(small_dims))),
            "seed": draw(seeds)}


@st.composite
def layer_norm_cases(draw):
    """Rows with standard deviation drawn in [0.1, 3]: near a row of equal values 1/sqrt(var + eps)
    explodes and so do the derivatives that finite differences neglect."""
    rng = np.random.default_rng(draw(seeds))
    channels = draw(st.integers(2, 6))
    z = rng.standard_normal(draw(lead_shapes) + (channels,))
    z = (z - z.mean(-1, keepdims=True)) / z.std(-1, keepdims=True)
    x = draw(st.floats(-3, 3)) + rng.uniform(0.1, 3, z.shape[:-1] + (1,)) * z
    return {"x": x, "weight": 1 + 0.5 * rng.standard_normal(channels),
            "bias": rng.standard_normal(channels), "eps": draw(st.sampled_from([1e-5, 1e-12])),
            "seed": draw(seeds)}


@st.composite
def gelu_cases(draw, low=-3.0, high=3.0):
    """x in [low, high] (finite differences stay well conditioned in [-3, 3]), either form."""
    x = draw(float_arrays(st.tuples(small_dims, small_dims), low=low, high=high))
    return {"x": x, "approximate": draw(st.sampled_from(("none", "tanh"))), "seed": draw(seeds)}


@st.composite
def softmax_cases(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = tuple(draw(st.lists(small_dims, min_size=1, max_size=3)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return {"x": 2 * rng.standard_normal(shape), "axis": axis, "seed": draw(seeds)}


@st.composite
def dropout_cases(draw):
    """x, p and the seed of the generator the mask is drawn from."""
    rng = np.random.default_rng(draw(seeds))
    return {"x": rng.standard_normal(draw(lead_shapes) + (draw(small_dims),)),
            "p": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9])), "rng_seed": draw(seeds),
            "seed": draw(seeds)}


MASK_KINDS = ("none", "keys", "square", "full")


@st.composite
def attention_cases(draw, dropout=True):
    """q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv) with 0..2 leading axes (none: one (Nq, D)
    sequence; two: (B, H)) and every kind of mask the op accepts: none, key padding
    (B, 1, ..., 1, Nk), one (Nq, Nk) mask shared by all heads, a full (..., Nq, Nk) mask;
    optionally causal (Nq != Nk allowed, so some rows may be fully masked), a given scale (0
    included: uniform attention) and (with `dropout`) attention dropout with the seed of its
    generator."""
    rng = np.random.default_rng(draw(seeds))
    lead = tuple(draw(st.lists(st.integers(1, 2), min_size=0, max_size=2)))
    nq, nk, d, dv = draw(small_dims), draw(small_dims), draw(small_dims), draw(small_dims)
    kind = draw(st.sampled_from(MASK_KINDS))
    keys = lead[:1] + (1,) * len(lead[1:]) + (1, nk)  # one row of keys per batch entry
    mask_shape = {"keys": keys, "square": (nq, nk), "full": lead + (nq, nk)}
    return {
        "q": rng.standard_normal(lead + (nq, d)),
        "k": rng.standard_normal(lead + (nk, d)),
        "v": rng.standard_normal(lead + (nk, dv)),
        "attn_mask": None if kind == "none" else rng.random(mask_shape[kind]) < 0.7,
        "causal": draw(st.booleans()),
        "scale": draw(st.sampled_from([None, 0.3, 2.0, 0.0])),
        "dropout_p": draw(st.sampled_from([0.0, 0.0, 0.3])) if dropout else 0.0,
        "rng_seed": draw(seeds),
        "seed": draw(seeds),
    }


@st.composite
def cross_entropy_cases(draw):
    """logits (..., V), targets (...) with some (perhaps all) set to ignore_index, a dloss.
    ignore_index is -100, -1 or 0, a class id itself (a padding id): only the targets equal to
    it are ignored, not every negative one."""
    rng = np.random.default_rng(draw(seeds))
    lead = tuple(draw(st.lists(small_dims, min_size=1, max_size=2)))
    vocab = draw(st.integers(1, 5))
    ignore_index = draw(st.sampled_from([-100, -1, 0]))  # 0: a class id (a padding id, say)
    targets = rng.integers(0, vocab, size=lead)
    targets[rng.random(lead) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = ignore_index
    return {"logits": 3 * rng.standard_normal(lead + (vocab,)), "targets": targets,
            "ignore_index": ignore_index, "dloss": float(rng.normal())}

# ---------------------------------------------------------------- flash attention (numpy/flash)

FLASH_BLOCKS = (1, 2, 3, 4, 5, 8, 16)  # tile sizes: most do not divide the sequence lengths


@st.composite
def flash_attention_cases(draw, max_len=20):
    """q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv) in the kernel's layout; a key mask (B, Nk)
    or None (sometimes with a batch entry that has no real key, so whole rows attend nothing);
    causal or not (Nq != Nk allowed); a scale; tile sizes block_m, block_n drawn independently of
    Nq and Nk, so the last tile is usually partial; a seed for the upstream gradient."""
    rng = np.random.default_rng(draw(seeds))
    batch, heads = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    nq, nk = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    d, dv = draw(small_dims), draw(small_dims)
    key_mask = rng.random((batch, nk)) < 0.7 if draw(st.booleans()) else None
    if key_mask is not None and draw(st.booleans()):
        key_mask[-1] = False
    return {
        "q": rng.standard_normal((batch, heads, nq, d)),
        "k": rng.standard_normal((batch, heads, nk, d)),
        "v": rng.standard_normal((batch, heads, nk, dv)),
        "causal": draw(st.booleans()),
        "key_mask": key_mask,
        "scale": draw(st.sampled_from([None, 0.3, 2.0])),
        "block_m": draw(st.sampled_from(FLASH_BLOCKS)),
        "block_n": draw(st.sampled_from(FLASH_BLOCKS)),
        "seed": draw(seeds),
    }

# ---------------------------------------------------------------- counting language models (bigram.py)


@st.composite
def bigram_cases(draw, min_length=0):
    """A stream `ids` of min_length..40 tokens over a vocabulary of 1..5 (so pairs repeat and others
    never occur; drawn by hypothesis, so a failing stream shrinks to a short one) and a smoothing k
    (0 included: unseen pairs are -inf, unseen rows uniform): the inputs of a bigram fit."""
    vocab = draw(st.integers(1, 5))
    ids = draw(st.lists(st.integers(0, vocab - 1), min_size=min_length, max_size=40))
    return {"ids": np.array(ids, dtype=np.int64), "vocab_size": vocab,
            "smoothing": draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))}


@st.composite
def bigram_scoring_cases(draw):
    """A random (V, V) table of log-probabilities `log_probs` (each row a log-softmax) and a stream
    `ids` of 2..40 tokens to score with it."""
    case = draw(bigram_cases(min_length=2))
    table = 2 * np.random.default_rng(draw(seeds)).standard_normal((case["vocab_size"],) * 2)
    log_probs = table - np.log(np.exp(table).sum(axis=-1, keepdims=True))
    return {"log_probs": log_probs, "ids": case["ids"]}

# ---------------------------------------------------------------- fine-tuning (layerwise.py)

# Parameter names of a BertForSequenceClassification / BertForQuestionAnswering checkpoint, by where
# they sit: the embeddings (depth 0), one encoder block (block i: depth i + 1), above the blocks.
BERT_EMBEDDING_SUFFIXES = ("word_embeddings.weight", "position_embeddings.weight",
                           "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")
BERT_BLOCK_SUFFIXES = tuple(
    f"{layer}.{kind}"
    for layer in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
                  "output.dense", "output.LayerNorm")
    for kind in ("weight", "bias"))
BERT_TOP_NAMES = ("bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
                  "classifier.bias", "qa_outputs.weight", "qa_outputs.bias")


@st.composite
def bert_parameter_names(draw, max_layers=12):
    """Some parameter names of a BERT model with n_layers in 1..max_layers: a few drawn from all of
    them, plus always one of the top block (where two-digit block numbers show) and one above the
    blocks, so that a failing case shrinks to a short list. `{"names": [...], "n_layers": L,
    "decay": d, "lowest_depth": k, "_depths": {name: depth}}`: d a layer-wise decay in (0, 1],
    k in 0..L + 1, and every name's depth known by construction (the oracle of `bert_depth`;
    hidden from a counterexample by its underscore)."""
    # half the draws have two-digit block numbers (MiniLM has 6 blocks, BERT-base 12), so a rule
    # that reads "layer.10" as block 1 is caught every time, not only when the draw happens to
    # reach 11 blocks
    n_layers = draw(st.integers(1, max_layers) | st.integers(min(11, max_layers), max_layers))
    depths = {f"bert.embeddings.{suffix}": 0 for suffix in BERT_EMBEDDING_SUFFIXES}
    for block in range(n_layers):
        depths.update({f"bert.encoder.layer.{block}.{suffix}": block + 1
                       for suffix in BERT_BLOCK_SUFFIXES})
    depths.update({name: n_layers + 1 for name in BERT_TOP_NAMES})
    top_block = [name for name, depth in depths.items() if depth == n_layers]
    some = draw(st.lists(st.sampled_from(sorted(depths)), max_size=30, unique=True))
    names = list(dict.fromkeys(
        [*some, draw(st.sampled_from(top_block)), draw(st.sampled_from(BERT_TOP_NAMES))]))
    return {"names": names, "n_layers": n_layers,
            "decay": draw(st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0])),
            "lowest_depth": draw(st.integers(0, n_layers + 1)), "_depths": depths}


@st.composite
def unfreezing_cases(draw):
    """A gradual-unfreezing schedule: n_layers in 1..12, one group thawed every 1..8 steps."""
    return {"n_layers": draw(st.integers(1, 12)), "unfreeze_every": draw(st.integers(1, 8))}

# ---------------------------------------------------------------- task heads' outputs (common/spans.py)


@st.composite
def span_cases(draw, masked=None, tied=None):
    """start_logits, end_logits (B, T); max_answer_len in 1..T + 1; an allowed_mask (B, T) with at
    least one True per row, or None. Logits are Gaussian or (tied) small integers, where many
    spans tie. `masked` / `tied` fix those choices (default: drawn). Without ties, a third of the
    cases put the best unconstrained span exactly one token past max_answer_len, where an
    off-by-one in the length limit shows."""
    rng = np.random.default_rng(draw(seeds))
    batch, time = draw(st.integers(1, 3)), draw(st.integers(1, 12))
    tied = draw(st.booleans()) if tied is None else tied
    shape = (batch, time)
    start, end = ((rng.integers(0, 3, shape) if tied else 3 * rng.standard_normal(shape))
                  .astype(np.float64) for _ in range(2))
    max_answer_len = draw(st.integers(1, time + 1))
    if not tied and max_answer_len < time and draw(st.integers(0, 2)) == 0:
        first = rng.integers(0, time - max_answer_len, batch)  # (B,) the too-long span's start
        start[np.arange(batch), first] += 20.0
        end[np.arange(batch), first + max_answer_len] += 20.0  # it is max_answer_len + 1 long
    allowed = None
    if draw(st.booleans()) if masked is None else masked:
        allowed = rng.random(shape) < draw(st.sampled_from([0.3, 0.6, 0.9]))
        allowed[np.arange(batch), rng.integers(0, time, batch)] = True  # every row allows one
    return {"start_logits": start, "end_logits": end, "max_answer_len": max_answer_len,
            "allowed_mask": allowed}


@st.composite
def word_alignment_cases(draw):
    """A tokenized sentence as `word_ids` (T,): [CLS], each of 1..6 words spread over 1..4 word
    pieces, [SEP], then 0..3 padding tokens; special tokens and padding are -1 (as an int array) or
    None (as a list, the way Hugging Face's `word_ids()` returns them). word_labels (W,) in
    0..8 and an ignore_index."""
    pieces = draw(st.lists(st.integers(1, 4), min_size=1, max_size=6))
    special = draw(st.sampled_from([-1, None]))
    word_ids = ([special] + [w for w, n in enumerate(pieces) for _ in range(n)] + [special]
                + [special] * draw(st.integers(0, 3)))
    labels = draw(st.lists(st.integers(0, 8), min_size=len(pieces), max_size=len(pieces)))
    return {"word_ids": np.array(word_ids) if special == -1 else word_ids,
            "word_labels": np.array(labels, dtype=np.int64),
            "ignore_index": draw(st.sampled_from([-100, -1, 255]))}

# ---------------------------------------------------------------- masked language modelling (data.py)

# (mask_token_prob, random_token_prob) pairs: BERT's 80/10/10 and others, the extremes included
MASKING_SPLITS = ((0.8, 0.1), (0.6, 0.3), (0.3, 0.2), (0.5, 0.5), (1.0, 0.0), (0.0, 1.0))


@st.composite
def masking_cases(draw, n_tokens=8192, mask_prob=None, split=None):
    """The inputs of `mask_tokens`: `ids` of ~n_tokens in one of three shapes, over a vocabulary
    of 8..60 ids of which 2..4 are special, drawn anywhere in the vocabulary (`mask_id` and
    `pad_id` among them); each row (the last axis) ends in 0..50% padding and holds ~5% other
    special tokens; `mask_prob` and (`mask_token_prob`, `random_token_prob`) (default: drawn);
    `rng_seed` for the generator the masking draws from. Thousands of tokens, so that a rate
    counted on one case has a small standard error."""
    rng = np.random.default_rng(draw(seeds))
    vocab = draw(st.integers(8, 60))
    special = rng.choice(vocab, size=draw(st.integers(2, 4)), replace=False)
    mask_id, pad_id = int(special[0]), int(special[1])
    shape = draw(st.sampled_from([(n_tokens,), (32, n_tokens // 32), (4, 8, n_tokens // 32)]))
    ordinary = np.setdiff1d(np.arange(vocab), special)
    ids = rng.choice(ordinary, size=shape)
    sprinkled = rng.random(shape) < 0.05
    ids[sprinkled] = rng.choice(special, size=int(sprinkled.sum()))
    lengths = rng.integers(shape[-1] // 2, shape[-1] + 1, size=shape[:-1] + (1,))
    ids = np.where(np.arange(shape[-1]) < lengths, ids, pad_id)  # right padding
    mask_token_prob, random_token_prob = split or draw(st.sampled_from(MASKING_SPLITS))
    return {"ids": ids, "vocab_size": vocab, "mask_id": mask_id, "pad_id": pad_id,
            "special_ids": [int(i) for i in special],
            "mask_prob": mask_prob if mask_prob is not None
            else draw(st.sampled_from([0.15, 0.15, 0.3, 0.5, 1.0])),
            "mask_token_prob": mask_token_prob, "random_token_prob": random_token_prob,
            "rng_seed": draw(seeds)}

# ---------------------------------------------------------------- sentence embeddings (embeddings.py)


@st.composite
def pooling_cases(draw):
    """hidden (B, T, C) and an int attention mask (B, T): right padding, left padding or holes
    anywhere, every row with at least one real token; `seed` for redrawing the padded positions."""
    rng = np.random.default_rng(draw(seeds))
    batch, time, channels = draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(small_dims)
    kind = draw(st.sampled_from(["right", "left", "holes"]))
    lengths = rng.integers(1, time + 1, size=(batch, 1))
    if kind == "right":
        mask = np.arange(time) < lengths
    elif kind == "left":
        mask = np.arange(time) >= time - lengths
    else:
        mask = rng.random((batch, time)) < 0.6
        mask[np.arange(batch), rng.integers(0, time, batch)] = True
    return {"hidden": 3 * rng.standard_normal((batch, time, channels)),
            "attention_mask": mask.astype(np.int64), "seed": draw(seeds)}


@st.composite
def embedding_rows(draw):
    """embeddings (N, C), N in 1..6, whose rows point anywhere and have lengths spread from 1e-2 to
    1e2 (no zero row); `seed` for rescaling them."""
    rng = np.random.default_rng(draw(seeds))
    n, channels = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    lengths = 10.0 ** rng.uniform(-2, 2, size=(n, 1))
    rows = rng.standard_normal((n, channels))
    rows[np.linalg.norm(rows, axis=1) < 1e-3] = 1.0  # a direction for every row
    return {"embeddings": lengths * rows / np.linalg.norm(rows, axis=1, keepdims=True),
            "seed": draw(seeds)}

# ---------------------------------------------------------------- WordPiece (tokenizers/wordpiece.py)


@st.composite
def wordpiece_cases(draw):
    """A small random vocabulary over the letters "abc": word-initial pieces and continuation
    pieces of 1..4 letters (each single letter present with probability 0.9, longer pieces with a
    drawn probability), plus the unknown token; the continuation prefix ("##", or "@@" as in
    fastBPE) and the unknown token ("[UNK]" or "<unk>") drawn too; a word of 1..12 letters, a few
    of them "d" (in no piece: such a word cannot be spelled); `max_chars` in 4..16, so some words
    are too long."""
    import itertools

    rng = np.random.default_rng(draw(seeds))
    density = draw(st.sampled_from([0.1, 0.3, 0.6]))
    unk_token = draw(st.sampled_from(["[UNK]", "<unk>"]))
    continuation = draw(st.sampled_from(["##", "@@"]))
    vocab = {unk_token}
    for length in range(1, 5):
        for letters in itertools.product("abc", repeat=length):
            piece = "".join(letters)
            keep = 0.9 if length == 1 else density
            drawn = ((piece, rng.random()), (continuation + piece, rng.random()))
            vocab.update(p for p, r in drawn if r < keep)
    alphabet = "abcd" if draw(st.booleans()) else "abc"
    weights = [0.3, 0.3, 0.3, 0.1] if alphabet == "abcd" else None
    word = "".join(rng.choice(list(alphabet), size=draw(st.integers(1, 12)), p=weights))
    return {"word": word, "vocab": sorted(vocab), "unk_token": unk_token,
            "continuation": continuation, "max_chars": draw(st.integers(4, 16))}

# ---------------------------------------------------------------- compression and interpretability
# (compress/, interpret.py, numpy/functional's head gate)


@st.composite
def quantization_cases(draw, bits=None):
    """A weight (out 1..6, in 1..10) whose rows differ in size by up to 10^4 (so that one scale
    for the whole matrix would fail them), now and then a row of zeros; `bits` 8, or drawn in
    2..8."""
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 10)))
    weight = draw(float_arrays(shape, low=-3.0, high=3.0))
    # nothing near float32's subnormals (below 1.2e-38; torch quantizes float32, and a scale
    # there, w / 127, loses its digits)
    weight[np.abs(weight) < 1e-30] = 0.0
    weight *= 10.0 ** draw(hnp.arrays(np.int64, (shape[0], 1), elements=st.integers(-2, 2)))
    if draw(st.integers(0, 4)) == 0:
        weight[draw(st.integers(0, shape[0] - 1))] = 0.0
    return {"weight": weight, "bits": draw(st.integers(2, 8)) if bits is None else bits}


@st.composite
def head_gate_cases(draw):
    """Head outputs (B, H, T, D), a gate shared by the batch (H,) or one per example (B, H), and
    an upstream gradient `dout` of the outputs' shape; every size 1..3."""
    batch, heads, time, width = (draw(st.integers(1, 3)) for _ in range(4))
    gate_shape = (batch, heads) if draw(st.booleans()) else (heads,)
    return {"heads": draw(float_arrays((batch, heads, time, width))),
            "gate": draw(float_arrays(gate_shape)),
            "dout": draw(float_arrays((batch, heads, time, width)))}


@st.composite
def distillation_cases(draw):
    """Student and teacher logits (N 1..5, L 2..4 labels) in [-6, 6], labels with some -100
    (unlabelled examples), a temperature in [0.5, 8] and alpha in {0, 0.3, 0.5, 1}."""
    n, labels = draw(st.integers(1, 5)), draw(st.integers(2, 4))
    targets = np.random.default_rng(draw(seeds)).integers(-1, labels, n)
    targets[targets < 0] = -100
    return {"student_logits": draw(float_arrays((n, labels), low=-6.0, high=6.0)),
            "teacher_logits": draw(float_arrays((n, labels), low=-6.0, high=6.0)),
            "labels": targets, "temperature": draw(st.floats(0.5, 8.0)),
            "alpha": draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]))}
