"""benchmarks/bench_infer.py runs on the CPU (tiny) and prints its table (numbers: GPU only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_infer_tiny_prints_table(capsys):
    spec = importlib.util.spec_from_file_location("bench_infer", ROOT / "benchmarks/bench_infer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--tiny", "--device", "cpu", "--repeats", "1", "--warmup", "0",
                       "--models", "edsr_x4"])  # fmt: skip
    out = capsys.readouterr().out
    assert "17x26 (tiny)" in out and "EDSR+" in out
    assert {(r["variant"], r["ensemble"]) for r in rows} == {
        ("reference", False),
        ("reference", True),
        ("cl", False),
        ("cl", True),
    }
    # fp32 channels_last + batched ensemble computes the same image as the reference.
    assert all(r["ms"] > 0 and r["vs_fp32_db"] > 60 for r in rows)
