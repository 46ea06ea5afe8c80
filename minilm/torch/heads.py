"""The task heads of `minilm/numpy/heads.py`, class for class, as torch modules.

The math and the Hugging Face correspondence are written out in the NumPy twin; here autograd
differentiates. What is particular to this file is how the weights get their names.

Names. `head.state_dict()` must have exactly the keys of the NumPy head's `params`: the encoder's
checkpoint names ("bert.encoder.layer.0...") plus the head's layer ("classifier" or "qa_outputs"),
with no "encoder." prefix in front of the encoder's. So a head does not register its encoder as a
sub-module: it adopts the encoder's top-level modules (the "bert" and "cls" checkpoint trees, the
blocks, the dropouts) as its own and keeps a plain reference to the encoder for computing. The
modules are the same objects, so training the head trains the encoder, and `head.to(...)`,
`head.train()` / `head.eval()` reach every layer once. The encoder's own `state_dict()` stays
the encoder's (the NumPy encoder, whose store the head shares, lists the head's layer too).

    twin = SequenceClassifier.from_numpy(numpy_head, attention="math")   # same config and weights
    # which is:
    twin = SequenceClassifier(Encoder.shaped_like(numpy_head.encoder, attention="math"), num_labels)
    twin.load_state_dict(params_to_state_dict(numpy_head.params))

`best_span` and `align_word_labels` (minilm.common.spans) serve both twins: they read host copies.

Dropout masks come from torch's global generator (`torch.manual_seed`); `seed` sets the init.
"""

from __future__ import annotations

from torch import nn

from minilm.common.checks import check_head_encoder, positive_int
from minilm.common.spans import align_word_labels, best_span
from minilm.torch import functional as TF
from minilm.torch.layers import Linear, Module
from minilm.torch.models import Encoder, params_to_state_dict, seeded_generator

__all__ = [
    "QuestionAnswering",
    "SequenceClassifier",
    "TokenClassifier",
    "align_word_labels",
    "best_span",
    "qa_loss",
]


class _Head(Module):
    """The plumbing every head shares: the adopted encoder modules (see the module docstring);
    forward runs `encoder.encode` then the head's own `head_forward(hidden)`."""

    needs_pooler = False

    def __init__(self, encoder):
        super().__init__()
        check_head_encoder(self, encoder, Encoder)
        for name, module in encoder.named_children():
            self.add_module(name, module)  # "bert", "cls", ...: state_dict() keys without a prefix
        object.__setattr__(self, "encoder", encoder)  # a reference, not a sub-module
        self.config = encoder.config

    def _linear(self, name, out_features, seed):
        """The head's Linear(C -> out_features), named `name`, on the encoder's device and dtype."""
        weight = self.encoder.word.weight
        generator = seeded_generator(seed)
        layer = Linear(self, name, self.config.d_model, out_features, generator)
        return layer.to(device=weight.device, dtype=weight.dtype)

    @classmethod
    def from_numpy(cls, numpy_head, attention=None):
        """The twin of a NumPy head: the twin of its encoder with this head on top, every weight
        (encoder and head) copied by name."""
        encoder = Encoder.shaped_like(numpy_head.encoder, attention)
        twin = cls(encoder, **cls._arguments_of(numpy_head))
        twin.load_state_dict(params_to_state_dict(numpy_head.params))
        return twin

    @staticmethod
    def _arguments_of(numpy_head) -> dict:
        """The constructor arguments, beyond the encoder, that rebuild `numpy_head`'s shape."""
        return {}

    def train(self, mode: bool = True):
        self.encoder.train(mode)  # the encoder's own flag too, not only the layers adopted here
        return super().train(mode)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.head_forward(self.encoder.encode(input_ids, attention_mask, token_type_ids))


class _Classifier(_Head):
    """What both classifiers share: dropout (p = config.dropout), then `classifier`, a
    Linear(C -> num_labels) initialised from `seed`."""

    def __init__(self, encoder, num_labels, seed=0):
        super().__init__(encoder)
        self.num_labels = positive_int("num_labels", num_labels)
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = self._linear("classifier", self.num_labels, seed)

    @staticmethod
    def _arguments_of(numpy_head) -> dict:
        return {"num_labels": numpy_head.num_labels}


class SequenceClassifier(_Classifier):
    """One label per sequence: pooled [CLS] state -> dropout -> Linear
    (BertForSequenceClassification).

    SequenceClassifier(encoder, num_labels, seed=0), the encoder built with pooler=True.
    forward(input_ids, attention_mask=None, token_type_ids=None) -> logits (B, L)
    """

    needs_pooler = True

    def head_forward(self, hidden):
        return self.classifier(self.dropout(self.encoder.pool(hidden)))  # (B, T, C) -> (B, L)


class TokenClassifier(_Classifier):
    """One label per token: dropout -> Linear (BertForTokenClassification).

    TokenClassifier(encoder, num_labels, seed=0)
    forward(input_ids, attention_mask=None, token_type_ids=None) -> logits (B, T, L)
    """

    def head_forward(self, hidden):
        return self.classifier(self.dropout(hidden))  # (B, T, C) -> (B, T, L)


class QuestionAnswering(_Head):
    """Extractive question answering: Linear(C -> 2) scores each token as the answer's start and
    end (BertForQuestionAnswering, no dropout).

    QuestionAnswering(encoder, seed=0)
    forward(input_ids, attention_mask=None, token_type_ids=None) -> start_logits, end_logits (B, T)
    """

    def __init__(self, encoder, seed=0):
        super().__init__(encoder)
        self.qa_outputs = self._linear("qa_outputs", 2, seed)

    def head_forward(self, hidden):
        start_logits, end_logits = self.qa_outputs(hidden).unbind(dim=-1)  # (B, T, 2) -> 2 x (B, T)
        return start_logits, end_logits


def qa_loss(start_logits, end_logits, start_positions, end_positions):
    """(CE(start_logits, start_positions) + CE(end_logits, end_positions)) / 2, as HF; positions
    (B,) in [0, T), or -100 to leave an example out of that term (see the NumPy twin)."""
    return (
        TF.cross_entropy(start_logits, start_positions) + TF.cross_entropy(end_logits, end_positions)
    ) / 2
