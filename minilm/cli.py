"""`minilm` command line: every command's flags, and the few lines that turn them into a library
call. The flags of `train` and `finetune` are derived from their settings dataclasses (each field's
default and help text, `minilm.common.settings.setting`), so a new setting is a new flag.

    minilm train --objective clm --steps 600 --out runs/clm
    minilm generate --checkpoint runs/clm --prompt "once" --temperature 0.8 --top-k 10
    minilm train --objective seq2seq --steps 1500 --batch-size 64 --out runs/translation
    minilm translate --checkpoint runs/translation "then she sings softly." --beams 4
    minilm tokenizer train --vocab-size 1000 corpus.txt --out runs/bpe
    minilm demo
    minilm embed "a cat sits on the mat" "a kitten rests on a rug" "stock prices fell"
    minilm finetune --task sentiment --backend numpy --epochs 3 --out runs/sentiment
    minilm attention "the food was cold" --pair "was it good?" --out maps.png
    minilm predict --checkpoint runs/sentiment "the food was cold" "what a lovely day"
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
import types
import typing
from pathlib import Path

import numpy as np

from minilm.common.backends import BACKENDS
from minilm.config import PRESETS, ModelConfig
from minilm.distributed import ProcessFailed, rank_label
from minilm.finetune import FinetuneSettings, finetune, resume_finetuning
from minilm.train import TrainSettings, resume_training, train

# `make demo`'s recipe, chosen by measurement within its 5-minute budget on 2 cores
# (benchmarks/demo_recipe.py, benchmarks/results/demo_recipe.md): 76-85 ms per step of 2048
# characters on two BLAS threads, 4.5-4.9 minutes in all
DEMO_SETTINGS = dict(objective="clm", steps=3400, batch_size=16, seq_len=128, lr=6e-3,
                     lr_decay="linear", min_lr=0.0, warmup_steps=100, eval_every=425)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions keep their line breaks; a flag's help shows its default, unless the help text
    already says what the default is or what is required, or the flag is required."""

    def _get_help_string(self, action):
        if action.required:
            return f"{action.help} (required)"
        if "default" in (action.help or "") or "required" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# ---------------------------------------------------------------- flags from settings


def add_settings_arguments(parser, settings_class, skip=()) -> None:
    """One flag per field of a settings dataclass: `--batch-size` for `batch_size`, typed by the
    annotation (`int | None` takes an int, `bool` becomes --flag/--no-flag), with the field's
    default, help text and argparse extras (choices, nargs, const, metavar)."""
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        if field.name in skip:
            continue
        extras = dict(field.metadata)
        help_text = extras.pop("help", None)
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=field.default, help=help_text)
            continue
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        parser.add_argument(flag, type=kind, default=field.default, help=help_text, **extras)


def settings_from(args, settings_class, **overrides):
    """The settings dataclass filled from parsed flags (its own checks run in __post_init__)."""
    names = {field.name for field in dataclasses.fields(settings_class)}
    return settings_class(**{**{name: getattr(args, name) for name in names}, **overrides})


# ---------------------------------------------------------------- the commands


def _check_file(flag: str, path) -> None:
    """A file a flag names must exist: said first, before any setting is checked (a typo in a path
    is the likeliest mistake, and the one a user should hear about)."""
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {str(path)!r}: no such file")


def command_train(args):
    _check_file("--text", args.text)
    if args.resume is not None:
        _refuse_flags_beside_resume(args)
        metrics, out = resume_training(args.resume), args.resume
    else:
        config = None if args.preset is None else ModelConfig.preset(args.preset)  # train's default
        metrics, out = train(settings_from(args, TrainSettings), config, args.text,
                             args.out), args.out
    if metrics is not None:  # None on the processes but rank 0 under torchrun
        _print_summary(metrics, out)


def _refuse_flags_beside_resume(args) -> None:
    """`--resume DIR` continues a run with the settings it was started with (kept in
    DIR/config.json): any other flag would silently not apply, so giving one is an error. (A flag
    is "given" when its value differs from the one a bare `minilm COMMAND` parses.)"""
    bare = vars(build_parser().parse_args([args.command]))
    given = sorted(name for name, value in vars(args).items()
                   if name != "resume" and value != bare[name])
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"--resume continues the run in {args.resume!r} with the settings it "
                         f"was started with; drop {flags}")


def _print_summary(metrics, out):
    """The end of `minilm train`: the validation loss in nats, bits and perplexity per token (and
    over the entropy floor, for a CLM on the built-in corpus), the speed, the run directory."""
    token, floor = metrics["token"], metrics["entropy_floor"]
    line = (f"validation loss {metrics['val_loss']:.4f} nats/{token} = {metrics['val_bits']:.4f} "
            f"bits/{token}, perplexity {metrics['val_perplexity']:.3f}")
    if floor is not None:
        line += f"; entropy floor {floor:.4f} (ratio {metrics['val_loss'] / floor:.3f})"
    print(line)
    unit = "sentences" if "sentences_per_second" in metrics else "tokens"
    print(f"{metrics['steps']} steps in {metrics['wall_seconds']:.0f} s, "
          f"{metrics[f'{unit}_per_second']:.0f} {unit}/s; run directory: {out}")
    if "translation" in metrics:
        scores = metrics["translation"]
        print(f"held-out sentences ({scores['sentences']}), greedy: exact match "
              f"{scores['exact_match']:.3f}, BLEU {scores['bleu']:.1f}, chrF {scores['chrf']:.1f}")


def command_generate(args):
    from minilm.common.checks import positive_int
    from minilm.data import load_text
    from minilm.generation import check_sampling, generate
    from minilm.pretrained import load_decoder

    _check_file("--prompt-file", args.prompt_file)
    positive_int("--samples", args.samples)
    model, tokenizer = load_decoder(args.checkpoint)
    check_sampling(args.temperature, args.top_k, model.config.vocab_size, args.top_p)
    # a prompt file's text, less the one line break an editor ends it with
    text = args.prompt if args.prompt_file is None else load_text(args.prompt_file)
    text = text if args.prompt_file is None or not text.endswith("\n") else text[:-1]
    prompt = tokenizer.encode(text)[None]
    if prompt.shape[1] == 0:
        raise ValueError("--prompt must not be empty")
    ids = generate(model, np.repeat(prompt, args.samples, axis=0), args.max_new_tokens,
                   np.random.default_rng(args.seed), args.temperature, args.top_k,
                   top_p=args.top_p)
    for row in ids:
        print(tokenizer.decode(row))
        print("---")


def command_translate(args):
    """`minilm translate`: English sentences -> Kelish with a `minilm train --objective seq2seq`
    run, greedy or by beam search."""
    from minilm.checkpoint import load_run
    from minilm.common.checks import number_in, positive_int
    from minilm.translation import translate

    positive_int("--beams", args.beams)
    number_in("--length-penalty", args.length_penalty, "[0, inf)")
    model, run = load_run(args.checkpoint, backend=args.backend)
    if run.kind != "seq2seq":
        raise ValueError(f"--checkpoint {str(args.checkpoint)!r} holds a {run.kind}; translation "
                         "needs a run of `minilm train --objective seq2seq`")
    tokenizer = run.tokenizer
    sentences = [s.strip() + "." for text in args.texts for s in text.split(".") if s.strip()]
    if not sentences:
        raise ValueError("give the English text to translate, e.g. \"then she sings softly.\"")
    unknown = sorted({word for s in sentences for word in s.replace(".", " ").split()
                      if tokenizer.tokenize(word) == [tokenizer.UNK]})
    if unknown:
        raise ValueError(f"words the model has no token for: {unknown[:10]} (it knows the "
                         f"{tokenizer.vocab_size} words of the story corpus)")
    too_long = [s for s in sentences if len(tokenizer.tokenize(s)) + 1 > model.config.max_len]
    if too_long:
        raise ValueError(f"a sentence longer than the model's max_len={model.config.max_len} "
                         f"tokens: {too_long[0]!r}")
    for source, target in zip(sentences, translate(model, tokenizer, sentences, args.beams,
                                                    args.length_penalty)):
        print(f"{source}\n  -> {target}")


def command_tokenizer_train(args):
    """`minilm tokenizer train`: learn byte-level BPE merges on a text file and write vocab.json +
    merges.txt, which `load_tokenizer` and Hugging Face's GPT2Tokenizer read."""
    from minilm.tokenizers import BPETokenizer

    text = Path(args.corpus).read_text(encoding="utf-8")
    tokenizer = BPETokenizer.train(text, args.vocab_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out)
    print(f"learned {len(tokenizer.merges)} merges on {args.corpus} ({len(text)} characters): "
          f"vocab_size {tokenizer.vocab_size}"
          + (" (no pair was left to merge)" if tokenizer.vocab_size < args.vocab_size else ""))
    print(f"wrote {out / 'vocab.json'} and {out / 'merges.txt'}")


def command_demo(args):
    """Train the demo CLM on the built-in corpus, compare with the floor, print a few stories."""
    metrics = train(TrainSettings(**DEMO_SETTINGS), ModelConfig.preset("demo"), None, args.out)
    _print_summary(metrics, args.out)
    print("\nsampled stories (temperature 0.8), each prompted with the blank line between stories:")
    command_generate(argparse.Namespace(
        checkpoint=args.out, prompt="\n\n", prompt_file=None, samples=3, max_new_tokens=300,
        seed=0, temperature=0.8, top_k=None, top_p=None,
    ))


def _texts_from(args, what: str) -> list[str]:
    """TEXT arguments, then the lines of --file; ValueError saying what to give if none."""
    _check_file("--file", args.file)
    texts = list(args.texts or [])
    if args.file is not None:
        with open(args.file, encoding="utf-8") as f:
            texts += [line.strip() for line in f if line.strip()]
    if not texts:
        raise ValueError(f"give {what}: TEXT [TEXT ...] or --file FILE")
    return texts


def command_embed(args) -> np.ndarray:
    """`minilm embed`: load the model and tokenizer, embed, print the similarities, maybe save."""
    from minilm.embeddings import (
        OUTPUT_SUFFIXES,
        cosine_similarity_matrix,
        format_similarity_table,
        save_embeddings,
        sentence_embeddings,
        sentence_settings,
    )
    from minilm.pretrained import default_model_path, load_pretrained
    from minilm.tokenizers import WordPieceTokenizer

    if args.output is not None and Path(args.output).suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output must end with one of {OUTPUT_SUFFIXES}, got {args.output!r}")
    texts = _texts_from(args, "sentences to embed")
    directory = Path(args.model) if args.model is not None else default_model_path()
    settings = sentence_settings(directory)
    model = load_pretrained(directory, backend=args.backend)
    tokenizer = WordPieceTokenizer.from_pretrained(directory)
    max_length = min(settings["max_seq_length"], model.config.max_len)
    embeddings = sentence_embeddings(model, tokenizer, texts, batch_size=args.batch_size,
                                     max_length=max_length, normalize=settings["normalize"])
    print(f"model {directory} ({args.backend}): mean pooling over <= {max_length} tokens"
          f"{', L2-normalised' if settings['normalize'] else ''}")
    print(f"cosine similarity of {len(texts)} sentence embeddings:")
    print(format_similarity_table(cosine_similarity_matrix(embeddings), texts))
    if args.output is not None:
        save_embeddings(args.output, embeddings)
        print(f"saved embeddings {embeddings.shape} to {args.output}")
    return embeddings


def command_finetune(args) -> dict:
    """Run `minilm finetune`; bad input (an unknown label, an empty file, a vocabulary that does
    not match the model) raises ValueError / FileNotFoundError, which `main` prints as one line
    and exit status 2."""
    if args.task != "sentiment":
        _check_file("--task", args.task)
    _check_file("--test", args.test)
    if args.resume is not None:
        _refuse_flags_beside_resume(args)
        metrics, out = resume_finetuning(args.resume), args.resume
    else:
        metrics, out = finetune(settings_from(args, FinetuneSettings), args.out), args.out
    if metrics is None:  # a process other than rank 0 under torchrun
        return None
    per_epoch = ", ".join(f"{a:.3f}" for a in metrics["eval_accuracy_per_epoch"])
    print(f"test accuracy {metrics['eval_accuracy']:.3f}, macro-F1 {metrics['eval_macro_f1']:.3f} "
          f"on {metrics['num_test']} test examples (always the most common label: "
          f"{metrics['majority_accuracy']:.3f}); per epoch: {per_epoch or '-'}; "
          f"final train loss {metrics['final_train_loss']:.4f}")
    print(format_classification_report(metrics["label_names"], metrics["per_label"],
                                       metrics["confusion_matrix"]))
    speed = ("" if metrics["seconds_per_epoch"] is None else
             f" ({metrics['seconds_per_epoch']:.1f} s per epoch, "
             f"{metrics['examples_per_second']:.1f} examples/s)")
    print(f"{metrics['steps']} steps in {metrics['wall_seconds']:.0f} s{speed}; run directory: "
          f"{out}")
    return metrics


def format_classification_report(label_names, per_label: dict, confusion) -> str:
    """Per label precision, recall, F1 and support, beside the confusion matrix (rows: the true
    label, columns: the predicted one)."""
    width = max(9, *(len(name) for name in label_names))
    lines = [f"{'label':<{width}} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}   "
             "predicted as: " + " ".join(f"{name[:width]:>{width}}" for name in label_names)]
    for name, row in zip(label_names, confusion):
        scores = per_label[name]
        lines.append(f"{name:<{width}} {scores['precision']:>9.3f} {scores['recall']:>7.3f} "
                     f"{scores['f1']:>6.3f} {scores['support']:>8}   {'':14}"
                     + " ".join(f"{count:>{width}}" for count in row))
    return "\n".join(lines)


def command_predict(args):
    """`minilm predict`: a fine-tuned classifier's label and probabilities for each text."""
    from minilm.classification import predict_logits
    from minilm.finetune import load_finetuned
    from minilm.numpy import functional as F

    texts = _texts_from(args, "the texts to classify")
    model, tokenizer, label_names = load_finetuned(args.checkpoint, backend=args.backend)
    max_length = args.max_length or model.config.max_len
    if not 3 <= max_length <= model.config.max_len:
        raise ValueError(f"--max-length must be in [3, {model.config.max_len}] (the model's "
                         f"max_len), got {max_length}")
    logits = predict_logits(model, tokenizer, texts, max_length).astype(np.float64)  # (N, L)
    probabilities, _ = F.softmax_forward(logits)  # (N, L)
    width = max(5, *(len(name) for name in label_names))
    print(f"{'label':<{width}}  " + "  ".join(f"{'P(' + name + ')':>{width + 3}}"
                                             for name in label_names) + "  text")
    for text, row in zip(texts, probabilities):
        print(f"{label_names[row.argmax()]:<{width}}  "
              + "  ".join(f"{p:>{width + 3}.3f}" for p in row) + f"  {text}")
    return probabilities


def command_check(args) -> int:
    """`minilm check`: grade a learner's file with the project's own properties; exit status 0
    when everything attempted holds, 1 otherwise."""
    from hypothesis import settings

    from minilm.check import check, listing

    if args.list:
        print(listing(args.lesson))
        return 0
    if args.file is None:
        raise ValueError("give a FILE.py to check, or --list to see the checkable names")
    report = check(args.file, lesson=args.lesson,
                   settings=settings(max_examples=args.max_examples, derandomize=True))
    print(report.table())
    return 0 if report.ok else 1


def command_compute(args):
    """`minilm compute`: parameters, FLOPs, memory and training time of a preset, counted from its
    config (minilm.compute; nothing is built)."""
    from minilm.compute import PRESET_MODELS, report

    model, parts = PRESET_MODELS[args.preset]  # the heads as released, unless a flag says
    flags = {part: getattr(args, part) for part in ("mlm_head", "pooler")}
    parts = {**parts, **{part: value for part, value in flags.items() if value is not None}}
    peak_flops = None if args.peak_tflops is None else args.peak_tflops * 1e12
    print(report(ModelConfig.preset(args.preset), args.preset, model, args.tokens, args.batch,
                 args.seq_len, args.dtype, peak_flops, args.mfu, **parts))


def add_compute_arguments(p) -> None:
    p.add_argument("preset", choices=sorted(PRESETS), help="the model (ModelConfig.preset)")
    p.add_argument("--tokens", type=float, default=None,
                   help="training tokens, e.g. 300e9 (default: 20 per parameter, compute-optimal)")
    p.add_argument("--batch", type=int, default=1, help="sequences per batch (memory)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="tokens per sequence (default: the preset's max_len)")
    p.add_argument("--dtype", default="float32",
                   help="float64, float32, bfloat16 (bf16) or float16 (fp16)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the hardware's peak TFLOP/s: adds the training time (default: not shown)")
    p.add_argument("--mfu", type=float, default=0.4,
                   help="model FLOPs utilisation assumed for the training time")
    for flag, part in (("--mlm-head", "MLM head"), ("--pooler", "pooler")):
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                       help=f"encoders: count BERT's {part} (default: as released, see "
                            "minilm.compute.PRESET_MODELS)")


def command_attention(args):
    """`minilm attention`: every head's attention weights for one sentence (or a pair), as a
    grid of heatmaps (minilm.interpret)."""
    from matplotlib.figure import Figure

    from minilm.interpret import attention_maps, attention_rollout, plot_attention_maps
    from minilm.pretrained import load_encoder

    if not args.text.strip():
        raise ValueError("TEXT is empty: give the sentence to look at")
    suffix = Path(args.out).suffix.lstrip(".")
    if suffix not in Figure().canvas.get_supported_filetypes():
        raise ValueError(f"--out {args.out!r}: give a picture file (.png, .pdf, .svg)")
    model, tokenizer, where = load_encoder(args.model)
    tokens, maps = attention_maps(model, tokenizer, args.text, args.pair)
    rollout = attention_rollout(maps) if args.rollout else None
    text = args.text if args.pair is None else f"{args.text} | {args.pair}"
    plot_attention_maps(tokens, maps, rollout, title=f"attention of {Path(where).name}: "
                        f"\"{text}\"").savefig(args.out, dpi=args.dpi)
    print(f"{where}: {maps.shape[0]} layers x {maps.shape[1]} heads, {len(tokens)} tokens: "
          f"{' '.join(tokens)}")
    print(f"wrote {args.out}")


# ---------------------------------------------------------------- the parser


def _described(text: str, *examples: str) -> str:
    """A command's description: `text` wrapped to 96 columns, then its examples, one a line."""
    heading = "example:" if len(examples) == 1 else "examples:"
    return "\n".join([textwrap.fill(text, 96), "", heading, *(f"  {e}" for e in examples)])


def _presets_described() -> str:
    """One line per ModelConfig preset: its shape (`minilm train --preset`)."""
    lines = []
    for name, fields in PRESETS.items():
        config = ModelConfig.preset(name)
        lines.append(f"  {name:<12} {config.n_layers} layers, d_model {config.d_model}, "
                     f"{config.n_heads} heads, d_ff {config.d_ff}, {config.activation}"
                     + (f", {config.max_len} positions" if "max_len" in fields else ""))
    return "\n".join(lines)


RESUME_HELP = ("continue the interrupted run in DIR from its last checkpoint, with the settings it "
               "was started with and no other flag (default: start a new run in --out)")
TRAIN_DESCRIPTION = """\
Pre-train a model from fresh weights on a text: --objective clm trains a GPT-style Decoder to
predict the next character, mlm a BERT-style Encoder to fill in masked characters (15%%, 80/10/10),
seq2seq an encoder-decoder to translate the built-in English sentences into Kelish. Each
evaluation is printed and appended to OUT/metrics.jsonl; the run directory holds checkpoints
(--resume continues one), metrics.json, loss_curve.png, and a config.json + model.safetensors that
Hugging Face transformers loads as it is (GPT2LMHeadModel, BertForMaskedLM).

The loss is in nats per token (a token is a character), in bits per token and as perplexity; for
clm on the built-in corpus, also as a ratio to the corpus's exact entropy rate, the floor no model
can beat.

presets (--preset; vocab_size comes from the text, max_len at least --seq-len):
%s

examples:
  minilm train --objective clm --steps 600 --out runs/clm
  minilm train --objective mlm --text my.txt --backend torch --device auto --out runs/mlm
"""


def build_parser():
    from minilm import __version__

    parser = argparse.ArgumentParser(prog="minilm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"minilm {__version__}",
                        help="print minilm's version and exit")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, summary, run, description=None):
        p = commands.add_parser(name, help=summary, description=description or summary,
                                formatter_class=_HelpFormatter)
        p.set_defaults(run=run)
        return p

    p = command("train", "pre-train a model with the CLM, MLM or seq2seq objective",
                command_train, TRAIN_DESCRIPTION % _presets_described())
    p.add_argument("--text", default=None, help="a UTF-8 text file (default: the built-in corpus)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="the model's shape (ModelConfig.preset; default: demo, or "
                        "minilm.translation.TRANSLATION_MODEL for --objective seq2seq); "
                        "vocab_size comes from the text")
    p.add_argument("--out", default="runs/train", help="run directory")
    p.add_argument("--resume", default=None, metavar="DIR", help=RESUME_HELP)
    add_settings_arguments(p, TrainSettings)

    p = command("generate", "sample text from a CLM checkpoint or a GPT-2 directory",
                command_generate, _described(
                    "Continue a prompt with a causal language model, one sampled token at a time "
                    "(with a KV cache): a run directory of `minilm train --objective clm`, or any "
                    "Hugging Face GPT-2 directory (config.json, model.safetensors, vocab.json + "
                    "merges.txt). Each step divides the logits by --temperature, keeps the "
                    "--top-k most likely tokens and the nucleus of probability --top-p, and "
                    "samples (minilm.generation).",
                    'minilm generate --checkpoint runs/clm --prompt "once" --temperature 0.8 '
                    "--top-p 0.9 --samples 3"))
    p.add_argument("--checkpoint", required=True,
                   help="a run directory of `minilm train`, or a Hugging Face GPT-2 directory")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the text to continue (this or --prompt-file is required)")
    prompt.add_argument("--prompt-file", metavar="FILE",
                        help="a UTF-8 file whose text is the prompt, less a final line "
                             "break (this or --prompt is required)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to sample")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="< 1 sharpens the distribution, > 1 flattens it, 0 is greedy")
    p.add_argument("--top-k", type=int, default=None,
                   help="sample among the k most likely tokens only (default: all)")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="nucleus sampling: among the most likely tokens that together hold "
                        "probability P, e.g. 0.9 (default: all)")
    p.add_argument("--samples", type=int, default=1, help="independent samples to print")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampling")

    p = command("translate", "translate English sentences into Kelish with a seq2seq run",
                command_translate,
                "Translate English sentences of the story corpus into Kelish, the synthetic "
                "language of minilm's parallel corpus (minilm.corpus.translation), with a run of "
                "`minilm train --objective seq2seq`: greedy, or beam search with --beams K.\n\n"
                'example: minilm translate --checkpoint runs/translation "then she sings softly."')
    p.add_argument("texts", nargs="+", metavar="TEXT",
                   help="English text; each sentence (ending with '.') is translated")
    p.add_argument("--checkpoint", required=True,
                   help="a run directory of `minilm train --objective seq2seq`")
    p.add_argument("--beams", type=int, default=1, help="beam search width (1: greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search: a hypothesis scores sum(log p) / length ** this")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="numpy: the hand-written reference; torch: the twin")

    p = commands.add_parser("tokenizer", help="train GPT-2's byte-level BPE tokenizer",
                            description="Byte-level BPE tokenizers (GPT-2's): `train` learns "
                            "merges on a text file.")
    p = p.add_subparsers(dest="tokenizer_command", required=True).add_parser(
        "train", help="learn byte-level BPE merges on a text file",
        description="Learn GPT-2-style byte-level BPE merges on a UTF-8 text file and write "
        "vocab.json + merges.txt (the format of GPT-2 directories, read by `minilm generate` and "
        "Hugging Face's GPT2Tokenizer).\n\n"
        "example: minilm tokenizer train --vocab-size 1000 corpus.txt --out runs/bpe",
        formatter_class=_HelpFormatter)
    p.set_defaults(run=command_tokenizer_train)
    p.add_argument("corpus", metavar="CORPUS.txt", help="a UTF-8 text file to learn merges on")
    p.add_argument("--vocab-size", type=int, default=1000,
                   help="tokens in the vocabulary: the 256 bytes, one per merge, <|endoftext|>")
    p.add_argument("--out", default="runs/bpe", help="directory for vocab.json and merges.txt")

    p = command("demo", "train a small GPT on the built-in corpus (a few minutes)", command_demo,
                _described("Train the demo model (a 0.6M-parameter character-level GPT, "
                           "--preset demo) in NumPy on the built-in story corpus, "
                           f"{DEMO_SETTINGS['steps']} steps (about 5 minutes on 2 CPU cores), "
                           "print its validation loss against "
                           "the corpus's exact entropy rate, then three sampled stories.",
                           "minilm demo --out runs/demo"))
    p.add_argument("--out", default="runs/demo", help="run directory")

    p = command("embed", "sentence embeddings and their cosine similarities (all-MiniLM-L6-v2)",
                command_embed,
                _described("Embed sentences with a pretrained BERT (mean pooling, L2 "
                           "normalisation) and print their cosine-similarity matrix.",
                           'minilm embed "a cat sits on the mat" "a kitten rests on a rug" '
                           '"stock prices fell"'))
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to embed")
    p.add_argument("--file", default=None,
                   help="a UTF-8 text file, one sentence per line (default: the TEXTs only)")
    p.add_argument("--model", default=None,
                   help="a Hugging Face BERT directory (default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="numpy: the hand-written reference; torch: the twin (default attention)")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="save the embeddings (N, C) to FILE.npy or FILE.safetensors (default: "
                        "printed only)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")

    p = command("check", "grade your own implementations of the lessons' exercises",
                command_check,
                "Find every function FILE defines with the name of an exercise (op pairs such as "
                "softmax_forward / softmax_backward, and each lesson's exercise functions) and run "
                "the project's own properties and oracles on it: finite differences, PyTorch in "
                "float64, the library's reference. A stub raising NotImplementedError is 'not "
                "attempted'. Exit status 0 when everything attempted passes, 1 otherwise.\n\n"
                "example: minilm check lessons/exercises/00_language_models.py")
    p.add_argument("file", nargs="?", metavar="FILE.py", help="a Python file of your functions")
    p.add_argument("--list", action="store_true", help="list the checkable names per lesson")
    p.add_argument("--lesson", default=None, metavar="NN",
                   help="check (or with --list, list) only that lesson's exercises (e.g. 03)")
    p.add_argument("--max-examples", type=int, default=25,
                   help="hypothesis examples per property")

    p = command("finetune", "fine-tune a pretrained BERT (MiniLM-L6) for sentence classification",
                command_finetune, _described(
                    "Fine-tune a pretrained BERT (the installed MiniLM-L6, or --model DIR) with a "
                    "new classifier on a labelled task: the built-in sentiment task or a "
                    ".csv/.jsonl file of text,label rows, with the seed article's strategies "
                    "(warmup, layer-wise learning rates, gradual unfreezing). Each evaluation on "
                    "the test split (loss, accuracy, macro-F1, confusion matrix) is printed and "
                    "appended to OUT/metrics.jsonl; OUT holds checkpoints (--resume), "
                    "metrics.json, finetune_curves.png, and a model that `minilm predict` and "
                    "Hugging Face's AutoModelForSequenceClassification.from_pretrained(OUT) both "
                    "load.",
                    "minilm finetune --task sentiment --epochs 3 --out runs/sentiment",
                    "minilm finetune --task reviews.csv --max-steps 200 --eval-every 50 "
                    "--backend torch --dtype bfloat16"))
    add_settings_arguments(p, FinetuneSettings)
    p.add_argument("--out", default="runs/finetune", help="run directory")
    p.add_argument("--resume", default=None, metavar="DIR", help=RESUME_HELP)

    p = command("predict", "classify texts with a fine-tuned run (labels and probabilities)",
                command_predict,
                _described("Classify each text with a run of `minilm finetune`: one line per "
                           "text with the predicted label and the probability of every label "
                           "(the softmax of the logits).",
                           'minilm predict --checkpoint runs/sentiment "the food was cold" '
                           '"what a lovely day"'))
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a run directory of `minilm finetune`")
    p.add_argument("--file", default=None,
                   help="a UTF-8 text file, one text per line (default: the TEXTs only)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="numpy: the hand-written reference; torch: the twin")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per text, longer ones are cut (default: the model's max_len)")

    p = command("compute", "parameters, FLOPs, memory and training time of a preset",
                command_compute,
                "What a model costs, counted from its config alone (minilm.compute): parameters "
                "per component, matmul FLOPs per token, training FLOPs beside the 6 N D rule, "
                "memory (weights, gradients, AdamW, activations with naive or flash attention "
                "and with checkpointing, KV cache) and, given --peak-tflops, the training time.\n\n"
                "example: minilm compute gpt3-175b --tokens 300e9 --dtype bf16 --peak-tflops 312")
    add_compute_arguments(p)

    p = command("attention", "draw every attention head of a trained BERT for a sentence",
                command_attention,
                "Run a trained BERT (the NumPy reference) on a sentence, or a pair of sentences, "
                "and draw each head's attention weights: one row per layer, one column per head, "
                "queries down, keys across (minilm.interpret).\n\n"
                'example: minilm attention "the food was cold" --pair "was it good?" --out '
                "maps.png")
    p.add_argument("text", metavar="TEXT", help="the sentence")
    p.add_argument("--pair", default=None, metavar="TEXT",
                   help="a second sentence, read as BERT reads pairs: [CLS] a [SEP] b [SEP]")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a Hugging Face BERT directory or a run directory of `minilm finetune` "
                        "(default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--out", default="attention.png", help="the picture (.png, .pdf, .svg)")
    p.add_argument("--rollout", action="store_true",
                   help="add a column with the attention rollout up to each layer "
                        "(Abnar & Zuidema 2020)")
    p.add_argument("--dpi", type=int, default=130, help="resolution of a .png")

    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
    except (ValueError, FileNotFoundError, ProcessFailed) as error:
        print(f"minilm {args.command}{rank_label()}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`minilm check --list | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    return status if isinstance(status, int) else 0  # a command may return its exit status
