"""Lesson 06, fine-tuning: the layer-wise strategies of seed §3.4 as functions of parameter names
and steps (`minilm.common.names.bert_depth`, `minilm.layerwise`).

The oracle is construction: the strategy `bert_parameter_names` builds a BERT model's names from
tables of where each one sits (embeddings, block i, above the blocks), so every name's depth is
known without calling the library; the unfreezing schedule is checked step by step against its
definition. Everything is exact (integers, or powers of the decay compared to 1e-12).
"""

from __future__ import annotations

from itertools import pairwise

from minilm.check.framework import Failure, as_array, assert_true, exercise, prop
from minilm.testing.strategies import bert_parameter_names, unfreezing_cases

LESSON = "06"

exercise("bert_depth", LESSON, "bert_depth(name, n_layers) -> int",
         "how far a BERT parameter sits from the input: embeddings 0, block i -> i + 1, "
         "the rest n_layers + 1")
exercise("layerwise_scales", LESSON, "layerwise_scales(names, n_layers, decay) -> {name: scale}",
         "layer-wise learning-rate decay: decay ** (n_layers + 1 - depth) for every name")
exercise("lowest_trainable_depth", LESSON,
         "lowest_trainable_depth(step, unfreeze_every, n_layers) -> int",
         "gradual unfreezing: the lowest depth that trains at `step`, one group more every "
         "unfreeze_every steps, top down")
exercise("frozen_names", LESSON, "frozen_names(names, n_layers, lowest_depth) -> set of names",
         "the parameters below lowest_depth, which do not train at this step")


def depth_rule(case) -> str:
    return f"embeddings 0, bert.encoder.layer.i -> i + 1, everything else {case['n_layers'] + 1}"


# ---------------------------------------------------------------- bert_depth


@prop("bert_depth", "puts embeddings at 0, block i at i + 1 and the head on top",
      bert_parameter_names(),
      hint="read the block number as the whole integer after 'bert.encoder.layer.' "
           "(name.split('.')[3]); pooler and head are n_layers + 1")
def bert_depth_is_the_depth(impl, case):
    for name in case["names"]:
        depth = impl.bert_depth(name, case["n_layers"])
        expected = case["_depths"][name]
        assert_true(depth == expected, f"bert_depth({name!r}, {case['n_layers']}) = {depth!r}, "
                                       f"expected {expected} ({depth_rule(case)})")


# ---------------------------------------------------------------- layerwise_scales


def scales_of(impl, case) -> dict:
    scales = impl.layerwise_scales(case["names"], case["n_layers"], case["decay"])
    assert_true(isinstance(scales, dict), f"expected a dict {{name: scale}}, got "
                                          f"{type(scales).__name__}")
    missing, extra = set(case["names"]) - set(scales), set(scales) - set(case["names"])
    assert_true(not missing and not extra, f"the keys must be exactly the names: missing "
                                           f"{sorted(missing)[:3]}, extra {sorted(extra)[:3]}")
    return scales


@prop("layerwise_scales", "gives each name decay ** (n_layers + 1 - depth)", bert_parameter_names(),
      hint="scale = decay ** (n_layers + 1 - bert_depth(name, n_layers)), one entry per name")
def layerwise_scales_are_powers(impl, case):
    scales = scales_of(impl, case)
    top = case["n_layers"] + 1
    for name in case["names"]:
        expected = case["decay"] ** (top - case["_depths"][name])
        actual = float(as_array(scales[name], f"scale of {name}"))
        assert_true(abs(actual - expected) <= 1e-12 * expected,
                    f"scale of {name!r} (depth {case['_depths'][name]}, n_layers "
                    f"{case['n_layers']}, decay {case['decay']}) is {actual:.6g}, expected "
                    f"{expected:.6g}", abs(actual - expected))


@prop("layerwise_scales", "the head learns at the full rate and each layer below more slowly",
      bert_parameter_names().filter(lambda case: case["decay"] < 1),
      hint="the exponent counts layers *below the head*: n_layers + 1 - depth, not depth")
def layerwise_scales_decrease_downwards(impl, case):
    scales = scales_of(impl, case)
    by_depth: dict[int, set] = {}
    for name in case["names"]:
        by_depth.setdefault(case["_depths"][name], set()).add(float(scales[name]))
    top = case["n_layers"] + 1
    if top in by_depth:
        assert_true(by_depth[top] == {1.0}, f"the head (depth {top}) has scale "
                                            f"{sorted(by_depth[top])}, expected 1: it learns at "
                                            "the full rate")
    lowest = [max(by_depth[d]) for d in sorted(by_depth)]
    assert_true(all(a < b for a, b in pairwise(lowest)),
                f"scales by depth 0..{top}: {[round(s, 4) for s in lowest]}; they must grow "
                "towards the head (lower layers move less)")


# ---------------------------------------------------------------- lowest_trainable_depth


def schedule(impl, case) -> list[int]:
    """The learner's depth at every step until well after everything has thawed."""
    k, n_layers = case["unfreeze_every"], case["n_layers"]
    return [impl.lowest_trainable_depth(step, k, n_layers) for step in range(k * (n_layers + 4))]


@prop("lowest_trainable_depth", "starts with only the head trainable", unfreezing_cases(),
      hint="for the first unfreeze_every steps the answer is n_layers + 1: the head alone")
def unfreezing_starts_at_the_top(impl, case):
    depths = schedule(impl, case)[:case["unfreeze_every"]]
    top = case["n_layers"] + 1
    assert_true(all(d == top for d in depths),
                f"steps 0..{case['unfreeze_every'] - 1} give {depths}, expected {top} (only the "
                f"head; n_layers = {case['n_layers']})")


@prop("lowest_trainable_depth", "thaws one group every unfreeze_every steps, top down, to 0",
      unfreezing_cases(),
      hint="max(0, n_layers + 1 - step // unfreeze_every): down by one every K steps, never "
           "below 0")
def unfreezing_goes_down_one_group_at_a_time(impl, case):
    k, top = case["unfreeze_every"], case["n_layers"] + 1
    depths = schedule(impl, case)
    for step, depth in enumerate(depths):
        expected = max(0, top - step // k)
        if depth != expected:
            window = depths[max(0, step - 2):step + 3]
            raise Failure(f"step {step} gives {depth!r}, expected {expected} (steps "
                          f"{max(0, step - 2)}.. give {window}; unfreeze_every {k}, n_layers "
                          f"{case['n_layers']})")


# ---------------------------------------------------------------- frozen_names


@prop("frozen_names", "freezes exactly the parameters below lowest_depth", bert_parameter_names(),
      hint="frozen = {name for name in names if bert_depth(name, n_layers) < lowest_depth}: "
           "strictly below, the group at lowest_depth trains")
def frozen_names_are_the_lower_ones(impl, case):
    frozen = impl.frozen_names(case["names"], case["n_layers"], case["lowest_depth"])
    assert_true(frozen is not None, "got None (did the function forget to return?)")
    frozen = set(frozen)
    expected = {name for name in case["names"] if case["_depths"][name] < case["lowest_depth"]}
    wrongly = sorted(frozen - expected, key=case["_depths"].get)
    missed = sorted(expected - frozen, key=case["_depths"].get)
    assert_true(not wrongly and not missed,
                f"lowest_depth {case['lowest_depth']}, n_layers {case['n_layers']}: "
                + (f"froze {len(wrongly)} that should train (e.g. {wrongly[0]!r}, depth "
                   f"{case['_depths'][wrongly[0]]}) " if wrongly else "")
                + (f"left {len(missed)} below it unfrozen (e.g. {missed[0]!r}, depth "
                   f"{case['_depths'][missed[0]]})" if missed else ""))
