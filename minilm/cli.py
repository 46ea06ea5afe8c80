"""`minilm` command line: train, generate, demo, embed, finetune.

    minilm train --objective clm --steps 600 --out runs/clm
    minilm generate --checkpoint runs/clm --prompt "once" --temperature 0.8 --top-k 10
    minilm demo
    minilm embed "a cat sits on the mat" "a kitten rests on a rug" "stock prices fell"
    minilm finetune --task sentiment --backend numpy --epochs 3 --out runs/sentiment
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from minilm.config import PRESETS, ModelConfig
from minilm.finetune import add_finetune_command
from minilm.pretrained import add_embed_command
from minilm.train import BACKENDS, OBJECTIVES, TrainSettings, train

# ~4.5 minutes on 2 CPU cores (0.12-0.15 s per step of 2048 tokens)
DEMO_SETTINGS = dict(objective="clm", steps=1800, batch_size=16, seq_len=128, lr=5e-3,
                     min_lr=5e-4, warmup_steps=100, eval_every=400)


def _add_train_arguments(parser):
    defaults = TrainSettings()
    parser.add_argument("--objective", choices=OBJECTIVES, default=defaults.objective)
    parser.add_argument("--backend", choices=BACKENDS, default=defaults.backend,
                        help="numpy: the hand-written reference; torch: the twin (Triton attention "
                             "on CUDA, SDPA on CPU)")
    parser.add_argument("--text", default=None, help="a UTF-8 text file (default: the built-in corpus)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--out", default="runs/train", help="run directory")
    for field in dataclasses.fields(TrainSettings):
        if field.name in ("objective", "backend"):
            continue
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=type(field.default), default=field.default)


def _settings_from(args, **overrides) -> TrainSettings:
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    return TrainSettings(**{**{n: getattr(args, n) for n in names}, **overrides})


def command_train(args):
    metrics = train(_settings_from(args), ModelConfig.preset(args.preset), args.text, args.out)
    _print_summary(metrics, args.out)


def _print_summary(metrics, out):
    floor = metrics["entropy_floor"]
    line = f"validation loss {metrics['val_loss']:.4f} nats/token"
    if floor is not None:
        line += f"; entropy floor {floor:.4f} (ratio {metrics['val_loss'] / floor:.3f})"
    print(line)
    print(f"{metrics['steps']} steps in {metrics['wall_seconds']:.0f} s, "
          f"{metrics['tokens_per_second']:.0f} tokens/s; run directory: {out}")


def command_generate(args):
    from minilm.checkpoint import read_checkpoint
    from minilm.generation import generate
    from minilm.numpy import Decoder

    params, kind, config, tokenizer, _ = read_checkpoint(args.checkpoint)
    if kind != "decoder":
        raise ValueError(f"--checkpoint {args.checkpoint!r} holds an {kind}; generation needs a "
                         "decoder trained with --objective clm")
    model = Decoder(config)
    model.load_params(params)
    prompt = tokenizer.encode(args.prompt)[None]
    if prompt.shape[1] == 0:
        raise ValueError("--prompt must not be empty")
    ids = generate(model, np.repeat(prompt, args.samples, axis=0), args.max_new_tokens,
                   np.random.default_rng(args.seed), args.temperature, args.top_k)
    for row in ids:
        print(tokenizer.decode(row))
        print("---")


def command_demo(args):
    """Train the demo CLM on the built-in corpus, compare with the floor, print a few stories."""
    settings = TrainSettings(**DEMO_SETTINGS)
    metrics = train(settings, ModelConfig.preset("demo"), None, args.out)
    _print_summary(metrics, args.out)
    print("\nsampled stories (temperature 0.8), each prompted with the blank line between stories:")
    command_generate(argparse.Namespace(
        checkpoint=args.out, prompt="\n\n", samples=3, max_new_tokens=300, seed=0,
        temperature=0.8, top_k=None,
    ))


def build_parser():
    parser = argparse.ArgumentParser(prog="minilm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="pre-train a model with the CLM or MLM objective")
    _add_train_arguments(p)
    p.set_defaults(run=command_train)

    p = commands.add_parser("generate", help="sample text from a CLM checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=command_generate)

    p = commands.add_parser("demo", help="train a small GPT on the built-in corpus (a few minutes)")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(run=command_demo)

    add_embed_command(commands)
    add_finetune_command(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"minilm {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
