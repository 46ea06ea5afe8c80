"""The encoder-decoder Transformer in PyTorch: the twin of `minilm/numpy/seq2seq.py` (read the
architecture and the math there), with the same parameter names, Hugging Face's
`BartForConditionalGeneration` ones; autograd replaces the hand-written backward.

Every attention runs through the model's backend ("triton": our FlashAttention kernel): the
encoder's self-attention with the source padding as the kernel's key_mask, the decoder's causal
self-attention (bottom-right aligned, which is what a cached decoder step needs), and cross-attention
with Nq = target length != Nk = source length and the source padding as key_mask.

    twin = Seq2Seq.from_numpy(numpy_model, attention="triton")   # same config, dtype and weights
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from minilm.common.backends import to_numpy
from minilm.common.checks import (
    check_flag,
    check_memory,
    check_named_ids,
    check_paired,
    check_seq2seq_config,
    check_source_mask,
)
from minilm.common.kv_cache import Seq2SeqCache, check_seq2seq_cache
from minilm.common.names import BART_BLOCK_NAMES, BART_CROSS_ATTENTION_NAMES
from minilm.config import ModelConfig, check_config
from minilm.torch.layers import (
    CrossAttention,
    Embedding,
    FeedForward,
    LayerNorm,
    Linear,
    Module,
    MultiHeadAttention,
    register,
)
from minilm.torch.models import _Model, _torch_dtype, seeded_generator

POSITION_OFFSET = 2  # BART's learned positions start at row 2 (see the NumPy twin)


class DecoderBlock(Module):
    """Causal self-attention, cross-attention to the memory, feed-forward; post-LN residuals."""

    def __init__(self, store, prefix, config, generator, attention):
        super().__init__()
        eps, c = config.layer_norm_eps, config.d_model
        names, cross = BART_BLOCK_NAMES, BART_CROSS_ATTENTION_NAMES
        self.self_attn = MultiHeadAttention(store, [prefix + n for n in names["qkv"]],
                                            prefix + names["attn_out"], config, generator, 0.02,
                                            attention)
        self.self_attn_norm = LayerNorm(store, prefix + names["attn_norm"], c, eps)
        self.cross_attn = CrossAttention(store, [prefix + n for n in cross["qkv"]],
                                         prefix + cross["attn_out"], config, generator, attention)
        self.cross_attn_norm = LayerNorm(store, prefix + cross["attn_norm"], c, eps)
        self.ff = FeedForward(store, prefix + names["ff_in"], prefix + names["ff_out"], config,
                              generator, 0.02)
        self.ff_norm = LayerNorm(store, prefix + names["ff_norm"], c, eps)
        self.self_dropout, self.cross_dropout, self.ff_dropout = (
            nn.Dropout(config.dropout) for _ in range(3))

    def forward(self, y, memory, memory_key_mask, self_cache=None, cross_cache=None):
        """y (B, T, C), memory (B, S, C), memory_key_mask (B, S) or None -> (B, T, C)."""
        h = self.self_attn_norm(y + self.self_dropout(self.self_attn(y, None, True, self_cache)))
        h = self.cross_attn_norm(h + self.cross_dropout(
            self.cross_attn(h, memory, memory_key_mask, cross_cache)))
        return self.ff_norm(h + self.ff_dropout(self.ff(h)))


class Seq2Seq(_Model):
    """BART, as `minilm.numpy.Seq2Seq`: forward(source_ids, source_mask, target_ids) -> logits;
    encode / decode (with a `Seq2SeqCache`, under torch.no_grad) for decoding.
    attention: "triton" | "sdpa" | "math" | None, as for `minilm.torch.Encoder`."""

    def __init__(self, config: ModelConfig, attention=None, seed: int = 0, dtype=torch.float32,
                 tie_word_embeddings: bool = True):
        dtype, generator = _torch_dtype(dtype), seeded_generator(seed)
        check_seq2seq_config(check_config(config))
        check_flag("tie_word_embeddings", tie_word_embeddings)
        offset = POSITION_OFFSET if config.positions == "learned" else 0
        rows = dataclasses.replace(config, max_len=config.max_len + offset)  # the position tables
        super().__init__(rows, attention, dtype, generator, "model.encoder.embed_positions")
        self.config, self.position_offset = config, offset
        c, v, eps = config.d_model, config.vocab_size, config.layer_norm_eps
        self.word = Embedding(self, "model.shared", v, c, generator)
        self.encoder_positions = self.positions
        self.decoder_positions = (Embedding(self, "model.decoder.embed_positions", rows.max_len,
                                            c, generator) if offset else self.positions)
        self.encoder_norm = LayerNorm(self, "model.encoder.layernorm_embedding", c, eps)
        self.encoder_blocks = self._blocks("model.encoder.layers.", BART_BLOCK_NAMES, generator,
                                           norm_first=False)
        self.decoder_norm = LayerNorm(self, "model.decoder.layernorm_embedding", c, eps)
        self.decoder_dropout = nn.Dropout(config.dropout)
        self.decoder_blocks = nn.ModuleList(
            DecoderBlock(self, f"model.decoder.layers.{i}.", config, generator, self._attention)
            for i in range(config.n_layers))
        self.lm_head = None if tie_word_embeddings else Linear(self, "lm_head", c, v, generator,
                                                               bias=False)
        register(self, "final_logits_bias", nn.Parameter(torch.zeros(1, v)))
        self.to(dtype)

    @property
    def tie_word_embeddings(self) -> bool:
        return self.lm_head is None

    @classmethod
    def shaped_like(cls, numpy_model, attention=None):
        dtype = next(iter(numpy_model.params.values())).dtype
        return cls(numpy_model.config, attention=attention, dtype=dtype,
                   tie_word_embeddings=numpy_model.tie_word_embeddings)

    def new_cache(self) -> Seq2SeqCache:
        return Seq2SeqCache(self.config.n_layers)

    def _ids(self, name, values) -> tuple[torch.Tensor, object]:
        host = check_named_ids(name, to_numpy(values), self.config)
        return self._tensor(values, host).long(), host

    def _memory_key_mask(self, source_mask, host_ids):
        """(B, S) bool on the model's device, True = a real source token; None for no padding."""
        host = check_source_mask(None if source_mask is None else to_numpy(source_mask), host_ids)
        return None if source_mask is None else self._tensor(source_mask, host).bool()

    def encode(self, source_ids, source_mask=None):
        """memory (B, S, C)."""
        ids, host_ids = self._ids("source_ids", source_ids)  # (B, S)
        key_mask = self._memory_key_mask(source_mask, host_ids)
        positions = torch.arange(ids.shape[1], device=ids.device) + self.position_offset
        x = self.word(ids) + self.encoder_positions(positions)[None]  # (B, S, C)
        x = self.embedding_dropout(self.encoder_norm(x))
        for block in self.encoder_blocks:
            x = block(x, key_mask=key_mask)
        return x

    def decode(self, target_ids, memory, source_mask=None, cache=None):
        """logits (B, T, V) reading `memory` (B, S, C), the output of `encode` (a tensor of the
        model's dtype); with a cache, of the tokens after the cached ones (no autograd), and
        memory the one its first step read."""
        ids, host_ids = self._ids("target_ids", target_ids)  # (B, T)
        dtype = self.word.weight.dtype
        check_memory(memory, ids.shape[0], self.config, torch.Tensor, dtype)
        key_mask = self._memory_key_mask(source_mask, np.zeros(tuple(memory.shape[:2]), np.int64))
        past = check_seq2seq_cache(cache, host_ids, memory, self.config, torch.Tensor, dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and cache is None):
            positions = torch.arange(past, past + ids.shape[1], device=ids.device)
            y = self.word(ids) + self.decoder_positions(positions + self.position_offset)[None]
            y = self.decoder_dropout(self.decoder_norm(y))  # (B, T, C)
            for i, block in enumerate(self.decoder_blocks):
                caches = ((None, None) if cache is None else
                          (cache.self_attention.layers[i], cache.cross_attention[i]))
                y = block(y, memory, key_mask, *caches)
            if self.lm_head is None:
                logits = nn.functional.linear(y, self.word.weight)  # (B, T, V): y E^T
            else:
                logits = self.lm_head(y)
            return logits + self.get_parameter("final_logits_bias")

    def forward(self, source_ids, source_mask, target_ids):
        memory = self.encode(source_ids, source_mask)  # (B, S, C)
        check_paired(target_ids, len(memory))
        return self.decode(target_ids, memory, source_mask)
