"""minilm: large pretrained language models, built twice (NumPy by hand, PyTorch + Triton) and
proven equal."""

from minilm.config import ModelConfig
from minilm.pretrained import load_pretrained
from minilm.tokenizers import CharTokenizer, WordPieceTokenizer

__all__ = ["CharTokenizer", "ModelConfig", "WordPieceTokenizer", "load_pretrained"]
__version__ = "0.1.0"
