"""Lesson 11, what it costs: the parameters of a Transformer block, the FLOPs of attention and the
memory of an optimizer (`minilm.compute`: block_parameters, attention_flops,
optimizer_state_bytes).

Oracles, all exact (integers): the models themselves (the parameters of block 0 of a NumPy GPT-2
and BERT built from the drawn config; the bytes minilm's AdamW and SGD hold after a step);
torch's FlopCounterMode around one attention layer of the twin (attention="math", whose score and
value products are visible matmuls); and minilm.compute on the published models, where the numbers
are too large to build (GPT-3's 12288 channels).

A learner's function may return a number or, as the library does, a dict of named parts: the
checks read its total.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np
from hypothesis import strategies as st

from minilm.check.framework import assert_true, exercise, prop
from minilm.testing.strategies import model_configs

LESSON = "11"
PUBLISHED = ("bert-base", "bert-large", "gpt2", "gpt2-xl", "gpt3-175b")

exercise("block_parameters", LESSON, "block_parameters(config) -> int (or {part: count})",
         "the parameters of one Transformer block: attention, feed-forward, layer norms")
exercise("attention_flops", LESSON, "attention_flops(config, seq_len) -> int (or {part: count})",
         "matmul FLOPs of one attention layer's forward over one sequence of seq_len tokens")
exercise("optimizer_state_bytes", LESSON,
         "optimizer_state_bytes(n_parameters, dtype='float32', optimizer='adamw') -> int",
         "the bytes an optimizer keeps between steps: AdamW two arrays like the parameters, "
         "SGD with momentum one, plain SGD none")


def total(value, what: str):
    """A learner's answer as one number: the number itself, or the sum of a dict's values."""
    if isinstance(value, Mapping):
        parts = list(value.values())
        assert_true(all(isinstance(part, Real) for part in parts),
                    f"{what}: the dict's values must be numbers, got {value!r}")
        return sum(parts)
    assert_true(isinstance(value, Real) and not isinstance(value, bool),
                f"{what}: expected a number (or a dict of numbers), got {value!r}")
    return value


def assert_count(what: str, expected: int, actual, explanation: str) -> None:
    assert_true(actual == expected, f"{what} = {actual!r}, expected {expected} ({explanation})",
                abs(float(actual) - expected) / max(1, expected))


def published(name: str):
    from minilm.config import ModelConfig

    return ModelConfig.preset(name)


# ---------------------------------------------------------------- block_parameters


def built_block_cases():
    """A tiny config (d_ff drawn apart from 4 d_model) and the built models' block 0 counts."""
    return model_configs(max_layers=1).map(lambda config: {"config": config,
                                                           "_counts": _built_block(config)})


def _built_block(config) -> dict[str, int]:
    from minilm.numpy import Decoder, Encoder

    counts = {}
    for model, prefix in ((Decoder, "transformer.h.0."), (Encoder, "bert.encoder.layer.0.")):
        params = model(config, seed=0).params
        counts[model.__name__] = sum(p.size for name, p in params.items() if name.startswith(prefix))
    return counts


BLOCK_HINT = ("attention 4 C^2 + 4 C (four C x C matrices and their biases), feed-forward "
              "2 C F + F + C (with F = config.d_ff, not 4 C), two LayerNorms 2 C each")


@prop("block_parameters", "equals the parameters of block 0 of a built GPT-2 and BERT",
      built_block_cases(), hint=BLOCK_HINT)
def block_parameters_are_the_built_blocks(impl, case):
    config = case["config"]
    counted = total(impl.block_parameters(config), "block_parameters(config)")
    for model, expected in case["_counts"].items():
        assert_count(f"block_parameters (d_model {config.d_model}, d_ff {config.d_ff})", expected,
                     counted, f"the parameters of block 0 of a built {model}")


@prop("block_parameters", "equals minilm.compute for the published models",
      st.sampled_from(PUBLISHED).map(lambda name: {"preset": name}), hint=BLOCK_HINT)
def block_parameters_of_published_models(impl, case):
    from minilm.compute import block_parameters

    config = published(case["preset"])
    expected = block_parameters(config).total
    assert_count(f"block_parameters({case['preset']})", expected,
                 total(impl.block_parameters(config), "block_parameters(config)"),
                 f"d_model {config.d_model}, d_ff {config.d_ff}")


# ---------------------------------------------------------------- attention_flops


@st.composite
def attention_layer_cases(draw):
    config = draw(model_configs(max_layers=1, max_heads=4))
    return {"config": config, "seq_len": draw(st.integers(1, config.max_len))}


def counted_attention_flops(config, seq_len: int) -> int:
    """FlopCounterMode around one attention layer of the twin on a (1, seq_len, C) input."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from minilm.numpy import Decoder
    from minilm.torch import Decoder as TwinDecoder

    twin = TwinDecoder.from_numpy(Decoder(config, seed=0), attention="math")
    x = torch.zeros(1, seq_len, config.d_model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        twin.blocks[0].attn(x)
    return counter.get_total_flops()


@prop("attention_flops", "equals the matmul FLOPs torch counts in one attention layer",
      attention_layer_cases(), max_examples=15,
      hint="2 FLOPs per multiply-add: 4 projections of 2 T C^2, then Q K^T and P V, each 2 T^2 D "
           "per head, so 2 T^2 C over all the heads")
def attention_flops_are_counted_by_torch(impl, case):
    config, seq_len = case["config"], case["seq_len"]
    expected = counted_attention_flops(config, seq_len)
    assert_count(f"attention_flops (T {seq_len}, C {config.d_model}, H {config.n_heads})",
                 expected, total(impl.attention_flops(config, seq_len), "attention_flops"),
                 "torch's FlopCounterMode on the twin's attention layer")


@prop("attention_flops", "equals minilm.compute for the published models at full context",
      st.sampled_from(PUBLISHED).map(lambda name: {"preset": name}),
      hint="the score and value products grow as T^2: at GPT-3's 2048 tokens they are "
           "2 x 2 T^2 C, next to 8 T C^2 for the projections")
def attention_flops_of_published_models(impl, case):
    from minilm.compute import attention_flops

    config = published(case["preset"])
    expected = attention_flops(config, config.max_len).total
    assert_count(f"attention_flops({case['preset']}, {config.max_len})", expected,
                 total(impl.attention_flops(config, config.max_len), "attention_flops"),
                 f"d_model {config.d_model}, {config.n_heads} heads")


# ---------------------------------------------------------------- optimizer_state_bytes

OPTIMIZERS = ("adamw", "sgd-momentum", "sgd")


@st.composite
def optimizer_cases(draw):
    return {"config": draw(model_configs(max_layers=1)),
            "dtype": draw(st.sampled_from(["float32", "float64"])),
            "optimizer": draw(st.sampled_from(OPTIMIZERS))}


def held_state_bytes(config, dtype: str, optimizer: str) -> tuple[int, int]:
    """(parameters, bytes of the optimizer's per-parameter arrays after one step) of a NumPy
    Decoder in `dtype`, with minilm's AdamW, SGD with momentum 0.9, or plain SGD."""
    from minilm.numpy import Decoder
    from minilm.numpy.optim import SGD, AdamW

    params = Decoder(config, seed=0, dtype=np.dtype(dtype).type).params
    chosen = {"adamw": lambda: AdamW(params, lr=1e-3),
              "sgd-momentum": lambda: SGD(params, lr=1e-3, momentum=0.9),
              "sgd": lambda: SGD(params, lr=1e-3)}[optimizer]()
    chosen.step({name: np.ones_like(value) for name, value in params.items()})
    held = sum(array.nbytes for slot in chosen.buffer_slots for array in chosen.state[slot].values())
    return sum(p.size for p in params.values()), held


@prop("optimizer_state_bytes", "equals what minilm's optimizers hold after a step",
      optimizer_cases(),
      hint="AdamW keeps m and v (2 arrays like the parameters), SGD with momentum its velocity "
           "(1), plain SGD nothing; each element is 4 bytes in float32, 8 in float64")
def optimizer_state_is_what_the_optimizer_holds(impl, case):
    n_parameters, held = held_state_bytes(case["config"], case["dtype"], case["optimizer"])
    answer = total(impl.optimizer_state_bytes(n_parameters, case["dtype"], case["optimizer"]),
                   "optimizer_state_bytes")
    assert_count(f"optimizer_state_bytes({n_parameters}, {case['dtype']!r}, "
                 f"{case['optimizer']!r})", held, answer,
                 f"the bytes minilm's {case['optimizer']} holds for a model of that many "
                 "parameters")


@prop("optimizer_state_bytes", "equals minilm.compute for any size, dtype and optimizer",
      st.fixed_dictionaries({
          "n_parameters": st.sampled_from([22_713_216, 124_439_808, 174_604_259_328])
          | st.integers(0, 10**12),
          "dtype": st.sampled_from(["float64", "float32", "bfloat16", "float16"]),
          "optimizer": st.sampled_from(OPTIMIZERS)}),
      hint="bytes per element: float64 8, float32 4, bfloat16 and float16 2")
def optimizer_state_bytes_for_any_size(impl, case):
    from minilm.compute import optimizer_state_bytes

    arguments = (case["n_parameters"], case["dtype"], case["optimizer"])
    assert_count(f"optimizer_state_bytes{arguments}", optimizer_state_bytes(*arguments),
                 total(impl.optimizer_state_bytes(*arguments), "optimizer_state_bytes"),
                 "minilm.compute's count")
