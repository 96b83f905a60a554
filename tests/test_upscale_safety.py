"""``upscale`` / ``upscale-dicom`` never destroy an input, and usage mistakes stop the
command before the per-file loop (issue 14, items 3 and 11).

* An output never replaces any input of the same command, whatever the kinds (an image's
  output over a DICOM input named ``scan_x2.png``, a slice's output over another slice),
  even with ``--overwrite``: through the library (one plan for every kind) and through
  ``edsr_lab.cli.main``.
* A bad ``tile``, ``window`` or ``--out`` is one error before any file is read (exit 2 on
  the command line), not one FAILED line per file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _models import Nearest

from edsr_lab import cli, upscale
from edsr_lab.errors import BadArgumentError, EdsrLabError, OutputExistsError
from edsr_lab.io import save_image
from edsr_lab.models import EDSR, save_checkpoint

pydicom = pytest.importorskip("pydicom", reason='the DICOM extra: pip install -e ".[dicom]"')
from pydicom.data import get_testdata_file  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))


@pytest.fixture
def ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "tiny.pt")


def _png(path: Path, h: int = 12, w: int = 10) -> Path:
    return save_image(torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)), path)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------- outputs never replace inputs


@pytest.mark.parametrize("command", ["upscale-dicom", "upscale"])
def test_a_slice_output_never_replaces_another_slice_given(tmp_path, ckpt, capsys, command):
    """``upscale-dicom o/x.dcm o/x_x2.dcm --out o --overwrite``: x's output is o/x_x2.dcm,
    which is the second input."""
    o = tmp_path / "o"
    o.mkdir()
    shutil.copy(CT, o / "x.dcm")
    shutil.copy(MR, o / "x_x2.dcm")
    before = _snapshot(o)
    args = [command, o / "x.dcm", o / "x_x2.dcm", "--checkpoint", ckpt, "--out", o]
    line = _one_line(cli.main([str(a) for a in [*args, "--overwrite"]]), capsys.readouterr().err)
    assert "would replace the input" in line and "x_x2.dcm" in line
    assert _snapshot(o) == before


def test_the_library_plans_slices_and_images_together(tmp_path):
    """One plan for every kind: upscale_files takes DICOM slices too (derived DICOM out)
    and refuses an image output that would replace a slice given with it."""
    o = tmp_path / "o"
    o.mkdir()
    _png(o / "scan.png")
    shutil.copy(CT, o / "scan_x2.png")  # a DICOM slice with an image's name
    before = _snapshot(o)
    with pytest.raises(BadArgumentError, match="would replace the input"):
        upscale.upscale_files(Nearest(), [o / "scan.png", o / "scan_x2.png"], o, 2, overwrite=True)
    assert _snapshot(o) == before

    out = tmp_path / "mixed"
    written, failed = upscale.upscale_files(
        Nearest(), [o / "scan.png", CT], out, 2, log=lambda line: None
    )
    assert (written, failed) == (2, 0)
    derived = pydicom.dcmread(out / "CT_small_x2.dcm")
    assert derived.Rows == 256 and derived.ImageType[0] == "DERIVED"
    assert (out / "scan_x2.png").is_file()


def test_every_existing_output_of_every_kind_is_checked_before_writing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "CT_small_x2.dcm").write_bytes(b"keep me")
    image = _png(tmp_path / "a.png")
    with pytest.raises(OutputExistsError, match="CT_small_x2.dcm"):
        upscale.upscale_files(Nearest(), [image, CT], out, 2, log=lambda line: None)
    assert _snapshot(out) == {"CT_small_x2.dcm": b"keep me"}  # a_x2.png not written either


def test_cli_an_image_output_never_replaces_a_dicom_input(tmp_path, ckpt, capsys):
    """``upscale scan.png scan_x2.png --overwrite`` where scan_x2.png is a DICOM slice: the
    image's output would have replaced it before it was read. Images and slices are planned
    together, so the planner sees an output replacing an input."""
    o = tmp_path / "o"
    o.mkdir()
    _png(o / "scan.png")
    shutil.copy(CT, o / "scan_x2.png")
    before = _snapshot(o)
    args = ["upscale", o / "scan.png", o / "scan_x2.png", "--checkpoint", ckpt, "--out", o]
    line = _one_line(cli.main([str(a) for a in [*args, "--overwrite"]]), capsys.readouterr().err)
    assert "scan_x2.png" in line and "would replace the input" in line
    assert _snapshot(o) == before


def test_overwrite_never_replaces_a_dicom_file_with_an_image(tmp_path):
    """--overwrite replaces earlier outputs; a DICOM file is never an image's earlier output."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(CT, out / "a_x2.png")
    with pytest.raises(BadArgumentError, match="DICOM"):
        upscale.upscale_files(Nearest(), [_png(tmp_path / "a.png")], out, 2, overwrite=True)
    assert (out / "a_x2.png").read_bytes() == CT.read_bytes()
    # an earlier image output is replaced as asked
    (out / "b_x2.png").write_bytes(b"old output")
    upscale.upscale_files(Nearest(), [_png(tmp_path / "b.png")], out, 2, overwrite=True)
    assert (out / "b_x2.png").read_bytes() != b"old output"


# ------------------------------------------------------- usage mistakes before the loop


def _no_file_read(monkeypatch) -> list[Path]:
    """Record every slice or image the per-file loop would read."""
    read: list[Path] = []
    real = upscale.run_jobs

    def spy(jobs, *args, **kwargs):
        read.extend(j.source for j in jobs)
        return real(jobs, *args, **kwargs)

    monkeypatch.setattr(upscale, "run_jobs", spy)
    return read


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"tile": 0}, "tile"),
        ({"tile": -3}, "tile"),
        ({"tile": 2.5}, "tile"),
        ({"tile": "8"}, "tile"),
        ({"window_cw": (40, 0)}, "window"),
        ({"window_cw": (40, float("nan"))}, "window"),
        ({"window_cw": ("abc", 400)}, "window"),
        ({"scale": 0}, "scale"),
    ],
)
def test_dicom_usage_mistakes_stop_before_the_loop(tmp_path, monkeypatch, kwargs, expected):
    read = _no_file_read(monkeypatch)
    with pytest.raises(BadArgumentError, match=expected):
        upscale.upscale_dicom_files(
            Nearest(), [CT, MR], tmp_path / "out", fmt="png", log=print, **kwargs
        )
    assert read == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("tile", [0, 2.5, "8", True])
def test_image_usage_mistakes_stop_before_the_loop(tmp_path, monkeypatch, tile):
    read = _no_file_read(monkeypatch)
    with pytest.raises(BadArgumentError, match="tile"):
        upscale.upscale_files(Nearest(), [_png(tmp_path / "a.png")], tmp_path / "out", 2, tile=tile)
    assert read == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_refused_not_taken_as_the_working_folder(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EdsrLabError, match="--out"):
        upscale.upscale_dicom_files(Nearest(), [CT], out, log=print)
    with pytest.raises(EdsrLabError, match="--out"):
        upscale.upscale_files(Nearest(), [_png(tmp_path / "a.png")], out, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize(
    "extra",
    [["--tile", "0"], ["--tile", "-3"], ["--format", "png", "--window", "40", "0"], ["--out", ""]],
)
def test_cli_upscale_dicom_usage_mistakes_are_one_line_exit_2(
    tmp_path, ckpt, capsys, monkeypatch, extra
):
    monkeypatch.chdir(tmp_path)  # where an empty --out would write
    args = ["upscale-dicom", CT, MR, "--checkpoint", ckpt]
    args += extra if "--out" in extra else ["--out", tmp_path / "out", *extra]
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    _one_line(code, err)
    assert "FAILED" not in out and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("*_x2.*"))
