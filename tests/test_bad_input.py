"""Bad input is refused clearly at every layer: a ValueError whose message names the argument (or
the file) and the form expected, or else the correct finite answer, never a silent broadcast, a
NaN, token 0 or an exception from deep inside NumPy, torch or safetensors.

Where a family of malformed inputs fits, it is a hypothesis strategy (attention inputs, cross-entropy
targets, attention-mask values, non-finite logits, the bytes of a weights file); the rest are listed
cases. Every assertion matches the message, so a case refused for another reason fails. The
checks themselves live in one place, `minilm.common.checks`, which both twins call.
"""

import json
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch_file

from minilm import ModelConfig
from minilm.beam import beam_search, greedy_decode
from minilm.checkpoint import load_run, read_run, save_run
from minilm.cli import main
from minilm.compress import int8_linear_forward
from minilm.embeddings import cosine_similarity_matrix, mean_pool, sentence_embeddings
from minilm.finetune import FinetuneSettings, finetune
from minilm.generation import generate, sample_next
from minilm.interpret import attention_maps, saliency, set_head_gates
from minilm.numpy import Decoder, Encoder, KVCache, Seq2Seq, SequenceClassifier
from minilm.numpy import functional as F
from minilm.pretrained import load_pretrained, read_hf_config
from minilm.tasks import Task, load_labelled_file
from minilm.testing.strategies import seeds
from minilm.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer
from minilm.torch import Decoder as TorchDecoder
from minilm.torch import Encoder as TorchEncoder
from minilm.torch import Seq2Seq as TorchSeq2Seq
from minilm.torch import functional as TF
from minilm.train import TrainSettings
from minilm.translation import translate

TINY = ModelConfig(vocab_size=8, max_len=8, d_model=8, n_heads=2, n_layers=1, d_ff=16)

# ---------------------------------------------------------------- functional attention

# each corruption of valid (q, k, v, scale): (what the message must say, how to corrupt)
ATTENTION_CORRUPTIONS = {
    "integer q": ("q must be a floating-point array", lambda a: {**a, "q": a["q"].astype(int)}),
    "integer k": ("k must be a floating-point array", lambda a: {**a, "k": a["k"].astype(int)}),
    "bool v": ("v must be a floating-point array", lambda a: {**a, "v": a["v"] > 0}),
    "batch of k": ("same leading (batch, head) axes",
                   lambda a: {**a, "k": np.concatenate([a["k"], a["k"]]),
                              "v": np.concatenate([a["v"], a["v"]])}),
    "rank of q": ("same leading (batch, head) axes", lambda a: {**a, "q": a["q"][0]}),
    "rank of v": ("same leading (batch, head) axes", lambda a: {**a, "v": a["v"][None]}),
    "length of v": ("keys but v has", lambda a: {**a, "v": np.concatenate([a["v"], a["v"]], -2)}),
    "head dim of k": ("q has head dim",
                      lambda a: {**a, "k": np.concatenate([a["k"], a["k"]], -1)}),
    "zero keys": ("hold no keys", lambda a: {**a, "k": a["k"][..., :0, :], "v": a["v"][..., :0, :]}),
    "mixed dtypes": ("q, k and v must have one dtype",
                     lambda a: {**a, "k": a["k"].astype(np.float32)}),
    "nan scale": ("scale must be a finite number", lambda a: {**a, "scale": math.nan}),
    "inf scale": ("scale must be a finite number", lambda a: {**a, "scale": math.inf}),
}
ATTENTION_PATHS = {
    "numpy": lambda a: F.attention_forward(a["q"], a["k"], a["v"], scale=a["scale"]),
    "math": lambda a: TF.math_attention(*_tensors(a), scale=a["scale"]),
    "sdpa": lambda a: TF.sdpa_attention(*_tensors(a), scale=a["scale"]),
}


def _tensors(arrays):
    return [torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in ("q", "k", "v")]


@st.composite
def malformed_attention(draw):
    """(corruption name, message, inputs): valid q (B, H, Nq, D), k, v (B, H, Nk, Dv) in float64,
    then one corruption."""
    rng = np.random.default_rng(draw(seeds))
    b, h, nq, nk, d, dv = (draw(st.integers(1, 3)) for _ in range(6))
    arrays = {"q": rng.standard_normal((b, h, nq, d)), "k": rng.standard_normal((b, h, nk, d)),
              "v": rng.standard_normal((b, h, nk, dv)), "scale": draw(st.none() | st.floats(0.1, 2))}
    name = draw(st.sampled_from(sorted(ATTENTION_CORRUPTIONS)))
    message, corrupt = ATTENTION_CORRUPTIONS[name]
    return name, message, corrupt(arrays)


@pytest.mark.parametrize("path", sorted(ATTENTION_PATHS))
@given(case=malformed_attention())
def test_malformed_attention_inputs_are_refused_by_name(path, case):
    """NumPy's op pair and the twin's math and sdpa paths refuse the same inputs with the same
    message: integer or bool q/k/v (the scale would be 0), batch or rank mismatches (which would
    broadcast, and the backward return gradients of the wrong shape), k and v of different
    lengths, no keys at all, mixed dtypes, a non-finite scale."""
    _, message, arrays = case
    with pytest.raises(ValueError, match=re.escape(message)):
        ATTENTION_PATHS[path](arrays)


def test_the_twin_refuses_numpy_arrays_and_says_which():
    q = np.zeros((1, 1, 2, 4), dtype=np.float32)
    tensor = torch.from_numpy(q)
    for attention in (TF.math_attention, TF.sdpa_attention):
        with pytest.raises(ValueError, match=r"attention: k must be a torch\.Tensor, got numpy"):
            attention(tensor, q, tensor)
    with pytest.raises(ValueError, match=r"targets must be a torch\.Tensor"):
        TF.cross_entropy(torch.zeros(2, 3), np.zeros(2, dtype=np.int64))


def test_float16_attention_computes_scores_in_float32():
    """q.k = 60 * 60 * 32 = 115200 overflows float16 (max 65504); the reference and the twin's
    math path compute the scores and the softmax in float32 and return float16 outputs equal to the
    float32 result rounded, with finite gradients."""
    rng = np.random.default_rng(0)
    q = k = np.full((1, 2, 3, 32), 60.0, dtype=np.float16)
    v = rng.standard_normal((1, 2, 3, 32)).astype(np.float16)
    k = k.copy()
    k[..., 1, :] = -60.0  # one very low, two equal very high scores: a finite, non-uniform answer
    expected, _ = F.attention_forward(q.astype(np.float32), k.astype(np.float32),
                                      v.astype(np.float32))
    out, cache = F.attention_forward(q, k, v)
    assert out.dtype == np.float16 and np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3)
    grads = F.attention_backward(np.ones_like(out), cache)
    assert all(g.dtype == np.float16 and np.isfinite(g).all() for g in grads)
    twin = TF.math_attention(*_tensors({"q": q, "k": k, "v": v}))
    assert twin.dtype == torch.float16
    np.testing.assert_allclose(twin.float().numpy(), expected, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- cross-entropy targets

TARGET_CORRUPTIONS = {
    "float": ("targets must be integer class ids", lambda t, v: t.astype(np.float64)),
    "bool": ("targets must be integer class ids", lambda t, v: t > 0),
    "too large": ("targets must lie in", lambda t, v: np.where(t == t.flat[0], v, t)),
    "negative": ("targets must lie in", lambda t, v: np.where(t == t.flat[0], -3, t)),
    "extra axis": ("targets shape", lambda t, v: t[..., None]),
    "one fewer": ("targets shape", lambda t, v: t.reshape(-1)[:-1]),
    "flattened": ("targets shape", lambda t, v: t.reshape(-1) if t.ndim > 1 else t[None]),
}


@st.composite
def malformed_targets(draw):
    """(message, logits (..., V), targets): valid class ids for the logits, then one corruption."""
    rng = np.random.default_rng(draw(seeds))
    lead = tuple(draw(st.lists(st.integers(2, 3), min_size=1, max_size=2)))
    vocab = draw(st.integers(2, 5))
    targets = rng.integers(0, vocab, size=lead)
    message, corrupt = TARGET_CORRUPTIONS[draw(st.sampled_from(sorted(TARGET_CORRUPTIONS)))]
    return message, rng.standard_normal(lead + (vocab,)), corrupt(targets, vocab)


@given(case=malformed_targets())
def test_malformed_targets_are_refused_by_both_twins(case):
    """Float or bool targets, ids outside [0, V) (that are not ignore_index) and targets whose
    shape is not the logits' without the last axis: the same ValueError from the reference's
    cross_entropy_forward and the twin's cross_entropy (which used to flatten a wrong shape)."""
    message, logits, targets = case
    with pytest.raises(ValueError, match=message):
        F.cross_entropy_forward(logits, targets)
    with pytest.raises(ValueError, match=message):
        TF.cross_entropy(torch.from_numpy(logits), torch.from_numpy(np.asarray(targets)))


@pytest.mark.parametrize("ignore_index", [2.5, "-100", None, True])
def test_an_ignore_index_that_is_not_an_int_is_refused_by_both_twins(ignore_index):
    """NumPy compared the targets with 2.5 and ignored nothing, silently; torch raised its own
    TypeError about cross_entropy_loss()'s arguments."""
    logits, targets = np.zeros((2, 3)), np.array([1, 2])
    message = re.escape(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    with pytest.raises(ValueError, match=message):
        F.cross_entropy_forward(logits, targets, ignore_index)
    with pytest.raises(ValueError, match=message):
        TF.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets), ignore_index)


def test_float16_cross_entropy_is_finite_for_large_logits():
    """Logits 80000 apart: the true loss, 80000 nats, exceeds float16's range, so both twins
    compute in float32 and return it finite; the gradient keeps the logits' dtype."""
    logits = np.array([[-40000.0, 40000.0], [1.0, 2.0]], dtype=np.float16)
    targets = np.array([0, 1])
    loss, cache = F.cross_entropy_forward(logits, targets)
    reference = float(F.cross_entropy_forward(logits.astype(np.float32), targets)[0])
    assert np.isfinite(loss) and float(loss) == pytest.approx(reference) and reference > 3e4
    dlogits = F.cross_entropy_backward(cache)
    assert dlogits.dtype == np.float16 and np.isfinite(dlogits).all()
    twin_logits = torch.tensor(logits, requires_grad=True)
    twin_loss = TF.cross_entropy(twin_logits, torch.from_numpy(targets))
    twin_loss.backward()
    assert twin_loss.item() == pytest.approx(reference)
    assert twin_logits.grad.dtype == torch.float16 and torch.isfinite(twin_logits.grad).all()


# ---------------------------------------------------------------- models: masks and dtypes


@given(value=st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: x not in (0, 1))
       | st.integers(-5, 5).filter(lambda x: x not in (0, 1)),
       where=st.tuples(st.integers(0, 1), st.integers(0, 3)))
def test_attention_mask_values_other_than_0_and_1_are_refused(value, where):
    """An Encoder's attention_mask holds 1 (a real token) or 0 (padding): 0.5, 2, -1, inf, NaN
    used to count as "attend"; both twins now name the value and where it is."""
    ids = np.ones((2, 4), dtype=np.int64)
    mask = np.ones((2, 4), dtype=np.float64 if isinstance(value, float) else np.int64)
    mask[where] = value
    for model in (Encoder(TINY), TorchEncoder(TINY, attention="math")):
        with pytest.raises(ValueError, match=r"attention_mask must hold only 0 \(padding\) and 1"):
            model.forward(ids, attention_mask=mask)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, "text"])
@pytest.mark.parametrize("model_class", [Encoder, Decoder])
def test_numpy_models_refuse_non_floating_dtypes(model_class, dtype):
    """Integer or bool weights would round the initialisation (std 0.02) to all zeros."""
    with pytest.raises(ValueError, match="dtype must be a"):
        model_class(TINY, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, np.int32])
@pytest.mark.parametrize("model_class", [TorchEncoder, TorchDecoder])
def test_twin_models_refuse_non_floating_dtypes(model_class, dtype):
    with pytest.raises(ValueError, match="dtype must be a floating"):
        model_class(TINY, attention="math", dtype=dtype)


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("temperature", [math.nan, math.inf, -1.0, "0.8"])
def test_sampling_refuses_a_temperature_that_is_not_a_finite_number(temperature):
    """A NaN temperature made every probability NaN and the sampler return token 0."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        sample_next(np.zeros((1, 4)), rng, temperature)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        generate(Decoder(TINY), np.ones((1, 2), dtype=np.int64), 0, rng, temperature)


@given(bad=st.sampled_from([math.nan, math.inf, -math.inf]), row=st.integers(0, 2),
       column=st.integers(0, 4), temperature=st.sampled_from([0.0, 0.7, 1.0]))
def test_sampling_refuses_non_finite_logits(bad, row, column, temperature):
    logits = np.zeros((3, 5))
    logits[row, column] = bad
    with pytest.raises(ValueError, match=rf"logits must be finite numbers, got .* \({row}, "
                                         rf"{column}\)"):
        sample_next(logits, np.random.default_rng(0), temperature)


def test_generate_command_refuses_a_nan_temperature(tmp_path, capsys):
    tokenizer = CharTokenizer("ab ")
    save_run(tmp_path, Decoder(ModelConfig(**{**TINY.to_dict(), "vocab_size": 5})), tokenizer)
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "ab",
                 "--temperature", "nan"]) == 2
    assert "temperature must be a finite number" in capsys.readouterr().err


# ---------------------------------------------------------------- training and fine-tuning


def test_fine_tuning_a_task_with_a_single_class_is_refused(tmp_path, capsys):
    """Every prediction of a one-class task is right: accuracy 1.000 and nothing learnt. Refused
    before any model is loaded, from the library and from the command line."""
    task = Task("one", ("yes", "no"), ["a", "b"], np.zeros(2, np.int64), ["c"], np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"single class in its training split \(\['yes'\]\)"):
        finetune(FinetuneSettings(), progress=False, task=task)
    single = tmp_path / "single.jsonl"
    single.write_text("".join(json.dumps({"text": f"s{i}", "label": "yes"}) + "\n"
                              for i in range(10)))
    assert main(["finetune", "--task", str(single), "--out", str(tmp_path / "run")]) == 2
    assert "single class" in capsys.readouterr().err


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text("the cat sat on the mat. " * 60)
    return path


def train_argv(text_file, out, *flags):
    return ["train", "--text", str(text_file), "--preset", "tiny", "--steps", "6",
            "--warmup-steps", "2", "--batch-size", "2", "--seq-len", "8", "--eval-every", "3",
            "--eval-tokens", "50", "--out", str(out), *flags]


@pytest.mark.parametrize("lr", ["inf", "nan", "-1", "0"])
def test_a_learning_rate_that_is_not_a_finite_positive_number_is_refused(lr, text_file, tmp_path,
                                                                         capsys):
    assert main(train_argv(text_file, tmp_path / "run", "--lr", lr)) == 2
    assert "lr must be a finite number in (0, inf)" in capsys.readouterr().err
    with pytest.raises(ValueError, match=re.escape("lr must be a finite number in (0, inf)")):
        FinetuneSettings(lr=float(lr))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_diverging_run_ends_with_one_line_naming_the_step(text_file, tmp_path, capsys):
    """lr = 1e30 is finite but sends the weights to inf at the first update: one line on stderr,
    exit status 2, naming the step and what to try; no traceback, no checkpoint of NaN weights,
    and no NumPy overflow warnings before that line."""
    assert main(train_argv(text_file, tmp_path / "run", "--lr", "1e30")) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"minilm train: error: training diverged (at|by) step \d+: .*--lr.*", error)
    assert "Traceback" not in error and not (tmp_path / "run" / "model.safetensors").exists()


# ---------------------------------------------------------------- the tokenizer's corpus


@pytest.mark.parametrize("content, message", [
    (None, "CORPUS.txt '{path}': no such file"),
    (b"\xff\xfe the cat sat", "{path} is not UTF-8 text (bad byte at offset 0)"),
    (b"", "{path} is empty"),
    (b"  \n\t\n", "CORPUS.txt '{path}' holds only whitespace"),
])
def test_tokenizer_train_refuses_a_corpus_it_cannot_learn_from(tmp_path, capsys, content, message):
    """`minilm tokenizer train CORPUS.txt`: a missing, non-UTF-8, empty or blank corpus is one line
    naming the file (not "[Errno 2]", a codec error without the path, or a 257-token vocabulary
    written from nothing), and no vocabulary is written."""
    corpus, out = tmp_path / "corpus.txt", tmp_path / "bpe"
    if content is not None:
        corpus.write_bytes(content)
    assert main(["tokenizer", "train", str(corpus), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert message.format(path=corpus) in error and "Traceback" not in error
    assert not out.exists()


def test_tokenizer_train_says_when_no_pair_is_left_to_merge(tmp_path, capsys):
    """A short corpus is not refused: its vocabulary is smaller than --vocab-size, and says why."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("aaa")
    assert main(["tokenizer", "train", str(corpus), "--out", str(tmp_path / "bpe")]) == 0
    assert "vocab_size 259 (no pair was left to merge)" in capsys.readouterr().out


# ---------------------------------------------------------------- damaged run directories


def _rewrite(name, content):
    return lambda d: (d / name).write_bytes(content)


def _edit_run_config(config=None, **top_level):
    """Change fields of config.json's "minilm" block: its ModelConfig (`config`) or the block
    itself. The Hugging Face fields beside it go, so that the block alone is checked (a block that
    disagrees with them: tests/test_hf_interop.py)."""
    def edit(directory):
        block = json.loads((directory / "config.json").read_text())["minilm"]
        block["config"].update(config or {})
        block.update(top_level)
        (directory / "config.json").write_text(json.dumps({"minilm": block}))
    return edit


def _save_weights(transform):
    def edit(directory):
        weights = Decoder(RUN_CONFIG).params
        save_file(transform(weights), str(directory / "model.safetensors"))
    return edit


def _save_bfloat16_weights(directory):
    weights = {name: torch.from_numpy(value).to(torch.bfloat16)
               for name, value in Decoder(RUN_CONFIG).params.items()}
    save_torch_file(weights, str(directory / "model.safetensors"))


RUN_TOKENIZER = CharTokenizer("abc ")
RUN_CONFIG = ModelConfig(**{**TINY.to_dict(), "vocab_size": RUN_TOKENIZER.vocab_size})
DAMAGED_RUNS = {  # case: (damage, what the message must say besides the path)
    "empty weights": (_rewrite("model.safetensors", b""), "not a readable safetensors"),
    "truncated weights": (lambda d: _rewrite("model.safetensors", (
        d / "model.safetensors").read_bytes()[:200])(d), "not a readable safetensors"),
    "config not UTF-8": (_rewrite("config.json", b"\xff\xfe{\x00"), "not a minilm run config"),
    "config a JSON list": (_rewrite("config.json", b"[1, 2]"), "not a minilm run config"),
    "d_model a string": (_edit_run_config({"d_model": "8"}), "d_model must be a positive int"),
    "dropout a string": (_edit_run_config({"dropout": "x"}), "not a minilm run config"),
    "unknown ModelConfig field": (_edit_run_config({"colour": "blue"}), "unknown fields"),
    "unknown config.json key": (_edit_run_config(colour="blue"), "unknown keys ['colour']"),
    "unknown kind": (_edit_run_config(kind="transformer"), "kind must be one of"),
    "metadata a list": (_edit_run_config(metadata=[1]), "metadata must be a JSON object"),
    "weights of another width": (_edit_run_config({"d_model": 16}), "do not fit"),
    "integer weights": (_save_weights(lambda w: {n: v.astype(np.int32) for n, v in w.items()}),
                        "expected floating-point weights"),
    "a missing weight": (_save_weights(lambda w: dict(list(w.items())[1:])), "do not fit"),
    # a run was read by its own safetensors reader: a KeyError 'BF16' from deep inside
    "bfloat16 weights": (_save_bfloat16_weights, "stores bfloat16 tensors, which NumPy cannot hold"),
    # loaded, then "logits must be finite numbers, got nan", naming neither the file nor a weight
    "a NaN weight": (_save_weights(lambda w: {**w, "transformer.wte.weight": np.full_like(
        w["transformer.wte.weight"], np.nan)}), "transformer.wte.weight must be finite numbers"),
    "tokenizer of another vocabulary": (
        lambda d: CharTokenizer("abcdefg ").save(d), "the tokenizer has 10 tokens"),
    "tokenizer file not JSON": (_rewrite("char_tokenizer.json", b"{"), "tokenizer"),
}


@pytest.fixture
def damaged_run(tmp_path, request):
    directory = tmp_path / "run"
    save_run(directory, Decoder(RUN_CONFIG), RUN_TOKENIZER)
    damage, message = DAMAGED_RUNS[request.param]
    damage(directory)
    return directory, message


@pytest.mark.parametrize("damaged_run", sorted(DAMAGED_RUNS), indirect=True)
def test_damaged_run_directories_are_errors_naming_the_path(damaged_run, capsys):
    """read_run / load_run (both backends) and `minilm generate` say which file is wrong and how:
    no raw safetensors, JSON or KeyError exceptions, and no silent success. (Weights that do not
    fit the config are found when the model is built, so read_run alone lets them through.)"""
    directory, message = damaged_run
    readers = [lambda d: load_run(d, "numpy"), lambda d: load_run(d, "torch")]
    if message != "do not fit":
        readers.append(read_run)
    for load in readers:
        with pytest.raises(ValueError, match=re.escape(message)) as raised:
            load(directory)
        assert str(directory) in str(raised.value)
    assert main(["generate", "--checkpoint", str(directory), "--prompt", "ab"]) == 2
    error = capsys.readouterr().err
    assert str(directory) in error and message in error


@given(content=st.binary(max_size=300))
def test_any_bytes_as_weights_are_an_error_naming_the_file_or_load(tmp_path_factory, content):
    """Random bytes as model.safetensors: a ValueError naming the file (or, for the rare bytes that
    form a valid empty safetensors file, an error naming what is missing)."""
    directory = tmp_path_factory.mktemp("run")
    save_run(directory, Decoder(RUN_CONFIG), RUN_TOKENIZER)
    (directory / "model.safetensors").write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(directory))):
        load_run(directory)


# ---------------------------------------------------------------- damaged pretrained directories


@pytest.fixture(scope="module")
def hf_bert(tmp_path_factory):
    """A tiny Hugging Face BertModel directory: config.json, model.safetensors, vocab.txt."""
    directory = tmp_path_factory.mktemp("hf_bert")
    (directory / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": TINY.vocab_size, "hidden_size": TINY.d_model,
        "num_hidden_layers": TINY.n_layers, "num_attention_heads": TINY.n_heads,
        "intermediate_size": TINY.d_ff, "max_position_embeddings": TINY.max_len}))
    save_file(Encoder(TINY, mlm_head=False).params, str(directory / "model.safetensors"))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return directory


def _edit_hf_config(**changes):
    def edit(directory):
        hf = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**hf, **changes}))
    return edit


DAMAGED_PRETRAINED = {
    "empty weights": (_rewrite("model.safetensors", b""), "not a readable safetensors"),
    "random weights": (_rewrite("model.safetensors", bytes(range(256)) * 2),
                       "not a readable safetensors"),
    "config not UTF-8": (_rewrite("config.json", b"\xff\xfe{\x00"), "not valid UTF-8 JSON"),
    "config a JSON list": (_rewrite("config.json", b"[]"), "holds a JSON list"),
    "hidden_size a string": (_edit_hf_config(hidden_size="8"), "hidden_size must be an int, got '8'"),
    "eps a string": (_edit_hf_config(layer_norm_eps="small"),
                     "layer_norm_eps must be a number, got 'small'"),
    "another width": (_edit_hf_config(hidden_size=16), "in the checkpoint but"),
    "tokenizer of another vocabulary": (
        lambda d: (d / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"),
        "the tokenizer has 5 tokens"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_PRETRAINED))
def test_damaged_pretrained_directories_are_errors_naming_the_path(hf_bert, tmp_path, case):
    import shutil

    directory = tmp_path / "model"
    shutil.copytree(hf_bert, directory)
    damage, message = DAMAGED_PRETRAINED[case]
    damage(directory)
    for backend in ("numpy", "torch"):
        with pytest.raises(ValueError, match=re.escape(message)) as raised:
            load_pretrained(directory, backend=backend)
        assert str(directory) in str(raised.value)


def test_the_undamaged_pretrained_directory_loads(hf_bert):
    """The fixture the damage is done to is itself fine (so each error above is the damage's)."""
    assert load_pretrained(hf_bert).config.d_model == TINY.d_model


# Every field each architecture's config.json maps into a ModelConfig, with a value of the right
# type (GPT-2's eos_token_id is read when pad_token_id is absent, so pad_token_id is an extra case).
HF_CONFIGS = {
    "bert": {"model_type": "bert", "vocab_size": 8, "max_position_embeddings": 8,
             "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
             "intermediate_size": 16, "hidden_dropout_prob": 0.1, "hidden_act": "gelu",
             "layer_norm_eps": 1e-12, "type_vocab_size": 2, "pad_token_id": 0},
    "gpt2": {"model_type": "gpt2", "vocab_size": 8, "n_positions": 8, "n_embd": 8, "n_head": 2,
             "n_layer": 1, "n_inner": 16, "resid_pdrop": 0.1, "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-5, "eos_token_id": 7},
    "bart": {"model_type": "bart", "vocab_size": 8, "max_position_embeddings": 8, "d_model": 8,
             "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
             "decoder_attention_heads": 2, "encoder_ffn_dim": 16, "decoder_ffn_dim": 16,
             "dropout": 0.1, "activation_function": "gelu", "pad_token_id": 1},
}
TYPE_NAMES = {int: "an int", float: "a number", str: "a string"}
WRONG_TYPES = [  # (architecture, field, a value of the wrong type, the type the message asks for)
    # each field as a string (a number written in quotes) or, for a string field, as a list
    *((architecture, field, [value] if isinstance(value, str) else str(value),
       TYPE_NAMES[type(value)])
      for architecture, config in HF_CONFIGS.items() for field, value in config.items()
      if field != "model_type"),
    ("gpt2", "pad_token_id", "7", "an int"),
    # the values issue 15's follow-up found
    ("gpt2", "layer_norm_epsilon", "x", "a number"), ("bert", "vocab_size", None, "an int"),
    ("bert", "hidden_size", "384", "an int"), ("gpt2", "n_head", None, "an int"),
    ("bart", "vocab_size", None, "an int"), ("bert", "layer_norm_eps", True, "a number"),
    ("bert", "type_vocab_size", 2.0, "an int"),
]


@pytest.mark.parametrize("architecture, field, value, expected", WRONG_TYPES)
def test_a_config_field_of_the_wrong_type_is_named(tmp_path, architecture, field, value, expected):
    """A config.json field of the wrong type is refused by name, with its value and the type
    expected (not "a field has the wrong type ('<=' not supported ...)", nor loaded: 2.0 as a
    count, True as an eps). read_hf_config and load_pretrained share the check."""
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIGS[architecture], field: value}))
    message = f"{tmp_path / 'config.json'}: {field} must be {expected}, got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_hf_config(tmp_path)


UNSUPPORTED_FIELDS = [  # (architecture, field, value): a model minilm does not build
    ("bert", "position_embedding_type", "relative_key"), ("bert", "is_decoder", True),
    ("bert", "add_cross_attention", True), ("bert", "hidden_act", "relu"),
    ("gpt2", "scale_attn_weights", False), ("gpt2", "scale_attn_by_inverse_layer_idx", True),
    ("gpt2", "add_cross_attention", True), ("gpt2", "activation_function", "gelu_fast"),
    ("bart", "scale_embedding", True), ("bart", "decoder_layers", 2),
    ("bart", "decoder_attention_heads", 4), ("bart", "activation_function", "silu"),
]


@pytest.mark.parametrize("architecture, field, value", UNSUPPORTED_FIELDS)
def test_a_config_minilm_would_compute_differently_is_refused_by_its_field(tmp_path, architecture,
                                                                           field, value):
    """Each field, read and ignored, would load a model whose logits are not transformers' (GPT-2
    without the 1/sqrt(D) scale, relative positions, scaled embeddings, another activation, a
    decoder of another size): refused, naming the field and its value. (Every variant that loads
    equals transformers: an audit of 70 one-field variants found no exception.)"""
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIGS[architecture], field: value}))
    with pytest.raises(ValueError, match=re.escape(f"{field}={value!r}")):
        read_hf_config(tmp_path)


@pytest.mark.parametrize("architecture", sorted(HF_CONFIGS))
def test_the_well_typed_configs_are_read(tmp_path, architecture):
    """Each config the cases above corrupt reads as it stands (so every error is the corruption's),
    null where an absent field means None included (GPT-2's n_inner, the token ids)."""
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIGS[architecture]))
    model_type, config = read_hf_config(tmp_path)
    assert (model_type, config.vocab_size, config.d_model, config.n_layers, config.d_ff) == (
        architecture, 8, 8, 1, 16)
    nulls = {"n_inner": None, "eos_token_id": None, "pad_token_id": None}
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIGS[architecture], **nulls}))
    config = read_hf_config(tmp_path)[1]
    assert config.pad_token_id == 0 and config.d_ff == (32 if architecture == "gpt2" else 16)


# ---------------------------------------------------------------- the library's arguments

_X = np.arange(12.0).reshape(3, 4)
_WORDS = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])
_Q = np.ones((1, 1, 2, 4))


def _after_forward(model, ids=((1, 2, 3),)):
    model.forward(np.array(ids))
    return model


def _backward_of(forward, *args):
    """The cache of `forward(*args)`, for its backward to be given a dout of another shape."""
    return forward(*args)[1]


LIBRARY_CASES = {  # case: (a call with one bad argument, the message it must raise)
    # ops: integer input, a non-finite or non-number eps, an axis out of range, causal not a bool
    "gelu of integers": (lambda: F.gelu_forward(np.array([1, 2, -1])),
                         "gelu: x must be a floating-point array, got int64"),
    "tanh gelu of integers": (lambda: F.gelu_forward(np.array([1, 2, -1]), "tanh"),
                              "gelu: x must be a floating-point array, got int64"),
    "layer_norm eps nan": (lambda: F.layer_norm_forward(_X, np.ones(4), np.zeros(4), eps=math.nan),
                           "layer_norm: eps must be a finite number in (0, inf), got nan"),
    "layer_norm eps -1": (lambda: F.layer_norm_forward(_X, np.ones(4), np.zeros(4), eps=-1.0),
                          "layer_norm: eps must be a finite number in (0, inf), got -1.0"),
    "softmax axis 5": (lambda: F.softmax_forward(_X, axis=5),
                       "softmax: axis must be an int in [-2, 2) for x of shape (3, 4), got 5"),
    "softmax axis 1.5": (lambda: F.softmax_forward(_X, axis=1.5),
                         "softmax: axis must be an int in [-2, 2) for x of shape (3, 4), got 1.5"),
    "attention causal 'yes'": (lambda: F.attention_forward(_Q, _Q, _Q, causal="yes"),
                               "attention: causal must be True or False, got 'yes'"),
    "twin math causal 'no'": (
        lambda: TF.math_attention(*(torch.from_numpy(_Q),) * 3, causal="no"),
        "attention: causal must be True or False, got 'no'"),
    "twin sdpa causal 1": (lambda: TF.sdpa_attention(*(torch.from_numpy(_Q),) * 3, causal=1),
                           "attention: causal must be True or False, got 1"),
    # op backwards: a dout of another shape than the forward's output
    "layer_norm dout": (lambda: F.layer_norm_backward(np.ones((3, 1)), _backward_of(
        F.layer_norm_forward, _X, np.ones(4), np.zeros(4))),
        "layer_norm: dout must have the forward output's shape (3, 4), got (3, 1)"),
    "gelu dout": (lambda: F.gelu_backward(np.ones(4), _backward_of(F.gelu_forward, _X)),
                  "gelu: dout must have the forward output's shape (3, 4), got (4,)"),
    "softmax dout": (lambda: F.softmax_backward(np.ones((1, 4)), _backward_of(
        F.softmax_forward, _X)),
        "softmax: dout must have the forward output's shape (3, 4), got (1, 4)"),
    "attention dout": (lambda: F.attention_backward(np.ones((1, 1, 3, 4)), _backward_of(
        F.attention_forward, _Q, _Q, _Q)),
        "attention: dout must have the forward output's shape (1, 1, 2, 4), got (1, 1, 3, 4)"),
    # models: backward before any forward, or of a dout that is not the logits' shape
    "Decoder backward first": (lambda: Decoder(TINY).backward(np.zeros((1, 3, 8))),
                               "Decoder.backward needs a forward first: call forward(...)"),
    "Encoder backward first": (lambda: Encoder(TINY).backward(np.zeros((1, 3, 8))),
                               "Encoder.backward needs a forward first: call forward(...)"),
    "Decoder dlogits shape": (lambda: _after_forward(Decoder(TINY)).backward(np.zeros((1, 4, 8))),
                              "linear: dout must have the forward output's shape (1, 3, 8), got"),
    "Encoder dlogits shape": (lambda: _after_forward(Encoder(TINY)).backward(np.zeros((1, 3, 9))),
                              "linear: dout must have the forward output's shape (1, 3, 8), got"),
    # configs
    "layer_norm_eps nan": (lambda: ModelConfig(layer_norm_eps=math.nan),
                           "ModelConfig.layer_norm_eps must be a finite number in (0, inf), got nan"),
    "layer_norm_eps inf": (lambda: ModelConfig(layer_norm_eps=math.inf),
                           "ModelConfig.layer_norm_eps must be a finite number in (0, inf), got inf"),
    "layer_norm_eps a string": (lambda: ModelConfig(layer_norm_eps="1e-5"),
                                "layer_norm_eps must be a finite number in (0, inf), got '1e-5'"),
    "pruned_heads a list": (lambda: ModelConfig(pruned_heads=[1]),  # "dictionary update sequence"
                            "ModelConfig.pruned_heads must be a dict {layer: [heads]}, got [1]"),
    "pruned_heads of an int": (lambda: ModelConfig(pruned_heads={0: 1}),
                               "ModelConfig.pruned_heads: layer 0 -> 1 is not a list of heads"),
    # the pooler read hidden[:, 0]: a (B, C) array pooled the first sentence; NumPy failed in torch
    "pool of a (B, C) array": (lambda: Encoder(TINY, pooler=True).pool(np.zeros((2, 8))),
                               "hidden must be the encoder's output (B, T >= 1, d_model=8), got"),
    "twin pool of NumPy": (
        lambda: TorchEncoder(TINY, attention="math", pooler=True).pool(np.zeros((1, 3, 8))),
        "hidden must be a torch.Tensor, got numpy.ndarray"),
    "type_vocab_size 0": (lambda: ModelConfig(type_vocab_size=0),
                          "ModelConfig.type_vocab_size must be a positive int, got 0"),
    # seeds: NumPy refuses -1 and torch 1.5, each in words that name no argument
    "Decoder seed -1": (lambda: Decoder(TINY, seed=-1), "seed must be an int >= 0, got -1"),
    "Encoder seed 1.5": (lambda: Encoder(TINY, seed=1.5), "seed must be an int >= 0, got 1.5"),
    "twin Decoder seed -1": (lambda: TorchDecoder(TINY, attention="math", seed=-1),
                             "seed must be an int >= 0, got -1"),
    "twin Encoder seed 1.5": (lambda: TorchEncoder(TINY, attention="math", seed=1.5),
                              "seed must be an int >= 0, got 1.5"),
    "classifier seed -2": (lambda: SequenceClassifier(Encoder(TINY, pooler=True), 2, seed=-2),
                           "seed must be an int >= 0, got -2"),
    "TrainSettings seed -1": (lambda: TrainSettings(seed=-1), "seed must be an int >= 0, got -1"),
    "FinetuneSettings seed 1.5": (lambda: FinetuneSettings(seed=1.5),
                                  "seed must be an int >= 0, got 1.5"),
    # tokenizers: a float id was cut to an int and decoded as another token
    "char decode 1.5": (lambda: CharTokenizer("abc").decode([1.5]),
                        "ids must be integer token ids, got float64 values such as 1.5"),
    "wordpiece decode 1.0": (
        lambda: WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]).decode([1.0]),
        "ids must be integer token ids, got float64 values such as 1.0"),
    "bpe decode True": (lambda: BPETokenizer.train("aaab", 258).decode([True]),
                        "ids must be integer token ids, got bool values such as True"),
    # decode(None) failed in NumPy's words; a batch's rows were joined into one text
    "char decode None": (lambda: CharTokenizer("abc").decode(None),
                         "ids must be a sequence of token ids, got None"),
    "wordpiece decode a batch": (
        lambda: WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]).decode(
            np.array([[1, 2], [3, 4]])),
        "ids must be one sequence of token ids (1-D), got shape (2, 2): decode each row"),
    # loaders and embeddings
    "load_pretrained(None)": (lambda: load_pretrained(None),
                              "path must be a model directory (a str or a path), got None"),
    "sentence_embeddings of None": (
        lambda: sentence_embeddings(Encoder(TINY), CharTokenizer("abcde"), None),
        "texts must be a str or an iterable of str, got NoneType"),
    "sentence_embeddings of [None]": (
        lambda: sentence_embeddings(Encoder(TINY), CharTokenizer("abcde"), ["a", None]),
        "texts must be strings, got NoneType None at index 1"),
    "sentence_embeddings of a Seq2Seq": (  # its encode() takes no segments: a TypeError deep inside
        lambda: sentence_embeddings(Seq2Seq(TINY), CharTokenizer("abcde"), ["a"]),
        "model is a Seq2Seq; a sentence embedding needs an Encoder (minilm.numpy or minilm.torch)"),
    # a vocabulary listing a token twice gave it the second id and left the first without a token
    "wordpiece vocab with a token twice": (
        lambda: WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"]),
        "vocab: token 'a' is listed twice (ids 5 and 6)"),
    # generation: a seed where the generator goes failed in NumPy's words, "5" in a comparison
    "generate rng 5": (lambda: generate(Decoder(TINY), [[1, 2]], 2, 5),
                       "rng must be a numpy Generator (np.random.default_rng(seed)) or None"),
    "greedy_decode of a Decoder": (  # failed with "'Decoder' object has no attribute 'encode'"
        lambda: greedy_decode(Decoder(TINY), np.array([[5, 6]]), np.ones((1, 2)), 1, 2),
        "model is a Decoder; decoding a translation needs a Seq2Seq (minilm.numpy or"),
    "generate max_new_tokens '5'": (lambda: generate(Decoder(TINY), [[1, 2]], "5"),
                                    "max_new_tokens must be an int >= 0, got '5'"),
    # a float or bool prompt was cast to ids: 1.7 became token 1
    "generate a float prompt": (lambda: generate(Decoder(TINY), [[1.7, 2.9]], 1),
        "prompt_ids must be a non-empty (batch, time) integer array, got float64 (1, 2)"),
    "generate a bool prompt": (lambda: generate(Decoder(TINY), np.array([[True, False]]), 1),
        "prompt_ids must be a non-empty (batch, time) integer array, got bool (1, 2)"),
    # an IndexError from deep inside NumPy; with temperature 0, an argmax over the wrong axis
    "sample_next of 1-D logits": (lambda: sample_next(np.zeros(3), np.random.default_rng(0)),
                                  "logits must be a (batch, vocab) array, got shape (3,)"),
    "sample_next of 3-D logits": (lambda: sample_next(np.zeros((1, 2, 3)), None, 0.0),
                                  "logits must be a (batch, vocab) array, got shape (1, 2, 3)"),
    # the decoder's check blamed `memory`, which the caller never passed
    "Seq2Seq of 1 source and 2 targets": (
        lambda: Seq2Seq(TINY).forward(np.array([[1, 2, 3]]), None, np.ones((2, 2), dtype=int)),
        "target_ids has 2 sequences but source_ids has 1; expected one target per source"),
    "twin Seq2Seq of 1 source and 2 targets": (
        lambda: TorchSeq2Seq(TINY, attention="math").forward(
            np.array([[1, 2, 3]]), None, np.ones((2, 2), dtype=int)),
        "target_ids has 2 sequences but source_ids has 1; expected one target per source"),
    # KV caches: -1 layers accepted, "a" Python's TypeError
    "KVCache(-1)": (lambda: KVCache(-1), "n_layers must be an int >= 1, got -1"),
    "KVCache('a')": (lambda: KVCache("a"), "n_layers must be an int >= 1, got 'a'"),
    # a str was translated character by character, an empty sentence got a translation
    "translate a str": (lambda: translate(Seq2Seq(TINY), _WORDS, "a b."),
                        "sentences must be a list of str, got str"),
    "translate ['']": (lambda: translate(Seq2Seq(TINY), _WORDS, ["a", ""]),
                       "sentences must be non-empty strings, got str '' at index 1"),
    "translate [None]": (lambda: translate(Seq2Seq(TINY), _WORDS, [None]),
                         "sentences must be non-empty strings, got NoneType None at index 0"),
    # a list of texts was tokenized as a batch and its first row kept: the maps of one text
    "attention_maps of a list": (
        lambda: attention_maps(Encoder(TINY), _WORDS, ["a b", "c"]),
        "text must be a str (one text), got list ['a b', 'c']"),
    "attention_maps of a list pair": (
        lambda: attention_maps(Encoder(TINY), _WORDS, "a", ["b", "c"]),
        "pair must be a str (one text), got list ['b', 'c']"),
    "saliency of a list": (
        lambda: saliency(SequenceClassifier(Encoder(TINY, pooler=True), 2), _WORDS, ["a", "b"]),
        "text must be a str (one text), got list ['a', 'b']"),
    # head gates: a shape that does not fit broadcast or failed inside NumPy, NaN was kept
    "head_gate of 3 gates for 4 heads": (
        lambda: F.head_gate_forward(np.ones((2, 4, 3, 5)), np.ones(3)),
        "gate must have shape (H,) or (B, H) for heads (B, H, T, D) of shape (2, 4, 3, 5), got"),
    "head_gate of a batch of 3 gates": (
        lambda: F.head_gate_forward(np.ones((2, 4, 3, 5)), np.ones((3, 4))),
        "head_gate: gate must have shape (H,) or (B, H) for heads (B, H, T, D) of shape"),
    "head_gate NaN": (lambda: F.head_gate_forward(np.ones((1, 2, 3, 5)), np.array([1, np.nan])),
                      "head_gate: gate must be finite numbers, got nan at index (1,)"),
    "set_head_gates NaN": (lambda: set_head_gates(Encoder(TINY), np.full((1, 2), np.nan)),
                           "gates[0] must be finite numbers, got nan at index (0,)"),
    "twin set_head_gates inf": (
        lambda: set_head_gates(TorchEncoder(TINY, attention="math"), [torch.tensor([1, np.inf])]),
        "gates[0] must be finite numbers, got inf at index (1,)"),
    "set_head_gates 1.0": (lambda: set_head_gates(Encoder(TINY), 1.0),
                           "gates must hold one gate per block (a list, or an (L, H) array)"),
    # int8 linear: NumPy's "matmul: Input operand 1 has a mismatch in its core dimension 0"
    "int8_linear x of 5 columns": (
        lambda: int8_linear_forward(np.ones((2, 5), np.float32), np.ones((4, 3), np.int8),
                                    np.ones(4, np.float32)),
        "x must be (..., in) with in = 3 (q's columns), got shape (2, 5)"),
    "int8_linear scale of 3": (
        lambda: int8_linear_forward(np.ones((2, 3)), np.ones((4, 3), np.int8), np.ones(3)),
        "scale must have shape (out,) = (4,) for q of shape (4, 3), got (3,)"),
    "int8_linear bias of 3": (
        lambda: int8_linear_forward(np.ones((2, 3)), np.ones((4, 3), np.int8), np.ones(4),
                                    np.ones(3)),
        "bias must have shape (out,) = (4,) for q of shape (4, 3), got (3,)"),
    "int8_linear float q": (
        lambda: int8_linear_forward(np.ones((2, 3)), np.ones((4, 3)), np.ones(4)),
        "q must be an int8 (out, in) array, got float64 of shape (4, 3)"),
    # BPE training: "a bytes-like object is required"; a lone surrogate a UnicodeEncodeError
    "bpe train None": (lambda: BPETokenizer.train(None, 300),
                       "text must be a str (the corpus), got NoneType"),
    "bpe train ['a']": (lambda: BPETokenizer.train(["a"], 300),
                        "text must be a str (the corpus), got list"),
    "bpe train a lone surrogate": (lambda: BPETokenizer.train("a\ud800b", 300),
                                   "text holds '\\ud800', a lone surrogate"),
    "bpe encode a lone surrogate": (lambda: BPETokenizer.train("aaab", 258).encode("a\udfffb"),
                                    "text holds '\\udfff', a lone surrogate"),
    # embeddings: a broadcast error, and a scalar "similarity" of one vector
    "mean_pool of a shorter mask": (lambda: mean_pool(np.ones((1, 3, 4)), np.ones((1, 2))),
                                    "attention_mask (B, T), got shapes (1, 3, 4) and (1, 2)"),
    "cosine_similarity_matrix of 1-D": (lambda: cosine_similarity_matrix(np.ones(3)),
                                        "embeddings must be (N, C), one row per text, got shape"),
    # NumPy read the id as uint64 and the cast wrapped it: "got [-9223372036854775803]"
    "generate a prompt id past int64": (
        lambda: generate(Decoder(TINY), [[2**63 + 5]], 1),
        "prompt_ids must lie in [0, vocab_size=8), got [9223372036854775813,"),
    # decoding started from token 1; an end token outside the vocabulary never stopped it
    "greedy_decode start_id 1.5": (
        lambda: greedy_decode(Seq2Seq(TINY), np.array([[5, 6]]), None, 1.5, 2),
        "start_id must be a token id, an int in [0, vocab_size=8), got 1.5"),
    "greedy_decode end_id 99": (
        lambda: greedy_decode(Seq2Seq(TINY), np.array([[5, 6]]), None, 1, 99),
        "end_id must be a token id, an int in [0, vocab_size=8), got 99"),
    "beam_search end_id -1": (
        lambda: beam_search(Seq2Seq(TINY), np.array([[5, 6]]), None, 1, -1),
        "end_id must be a token id, an int in [0, vocab_size=8), got -1"),
}


@pytest.mark.parametrize("case", sorted(LIBRARY_CASES))
def test_bad_library_arguments_are_refused_by_name(case):
    """Each used to give a silent wrong answer (GELU of integers all zeros, a NaN eps all NaNs,
    decode(1.5) token 1, causal="no" causal), or an error from deep inside NumPy or torch that
    names no argument (AxisError, AttributeError '_head_cache', "cannot reshape", SeedSequence,
    pathlib's TypeError, "truth value of an array is ambiguous")."""
    call, message = LIBRARY_CASES[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@pytest.mark.parametrize("name, content, message", [
    ("pair.csv", "text,text_pair,label\na cat,a dog,1\n",
     "pair.csv: column 'text_pair': sentence-pair classification is not supported by"),
    ("pair.jsonl", '{"text": "a", "label": 1}\n{"text": "a", "text_pair": "b", "label": 0}\n',
     "pair.jsonl, line 2: key 'text_pair': sentence-pair classification is not supported"),
], ids=["csv", "jsonl"])
def test_a_task_file_of_sentence_pairs_is_refused(tmp_path, name, content, message):
    """The `text_pair` column was ignored like any other: the model learnt from the first
    sentences alone, and nothing said so."""
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_labelled_file(tmp_path / name)


@pytest.mark.parametrize("tokenizer", [
    CharTokenizer("abc"), WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
    BPETokenizer.train("aaab", 258)], ids=["char", "wordpiece", "bpe"])
@pytest.mark.parametrize("text", [None, b"abc", ["a"]], ids=["None", "bytes", "list"])
def test_every_tokenizer_says_when_the_text_is_not_a_str(tokenizer, text):
    """The character tokenizer iterated over what it was given: None failed inside Python, b"abc"
    was reported as 'characters outside the vocabulary: [97, 98, 99]'."""
    with pytest.raises(TypeError, match=f"text must be a str, got {type(text).__name__}"):
        tokenizer.encode(text)


def test_a_vocab_txt_listing_a_token_twice_is_named(tmp_path):
    """translate said "the tokenizer has 1546 tokens but config.json says vocab_size=1547" for a
    1547-line vocab.txt with one line repeated."""
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nthe\n")
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path / 'vocab.txt'}: token 'the' is listed twice (ids 5 and 7)")):
        WordPieceTokenizer.from_pretrained(tmp_path)


def test_out_must_name_a_directory_and_refused_runs_leave_none(text_file, tmp_path, capsys,
                                                               monkeypatch):
    """`--out ""` wrote the run into the current directory; a run refused for its settings or its
    text (--seed -1, --seq-len longer than the text) left an empty --out directory behind: --out is
    still checked first, and created when the run starts."""
    monkeypatch.chdir(tmp_path)
    assert main(train_argv(text_file, "")) == 2
    assert "--out must not be empty; expected a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    for flags, message in ((("--seed", "-1"), "seed must be an int >= 0, got -1"),
                           (("--seq-len", "100000"), "fewer than the 100001")):
        assert main(train_argv(text_file, tmp_path / "run", *flags)) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("mine")
    assert main(train_argv(text_file, tmp_path / "file" / "run")) == 2
    assert f"cannot be written: {str(tmp_path / 'file')!r} is a file" in capsys.readouterr().err
