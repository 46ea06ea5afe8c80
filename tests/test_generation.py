"""KV-cached decoding and sampling (`minilm.generation`), NumPy reference and torch twin.

1. The KV cache changes nothing: reading a sequence in chunks through a `KVCache` gives the logits
   of one full forward pass, for the NumPy Decoder and the torch twin (math, sdpa, triton).
2. So generation with the cache gives exactly the tokens of generation without it, greedy and
   sampled, for any batch, prompt length and max_len overflow; and NumPy and torch draw the same.
3. Errors: a cache that does not fit, backward after a cached forward, bad arguments.
4. `sample_next`: greedy is argmax, top-k and top-p (the nucleus: the fewest most likely tokens
   holding >= p of the probability) restrict the support, frequencies follow the softmax
   renormalised over what is kept (chi-square, 20000 draws).

Tolerances (relative to the largest logit, see `strategies.relative_error`):

    FLOAT64_TOL = 1e-10  NumPy and torch math/sdpa in float64: the same sums in other orders (the
                         cached step multiplies (1, C) rows where the full pass multiplies (T, C));
                         worst observed over 300 examples: 8e-15
    TRITON_TOL  = 1e-4   the Triton kernel (float32, under the interpreter on CPU) against the
                         float64 NumPy model, as in test_torch_twin.py; worst observed: 9e-7
"""

import importlib
import itertools

import numpy as np
import pytest
import torch
from helpers import hf_gpt2, load_into_hf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from minilm import ModelConfig
from minilm.common.backends import to_numpy
from minilm.common.kv_cache import KVCache
from minilm.generation import generate, outside_nucleus, sample_next
from minilm.numpy import Decoder
from minilm.testing.oracles import randomise, relative_error
from minilm.testing.strategies import model_configs, seeds, token_batches
from minilm.torch import Decoder as TorchDecoder
from minilm.torch import functional as TF
from minilm.torch import params_to_state_dict

FLOAT64_TOL = 1e-10
TRITON_TOL = 1e-4
TORCH_ATTENTIONS = ("math", "sdpa")

needs_triton = pytest.mark.skipif(
    not TF.triton_can_run(), reason="needs triton and a CUDA GPU or TRITON_INTERPRET=1"
)


def random_decoder(config, seed=0, dtype=np.float64):
    """A NumPy Decoder with weights of a trained-looking scale, so attention is peaked and logits
    are spread (see `strategies.randomise`)."""
    return randomise(Decoder(config, dtype=dtype), seed)


def chunked_logits(model, ids, chunk_sizes):
    """Feed ids (B, T) through one KVCache in chunks of the given sizes; concatenated logits."""
    cache, start, parts = model.new_kv_cache(), 0, []
    for size in chunk_sizes:
        parts.append(to_numpy(model.forward(ids[:, start:start + size], kv_cache=cache)))
        start += size
        assert cache.length == start
    return np.concatenate(parts, axis=1)  # (B, T, V)


@st.composite
def chunkings(draw, time):
    """Sizes >= 1 summing to `time`: how a sequence is split between cached forward calls."""
    cuts = draw(st.sets(st.integers(1, time - 1), max_size=time - 1)) if time > 1 else set()
    bounds = [0, *sorted(cuts), time]
    return [b - a for a, b in itertools.pairwise(bounds)]


def twins(numpy_model):
    """The NumPy model and its torch twins, one per CPU attention backend."""
    return [numpy_model] + [
        TorchDecoder.from_numpy(numpy_model, attention=name) for name in TORCH_ATTENTIONS
    ]


# ---------------------------------------------------------------- 1. cached == full recompute


@given(config=model_configs(), data=st.data(), seed=seeds)
def test_numpy_cached_logits_equal_full_forward(config, data, seed):
    """Reading ids in any chunks through a KVCache gives the full forward's logits (float64)."""
    ids = data.draw(token_batches(config))
    sizes = data.draw(chunkings(ids.shape[1]))
    model = random_decoder(config, seed)
    assert relative_error(model.forward(ids), chunked_logits(model, ids, sizes)) < FLOAT64_TOL


@pytest.mark.parametrize("attention", TORCH_ATTENTIONS)
@given(config=model_configs(), data=st.data(), seed=seeds)
def test_torch_cached_logits_equal_full_forward(attention, config, data, seed):
    """The same for the twin, whose cached steps run Nq < Nk bottom-right causal attention through
    its backend (SDPA with an explicit mask: its own is_causal is top-left aligned)."""
    ids = data.draw(token_batches(config))
    sizes = data.draw(chunkings(ids.shape[1]))
    numpy_model = random_decoder(config, seed)
    twin = TorchDecoder.from_numpy(numpy_model, attention=attention)
    expected = numpy_model.forward(ids)
    assert relative_error(expected, to_numpy(twin.forward(ids))) < FLOAT64_TOL
    assert relative_error(expected, chunked_logits(twin, ids, sizes)) < FLOAT64_TOL


@needs_triton
def test_triton_cached_logits_equal_full_forward():
    """The Triton kernel on cached steps (Nq = 1 or 2 new queries against up to 7 keys, causal
    bottom-right), float32, against the float64 NumPy model's full forward."""
    config = ModelConfig(vocab_size=11, max_len=8, d_model=32, n_heads=2, n_layers=2, d_ff=32)
    numpy_model = random_decoder(config, seed=3)
    twin = TorchDecoder(config, attention="triton", dtype=torch.float32)
    twin.load_state_dict(params_to_state_dict(numpy_model.params))  # rounded to float32
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (2, 7))
    launches = importlib.import_module("minilm.kernels.flash_attention").LAUNCHES
    before = launches["forward"]
    cached = chunked_logits(twin, ids, [3, 2, 1, 1])
    assert launches["forward"] - before == 4 * config.n_layers
    assert relative_error(numpy_model.forward(ids), cached) < TRITON_TOL


def test_cached_step_projects_only_the_new_tokens():
    """What the cache saves: after the prompt, a step's Q/K/V projection sees one token, yet its
    attention reads the keys of every token so far."""
    config = ModelConfig.preset("tiny")
    model = random_decoder(config)
    ids = np.arange(6)[None] % config.vocab_size
    cache = model.new_kv_cache()
    model.forward(ids[:, :5], kv_cache=cache)
    model.forward(ids[:, 5:], kv_cache=cache)
    attn = model.blocks[0].attn
    assert attn.projections[0].cache.x.shape == (1, 1, config.d_model)  # (B, T_new, C)
    assert attn.cache.k.shape == (1, config.n_heads, 6, config.head_dim)  # (B, H, T_past+1, D)
    assert all(layer.keys.shape[2] == 6 for layer in cache.layers)


# ---------------------------------------------------------------- 2. same tokens


@pytest.mark.parametrize("backend", ["numpy", *TORCH_ATTENTIONS])
@pytest.mark.parametrize("temperature, top_k, top_p", [(0.0, None, None), (1.0, None, None),
                                                       (0.7, 5, None), (1.0, None, 0.8)])
def test_generate_same_tokens_with_and_without_cache(backend, temperature, top_k, top_p):
    """Greedy and sampled (same seed) generation are identical with and without the cache, for a
    batch of 3, float32 weights as in real use; NumPy and torch produce the same tokens too."""
    config = ModelConfig.preset("tiny", vocab_size=20)  # max_len 16
    numpy_model = random_decoder(config, seed=1, dtype=np.float32)
    model = numpy_model if backend == "numpy" else TorchDecoder.from_numpy(numpy_model, backend)
    prompt = np.random.default_rng(2).integers(0, config.vocab_size, (3, 4))

    def run(use_cache):
        return generate(model, prompt, 10, np.random.default_rng(7), temperature, top_k, use_cache,
                        top_p)

    cached = run(True)
    assert cached.shape == (3, 14)
    np.testing.assert_array_equal(cached[:, :4], prompt)
    np.testing.assert_array_equal(cached, run(False))
    reference = generate(numpy_model, prompt, 10, np.random.default_rng(7), temperature, top_k,
                         top_p=top_p)
    np.testing.assert_array_equal(cached, reference)


@given(config=model_configs(), data=st.data(), seed=seeds)
def test_generate_same_tokens_any_prompt_and_length(config, data, seed):
    """Any prompt length (1 included, longer than max_len included) and any number of new tokens,
    also past max_len (where the cache is dropped and the window slides): identical tokens, for
    both backends (float64)."""
    prompt = data.draw(token_batches(config, time=data.draw(st.integers(1, config.max_len + 2))))
    n_new = data.draw(st.integers(0, 2 * config.max_len))
    temperature = data.draw(st.sampled_from([0.0, 1.0]))
    expected = generate(
        random_decoder(config, seed), prompt, n_new, np.random.default_rng(seed), temperature,
        use_cache=False,
    )
    for model in twins(random_decoder(config, seed)):
        tokens = generate(model, prompt, n_new, np.random.default_rng(seed), temperature)
        np.testing.assert_array_equal(tokens, expected)


def test_generate_uses_the_cache_up_to_max_len_then_slides():
    """Prompt of 1 token: every step feeds one token through the cache until all max_len positions
    are cached; the step after that recomputes the cropped window without a cache."""
    config = ModelConfig.preset("tiny", vocab_size=20)  # max_len 16
    model = random_decoder(config, seed=4)
    prompt = np.array([[3], [5]])
    calls = []  # (shape of the ids fed, cache length after the call or None)
    forward = model.forward

    def recording_forward(ids, kv_cache=None):
        logits = forward(ids, kv_cache=kv_cache)
        calls.append((ids.shape, None if kv_cache is None else kv_cache.length))
        return logits

    model.forward = recording_forward
    tokens = generate(model, prompt, config.max_len + 2, np.random.default_rng(0))
    del model.forward
    assert tokens.shape == (2, config.max_len + 3)
    assert calls[: config.max_len] == [((2, 1), t + 1) for t in range(config.max_len)]
    assert calls[config.max_len:] == [((2, config.max_len), None)] * 2
    rng = np.random.default_rng(0)
    no_cache = generate(model, prompt, config.max_len + 2, rng, use_cache=False)
    np.testing.assert_array_equal(tokens, no_cache)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
@pytest.mark.parametrize("backend", ["numpy", *TORCH_ATTENTIONS])
@pytest.mark.parametrize("prompt_len", [1, 15])  # 15 = max_len - 1
def test_greedy_generate_equals_hugging_face(prompt_len, backend, use_cache):
    """Greedy decoding gives the tokens of HF's GPT2LMHeadModel.generate(do_sample=False) on the
    same float64 weights, with and without the cache, for a batch of 3 prompts grown to exactly
    max_len tokens (HF's position table ends there): of 1 token, every later one fed through the
    cache, and of max_len - 1, a prefill of all but the last position."""
    config = ModelConfig.preset("tiny", vocab_size=20)  # max_len 16
    numpy_model = random_decoder(config, seed=5)
    hf = load_into_hf(numpy_model, hf_gpt2(config), "transformer.wpe.weight")
    model = numpy_model if backend == "numpy" else TorchDecoder.from_numpy(numpy_model, backend)
    prompt = np.random.default_rng(prompt_len).integers(0, config.vocab_size, (3, prompt_len))
    n_new = config.max_len - prompt_len
    with torch.no_grad():
        expected = hf.generate(
            torch.from_numpy(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
            max_new_tokens=n_new, do_sample=False, pad_token_id=0, eos_token_id=None,
        ).numpy()
    tokens = generate(model, prompt, n_new, temperature=0.0, use_cache=use_cache)
    assert tokens.shape == (3, config.max_len)
    np.testing.assert_array_equal(tokens, expected)


def test_generate_restores_training_mode_and_leaves_no_graph():
    config = ModelConfig.preset("tiny")
    model = random_decoder(config)
    twin = TorchDecoder.from_numpy(model, attention="math")
    for m in (model, twin):
        m.train()
        generate(m, np.zeros((1, 2), dtype=np.int64), 3)
        assert m.training


# ---------------------------------------------------------------- 3. max_len and errors


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cached_forward_errors(backend):
    """A cache that does not fit is refused with a ValueError and left as it was."""
    config = ModelConfig.preset("tiny")  # max_len 16, 2 layers
    numpy_model = random_decoder(config)
    model = numpy_model if backend == "numpy" else TorchDecoder.from_numpy(numpy_model, "math")
    ids = np.zeros((2, 10), dtype=np.int64)
    cache = model.new_kv_cache()
    model.forward(ids, kv_cache=cache)
    with pytest.raises(ValueError, match="holds 10 tokens and input_ids adds 7: more than max_len"):
        model.forward(ids[:, :7], kv_cache=cache)
    with pytest.raises(ValueError, match="batch of 2 sequences; input_ids has 3"):
        model.forward(np.zeros((3, 1), dtype=np.int64), kv_cache=cache)
    assert cache.length == 10
    model.forward(ids[:, :6], kv_cache=cache)  # exactly max_len positions is fine
    with pytest.raises(ValueError, match="more than max_len=16"):
        model.forward(ids[:, :1], kv_cache=cache)
    with pytest.raises(ValueError, match="kv_cache has 3 layers"):
        model.forward(ids, kv_cache=KVCache(3))
    with pytest.raises(ValueError, match="kv_cache must be a KVCache"):
        model.forward(ids, kv_cache={})


def test_numpy_backward_after_cached_forward_raises():
    """A cached forward is inference only; a normal forward afterwards trains as before."""
    model = random_decoder(ModelConfig.preset("tiny"))
    ids = np.zeros((1, 4), dtype=np.int64)
    logits = model.forward(ids, kv_cache=model.new_kv_cache())
    with pytest.raises(ValueError, match="backward after a forward with kv_cache"):
        model.backward(np.ones_like(logits))
    model.backward(np.ones_like(model.forward(ids)))
    assert any(np.abs(g).max() > 0 for g in model.grads.values())


def test_torch_cached_forward_builds_no_graph():
    """The twin runs a cached forward without autograd: its logits and cached keys carry no graph,
    so backward raises torch's error; a normal forward is differentiable as before."""
    twin = TorchDecoder.from_numpy(random_decoder(ModelConfig.preset("tiny")), attention="math")
    ids = np.zeros((1, 4), dtype=np.int64)
    cache = twin.new_kv_cache()
    logits = twin.forward(ids, kv_cache=cache)
    assert not logits.requires_grad and not cache.layers[0].keys.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        logits.sum().backward()
    assert twin.forward(ids).requires_grad


def test_generate_argument_errors():
    model = random_decoder(ModelConfig.preset("tiny"))
    with pytest.raises(ValueError, match="non-empty"):
        generate(model, np.zeros((1, 0), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        generate(model, np.zeros((1, 2), dtype=np.int64), -1)
    np.testing.assert_array_equal(generate(model, [[1, 2]], 0), [[1, 2]])


# ---------------------------------------------------------------- 4. sample_next

logit_rows = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 12)),
    elements=st.floats(-20, 20, allow_subnormal=False),
)


@given(logits=logit_rows, data=st.data(), seed=seeds)
def test_top_k_restricts_the_support(logits, data, seed):
    """Every sample is among the k largest logits of its row (ties with the k-th included)."""
    top_k = data.draw(st.integers(1, logits.shape[1]))
    temperature = data.draw(st.floats(0.05, 5.0))
    ids = sample_next(logits, np.random.default_rng(seed), temperature, top_k)
    kth_largest = np.sort(logits, axis=-1)[:, -top_k]  # (B,)
    assert ids.shape == (logits.shape[0],)
    assert (logits[np.arange(len(ids)), ids] >= kth_largest).all()


@given(logits=logit_rows, seed=seeds)
def test_temperature_zero_is_argmax_and_draws_nothing(logits, seed):
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(sample_next(logits, rng, 0.0), logits.argmax(axis=-1))
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("temperature", [1e-300, 1e-310, 5e-324])
def test_a_tiny_temperature_samples_the_best_token(temperature):
    """logits / 1e-310 overflowed to inf, the softmax gave NaN and the sampler token 0, the worst."""
    logits = np.array([[0.0, 1.0, 0.5], [1e10, -1e10, 0.0]])
    for seed in range(5):
        np.testing.assert_array_equal(
            sample_next(logits, np.random.default_rng(seed), temperature), [1, 0])


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.5, None), (2.0, 3)])
def test_sample_frequencies_follow_the_softmax(temperature, top_k):
    """20000 draws from one distribution: chi-square goodness of fit against softmax(logits / T)
    restricted to the top k (p-value > 1e-4: a false alarm once in 10000 seeds; fixed seed here)."""
    logits = np.log([0.05, 0.1, 0.15, 0.3, 0.4])
    n = 20_000
    ids = sample_next(np.tile(logits, (n, 1)), np.random.default_rng(0), temperature, top_k)
    expected = np.exp(logits / temperature)
    if top_k is not None:
        expected[np.argsort(logits)[:-top_k]] = 0.0
    expected = expected / expected.sum() * n
    counts = np.bincount(ids, minlength=len(logits))
    support = expected > 0
    assert counts[~support].sum() == 0
    assert stats.chisquare(counts[support], expected[support]).pvalue > 1e-4


def test_sample_next_argument_errors():
    logits = np.zeros((1, 4))
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, np.random.default_rng(0), -1.0)
    with pytest.raises(ValueError, match="top_k"):
        sample_next(logits, np.random.default_rng(0), 1.0, top_k=5)
    for top_p in (0.0, -0.1, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="top_p"):
            sample_next(logits, np.random.default_rng(0), 1.0, top_p=top_p)


@given(logits=logit_rows, data=st.data(), seed=seeds)
def test_top_p_samples_from_the_smallest_nucleus(logits, data, seed):
    """With top_p = p, the kept tokens of a row are the nucleus: their probability (softmax of
    logits / T) adds up to >= p, and without the least likely of them to < p (no smaller set of
    the most likely tokens would do); 50 draws per row all fall inside it."""
    top_p = data.draw(st.floats(0.01, 1.0))
    temperature = data.draw(st.floats(0.05, 5.0))
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    kept = ~outside_nucleus(scaled, top_p)  # (B, V)
    for row_probs, row_kept in zip(probs, kept):
        mass, smallest = row_probs[row_kept].sum(), row_probs[row_kept].min()
        assert mass >= top_p - 1e-9 and mass - smallest < top_p + 1e-9
        assert (row_probs[~row_kept] <= smallest + 1e-12).all()  # the most likely ones are kept
    draws = sample_next(np.repeat(logits, 50, axis=0), np.random.default_rng(seed), temperature,
                        top_p=top_p)  # (50 B,)
    assert np.repeat(kept, 50, axis=0)[np.arange(len(draws)), draws].all()


@pytest.mark.parametrize("size, top_p, kept", [
    (2, 0.5, 1), (4, 0.25, 1), (4, 0.5, 2), (4, 0.75, 3),
])
def test_top_p_drops_a_token_whose_better_ranked_tokens_hold_exactly_p(size, top_p, kept):
    """Equal logits over 2 or 4 tokens: probabilities 1/2 or 1/4, their running sums exact in
    float64. A token is dropped as soon as the tokens ranked above it hold p, so p = 1/2 over four
    keeps two (ties ranked by id: the lowest ids), not the three a test `above > p` would keep."""
    outside = outside_nucleus(np.zeros((1, size)), top_p)  # (1, size)
    assert outside.tolist() == [[False] * kept + [True] * (size - kept)]


@pytest.mark.parametrize("temperature, top_k, top_p, nucleus", [
    (1.0, None, 0.65, [3, 4]),  # 0.4 + 0.3 >= 0.65
    (1.0, None, 0.75, [2, 3, 4]),  # 0.4 + 0.3 < 0.75 <= 0.4 + 0.3 + 0.15
    (1.0, 4, 0.99, [1, 2, 3, 4]),  # top-k removes token 0 first; the nucleus keeps the rest
    (0.5, None, 0.8, [3, 4]),  # sharpened to p^2 / 0.285: 0.561 + 0.316 >= 0.8
])
def test_top_p_frequencies_follow_the_renormalised_nucleus(temperature, top_k, top_p, nucleus):
    """20000 draws from one distribution: only the nucleus (written out by hand above) is ever
    drawn, and chi-square goodness of fit against softmax(logits / T) renormalised over it
    (p-value > 1e-4, fixed seed)."""
    logits = np.log([0.05, 0.1, 0.15, 0.3, 0.4])
    n = 20_000
    ids = sample_next(np.tile(logits, (n, 1)), np.random.default_rng(0), temperature, top_k,
                      top_p)
    expected = np.zeros(len(logits))
    expected[nucleus] = np.exp(logits[nucleus] / temperature)
    expected = expected / expected.sum() * n
    counts = np.bincount(ids, minlength=len(logits))
    assert set(np.flatnonzero(counts)) == set(nucleus)
    assert stats.chisquare(counts[nucleus], expected[nucleus]).pvalue > 1e-4


def test_top_p_one_keeps_every_token_and_draws_as_without_it():
    """top_p = 1 changes nothing: the same draws from the same generator; a tiny top_p keeps the
    most likely token only, still drawing one number per row (the generator moves as usual)."""
    logits = np.random.default_rng(3).normal(size=(64, 9))
    logits[0] = [40, 0, 0, 1, 0, 0, 0, 0, 0]  # confident: the float64 running sum is 1.0 at once
    assert not outside_nucleus(logits, 1.0).any()
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(sample_next(logits, rng_a, 0.9, top_p=1.0),
                                  sample_next(logits, rng_b, 0.9))
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(sample_next(logits, rng, 0.9, top_p=1e-9), logits.argmax(-1))
    assert rng.bit_generator.state == rng_a.bit_generator.state
