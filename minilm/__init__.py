"""minilm: large pretrained language models, built twice (NumPy by hand, PyTorch + Triton) and
proven equal."""

from minilm.config import ModelConfig
from minilm.tokenizers import CharTokenizer

__all__ = ["ModelConfig", "CharTokenizer"]
__version__ = "0.1.0"
