"""Triton kernels, one algorithm per file, each with its autograd.Function and a CPU reference."""

from kernels.flash_attention import flash_attention

__all__ = ["flash_attention"]
