"""`minilm` command line: every command's flags and help, and `main`, which parses them and runs
the command (what each command then does is in `minilm.commands`). The flags of `train` and
`finetune` are derived from their settings dataclasses (each field's default and help text,
`minilm.common.settings.setting`), so a new setting is a new flag. What `minilm --help` shows
its user is `USAGE`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
import types
import typing

from minilm import commands
from minilm.common.backends import BACKENDS
from minilm.config import PRESETS, ModelConfig
from minilm.distributed import ProcessFailed, rank_label
from minilm.finetune import FinetuneSettings
from minilm.train import TrainSettings


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions keep their line breaks; a flag's help shows its default, unless the help text
    already says what the default is or what is required, or the flag is required."""

    def _get_help_string(self, action):
        if action.required:
            return f"{action.help} (required)"
        if "default" in (action.help or "") or "required" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


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


USAGE = """\
Language models built from scratch twice, a NumPy reference with every gradient by hand and a
PyTorch twin whose attention runs through a Triton kernel: train, generate, translate, embed,
fine-tune, look inside and grade your own code. `minilm COMMAND --help` describes a command, with
an example and every flag's default.

    minilm demo                                    a small GPT on the built-in corpus
    minilm train --objective clm --steps 600 --out runs/clm
    minilm generate --checkpoint runs/clm --prompt "once" --temperature 0.8 --top-k 10
    minilm finetune --task sentiment --epochs 3 --out runs/sentiment
    minilm predict --checkpoint runs/sentiment "what a lovely day"
    minilm check lessons/exercises/03_gpt_clm.py   grade a lesson's exercises
    minilm compute gpt2 --tokens 1e10              what a model costs
"""


def build_parser():
    from minilm import __version__

    parser = argparse.ArgumentParser(prog="minilm", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"minilm {__version__}",
                        help="print minilm's version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True)

    def command(name, summary, run, description=None):
        p = subparsers.add_parser(name, help=summary, description=description or summary,
                                formatter_class=_HelpFormatter)
        p.set_defaults(run=run)
        return p

    p = command("train", "pre-train a model with the CLM, MLM or seq2seq objective",
                commands.command_train, TRAIN_DESCRIPTION % _presets_described())
    p.add_argument("--text", default=None, help="a UTF-8 text file (default: the built-in corpus)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="the model's shape (ModelConfig.preset; default: demo, or "
                        "minilm.translation.TRANSLATION_MODEL for --objective seq2seq); "
                        "vocab_size comes from the text")
    p.add_argument("--out", default="runs/train", help="run directory")
    p.add_argument("--resume", default=None, metavar="DIR", help=RESUME_HELP)
    add_settings_arguments(p, TrainSettings)

    p = command("generate", "sample text from a CLM checkpoint or a GPT-2 directory",
                commands.command_generate, _described(
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
                commands.command_translate,
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

    p = subparsers.add_parser("tokenizer", help="train GPT-2's byte-level BPE tokenizer",
                            description="Byte-level BPE tokenizers (GPT-2's): `train` learns "
                            "merges on a text file.\n\n"
                            "example: minilm tokenizer train --vocab-size 1000 corpus.txt "
                            "--out runs/bpe", formatter_class=_HelpFormatter)
    p = p.add_subparsers(dest="tokenizer_command", required=True).add_parser(
        "train", help="learn byte-level BPE merges on a text file",
        description="Learn GPT-2-style byte-level BPE merges on a UTF-8 text file and write "
        "vocab.json + merges.txt (the format of GPT-2 directories, read by `minilm generate` and "
        "Hugging Face's GPT2Tokenizer).\n\n"
        "example: minilm tokenizer train --vocab-size 1000 corpus.txt --out runs/bpe",
        formatter_class=_HelpFormatter)
    p.set_defaults(run=commands.command_tokenizer_train)
    p.add_argument("corpus", metavar="CORPUS.txt", help="a UTF-8 text file to learn merges on")
    p.add_argument("--vocab-size", type=int, default=1000,
                   help="tokens in the vocabulary: the 256 bytes, one per merge, <|endoftext|>")
    p.add_argument("--out", default="runs/bpe", help="directory for vocab.json and merges.txt")

    p = command("demo", "train a small GPT on the built-in corpus (a few minutes)",
                commands.command_demo,
                _described("Train the demo model (a 0.6M-parameter character-level GPT, "
                           "--preset demo) in NumPy on the built-in story corpus, "
                           f"{commands.DEMO_SETTINGS['steps']} steps (about 5 minutes on 2 CPU "
                           "cores), print its validation loss against the corpus's exact entropy "
                           "rate, then three sampled stories.",
                           "minilm demo --out runs/demo"))
    p.add_argument("--out", default="runs/demo", help="run directory")

    p = command("embed", "sentence embeddings and their cosine similarities (all-MiniLM-L6-v2)",
                commands.command_embed,
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
                   help="numpy: the hand-written reference; torch: the twin")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="save the embeddings (N, C) to FILE.npy or FILE.safetensors (default: "
                        "printed only)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")

    p = command("check", "grade your own implementations of the lessons' exercises",
                commands.command_check,
                "Find every function FILE defines with the name of an exercise (op pairs such as "
                "softmax_forward / softmax_backward, and each lesson's exercise functions) and run "
                "the project's own properties and oracles on it: finite differences, PyTorch in "
                "float64, the library's reference. A stub raising NotImplementedError is 'not "
                "attempted'. Exit status 0 when everything attempted passes, 1 otherwise.\n\n"
                "example: minilm check lessons/exercises/00_language_models.py")
    p.add_argument("file", nargs="?", metavar="FILE.py",
                   help="a Python file of your functions (required, unless --list)")
    p.add_argument("--list", action="store_true", help="list the checkable names per lesson")
    p.add_argument("--lesson", default=None, metavar="NN",
                   help="check (or with --list, list) only that lesson's exercises, e.g. 03 "
                        "(default: every lesson)")
    p.add_argument("--max-examples", type=int, default=25,
                   help="hypothesis examples per property")

    p = command("finetune", "fine-tune a pretrained BERT (MiniLM-L6) for sentence classification",
                commands.command_finetune, _described(
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
                commands.command_predict,
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
                commands.command_compute,
                "What a model costs, counted from its config alone (minilm.compute): parameters "
                "per component, matmul FLOPs per token, training FLOPs beside the 6 N D rule, "
                "memory (weights, gradients, AdamW, activations with naive or flash attention "
                "and with checkpointing, KV cache) and, given --peak-tflops, the training time.\n\n"
                "example: minilm compute gpt3-175b --tokens 300e9 --dtype bf16 --peak-tflops 312")
    add_compute_arguments(p)

    p = command("attention", "draw every attention head of a trained BERT for a sentence",
                commands.command_attention,
                "Run a trained BERT (the NumPy reference) on a sentence, or a pair of sentences, "
                "and draw each head's attention weights: one row per layer, one column per head, "
                "queries down, keys across (minilm.interpret).\n\n"
                'example: minilm attention "the food was cold" --pair "was it good?" --out '
                "maps.png")
    p.add_argument("text", metavar="TEXT", help="the sentence")
    p.add_argument("--pair", default=None, metavar="TEXT",
                   help="a second sentence, read as BERT reads pairs: [CLS] a [SEP] b [SEP] "
                        "(default: one sentence)")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a Hugging Face BERT directory or a run directory of `minilm finetune` "
                        "(default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--out", default="attention.png", help="the picture (.png, .pdf, .svg)")
    p.add_argument("--rollout", action="store_true",
                   help="add a column with the attention rollout up to each layer "
                        "(Abnar & Zuidema 2020)")
    p.add_argument("--dpi", type=int, default=130, help="resolution of a .png")

    return parser


def _refuse_flags_beside_resume(args, argv: list[str]) -> None:
    """`--resume DIR` continues a run with the settings it was started with (kept in
    DIR/config.json): any other flag would silently not apply, so giving one is an error, even at
    its default value (`--backend numpy` beside a torch run's --resume)."""
    given = sorted({token.split("=", 1)[0] for token in argv if token.startswith("-")}
                   - {"--resume"})
    if given:
        raise ValueError(f"--resume continues the run in {args.resume!r} with the settings it "
                         f"was started with; drop {', '.join(given)}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "resume", None) is not None:
            _refuse_flags_beside_resume(args, argv)
        status = args.run(args)
    except (ValueError, FileNotFoundError, ProcessFailed) as error:
        print(f"minilm {args.command}{rank_label()}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`minilm check --list | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line instead of a traceback, and SIGINT's status
        print(f"minilm {args.command}{rank_label()}: interrupted{_resume_hint(args)}",
              file=sys.stderr)
        return 130
    except MemoryError:  # NumPy's array too large for this machine (torch raises its own)
        print(f"minilm {args.command}{rank_label()}: error: out of memory: the arrays this needs "
              "do not fit in this machine's memory; start again with a smaller --batch-size or "
              "--seq-len (or model)", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0  # a command may return its exit status


def _resume_hint(args) -> str:
    """For a training command, how to continue the interrupted run."""
    if not hasattr(args, "resume"):
        return ""
    directory = args.resume or args.out
    return (f"; `minilm {args.command} --resume {directory}` continues it from its last "
            "checkpoint (if it reached one)")
