"""Issue 15 through the commands (``edsr_lab.cli.main``), not only the library.

A real checkpoint whose EDSR is an *exact* nearest-neighbour upscaler (identity convolutions,
a zero body, a sub-pixel convolution that copies each pixel into its four sub-pixels) makes
every value predictable: through PNG, TIFF (int16, float32, stacks), DICOM (series,
multi-frame, colour, big-endian, implicit VR) and NIfTI, ``upscale`` must give back exactly
the input's stored numbers, each repeated 2 x 2, in the input's dtype. The same model with a
constant added in the model's [0, 1] space shows *which* intensity map was used (the shift
in the data's units is that constant times the map's range): one map per series.

Real medical files only from pip packages: pydicom's test files (get_testdata_file) and
nibabel's bundled volumes (nibabel/tests/data).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edsr_lab import cli
from edsr_lab.intensity import IntensityMap
from edsr_lab.models import EDSR, save_checkpoint
from edsr_lab.stored import read_values, save_values

pydicom = pytest.importorskip("pydicom", reason='the DICOM extra: pip install -e ".[dicom]"')
nib = pytest.importorskip("nibabel", reason='the NIfTI extra: pip install -e ".[nifti]"')
from pydicom.data import get_testdata_file  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def nearest_edsr(bias: float = 0.0) -> EDSR:
    """An EDSR that is exactly nearest-neighbour x2 (plus ``bias`` in [0, 1] units)."""
    model = EDSR(n_resblocks=1, n_feats=3, scale=2)
    eye = torch.zeros(3, 3, 3, 3)
    for c in range(3):
        eye[c, c, 1, 1] = 1.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "mean" not in name:
                p.zero_()
        model.head[0].weight.copy_(eye)
        for c in range(3):  # every sub-pixel of channel c copies channel c
            model.tail[0][0].weight[4 * c : 4 * c + 4, c, 1, 1] = 1.0
        model.tail[1].weight.copy_(eye)
        model.tail[1].bias.fill_(255.0 * bias)  # the network computes in [0, 255]
    return model.eval()


@pytest.fixture(scope="module")
def nearest(tmp_path_factory) -> Path:
    return save_checkpoint(nearest_edsr(), tmp_path_factory.mktemp("ck") / "nearest.pt")


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Path:
    """Nearest neighbour + 0.01 in the model's [0, 1]: shows the map's range."""
    return save_checkpoint(nearest_edsr(0.01), tmp_path_factory.mktemp("ck") / "shift.pt")


def up2(a: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 along the last two axes."""
    return a.repeat(2, -2).repeat(2, -1)


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _ct_hu() -> np.ndarray:
    ds = pydicom.dcmread(CT)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


# ------------------------------------------------------------------ values exact, every format


def test_values_are_exact_through_png_tiff_stack_and_float(tmp_path, nearest, capsys):
    hu = _ct_hu()
    src = tmp_path / "in"
    save_values((hu + 1024).astype(np.uint16), src / "ct16.png")
    save_values(hu.astype(np.int16), src / "ct_hu.tif")
    save_values((hu / 1000).astype(np.float32), src / "ct_float.tif")
    stack = np.stack([hu, hu * 0.5, hu[::-1]]).astype(np.int16)[:, None]  # 3 pages
    save_values(stack, src / "stack.tif")
    code, out, _ = run(capsys, "upscale", src, "--checkpoint", nearest, "--out", tmp_path / "o")
    assert code == 0, out
    o = tmp_path / "o"
    png = read_values(o / "ct16_x2.png")
    assert png.dtype == "uint16"
    np.testing.assert_array_equal(png.values[0, 0], up2((hu + 1024).astype(np.uint16)))
    tif = read_values(o / "ct_hu_x2.tif")
    assert tif.dtype == "int16"
    np.testing.assert_array_equal(tif.values[0, 0], up2(hu.astype(np.int16)))
    flt = read_values(o / "ct_float_x2.tif")
    assert flt.dtype == "float32"
    np.testing.assert_allclose(flt.values[0, 0], up2(hu / 1000), atol=1e-5)
    pages = read_values(o / "stack_x2.tif")
    assert pages.pages == 3
    np.testing.assert_array_equal(pages.values, up2(stack))
    # one map over the whole stack (rule 2), recorded in the output
    assert (pages.recorded.lo, pages.recorded.hi) == (float(stack.min()), float(stack.max()))
    assert "3 pages" in out


def test_dicom_slice_exact_through_upscale_and_upscale_dicom(tmp_path, nearest, capsys):
    for command in ("upscale", "upscale-dicom"):
        out_dir = tmp_path / command
        assert run(capsys, command, CT, MR, "--checkpoint", nearest, "--out", out_dir)[0] == 0
        for src in (CT, MR):
            a = pydicom.dcmread(src)
            b = pydicom.dcmread(out_dir / f"{src.stem}_x2.dcm")
            np.testing.assert_array_equal(b.pixel_array, up2(a.pixel_array))
            assert b.pixel_array.dtype == a.pixel_array.dtype


def test_nifti_volumes_exact_with_their_geometry(tmp_path, nearest, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("anatomical.nii", "example4d.nii.gz"):
        shutil.copy(NIBABEL_DATA / name, src / name)
    code, out, _ = run(capsys, "upscale", src, "--checkpoint", nearest, "--out", tmp_path / "o")
    assert code == 0, out
    for name, written in (("anatomical.nii", "anatomical_x2.nii"),
                          ("example4d.nii.gz", "example4d_x2.nii.gz")):  # fmt: skip
        a, b = nib.load(src / name), nib.load(tmp_path / "o" / written)
        stored_a = np.asarray(a.dataobj.get_unscaled())
        stored_b = np.asarray(b.dataobj.get_unscaled())
        assert stored_b.dtype == stored_a.dtype
        expected = stored_a.repeat(2, 0).repeat(2, 1)  # axis 2 (the default) not upscaled
        np.testing.assert_array_equal(stored_b, expected)
        zooms_a, zooms_b = a.header.get_zooms(), b.header.get_zooms()
        assert zooms_b[:3] == pytest.approx((zooms_a[0] / 2, zooms_a[1] / 2, zooms_a[2]))
        shift = -0.25 * (a.affine[:3, 0] + a.affine[:3, 1])  # the pixel-centre shift at x2
        np.testing.assert_allclose(b.affine[:3, 3], a.affine[:3, 3] + shift, atol=1e-4)


def test_axis_picks_the_slicing_axis(tmp_path, nearest, capsys):
    src = NIBABEL_DATA / "anatomical.nii"
    shape = nib.load(src).shape
    for axis in (0, 2):
        out_dir = tmp_path / f"axis{axis}"
        args = ["upscale", src, "--checkpoint", nearest, "--out", out_dir, "--axis", axis]
        assert run(capsys, *args)[0] == 0
        got = nib.load(out_dir / "anatomical_x2.nii").shape
        assert got == tuple(n if a == axis else 2 * n for a, n in enumerate(shape))


# ------------------------------------------------------------------ DICOM series


def _series(folder: Path, n: int = 3, description: str = "acquired on scanner 2") -> list[Path]:
    """``n`` slices of one series, named without extensions (as scanners write them), each
    with its own values (the last with half the range) and position."""
    folder.mkdir(parents=True)
    base = pydicom.dcmread(CT)
    paths = []
    for i in range(n):
        ds = pydicom.dcmread(CT)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [float(v) for v in base.ImagePositionPatient[:2]] + [5.0 * i]
        ds.DerivationDescription = description
        if i == n - 1:  # a slice with a narrower range than the series
            ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        path = folder / f"IM{i:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.mark.parametrize("command", ["upscale", "upscale-dicom"])
def test_a_series_folder_gives_one_new_series_with_one_map(tmp_path, shifted, capsys, command):
    slices = _series(tmp_path / "series")
    (tmp_path / "series" / "README.txt").write_text("notes of the study")
    code, out, _ = run(
        capsys, command, tmp_path / "series", "--checkpoint", shifted, "--out", tmp_path / "o"
    )
    assert code == 0, out
    assert "skipped" in out and "README.txt" in out  # never silently
    sources = [pydicom.dcmread(p) for p in slices]
    derived = [pydicom.dcmread(tmp_path / "o" / f"{p.name}_x2.dcm") for p in slices]
    uids = {d.SeriesInstanceUID for d in derived}
    assert len(uids) == 1 and uids != {sources[0].SeriesInstanceUID}
    assert {int(d.SeriesNumber) for d in derived} == {int(sources[0].SeriesNumber) + 1000}
    assert all("SR x2" in d.SeriesDescription for d in derived)
    assert len({d.SOPInstanceUID for d in derived} | {s.SOPInstanceUID for s in sources}) == 6
    # the source's DerivationDescription kept, this step and its map appended
    notes = [d.DerivationDescription for d in derived]
    assert all(n.startswith("acquired on scanner 2; Super-resolved x2") for n in notes)
    record = json.loads(notes[0][notes[0].index("{") : notes[0].rindex("}") + 1])
    mapping = IntensityMap.from_dict(record)
    hu = [s.pixel_array * 1.0 + float(s.RescaleIntercept) for s in sources]
    assert (mapping.lo, mapping.hi) == (min(h.min() for h in hu), max(h.max() for h in hu))
    assert mapping.units == "HU"
    # one map: every slice (the narrow one too) is shifted by 0.01 of the SERIES' range
    for s, d in zip(sources, derived, strict=True):
        shift = d.pixel_array.astype(np.float64) - up2(s.pixel_array).astype(np.float64)
        keep = (
            up2(s.pixel_array) * 1.0 + float(s.RescaleIntercept) < mapping.hi - 0.02 * mapping.peak
        )
        assert np.abs(shift[keep] - 0.01 * mapping.peak).max() <= 0.5 + 1e-6


def test_series_geometry_moves_by_the_pixel_centre_shift(tmp_path, nearest, capsys):
    slices = _series(tmp_path / "series", n=2)
    assert run(capsys, "upscale", *slices, "--checkpoint", nearest, "--out", tmp_path / "o")[0] == 0
    for path in slices:
        a = pydicom.dcmread(path)
        b = pydicom.dcmread(tmp_path / "o" / f"{path.name}_x2.dcm")
        row, col = (float(v) for v in a.PixelSpacing)
        assert [float(v) for v in b.PixelSpacing] == pytest.approx([row / 2, col / 2])
        iop = np.array([float(v) for v in a.ImageOrientationPatient])
        expected = np.array([float(v) for v in a.ImagePositionPatient]) - 0.25 * (
            iop[:3] * col + iop[3:] * row
        )
        np.testing.assert_allclose([float(v) for v in b.ImagePositionPatient], expected, atol=1e-4)
        assert b.ImagePositionPatient[2] == a.ImagePositionPatient[2]  # slice position kept


# ------------------------------------------------------------------ multi-frame, colour, endian


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_expb.dcm"])
def test_multi_frame_in_and_out(tmp_path, nearest, capsys, name):
    src = Path(get_testdata_file(name))
    code, out, _ = run(capsys, "upscale", src, "--checkpoint", nearest, "--out", tmp_path / "o")
    assert code == 0, out
    a = pydicom.dcmread(src)
    b = pydicom.dcmread(tmp_path / "o" / f"{src.stem}_x2.dcm")
    assert int(b.NumberOfFrames) == int(a.NumberOfFrames) == 15 and b.Rows == 2 * a.Rows
    np.testing.assert_array_equal(
        b.pixel_array, up2(a.pixel_array.astype(a.pixel_array.dtype.newbyteorder("=")))
    )
    assert b.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert list(b.GridFrameOffsetVector) == list(a.GridFrameOffsetVector)
    assert "15 frames" in out


def test_multi_frame_as_a_tiff_stack_and_refused_as_one_png(tmp_path, nearest, capsys):
    src = Path(get_testdata_file("rtdose.dcm"))
    args = ["upscale-dicom", src, "--checkpoint", nearest, "--out", tmp_path / "t"]
    assert run(capsys, *args, "--format", "tiff")[0] == 0
    stack = read_values(tmp_path / "t" / "rtdose_x2.tif")
    assert stack.pages == 15
    np.testing.assert_array_equal(
        stack.physical[:, 0], up2(pydicom.dcmread(src).pixel_array).astype(np.float64)
    )
    code, out, _ = run(capsys, *args[:-1], tmp_path / "p", "--format", "png")
    assert code == 1 and "FAILED" in out and "--format tiff" in out


@pytest.mark.parametrize(
    "name",
    ["examples_rgb_color.dcm", "SC_ybr_full_422_uncompressed.dcm", "ExplVR_BigEnd.dcm"],
)
def test_colour_dicom_through_the_rgb_model(tmp_path, nearest, capsys, name):
    src = Path(get_testdata_file(name))
    code, out, _ = run(capsys, "upscale", src, "--checkpoint", nearest, "--out", tmp_path / "o")
    assert code == 0, out
    a = pydicom.dcmread(src)
    b = pydicom.dcmread(tmp_path / "o" / f"{src.stem}_x2.dcm")
    assert (b.SamplesPerPixel, b.PhotometricInterpretation) == (3, "RGB")
    rgb = a.pixel_array  # pydicom's RGB (YBR converted)
    np.testing.assert_array_equal(b.pixel_array, rgb.repeat(2, 0).repeat(2, 1))
    assert "colour" in out


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_big_endian_and_implicit_are_read_and_written_little_endian(
    tmp_path, nearest, capsys, name
):
    src = Path(get_testdata_file(name))
    code, out, _ = run(capsys, "upscale", src, "--checkpoint", nearest, "--out", tmp_path / "o")
    assert code == 0, out
    b = pydicom.dcmread(tmp_path / "o" / f"{src.stem}_x2.dcm")
    assert b.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    np.testing.assert_array_equal(b.pixel_array, up2(pydicom.dcmread(MR).pixel_array))


# ------------------------------------------------------------------ --format, --range, failures


def test_format_png_and_tiff_keep_the_values(tmp_path, nearest, capsys):
    hu = _ct_hu()
    for fmt, name in (("png", "CT_small_x2.png"), ("tiff", "CT_small_x2.tif")):
        out_dir = tmp_path / fmt
        args = ["upscale-dicom", CT, "--checkpoint", nearest, "--out", out_dir, "--format", fmt]
        assert run(capsys, *args)[0] == 0
        image = read_values(out_dir / name)
        np.testing.assert_array_equal(image.physical[0, 0], up2(hu))  # HU, recovered
        assert image.recorded.units == "HU"
    assert read_values(tmp_path / "png" / "CT_small_x2.png").dtype == "uint16"
    tif = read_values(tmp_path / "tiff" / "CT_small_x2.tif")
    assert tif.dtype == "int16" and tif.recorded.intercept == 0  # an int16 TIFF in HU
    # --window: a picture for viewing instead (not the values)
    args = ["upscale-dicom", CT, "--checkpoint", nearest, "--out", tmp_path / "w"]
    assert run(capsys, *args, "--format", "png", "--window", "40", "400")[0] == 0
    assert read_values(tmp_path / "w" / "CT_small_x2.png").recorded is None


def test_range_and_units_change_the_map(tmp_path, shifted, capsys):
    def shift_of(*extra) -> float:
        out_dir = tmp_path / "_".join(str(e) for e in extra or ("auto",))
        args = ["upscale", CT, "--checkpoint", shifted, "--out", out_dir, *extra]
        assert run(capsys, *args)[0] == 0
        b = pydicom.dcmread(out_dir / "CT_small_x2.dcm").pixel_array.astype(np.float64)
        a = up2(pydicom.dcmread(CT).pixel_array).astype(np.float64)
        return float(np.median(b - a))

    auto = shift_of()
    hu = _ct_hu()
    assert auto == pytest.approx(0.01 * (hu.max() - hu.min()), abs=1)
    assert shift_of("--range", "ct") == pytest.approx(0.01 * 4095, abs=1)  # -1024..3071 HU
    # an HU preset on a file whose units are not HU is refused, with --units as the fix
    png = save_values((hu + 1024).astype(np.uint16), tmp_path / "ct16.png")
    code, out, _ = run(capsys, "upscale", png, "--checkpoint", shifted, "--out", tmp_path / "p",
                       "--range", "ct")  # fmt: skip
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 1 and "--units HU" in failed[0]  # its own line
    code, out, _ = run(capsys, "upscale", png, "--checkpoint", shifted, "--out", tmp_path / "p",
                       "--range", "ct", "--units", "HU", "--overwrite")  # fmt: skip
    assert code == 0 and "[-1024, 3071] HU" in out


def test_bad_range_is_one_line_before_anything(tmp_path, nearest, capsys):
    code, out, err = run(capsys, "upscale", CT, "--checkpoint", nearest, "--out",
                         tmp_path / "o", "--range", "bright")  # fmt: skip
    assert code == 2 and err.startswith("error: ") and "unknown range" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_files_that_cannot_be_done_are_one_failed_line_each(tmp_path, nearest, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(CT, folder / "ct.dcm")
    shutil.copy(get_testdata_file("examples_palette.dcm"), folder / "palette.dcm")
    (folder / "broken.dcm").write_bytes(b"not dicom at all")
    shutil.copy(NIBABEL_DATA / "anatomical.nii", folder / "vol.nii")
    code, out, _ = run(capsys, "upscale", folder, "--checkpoint", nearest, "--out", tmp_path / "o")
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 2
    assert any("PALETTE COLOR" in line for line in failed)
    assert "2 of 4 file(s) written" in out.splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["ct_x2.dcm", "vol_x2.nii"]


def test_bits_and_mode_convert_a_values_file(tmp_path, nearest, capsys):
    hu = _ct_hu()
    src = save_values(hu.astype(np.int16), tmp_path / "ct.tif")
    base = ["upscale", src, "--checkpoint", nearest]
    assert run(capsys, *base, "--out", tmp_path / "auto")[0] == 0
    assert read_values(tmp_path / "auto" / "ct_x2.tif").dtype == "int16"
    assert run(capsys, *base, "--out", tmp_path / "b8", "--bits", "8")[0] == 0
    eight = read_values(tmp_path / "b8" / "ct_x2.png")
    assert eight.dtype == "uint8"  # the range spread over 0..255, the step recorded
    np.testing.assert_allclose(
        eight.physical[0, 0], up2(hu), atol=(hu.max() - hu.min()) / 510 + 1e-6
    )
    assert run(capsys, *base, "--out", tmp_path / "b32", "--bits", "32")[0] == 0
    floats = read_values(tmp_path / "b32" / "ct_x2.tif")
    assert floats.dtype == "float32" and floats.recorded.slope == 1.0
    args = [*base, "--out", tmp_path / "rgb", "--mode", "RGB", "--bits", "16"]
    assert run(capsys, *args)[0] == 0
    rgb = read_values(tmp_path / "rgb" / "ct_x2.png")
    assert rgb.channels == 3 and rgb.dtype == "uint16"
    np.testing.assert_array_equal(rgb.physical[0, 1], up2(hu))
    code, _, err = run(capsys, *base, "--out", tmp_path / "la", "--mode", "LA")
    assert code == 2 and "alpha is added to 8-bit pictures only" in err


def test_a_folder_lists_what_it_skips(tmp_path, nearest, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    save_values(np.arange(64, dtype=np.uint16).reshape(8, 8) * 50, folder / "slice.png")
    shutil.copy(CT, folder / "IM0001")  # a DICOM without extension: taken
    (folder / "protocol.pdf").write_bytes(b"%PDF-1.4")
    (folder / "sub").mkdir()
    code, out, _ = run(capsys, "upscale", folder, "--checkpoint", nearest, "--out", tmp_path / "o")
    assert code == 0
    skipped = sorted(line for line in out.splitlines() if line.startswith("skipped"))
    assert len(skipped) == 2 and "protocol.pdf: not an image" in skipped[0]
    assert "sub: a folder" in skipped[1]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["IM0001_x2.dcm", "slice_x2.png"]
    (folder / "slice.png").unlink()
    (folder / "IM0001").unlink()
    code, _, err = run(capsys, "upscale", folder, "--checkpoint", nearest, "--out", tmp_path / "e")
    assert code == 2 and "holds no image, DICOM or NIfTI files" in err
