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

from minilm.common.checks import check_head_encoder, positive_int
from minilm.common.spans import align_word_labels, best_span
from minilm.numpy import functional as F
from minilm.numpy.layers import Dropout, Linear, Module
from minilm.numpy.models import Encoder, seeded_rng

__all__ = [
    "QuestionAnswering",
    "SequenceClassifier",
    "TokenClassifier",
    "align_word_labels",
    "best_span",
    "qa_loss_and_backward",
]


class _Head(Module):
    """The plumbing every head shares: forward runs `encoder.encode` then the head's own
    `head_forward(hidden)`; backward clears the gradients, runs `head_backward(*douts) -> dhidden`
    and hands dhidden to `encoder.encode_backward`."""

    needs_pooler = False

    def __init__(self, encoder):
        check_head_encoder(self, encoder, Encoder)
        self.encoder = encoder
        self.config = encoder.config

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.encoder.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.encoder.grads

    @property
    def reached(self) -> set[str]:
        return self.encoder.reached

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy in every weight, encoder and head, by name (the store is the encoder's)."""
        self.encoder.load_params(params)

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
        self.num_labels = positive_int("num_labels", num_labels)
        self.dropout = Dropout(self.config.dropout, encoder.rng)
        rng = seeded_rng(seed)
        c = self.config.d_model
        self.classifier = Linear(encoder.store, "classifier", c, self.num_labels, rng)


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
        self.qa_outputs = Linear(encoder.store, "qa_outputs", c, 2, seeded_rng(seed))

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
