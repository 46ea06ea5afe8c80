"""The encoder-decoder Transformer of machine translation (seed §5) in NumPy, every backward by hand:
the architecture and the parameter names of Hugging Face's `BartForConditionalGeneration`, so that
given the same weights the logits and gradients are the same (tests/test_seq2seq.py proves it).

    encoder   x = LN_emb(E[source] + P_enc[s])          -> post-LN blocks (source padding masked)
              memory = x                                   (B, S, C): read by every decoder layer
    decoder   y = LN_emb(E[target] + P_dec[t])          -> per layer, three post-LN sub-layers:
                  y = LN(y + self_attention(y))             causal: position t sees targets <= t
                  y = LN(y + cross_attention(y, memory))    queries from y, keys/values from memory
                  y = LN(y + ffn(y))
              logits = y E^T + final_logits_bias           (B, T, V); E shared by all three uses

Backward runs the same path in reverse. The one new thing is the bridge: every decoder layer's
cross-attention sends a gradient into `memory`, and the encoder's backward starts from their sum,

    d memory = sum over decoder layers l of  dK_l W_k^l + dV_l W_v^l      (`CrossAttention`)

with dK_l, dV_l the attention's gradients for the keys and values of layer l.

BART's particulars, kept so that real checkpoints load: learned position tables with two extra
rows (positions start at 2, a fairseq legacy: `POSITION_OFFSET`), a LayerNorm on the embeddings of
each side, an output bias `final_logits_bias` (1, V) (a buffer in Hugging Face, learned here), and
one embedding table `model.shared` for source, target and output (`tie_word_embeddings=False`
gives a separate `lm_head.weight`). `config.positions = "sinusoidal"` swaps both learned tables for
the fixed sines of the original Transformer (no offset, nothing learned). `config.n_layers` blocks
on each side.

For decoding (`minilm.translation`): `encode` once, then `decode(new_ids, memory, mask, cache)` a
token at a time with a `Seq2SeqCache` (self-attention keys and values grow, cross-attention ones are
computed at the first step only).
"""

from __future__ import annotations

import dataclasses

import numpy as np

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
from minilm.numpy import functional as F
from minilm.numpy.layers import (
    Branch,
    CrossAttention,
    Dropout,
    Embedding,
    FeedForward,
    LayerNorm,
    Linear,
    Module,
    MultiHeadAttention,
    TransformerBlock,
    post_norm_residual_backward,
    post_norm_residual_forward,
)
from minilm.numpy.models import _Model

POSITION_OFFSET = 2  # BART's learned positions start at row 2


class DecoderBlock(Module):
    """A decoder layer: causal self-attention, cross-attention to the memory, feed-forward; each a
    post-LN residual sub-layer. `forward(y, memory, ...)` -> y; `backward(dy)` -> (dy, dmemory)."""

    def __init__(self, store, prefix, config, rng):
        eps, c = config.layer_norm_eps, config.d_model
        names, cross = BART_BLOCK_NAMES, BART_CROSS_ATTENTION_NAMES
        self.self_attn = MultiHeadAttention(store, [prefix + n for n in names["qkv"]],
                                            prefix + names["attn_out"], config, rng, 0.02)
        self.self_attn_norm = LayerNorm(store, prefix + names["attn_norm"], c, eps)
        self.cross_attn = CrossAttention(store, [prefix + n for n in cross["qkv"]],
                                         prefix + cross["attn_out"], config, rng)
        self.cross_attn_norm = LayerNorm(store, prefix + cross["attn_norm"], c, eps)
        self.ff = FeedForward(store, prefix + names["ff_in"], prefix + names["ff_out"], config,
                              rng, 0.02)
        self.ff_norm = LayerNorm(store, prefix + names["ff_norm"], c, eps)
        self.self_branch = Branch(self.self_attn, config.dropout, rng)
        self.cross_branch = Branch(self.cross_attn, config.dropout, rng)
        self.ff_branch = Branch(self.ff, config.dropout, rng)

    def forward(self, y, memory, memory_mask, self_cache=None, cross_cache=None):
        """y (B, T, C), memory (B, S, C), memory_mask (B, 1, 1, S) -> (B, T, C)."""
        h, self.self_cache = post_norm_residual_forward(y, self.self_attn_norm, self.self_branch,
                                                        None, True, self_cache)  # causal
        # the cross-attention sub-layer, post-LN like the others: h = LN(h + cross(h, memory))
        h = self.cross_attn_norm.forward(
            h + self.cross_branch.forward(h, memory, memory_mask, cross_cache))
        out, self.ff_cache = post_norm_residual_forward(h, self.ff_norm, self.ff_branch)
        return out

    def backward(self, dout):
        """The three sub-layers in reverse; the cross-attention one also returns d memory."""
        dh = post_norm_residual_backward(dout, self.ff_cache)  # through the feed-forward
        dsum = self.cross_attn_norm.backward(dh)  # gradient of h + cross(h, memory)
        dbranch, dmemory = self.cross_branch.backward(dsum)
        dh = dsum + dbranch  # the residual sends dsum straight through and through the branch
        return post_norm_residual_backward(dh, self.self_cache), dmemory  # through self-attention


class Seq2Seq(_Model):
    """BART: a post-LN Transformer encoder and decoder joined by cross-attention.

    forward(source_ids, source_mask, target_ids) -> logits (B, T, V): the distribution of the
    target token after each of target_ids (teacher forcing: the target shifted right, starting
    with the start token). source_mask (B, S): 1 for real tokens, 0 for padding (None: none).
    encode(source_ids, source_mask) -> memory (B, S, C); decode(target_ids, memory, source_mask,
    cache=None) -> logits. `backward(dlogits)` fills `grads` after a forward (not after a cached
    decode, which is for inference).
    """

    def __init__(self, config: ModelConfig, seed: int = 0, dtype=np.float32,
                 tie_word_embeddings: bool = True):
        check_seq2seq_config(check_config(config))
        check_flag("tie_word_embeddings", tie_word_embeddings)
        offset = POSITION_OFFSET if config.positions == "learned" else 0
        rows = dataclasses.replace(config, max_len=config.max_len + offset)  # the position tables
        super().__init__(rows, seed, dtype, "model.encoder.embed_positions")
        self.config, self.position_offset = config, offset
        c, v, eps = config.d_model, config.vocab_size, config.layer_norm_eps
        store, rng = self.store, self.rng
        self.word = Embedding(store, "model.shared", v, c, rng)
        self.encoder_positions = self.positions
        self.decoder_positions = (Embedding(store, "model.decoder.embed_positions", rows.max_len,
                                            c, rng) if offset else self.positions)
        self.encoder_norm = LayerNorm(store, "model.encoder.layernorm_embedding", c, eps)
        self.encoder_blocks = [
            TransformerBlock(store, f"model.encoder.layers.{i}.", BART_BLOCK_NAMES, config, rng,
                             norm_first=False) for i in range(config.n_layers)]
        self.decoder_norm = LayerNorm(store, "model.decoder.layernorm_embedding", c, eps)
        self.decoder_dropout = Dropout(config.dropout, rng)
        self.decoder_blocks = [DecoderBlock(store, f"model.decoder.layers.{i}.", config, rng)
                               for i in range(config.n_layers)]
        self.lm_head = None if tie_word_embeddings else Linear(store, "lm_head", c, v, rng,
                                                               bias=False)
        store.add("final_logits_bias", np.zeros((1, v)))
        self._used_cache = False

    @property
    def tie_word_embeddings(self) -> bool:
        return self.lm_head is None

    def new_cache(self) -> Seq2SeqCache:
        """An empty cache for `decode(..., cache=cache)`, one entry per decoder layer."""
        return Seq2SeqCache(self.config.n_layers)

    # ------------------------------------------------------------ the encoder

    def encode(self, source_ids, source_mask=None):
        """memory (B, S, C): the last encoder states, padding positions included (never read)."""
        ids = check_named_ids("source_ids", source_ids, self.config)  # (B, S)
        keys = check_source_mask(source_mask, ids)[:, None, None, :]  # (B, 1, 1, S)
        positions = np.arange(ids.shape[1]) + self.position_offset
        x, self._source_lookup = F.embedding_forward(ids, self.word.weight)  # (B, S, C)
        x = x + self.encoder_positions.forward(positions)[None]
        x = self.embedding_dropout.forward(self.encoder_norm.forward(x))
        for block in self.encoder_blocks:
            x = block.forward(x, attn_mask=keys)
        return x

    def encode_backward(self, dmemory):
        """Gradient of the memory -> the encoder's parameter gradients (accumulated)."""
        for block in reversed(self.encoder_blocks):
            dmemory = block.backward(dmemory)
        dx = self.encoder_norm.backward(self.embedding_dropout.backward(dmemory))  # (B, S, C)
        self.store.accumulate(self.word.key, F.embedding_backward(dx, self._source_lookup))
        self.encoder_positions.backward(dx.sum(axis=0))

    # ------------------------------------------------------------ the decoder

    def decode(self, target_ids, memory, source_mask=None, cache=None):
        """logits (B, T, V) of the tokens after each of target_ids, reading `memory` (B, S, C),
        the output of `encode` (an array of the model's dtype). With a cache, target_ids are the
        tokens after the cache.length cached ones, and memory the one its first step read."""
        ids = check_named_ids("target_ids", target_ids, self.config)  # (B, T)
        check_memory(memory, ids.shape[0], self.config, np.ndarray, self.store.dtype)
        keys = check_source_mask(source_mask, np.zeros(memory.shape[:2], dtype=np.int64))
        keys = keys[:, None, None, :]  # (B, 1, 1, S)
        past = check_seq2seq_cache(cache, ids, memory, self.config, np.ndarray, self.store.dtype)
        self._used_cache = cache is not None
        positions = np.arange(past, past + ids.shape[1]) + self.position_offset
        y, self._target_lookup = F.embedding_forward(ids, self.word.weight)  # (B, T, C)
        y = y + self.decoder_positions.forward(positions)[None]
        y = self.decoder_dropout.forward(self.decoder_norm.forward(y))
        for i, block in enumerate(self.decoder_blocks):
            self_cache, cross_cache = ((None, None) if cache is None else
                                       (cache.self_attention.layers[i], cache.cross_attention[i]))
            y = block.forward(y, memory, keys, self_cache, cross_cache)
        if self.lm_head is None:
            logits = self.tied_logits(y)  # (B, T, V): y E^T
        else:
            logits = self.lm_head.forward(y)
        return logits + self.params["final_logits_bias"]

    # ------------------------------------------------------------ both

    def forward(self, source_ids, source_mask, target_ids):
        memory = self.encode(source_ids, source_mask)  # (B, S, C)
        check_paired(target_ids, len(memory))
        return self.decode(target_ids, memory, source_mask)

    def backward(self, dlogits):
        """Fills `grads` with d loss / d params for the last forward (previous grads cleared)."""
        if self._used_cache:
            raise ValueError("backward after a decode with a cache is not supported: the cached "
                             "keys and values carry no record of how they were computed (cached "
                             "decoding is for inference)")
        self.store.zero_grad()
        self.store.accumulate("final_logits_bias", dlogits.sum(axis=(0, 1))[None])
        if self.lm_head is None:
            dy = self.tied_logits_backward(dlogits)  # (B, T, C)
        else:
            dy = self.lm_head.backward(dlogits)
        dmemory = 0.0
        for block in reversed(self.decoder_blocks):
            dy, dmemory_of_layer = block.backward(dy)
            dmemory = dmemory + dmemory_of_layer  # every layer read the same memory: the sum rule
        dy = self.decoder_norm.backward(self.decoder_dropout.backward(dy))  # (B, T, C)
        self.store.accumulate(self.word.key, F.embedding_backward(dy, self._target_lookup))
        self.decoder_positions.backward(dy.sum(axis=0))
        self.encode_backward(dmemory)
