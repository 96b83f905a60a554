"""DICOM slices: rescale applied on reading, exact inverse on writing, the derived image's
metadata, windowing, 16-bit PNG output, and one clear line for what is not supported.

Uses the small files pydicom ships (CT_small.dcm: signed 16-bit CT with a rescale
intercept; MR_small.dcm: 16-bit MR with a window) and variants the tests write.
"""

from __future__ import annotations

import builtins
import os
import sys

import numpy as np
import pytest
import torch
from _models import Nearest

pydicom = pytest.importorskip("pydicom", reason='the DICOM extra: pip install -e ".[dicom]"')
from pydicom.data import get_testdata_file  # noqa: E402

from edsr_lab import cli, dicom  # noqa: E402
from edsr_lab.errors import DicomError, EdsrLabError, MissingDependencyError  # noqa: E402
from edsr_lab.models import EDSR, save_checkpoint  # noqa: E402
from edsr_lab.upscale import upscale_dicom  # noqa: E402

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")


def _variant(tmp_path, name="variant.dcm", src=CT, **changes):
    ds = pydicom.dcmread(src)
    for key, value in changes.items():
        setattr(ds, key, value)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_bundled_test_files_are_available_offline():
    assert CT is not None and MR is not None


def test_read_applies_rescale_slope_and_intercept(tmp_path):
    values, ds = dicom.read_dicom(CT)
    assert values.dtype == torch.float32 and values.shape == (1, ds.Rows, ds.Columns)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(
        ds.RescaleIntercept
    )
    assert float(ds.RescaleIntercept) == -1024  # so the test checks something
    np.testing.assert_array_equal(values[0].numpy(), expected)

    path = _variant(tmp_path, RescaleSlope=0.5, RescaleIntercept=-100)
    values2, ds2 = dicom.read_dicom(path)
    np.testing.assert_allclose(values2[0].numpy(), ds2.pixel_array * 0.5 - 100)


@pytest.mark.parametrize("src", [CT, MR], ids=["CT", "MR"])
def test_roundtrip_through_a_nearest_model_is_exact(tmp_path, src):
    """Grey -> RGB -> model -> grey and the inverse rescale lose nothing: a nearest-neighbour
    'model' gives exactly the stored integers repeated."""
    out = tmp_path / "sr.dcm"
    info = upscale_dicom(Nearest(2), src, out)
    original = pydicom.dcmread(src)
    written = pydicom.dcmread(out)
    expected = original.pixel_array.repeat(2, 0).repeat(2, 1)
    np.testing.assert_array_equal(written.pixel_array, expected)
    assert info["sr_shape"] == expected.shape
    assert written.pixel_array.dtype == original.pixel_array.dtype


def test_derived_dicom_metadata(tmp_path):
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    out = tmp_path / "ct_x2.dcm"
    upscale_dicom(model, CT, out)
    a, b = pydicom.dcmread(CT), pydicom.dcmread(out)
    assert (b.Rows, b.Columns) == (2 * a.Rows, 2 * a.Columns)
    assert [float(v) for v in b.PixelSpacing] == pytest.approx(
        [float(v) / 2 for v in a.PixelSpacing]
    )
    assert b.SOPInstanceUID != a.SOPInstanceUID
    assert b.file_meta.MediaStorageSOPInstanceUID == b.SOPInstanceUID
    assert b.SeriesInstanceUID != a.SeriesInstanceUID
    assert b.StudyInstanceUID == a.StudyInstanceUID  # metadata kept
    assert b.PatientName == a.PatientName and b.Modality == a.Modality
    assert b.ImageType[:2] == ["DERIVED", "SECONDARY"]
    assert "x2" in b.DerivationDescription and "edsr-lab" in b.DerivationDescription
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    for key in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        assert b[key].value == a[key].value, key
    assert (b.RescaleSlope, b.RescaleIntercept) == (a.RescaleSlope, a.RescaleIntercept)
    # the written values stay within the input's range (the min/max map is clamped)
    values_a, _ = dicom.read_dicom(CT)
    values_b, _ = dicom.read_dicom(out)
    assert values_a.min() - 1 <= values_b.min() and values_b.max() <= values_a.max() + 1


def test_values_outside_the_stored_range_are_clipped(tmp_path):
    path = _variant(tmp_path, BitsStored=12, HighBit=11, PixelRepresentation=0)
    _, ds = dicom.read_dicom(path)
    assert dicom.stored_range(ds) == (0, 4095)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    values = torch.tensor([[[intercept - 50.0, intercept + 5000.0 * slope]]])
    out = dicom.derived_dataset(ds, values, 1)
    assert out.pixel_array.tolist() == [[0, 4095]]


def test_window_follows_the_dicom_linear_formula():
    hu = torch.tensor([-1000.0, -160.0, -159.0, 40.0, 239.0, 240.0, 3000.0])
    shown = dicom.window(hu, 40, 400)
    assert shown[0] == 0 and shown[1] == 0  # at/below c - 0.5 - (w-1)/2 = -160
    assert shown[-1] == 1 and shown[-2] == 1  # above c - 0.5 + (w-1)/2 = 239
    assert 0 < shown[2] < shown[3] < shown[4] <= 1
    assert float(shown[3]) == pytest.approx((40 - 39.5) / 399 + 0.5)
    assert torch.equal(dicom.window(hu, 40, 400, invert=True), 1 - shown)
    with pytest.raises(DicomError, match="width"):
        dicom.window(hu, 40, 0)


def test_window_comes_from_the_file_or_the_data():
    values, ds = dicom.read_dicom(MR)
    assert dicom.window_from_dataset(ds, values) == (600.0, 1600.0)  # stored in MR_small
    values, ds = dicom.read_dicom(CT)  # no window stored: the full range
    lo, hi = float(values.min()), float(values.max())
    assert dicom.window_from_dataset(ds, values) == ((lo + hi) / 2, hi - lo)


def test_window_uses_the_first_of_several_presets(tmp_path):
    path = _variant(tmp_path, WindowCenter=[40, 400], WindowWidth=[400, 2000])
    values, ds = dicom.read_dicom(path)
    assert dicom.window_from_dataset(ds, values) == (40.0, 400.0)


def test_png_output_is_the_windowed_slice_in_16_bits(tmp_path):
    from PIL import Image

    out = upscale_dicom(Nearest(2), MR, tmp_path / "mr.png", window_cw=(600, 1600))["path"]
    with Image.open(out) as img:
        assert img.mode.startswith("I;16") or img.mode == "I"
        png = np.asarray(img).astype(np.int64)
    values, _ = dicom.read_dicom(MR)
    expected = dicom.window(values, 600, 1600)[0].repeat_interleave(2, 0).repeat_interleave(2, 1)
    # equal up to float32 rounding of the min/max map (one level of 65535)
    np.testing.assert_allclose(png, np.floor(expected.double().numpy() * 65535 + 0.5), atol=1)
    assert len(np.unique(png)) > 256  # more levels than an 8-bit file could hold


def test_missing_pydicom_gives_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_pydicom(name, *args, **kwargs):
        if name == "pydicom" or name.startswith("pydicom."):
            raise ImportError("No module named 'pydicom'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pydicom", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[dicom\]"'):
        dicom.read_dicom(CT)
    assert issubclass(MissingDependencyError, ImportError)


def test_unsupported_files_give_one_clear_error(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("not a dicom file")
    with pytest.raises(DicomError, match="notes.dcm"):
        dicom.read_dicom(text)
    with pytest.raises(DicomError, match="does not exist"):
        dicom.read_dicom(tmp_path / "missing.dcm")
    multi = _variant(tmp_path, "multi.dcm", NumberOfFrames=2)
    with pytest.raises(DicomError, match="2 frames"):
        dicom.read_dicom(multi)
    colour = _variant(tmp_path, "colour.dcm", PhotometricInterpretation="RGB", SamplesPerPixel=3)
    with pytest.raises(DicomError, match="RGB"):
        dicom.read_dicom(colour)
    for err in (DicomError("x"), MissingDependencyError("x")):
        assert isinstance(err, EdsrLabError)


def test_output_never_replaces_the_input_or_an_existing_file(tmp_path):
    src = _variant(tmp_path, "ct.dcm")
    before = src.read_bytes()
    with pytest.raises(DicomError, match="is the input"):
        upscale_dicom(Nearest(2), src, src, overwrite=True)
    existing = tmp_path / "done.dcm"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        upscale_dicom(Nearest(2), src, existing)
    assert src.read_bytes() == before and existing.read_bytes() == b"keep me"
    with pytest.raises(DicomError, match=".dcm"):
        upscale_dicom(Nearest(2), src, tmp_path / "out.jpg")


def test_is_dicom_file_by_suffix_or_preamble(tmp_path):
    renamed = tmp_path / "slice_without_suffix"
    renamed.write_bytes(open(CT, "rb").read())
    assert dicom.is_dicom_file(renamed) and dicom.is_dicom_file(tmp_path / "x.DCM")
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert not dicom.is_dicom_file(png)
    assert not dicom.is_dicom_file(tmp_path)  # a folder
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        assert not dicom.is_dicom_file(tmp_path / "pipe")  # returns, does not block


def test_cli_upscale_dicom_writes_dicom_and_reports_each_failure(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "tiny.pt")
    bad = tmp_path / "bad.dcm"
    bad.write_text("oops")
    out = tmp_path / "out"
    args = ["upscale-dicom", CT, str(bad), MR, "--checkpoint", str(ckpt), "--out", str(out)]
    assert cli.main(args) == 1  # one file failed, the others were written
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.startswith("FAILED") and "bad.dcm" in ln for ln in lines)
    assert "2 of 3 DICOM file(s) written" in lines[-1]
    assert pydicom.dcmread(out / "CT_small_x2.dcm").Rows == 256
    assert pydicom.dcmread(out / "MR_small_x2.dcm").Rows == 128

    # run again: existing outputs are refused before anything is written (as for images),
    # with a message for both the CLI and Python users
    before = (out / "CT_small_x2.dcm").read_bytes()
    assert cli.main(["upscale-dicom", CT, "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing was written" in err and "--overwrite (overwrite=True from Python)" in err
    assert "pass overwrite=True" not in err and len(err.strip().splitlines()) == 1
    assert (out / "CT_small_x2.dcm").read_bytes() == before

    # png output, with a window
    assert cli.main(args[:2] + args[4:] + ["--format", "png", "--window", "40", "400"]) == 0
    assert (out / "CT_small_x2.png").is_file()


def test_cli_upscale_dicom_refuses_name_clashes_before_writing(tmp_path, capsys):
    ckpt = save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "tiny.pt")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = _variant(tmp_path / "a", "slice.dcm")
    two = _variant(tmp_path / "b", "slice.dcm")
    out = tmp_path / "out"
    code = cli.main(
        ["upscale-dicom", str(one), str(two), "--checkpoint", str(ckpt), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "both be written" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_upscale_sends_dicom_files_through_the_dicom_path(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "tiny.pt")
    from edsr_lab.data import sample_path

    png = sample_path("gray_camera")
    out = tmp_path / "out"
    args = ["upscale", CT, str(png), "--checkpoint", str(ckpt), "--out", str(out)]
    assert cli.main(args) == 0
    written = pydicom.dcmread(out / "CT_small_x2.dcm")
    assert written.Rows == 256 and written.ImageType[0] == "DERIVED"
    assert (out / "gray_camera_x2.png").is_file()
    assert "2 of 2 file(s) written" in capsys.readouterr().out  # one plan, one summary


@pytest.mark.parametrize("slope, intercept", [(0.5, -100.0), (2.0, -1024.0)])
def test_roundtrip_with_a_rescale_slope_is_exact(tmp_path, slope, intercept):
    """Stored = (value - intercept) / slope on writing, the inverse of reading; with slope
    1 (the bundled files) a wrong order of the two would go unnoticed."""
    src = _variant(tmp_path, RescaleSlope=slope, RescaleIntercept=intercept)
    out = tmp_path / "sr.dcm"
    upscale_dicom(Nearest(2), src, out)
    original, written = pydicom.dcmread(src), pydicom.dcmread(out)
    expected = original.pixel_array.repeat(2, 0).repeat(2, 1)
    np.testing.assert_array_equal(written.pixel_array, expected)
    assert (float(written.RescaleSlope), float(written.RescaleIntercept)) == (slope, intercept)
