"""Compressing MiniLM-L6 fine-tuned for sentiment (seed §7): int8 quantization, head pruning and
distillation, measured in one run on this machine.

The teacher is MiniLM-L6 fine-tuned on the built-in sentiment task with the recipe of
benchmarks/finetune.md's "full FT (torch)" row (3 epochs, batch 16, lr 1e-4, max_length 48, seed
0); its run directory is cached in runs/compression/teacher (not committed) and reused while its
settings match. Then, with every model in eval mode:

    fp32                     the teacher (the PyTorch twin)
    int8 (ours)              `minilm.compress.quantize`: every Linear int8 (weights per output
                             channel, inputs per token, int32 sums); the NumPy twin is run too
    int8 (torch dynamic)     `torch.ao.quantization.quantize_dynamic` on Hugging Face's
                             BertForSequenceClassification holding the same weights: the default
                             (per-tensor weights) and per-channel weights
    pruned 25% / 50%         the least important heads (Michel et al.'s importance on the training
                             split, `minilm.interpret.head_importance`) removed for real; no
                             retraining. Beside them, random heads (mean of 3 draws)
    distilled / hard-label   a 3-block student initialised from the teacher's blocks 0, 2, 4,
                             trained 3 epochs on the training split with the distillation loss
                             (T = 2, alpha = 0.5) or on the labels alone (alpha = 0)

Columns: size (bytes of everything the model stores; for torch's dynamic models the size of
torch.save(state_dict), whose packed weights are not tensors), parameters (weights counted once,
int8 or float), the cosine of each sentence's embedding (mean-pooled last hidden states, as
all-MiniLM-L6-v2 makes them) to the fp32 teacher's, averaged over the 200 test sentences,
accuracy on them with its binomial standard error sqrt(p(1-p)/200), and sentences/s.

Speed: BLAS and torch pinned to one thread each; 64 test sentences (two batches of 32, cut to 48
tokens) per timing, every model timed once per round, rounds alternating between the models, the
median of 7 rounds (5 for the slower NumPy twin). The machine is shared and its load varies from
second to second: read the ratios to fp32 of one round's neighbours, not the absolute numbers.

    python benchmarks/compression.py [--threads 1] [--retrain] [--replot]
    python benchmarks/compression.py --smoke --out /tmp/compression-smoke

Writes compression.json, compression.md and compression.png into --out (benchmarks/results/ by
default); --replot redraws the md and png from the json there.

`--smoke` runs the same code in seconds (tests/test_benchmarks.py) on a tiny random BERT in place of
MiniLM-L6: its vocabulary, 6 blocks of 12 heads (so the student's blocks and every pruning fraction
exist) but width 24, saved as a Hugging Face directory that stands for the pretrained model (the
teacher's start and the sentence-embedding model); 16 sentences per label in each split, one epoch
for the teacher and the students, one timing round. Its numbers mean nothing; its md says so.
"""

from __future__ import annotations

from threads import pin_threads

if __name__ == "__main__":  # before NumPy loads its BLAS (not when another script imports this)
    pin_threads(default=1)

# isort: split
import argparse
import dataclasses
import io
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from finetune_strategies import binomial_se
from flags import add_out_and_smoke

from minilm.checkpoint import save_run
from minilm.common.backends import inference, is_torch_model, numpy_params, to_numpy
from minilm.compress import (
    DistillSettings,
    distill,
    heads_to_prune,
    model_bytes,
    prune_heads,
    quantize,
    random_heads,
    student_from_teacher,
)
from minilm.compress.rebuild import rebuilt
from minilm.config import ModelConfig
from minilm.embeddings import l2_normalize, mean_pool
from minilm.finetune import FinetuneSettings, finetune, load_finetuned
from minilm.interpret import head_importance
from minilm.numpy import Encoder
from minilm.pretrained import default_model_path, load_pretrained
from minilm.tasks import Task, load_task
from minilm.tokenizers import WordPieceTokenizer

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).resolve().parent.parent / "runs" / "compression" / "teacher"
TEACHER = FinetuneSettings(backend="torch", max_length=48, seed=0)
STUDENT_LAYERS = (0, 2, 4)
STUDENT = DistillSettings(temperature=2.0, alpha=0.5, epochs=3, max_length=48, seed=0)
PRUNE_FRACTIONS = (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9)
RANDOM_DRAWS = 3
TIMED_SENTENCES, TIMING_BATCH = 64, 32
TORCH_ROUNDS, NUMPY_ROUNDS = 7, 5
# --smoke (see the module docstring)
SMOKE_CONFIG = ModelConfig.preset("minilm-l6", d_model=24, d_ff=48, max_len=32)
SMOKE_SENTENCES, SMOKE_MAX_LENGTH = 16, 16  # per label and split; tokens


@dataclasses.dataclass
class Recipe:
    """What a run compresses and how: the task, the pretrained model, the teacher's run directory
    and recipe, the students' recipe, and the timing rounds (torch, NumPy)."""

    task: Task
    base_model: Path
    teacher_directory: Path
    teacher: FinetuneSettings
    student: DistillSettings
    rounds: tuple[int, int]


def full_recipe() -> Recipe:
    """MiniLM-L6 on the built-in sentiment task, the teacher cached in runs/compression/teacher."""
    return Recipe(load_task("sentiment"), default_model_path(), CACHE, TEACHER, STUDENT,
                  (TORCH_ROUNDS, NUMPY_ROUNDS))


def smoke_recipe(scratch: Path) -> Recipe:
    """The same steps on a tiny random BERT saved in `scratch` (with an MLM head, as BERT is
    pretrained), a few sentences, one epoch, one timing round."""
    tokenizer = WordPieceTokenizer.from_pretrained(default_model_path())
    base = save_run(scratch / "base", Encoder(SMOKE_CONFIG, seed=0, pooler=True), tokenizer)
    task = load_task("sentiment").first_of_each_label(SMOKE_SENTENCES, SMOKE_SENTENCES)
    teacher = dataclasses.replace(TEACHER, model=str(base), epochs=1, max_length=SMOKE_MAX_LENGTH)
    student = dataclasses.replace(STUDENT, epochs=1, max_length=SMOKE_MAX_LENGTH)
    return Recipe(task, base, scratch / "teacher", teacher, student, (1, 1))


# ---------------------------------------------------------------- the models


def teacher_directory(recipe: Recipe, retrain: bool) -> Path:
    """The recipe's fine-tuning run, trained again if asked, if absent or if its settings differ."""
    directory = recipe.teacher_directory
    metrics = directory / "metrics.json"
    if (not retrain and metrics.is_file()
            and json.loads(metrics.read_text())["settings"] == dataclasses.asdict(recipe.teacher)):
        print(f"teacher: reusing {directory}", flush=True)
        return directory
    print(f"teacher: fine-tuning into {directory}", flush=True)
    finetune(recipe.teacher, out_dir=directory, progress=True, task=recipe.task)
    return directory


def hugging_face_twin(model):
    """transformers' BertForSequenceClassification (for a classifier) or BertModel (for a bare
    encoder) with the weights of our torch model."""
    import transformers

    config = model.config
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff, hidden_act="gelu", max_position_embeddings=config.max_len,
        type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
        num_labels=getattr(model, "num_labels", 2))
    state = model.state_dict()
    if hasattr(model, "num_labels"):
        hf = transformers.BertForSequenceClassification(hf_config)
    else:  # BertModel's names lack the "bert." prefix
        state = {name.removeprefix("bert."): value for name, value in state.items()}
        hf = transformers.BertModel(hf_config, add_pooling_layer="pooler.dense.weight" in state)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in name for name in missing), (missing, unexpected)
    return hf.eval()


def torch_dynamic(hf, per_channel: bool):
    """torch's own dynamic int8 quantization of every nn.Linear of the Hugging Face model."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear: qconfig},
                                                      dtype=torch.qint8)


def serialized_bytes(model) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def weight_count(model) -> int:
    """Every stored weight once, float or int8 (quantization scales not counted)."""
    return sum(value.size for name, value in numpy_params(model).items()
               if not name.endswith(".scale"))


def torch_weight_count(model) -> int:
    """Every weight of a transformers model once, those that torch's dynamic int8 Linears keep
    packed outside `parameters()` included (quantization scales not counted)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    packed = [tensor for module in model.modules() if isinstance(module, DynamicLinear)
              for tensor in (module.weight(), module.bias()) if tensor is not None]
    return sum(p.numel() for p in model.parameters()) + sum(t.numel() for t in packed)


# ---------------------------------------------------------------- what each row measures


class Row:
    """One model of the table: how to run it (ours: a minilm model; hf: a transformers model)."""

    def __init__(self, name, model, kind="ours", numpy_model=None):
        self.name, self.model, self.kind, self.numpy_model = name, model, kind, numpy_model

    def logits_and_hidden(self, batch):
        inputs = {key: torch.as_tensor(batch[key]) for key in
                  ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            if self.kind == "hf":
                out = self.model(**inputs, output_hidden_states=True)
                return to_numpy(out.logits), to_numpy(out.hidden_states[-1])
            hidden = self.model.encoder.encode(*inputs.values())
            return to_numpy(self.model.head_forward(hidden)), to_numpy(hidden)

    def forward(self, batch):
        inputs = [torch.as_tensor(batch[key]) for key in
                  ("input_ids", "attention_mask", "token_type_ids")]
        with torch.no_grad():
            return self.model(*inputs)


def evaluate(row: Row, batches, labels, reference_embeddings=None) -> dict:
    """Accuracy (with its s.e.) and sentence embeddings of the test sentences."""
    logits, embeddings = [], []
    for batch in batches:
        batch_logits, hidden = row.logits_and_hidden(batch)
        logits.append(batch_logits)
        embeddings.append(l2_normalize(mean_pool(hidden, batch["attention_mask"])))
    logits, embeddings = np.concatenate(logits), np.concatenate(embeddings)
    accuracy = float(np.mean(logits.argmax(-1) == labels))
    result = {"accuracy": accuracy, "accuracy_se": binomial_se(accuracy, len(labels)),
              "predictions": logits.argmax(-1), "embeddings": embeddings}
    if reference_embeddings is not None:
        result["cosine"] = float(np.mean(np.sum(embeddings * reference_embeddings, axis=-1)))
    return result


def sentences_per_second(timed: dict, batches, rounds: int) -> dict:
    """Median over `rounds` of each model's time for `batches`, models alternating each round."""
    times = {name: [] for name in timed}
    for _ in range(rounds):
        for name, run in timed.items():
            started = time.perf_counter()
            for batch in batches:
                run(batch)
            times[name].append(time.perf_counter() - started)
    count = sum(len(batch["input_ids"]) for batch in batches)
    return {name: count / float(np.median(seconds)) for name, seconds in times.items()}


def last_hidden_states(model, batch) -> np.ndarray:
    """(B, T, C) float64 of a minilm encoder (either twin) or a transformers BertModel."""
    inputs = [batch[key] for key in ("input_ids", "attention_mask", "token_type_ids")]
    if is_torch_model(model) and not hasattr(model, "encode"):
        with torch.no_grad():
            hidden = model(*(torch.as_tensor(x) for x in inputs)).last_hidden_state
    else:
        with inference(model):
            hidden = model.encode(*inputs)
    return to_numpy(hidden).astype(np.float64)


def hidden_state_errors(reference, candidates: dict, batches) -> dict:
    """For the pretrained sentence-embedding MiniLM (not fine-tuned): max and mean |error| of the
    last hidden states (real tokens only) and the embeddings' cosine (mean, min) to fp32.
    candidates: name -> (model, its size in bytes)."""
    report = {}
    for name, (model, size) in candidates.items():
        errors, cosines = [], []
        for batch in batches:
            ours = last_hidden_states(model, batch)
            theirs = last_hidden_states(reference, batch)
            real = batch["attention_mask"].astype(bool)
            errors.append(np.abs(ours - theirs)[real])
            cosines.append(np.sum(l2_normalize(mean_pool(ours, batch["attention_mask"]))
                                  * l2_normalize(mean_pool(theirs, batch["attention_mask"])), -1))
        errors, cosines = np.concatenate(errors), np.concatenate(cosines)
        report[name] = {"max_abs_error": float(errors.max()), "mean_abs_error": float(errors.mean()),
                        "cosine_mean": float(cosines.mean()), "cosine_min": float(cosines.min()),
                        "bytes": size}
    return report


# ---------------------------------------------------------------- the run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--retrain", action="store_true", help="fine-tune the teacher again")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw compression.md and compression.png from compression.json")
    add_out_and_smoke(parser, RESULTS, smoke="a tiny random BERT, a few sentences")
    args = parser.parse_args(argv)
    if args.replot:
        result = json.loads((args.out / "compression.json").read_text())
        write_table(result, args.out / "compression.md")
        plot(result, args.out / "compression.png")
        return
    torch.set_num_threads(args.threads)
    if args.smoke:
        with tempfile.TemporaryDirectory() as scratch:
            compress(smoke_recipe(Path(scratch)), args)
    else:
        compress(full_recipe(), args)


def compress(recipe: Recipe, args):
    """Every measurement of the module docstring, for `recipe`; the results into args.out."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    def phase(what):
        print(f"[{time.perf_counter() - started:5.0f} s] {what}", flush=True)

    task = recipe.task
    teacher, tokenizer, _ = load_finetuned(teacher_directory(recipe, args.retrain),
                                           backend="torch")

    def batches_of(texts, size=32):
        return [tokenizer(texts[i:i + size], truncation=True, max_length=recipe.teacher.max_length)
                for i in range(0, len(texts), size)]

    test_batches = batches_of(task.test_texts)
    labels = task.test_labels
    rows = [Row("fp32", teacher, numpy_model=rebuilt(teacher, teacher.config,
                                                     numpy_params(teacher), backend="numpy"))]
    reference = evaluate(rows[0], test_batches, labels)

    # int8
    int8 = Row("int8 (ours)", quantize(teacher), numpy_model=quantize(rows[0].numpy_model))
    hf = hugging_face_twin(teacher)
    hf_fp32 = Row("fp32 (Hugging Face)", hf, kind="hf")
    rows += [int8, Row("int8 (torch dynamic, per-tensor)", torch_dynamic(hf, False), kind="hf"),
             Row("int8 (torch dynamic, per-channel)", torch_dynamic(hf, True), kind="hf")]

    # pruning
    phase("head importance on the training split")
    importance = head_importance(teacher, tokenizer, task.train_texts, task.train_labels,
                                 max_length=recipe.teacher.max_length)
    n_layers, n_heads = importance.shape
    curve = {"fractions": list(PRUNE_FRACTIONS), "importance": [], "random": []}
    pruned_rows = {}
    for fraction in PRUNE_FRACTIONS:
        pruned = prune_heads(teacher, heads_to_prune(importance, fraction))
        scored = evaluate(Row("", pruned), test_batches, labels)
        curve["importance"].append(scored["accuracy"])
        if fraction in (0.25, 0.5):
            pruned_rows[fraction] = Row(f"pruned {fraction:.0%} (least important heads)", pruned)
        draws = [evaluate(Row("", prune_heads(teacher, random_heads(
            n_layers, n_heads, fraction, np.random.default_rng(seed)))), test_batches,
            labels)["accuracy"] for seed in range(RANDOM_DRAWS)]
        curve["random"].append(draws)
        print(f"pruned {fraction:.0%}: importance {scored['accuracy']:.3f}, random "
              f"{np.mean(draws):.3f} {draws}", flush=True)
    rows += list(pruned_rows.values())

    # distillation
    distillation = {}
    for name, alpha in (("distilled student", recipe.student.alpha), ("hard-label student", 0.0)):
        student = student_from_teacher(teacher, STUDENT_LAYERS)
        settings = dataclasses.replace(recipe.student, alpha=alpha)
        phase(f"{name}: {len(STUDENT_LAYERS)} blocks, alpha {alpha}")
        metrics = distill(student, teacher, tokenizer, task, settings, progress=True)
        distillation[name] = {key: metrics[key] for key in ("eval_accuracy", "loss_curve",
                                                            "train_seconds", "settings")}
        rows.append(Row(f"{name} ({len(STUDENT_LAYERS)} of {n_layers} blocks)", student.eval()))
    for row in rows[1:]:
        if row.kind == "ours" and row.numpy_model is None:
            row.numpy_model = rebuilt(row.model, row.model.config, numpy_params(row.model),
                                      backend="numpy")

    # accuracy, embeddings, size
    table = []
    for row in rows:
        scored = evaluate(row, test_batches, labels, reference["embeddings"])
        students = "student" in row.name
        table.append({
            "name": row.name,
            "bytes": serialized_bytes(row.model) if row.kind == "hf" else model_bytes(row.model),
            "parameters": (weight_count(row.model) if row.kind == "ours"
                           else torch_weight_count(row.model)),
            "cosine": None if students else scored["cosine"],
            "accuracy": scored["accuracy"], "accuracy_se": scored["accuracy_se"],
            "agree_with_fp32": float(np.mean(scored["predictions"] == reference["predictions"])),
        })
    numpy_int8_predictions = np.concatenate([
        predictions_of(int8.numpy_model, batch) for batch in test_batches])
    torch_int8 = evaluate(int8, test_batches, labels)["predictions"]

    # speed
    timed_batches = batches_of(task.test_texts[:TIMED_SENTENCES], TIMING_BATCH)
    torch_rounds, numpy_rounds = recipe.rounds
    phase("timing (torch)")
    torch_speed = sentences_per_second(
        {row.name: row.forward for row in [*rows, hf_fp32]}, timed_batches, torch_rounds)
    phase("timing (NumPy)")
    numpy_speed = sentences_per_second(
        {row.name: (lambda batch, m=row.numpy_model: predictions_of(m, batch))
         for row in rows if row.numpy_model is not None}, timed_batches, numpy_rounds)
    for entry in table:
        entry["torch_sentences_per_second"] = torch_speed[entry["name"]]
        entry["numpy_sentences_per_second"] = numpy_speed.get(entry["name"])

    # the quantized sentence-embedding model (pretrained MiniLM, not fine-tuned)
    phase("quantization errors of the pretrained sentence-embedding model")
    pretrained = load_pretrained(recipe.base_model, backend="torch", mlm_head=False).eval()
    ours_torch = quantize(pretrained)
    ours_numpy = quantize(load_pretrained(recipe.base_model, backend="numpy", mlm_head=False))
    hf_base = hugging_face_twin(pretrained)
    candidates = {"int8 (ours, torch)": (ours_torch, model_bytes(ours_torch)),
                  "int8 (ours, NumPy)": (ours_numpy, model_bytes(ours_numpy))}
    for per_channel, label in ((False, "per-tensor"), (True, "per-channel")):
        dynamic = torch_dynamic(hf_base, per_channel)
        candidates[f"int8 (torch dynamic, {label})"] = (dynamic, serialized_bytes(dynamic))
    embedding_errors = hidden_state_errors(pretrained, candidates, test_batches)

    result = {
        "setup": {"smoke": args.smoke, "teacher": dataclasses.asdict(recipe.teacher),
                  "student": dataclasses.asdict(recipe.student),
                  "student_layers": list(STUDENT_LAYERS), "threads": args.threads,
                  "cpu_count": os.cpu_count(), "load_average_start": load_before,
                  "load_average_end": os.getloadavg()[0], "processor": platform.processor(),
                  "numpy": np.__version__, "torch": torch.__version__,
                  "num_test": len(labels), "wall_seconds": time.perf_counter() - started,
                  "hf_fp32_torch_sentences_per_second": torch_speed[hf_fp32.name],
                  "hf_fp32_serialized_bytes": serialized_bytes(hf),
                  "numpy_int8_agrees_with_torch_int8": float(np.mean(
                      numpy_int8_predictions == torch_int8))},
        "rows": table,
        "head_importance": importance.tolist(),
        "pruning_curve": curve,
        "distillation": distillation,
        "pretrained_quantization": embedding_errors,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compression.json").write_text(json.dumps(result, indent=1) + "\n")
    write_table(result, args.out / "compression.md")
    plot(result, args.out / "compression.png")
    print((args.out / "compression.md").read_text())


def predictions_of(numpy_model, batch) -> np.ndarray:
    inputs = [batch[key] for key in ("input_ids", "attention_mask", "token_type_ids")]
    with inference(numpy_model):
        return numpy_model.forward(*inputs).argmax(-1)


# ---------------------------------------------------------------- the report


def write_table(result, path):
    rows, setup = result["rows"], result["setup"]
    fp32 = rows[0]
    lines = []
    if setup["smoke"]:
        lines += [(f"**Smoke run** (`--smoke`): a tiny random BERT of width "
                   f"{SMOKE_CONFIG.d_model} for MiniLM-L6, {setup['num_test']} test sentences, one "
                   "epoch, one timing round. It checks the script's code paths; its numbers mean "
                   "nothing."), ""]
    lines += [("| model | size (MB) | parameters | embedding cosine to fp32 | sentiment accuracy | "
               "agrees with fp32 | sentences/s, torch (x fp32) | sentences/s, NumPy (x fp32) |"),
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        parameters = f"{row['parameters'] / 1e6:.2f}M"
        cosine = "—" if row["cosine"] is None else f"{row['cosine']:.4f}"
        torch_speed = (f"{row['torch_sentences_per_second']:.0f} "
                       f"({row['torch_sentences_per_second'] / fp32['torch_sentences_per_second']:.2f})")
        numpy_speed = "—"
        if row["numpy_sentences_per_second"] is not None:
            ratio = row["numpy_sentences_per_second"] / fp32["numpy_sentences_per_second"]
            numpy_speed = f"{row['numpy_sentences_per_second']:.1f} ({ratio:.2f})"
        lines.append(f"| {row['name']} | {row['bytes'] / 1e6:.1f} | {parameters} | {cosine} | "
                     f"{row['accuracy']:.3f} ± {row['accuracy_se']:.3f} | "
                     f"{row['agree_with_fp32']:.1%} | {torch_speed} | {numpy_speed} |")
    curve = result["pruning_curve"]
    lines += ["", ("Accuracy after pruning, without retraining (random: mean of "
              f"{RANDOM_DRAWS} draws):"), "",
              "| heads removed | " + " | ".join(f"{f:.0%}" for f in curve["fractions"]) + " |",
              "|---|" + "---|" * len(curve["fractions"]),
              "| least important | " + " | ".join(f"{a:.3f}" for a in curve["importance"]) + " |",
              "| random | " + " | ".join(f"{np.mean(a):.3f}" for a in curve["random"]) + " |"]
    errors = result["pretrained_quantization"]
    lines += ["", ("int8 on the pretrained sentence-embedding MiniLM-L6 (not fine-tuned), "
                   f"{setup['num_test']} test sentences: last hidden states (real tokens) and "
                   "embeddings against fp32:"), "",
              "| model | size (MB) | max abs error | mean abs error | cosine mean | cosine min |",
              "|---|---|---|---|---|---|"]
    for name, e in errors.items():
        lines.append(f"| {name} | {e['bytes'] / 1e6:.1f} | {e['max_abs_error']:.3f} | "
                     f"{e['mean_abs_error']:.4f} | {e['cosine_mean']:.5f} | "
                     f"{e['cosine_min']:.5f} |")
    note = (
        f"One run of benchmarks/compression.py ({setup['wall_seconds'] / 60:.1f} min), "
        f"{setup['threads']} thread(s) for BLAS and torch on a shared {setup['cpu_count']}-core "
        f"CPU (load average {setup['load_average_start']:.1f} at the start, "
        f"{setup['load_average_end']:.1f} at the end): speeds are medians of alternating rounds, "
        f"noisy; read the ratios. Accuracy on the {setup['num_test']} test sentences (other domains "
        "and words than training), ± the binomial standard error. Sizes: bytes of every stored "
        "array (int8 weights, float32 scales, float32 rest); torch dynamic: torch.save of its "
        "state_dict (the fp32 Hugging Face model serialises to "
        f"{setup['hf_fp32_serialized_bytes'] / 1e6:.1f} MB). Parameters: every weight once, int8 "
        "or float (torch dynamic: the int8 weights its Linears pack outside parameters() "
        "included). The NumPy int8 twin predicts the same label as the torch int8 twin on "
        f"{setup['numpy_int8_agrees_with_torch_int8']:.1%} of the test sentences. Students: "
        "embedding cosine not given (their last hidden state is a different layer's). Hugging "
        f"Face's fp32 model: {setup['hf_fp32_torch_sentences_per_second']:.0f} sentences/s."
    )
    path.write_text("\n".join([*lines, "", note]) + "\n")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (heat, curve_ax, speed) = plt.subplots(1, 3, figsize=(20, 4.8),
                                                gridspec_kw={"width_ratios": [1.3, 1, 1]})
    importance = np.asarray(result["head_importance"])
    image = heat.imshow(importance, cmap="Blues", vmin=0)
    heat.set_xticks(range(importance.shape[1]))
    heat.set_yticks(range(importance.shape[0]))
    heat.set_xlabel("head")
    heat.set_ylabel("layer")
    heat.set_title("head importance (|dL/dgate|, per-layer L2-normalised)")
    fig.colorbar(image, ax=heat, shrink=0.8)

    curve = result["pruning_curve"]
    fractions = np.asarray(curve["fractions"]) * 100
    fp32 = result["rows"][0]
    random = np.asarray(curve["random"])
    curve_ax.plot(fractions, curve["importance"], "o-", label="least important heads first")
    curve_ax.errorbar(fractions, random.mean(1), yerr=[random.mean(1) - random.min(1),
                                                       random.max(1) - random.mean(1)],
                      fmt="s--", capsize=3, label=f"random heads (mean, range of {RANDOM_DRAWS})")
    curve_ax.axhline(fp32["accuracy"], color="k", lw=1, label="unpruned")
    curve_ax.axhspan(fp32["accuracy"] - fp32["accuracy_se"], fp32["accuracy"] + fp32["accuracy_se"],
                     color="k", alpha=0.1)
    curve_ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
    curve_ax.set_xlabel("attention heads removed (%)")
    curve_ax.set_ylabel("test accuracy")
    curve_ax.set_title("pruning without retraining")
    curve_ax.legend(fontsize=8)

    markers = "osD^v<>ph*"
    for row, marker in zip(result["rows"], markers):
        speed.errorbar(row["torch_sentences_per_second"], row["accuracy"],
                       yerr=row["accuracy_se"], fmt=marker, capsize=3, ms=7,
                       label=f"{row['name']}, {row['bytes'] / 1e6:.0f} MB")
    speed.set_xlabel("sentences/s (torch, 1 thread; median of alternating rounds)")
    speed.set_ylabel("test accuracy (± s.e.)")
    speed.set_title("accuracy against speed")
    speed.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
