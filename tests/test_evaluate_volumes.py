"""``evaluate`` on medical data (issue 15 items 1, 2, 4, 5): volumes read as stacks of
slices, LR from a named degradation (seeded), PSNR/SSIM on each volume's data range,
per-volume means, the map and degradation in the CSV, held-out splits by patient."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edsr_lab import cli
from edsr_lab.evaluate_volumes import (
    Volume,
    evaluate_volumes,
    heldout_volumes,
    is_medical_data,
    load_volumes,
    volume_seed,
)
from edsr_lab.models import EDSR, save_checkpoint
from edsr_lab.stored import save_values

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")
from pydicom.data import get_testdata_file  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    return save_checkpoint(model, tmp_path_factory.mktemp("ck") / "tiny.pt")


def _patients(folder: Path, ids: list[str]) -> None:
    """One CT series per patient (CT_small with its own PatientID, series and values)."""
    folder.mkdir(parents=True)
    for i, pid in enumerate(ids):
        ds = pydicom.dcmread(CT)
        ds.PatientID = pid
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.PixelData = (ds.pixel_array // (i + 1)).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(folder / f"{pid}_slice", enforce_file_format=True)


def test_scores_use_the_data_range_as_peak_and_average_volumes():
    """A method that returns the bottom of the range everywhere: its PSNR is known."""
    rng = np.random.default_rng(0)
    volumes = [
        Volume("a", rng.integers(-1000, 1500, (3, 16, 16)).astype(np.float64), "HU", "p1", "a"),
        Volume("b", rng.integers(0, 300, (2, 16, 16)).astype(np.float64), "HU", "p2", "b"),
    ]
    zero = lambda lr: torch.zeros(lr.shape[0], 1, 2 * lr.shape[2], 2 * lr.shape[3])  # noqa: E731
    result = evaluate_volumes({"zero": zero}, volumes, 2)
    for volume, score in zip(volumes, result.report.scores, strict=True):
        v = volume.values
        lo, hi = v.min(), v.max()
        mse = np.mean((v[:, 2:-2, 2:-2] - lo) ** 2)  # scale pixels cropped
        assert score.psnr == pytest.approx(10 * math.log10((hi - lo) ** 2 / mse))
        assert (score.lo, score.hi, score.slices) == (lo, hi, v.shape[0])
    mean = np.mean([s.psnr for s in result.report.scores])  # per volume, not per slice
    assert result.report.mean("zero") == pytest.approx(mean)
    assert result.rows[0]["mapping"].startswith('{"edsr_lab_intensity":1')
    assert "peak = hi - lo" in result.table()


def test_lr_is_seeded_per_volume_and_the_degradation_matters():
    values = np.random.default_rng(1).random((2, 24, 24)) * 1000
    volumes = [Volume("v", values, "a.u.", "p", "v")]
    up = lambda lr: torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest")  # noqa: E731

    def psnr(**kw) -> float:
        return evaluate_volumes({"nearest": up}, volumes, 2, **kw).report.mean("nearest")

    noisy = {"degradation": "kspace", "params": {"noise_sigma": 0.05}}
    assert psnr(**noisy) == psnr(**noisy)  # seeded: the same LR every run
    assert psnr(**noisy, seed=1) != psnr(**noisy)
    assert psnr() != psnr(degradation="kspace")
    assert volume_seed(0, "v") != volume_seed(0, "w") and volume_seed(0, "v") < 2**63


def test_heldout_by_patient_never_scores_a_training_patient(tmp_path):
    _patients(tmp_path / "scans", [f"P{i:02d}" for i in range(6)])
    volumes = load_volumes([tmp_path / "scans"])
    assert len(volumes) == 6 and len({v.patient for v in volumes}) == 6
    held = heldout_volumes(volumes, "patient")
    assert 1 <= len(held) < len(volumes)
    from edsr_lab.data.folder import HOLDOUT_FRACTION, HOLDOUT_MAX
    from edsr_lab.data.groups import check_disjoint, group_split

    split = group_split(volumes, lambda v: v.patient, fraction=HOLDOUT_FRACTION,
                        max_heldout=HOLDOUT_MAX)  # fmt: skip
    assert [v.patient for v in held] == [v.patient for v in split.heldout]
    check_disjoint(split.train, held, key=lambda v: v.patient)


def test_volumes_are_read_as_stacks_of_slices(tmp_path):
    shutil.copy(NIBABEL_DATA / "example4d.nii.gz", tmp_path / "ex.nii.gz")
    save_values(np.arange(3 * 20 * 20, dtype=np.int16).reshape(3, 1, 20, 20), tmp_path / "s.tif")
    volumes = {v.name: v for v in load_volumes([tmp_path])}
    ex = nib.load(tmp_path / "ex.nii.gz")
    x, y, z, t = ex.shape
    assert volumes["ex.nii.gz"].values.shape == (z * t, x, y)  # axis 2, every time point
    assert volumes["s.tif"].values.shape == (3, 20, 20)
    axis0 = load_volumes([tmp_path / "ex.nii.gz"], axis=0)[0]
    assert axis0.values.shape == (x * t, y, z)


def test_cli_evaluate_scores_medical_folders_on_the_data_range(tmp_path, ckpt, capsys):
    folder = tmp_path / "slices"
    ds = pydicom.dcmread(CT)
    save_values((ds.pixel_array.astype(np.int32)).astype(np.uint16), folder / "ct.png")
    assert is_medical_data([folder]) and not is_medical_data(["set5"])
    csv_path = tmp_path / "scores.csv"
    args = ["evaluate", "--checkpoint", ckpt, "--data", folder, "--csv", csv_path]
    assert cli.main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    assert "data range (peak = hi - lo" in out and "LR made with bicubic" in out
    rows = list(csv.DictReader(open(csv_path)))
    assert {r["method"] for r in rows} == {"bicubic", "tiny"}
    bicubic = next(r for r in rows if r["method"] == "bicubic")
    assert 25 < float(bicubic["psnr_db"]) < 50  # not the 55-62 dB of the 65535 scale
    assert float(bicubic["peak"]) == ds.pixel_array.max() - ds.pixel_array.min()
    assert '"kind":"auto"' in bicubic["mapping"] and bicubic["degradation"] == "bicubic"
    # options change what is measured
    args2 = [*args[:-1], tmp_path / "k.csv", "--degradation", "kspace", "--range", "12bit"]
    assert cli.main([str(a) for a in args2]) == 0
    rows2 = list(csv.DictReader(open(tmp_path / "k.csv")))
    b2 = next(r for r in rows2 if r["method"] == "bicubic")
    assert b2["degradation"] == "kspace" and float(b2["peak"]) == 4095.0
    assert b2["psnr_db"] != bicubic["psnr_db"]
    capsys.readouterr()
    code = cli.main([str(a) for a in [*args[:5], "--degradation", "blur"]])
    err = capsys.readouterr().err
    assert code == 2 and "unknown degradation" in err and len(err.strip().splitlines()) == 1


def test_per_patient_means_count_each_patient_once_and_peaks_are_printed(tmp_path):
    """Two patients, one with two volumes of the same file names as the other's: the names
    stay apart, the per-patient mean weighs each patient once, each peak is printed."""
    rng = np.random.default_rng(2)
    for patient, n in (("P01", 2), ("P02", 1)):
        for i in range(n):
            values = rng.integers(0, 1000 * (i + 1), (2, 1, 20, 20)).astype(np.int16)
            save_values(values, tmp_path / "scans" / patient / f"vol{i}.tif")
    volumes = load_volumes([tmp_path / "scans"])
    assert sorted(v.name for v in volumes) == ["P01/vol0.tif", "P01/vol1.tif", "P02/vol0.tif"]
    up = lambda lr: torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest")  # noqa: E731
    result = evaluate_volumes({"nearest": up}, volumes, 2)
    by_volume = {s.volume: s.psnr for s in result.report.scores}
    p01 = (by_volume["P01/vol0.tif"] + by_volume["P01/vol1.tif"]) / 2
    assert result.patient_means("nearest") == pytest.approx(
        {"P01": p01, "P02": by_volume["P02/vol0.tif"]}
    )
    assert result.patient_mean("nearest") == pytest.approx((p01 + by_volume["P02/vol0.tif"]) / 2)
    assert result.patient_mean("nearest") != pytest.approx(result.report.mean("nearest"))
    text = result.table()
    for s in result.report.scores:
        assert f"peak of {s.volume}: {s.peak:g} stored" in text
    assert "mean over 2 patients" in text and "3 volume(s) of 2 patient(s)" in text


def test_cli_heldout_scores_the_groups_train_held_out(tmp_path, ckpt, capsys):
    """--heldout patient with train's --holdout: the same patients as the training split."""
    from edsr_lab.data.medical import load_medical

    _patients(tmp_path / "scans", [f"P{i:02d}" for i in range(6)])
    base = ["evaluate", "--checkpoint", ckpt, "--data", tmp_path / "scans", "--no-progress"]

    def scored(*extra) -> set[str]:
        csv_path = tmp_path / f"s{len(extra)}.csv"
        assert cli.main([str(a) for a in [*base, "--csv", csv_path, *extra]]) == 0
        return {r["patient"] for r in csv.DictReader(open(csv_path))}

    everyone, one = scored(), scored("--heldout", "patient")
    half = scored("--heldout", "patient", "--holdout", "0.5")
    assert len(everyone) == 6 and len(one) == 1 and len(half) == 3
    trained = load_medical(tmp_path / "scans", (2,), patch_size=8, holdout=0.5)
    assert half == set(trained.heldout_groups)
    capsys.readouterr()
    assert cli.main([str(a) for a in [*base, "--holdout", "0.5"]]) == 2
    assert "give --heldout patient" in capsys.readouterr().err


def test_cli_refuses_photo_options_on_medical_data(tmp_path, ckpt, capsys):
    folder = tmp_path / "slices"
    save_values(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 3, folder / "ct.png")
    base = ["evaluate", "--checkpoint", ckpt, "--data", folder, "--no-progress"]
    assert cli.main([str(a) for a in base]) == 0
    capsys.readouterr()
    assert cli.main([str(a) for a in [*base, "--protocol", "div2k"]]) == 2
    err = capsys.readouterr().err
    assert "--protocol apply to the photo sets" in err and len(err.strip().splitlines()) == 1


def test_cli_medical_options_are_checked_before_the_model_loads(tmp_path, ckpt, capsys):
    base = ["evaluate", "--checkpoint", tmp_path / "no_such.pt"]  # would fail if loaded
    for extra, words in (
        (["--data", "set5", "--degradation", "kspace"], "names no file or folder here"),
        (["--data", tmp_path, "--range", "nope"], "range"),
        (["--data", tmp_path, "--degradation", "blur"], "unknown degradation"),
        (["--data", tmp_path, "--seed", "1", "--scale", "2", "3"], "one --scale at a time"),
    ):
        assert cli.main([str(a) for a in [*base, *extra]]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "no_such.pt" not in err and len(err.strip().splitlines()) == 1
    existing = tmp_path / "old.csv"
    existing.write_text("keep me")
    args = [*base, "--data", tmp_path, "--units", "HU", "--csv", existing]
    assert cli.main([str(a) for a in args]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and existing.read_text() == "keep me"


def test_cli_seed_axis_and_limit_change_what_is_scored(tmp_path, ckpt, capsys):
    shutil.copy(NIBABEL_DATA / "example4d.nii.gz", tmp_path / "ex.nii.gz")
    _patients(tmp_path / "scans", [f"P{i:02d}" for i in range(6)])
    base = ["evaluate", "--checkpoint", ckpt, "--no-progress"]

    def rows(name, *extra) -> list[dict]:
        out = tmp_path / f"{name}.csv"
        assert cli.main([str(a) for a in [*base, "--csv", out, *extra]]) == 0
        return [r for r in csv.DictReader(open(out)) if r["method"] == "bicubic"]

    vol = ["--data", tmp_path / "ex.nii.gz", "--degradation", "ct:sigma=0.05"]
    seed0, seed1 = rows("s0", *vol), rows("s1", *vol, "--seed", "1")
    assert seed0[0]["psnr_db"] != seed1[0]["psnr_db"] and seed1[0]["seed"] != seed0[0]["seed"]
    axis0 = rows("a0", *vol, "--axis", "0")
    assert int(axis0[0]["slices"]) == 128 * 2 and int(seed0[0]["slices"]) == 24 * 2
    # --limit counts the held-out volumes, after the split of all six patients
    held = rows("h", "--data", tmp_path / "scans", "--heldout", "patient", "--holdout", "0.5")
    limited = rows("l", "--data", tmp_path / "scans", "--heldout", "patient", "--holdout",
                   "0.5", "--limit", "2")  # fmt: skip
    assert [r["patient"] for r in limited] == [r["patient"] for r in held][:2]
    capsys.readouterr()


def test_a_dicom_series_is_one_volume_in_instance_order(tmp_path):
    """Three files of one series (no extensions, written out of order) are one volume whose
    slices follow InstanceNumber; a second series of the same patient is another volume."""
    folder = tmp_path / "series"
    folder.mkdir()
    uid, other = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for name, number, offset, series in (("c", 3, 300, uid), ("a", 1, 100, uid),
                                         ("b", 2, 200, uid), ("d", 1, 0, other)):  # fmt: skip
        ds = pydicom.dcmread(CT)
        ds.SeriesInstanceUID, ds.InstanceNumber = series, number
        ds.PixelData = (ds.pixel_array // 4 + offset).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(folder / name, enforce_file_format=True)
    volumes = {v.series: v for v in load_volumes([folder])}
    assert len(volumes) == 2 and len({v.patient for v in volumes.values()}) == 1
    series = volumes[uid]
    base = pydicom.dcmread(CT)
    hu = (base.pixel_array // 4).astype(np.float64) + float(base.RescaleIntercept)
    assert series.values.shape == (3, 128, 128)
    for z, offset in enumerate((100, 200, 300)):
        np.testing.assert_array_equal(series.values[z], hu + offset)
    assert series.units == "HU" and series.path.name == "a"
