"""The table `minilm compute PRESET` prints: parameters, FLOPs, training compute, memory and time of
one model, every number from `parameter_count`, `flops_per_token`, `training_flops`, `memory` and
`time_estimate`."""

from __future__ import annotations

import sys

from minilm.compute.flops import flops_per_token, time_estimate, training_flops
from minilm.compute.memory import dtype_bytes, memory
from minilm.compute.parameters import model_parts, parameter_count
from minilm.config import ModelConfig

CHINCHILLA_TOKENS_PER_PARAMETER = 20  # compute-optimal training (Hoffmann et al. 2022)
SECONDS_PER_DAY = 86400.0


def short(value: float) -> str:
    """124439808 -> '124.4M', 3.14e23 -> '3.14e+23'."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}" if abs(value) < 1e3 * size else f"{value:.3g}"
    return f"{value:.0f}"


def gib(n_bytes: float) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB', 2**60 -> '1.05e+06 TiB' (e-notation past
    1024 TiB, so that the number fits its column)."""
    for size, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n_bytes >= size:
            amount = n_bytes / size
            return f"{amount:.1f} {unit}" if amount < 1024 else f"{amount:.3g} {unit}"
    return f"{n_bytes:.0f} B"


def days_text(days: float) -> str:
    """Days with one decimal, e-notation from a million on: 1234.56 -> '1,234.6', 3e9 -> '3e+09'."""
    return f"{days:,.1f}" if days < 1e6 else f"{days:.3g}"


def _rows(title, header, rows, width=36, column=14):
    """A titled block: a header line of right-aligned column names, then one line per row, each
    value ending where its column ends, or one space after a name or value too wide for its own."""
    lines = [title, " " * width + "".join(f"{h:>{column}}" for h in header)]
    for name, *values in rows:
        line = f"  {name}"
        for end, value in enumerate(values, 1):
            line += " " * max(1, width + end * column - len(line) - len(value)) + value
        lines.append(line)
    return lines


def report(config: ModelConfig, name: str, model: str = "decoder", n_tokens: float | None = None,
           batch: int = 1, seq_len: int | None = None, dtype: str = "float32",
           peak_flops: float | None = None, mfu: float = 0.4, **parts) -> str:
    """The whole table for one model, as text. `n_tokens` defaults to 20 per parameter (the
    compute-optimal budget of Hoffmann et al. 2022), `seq_len` to config.max_len; the time rows
    appear when `peak_flops` (FLOP/s of one device) is given: days on one such device, or that
    many devices for one day."""
    parts = model_parts(config, model, parts)
    seq_len = config.max_len if seq_len is None else seq_len
    params = parameter_count(config, model, **parts)
    heads = ", ".join(f"{part}={value}" for part, value in parts.items())
    title = f"{name}: {model}{f' ({heads})' if heads else ''}"
    lines = [f"{title}, {params.total:,} parameters ({short(params.total)})", ""]
    lines += _rows("parameters", ["count", "share"], [
        (term, f"{count:,}", f"{100 * count / params.total:.1f}%") for term, count in params.items()
    ])

    forward = flops_per_token(config, seq_len, False, model, **parts)
    training = flops_per_token(config, seq_len, True, model, **parts)
    lines += [""] + _rows(f"FLOPs per token (seq_len {seq_len})", ["forward", "training"], [
        *((term, short(forward[term]), short(training[term])) for term in forward),
        ("total", short(forward.total), short(training.total)),
    ])

    optimal = n_tokens is None
    if optimal:
        n_tokens = CHINCHILLA_TOKENS_PER_PARAMETER * params.total
    total = training_flops(config, n_tokens, seq_len, model, **parts)
    budget = f"{short(n_tokens)} tokens{' (20 per parameter, compute-optimal)' if optimal else ''}"
    rows = [("exact (matmuls)", f"{total.exact:.3g}"), ("6 N D", f"{total.six_n_d:.3g}"),
            ("exact / 6 N D", f"{total.exact / total.six_n_d:.3f}")]
    if peak_flops is not None:
        days = time_estimate(total.exact, peak_flops, mfu) / SECONDS_PER_DAY
        rows.append((f"device-days, {peak_flops / 1e12:g} TFLOP/s at MFU {mfu:g}", days_text(days)))
    lines += [""] + _rows(f"training on {budget}", ["FLOPs"], rows)

    columns = [("naive", dict(attention="naive")), ("flash", dict(attention="flash")),
               ("flash + ckpt", dict(attention="flash", checkpointing=True))]
    estimates = [memory(config, batch, seq_len, dtype, model=model, **options, **parts)
                 for _, options in columns]
    if max(max(m.training, m.generation) for m in estimates) > sys.float_info.max:
        raise ValueError(f"batch {batch} x {seq_len} tokens needs more bytes than a float can "
                         f"hold ({sys.float_info.max:.2g}): give a smaller batch")
    title = f"memory, batch {batch} x {seq_len} tokens, {dtype} ({dtype_bytes(dtype)} B), AdamW"
    lines += [""] + _rows(title, [label for label, _ in columns], [
        ("weights", *(gib(m.weights) for m in estimates)),
        ("gradients", *(gib(m.gradients) for m in estimates)),
        ("optimizer states", *(gib(m.optimizer_states) for m in estimates)),
        ("activations", *(gib(m.activations.total) for m in estimates)),
        ("training total", *(gib(m.training) for m in estimates)),
    ])
    if model == "decoder":
        lines.append(f"  KV cache to generate {batch} x {seq_len} tokens: "
                     f"{gib(estimates[0].kv_cache)} (+ weights: {gib(estimates[0].generation)})")
    return "\n".join(lines)
