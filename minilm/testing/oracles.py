"""Oracles shared by the test suite and `minilm check`: finite differences, the error metric every
comparison uses, and weights of a trained-looking scale.
"""

import numpy as np


def numerical_gradient(f, x, eps=1e-4, indices=None):
    """Central finite differences of the scalar function f at the array x, fourth-order stencil:

        df/dx_i ~ [8 (f(x + h e_i) - f(x - h e_i)) - (f(x + 2h e_i) - f(x - 2h e_i))] / (12 h)

    with h = eps. Truncation error O(h^4), roundoff ~ |f| * 1e-16 / h. The plain two-point
    difference (error O(h^2)) has no step that keeps both small across whole models: h = 1e-5
    leaves ~1e-6 of truncation where a LayerNorm row is nearly constant, h = 1e-6 leaves ~1e-9
    of roundoff on gradients that are exactly zero. With h = 1e-4 both are ~1e-11 here.

    `f` is called as f(x) with x perturbed *in place* (so f may also read x through a closure, as
    when x is a model parameter); x is restored exactly afterwards. `indices`: flat indices to probe
    (default every entry). Returns the gradient shaped like x, or one value per index.
    """
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")

    def f_at(i, step):
        original = flat[i]
        flat[i] = original + step
        value = float(f(x))
        flat[i] = original
        return value

    probe = np.arange(flat.size) if indices is None else np.asarray(indices)
    grad = np.empty(probe.shape, dtype=np.float64)
    for n, i in enumerate(probe):
        near = f_at(i, eps) - f_at(i, -eps)
        far = f_at(i, 2 * eps) - f_at(i, -2 * eps)
        grad[n] = (8 * near - far) / (12 * eps)
    return grad.reshape(x.shape) if indices is None else grad


def relative_error(expected, actual, floor=1.0):
    """max|expected - actual| / max(floor, max|expected|).

    With floor=1 this is relative where values are large and absolute where they are small, so a
    gradient that must be exactly zero (a masked row, an ignored target) is checked too; floor=0
    makes it purely relative to the largest expected value."""
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"relative_error: shapes {expected.shape} and {actual.shape} differ")
    if expected.size == 0:
        return 0.0
    scale = max(floor, float(np.abs(expected).max()))
    if scale == 0:  # expected all zero and floor 0: any non-zero `actual` is an error
        return float(np.abs(actual).max())
    return float(np.abs(expected - actual).max() / scale)


def randomise(numpy_model, seed):
    """Weights of a trained-looking scale: matrices N(0, (1.5/sqrt(fan_in))^2), LayerNorm weights
    1 + N(0, 0.2^2), biases N(0, 0.2^2)."""
    rng = np.random.default_rng(seed)
    for name, value in numpy_model.params.items():
        if value.ndim == 2:
            value[...] = rng.normal(0.0, 1.5 / np.sqrt(value.shape[1]), value.shape)
        elif name.endswith(".weight"):
            value[...] = 1.0 + 0.2 * rng.normal(size=value.shape)
        else:
            value[...] = 0.2 * rng.normal(size=value.shape)
    return numpy_model


def finite_difference_error(forward, dout, pairs) -> float:
    """Worst relative_error over `pairs` of (input array, its analytic gradient), where the
    numerical gradient is that of L = sum(forward() * dout); `forward` reads the inputs through a
    closure, so perturbing one in place changes its output."""
    loss = lambda _: float(np.sum(np.asarray(forward(), dtype=np.float64) * dout))
    return max(relative_error(numerical_gradient(loss, x), grad) for x, grad in pairs)


def torch_forward_backward(fn, arrays, dout):
    """Run fn on float64 leaf tensors made from `arrays`, backpropagate `dout`: (out, grads) as
    NumPy arrays. PyTorch's autograd is the independent oracle of every hand-written backward."""
    import torch

    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.as_tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


def allowed_keys(attn_mask, causal: bool, n_queries: int, n_keys: int) -> np.ndarray:
    """The boolean (.., Nq, Nk) matrix of which query may attend which key (True = may attend,
    causal aligned bottom-right), built independently of minilm's attention."""
    allowed = np.ones((n_queries, n_keys), dtype=bool)
    if attn_mask is not None:
        allowed = allowed & attn_mask
    if causal:
        allowed = allowed & np.tril(np.ones((n_queries, n_keys), dtype=bool), k=n_keys - n_queries)
    return allowed


def torch_attention(q, k, v, allowed, scale, keep_scaled=None):
    """softmax(q k^T * scale) v in torch with a boolean `allowed` (True = may attend); a row with
    nothing allowed outputs zeros (its scores are set to 0 before the softmax, then zeroed, so no
    NaN reaches autograd). `keep_scaled`: a dropout mask already divided by 1 - p."""
    import torch

    scores = (q @ k.transpose(-1, -2)) * scale
    allowed = torch.as_tensor(allowed).expand(scores.shape)
    any_allowed = allowed.any(dim=-1, keepdim=True)
    scores = torch.where(any_allowed, scores.masked_fill(~allowed, float("-inf")), 0.0)
    probs = torch.softmax(scores, dim=-1) * any_allowed
    if keep_scaled is not None:
        probs = probs * torch.as_tensor(keep_scaled)
    return probs @ v


def attention_logsumexp(q, k, allowed, scale):
    """L_i = log sum_j exp(S_ij) over the keys query i may attend, S = q k^T * scale, by SciPy's
    logsumexp over the whole (.., Nq, Nk) matrix: the one number per query FlashAttention keeps for
    its backward. +inf for a query that may attend nothing (the kernel's convention: exp(S - L) is
    then 0, where the logarithm of an empty sum would be -inf)."""
    from scipy.special import logsumexp

    scores = np.where(allowed, (q @ np.swapaxes(k, -1, -2)) * scale, -np.inf)  # (.., Nq, Nk)
    lse = logsumexp(scores, axis=-1)  # -inf where nothing is allowed
    return np.where(np.isneginf(lse), np.inf, lse)


def peak_bytes(function, *args, **kwargs) -> int:
    """The most memory allocated while function(*args, **kwargs) runs, beyond what was allocated
    when it started, in bytes, by Python's tracemalloc (NumPy reports its arrays to it). The result
    is dropped. Works whether or not tracemalloc is already tracing."""
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    try:
        function(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak - before


def counted_bigram_log_probs(ids, vocab_size: int, smoothing: float) -> np.ndarray:
    """log((n(a, b) + k) / (n(a) + k V)), counted one pair at a time in plain Python, independently
    of minilm.bigram: -inf for a pair with no count and no smoothing, uniform for a row that
    holds nothing at all."""
    import math

    counts = [[0] * vocab_size for _ in range(vocab_size)]
    for previous, following in zip(list(ids)[:-1], list(ids)[1:]):
        counts[previous][following] += 1
    table = np.empty((vocab_size, vocab_size))
    for a, row in enumerate(counts):
        total = sum(row) + smoothing * vocab_size
        for b, count in enumerate(row):
            if total == 0:
                table[a, b] = -math.log(vocab_size)
            else:
                table[a, b] = math.log((count + smoothing) / total) if count + smoothing else -math.inf
    return table


def hf_wordpiece(word: str, vocab, unk_token: str = "[UNK]", continuation: str = "##",
                 max_chars: int = 100) -> list[str]:
    """The word pieces Hugging Face's `tokenizers` WordPiece model (the Rust code BertTokenizerFast
    runs) gives one word, with the vocabulary `vocab` (an iterable of tokens that holds
    unk_token)."""
    return [token.value for token in
            _hf_wordpiece_model(tuple(vocab), unk_token, continuation, max_chars).tokenize(word)]


_HF_WORDPIECE_MODELS: dict = {}  # the last few models built, by their arguments


def _hf_wordpiece_model(tokens: tuple, unk_token: str, continuation: str, max_chars: int):
    from tokenizers.models import WordPiece

    key = (tokens, unk_token, continuation, max_chars)
    if key not in _HF_WORDPIECE_MODELS:
        if len(_HF_WORDPIECE_MODELS) >= 8:
            _HF_WORDPIECE_MODELS.clear()
        _HF_WORDPIECE_MODELS[key] = WordPiece(
            {token: i for i, token in enumerate(tokens)}, unk_token=unk_token,
            continuing_subword_prefix=continuation, max_input_chars_per_word=max_chars)
    return _HF_WORDPIECE_MODELS[key]
