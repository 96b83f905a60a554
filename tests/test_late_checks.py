"""Checks made before the work, not after it (issue 14 item 13, and item 7's make-dataset
decompression bomb): each a test that failed on the old code.

- ``evaluate --csv`` to an existing file (no ``--overwrite``), a folder or a missing folder
  is refused before the evaluation, not after it (which lost the scores);
- ``make-dataset`` removes the ``.make-dataset-<hex>`` work folders that killed runs left
  (never those of a process still running);
- ``make-dataset`` on a PNG claiming 20000 x 20000 pixels: one line, no
  DecompressionBombError traceback.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from edsr_lab.cli import main
from edsr_lab.io import save_image
from edsr_lab.models import EDSR, save_checkpoint


def _images(folder: Path, n: int = 2, size: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        save_image(torch.rand(3, size, size, generator=g), folder / f"{i}.png")
    return folder


@pytest.fixture
def evaluation(tmp_path, monkeypatch):
    """A tiny checkpoint, a folder of HR images, and a spy on the evaluation."""
    torch.manual_seed(0)
    save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2).eval(), tmp_path / "m.pt")
    hr = _images(tmp_path / "hr")
    import edsr_lab.evaluate

    calls = []
    real = edsr_lab.evaluate.evaluate_sets
    monkeypatch.setattr(
        edsr_lab.evaluate, "evaluate_sets", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    argv = ["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(hr),
            "--no-progress", "--device", "cpu"]  # fmt: skip
    return argv, calls


def test_evaluate_writes_the_csv_when_the_target_is_fine(tmp_path, evaluation, capsys):
    argv, calls = evaluation
    assert main([*argv, "--csv", str(tmp_path / "scores.csv")]) == 0
    assert len(calls) == 1 and (tmp_path / "scores.csv").read_text().count("\n") == 3


@pytest.mark.parametrize(
    "target, message",
    [
        ("exists.csv", "exists; pass --overwrite to replace it"),
        ("folder", "is a folder; give a file name"),
        ("missing/scores.csv", "does not exist; create it first"),
        ("exists.csv/scores.csv", "exists.csv' is a file, not a folder"),
    ],
    ids=["existing-file", "folder", "missing-folder", "inside-a-file"],
)
def test_evaluate_checks_the_csv_target_before_the_evaluation(
    tmp_path, evaluation, capsys, target, message
):
    argv, calls = evaluation
    (tmp_path / "exists.csv").write_text("the user's scores\n")
    (tmp_path / "folder").mkdir()
    code = main([*argv, "--csv", str(tmp_path / target)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert calls == []  # refused before any image was scored
    assert (tmp_path / "exists.csv").read_text() == "the user's scores\n"
    assert not (tmp_path / "missing").exists()


def test_evaluate_refuses_the_meta_device_before_the_evaluation(evaluation, capsys):
    argv, calls = evaluation
    code = main([*argv, "--device", "meta"])
    err = capsys.readouterr().err
    assert code == 2 and "device 'meta' holds shapes but no data" in err, err
    assert err.count("\n") == 1 and calls == []


def test_make_dataset_removes_the_work_folders_of_killed_runs(tmp_path, capsys):
    src = _images(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(ended.stdout)  # a process that has ended: its folder is stale
    stale = [dst / ".make-dataset-0badc0de", dst / f".make-dataset-{dead}-0badc0de"]
    live = dst / f".make-dataset-{os.getppid()}-0badc0de"  # a running process: kept
    for folder in (*stale, live):
        (folder / "DIV2K_train_HR").mkdir(parents=True)
        (folder / "DIV2K_train_HR" / "0001.png").write_bytes(b"half-written")
    assert main(["make-dataset", str(src), str(dst), "--scales", "2"]) == 0
    assert not any(p.exists() for p in stale)
    assert live.is_dir()
    made = sorted(p.name for p in dst.iterdir() if not p.name.startswith("."))
    assert "DIV2K_train_HR" in made and (dst / "DIV2K_train_HR" / "0001.png").is_file()
    # the run's own work folder is gone too
    assert [p.name for p in dst.iterdir() if p.name.startswith(".")] == [live.name]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_make_dataset_refuses_a_decompression_bomb_in_one_line(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "bomb.png").write_bytes(_png_header_only(20000, 20000))
    dst = tmp_path / "dst"
    code = main(["make-dataset", str(src), str(dst), "--scales", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "bomb.png" in err and "decompression bomb" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not dst.exists()
