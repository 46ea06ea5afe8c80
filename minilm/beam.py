"""Decoding an encoder-decoder (`Seq2Seq`, either backend): greedy search and beam search.

Both encode the sources once, then extend every target one token at a time from the start token
until it writes the end token (or `max_new_tokens` are written). With `use_cache=True` (the
default) the decoder keeps a `Seq2SeqCache`: each step feeds only the newest token, its
self-attention appends one key and value per layer, and cross-attention reads the keys and values
of the encoder output that the first step computed. Without it every step decodes the whole target
so far again. Both give the same tokens (tests/test_seq2seq.py).

**Greedy**: at every step the single most likely next token. **Beam search** keeps the K best
partial translations (*beams*) of each source, scored by the sum of their tokens' log-probabilities:
at every step each beam is extended by every token (K x V candidates, `beam_step`), and the K best
candidates that do not end go on. A candidate that ends is a finished hypothesis, scored

    score = sum of log p(token) / length ** length_penalty        (length counts the end token)

since a sum of log-probabilities only falls as a text grows: length_penalty = 0 prefers short
translations, 1 compares average log-probability per token, > 1 favours long ones. A source is
done once it has K finished hypotheses and no running beam could still beat the worst of them
(Hugging Face's rule with early_stopping=False: the best running sum divided by the current
length**length_penalty); the best finished hypothesis is its translation. K = 1 is greedy search.
Greedy and beam search give the tokens of Hugging Face's `generate` on the same weights
(tests/test_seq2seq.py, BartForConditionalGeneration).
"""

from __future__ import annotations

import numpy as np

from minilm.common.backends import check_model_class, inference, to_numpy
from minilm.common.checks import is_int, number_in, positive_int


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p = x - logsumexp(x) along the last axis, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def beam_step(beam_scores, log_probs, n_best):
    """One step of beam search for B sources at once: the `n_best` best continuations of each.

    beam_scores (B, K): the running score (sum of log-probabilities) of each source's K beams,
    -inf for a beam that does not exist yet; log_probs (B, K, V): the next token's log-probability
    after each beam. A continuation (beam k, token v) scores beam_scores[b, k] + log_probs[b, k, v].
    Returns (scores, beams, tokens), each (B, n_best), best first: of each source, the n_best
    highest-scoring (beam, token) pairs among its K x V.
    """
    batch, beams, vocab = log_probs.shape
    candidates = (beam_scores[:, :, None] + log_probs).reshape(batch, beams * vocab)  # (B, K V)
    best = np.argsort(-candidates, axis=1, kind="stable")[:, :n_best]  # (B, n): flat k * V + v
    scores = np.take_along_axis(candidates, best, axis=1)  # (B, n)
    return scores, best // vocab, best % vocab


def _check_decoding(model, start_id, end_id, max_new_tokens, num_beams, length_penalty) -> int:
    check_model_class(model, "Seq2Seq", "decoding a translation")  # a Decoder has no encoder
    vocab_size = model.config.vocab_size
    # start_id 1.5 would decode from token 1; an end_id the model cannot write would never end
    for name, token in (("start_id", start_id), ("end_id", end_id)):
        if not is_int(token) or not 0 <= token < vocab_size:
            raise ValueError(f"{name} must be a token id, an int in [0, vocab_size={vocab_size}), "
                             f"got {token!r}")
    positive_int("max_new_tokens", max_new_tokens)
    positive_int("num_beams", num_beams)
    number_in("length_penalty", length_penalty, "[0, inf)")
    return min(max_new_tokens, model.config.max_len)  # the target input holds start + the tokens


class _Decoder:
    """The decoding loop's view of a model: the memory of the sources, and the next token's
    log-probabilities for the targets so far, with or without a cache."""

    def __init__(self, model, source_ids, source_mask, use_cache):
        self.model, self.mask = model, source_mask
        self.memory = model.encode(source_ids, source_mask)  # (B, S, C)
        self.cache = model.new_cache() if use_cache else None

    def keep(self, rows) -> None:
        """Keep rows `rows` of the batch (the beams that go on), in that order."""
        self.memory = self.memory[rows]
        self.mask = None if self.mask is None else np.asarray(self.mask)[rows]
        if self.cache is not None:
            self.cache.select(rows)

    def next_log_probs(self, targets: np.ndarray) -> np.ndarray:
        """targets (B, T) -> log p(next token) (B, V)."""
        if self.cache is None:
            logits = self.model.decode(targets, self.memory, self.mask)  # (B, T, V)
        else:  # only the tokens the cache has not read: the start token, then one at a time
            logits = self.model.decode(targets[:, self.cache.length:], self.memory, self.mask,
                                       self.cache)
        return log_softmax(to_numpy(logits[:, -1]))  # (B, V)


def _until_end(ids, end_id) -> list[int]:
    ids = [int(i) for i in ids]
    return ids[:ids.index(end_id)] if end_id in ids else ids


def greedy_decode(model, source_ids, source_mask, start_id, end_id, max_new_tokens=64,
                  use_cache=True) -> list[list[int]]:
    """The most likely token at every step: each source's target ids, without start and end."""
    steps = _check_decoding(model, start_id, end_id, max_new_tokens, 1, 0.0)
    with inference(model):
        decoder = _Decoder(model, source_ids, source_mask, use_cache)
        targets = np.full((len(decoder.memory), 1), start_id, dtype=np.int64)  # (B, 1)
        ended = np.zeros(len(targets), dtype=bool)
        for _ in range(steps):
            next_ids = decoder.next_log_probs(targets).argmax(axis=-1)  # (B,)
            next_ids = np.where(ended, end_id, next_ids)  # a finished target only repeats the end
            targets = np.concatenate([targets, next_ids[:, None]], axis=1)  # (B, T + 1)
            ended |= next_ids == end_id
            if ended.all():
                break
    return [_until_end(row[1:], end_id) for row in targets]


def beam_search(model, source_ids, source_mask, start_id, end_id, max_new_tokens=64,
                num_beams=4, length_penalty=1.0, use_cache=True) -> list[list[int]]:
    """The best finished hypothesis of a beam search with `num_beams` beams per source (see the
    module docstring): each source's target ids, without start and end."""
    steps = _check_decoding(model, start_id, end_id, max_new_tokens, num_beams,
                            length_penalty)
    k = num_beams
    with inference(model):
        decoder = _Decoder(model, source_ids, source_mask, use_cache)
        batch = len(decoder.memory)
        decoder.keep(np.repeat(np.arange(batch), k))  # K rows per source: (B K, S, C)
        targets = np.full((batch * k, 1), start_id, dtype=np.int64)  # (B K, 1)
        beam_scores = np.full((batch, k), -np.inf)
        beam_scores[:, 0] = 0.0  # one real beam to start from, or all K would be the same
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
        done = np.zeros(batch, dtype=bool)
        for step in range(1, steps + 1):
            log_probs = decoder.next_log_probs(targets).reshape(batch, k, -1)  # (B, K, V)
            # 2K candidates: even if K of them end here, K others can go on
            scores, beams, tokens = beam_step(beam_scores, log_probs, 2 * k)
            rows, next_tokens = np.zeros((batch, k), np.int64), np.zeros((batch, k), np.int64)
            for b in np.flatnonzero(~done):
                kept = 0
                for rank in range(2 * k):
                    row, token = b * k + beams[b, rank], tokens[b, rank]
                    if token == end_id:  # a finished hypothesis, if it ranks among the K best
                        if rank < k:
                            finished[b].append((scores[b, rank] / step ** length_penalty,
                                                _until_end(targets[row, 1:], end_id)))
                        continue
                    rows[b, kept], next_tokens[b, kept] = row, token
                    beam_scores[b, kept] = scores[b, rank]
                    kept += 1
                    if kept == k:
                        break
                best_running = beam_scores[b].max() / step ** length_penalty
                if len(finished[b]) >= k:  # done if no running beam can beat the K-th best
                    done[b] = sorted(score for score, _ in finished[b])[-k] >= best_running
            if done.all():
                break
            rows[done] = np.arange(batch * k).reshape(batch, k)[done]  # finished: keep as they are
            decoder.keep(rows.reshape(-1))
            targets = np.concatenate([targets[rows.reshape(-1)], next_tokens.reshape(-1, 1)],
                                     axis=1)  # (B K, T + 1)
        for b in np.flatnonzero(~done):  # out of steps: the running beams compete as they are
            for j in range(k):
                finished[b].append((beam_scores[b, j] / steps ** length_penalty,
                                    _until_end(targets[b * k + j, 1:], end_id)))
    return [max(hypotheses, key=lambda h: h[0])[1] for hypotheses in finished]
