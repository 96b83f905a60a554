"""DICOM files that are damaged, odd or hostile: one FAILED line each, the batch goes on,
and nothing is decoded before its declared size is checked (issue 14, items 7 and 11).

Bad header values are written as raw bytes (pydicom refuses to set 'abc' as a number); the
bombs are small files the tests make: an RLE slice claiming 65535 x 65535 pixels (8 GiB
to decode) and a Deflated one whose few kB inflate to megabytes (with the cap lowered so
the test stays small: the real cap is 256 MiB).
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import _models
import numpy as np
import pytest
import torch

pydicom = pytest.importorskip("pydicom", reason='the DICOM extra: pip install -e ".[dicom]"')
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.datadict import dictionary_VR, tag_for_keyword  # noqa: E402
from pydicom.dataelem import RawDataElement  # noqa: E402
from pydicom.tag import Tag  # noqa: E402

from edsr_lab import cli, dicom, upscale  # noqa: E402
from edsr_lab.errors import DicomError  # noqa: E402
from edsr_lab.io import save_image  # noqa: E402
from edsr_lab.models import EDSR, save_checkpoint  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))


class Nearest(_models.Nearest):
    """The shared nearest-neighbour model, counting its forwards on real slices."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta" and x.shape[-1] > 8:  # not the memory probe
            self.calls += 1
        return super().forward(x)


def _raw(path: Path, src: Path = CT, **values: bytes) -> Path:
    """A copy of ``src`` with header elements set to raw bytes, as a damaged file has them."""
    ds = pydicom.dcmread(src)
    for keyword, value in values.items():
        tag = Tag(tag_for_keyword(keyword))
        value += b" " * (len(value) % 2)
        ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)
    ds.save_as(path, enforce_file_format=True)
    return path


BAD_VALUES = {
    "RescaleSlope": b"abc",
    "RescaleIntercept": b"abc",
    "NumberOfFrames": b"abc",
    "PixelSpacing": b"abc",
    "BitsStored": b"\x10\x00\x10\x00",  # two values
    "SamplesPerPixel": b"\x01\x00\x01\x00",  # two values
}


@pytest.mark.parametrize("keyword", sorted(BAD_VALUES))
def test_a_bad_header_value_is_one_clear_error(tmp_path, keyword):
    src = _raw(tmp_path / "bad.dcm", **{keyword: BAD_VALUES[keyword]})
    with pytest.raises(DicomError) as caught:
        upscale.upscale_dicom(Nearest(), src, tmp_path / "out.dcm")
    message = str(caught.value)
    assert keyword in message and "bad.dcm" in message and "\n" not in message
    assert not (tmp_path / "out.dcm").exists()


def test_pixel_spacing_with_one_value_is_refused_for_a_derived_dicom(tmp_path):
    """DICOM requires row\\column; dividing one number would write a wrong geometry. A PNG
    output does not carry the spacing, so it is written."""
    src = _raw(tmp_path / "one.dcm", PixelSpacing=b"0.5")
    model = Nearest()
    with pytest.raises(DicomError, match=r"PixelSpacing is '0.5'.*two positive numbers"):
        upscale.upscale_dicom(model, src, tmp_path / "out.dcm")
    assert model.calls == 0  # refused before the (slow) super-resolution
    upscale.upscale_dicom(model, src, tmp_path / "out.png")
    assert (tmp_path / "out.png").is_file()


@pytest.mark.parametrize("fmt", ["dcm", "png"])
def test_an_unreadable_window_is_a_note_not_a_failure(tmp_path, fmt):
    """WindowCenter only affects display: the slice is written, the line says why the
    full range was used."""
    src = _raw(tmp_path / "wc.dcm", WindowCenter=b"abc", WindowWidth=b"400")
    lines: list[str] = []
    written, failed = upscale.upscale_dicom_files(
        Nearest(), [src], tmp_path / "out", fmt=fmt, log=lines.append
    )
    assert (written, failed) == (1, 0)
    assert "WindowCenter 'abc'" in lines[0] and "full range is used for display" in lines[0]
    if fmt == "png":  # the values, recoverable with the map recorded in the file (issue 15)
        from edsr_lab.stored import read_values

        png = read_values(tmp_path / "out" / "wc_x2.png")
        values, _ = dicom.read_dicom(src)
        expected = values[0].numpy().repeat(2, 0).repeat(2, 1)
        np.testing.assert_array_equal(png.physical[0, 0], expected)  # a nearest "model"


def test_cli_a_batch_goes_on_past_every_bad_file(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "tiny.pt")
    bad = [
        _raw(tmp_path / f"{keyword}.dcm", **{keyword: value})
        for keyword, value in sorted(BAD_VALUES.items())
    ]
    one_spacing = _raw(tmp_path / "one_spacing.dcm", PixelSpacing=b"0.5")
    files = [CT, *bad, one_spacing, MR]
    out = tmp_path / "out"
    code = cli.main(
        ["upscale-dicom", *map(str, files), "--checkpoint", str(ckpt), "--out", str(out)]
    )
    stdout, stderr = capsys.readouterr()
    assert code == 1 and "Traceback" not in stderr
    failed = [line for line in stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == len(bad) + 1
    assert "2 of 9 DICOM file(s) written" in stdout.splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["CT_small_x2.dcm", "MR_small_x2.dcm"]


def test_a_zero_rescale_slope_is_refused(tmp_path):
    """Slope 0 maps every pixel to the intercept; it was silently taken as 1."""
    src = _raw(tmp_path / "zero.dcm", RescaleSlope=b"0")
    with pytest.raises(DicomError, match="RescaleSlope is 0"):
        dicom.read_dicom(src)


# -------------------------------------------------------------------------------- bombs


def test_an_rle_slice_declaring_8_gib_is_refused_before_decoding(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(CT)
    ds.Rows = ds.Columns = 65535
    ds.PixelData = encapsulate([bytes(64)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    path = tmp_path / "rle_bomb.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 10_000
    with pytest.raises(DicomError, match=r"declares 65535 x 65535 pixels.*refused before decoding"):
        dicom.read_dicom(path)


def _deflated_bomb(path: Path, inflated: int) -> Path:
    """A Part 10 file, Deflated transfer syntax, whose dataset is ``inflated`` zero bytes."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = b"".join(deflate.compress(bytes(2**20)) for _ in range(inflated // 2**20))
    with open(path, "wb") as f:
        f.write(bytes(128) + b"DICM")
        write_file_meta_info(f, meta, enforce_standard=True)
        f.write(body + deflate.flush())
    return path


def test_a_deflated_bomb_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    monkeypatch.setattr(dicom, "MAX_SLICE_BYTES", 2**20)  # 1 MiB (really 256 MiB)
    bomb = _deflated_bomb(tmp_path / "bomb.dcm", inflated=16 * 2**20)
    assert bomb.stat().st_size < 50_000

    def never(*args, **kwargs):
        raise AssertionError("pydicom.dcmread inflated the whole file")

    monkeypatch.setattr(pydicom, "dcmread", never)
    with pytest.raises(DicomError, match=r"inflates to more than 1\.1 MiB.*refused before"):
        dicom.read_dicom(bomb)


def test_a_real_deflated_slice_still_reads(tmp_path):
    values, ds = dicom.read_dicom(get_testdata_file("image_dfl.dcm"))
    assert values.shape == (1, 512, 512)
    assert np.array_equal(values[0].numpy(), ds.pixel_array.astype(np.float32))


def test_a_file_larger_than_a_slice_may_be_is_refused_unread(tmp_path, monkeypatch):
    big = tmp_path / "big.dcm"
    shutil.copy(CT, big)
    monkeypatch.setattr(dicom, "MAX_SLICE_BYTES", 2**14)  # CT_small is 39 kB
    with pytest.raises(DicomError, match="more than one slice here may hold"):
        dicom.read_dicom(big)


# ---------------------------------------------------------------------- odd files


def test_an_empty_file_and_an_image_named_dcm_say_what_they_are(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(DicomError, match=r"empty \(0 bytes\)"):
        dicom.read_dicom(empty)
    png = save_image(torch.rand(3, 8, 8), tmp_path / "photo.png")
    renamed = png.rename(tmp_path / "photo.dcm")
    with pytest.raises(DicomError, match="it is a PNG image, not DICOM") as caught:
        dicom.read_dicom(renamed)
    assert "force=True" not in str(caught.value)  # pydicom's advice is not ours to give


def test_a_big_endian_slice_gives_a_little_endian_derived_dicom(tmp_path):
    """Writing converted nothing: save_as refused with a raw ValueError."""
    src = get_testdata_file("MR_small_bigendian.dcm")
    out = tmp_path / "out.dcm"
    upscale.upscale_dicom(Nearest(), src, out)
    written, original = pydicom.dcmread(out), pydicom.dcmread(src)
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    np.testing.assert_array_equal(written.pixel_array[::2, ::2], original.pixel_array)


def test_a_header_element_that_cannot_be_written_is_one_clear_error(tmp_path):
    """A damaged VR in InstanceCreationTime (seen by fuzzing): reading the slice works,
    building the derived file must not end in pydicom's NotImplementedError."""
    data = bytearray(CT.read_bytes())
    at = data.index(b"\x08\x00\x13\x00TM")  # (0008,0013) InstanceCreationTime, VR TM
    data[at + 4 : at + 6] = b"T\xf0"
    src = tmp_path / "damaged.dcm"
    src.write_bytes(bytes(data))
    dicom.read_dicom(src)  # the pixels are fine
    with pytest.raises(DicomError, match="damaged.dcm.*cannot be carried into the derived"):
        upscale.upscale_dicom(Nearest(), src, tmp_path / "out.dcm")
    upscale.upscale_dicom(Nearest(), src, tmp_path / "out.png")  # a PNG needs no header


def test_signed_32_bit_slices_with_negative_values_round_trip(tmp_path):
    ds = pydicom.dcmread(CT)
    pixels = ds.pixel_array.astype(np.int32) * 1000 - 500_000
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 1
    ds.PixelData = pixels.astype("<i4").tobytes()
    src = tmp_path / "i32.dcm"
    ds.save_as(src, enforce_file_format=True)
    upscale.upscale_dicom(Nearest(), src, tmp_path / "out.dcm")
    written = pydicom.dcmread(tmp_path / "out.dcm").pixel_array
    assert written.dtype == np.int32 and written.min() < 0
    np.testing.assert_array_equal(written[::2, ::2], pixels)


def test_a_dicomdir_is_named_as_an_index_and_skipped_in_a_folder(tmp_path):
    """A DICOM export's root holds a DICOMDIR beside (or above) its slices: it is no image."""
    index = Path(get_testdata_file("DICOMDIR"))
    with pytest.raises(DicomError, match="is a DICOMDIR, the index of a DICOM folder"):
        dicom.read_dicom(index)
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(index, folder / "DICOMDIR")
    shutil.copy(CT, folder / "ct.dcm")
    said = []
    assert upscale.collect_inputs([folder], log=said.append) == [folder / "ct.dcm"]
    why = "a DICOMDIR (the index of DICOM media, not an image)"
    assert said == [f"skipped {folder / 'DICOMDIR'}: {why}"]


def test_a_truncated_uncompressed_slice_is_called_damaged_not_compressed(tmp_path):
    cut = tmp_path / "cut.dcm"
    data = CT.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomError, match="damaged or cut short") as caught:
        dicom.read_dicom(cut)
    assert "pylibjpeg" not in str(caught.value)  # decoder advice is for compressed syntaxes


def test_a_dicom_without_pixels_says_it_holds_no_image(tmp_path):
    ds = pydicom.dcmread(CT)
    del ds.PixelData  # what a structured report or an RT structure set looks like
    ds.save_as(tmp_path / "report.dcm")
    with pytest.raises(DicomError, match=r"holds no image \(no PixelData; CT: a report"):
        dicom.read_dicom(tmp_path / "report.dcm")


def test_evaluate_and_train_read_a_dicom_export_with_its_dicomdir(tmp_path):
    """An export's root: a DICOMDIR beside the slices (pydicom's own index here)."""
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(get_testdata_file("DICOMDIR"), folder / "DICOMDIR")
    shutil.copy(CT, folder / "ct.dcm")
    assert not dicom.is_dicom_file(folder / "DICOMDIR") and dicom.is_dicom_file(folder / "ct.dcm")
    from edsr_lab.data.medical import source_volumes
    from edsr_lab.evaluate_volumes import load_volumes

    assert [v.name for v in source_volumes(folder)] == ["ct.dcm"]
    assert len(load_volumes([folder])) == 1
