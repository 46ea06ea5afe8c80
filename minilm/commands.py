"""What each `minilm` command does: the few lines that turn its parsed flags into a library call
and print the result. The flags themselves, their help and the parser are in `minilm.cli`; each
`command_NAME(args)` here takes the namespace that parser fills, raises ValueError /
FileNotFoundError for bad input (`minilm.cli.main` prints it as one line, exit status 2), and may
return an exit status.
"""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path

import numpy as np

from minilm.config import ModelConfig
from minilm.files import check_writable, listing
from minilm.finetune import FinetuneSettings, finetune, resume_finetuning
from minilm.train import TrainSettings, perplexity_text, resume_training, train

# `make demo`'s recipe, chosen by measurement within its 5-minute budget on 2 cores
# (benchmarks/demo_recipe.py, benchmarks/results/demo_recipe.md): 76-85 ms per step of 2048
# characters on two BLAS threads, 4.5-4.9 minutes in all
DEMO_SETTINGS = dict(objective="clm", steps=3400, batch_size=16, seq_len=128, lr=6e-3,
                     lr_decay="linear", min_lr=0.0, warmup_steps=100, eval_every=425)
# `minilm attention --dpi`: print quality; MiniLM's grid with --rollout, 20.7 x 10.2 inches, is
# then 12420 x 6120 pixels (300 MB of RGBA); at 100000 dpi it would not fit in memory
MAX_DPI = 600


def settings_from(args, settings_class, **overrides):
    """The settings dataclass filled from parsed flags (its own checks run in __post_init__; an
    error they raise names the fields as the flags the user typed, `as_flags`)."""
    names = {field.name for field in dataclasses.fields(settings_class)}
    try:
        return settings_class(**{**{name: getattr(args, name) for name in names}, **overrides})
    except ValueError as error:
        raise ValueError(as_flags(str(error), names)) from None


def as_flags(message: str, names) -> str:
    """A settings error in the command line's words: a field name with an underscore anywhere, and
    any field name that starts the message, comes before "=" or stands in backticks, becomes its
    flag ("save_every must be >= 1" -> "--save-every must be >= 1", "[0, steps=2]" -> "[0,
    --steps=2]"). Elsewhere a one-word field name may be a plain word of the sentence ("steps",
    "test") and is left alone."""
    field = "|".join(sorted(names, key=len, reverse=True))
    snake = "|".join(sorted((name for name in names if "_" in name), key=len, reverse=True))
    return re.sub(rf"^({field})\b|(?<![\w-])({field})(?==)|(?<=`)({field})(?=`)"
                  rf"|(?<![\w-])({snake})\b",
                  lambda match: "--" + next(filter(None, match.groups())).replace("_", "-"),
                  message)


def _steps_text(steps: int) -> str:
    return f"{steps} step" if steps == 1 else f"{steps} steps"


def _check_file(flag: str, path) -> None:
    """A file a flag names must exist: said first, before any setting is checked (a typo in a path
    is the likeliest mistake, and the one a user should hear about)."""
    if path is not None and Path(path).is_dir():
        raise FileNotFoundError(f"{flag} {str(path)!r} is a directory, not a file")
    if path is not None and Path(path).exists() and not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {str(path)!r} is not a regular file (a pipe or a "
                                "device); give a file")
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {str(path)!r}: no such file")


def command_train(args):
    """`minilm train`: pre-train from fresh weights, or continue a run with --resume."""
    _check_file("--text", args.text)
    if args.resume is not None:  # its other flags were refused by minilm.cli.main
        metrics, out = resume_training(args.resume), args.resume
    else:
        config = None if args.preset is None else ModelConfig.preset(args.preset)  # train's default
        metrics, out = train(settings_from(args, TrainSettings), config, args.text,
                             args.out), args.out
    if metrics is not None:  # None on the processes but rank 0 under torchrun
        _print_summary(metrics, out)


def _print_summary(metrics, out):
    """The end of `minilm train`: the validation loss in nats, bits and perplexity per token (and
    over the entropy floor, for a CLM on the built-in corpus), the speed, the run directory."""
    token, floor = metrics["token"], metrics["entropy_floor"]
    line = (f"validation loss {metrics['val_loss']:.4f} nats/{token} = {metrics['val_bits']:.4f} "
            f"bits/{token}, perplexity {perplexity_text(metrics['val_loss'], 3)}")
    if floor is not None:
        line += f"; entropy floor {floor:.4f} (ratio {metrics['val_loss'] / floor:.3f})"
    print(line)
    unit = "sentences" if "sentences_per_second" in metrics else "tokens"
    print(f"{_steps_text(metrics['steps'])} in {metrics['wall_seconds']:.0f} s, "
          f"{metrics[f'{unit}_per_second']:.0f} {unit}/s; run directory: {out}")
    if "translation" in metrics:
        scores = metrics["translation"]
        print(f"held-out sentences ({scores['sentences']}), greedy: exact match "
              f"{scores['exact_match']:.3f}, BLEU {scores['bleu']:.1f}, chrF {scores['chrf']:.1f}")


def command_generate(args):
    from minilm.common.checks import int_at_least, positive_int
    from minilm.data import load_text
    from minilm.generation import check_sampling, generate
    from minilm.pretrained import load_decoder

    _check_file("--prompt-file", args.prompt_file)
    positive_int("--samples", args.samples)
    int_at_least("--seed", args.seed, 0)
    model, tokenizer = load_decoder(args.checkpoint)
    check_sampling(args.temperature, args.top_k, model.config.vocab_size, args.top_p)
    # a prompt file's text, less the one line break ("\n" or "\r\n") an editor ends it with
    text = args.prompt if args.prompt_file is None else load_text(args.prompt_file)
    text = text if args.prompt_file is None else text.removesuffix("\n").removesuffix("\r")
    try:
        prompt = tokenizer.encode(text)[None]
    except ValueError as error:  # a character the run's text never held
        flag = "--prompt" if args.prompt_file is None else f"--prompt-file {args.prompt_file!r}"
        raise ValueError(f"{flag}: {error}, the characters of the text {args.checkpoint!r} was "
                         "trained on") from None
    if prompt.shape[1] == 0:
        raise ValueError("--prompt must not be empty" if args.prompt_file is None else
                         f"--prompt-file {args.prompt_file!r} holds no prompt (only a final line "
                         "break); expected text to continue")
    ids = generate(model, np.repeat(prompt, args.samples, axis=0), args.max_new_tokens,
                   np.random.default_rng(args.seed), args.temperature, args.top_k,
                   top_p=args.top_p)
    print("\n---\n".join(tokenizer.decode(row) for row in ids))  # samples, a rule between them


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
        raise ValueError(f"--checkpoint {str(args.checkpoint)!r} holds a run of kind {run.kind!r}; "
                         "translation needs a run of `minilm train --objective seq2seq`")
    tokenizer = run.tokenizer
    sentences = [s.strip() + "." for text in args.texts for s in text.split(".") if s.strip()]
    if not sentences:
        raise ValueError("give the English text to translate, e.g. \"then she sings softly.\"")
    unknown = sorted({word for s in sentences for word in s.replace(".", " ").split()
                      if tokenizer.UNK in tokenizer.tokenize(word)})  # "softly!": softly, [UNK]
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
    from minilm.data import load_text
    from minilm.tokenizers import BPETokenizer

    _check_file("CORPUS.txt", args.corpus)
    check_writable("--out", args.out, directory=True)
    out = Path(args.out)
    # a tokenizer alone (what this writes) is replaced; a model's, or your files, never
    others = listing(out, besides={"vocab.json", "merges.txt"})
    if others:
        raise ValueError(f"--out {args.out!r} holds {others} (a model, whose tokenizer this would "
                         "replace, or your files): give a new directory, or one that holds only a "
                         "tokenizer (vocab.json, merges.txt), which is replaced")
    text = load_text(args.corpus)  # refuses a file that is empty or not UTF-8, naming it
    if text.isspace():  # whitespace alone would learn merges of spaces and line breaks only
        raise ValueError(f"CORPUS.txt {args.corpus!r} holds only whitespace; expected text to "
                         "learn merges from")
    tokenizer = BPETokenizer.train(text, args.vocab_size)
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
    command_generate(types.SimpleNamespace(
        checkpoint=args.out, prompt="\n\n", prompt_file=None, samples=3, max_new_tokens=300,
        seed=0, temperature=0.8, top_k=None, top_p=None,
    ))


def _texts_from(args, what: str) -> list[str]:
    """TEXT arguments, then the lines of --file; ValueError saying what to give if none."""
    from minilm.data import read_text

    _check_file("--file", args.file)
    texts = list(args.texts or [])
    blank = [number for number, text in enumerate(texts, start=1) if not text.strip()]
    if blank:  # a blank line of --file is skipped; a TEXT argument was given on purpose
        raise ValueError(f"TEXT {blank[0]} is empty: give {what}")
    if args.file is not None:  # read_text refuses a file that is not UTF-8, naming it
        # "\n" alone ends a line: str.splitlines also splits at U+2028, form feeds and NEL,
        # which text copied from web pages and PDFs holds inside a line
        texts += [line.strip() for line in read_text(args.file).split("\n") if line.strip()]
    if not texts:
        raise ValueError(f"--file {args.file!r} holds no text (only blank lines): give {what}"
                         if args.file is not None else
                         f"give {what}: TEXT [TEXT ...] or --file FILE")
    return texts


def command_embed(args) -> np.ndarray:
    """`minilm embed`: load the model and tokenizer, embed, print the similarities, maybe save."""
    from minilm.common.backends import check_model_class
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
    if args.output is not None:
        check_writable("--output", args.output)
    directory = Path(args.model) if args.model is not None else default_model_path()
    settings = sentence_settings(directory)
    model = load_pretrained(directory, backend=args.backend)
    # the model's kind first: a GPT-2 run has no vocab.txt to complain about
    check_model_class(model, "Encoder", "a sentence embedding", f"--model {str(directory)!r}")
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
    if args.resume is not None:  # its other flags were refused by minilm.cli.main
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
    print(f"{_steps_text(metrics['steps'])} in {metrics['wall_seconds']:.0f} s{speed}; run directory: "
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
    max_length = model.config.max_len if args.max_length is None else args.max_length
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
    from minilm.common.checks import positive_int

    positive_int("--max-examples", args.max_examples)
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
    from minilm.common.checks import number_in
    from minilm.compute import PRESET_MODELS, report

    for flag, value, interval in (("--tokens", args.tokens, "(0, inf)"),
                                  ("--peak-tflops", args.peak_tflops, "(0, inf)"),
                                  ("--mfu", args.mfu, "(0, 1]")):
        if value is not None:
            number_in(flag, value, interval)
    model, parts = PRESET_MODELS[args.preset]  # the heads as released, unless a flag says
    flags = {part: getattr(args, part) for part in ("mlm_head", "pooler")}
    parts = {**parts, **{part: value for part, value in flags.items() if value is not None}}
    peak_flops = None if args.peak_tflops is None else args.peak_tflops * 1e12
    print(report(ModelConfig.preset(args.preset), args.preset, model, args.tokens, args.batch,
                 args.seq_len, args.dtype, peak_flops, args.mfu, **parts))


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
    if not 1 <= args.dpi <= MAX_DPI:
        raise ValueError(f"--dpi must be in [1, {MAX_DPI}] (dots per inch of the picture), got "
                         f"{args.dpi}")
    check_writable("--out", args.out)
    model, tokenizer, where = load_encoder(args.model)
    tokens, maps = attention_maps(model, tokenizer, args.text, args.pair)
    rollout = attention_rollout(maps) if args.rollout else None
    text = args.text if args.pair is None else f"{args.text} | {args.pair}"
    plot_attention_maps(tokens, maps, rollout, title=f"attention of {Path(where).name}: "
                        f"\"{text}\"").savefig(args.out, dpi=args.dpi)
    print(f"{where}: {maps.shape[0]} layers x {maps.shape[1]} heads, {len(tokens)} tokens: "
          + " ".join(token if token.strip() else repr(token) for token in tokens))  # ' ': a space
    print(f"wrote {args.out}")
