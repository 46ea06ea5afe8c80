"""The encoder-decoder (`minilm.numpy.Seq2Seq`, its twin `minilm.torch.Seq2Seq`), its decoding
(`minilm.beam`) and its Hugging Face architecture (`BartForConditionalGeneration`).

Checks, all with weights noised to N(0, 0.3^2) around the init (see test_models.py) and source
padding in the batch:

1. finite differences (float64) of the whole model, both position kinds, tied and untied head,
   with dropout (masks replayed), and of `CrossAttention` alone: dx and d memory, the gradient that
   flows back into the encoder. Metric and tolerance as test_models.py (`WHOLE_MODEL_FD_TOL` 1e-6
   relative, floor 1e-3; worst seen 3e-9).
2. Hugging Face's BartForConditionalGeneration built offline from a random config, given the same
   weights (float64, eager attention): logits and loss within 1e-10, every gradient within 1e-10
   (worst seen 2e-15 and 5e-16). `final_logits_bias` is a buffer in HF; it is made to require a
   gradient there so that its gradient is compared too.
3. NumPy <-> twin ("math", "sdpa" in float64, tolerance 1e-9) <-> the Triton kernel (float32,
   under the interpreter on CPU, tolerance 1e-4): logits, loss, every gradient.
4. decoding: cached == uncached logits at every step and the same tokens, greedy and beam search,
   both backends; beam search with enough beams finds the best hypothesis by brute force; both
   give the tokens of HF's `generate` (its stopping rule, early_stopping=False, included).
5. bad input: lengths past max_len, an empty source, ids out of range, mismatched memory.
"""

import itertools
import re

import numpy as np
import pytest
import torch
import transformers
from helpers import (
    FLOAT64_TOL,
    GRAD_FLOOR,
    HF_GRAD_TOL,
    HF_LOGITS_TOL,
    TRITON_TOL,
    add_weight_noise,
    assert_gradients_match_finite_differences,
    assert_within,
    needs_triton,
    twin_errors,
    with_ignored,
)

import minilm.torch as twin
from minilm import beam
from minilm.common.backends import to_numpy
from minilm.config import POSITION_KINDS, ModelConfig
from minilm.numpy import KVCache, Seq2Seq
from minilm.numpy import functional as F
from minilm.numpy.layers import CrossAttention, ParameterStore
from minilm.numpy.models import loss_and_backward
from minilm.pretrained import load_pretrained
from minilm.testing.oracles import numerical_gradient, relative_error
from minilm.torch import functional as TF

transformers.logging.set_verbosity_error()

CONFIG = ModelConfig(vocab_size=13, max_len=8, d_model=8, n_heads=2, n_layers=2, d_ff=12)


def problem(config=CONFIG, seed=0, batch=3, source_len=7, target_len=6):
    """(source_ids, source_mask with right padding, target_ids, targets with ignored entries)."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, config.vocab_size, (batch, source_len))
    mask = np.ones((batch, source_len), dtype=np.int64)
    for row in range(1, batch):
        mask[row, source_len - row:] = 0  # rows 1.. end with padding
    target = rng.integers(0, config.vocab_size, (batch, target_len))
    targets = with_ignored(rng.integers(0, config.vocab_size, (batch, target_len)), rng)
    return source, mask, target, targets


def noisy_model(config=CONFIG, seed=1, dtype=np.float64, **kwargs):
    return add_weight_noise(Seq2Seq(config, seed=seed, dtype=dtype, **kwargs), seed + 1)


# ================================================================ 1. finite differences


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("positions", POSITION_KINDS)
def test_seq2seq_gradients_match_finite_differences(positions, tie):
    """Seq2Seq.backward gives d loss / d every parameter, the encoder's included (they get their
    gradient only through the memory that every decoder layer's cross-attention reads)."""
    config = ModelConfig(**{**CONFIG.to_dict(), "positions": positions})
    model = noisy_model(config, tie_word_embeddings=tie)
    source, mask, target, targets = problem(config, target_len=config.max_len)

    def loss():
        return F.cross_entropy_forward(model.forward(source, mask, target), targets)[0]

    loss_and_backward(model, model.forward(source, mask, target), targets)
    assert any(name.startswith("model.encoder.layers.") for name in model.grads)
    assert_gradients_match_finite_differences(model, loss, seed=3)


def test_seq2seq_gradients_with_dropout_match_finite_differences():
    """Dropout everywhere (embeddings, attention weights, the three residual branches of each
    decoder layer): replaying the generator fixes the masks, the gradients match."""
    config = ModelConfig(**{**CONFIG.to_dict(), "dropout": 0.2, "n_layers": 1})
    model = noisy_model(config)
    source, mask, target, targets = problem(config)
    state = model.rng.bit_generator.state

    def loss():
        model.rng.bit_generator.state = state
        return F.cross_entropy_forward(model.forward(source, mask, target), targets)[0]

    model.rng.bit_generator.state = state
    loss_and_backward(model, model.forward(source, mask, target), targets)
    assert_gradients_match_finite_differences(model, loss, seed=4)


def test_cross_attention_backward_reaches_the_memory():
    """CrossAttention.backward: dx through the queries, d memory through the keys *and* the values
    (their sum), both equal to central differences; padded source positions get exactly 0."""
    rng = np.random.default_rng(5)
    store = ParameterStore(np.float64)
    layer = CrossAttention(store, ["q", "k", "v"], "o", CONFIG, rng)
    for value in store.params.values():
        value += rng.normal(0, 0.5, value.shape)
    x, memory = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 5, 8))
    keep = np.ones((2, 5), dtype=bool)
    keep[1, 3:] = False
    weights = rng.normal(size=(2, 3, 8))  # loss = sum(out * weights)

    def loss(_=None):
        return float((layer.forward(x, memory, keep[:, None, None, :]) * weights).sum())

    loss()
    dx, dmemory = layer.backward(weights)
    assert relative_error(numerical_gradient(loss, x), dx, GRAD_FLOOR) < 1e-8
    assert relative_error(numerical_gradient(loss, memory), dmemory, GRAD_FLOOR) < 1e-8
    assert np.all(dmemory[1, 3:] == 0) and np.abs(dmemory[1, :3]).min() > 0


# ================================================================ 2. Hugging Face's BART


def hf_bart(config, tie=True):
    """A float64, eval-mode BartForConditionalGeneration of the same sizes, no dropout, eager
    attention, built offline. pad_token_id=None: HF's `padding_idx` would stop the lookup's
    gradient into the pad row, which minilm does not do (our inputs use id 0 as anything)."""
    hf_config = transformers.BartConfig(
        vocab_size=config.vocab_size, d_model=config.d_model, encoder_layers=config.n_layers,
        decoder_layers=config.n_layers, encoder_attention_heads=config.n_heads,
        decoder_attention_heads=config.n_heads, encoder_ffn_dim=config.d_ff,
        decoder_ffn_dim=config.d_ff, max_position_embeddings=config.max_len,
        activation_function="gelu", dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=None, scale_embedding=False, tie_word_embeddings=tie,
        attn_implementation="eager")
    hf = transformers.BartForConditionalGeneration(hf_config).double().eval()
    if not tie:  # only the output layer untied: the encoder and decoder still read model.shared
        hf.model.encoder.embed_tokens = hf.model.decoder.embed_tokens = hf.model.shared
    hf.final_logits_bias.requires_grad_(True)  # a buffer in HF; learned in minilm
    return hf


def hf_parameters(hf):
    return {**dict(hf.named_parameters()), "final_logits_bias": hf.final_logits_bias}


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_seq2seq_equals_hugging_face_bart(tie):
    """Same weights: the same logits, loss and gradient for every parameter as HF's
    BartForConditionalGeneration, with source padding (HF's encoder attention_mask)."""
    model = noisy_model(tie_word_embeddings=tie)
    hf = hf_bart(CONFIG, tie)
    assert set(hf_parameters(hf)) == set(model.params)
    with torch.no_grad():
        for name, tensor in hf_parameters(hf).items():
            tensor.copy_(torch.from_numpy(model.params[name]))
    source, mask, target, targets = problem()
    out = hf(input_ids=torch.from_numpy(source), attention_mask=torch.from_numpy(mask),
             decoder_input_ids=torch.from_numpy(target), labels=torch.from_numpy(targets))
    out.loss.backward()
    logits = model.forward(source, mask, target)
    loss = loss_and_backward(model, logits, targets)
    assert relative_error(out.logits.detach().numpy(), logits, 1.0) <= HF_LOGITS_TOL
    assert abs(out.loss.item() - loss) <= HF_LOGITS_TOL * max(1.0, loss)
    errors = {name: relative_error(tensor.grad.numpy(), model.grads[name], GRAD_FLOOR)
              for name, tensor in hf_parameters(hf).items()}
    assert_within(errors, HF_GRAD_TOL)


def test_load_pretrained_reads_a_bart_directory(tmp_path):
    """A BartForConditionalGeneration saved by transformers (tied copies of the embeddings among
    its tensors, `final_logits_bias`) loads into both twins, whose logits are HF's."""
    hf = hf_bart(CONFIG)
    with torch.no_grad():
        for tensor in hf_parameters(hf).values():
            tensor.normal_(0.0, 0.3)
    hf.save_pretrained(tmp_path)
    source, mask, target, _ = problem()
    expected = hf(input_ids=torch.from_numpy(source), attention_mask=torch.from_numpy(mask),
                  decoder_input_ids=torch.from_numpy(target)).logits.detach().numpy()
    ours = load_pretrained(tmp_path, dtype=np.float64)
    assert isinstance(ours, Seq2Seq) and not ours.training
    assert relative_error(expected, ours.forward(source, mask, target), 1.0) <= HF_LOGITS_TOL
    theirs = load_pretrained(tmp_path, backend="torch", dtype=torch.float64, attention="math")
    assert relative_error(expected, theirs(source, mask, target).detach(), 1.0) <= HF_LOGITS_TOL


# ================================================================ 3. NumPy <-> twin <-> kernel


def seq2seq_twin_errors(model, attention, dtype):
    """`twin_errors` of the twin (`attention`, `dtype`, the reference's weights) against the
    float64 reference on one problem: logits, loss and every gradient."""
    source, mask, target, targets = problem()
    other = twin.Seq2Seq(model.config, attention=attention, dtype=dtype)
    other.load_state_dict(twin.params_to_state_dict(model.params))  # cast to `dtype`
    assert other.state_dict().keys() == model.params.keys()
    return twin_errors(model, other, {"source_ids": source, "source_mask": mask, "target_ids": target},
                       lambda reference, logits: loss_and_backward(reference, logits, targets),
                       lambda logits: TF.cross_entropy(logits, torch.from_numpy(targets)))


@pytest.mark.parametrize("attention", ["math", "sdpa"])
def test_twin_equals_numpy_in_float64(attention):
    assert_within(seq2seq_twin_errors(noisy_model(), attention, torch.float64), FLOAT64_TOL)


@needs_triton
def test_twin_through_the_triton_kernel_equals_numpy():
    """Every attention through our FlashAttention kernel: encoder self-attention and cross-attention
    with the source padding as key_mask (Nq != Nk for cross-attention), causal decoder
    self-attention; head_dim 16, the kernel's smallest."""
    config = ModelConfig(**{**CONFIG.to_dict(), "d_model": 32})
    model = add_weight_noise(Seq2Seq(config, seed=1, dtype=np.float64), 2, std=0.1)
    assert_within(seq2seq_twin_errors(model, "triton", torch.float32), TRITON_TOL)


# ================================================================ 4. decoding


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cached_decoding_equals_uncached(backend):
    """decode with a Seq2SeqCache, one token at a time, gives the logits of decoding the whole
    target at once; the cross-attention keys and values are computed at the first step only."""
    model = noisy_model(dtype=np.float64)
    if backend == "torch":
        model = twin.Seq2Seq.from_numpy(model, attention="sdpa")
    source, mask, target, _ = problem()

    def numpy(x):
        return x.detach().numpy() if isinstance(x, torch.Tensor) else x

    memory = model.encode(source, mask)
    full = numpy(model.decode(target, memory, mask))
    cache = model.new_cache()
    steps = [numpy(model.decode(target[:, t:t + 1], memory, mask, cache))[:, 0]
             for t in range(target.shape[1])]
    keys = cache.cross_attention[0].keys
    assert keys.shape == (3, CONFIG.n_heads, source.shape[1], CONFIG.head_dim)
    assert cache.length == target.shape[1]
    np.testing.assert_allclose(np.stack(steps, axis=1), full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_decoding_with_and_without_the_cache_gives_the_same_tokens(backend, num_beams):
    model = noisy_model(dtype=np.float64)
    if backend == "torch":
        model = twin.Seq2Seq.from_numpy(model, attention="sdpa")
    source, mask, _, _ = problem()
    results = [beam.beam_search(model, source, mask, 1, 2, 7, num_beams, use_cache=use)
               if num_beams > 1 else beam.greedy_decode(model, source, mask, 1, 2, 7,
                                                        use_cache=use)
               for use in (True, False)]
    assert results[0] == results[1]
    assert len(results[0]) == 3 and all(len(r) <= 7 for r in results[0])


def test_one_beam_is_greedy():
    model = noisy_model()
    source, mask, _, _ = problem()
    assert (beam.beam_search(model, source, mask, 1, 2, 7, num_beams=1)
            == beam.greedy_decode(model, source, mask, 1, 2, 7))


def all_hypotheses(model, source, mask, start, end, steps, length_penalty):
    """Every target of up to `steps` tokens (ended by `end`, or cut at `steps`), scored as beam
    search scores them; the best one."""
    vocab = model.config.vocab_size
    best, frontier = (-np.inf, None), [([], 0.0)]
    memory = model.encode(source, mask)
    for step in range(1, steps + 1):
        grown = []
        for tokens, total in frontier:
            logits = model.decode(np.array([[start, *tokens]]), memory, mask)[0, -1]
            log_probs = beam.log_softmax(logits)
            for token in range(vocab):
                score = total + log_probs[token]
                if token == end:
                    best = max(best, (score / step ** length_penalty, tokens), key=lambda h: h[0])
                else:
                    grown.append(([*tokens, token], score))
        frontier = grown
    for tokens, total in frontier:  # cut at `steps` tokens without an end
        best = max(best, (total / steps ** length_penalty, tokens), key=lambda h: h[0])
    return best[1]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_search_with_every_beam_finds_the_best_hypothesis(length_penalty):
    """With V^2 beams and 3 steps nothing is pruned before the last step: beam search returns the
    brute-force best hypothesis under its length-penalised score."""
    config = ModelConfig(**{**CONFIG.to_dict(), "vocab_size": 4})
    model = noisy_model(config, seed=7)
    source, mask = np.array([[1, 3, 2]]), np.ones((1, 3), dtype=np.int64)
    found = beam.beam_search(model, source, mask, 0, 1, 3, num_beams=16,
                             length_penalty=length_penalty)
    assert found == [all_hypotheses(model, source, mask, 0, 1, 3, length_penalty)]


def hf_generate(hf, source, mask, start, end, max_new_tokens, num_beams, length_penalty):
    """HF's `generate` with nothing but the search itself (no forced tokens, no minimum length,
    no n-gram blocking): each row's tokens after the start, cut before the end token. A row
    without an end has exactly max_new_tokens tokens, so the padding HF adds is all after ends."""
    with torch.no_grad():
        out = hf.generate(
            input_ids=torch.from_numpy(source), attention_mask=torch.from_numpy(mask),
            max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty,
            early_stopping=False, do_sample=False, decoder_start_token_id=start,
            eos_token_id=end, pad_token_id=0, bos_token_id=None, forced_bos_token_id=None,
            forced_eos_token_id=None, no_repeat_ngram_size=0, min_length=0)
    rows = out[:, 1:].tolist()
    return [row[:row.index(end)] if end in row else row for row in rows]


@pytest.mark.parametrize("seed, end_bias", [(0, 0.5), (1, 2.0), (2, 1.0)])
def test_decoding_equals_hugging_face_generate(seed, end_bias):
    """Greedy and beam search (K = 2, 5; length_penalty 0, 2; 3 and max_len new tokens) give the
    tokens of HF's BartForConditionalGeneration.generate (early_stopping=False) on the same
    weights, both backends, for a batch of right-padded sources. A bias on the end token (its
    size chosen per seed) makes some beam searches end before their last step, so HF's stopping
    rule is exercised, while others run out of steps."""
    start, end = 1, 2
    model = noisy_model(seed=seed)
    model.params["final_logits_bias"][0, end] += end_bias
    hf = hf_bart(CONFIG)
    with torch.no_grad():
        for name, tensor in hf_parameters(hf).items():
            tensor.copy_(torch.from_numpy(model.params[name]))
    models = [model, twin.Seq2Seq.from_numpy(model, attention="sdpa")]
    source, mask, _, _ = problem(seed=seed)
    lengths = []
    for num_beams, length_penalty, steps in [(1, 1.0, 3), (1, 1.0, CONFIG.max_len),
                                             *itertools.product((2, 5), (0.0, 2.0),
                                                                (3, CONFIG.max_len))]:
        expected = hf_generate(hf, source, mask, start, end, steps, num_beams, length_penalty)
        for ours in models:
            found = (beam.greedy_decode(ours, source, mask, start, end, steps) if num_beams == 1
                     else beam.beam_search(ours, source, mask, start, end, steps, num_beams,
                                           length_penalty))
            assert found == expected, (type(ours).__module__, num_beams, length_penalty, steps)
        if num_beams > 1:
            lengths += [(len(tokens), steps) for tokens in expected]
    assert any(n < limit for n, limit in lengths) and any(n == limit for n, limit in lengths)


def test_beam_step_keeps_the_best_continuations():
    """beam_step: the n best (beam, token) pairs of each source by running score + log p, best
    first, a beam of score -inf never chosen."""
    rng = np.random.default_rng(0)
    log_probs = beam.log_softmax(rng.normal(size=(2, 3, 5)))
    scores = np.array([[0.0, -1.0, -np.inf], [-0.5, -0.2, -3.0]])
    best, beams, tokens = beam.beam_step(scores, log_probs, 4)
    for b in range(2):
        total = scores[b][:, None] + log_probs[b]
        expected = sorted(((total[k, v], k, v) for k in range(3) for v in range(5)),
                          reverse=True)[:4]
        assert [(k, v) for _, k, v in expected] == list(zip(beams[b], tokens[b]))
        np.testing.assert_allclose(best[b], [s for s, _, _ in expected])
    assert (beams[0] != 2).all()


# ================================================================ 5. bad input


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("inputs, message", [
    (dict(source=np.zeros((1, 9), np.int64)), "source_ids has length 9; expected 1..max_len=8"),
    (dict(target=np.zeros((1, 9), np.int64)), "target_ids has length 9; expected 1..max_len=8"),
    (dict(source=np.zeros((1, 0), np.int64), mask=np.zeros((1, 0), np.int64)),
     "source_ids has length 0"),
    (dict(mask=np.array([[0, 0, 0]])), "source_mask row 0 holds no real token: an empty source"),
    (dict(source=np.array([[1, 13, 2]])), r"source_ids must lie in \[0, vocab_size=13\)"),
    (dict(target=np.array([[1, -1]])), r"target_ids must lie in \[0, vocab_size=13\)"),
    (dict(mask=np.array([[1, 1]])), r"source_mask must have the shape of source_ids \(1, 3\)"),
])
def test_bad_input_is_refused_with_a_clear_error(backend, inputs, message):
    model = Seq2Seq(CONFIG)
    if backend == "torch":
        model = twin.Seq2Seq.from_numpy(model, attention="sdpa")
    source = inputs.get("source", np.array([[1, 2, 3]]))
    mask = inputs.get("mask", np.ones(source.shape, np.int64))
    target = inputs.get("target", np.array([[1, 2]]))
    with pytest.raises(ValueError, match=message):
        model.forward(source, mask, target)


def test_decoding_past_max_len_and_a_memory_of_another_batch_are_refused():
    model = Seq2Seq(CONFIG)
    memory = model.encode(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match="memory must be"):
        model.decode(np.array([[1], [2]]), memory)
    cache = model.new_cache()
    model.decode(np.ones((1, 8), np.int64), memory, cache=cache)
    with pytest.raises(ValueError, match="max_len=8"):
        model.decode(np.array([[1]]), memory, cache=cache)
    with pytest.raises(ValueError, match="backward after a decode with a cache"):
        model.backward(np.zeros((1, 1, 13)))
    with pytest.raises(ValueError, match="num_beams must be an int >= 1"):
        beam.beam_search(model, np.array([[1, 2]]), None, 1, 2, 4, num_beams=0)


def _decoder_and_memory(backend):
    """A Seq2Seq of the backend, and the memory of a source of 3 tokens, in the model's type."""
    model = Seq2Seq(CONFIG)
    if backend == "torch":
        model = twin.Seq2Seq.from_numpy(model, attention="math")
        return model, model.encode(torch.tensor([[1, 2, 3]])).detach()
    return model, model.encode(np.array([[1, 2, 3]]))


BAD_MEMORIES = {  # case: (the memory from the good one, message); what each did before in brackets
    "another array type": (lambda m: m.numpy() if isinstance(m, torch.Tensor) else
                           torch.from_numpy(m), "memory must be a "),  # (TypeError, in linear())
    "a list": (lambda m: m.tolist(), "memory must be a "),  # ('list' has no attribute 'ndim')
    "another width": (lambda m: m[..., :7], "memory must be the encoder's output, "),  # (mat1 and
    "another dtype": (lambda m: m.astype(np.float64) if isinstance(m, np.ndarray) else m.double(),
                      "of shape (B=1, S >= 1, d_model=8), got "),  # mat2 shapes/dtypes)
    "no source token": (lambda m: m[:, :0], "of shape (1, 0, 8)"),
    "NaN": (lambda m: m * float("nan"), "memory must be finite numbers"),  # (NaN logits)
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", sorted(BAD_MEMORIES))
def test_a_memory_that_is_not_the_encoders_output_is_refused(backend, case):
    """decode's memory: the model's array type and dtype, (B, S, d_model), S >= 1, finite."""
    model, memory = _decoder_and_memory(backend)
    corrupt, message = BAD_MEMORIES[case]
    target = np.array([[1, 2]])
    with pytest.raises(ValueError, match=re.escape(message)):
        model.decode(target if backend == "numpy" else torch.from_numpy(target), corrupt(memory))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_cache_serves_only_the_memory_it_was_filled_with(backend):
    """A cached decode of another source was attended through the first source's keys (NumPy,
    silently) or failed in torch (a source of another length); the same memory, or a copy of it,
    goes on."""
    model, memory = _decoder_and_memory(backend)
    other = {"same length": memory * 2.0, "longer": memory[:, [0, 1, 2, 2]]}
    tensor = np.array if backend == "numpy" else torch.tensor
    cache = model.new_cache()
    model.decode(tensor([[1]]), memory, cache=cache)
    for memory_of_it in other.values():
        with pytest.raises(ValueError, match=re.escape("cache was filled reading another memory")):
            model.decode(tensor([[2]]), memory_of_it, cache=cache)
    copy = memory.copy() if backend == "numpy" else memory.clone()
    cached = model.decode(tensor([[2]]), copy, cache=cache)
    uncached = model.decode(tensor([[1, 2]]), memory)[:, -1:]
    np.testing.assert_allclose(to_numpy(cached), to_numpy(uncached), atol=1e-5)
    with pytest.raises(ValueError, match="cache must be a Seq2SeqCache .*, got KVCache"):
        model.decode(tensor([[2]]), memory, cache=KVCache(CONFIG.n_layers))
    for rows in ([1], [-1], [0.0]):  # an IndexError; -1 wrapped around; a float
        with pytest.raises(ValueError, match=re.escape("rows must be a non-empty 1-D array of "
                                                       "ints in [0, 1)")):
            cache.select(rows)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("arguments, message", [
    (dict(config={"vocab_size": 13}), "config must be a ModelConfig, got dict"),  # AttributeError
    (dict(config=ModelConfig(vocab_size=13, max_len=8, d_model=8, n_heads=2, n_layers=2, d_ff=12,
                             pruned_heads={0: [1]})),  # built whole, silently
     "config.pruned_heads must be empty for a Seq2Seq"),
    (dict(tie_word_embeddings="no"), "tie_word_embeddings must be True or False, got 'no'"),
])
def test_bad_constructor_arguments_are_refused(backend, arguments, message):
    model_class = Seq2Seq if backend == "numpy" else twin.Seq2Seq
    with pytest.raises(ValueError, match=re.escape(message)):
        model_class(**{"config": CONFIG, **arguments})
