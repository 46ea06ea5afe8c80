"""The two flags every benchmark script shares, --out (the results folder) and --smoke (the same
code on tiny settings, for tests/test_benchmarks.py and tests/test_gpu_scripts.py), and the parse
that gives a smoke run its smaller defaults.

    from flags import add_out_and_smoke, parse
    add_out_and_smoke(parser, RESULTS, smoke="tiny batches, 2 repeats")
    args = parse(parser, argv, SMOKE_DEFAULTS)  # with --smoke, SMOKE_DEFAULTS; flags given still win

A script whose --smoke changes more than defaults reads args.smoke itself.
"""

import argparse
from pathlib import Path


def add_out_and_smoke(parser: argparse.ArgumentParser, results: Path, smoke: str,
                      smoke_group=None) -> None:
    """Add --smoke, its help `smoke` (what the smoke run shrinks) + ": checks the code paths in
    seconds", to `smoke_group` (a mutually exclusive group of the parser) if given, else to the
    parser; and --out, a folder, `results` by default."""
    (smoke_group or parser).add_argument("--smoke", action="store_true",
                                         help=f"{smoke}: checks the code paths in seconds")
    parser.add_argument("--out", type=Path, default=results, help="results folder")


def parse(parser: argparse.ArgumentParser, argv, smoke_defaults: dict) -> argparse.Namespace:
    """parser.parse_args(argv); with --smoke, parsed again over `smoke_defaults` (dest -> value),
    so that a smoke run gets smaller defaults while the flags given still win."""
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke_defaults)
        args = parser.parse_args(argv)
    return args
