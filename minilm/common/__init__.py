"""What the NumPy reference and the PyTorch twin share, in one neutral place that imports neither
twin's private names: input checks (`checks`), the KV cache (`kv_cache`), checkpoint names and
constants (`names`), moving between backends (`backends`) and reading a head's outputs (`spans`).
"""
