"""One real CT slice (pydicom's CT_small.dcm) as DICOM values, a 16-bit PNG (HU + 1024) and
an int16 TIFF (HU), through the course EDSR: the same HU out (issue 15's agreement check)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edsr_lab.intensity import intensity_map
from edsr_lab.stored import read_values, save_values
from edsr_lab.volume import model_sr
from edsr_lab.weights import load_pretrained

pydicom = pytest.importorskip("pydicom")


def test_png_tiff_and_dicom_of_one_ct_slice_give_the_same_hu(tmp_path):
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    stored = ds.pixel_array[32:96, 32:96]  # int16, the central 64x64 (a quick CPU test)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    hu = stored * slope + intercept
    png = read_values(save_values((hu + 1024).astype(np.uint16), tmp_path / "ct.png"))
    tif = read_values(save_values(hu.astype(np.int16), tmp_path / "ct.tif"))
    maps = {
        "dicom": intensity_map(hu, units="HU", dtype="int16", slope=slope, intercept=intercept),
        "png": png.intensity_map(),
        "tiff": tif.intensity_map(units="HU"),
    }
    inputs = {
        "dicom": maps["dicom"].to_unit(hu)[0],
        "png": maps["png"].to_unit(png.values[0, 0])[0],
        "tiff": maps["tiff"].to_unit(tif.values[0, 0])[0],
    }
    assert torch.equal(inputs["dicom"], inputs["png"]) and torch.equal(
        inputs["png"], inputs["tiff"]
    )
    sr = model_sr(load_pretrained("course_edsr_baseline_x2", progress=False))
    out = sr(inputs["dicom"][None, None])[0, 0]  # one run: the model sees the same image
    dicom_stored, clipped = maps["dicom"].decode(out)
    out_hu = {
        "dicom": dicom_stored * slope + intercept,
        "png": maps["png"].decode(out)[0].astype(np.float64) - 1024,
        "tiff": maps["tiff"].decode(out)[0].astype(np.float64),
    }
    assert out_hu["dicom"].shape == (128, 128)
    for name in ("png", "tiff"):
        assert np.abs(out_hu[name] - out_hu["dicom"]).mean() <= 0.5  # issue: within 2 HU
    # HU stay HU: no global shift (the /65535 path was 68 HU off), range kept, clipping counted.
    assert abs(out_hu["dicom"].mean() - hu.mean()) < 5.0
    assert out_hu["dicom"].min() >= hu.min() and out_hu["dicom"].max() <= hu.max()
    assert clipped.total == 128 * 128 and "values" in str(clipped)


def test_the_same_ct_slice_agrees_in_hu_through_the_upscale_command(tmp_path, capsys):
    """Issue 15's check through the command: CT_small.dcm as a DICOM, a 16-bit PNG holding
    HU + 1024 and an int16 TIFF in HU, each through ``upscale`` with the course EDSR; the
    three outputs, read back in HU, agree within 2 HU on average (the floor)."""
    from edsr_lab import cli

    ct = pydicom.data.get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(ct)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    png = save_values((hu + 1024).astype(np.uint16), tmp_path / "ct_png.png")
    tif = save_values(hu.astype(np.int16), tmp_path / "ct_tif.tif")
    out = tmp_path / "out"
    args = ["upscale", ct, png, tif, "--checkpoint", "course_edsr_baseline_x2", "--out", out]
    assert cli.main([str(a) for a in args]) == 0, capsys.readouterr().out
    derived = pydicom.dcmread(out / "CT_small_x2.dcm")
    result = {
        "dicom": derived.pixel_array * float(derived.RescaleSlope)
        + float(derived.RescaleIntercept),
        "png": read_values(out / "ct_png_x2.png").values[0, 0].astype(np.float64) - 1024,
        "tiff": read_values(out / "ct_tif_x2.tif").values[0, 0].astype(np.float64),
    }
    for name in ("png", "tiff"):
        diff = np.abs(result[name] - result["dicom"])
        assert diff.mean() <= 2.0 and diff.max() <= 1.0, (name, diff.mean(), diff.max())
    assert abs(result["dicom"].mean() - hu.mean()) < 5.0  # HU stay HU
