"""The PyTorch twin: the NumPy reference's models with the same parameter names, differentiated by
autograd, with attention through our Triton kernel (or PyTorch's SDPA, or plain tensor math)."""

from minilm.torch import functional
from minilm.torch.heads import QuestionAnswering, SequenceClassifier, TokenClassifier
from minilm.torch.models import Decoder, Encoder, params_to_state_dict, state_dict_to_params
from minilm.torch.seq2seq import Seq2Seq

__all__ = [
    "Decoder",
    "Encoder",
    "QuestionAnswering",
    "Seq2Seq",
    "SequenceClassifier",
    "TokenClassifier",
    "functional",
    "params_to_state_dict",
    "state_dict_to_params",
]
