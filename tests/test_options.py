"""The inference options of ``upscale`` and ``evaluate`` each change something.

Every option gets a test that runs the command with and without it and asserts a difference
(tests/README.md). Where the outputs must be equal (tiling), the difference is in what the
model was asked to compute: :func:`model_inputs` records the input shape of every forward
of the model, through torch's global forward hook, so it needs no private name of ours.
``train``'s options are tested in test_run.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from _models import model_inputs

from edsr_lab import cli
from edsr_lab.io import load_image, save_image
from edsr_lab.models import EDSR, save_checkpoint


@pytest.fixture
def ckpt(tmp_path) -> Path:
    """A tiny x2 EDSR with random weights: not equivariant, so self-ensemble changes it."""
    torch.manual_seed(0)
    return save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "tiny.pt")


def _image(path: Path, h: int, w: int, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return save_image(torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")[0], path)


def _main(*args) -> int:
    return cli.main([str(a) for a in args])


# ------------------------------------------------------------------------------- upscale


def test_upscale_self_ensemble_changes_the_output(tmp_path, ckpt, capsys):
    image = _image(tmp_path / "in.png", 20, 24)
    base = ["upscale", image, "--checkpoint", ckpt, "--device", "cpu"]
    assert _main(*base, "--out", tmp_path / "plain") == 0
    with model_inputs() as seen:
        assert _main(*base, "--out", tmp_path / "plus", "--self-ensemble") == 0
    capsys.readouterr()
    plain = load_image(tmp_path / "plain" / "in_x2.png")
    plus = load_image(tmp_path / "plus" / "in_x2.png")
    assert plus.shape == plain.shape == (3, 40, 48)
    assert (plus - plain).abs().max() > 2 / 255  # more than 8-bit rounding
    assert sum(s[0] for s in seen) == 8  # the 8 flips/rotations, batched or not


def test_upscale_tile_runs_the_model_on_tiles(tmp_path, ckpt, capsys):
    """Same output (the tiles overlap more than the tiny model sees), but the model never
    sees the whole 64x56 image."""
    image = _image(tmp_path / "in.png", 64, 56)
    base = ["upscale", image, "--checkpoint", ckpt, "--device", "cpu"]
    with model_inputs() as whole:
        assert _main(*base, "--out", tmp_path / "whole") == 0
    with model_inputs() as tiled:
        assert _main(*base, "--out", tmp_path / "tiled", "--tile", "16") == 0
    capsys.readouterr()
    assert whole == [(1, 3, 64, 56)]
    assert len(tiled) > 1 and all(h < 64 and w < 56 for _, _, h, w in tiled), tiled
    a = load_image(tmp_path / "whole" / "in_x2.png")
    assert torch.equal(a, load_image(tmp_path / "tiled" / "in_x2.png"))


def test_upscale_tile_and_self_ensemble_reach_dicom_files(tmp_path, ckpt, capsys):
    """``upscale`` sends DICOM files through edsr_lab.dicom: the options must get there."""
    pytest.importorskip("pydicom", reason='the DICOM extra: pip install -e ".[dicom]"')
    from pydicom.data import get_testdata_file

    ct = get_testdata_file("CT_small.dcm")  # 128 x 128
    base = ["upscale", ct, "--checkpoint", ckpt, "--device", "cpu"]
    with model_inputs() as plain:
        assert _main(*base, "--out", tmp_path / "a") == 0
    with model_inputs() as tiled:
        assert _main(*base, "--out", tmp_path / "b", "--tile", "32") == 0
    with model_inputs() as plus:
        assert _main(*base, "--out", tmp_path / "c", "--self-ensemble") == 0
    capsys.readouterr()
    assert plain == [(1, 3, 128, 128)]
    assert len(tiled) > 1 and all(max(s[2:]) < 128 for s in tiled), tiled
    assert sum(s[0] for s in plus) == 8


# ------------------------------------------------------------------------------ evaluate


def _scores(path: Path) -> list[tuple[float, float]]:
    return [(float(r["psnr"]), float(r["bicubic_psnr"])) for r in csv.DictReader(path.open())]


@pytest.fixture
def hr_folder(tmp_path) -> Path:
    """Two HR images: their LR (x2) is made by evaluate with the MATLAB bicubic."""
    folder = tmp_path / "hr"
    folder.mkdir()
    _image(folder / "a.png", 36, 40, seed=1)
    _image(folder / "b.png", 40, 32, seed=2)
    return folder


def _evaluate(ckpt: Path, data: Path, out_csv: Path, *options) -> int:
    return _main(
        "evaluate", "--checkpoint", ckpt, "--data", data, "--csv", out_csv, "--no-progress",
        "--device", "cpu", *options,
    )  # fmt: skip


def test_evaluate_self_ensemble_changes_the_scores(tmp_path, ckpt, hr_folder, capsys):
    assert _evaluate(ckpt, hr_folder, tmp_path / "plain.csv") == 0
    assert _evaluate(ckpt, hr_folder, tmp_path / "plus.csv", "--self-ensemble") == 0
    assert "with self-ensemble" in capsys.readouterr().out
    plain, plus = _scores(tmp_path / "plain.csv"), _scores(tmp_path / "plus.csv")
    assert len(plain) == len(plus) == 2
    assert [b for _, b in plain] == [b for _, b in plus]  # the same images and bicubic
    assert all(abs(p - q) > 1e-3 for (p, _), (q, _) in zip(plain, plus, strict=True))


def test_evaluate_tile_runs_the_model_on_tiles(tmp_path, ckpt, capsys):
    folder = tmp_path / "big"
    folder.mkdir()
    _image(folder / "a.png", 100, 96)  # LR 50 x 48
    with model_inputs() as whole:
        assert _evaluate(ckpt, folder, tmp_path / "whole.csv") == 0
    with model_inputs() as tiled:
        assert _evaluate(ckpt, folder, tmp_path / "tiled.csv", "--tile", "8") == 0
    capsys.readouterr()
    assert whole == [(1, 3, 50, 48)]
    assert len(tiled) > 1 and all(h < 50 and w < 48 for _, _, h, w in tiled), tiled
    [(untiled, _)] = _scores(tmp_path / "whole.csv")
    [(with_tiles, _)] = _scores(tmp_path / "tiled.csv")
    assert with_tiles == pytest.approx(untiled, abs=1e-6)


def test_evaluate_bf16_is_used(tmp_path, ckpt, hr_folder, capsys):
    """--bf16 reaches super_resolve, which refuses it on a CPU (autocast there is CUDA only)."""
    assert _evaluate(ckpt, hr_folder, tmp_path / "a.csv") == 0
    capsys.readouterr()
    assert _evaluate(ckpt, hr_folder, tmp_path / "b.csv", "--bf16") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA" in err, err
