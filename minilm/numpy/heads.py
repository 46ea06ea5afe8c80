"""Task heads on a BERT `Encoder` (seed §4 fine-tuning, §5 applications), backward included.

Each head is Hugging Face's, layer for layer and name for name, so a fine-tuned HF checkpoint loads
by name and HF serves as the oracle in the tests (h are the encoder's last hidden states (B, T, C)):

    SequenceClassifier  BertForSequenceClassification   logits = drop(tanh(W_p h_0 + b_p)) W^T + b
                        (sentiment, entailment, ...)    one row of L label scores per sequence
    TokenClassifier     BertForTokenClassification      logits_t = drop(h_t) W^T + b
                        (named entities, tagging)       one row of L label scores per token
    QuestionAnswering   BertForQuestionAnswering        [start_t | end_t] = h_t W^T + b, W (2, C)
                        (extractive QA, SQuAD)          the answer is the span i..j maximising
                                                        start_i + end_j (`best_span`)

A head adds its one layer ("classifier" or "qa_outputs", HF's names) to the encoder's
`ParameterStore`, so `head.params` / `head.grads` are the encoder's own dicts and cover the encoder
and the head (`encoder.load_params` loads both). `backward` clears them and fills them all:
head layer -> (pooler) -> `encoder.encode_backward`. Dropout draws from the encoder's generator and
is off in eval mode. Losses: `minilm.numpy.models.loss_and_backward(head, logits, labels)` for the
two classifiers (cross-entropy, labels -100 ignored), `qa_loss_and_backward` for question answering.
"""

from __future__ import annotations

import numpy as np

from minilm.numpy import functional as F
from minilm.numpy.layers import Dropout, Linear, Module
from minilm.numpy.models import Encoder


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


class _Head(Module):
    """The plumbing every head shares: forward runs `encoder.encode` then the head's own
    `head_forward(hidden)`; backward clears the gradients, runs `head_backward(*douts) -> dhidden`
    and hands dhidden to `encoder.encode_backward`."""

    needs_pooler = False

    def __init__(self, encoder):
        if not isinstance(encoder, Encoder):
            # ValueError, as the models raise for a bad config: one error type for bad arguments
            raise ValueError(
                f"encoder must be a minilm.numpy.Encoder, got {type(encoder).__name__}"
            )
        if self.needs_pooler and encoder.pooler is None:
            raise ValueError(
                f"{type(self).__name__} needs BERT's pooler: build the Encoder with pooler=True"
            )
        self.encoder = encoder
        self.config = encoder.config

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.encoder.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.encoder.grads

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.head_forward(self.encoder.encode(input_ids, attention_mask, token_type_ids))

    def backward(self, *douts):
        """Fills `grads` with d loss / d params for the last forward (clearing previous grads)."""
        self.encoder.store.zero_grad()
        self.encoder.encode_backward(self.head_backward(*douts))


class _Classifier(_Head):
    """What both classifiers share: dropout (p = config.dropout), then `classifier`, a
    Linear(C -> num_labels) initialised from `seed`."""

    def __init__(self, encoder, num_labels, seed=0):
        super().__init__(encoder)
        c, num_labels = self.config.d_model, _positive_int("num_labels", num_labels)
        self.dropout = Dropout(self.config.dropout, encoder.rng)
        rng = np.random.default_rng(seed)
        self.classifier = Linear(encoder.store, "classifier", c, num_labels, rng)


class SequenceClassifier(_Classifier):
    """One label per sequence (BERT's recipe, seed §4): pooled [CLS] state -> dropout -> Linear.

    SequenceClassifier(encoder, num_labels, seed=0); the encoder must have the pooler
    (`Encoder(..., pooler=True)`).
    forward(input_ids, attention_mask=None, token_type_ids=None) -> logits (B, L)
    Train with cross-entropy on labels (B,) in [0, L). (HF's model switches to regression (MSE)
    when num_labels == 1; this head is a classifier only.)
    """

    needs_pooler = True

    def head_forward(self, hidden):
        pooled = self.dropout.forward(self.encoder.pool(hidden))  # (B, T, C) -> (B, C)
        return self.classifier.forward(pooled)  # (B, L)

    def head_backward(self, dlogits):
        return self.encoder.pool_backward(self.dropout.backward(self.classifier.backward(dlogits)))


class TokenClassifier(_Classifier):
    """One label per token (named-entity recognition, part-of-speech tagging): dropout -> Linear.

    TokenClassifier(encoder, num_labels, seed=0)
    forward(input_ids, attention_mask=None, token_type_ids=None) -> logits (B, T, L)
    Train with cross-entropy on labels (B, T), -100 where no label applies: padding, [CLS], [SEP]
    and every WordPiece after a word's first (see `align_word_labels`).
    """

    def head_forward(self, hidden):
        return self.classifier.forward(self.dropout.forward(hidden))  # (B, T, C) -> (B, T, L)

    def head_backward(self, dlogits):
        return self.dropout.backward(self.classifier.backward(dlogits))


def align_word_labels(word_ids, word_labels, ignore_index=-100):
    """Word-level labels -> token-level targets for `TokenClassifier` (the usual NER recipe).

    WordPiece splits a word into pieces ("unaffable" -> una ##ffa ##ble). The word's label goes on
    its first piece; every other token (later pieces, [CLS], [SEP], padding) gets ignore_index, so
    the loss counts each word once. `word_ids` (T,) gives, for each token, the index of the word it
    came from, or -1 (or None) for special tokens and padding. With minilm's WordPieceTokenizer and
    text already split into words:

        pieces = [tokenizer.tokenize(word) for word in words]
        word_ids = [-1] + [w for w, p in enumerate(pieces) for _ in p] + [-1]   # [CLS] ... [SEP]

    >>> align_word_labels([-1, 0, 1, 1, 1, 2, -1], [3, 0, 5]).tolist()
    [-100, 3, 0, -100, -100, 5, -100]
    """
    ids = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64).reshape(-1)  # (T,)
    labels = np.asarray(word_labels, dtype=np.int64).reshape(-1)  # (W,)
    if ids.size and ids.max() >= len(labels):
        raise ValueError(f"word_ids refer to word {ids.max()}, but there are {len(labels)} labels")
    previous = np.concatenate([[-1], ids[:-1]])  # the word of the token before
    first = (ids >= 0) & (ids != previous)  # (T,) a word's first piece
    targets = np.full(ids.shape, ignore_index, dtype=np.int64)
    targets[first] = labels[ids[first]]
    return targets


class QuestionAnswering(_Head):
    """Extractive question answering: for "[CLS] question [SEP] context [SEP]" a Linear(C -> 2)
    scores every token as the answer's start and as its end.

    forward(input_ids, attention_mask=None, token_type_ids=None) -> start_logits, end_logits
    (B, T) each; backward(dstart, dend). Train with `qa_loss_and_backward`; decode with `best_span`.
    (HF's model has no dropout here, so neither has this head.)
    """

    def __init__(self, encoder, seed=0):
        super().__init__(encoder)
        c = self.config.d_model
        self.qa_outputs = Linear(encoder.store, "qa_outputs", c, 2, np.random.default_rng(seed))

    def head_forward(self, hidden):
        logits = self.qa_outputs.forward(hidden)  # (B, T, C) -> (B, T, 2)
        return logits[..., 0], logits[..., 1]  # (B, T), (B, T)

    def head_backward(self, dstart, dend):
        return self.qa_outputs.backward(np.stack([dstart, dend], axis=-1))  # (B, T, 2) -> (B, T, C)


def qa_loss_and_backward(model, start_logits, end_logits, start_positions, end_positions):
    """loss = (CE(start_logits, start_positions) + CE(end_logits, end_positions)) / 2, as HF,
    then `model.backward(dstart, dend)`; returns the loss.

    Positions (B,) are token indices in [0, T), or -100 to leave an example out of that term.
    (HF clamps positions to [0, T] and ignores T; here anything else is an error.)
    """
    start_loss, start_cache = F.cross_entropy_forward(start_logits, start_positions)
    end_loss, end_cache = F.cross_entropy_forward(end_logits, end_positions)
    dstart = F.cross_entropy_backward(start_cache, dloss=0.5)  # (B, T)
    dend = F.cross_entropy_backward(end_cache, dloss=0.5)  # (B, T)
    model.backward(dstart, dend)
    return float(start_loss + end_loss) / 2


def best_span(start_logits, end_logits, max_answer_len=30, allowed_mask=None):
    """The most likely answer of each example: the span i..j (inclusive) maximising

        score(i, j) = start_i + end_j   over   i <= j < i + max_answer_len,  i and j both allowed

    (the argmax of the probability p_start(i) p_end(j), the logits' normalisers being constants).
    `allowed_mask` (B, T), True where an answer may lie: the context tokens, i.e. for
    "[CLS] question [SEP] context [SEP]" token_type_ids == 1 without the final [SEP] and padding.
    All pairs at once: S[b, i, j] (B, T, T), -inf where not allowed, one argmax over (i, j); ties
    go to the smallest i, then the smallest j. Returns starts (B,), ends (B,) and scores (B,).
    """
    start, end = np.asarray(start_logits), np.asarray(end_logits)
    if start.ndim != 2 or start.shape != end.shape:
        raise ValueError(
            f"start_logits and end_logits must both be (B, T), got {start.shape} and {end.shape}"
        )
    max_answer_len = _positive_int("max_answer_len", max_answer_len)
    batch, time = start.shape
    i = np.arange(time)[:, None]
    j = np.arange(time)[None, :]
    valid = np.broadcast_to((i <= j) & (j < i + max_answer_len), (batch, time, time))  # (B, T, T)
    if allowed_mask is not None:
        allowed = np.asarray(allowed_mask)
        if allowed.shape != start.shape:
            raise ValueError(f"allowed_mask must have the shape {start.shape}, got {allowed.shape}")
        allowed = allowed.astype(bool)
        valid = valid & allowed[:, :, None] & allowed[:, None, :]
    empty = ~valid.any(axis=(1, 2))
    if empty.any():
        raise ValueError(f"examples {np.flatnonzero(empty).tolist()} allow no answer span")
    scores = np.where(valid, start[:, :, None] + end[:, None, :], -np.inf)  # (B, T, T)
    flat = scores.reshape(batch, -1).argmax(axis=1)  # (B,) index i * T + j
    starts, ends = np.divmod(flat, time)
    return starts, ends, scores.reshape(batch, -1)[np.arange(batch), flat]
