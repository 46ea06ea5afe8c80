"""Triton kernels, one algorithm per file, each with its autograd.Function and a CPU reference.

This folder installs inside the package, as `minilm.kernels` (see pyproject.toml):

    from minilm.kernels import flash_attention

Triton ships Linux wheels only. Where it (or torch) is not installed this package still imports,
and calling a kernel raises ModuleNotFoundError naming what is missing; the PyTorch twin does not
call it there, and runs its attention with PyTorch's SDPA instead.
"""

try:
    from minilm.kernels.flash_attention import flash_attention
except ModuleNotFoundError as error:
    if error.name not in ("torch", "triton"):
        raise
    _MISSING = error.name

    def flash_attention(*args, **kwargs):
        """Stands in for the kernel where Triton or torch is not installed: calling it says so."""
        raise ModuleNotFoundError(
            f"minilm.kernels.flash_attention needs {_MISSING}, which is not installed (Triton "
            "ships Linux wheels only: pip install 'minilm[torch]' there); the PyTorch twin runs "
            "its attention with attention='sdpa' instead",
            name=_MISSING,
        )

__all__ = ["flash_attention"]
