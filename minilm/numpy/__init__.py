"""The NumPy reference: every forward and backward written by hand."""

from minilm.numpy import functional
from minilm.numpy.models import Decoder, Encoder

__all__ = ["functional", "Encoder", "Decoder"]
