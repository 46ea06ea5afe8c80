"""One dataclass describes every model in minilm, BERT-style or GPT-style.

A config is plain data: it can be written to JSON next to a checkpoint and read back, and the same
config builds the NumPy reference and the PyTorch twin.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass

from minilm.common.checks import number_in

ACTIVATIONS = ("gelu", "gelu_tanh")
POSITION_KINDS = ("learned", "sinusoidal")


@dataclass
class ModelConfig:
    """Hyper-parameters of a Transformer.

    vocab_size       number of token ids
    max_len          longest sequence the position table covers
    d_model          width of the residual stream
    n_heads          attention heads; d_model must be divisible by n_heads
    n_layers         Transformer blocks
    d_ff             hidden width of the feed-forward network (4 * d_model in BERT and GPT-2)
    dropout          dropout probability on embeddings, attention weights and residual branches
    activation       "gelu" (exact, erf) as in BERT or "gelu_tanh" as in GPT-2
    layer_norm_eps   1e-12 in BERT, 1e-5 in GPT-2
    type_vocab_size  token-type (segment) embeddings, used by the Encoder only
    positions        "learned" (BERT, GPT-2) or "sinusoidal" (the original Transformer, seed §3.2)
    pad_token_id     the id of padding, ignored by losses and masked out of attention
    pruned_heads     {layer: heads removed from it}, by their original index (Hugging Face's
                     `pruned_heads`): a pruned layer's query/key/value have rows, and its output
                     projection columns, for its remaining heads only (`minilm.compress.prune`)
    """

    vocab_size: int = 96
    max_len: int = 128
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.0
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5
    type_vocab_size: int = 2
    positions: str = "learned"
    pad_token_id: int = 0
    pruned_heads: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "d_model", "n_heads", "n_layers", "d_ff",
                     "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"ModelConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )
        if self.positions not in POSITION_KINDS:
            raise ValueError(
                f"ModelConfig.positions must be one of {POSITION_KINDS}, got {self.positions!r}"
            )
        number_in("ModelConfig.layer_norm_eps", self.layer_norm_eps, "(0, inf)")  # NaN: NaN out
        self.pruned_heads = self._checked_pruned_heads()

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def layer_heads(self, layer: int) -> int:
        """How many attention heads block `layer` has: n_heads less the ones pruned from it."""
        return self.n_heads - len(self.pruned_heads.get(layer, ()))

    def live_heads(self, layer: int) -> list[int]:
        """The original indices of the heads block `layer` still has, in order."""
        pruned = self.pruned_heads.get(layer, ())
        return [h for h in range(self.n_heads) if h not in pruned]

    def _checked_pruned_heads(self) -> dict[int, tuple[int, ...]]:
        """pruned_heads as {int layer: sorted tuple of heads}, empty entries dropped (JSON gives
        string keys and lists); every layer keeps at least one head."""
        if not isinstance(self.pruned_heads, dict):
            raise ValueError(f"ModelConfig.pruned_heads must be a dict {{layer: [heads]}}, got "
                             f"{self.pruned_heads!r}")
        checked = {}
        for layer, heads in self.pruned_heads.items():
            if not isinstance(heads, (list, tuple, set, frozenset)):
                raise ValueError(f"ModelConfig.pruned_heads: layer {layer!r} -> {heads!r} is not "
                                 "a list of heads")
            heads = sorted(set(heads))
            if not (str(layer).isdigit() and int(layer) < self.n_layers
                    and all(isinstance(h, numbers.Integral) and not isinstance(h, bool)
                            and 0 <= h < self.n_heads for h in heads)):
                raise ValueError(f"ModelConfig.pruned_heads: layer {layer!r} -> {heads} is not "
                                 f"a layer in [0, {self.n_layers}) and heads in [0, {self.n_heads})")
            if len(heads) == self.n_heads:
                raise ValueError(f"ModelConfig.pruned_heads removes every head of layer {layer}; "
                                 "keep at least one")
            if heads:
                checked[int(layer)] = tuple(int(h) for h in heads)
        return dict(sorted(checked.items()))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig got unknown fields {unknown}; expected some of {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named configuration, optionally with some fields changed."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


def check_config(config) -> ModelConfig:
    """`config` itself if it is a ModelConfig; else a ValueError (the one error type for every bad
    argument), where a dict or a Hugging Face config would fail later on a missing attribute."""
    if not isinstance(config, ModelConfig):
        raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
    return config


# What each family shares; its presets differ in size only.
_BERT = dict(vocab_size=30522, max_len=512, dropout=0.1, activation="gelu", layer_norm_eps=1e-12,
             pad_token_id=0)  # uncased WordPiece, 512 positions, 2 segments
_GPT2 = dict(vocab_size=50257, max_len=1024, dropout=0.1, activation="gelu_tanh",
             layer_norm_eps=1e-5, pad_token_id=50256)  # byte-level BPE, 1024 positions

PRESETS: dict[str, dict] = {
    # small enough for finite-difference gradient checks
    "tiny": dict(vocab_size=32, max_len=16, d_model=16, n_heads=2, n_layers=2, d_ff=32),
    # the `make demo` model: a character-level GPT trained on the built-in corpus on 2 CPU cores
    "demo": dict(max_len=128, d_model=128, n_heads=4, n_layers=3, d_ff=512, activation="gelu_tanh"),
    # sentence-transformers/all-MiniLM-L6-v2 (BERT, uncased WordPiece)
    "minilm-l6": dict(_BERT, d_model=384, n_heads=12, n_layers=6, d_ff=1536),
    # The published models whose size and cost `minilm.compute` reproduces (too large to build
    # here; the tests count them from the config and on PyTorch's meta device).
    # BERT (Devlin et al. 2019)
    "bert-base": dict(_BERT, d_model=768, n_heads=12, n_layers=12, d_ff=3072),
    "bert-large": dict(_BERT, d_model=1024, n_heads=16, n_layers=24, d_ff=4096),
    # GPT-2 (Radford et al. 2019)
    "gpt2": dict(_GPT2, d_model=768, n_heads=12, n_layers=12, d_ff=3072),
    "gpt2-medium": dict(_GPT2, d_model=1024, n_heads=16, n_layers=24, d_ff=4096),
    "gpt2-large": dict(_GPT2, d_model=1280, n_heads=20, n_layers=36, d_ff=5120),
    "gpt2-xl": dict(_GPT2, d_model=1600, n_heads=25, n_layers=48, d_ff=6400),
    # GPT-3 175B (Brown et al. 2020, Table 2.1): GPT-2's architecture and tokenizer, 2048 positions.
    # Dropout is not reported; GPT-3 also alternates dense and locally banded sparse attention
    # layers, which changes its attention FLOPs but not its parameters.
    "gpt3-175b": dict(_GPT2, max_len=2048, d_model=12288, n_heads=96, n_layers=96, d_ff=49152,
                      dropout=0.0),
}
