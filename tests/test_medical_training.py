"""Training data from medical files (issue 15 items 2, 4, 5): ``make-dataset --degradation``,
``train --degradation`` (LR made from the HR at load time, seeded per file) and
``train --split-by`` on a folder of volumes (whole patients held out, never slices of one
volume on both sides). Each option is run with and without, and the difference asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edsr_lab.cli import main
from edsr_lab.data.degradations import derived_seed, make_lr
from edsr_lab.data.medical import SPLIT_KEYS, load_medical
from edsr_lab.data.sources import DataChoice, choose_training_data, load_training_data
from edsr_lab.io import load_image, save_image
from edsr_lab.stored import save_values
from edsr_lab.train.config import SPLIT_KEYS as CLI_SPLIT_KEYS

TINY = ["--n-resblocks", "1", "--n-feats", "8", "--batch-size", "4", "--patch-size", "8"]


def _smooth(g: torch.Generator, h: int, w: int, c: int = 3) -> torch.Tensor:
    x = torch.rand(1, c, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear")[0].clamp(0, 1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        save_image(_smooth(g, 48, 48), folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    """Four patients in subfolders, two 12-bit volumes each (int16 TIFF stacks, 3 slices of
    32x32), named alike across patients (t1.tif, t2.tif)."""
    folder = tmp_path_factory.mktemp("scans")
    g = torch.Generator().manual_seed(1)
    for p in range(4):
        for name in ("t1", "t2"):
            vol = (_smooth(g, 32, 32, c=3) * 4000 - 1000).round().to(torch.int16)
            save_values(vol.numpy()[:, None], folder / f"P{p}" / f"{name}.tif")
    return folder


def test_the_split_keys_agree():
    assert SPLIT_KEYS == CLI_SPLIT_KEYS


# ------------------------------------------------------------------------- make-dataset


def test_make_dataset_degradation_writes_its_own_track_seeded(tmp_path, photos, capsys):
    base = ["make-dataset", str(photos)]
    assert main([*base, str(tmp_path / "bic"), "--scales", "2"]) == 0
    kspace = ["--degradation", "kspace:noise_sigma=0.02", "--scales", "2"]
    assert main([*base, str(tmp_path / "k0"), *kspace]) == 0
    assert main([*base, str(tmp_path / "k1"), *kspace, "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "made with kspace:noise_sigma=0.02, seed 0" in out
    bic = load_image(tmp_path / "bic/DIV2K_train_LR_bicubic/X2/0001x2.png")
    track = "DIV2K_train_LR_kspace"
    assert not (tmp_path / "k0/DIV2K_train_LR_bicubic").exists()
    k0 = load_image(tmp_path / f"k0/{track}/X2/0001x2.png")
    k1 = load_image(tmp_path / f"k1/{track}/X2/0001x2.png")
    assert (k0 - bic).abs().max() > 0.02 and (k0 - k1).abs().max() > 0.02
    # the LR is the named degradation of the HR as saved, with the recorded seed
    hr = load_image(tmp_path / "k0/DIV2K_train_HR/0001.png")
    seed = derived_seed(0, "0001.png", 2)
    expected = make_lr(hr, 2, "kspace", seed=seed, noise_sigma=0.02)
    assert (torch.round(expected * 255) / 255 - k0).abs().max() <= 1 / 255 + 1e-6
    record = json.loads((tmp_path / f"k0/{track}/degradation.json").read_text())
    assert record == {
        "degradation": "kspace:noise_sigma=0.02",
        "seed": 0,
        "image_seed": "derived_seed(seed, HR file name, scale)",
    }
    assert main([*base, str(tmp_path / "bad"), "--degradation", "blur"]) == 2
    err = capsys.readouterr().err
    assert "unknown degradation 'blur'" in err and not (tmp_path / "bad").exists()


# ----------------------------------------------------------------- train on a folder


def test_a_folder_of_images_gets_lr_from_the_degradation_seeded(photos):
    choice = choose_training_data(str(photos), scales=(2,))
    assert choice.kind == "folder"

    def lr(**kw) -> torch.Tensor:
        data = load_training_data(choice, (2,), patch_size=8, holdout=0.25, **kw)
        return torch.stack([x.float() for x in data.train[2][1]])

    plain = lr()
    noisy = lr(degradation="ct:sigma=0.03")
    assert (noisy - plain).abs().mean() > 3  # 8-bit levels
    assert torch.equal(noisy, lr(degradation="ct:sigma=0.03"))  # seeded
    assert not torch.equal(noisy, lr(degradation="ct:sigma=0.03", seed=1))


def test_a_div2k_root_reads_the_degradation_track(tmp_path, photos, capsys):
    root = tmp_path / "k"
    assert main(["make-dataset", str(photos), str(root), "--scales", "2",
                 "--degradation", "kspace"]) == 0  # fmt: skip
    capsys.readouterr()
    choice = DataChoice("div2k", root)
    data = load_training_data(choice, (2,), patch_size=8, holdout=0.25, degradation="kspace")
    assert "LR from DIV2K_train_LR_kspace/X2" in data.description
    files = sorted((root / "DIV2K_train_LR_kspace/X2").glob("*.png"))
    on_disk = {f.name: load_image(f) for f in files}
    assert any(
        torch.equal(lr.float() / 255, x) for lr in data.train[2][1] for x in on_disk.values()
    )
    # without the option, the bicubic LR is made (the layout has no bicubic track)
    plain = load_training_data(choice, (2,), patch_size=8, holdout=0.25)
    assert "LR made with bicubic" in plain.description


def test_a_folder_of_volumes_is_split_by_patient_never_by_slice(scans):
    assert choose_training_data(str(scans), scales=(2,)).kind == "medical"
    data = load_medical(scans, (2,), patch_size=8, holdout=0.25, channels=1)
    assert data.heldout_groups and set(data.heldout_groups).isdisjoint(data.train_groups)
    held = {name.split("/")[0] for name in data.valid_names}
    assert held == set(data.heldout_groups)  # both volumes of the held-out patient
    assert len(data.valid_names) == 2 * 3  # 2 volumes x their 3 slices
    assert len(data.train[2][0]) == (4 - len(held)) * 2 * 3
    # by volume: single volumes are held out, so a patient can be on both sides
    by_volume = load_medical(scans, (2,), patch_size=8, holdout=0.25, split_by="volume")
    assert by_volume.heldout_groups != data.heldout_groups
    assert all("/" in g for g in by_volume.heldout_groups)


def test_a_folder_of_volumes_maps_each_volume_and_degrades_seeded(scans):
    def lrs(**kw) -> torch.Tensor:
        data = load_medical(scans, (2,), patch_size=8, holdout=0.25, channels=1, **kw)
        return torch.stack(data.train[2][1]).float()

    plain, noisy = lrs(), lrs(degradation="kspace:noise_sigma=0.03")
    assert (plain - noisy).abs().mean() > 3 * 257  # 16-bit levels: 3 of 8 bits
    assert torch.equal(noisy, lrs(degradation="kspace:noise_sigma=0.03"))
    assert not torch.equal(noisy, lrs(degradation="kspace:noise_sigma=0.03", seed=5))
    # one map per volume: each volume's HR slices reach 0 and 65535 somewhere
    data = load_medical(scans, (2,), patch_size=8, holdout=0.25, channels=1)
    hrs = torch.stack(data.train[2][0]).to(torch.int32)
    per_volume = hrs.view(-1, 3, 32 * 32)  # 3 slices of (1, 32, 32) per volume
    assert (per_volume.amax(dim=(1, 2)) == 65535).all()
    assert (per_volume.amin(dim=(1, 2)) == 0).all()
    # kept at 16 bits: more than 256 levels per volume (8 bits would be 16 HU steps on CT)
    assert all(len(torch.unique(v)) > 256 for v in per_volume)


def test_train_on_volumes_holds_out_patients_and_records_the_options(tmp_path, scans, capsys):
    def run(out: str, *extra: str) -> dict:
        args = ["train", "--device", "cpu", *TINY, "--data", str(scans), "--iters", "1",
                "--eval-every", "1", "--holdout", "0.25", "--out", str(tmp_path / out)]  # fmt: skip
        args += extra
        assert main(args) == 0
        return json.loads((tmp_path / out / "summary.json").read_text())

    plain = run("plain")
    stdout = capsys.readouterr().out
    assert "folder of medical volumes" in stdout and "held out by patient" in stdout
    assert all(name.startswith(("P0/", "P1/", "P2/", "P3/")) for name in plain["validation_images"])
    # one volume of eight held out: 3 validation slices, where a patient gave 6
    by_volume = run("vol", "--split-by", "volume", "--degradation", "kspace", "--holdout", "0.1")
    stdout = capsys.readouterr().out
    assert "held out by volume" in stdout and "LR made with kspace" in stdout
    assert len(by_volume["validation_images"]) == 3 and len(plain["validation_images"]) == 6
    config = json.loads((tmp_path / "vol" / "config.json").read_text())
    assert config["run"]["degradation"] == "kspace" and config["run"]["split_by"] == "volume"
    assert config["data"]["kind"] == "medical" and "LR made with kspace" in str(config["data"])
    # validated on the data range (grey, unrounded), not with the photo benchmark protocol
    assert plain["protocol"].startswith("data range") and by_volume["protocol"] == plain["protocol"]
    bad = ["train", "--data", str(scans), "--out", str(tmp_path / "bad"), "--degradation", "x"]
    assert main(bad) == 2
    assert "--degradation: unknown degradation 'x'" in capsys.readouterr().err


def test_too_few_patients_is_one_clear_line(tmp_path):
    folder = tmp_path / "one"
    save_values(np.zeros((2, 1, 32, 32), np.int16), folder / "P0" / "a.tif")
    save_values(np.ones((2, 1, 32, 32), np.int16), folder / "P0" / "b.tif")
    from edsr_lab.errors import DatasetError

    with pytest.raises(DatasetError, match="need at least 2 groups"):
        load_medical(folder, (2,), patch_size=8, holdout=0.25)
    assert len(load_medical(folder, (2,), patch_size=8, holdout=0.5, split_by="volume").valid[2])


def test_make_dataset_maps_values_files_by_their_range(tmp_path, capsys):
    """A 12-bit CT slice in a 16-bit PNG: by its own range (default) the 8-bit HR spans
    0..255; --range container (value / 65535, the photo convention) makes it nearly black."""
    import pydicom
    from pydicom.data import get_testdata_file

    stored = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array  # 128..2191
    src = tmp_path / "src"
    save_values(stored.astype(np.uint16), src / "ct.png")
    base = ["make-dataset", str(src)]
    assert main([*base, str(tmp_path / "auto"), "--scales", "2"]) == 0
    assert "mapped to [0, 1] by its range (auto" in capsys.readouterr().out
    assert main([*base, str(tmp_path / "old"), "--scales", "2", "--range", "container"]) == 0
    auto = load_image(tmp_path / "auto/DIV2K_train_HR/0001.png")
    old = load_image(tmp_path / "old/DIV2K_train_HR/0001.png")
    assert auto.max() == 1.0 and auto.min() == 0.0 and old.max() < 0.04
    record = (tmp_path / "auto/DIV2K_train_intensity.csv").read_text().splitlines()
    assert record[0] == "name,intensity_map" and '""lo"":128.0,""hi"":2191.0' in record[1]
    assert not (tmp_path / "old/DIV2K_train_intensity.csv").exists()
    assert main([*base, str(tmp_path / "ct"), "--scales", "2", "--range", "12bit"]) == 0
    assert load_image(tmp_path / "ct/DIV2K_train_HR/0001.png").max() < 0.6  # 2191 of 4095


def test_make_dataset_reads_volumes_as_slices_with_one_map_each(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    src = tmp_path / "src"
    src.mkdir()
    g = torch.Generator().manual_seed(3)
    vol = (_smooth(g, 24, 20, c=3) * 3000 - 1000).round().to(torch.int16).permute(1, 2, 0)
    nib.save(nib.Nifti1Image(vol.numpy(), np.eye(4)), src / "vol.nii.gz")  # (24, 20, 3)
    save_values(np.arange(2 * 20 * 20, dtype=np.uint16).reshape(2, 1, 20, 20) * 9, src / "s.tif")
    save_image(_smooth(g, 24, 24), src / "photo.png")
    assert main(["make-dataset", str(src), str(tmp_path / "d"), "--scales", "2"]) == 0
    assert "2 volume(s) as slices along axis 2, one map per volume" in capsys.readouterr().out
    sources = (tmp_path / "d/DIV2K_train_sources.csv").read_text().splitlines()[1:]
    assert [row.split(",")[1].rsplit("/", 1)[-1] for row in sources] == [
        "photo.png", "s.tif[0]", "s.tif[1]", "vol.nii.gz[0]", "vol.nii.gz[1]", "vol.nii.gz[2]"
    ]  # fmt: skip
    maps = (tmp_path / "d/DIV2K_train_intensity.csv").read_text().splitlines()[1:]
    assert len(maps) == 5 and len({m.split(",", 1)[1] for m in maps}) == 2  # one per volume
    hr = [load_image(tmp_path / f"d/DIV2K_train_HR/{i:04d}.png", channels=1) for i in (4, 5, 6)]
    volume = torch.stack(hr)
    assert volume.min() == 0.0 and volume.max() == 1.0  # the range of the whole volume
    assert any(h.max() < 1.0 or h.min() > 0.0 for h in hr)  # not stretched slice by slice
    # slice z of the NIfTI is vol[:, :, z] mapped by the volume's range, rounded to 8 bits
    lo, hi = float(vol.min()), float(vol.max())
    expected = torch.round((vol[:, :, 1].double() - lo) / (hi - lo) * 255) / 255
    assert torch.allclose(hr[1][0].double(), expected, atol=1e-6)


def test_resume_keeps_the_degradation_and_the_split(tmp_path, photos, capsys):
    out = str(tmp_path / "run")
    base = ["train", "--device", "cpu", *TINY, "--data", str(photos), "--holdout", "0.25"]
    assert main([*base, "--iters", "1", "--out", out, "--degradation", "kspace"]) == 0
    capsys.readouterr()
    for changed in (["--degradation", "ct"], ["--split-by", "series"]):
        assert main([*base, "--iters", "2", "--out", out, "--resume", *changed]) == 2
        assert "differs from the run's" in capsys.readouterr().err
    assert main([*base, "--iters", "2", "--out", out, "--resume"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["run"]["degradation"] == "kspace"


def test_medical_validation_is_the_data_range_psnr(scans):
    """The run's validation PSNR of a medical folder equals clinical.psnr_data_range on the
    grey slices with peak 1 (each volume's map): unrounded, unlike the photo protocol."""
    from edsr_lab.clinical import psnr_data_range
    from edsr_lab.inference import bicubic_upscale
    from edsr_lab.train.report import bicubic_psnr

    data = load_training_data(DataChoice("medical", scans), (2,), patch_size=8, holdout=0.25)
    expected = [
        psnr_data_range(bicubic_upscale(lr, 2).clamp(0, 1)[0], hr[0], value_range=(0, 1), crop=2)
        for _, hr, lr in data.valid[2]
    ]
    got = bicubic_psnr(data)["psnr_x2"]
    assert got == pytest.approx(sum(expected) / len(expected), rel=1e-6)
    import dataclasses

    photo = bicubic_psnr(dataclasses.replace(data, kind="folder"))  # the benchmark protocol
    assert abs(photo["psnr_x2"] - got) > 0.1
