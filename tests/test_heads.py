"""Task heads: `minilm.numpy.heads` and its twin `minilm.torch.heads`.

Three heads, three kinds of problem: "sequence" (SequenceClassifier, pooled [CLS] -> L labels),
"token" (TokenClassifier, L labels per token) and "qa" (QuestionAnswering, start and end logits).
Weights get `add_weight_noise` (N(0, 0.3^2) added to every parameter) so that nothing is trivially small.

1. finite differences, float64: every parameter tensor (encoder, pooler, head layer) against
   central differences of the head's loss, by the whole-model check of tests/test_models.py
   (`assert_gradients_match_finite_differences`: PROBES random entries per tensor, `relative_error`
   with floor 1e-3 <= WHOLE_MODEL_FD_TOL), in training mode with and without dropout (the
   generator replayed before each forward, so the masks are the same).
2. Hugging Face `BertForSequenceClassification` / `BertForTokenClassification` /
   `BertForQuestionAnswering` with the same weights, float64, dropout 0, eval, padding masks:
   logits within HF_LOGITS_TOL = 1e-10 (relative, floor 1), HF's own loss (given `labels` or
   `start_positions` / `end_positions`) and every parameter's gradient under torch autograd within
   HF_GRAD_TOL = 1e-10 (floor 1e-3).
3. NumPy <-> torch twin heads, same weights: outputs, loss and gradients within FLOAT64_TOL = 1e-9
   (attention="math", float64) and TRITON_TOL = 1e-4 (attention="triton", float32, one small
   example per head), the metric and tolerances of tests/test_torch_twin.py.
4. `best_span` against a brute-force double loop; `align_word_labels`; bad arguments.

The helpers of tests/helpers.py (add_weight_noise, the finite-difference check, the Hugging Face
builders and comparisons, the twin comparison and its tolerances) are shared with
tests/test_models.py and tests/test_torch_twin.py, not copied.
"""

import numpy as np
import pytest
import torch
import transformers
from helpers import (
    FD_EXAMPLES,
    FLOAT64_TOL,
    HF_EXAMPLES,
    HF_LOGITS_TOL,
    TRITON_TOL,
    add_weight_noise,
    assert_gradients_match_finite_differences,
    assert_gradients_match_hf,
    assert_within,
    encoder_batches,
    hf_bert,
    load_into_hf,
    needs_triton,
    twin_errors,
    with_ignored,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilm.common.backends import to_numpy
from minilm.config import ModelConfig
from minilm.numpy import Encoder as NumpyEncoder
from minilm.numpy import functional as F
from minilm.numpy import heads as numpy_heads
from minilm.numpy.models import loss_and_backward
from minilm.testing.oracles import relative_error
from minilm.testing.strategies import model_configs, seeds
from minilm.torch import Encoder as TorchEncoder
from minilm.torch import functional as TF
from minilm.torch import heads as torch_heads
from minilm.torch import params_to_state_dict

KINDS = ("sequence", "token", "qa")
HEAD_CLASSES = {
    "sequence": "SequenceClassifier", "token": "TokenClassifier", "qa": "QuestionAnswering",
}
HF_CLASSES = {
    "sequence": transformers.BertForSequenceClassification,
    "token": transformers.BertForTokenClassification,
    "qa": transformers.BertForQuestionAnswering,
}

def make_head(heads, encoder_class, kind, config, num_labels, seed=0, **encoder_options):
    """A head of `kind` from `heads` (the numpy or torch module) on a fresh bare encoder, with the
    pooler exactly when the head needs it (so the names are those of the HF model)."""
    encoder = encoder_class(
        config, seed=seed, mlm_head=False, pooler=kind == "sequence", **encoder_options
    )
    head_class = getattr(heads, HEAD_CLASSES[kind])
    if kind == "qa":
        return head_class(encoder, seed=seed)
    return head_class(encoder, num_labels, seed=seed)


def head_targets(kind, mask, num_labels, rng):
    """sequence: labels (B,); token: labels (B, T), -100 on padding and on some other tokens;
    qa: (start_positions, end_positions), each (B,) inside the real tokens."""
    batch, time = mask.shape
    if kind == "sequence":
        return rng.integers(0, num_labels, size=batch)
    if kind == "token":
        labels = with_ignored(rng.integers(0, num_labels, size=(batch, time)), rng)
        return np.where(mask.astype(bool), labels, -100)
    lengths = mask.sum(axis=1)
    return tuple(rng.integers(0, lengths) for _ in range(2))


def as_list(kind, values):
    """A head's outputs (or targets) as a list: [start, end] for qa, [logits] otherwise."""
    return list(values) if kind == "qa" else [values]


def loss_pairs(kind, outputs, targets):
    """(logits, targets) pairs whose cross-entropies the loss averages: two for qa (HF's
    (start + end) / 2), one otherwise."""
    return list(zip(as_list(kind, outputs), as_list(kind, targets)))


def numpy_loss(kind, outputs, targets):
    pairs = loss_pairs(kind, outputs, targets)
    return np.mean([F.cross_entropy_forward(logits, labels)[0] for logits, labels in pairs])


def numpy_loss_and_backward(kind, head, outputs, targets):
    if kind == "qa":
        return numpy_heads.qa_loss_and_backward(head, *outputs, *targets)
    return loss_and_backward(head, outputs, targets)


def torch_loss(kind, outputs, targets):
    if kind == "qa":
        return torch_heads.qa_loss(*outputs, *(torch.from_numpy(t) for t in targets))
    return TF.cross_entropy(outputs, torch.from_numpy(targets))


@st.composite
def head_problems(draw, kind, dropout=0.0):
    """(float64 NumPy head with randomized weights, inputs with right padding and token types,
    targets) for a random tiny config; 2..5 labels."""
    config = draw(model_configs(max_heads=4, dropout=dropout))
    num_labels = draw(st.integers(2, 5))
    seed = draw(seeds)
    head = make_head(numpy_heads, NumpyEncoder, kind, config, num_labels, seed, dtype=np.float64)
    add_weight_noise(head, draw(seeds))
    ids, mask, segments, _ = draw(encoder_batches(config))
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": segments}
    return head, inputs, head_targets(kind, mask, num_labels, np.random.default_rng(draw(seeds)))


# ================================================================ finite differences


@pytest.mark.parametrize("kind", KINDS)
@FD_EXAMPLES
@given(data=st.data())
def test_head_gradients_match_finite_differences(kind, data):
    """backward fills d loss / d every parameter (encoder, pooler, head layer; QA through both
    of its outputs), in training mode, with dropout or without: central differences agree."""
    dropout = data.draw(st.sampled_from([0.0, 0.2]))
    head, inputs, targets = data.draw(head_problems(kind, dropout=dropout))
    state = head.encoder.rng.bit_generator.state  # replayed: the same dropout masks every time

    def loss():
        head.encoder.rng.bit_generator.state = state
        return numpy_loss(kind, head.forward(**inputs), targets)

    head.encoder.rng.bit_generator.state = state
    value = numpy_loss_and_backward(kind, head, head.forward(**inputs), targets)
    assert value == pytest.approx(loss(), rel=1e-12)
    assert_gradients_match_finite_differences(head, loss, data.draw(seeds))


def test_backward_replaces_previous_gradients():
    """Two identical steps give the same gradients, not twice them; grads and params share keys."""
    for kind in KINDS:
        config = ModelConfig.preset("tiny")
        head = make_head(numpy_heads, NumpyEncoder, kind, config, 3, dtype=np.float64)
        ids = np.arange(12).reshape(2, 6) % head.config.vocab_size
        targets = head_targets(kind, np.ones_like(ids), 3, np.random.default_rng(0))
        numpy_loss_and_backward(kind, head, head.forward(ids), targets)
        first = {name: grad.copy() for name, grad in head.grads.items()}
        numpy_loss_and_backward(kind, head, head.forward(ids), targets)
        for name, grad in head.grads.items():
            np.testing.assert_array_equal(grad, first[name])
        assert set(head.grads) == set(head.params) == set(head.encoder.params)


# ================================================================ Hugging Face


def hf_twin(kind, head):
    """HF's model for `kind` (float64, eval, dropout 0) with the head's weights copied in."""
    hf_config = hf_bert(head.config).config
    if kind != "qa":
        hf_config.num_labels = head.params["classifier.weight"].shape[0]
    hf = HF_CLASSES[kind](hf_config).double().eval()
    return load_into_hf(head.encoder, hf, "bert.embeddings.position_embeddings.weight")


def hf_outputs_and_loss(kind, hf, inputs, targets):
    """HF's outputs (logits, or (start_logits, end_logits)) and the loss HF computes itself."""
    tensors = {name: torch.as_tensor(value) for name, value in inputs.items()}
    if kind == "qa":
        start, end = (torch.as_tensor(t) for t in targets)
        out = hf(**tensors, start_positions=start, end_positions=end)
        return (out.start_logits, out.end_logits), out.loss
    out = hf(**tensors, labels=torch.as_tensor(targets))
    return out.logits, out.loss


@pytest.mark.parametrize("kind", KINDS)
@HF_EXAMPLES
@given(data=st.data())
def test_heads_equal_hugging_face(kind, data):
    """Same weights -> HF's logits (padded positions included), HF's loss and HF autograd's
    gradient for every parameter (the pooler and the head layer included)."""
    head, inputs, targets = data.draw(head_problems(kind))
    head.eval()
    hf = hf_twin(kind, head)
    hf_outputs, hf_loss = hf_outputs_and_loss(kind, hf, inputs, targets)
    outputs = head.forward(**inputs)
    for ours, theirs in zip(as_list(kind, outputs), as_list(kind, hf_outputs)):
        assert relative_error(theirs.detach().numpy(), ours) <= HF_LOGITS_TOL
    loss = numpy_loss_and_backward(kind, head, outputs, targets)
    hf_loss.backward()
    assert_gradients_match_hf(head, hf, loss, hf_loss.item())


# ================================================================ NumPy <-> torch twin


def twin_head_errors(kind, problem, attention, dtype):
    """`helpers.twin_errors` of a NumPy head (float64) against its torch twin given the same
    weights: outputs, loss and every parameter gradient."""
    head, inputs, targets = problem
    num_labels = head.num_labels if kind != "qa" else None
    twin = make_head(
        torch_heads, TorchEncoder, kind, head.config, num_labels, attention=attention, dtype=dtype
    )
    twin.load_state_dict(params_to_state_dict(head.params))
    return twin_errors(
        head, twin, inputs,
        lambda model, outputs: numpy_loss_and_backward(kind, model, outputs, targets),
        lambda outputs: torch_loss(kind, outputs, targets),
        outputs_of=lambda outputs: as_list(kind, outputs),
    )


@pytest.mark.parametrize("kind", KINDS)
@HF_EXAMPLES
@given(data=st.data())
def test_torch_heads_match_numpy_heads(kind, data):
    """Same weights -> same outputs, loss and gradient of every parameter, float64."""
    problem = data.draw(head_problems(kind))
    problem[0].eval()
    assert_within(twin_head_errors(kind, problem, "math", torch.float64), FLOAT64_TOL)


@needs_triton
@pytest.mark.parametrize("kind", KINDS)
def test_torch_heads_with_triton_kernel_match_numpy(kind):
    """The same through our FlashAttention kernel (float32; head width 16, padding)."""
    config = ModelConfig(vocab_size=20, max_len=8, d_model=32, n_heads=2, n_layers=1, d_ff=32)
    head = add_weight_noise(make_head(numpy_heads, NumpyEncoder, kind, config, 3, dtype=np.float64), 1)
    rng = np.random.default_rng(2)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3])
    inputs = {"input_ids": rng.integers(0, 20, size=(2, 7)), "attention_mask": mask}
    problem = head.eval(), inputs, head_targets(kind, mask, 3, rng)
    assert_within(twin_head_errors(kind, problem, "triton", torch.float32), TRITON_TOL)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("kind", KINDS)
def test_torch_head_state_dict_has_the_numpy_params_keys(kind, positions):
    """state_dict() keys and shapes == the NumPy head's params (no "encoder." prefix), each weight
    listed once; the head's modules are the encoder's own; the encoder's state_dict is unchanged."""
    config = ModelConfig.preset("tiny", positions=positions)
    reference = make_head(numpy_heads, NumpyEncoder, kind, config, 3)
    twin = make_head(torch_heads, TorchEncoder, kind, config, 3, attention="math")
    state = twin.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: v.shape for k, v in reference.params.items()
    }
    assert [name for name, _ in twin.named_parameters()] == list(state)
    assert twin.get_submodule("bert.embeddings.word_embeddings") is twin.encoder.word
    layer = "qa_outputs" if kind == "qa" else "classifier"
    assert set(twin.encoder.state_dict()) == set(state) - {f"{layer}.weight", f"{layer}.bias"}


@pytest.mark.parametrize("mlm_head", [True, False])
@pytest.mark.parametrize("pooler", [True, False])
def test_torch_encoder_flags_mirror_numpy(mlm_head, pooler):
    """Encoder(mlm_head, pooler): the same parameter names as the NumPy encoder, the same pooled
    output, and the same errors for what was left out."""
    config = ModelConfig.preset("tiny")
    flags = {"mlm_head": mlm_head, "pooler": pooler}
    reference = NumpyEncoder(config, dtype=np.float64, **flags)
    twin = TorchEncoder(config, attention="math", dtype=torch.float64, **flags)
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == {
        k: v.shape for k, v in reference.params.items()
    }
    twin.load_state_dict(params_to_state_dict(add_weight_noise(reference, 0).params))
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    checks = {
        "pool": (pooler, reference.encode(ids), "pooler=False"),
        "forward": (mlm_head, ids, "mlm_head=False"),
    }
    for method, (built, x, missing) in checks.items():
        ours, theirs = getattr(reference, method), getattr(twin, method)
        if built:
            assert relative_error(ours(x), theirs(torch.from_numpy(x)).detach()) <= FLOAT64_TOL
            continue
        for run, value in ((ours, x), (theirs, torch.from_numpy(x))):
            with pytest.raises(ValueError, match=f"built with {missing}"):
                run(value)


# ================================================================ dropout, train and eval

BACKENDS = {  # heads module, encoder class, encoder options, ids -> model input
    "numpy": (numpy_heads, NumpyEncoder, {"dtype": np.float64}, np.asarray),
    "torch": (
        torch_heads, TorchEncoder, {"attention": "math", "dtype": torch.float64}, torch.from_numpy
    ),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("kind", ["sequence", "token"])
def test_classifier_dropout_is_on_in_training_only(kind, backend):
    """In eval a head with dropout gives exactly the outputs of the same head (same seed) without;
    in training they are random (NumPy: the encoder's generator; torch: the global one). train()
    and eval() reach the encoder and the head's dropout."""
    heads, encoder_class, options, to_input = BACKENDS[backend]
    ids = to_input(np.arange(12).reshape(2, 6) % 32)
    with_dropout, without = ModelConfig.preset("tiny", dropout=0.3), ModelConfig.preset("tiny")
    head = make_head(heads, encoder_class, kind, with_dropout, 3, 4, **options)
    plain = make_head(heads, encoder_class, kind, without, 3, 4, **options).eval()
    assert head.eval() is head and not head.encoder.training and not head.dropout.training
    np.testing.assert_array_equal(to_numpy(head.forward(ids)), to_numpy(plain.forward(ids)))
    assert head.train() is head and head.encoder.training and head.dropout.training
    assert not np.allclose(to_numpy(head.forward(ids)), to_numpy(head.forward(ids)))


# ================================================================ decoding and labelling helpers


def brute_force_span(start, end, max_answer_len, allowed):
    """The best (i, j, score) of one example by trying every pair in order (first best wins)."""
    best = None
    for i in range(len(start)):
        for j in range(i, min(len(end), i + max_answer_len)):
            if allowed[i] and allowed[j] and (best is None or start[i] + end[j] > best[2]):
                best = (i, j, start[i] + end[j])
    return best


@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9)),
    max_answer_len=st.integers(1, 10),
    ties=st.booleans(),
    data=st.data(),
)
def test_best_span_matches_brute_force(shape, max_answer_len, ties, data):
    """best_span == the double loop over i <= j < i + max_answer_len on allowed tokens, ties
    included (small integer logits make them common); the torch twin's agrees on tensors that
    require grad."""
    elements = st.integers(-2, 2).map(float) if ties else st.floats(-5, 5)
    start, end = (data.draw(hnp.arrays(np.float64, shape, elements=elements)) for _ in range(2))
    allowed = data.draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
    allowed[np.arange(shape[0]), data.draw(st.integers(0, shape[1] - 1))] = True  # >= 1 span each
    starts, ends, scores = numpy_heads.best_span(start, end, max_answer_len, allowed)
    expected = [brute_force_span(s, e, max_answer_len, a) for s, e, a in zip(start, end, allowed)]
    assert list(zip(starts.tolist(), ends.tolist(), scores.tolist())) == expected
    twin = torch_heads.best_span(
        torch.tensor(start, requires_grad=True), torch.tensor(end), max_answer_len,
        torch.tensor(allowed),
    )
    for ours, theirs in zip((starts, ends, scores), twin):
        np.testing.assert_array_equal(ours, theirs)
    everything = numpy_heads.best_span(start, end, max_answer_len)  # no mask: every token allowed
    everywhere = np.ones(shape[1], dtype=bool)
    expected = [brute_force_span(s, e, max_answer_len, everywhere) for s, e in zip(start, end)]
    assert list(zip(*(x.tolist() for x in everything))) == expected


def test_align_word_labels_labels_each_words_first_piece():
    """[CLS] the una ##ffa ##ble cat [SEP] [PAD]: words 0, 1, 1, 1, 2; specials -1 or None."""
    word_ids = [None, 0, 1, 1, 1, 2, -1, None]
    assert numpy_heads.align_word_labels(word_ids, [4, 7, 2]).tolist() == [
        -100, 4, 7, -100, -100, 2, -100, -100
    ]
    assert torch_heads.align_word_labels is numpy_heads.align_word_labels
    assert numpy_heads.align_word_labels([None, 0, 0, 1], [1, 2], ignore_index=-1).tolist() == [
        -1, 1, -1, 2
    ]
    with pytest.raises(ValueError, match="refer to word 2, but there are 2 labels"):
        numpy_heads.align_word_labels([0, 1, 2], [1, 1])


# ================================================================ bad arguments -> ValueError


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_bad_head_arguments_raise(backend):
    heads, encoder_class, options, _ = BACKENDS[backend]
    config = ModelConfig.preset("tiny")
    with pytest.raises(ValueError, match="SequenceClassifier needs BERT's pooler: .*pooler=True"):
        heads.SequenceClassifier(encoder_class(config, mlm_head=False, **options), 2)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="num_labels must be an int >= 1"):
            heads.TokenClassifier(encoder_class(config, **options), bad)
    other = NumpyEncoder if encoder_class is TorchEncoder else TorchEncoder
    with pytest.raises(ValueError, match="encoder must be a minilm"):
        heads.QuestionAnswering(other(config))


def test_numpy_heads_reject_labels_out_of_range_and_a_second_head():
    config = ModelConfig.preset("tiny")
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    head = make_head(numpy_heads, NumpyEncoder, "sequence", config, 3)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        loss_and_backward(head, head.forward(ids), np.array([0, 3]))
    token_head = make_head(numpy_heads, NumpyEncoder, "token", config, 3)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        loss_and_backward(token_head, token_head.forward(ids), np.array([[0, -1, 1], [2, 2, 2]]))
    qa = make_head(numpy_heads, NumpyEncoder, "qa", config, None)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        numpy_heads.qa_loss_and_backward(qa, *qa.forward(ids), np.array([0, 1]), np.array([3, 1]))
    with pytest.raises(ValueError, match="'classifier.weight' is defined twice"):
        numpy_heads.TokenClassifier(head.encoder, 2)


def test_qa_positions_of_minus_100_leave_an_example_out():
    """-100 drops one example from one term: the loss is the mean over the kept ones."""
    config = ModelConfig.preset("tiny")
    qa = make_head(numpy_heads, NumpyEncoder, "qa", config, None, dtype=np.float64)
    start, end = qa.forward(np.array([[1, 2, 3], [4, 5, 6]]))
    loss = numpy_heads.qa_loss_and_backward(qa, start, end, np.array([2, -100]), np.array([0, 1]))
    start_loss = F.cross_entropy_forward(start[:1], np.array([2]))[0]  # example 1 left out
    expected = (start_loss + F.cross_entropy_forward(end, np.array([0, 1]))[0]) / 2
    assert loss == pytest.approx(expected, rel=1e-12)
    twin = torch_heads.qa_loss(torch.from_numpy(start), torch.from_numpy(end),
                               torch.tensor([2, -100]), torch.tensor([0, 1]))
    assert float(twin) == pytest.approx(expected, rel=1e-12)


def test_best_span_bad_arguments_raise():
    logits = np.zeros((2, 4))
    with pytest.raises(ValueError, match="must both be \\(B, T\\)"):
        numpy_heads.best_span(logits, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="max_answer_len must be an int >= 1"):
        numpy_heads.best_span(logits, logits, 0)
    with pytest.raises(ValueError, match="allowed_mask must have the shape"):
        numpy_heads.best_span(logits, logits, 3, np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"examples \[1\] allow no answer span"):
        numpy_heads.best_span(logits, logits, 3, np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
