"""The GPU run's scripts on the CPU: benchmarks/gpu_check.sh, attention.py and gpu_steps.py.

Issue 12's GPU run is one call of `bash benchmarks/gpu_check.sh` with a few minutes of an H200, so
none of its code may meet a typo there first. `GPU_CHECK_SMOKE=1` runs the same shell script end to
end here: the two benchmarks with `--smoke` (the kernel under the Triton interpreter, tiny shapes)
into a temporary folder, and the copy of the result files to $OUT. The tests check what it wrote,
that benchmarks/results/ is left alone, and the parts whose GPU behaviour the smoke run cannot
show: the targets' verdicts (met / missed by / not measured) on hand-made records, and the checks
that gpu_steps.py makes before it times anything.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import load_benchmark

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RESULT_FILES = ["attention.json", "attention.md", "attention.png", "gpu_check.log",
                "gpu_steps.json", "gpu_steps.md", "gpu_tests.log"]
IMPLEMENTATIONS = ["triton", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math"]


def official_results():
    """The GPU run's own file names in benchmarks/results/: no smoke run may write them."""
    return sorted(p.name for p in (BENCHMARKS / "results").iterdir()
                  if p.name.startswith(("attention.", "gpu_")))


def run(command, tmp_path, **env):
    """A subprocess with the interpreter's environment plus `env`; TMPDIR inside tmp_path."""
    environment = {**os.environ, "TMPDIR": str(tmp_path), **env}
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO,
                          timeout=300, check=False)


# ---------------------------------------------------------------- gpu_check.sh, end to end


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh, with $OUT set: (result, $OUT, results)."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    before = official_results()
    result = run(["bash", str(BENCHMARKS / "gpu_check.sh")], tmp, GPU_CHECK_SMOKE="1",
                 GPU_CHECK_PYTHON=sys.executable, OUT=str(tmp / "out"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert official_results() == before, "the smoke run wrote into benchmarks/results/"
    results = [p for p in tmp.iterdir() if p.name.startswith("tmp.")]  # mktemp -d's folder
    assert len(results) == 1, results
    return result, tmp / "out", results[0]


def test_gpu_check_smoke_runs_every_step_and_copies_only_the_result_files(smoke_run):
    result, out, results = smoke_run
    assert sorted(os.listdir(out)) == sorted(RESULT_FILES)
    assert sorted(os.listdir(results)) == sorted(RESULT_FILES)
    log = (out / "gpu_check.log").read_text()
    for line in ("SMOKE RUN on the CPU", "== versions", "| triton ", "== gpu tests",
                 "== benchmarks/attention.py, time budget", "== benchmarks/gpu_steps.py",
                 "gpu tests exit 0, attention.py exit 0, gpu_steps.py exit 0"):
        assert line in log, line
    assert "the gpu tests need a GPU, not run" in (out / "gpu_tests.log").read_text()
    assert f"copied to {out}" in result.stdout


def test_attention_smoke_writes_records_skips_tables_and_verdicts(smoke_run):
    _, out, _ = smoke_run
    report = json.loads((out / "attention.json").read_text())
    assert report["smoke"] and report["not_run"] == []
    shapes = {(r["causal"], r["seq_len"]) for r in report["records"]}
    assert shapes == {(False, 16), (False, 32), (True, 16), (True, 32)}
    by_impl = {name: [r for r in report["records"] if r["impl"] == name]
               for name in IMPLEMENTATIONS}
    for name in ("triton", "sdpa-flash"):  # both run on the CPU
        for r in by_impl[name]:
            assert r["peak_mib"] is None  # the CPU keeps no peak count
            for mode in ("forward", "backward", "forward_backward"):
                assert r[f"{mode}_ms"] > 0 and r[f"{mode}_tflops"] > 0
    for r in by_impl["sdpa-flash"]:  # the same attention as the kernel, to bf16 rounding
        assert 0 <= r["max_abs_diff_vs_triton"] < 0.05
    for name in ("sdpa-cudnn", "sdpa-efficient"):  # refuse CPU tensors: recorded with the reason
        assert all(r["skipped"].startswith("RuntimeError: ") for r in by_impl[name])
    for r in by_impl["sdpa-math"]:  # runs up to the smoke sweep's math_max_len, 16
        if r["seq_len"] == 16:
            assert r["forward_ms"] > 0
        else:
            assert r["skipped"].startswith("MATH materialises N x N scores")
    assert [t["status"] for t in report["targets"]] == ["not measured"] * 3

    text = (out / "attention.md").read_text()
    assert text.startswith("# Attention") and "**Smoke run**" in text
    for heading in ("## Issue 12's targets", "## Forward TFLOP/s, bfloat16",
                    "## Forward + backward TFLOP/s, bfloat16",
                    "## triton / sdpa-flash TFLOP/s, bfloat16", "## Peak memory", "## Skipped"):
        assert heading in text, heading
    assert text.count(": not measured\n") == 3
    assert "- sdpa-cudnn (4 shapes" in text and "- sdpa-math (2 shapes" in text
    assert "| 16 | yes | 32 | " in text
    assert (out / "attention.png").read_bytes().startswith(b"\x89PNG")


def test_gpu_steps_smoke_checks_both_arms_before_timing_them(smoke_run):
    _, out, _ = smoke_run
    report = json.loads((out / "gpu_steps.json").read_text())
    assert [(r["workload"], r["batch"], r["seq_len"]) for r in report["records"]] == [
        ("MiniLM-L6 sequence classifier", 2, 16), ("demo Decoder", 2, 16)]
    for r in report["records"]:
        check = r["check"]
        assert check["loss_close"] and check["kernel_ran_only_in_triton_arm"]
        assert check["triton"]["kernel_launches"] == {"forward": 1, "backward": 1}  # one layer
        assert check["sdpa"]["kernel_launches"] == {"forward": 0, "backward": 0}
        assert r["config"]["dropout"] == 0.0
        assert all(len(times) == 2 for times in r["step_seconds"].values())
        assert r["tokens_per_second"]["triton"] > 0 and r["triton_over_sdpa"] > 0
    text = (out / "gpu_steps.md").read_text()
    assert "**Smoke run**" in text
    assert "| MiniLM-L6 sequence classifier | 2 x 16 |" in text
    assert "| demo Decoder | 2 x 16 |" in text


# ---------------------------------------------------------------- the scripts' other paths


@pytest.mark.parametrize("script", ["attention", "gpu_steps"])
def test_a_spent_time_budget_records_what_was_not_run(script, tmp_path):
    result = run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", "--time-budget",
                  "0", "--out", str(tmp_path)], tmp_path, TRITON_INTERPRET="1")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / f"{script}.json").read_text())
    text = (tmp_path / f"{script}.md").read_text()
    assert report["records"] == []
    if script == "attention":
        assert len(report["not_run"]) == 4
        assert "- bfloat16 D=16 causal N=32" in text.split("## Not run")[1]
        assert text.count(": not measured\n") == 3
    else:
        assert report["not_run"] == [["MiniLM-L6 sequence classifier", 2, 16],
                                     ["demo Decoder", 2, 16]]
        assert text.endswith("MiniLM-L6 sequence classifier 2 x 16, demo Decoder 2 x 16\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal of a machine without CUDA")
def test_gpu_check_without_a_gpu_stops_before_writing_anything(tmp_path):
    before = official_results()
    result = run(["bash", str(BENCHMARKS / "gpu_check.sh")], tmp_path,
                 GPU_CHECK_PYTHON=sys.executable, OUT=str(tmp_path / "out"))
    assert result.returncode == 2
    assert "see a CUDA GPU" in result.stderr
    assert official_results() == before and not (tmp_path / "out").exists()


def test_device_selection_refuses_what_cannot_run(monkeypatch):
    attention = load_benchmark("attention")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(SystemExit, match="set TRITON_INTERPRET=1"):
        attention.select_device(smoke=True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(SystemExit, match="unset TRITON_INTERPRET"):
        attention.select_device(smoke=False)
    assert attention.select_device(smoke=True) == "cpu"


# ---------------------------------------------------------------- verdicts from records


def record(impl, head_dim, causal, seq_len, tflops=None, peak_mib=None, batch=1, skipped=None):
    r = {"impl": impl, "dtype": "bfloat16", "head_dim": head_dim, "causal": causal,
         "seq_len": seq_len, "batch": batch}
    if skipped:
        return {**r, "skipped": skipped}
    return {**r, "forward_tflops": tflops, "forward_backward_tflops": tflops,
            "peak_mib": peak_mib}


def forward_target(attention, records):
    return attention.target_verdicts(records)[0]


def test_forward_target_met_missed_and_partly_measured():
    attention = load_benchmark("attention")
    fast = [record(impl, 128, False, n, tflops) for n in (4096, 8192, 16384)
            for impl, tflops in (("triton", 500.0), ("sdpa-flash", 480.0))]
    assert forward_target(attention, fast)["verdict"] == "met"

    slow = [r if (r["impl"], r["seq_len"]) != ("triton", 4096) else {**r, "forward_tflops": 430.0}
            for r in fast]
    verdict = forward_target(attention, slow)
    assert verdict["status"] == "missed"
    assert verdict["verdict"] == ("missed by D=128 non-causal N=4096: 0.90x sdpa-flash, 0.10 "
                                  "below 1.0x; D=128 non-causal N=4096: 430.0 TFLOP/s, 20.0 "
                                  "below 450")

    partial = [r for r in fast if r["seq_len"] == 4096] + [
        record("triton", 128, False, 8192, 500.0),
        record("sdpa-flash", 128, False, 8192, skipped="RuntimeError: no kernel")]
    verdict = forward_target(attention, partial)
    assert verdict["status"] == "met where measured"
    assert verdict["not_measured"] == [
        "D=128 non-causal N=8192 (sdpa-flash skipped: RuntimeError: no kernel)",
        "D=128 non-causal N=16384 (triton not run)"]


def test_training_target_covers_both_head_dims_causal_and_not():
    attention = load_benchmark("attention")
    records = [record(impl, d, c, n, 300.0) for impl in ("triton", "sdpa-flash")
               for d in (64, 128) for c in (False, True) for n in (2048, 4096, 8192, 16384)]
    assert attention.target_verdicts(records)[1]["verdict"] == "met"
    records[0] = {**records[0], "forward_backward_tflops": 270.0}  # triton D=64 non-causal 2k
    verdict = attention.target_verdicts(records)[1]
    assert verdict["shortfalls"] == ["D=64 non-causal N=2048: 0.90x sdpa-flash, 0.10 below 1.0x"]
    assert len(verdict["measured"]) == 16


def test_memory_target_judges_the_growth_of_the_peak_per_sequence():
    attention = load_benchmark("attention")
    tokens = 16384
    lens = (512, 2048, 8192)
    # B * N fixed: a linear implementation has the same peak at every N, a quadratic one a peak
    # per sequence that grows as N^2
    linear = [record("triton", d, c, n, 1.0, peak_mib=100.0, batch=tokens // n)
              for d in (64, 128) for c in (False, True) for n in lens]
    quadratic = [record("sdpa-math", 64, False, n, 1.0, peak_mib=n * 0.1, batch=tokens // n)
                 for n in lens]
    verdict = attention.target_verdicts(linear + quadratic)[2]
    assert verdict["verdict"] == "met" and len(verdict["measured"]) == 4
    d64 = next(point for point in verdict["measured"] if point.startswith("D=64 non-causal"))
    assert d64 == ("D=64 non-causal: slope 1.00 over N 512..8192, 6.2..6.2 KiB per token "
                   "(sdpa-math: slope 2.00)")
    growing = [{**r, "peak_mib": r["seq_len"] * 0.1} if r["head_dim"] == 128 else r
               for r in linear]
    verdict = attention.target_verdicts(growing)[2]
    assert verdict["status"] == "missed"
    assert verdict["shortfalls"][0] == "D=128 non-causal: slope 2.00, 0.80 above 1.2"
    assert attention.target_verdicts([])[2]["status"] == "not measured"


# ---------------------------------------------------------------- gpu_steps' check


class FakeStep:
    """A training step that returns `loss` and launches the kernel `launches` times."""

    def __init__(self, loss, launches):
        self.loss, self.launches = loss, launches

    def __call__(self, *batch, lr):
        from minilm.kernels.flash_attention import LAUNCHES

        LAUNCHES["forward"] += self.launches
        LAUNCHES["backward"] += self.launches
        return self.loss


def test_gpu_steps_check_catches_different_losses_and_a_kernel_that_did_not_run():
    gpu_steps = load_benchmark("gpu_steps")
    good = gpu_steps.check_step({"triton": FakeStep(2.000, 3), "sdpa": FakeStep(2.001, 0)},
                                batch=(), n_layers=3)
    assert good["loss_close"] and good["kernel_ran_only_in_triton_arm"]
    bad = gpu_steps.check_step({"triton": FakeStep(2.1, 0), "sdpa": FakeStep(2.0, 0)},
                               batch=(), n_layers=3)
    assert not bad["loss_close"] and not bad["kernel_ran_only_in_triton_arm"]
