"""minilm: large pretrained language models, built twice (NumPy by hand, PyTorch + Triton) and
proven equal."""

from minilm.config import ModelConfig
from minilm.pretrained import load_pretrained
from minilm.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer

__all__ = ["BPETokenizer", "CharTokenizer", "ModelConfig", "WordPieceTokenizer", "load_pretrained"]
__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it from here)
