"""The benchmark scripts run (tiny mode on the CPU) and print their tables.

Their numbers are only meaningful on a GPU (see benchmarks/RESULTS.md); here we check that
the scripts work end to end, so a GPU session does not find them broken.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_tiny_runs_every_part(tmp_path, capsys):
    gpu_check = _load("gpu_check")
    out = tmp_path / "gpu.json"
    res = gpu_check.main(["--tiny", "--device", "cpu", "--skip", "tests,infer", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "training (batch 16x48^2)" in printed
    assert [r["model"] for r in res["train"]] == list(gpu_check.MODELS)
    for row in res["train"]:
        assert row["reference"] > 0 and row["ours"] > 0
    assert res["sampler"]["pairs_per_s"] > 0
    assert res["fidelity"]["fp32"]["psnr"] > 0 and res["fidelity"]["bicubic"]["psnr"] > 20
    assert json.loads(out.read_text())["tiny"] is True


def test_bench_train_tiny_prints_table(capsys):
    bench = _load("bench_train")
    rows = bench.main(["--device", "cpu", "--tiny", "--steps", "2", "--warmup", "1"])
    assert {r["model"] for r in rows} == set(bench.MODELS)
    assert "ratio" in capsys.readouterr().out
