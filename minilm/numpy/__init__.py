"""The NumPy reference: every forward and backward written by hand."""

from minilm.common.kv_cache import KVCache
from minilm.numpy import functional
from minilm.numpy.heads import QuestionAnswering, SequenceClassifier, TokenClassifier
from minilm.numpy.models import Decoder, Encoder
from minilm.numpy.seq2seq import Seq2Seq

__all__ = [
    "Decoder",
    "Encoder",
    "KVCache",
    "QuestionAnswering",
    "Seq2Seq",
    "SequenceClassifier",
    "TokenClassifier",
    "functional",
]
