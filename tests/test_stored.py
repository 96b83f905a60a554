"""Stored values through PNG and TIFF (edsr_lab.stored, edsr_lab.tiff): exact, with the map."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from edsr_lab.errors import (
    BadArgumentError,
    ImageInputError,
    ImageReadError,
    ImageTypeError,
    OutputExistsError,
)
from edsr_lab.intensity import IntensityMap
from edsr_lab.io import load_image
from edsr_lab.stored import PNG_TEXT_KEY, read_values, save_values
from edsr_lab.tiff import encode_tiff


def _hu(seed: int = 0, shape=(10, 12)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = rng.integers(-896, 1168, size=shape).astype(np.int16)
    hu.flat[0], hu.flat[-1] = -896, 1167
    return hu


def _nearest(unit: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """An exact model: nearest-neighbour upscaling (N, C, h, w) -> (N, C, sh, sw)."""
    return F.interpolate(unit, scale_factor=scale, mode="nearest")


def test_twelve_bit_png_reads_as_its_values_not_as_a_dark_image(tmp_path):
    stored = (_hu() + 1024).astype(np.uint16)  # 128..2191, as CT exported to PNG
    path = save_values(stored, tmp_path / "ct.png")
    image = read_values(path)
    assert image.values.shape == (1, 1, 10, 12) and image.dtype == "uint16"
    assert np.array_equal(image.values[0, 0], stored) and image.recorded is None
    assert float(load_image(path, channels=1).max()) < 0.034  # the old way: nearly black
    unit, _ = image.intensity_map().to_unit(image.values)
    assert float(unit.min()) == 0.0 and float(unit.max()) == 1.0


@pytest.mark.parametrize(
    ("dtype", "suffix"),
    [("uint8", ".png"), ("uint16", ".png"), ("uint8", ".tif"), ("uint16", ".tif"),
     ("int16", ".tif"), ("int32", ".tif"), ("uint32", ".tif"), ("float32", ".tif")],
)  # fmt: skip
def test_values_round_trip_exactly_with_their_dtype_and_record(tmp_path, dtype, suffix):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        values = (_hu().astype(np.float32) + 0.25).astype(dtype)
    else:
        values = np.linspace(info.min, info.max, 120).reshape(10, 12).astype(dtype)
    m = IntensityMap(float(values.min()), float(values.max()), "auto", dtype, "HU")
    path = save_values(values, tmp_path / f"x{suffix}", mapping=m)
    back = read_values(path)
    assert back.dtype == dtype and np.array_equal(back.values[0, 0], values)
    assert back.recorded == m


def test_signed_and_float_tiffs_in_hu_are_accepted(tmp_path):
    hu = _hu()
    (tmp_path / "hu16.tif").write_bytes(encode_tiff(hu[None]))
    (tmp_path / "huf.tif").write_bytes(encode_tiff(hu[None].astype(np.float32)))
    for name in ("hu16.tif", "huf.tif"):
        image = read_values(tmp_path / name)
        assert np.array_equal(image.values[0, 0], hu) and int(image.values.min()) == -896
    # Pillow's own writer (int16 -> 32-bit "I") reads back the same numbers.
    Image.fromarray(hu).save(tmp_path / "pil.tif")
    assert np.array_equal(read_values(tmp_path / "pil.tif").values[0, 0], hu)


def test_every_page_of_a_multipage_tiff_is_read(tmp_path):
    stack = np.stack([_hu(seed) for seed in range(3)])[:, None]  # (3, 1, 10, 12)
    path = save_values(stack, tmp_path / "stack.tif")
    image = read_values(path)
    assert image.pages == 3 and np.array_equal(image.values, stack)
    assert image.intensity_map().lo == float(stack.min())  # one map for the whole stack


def test_load_image_refuses_a_multipage_tiff_instead_of_reading_page_one(tmp_path):
    stack = np.stack([_hu(seed) for seed in range(3)])[:, None].astype(np.float32) / 2400 + 0.5
    path = save_values(stack, tmp_path / "stack.tif")
    with pytest.raises(ImageReadError, match="multi-page TIFF \\(3 pages.*read_values"):
        load_image(path, channels=1)
    single = save_values(stack[0], tmp_path / "single.tif")
    assert load_image(single, channels=1).shape == (1, 10, 12)


def test_pages_of_different_sizes_are_refused(tmp_path):
    pages = [
        Image.fromarray(np.zeros((4, 5), np.uint8)),
        Image.fromarray(np.zeros((6, 5), np.uint8)),
    ]
    path = tmp_path / "mixed.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    with pytest.raises(ImageReadError, match="page 2 is 5x6.*equal pages"):
        read_values(path)


def test_sixteen_bit_colour_png_is_exact_and_colour_tiff_is_refused(tmp_path):
    rgb = (np.arange(2 * 3 * 3).reshape(3, 2, 3) * 7001 % 65536).astype(np.uint16)
    path = save_values(rgb.transpose(2, 0, 1), tmp_path / "rgb16.png")
    assert np.array_equal(read_values(path).values[0], rgb.transpose(2, 0, 1))
    (tmp_path / "rgb16.tif").write_bytes(encode_tiff(rgb[None]))
    with pytest.raises(ImageReadError, match="16-bit colour TIFF"):
        read_values(tmp_path / "rgb16.tif")


def test_alpha_is_dropped_when_opaque_and_refused_when_not(tmp_path):
    rgba = np.full((3, 4, 4), 200, np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert read_values(tmp_path / "opaque.png").values.shape == (1, 3, 3, 4)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "see_through.png")
    with pytest.raises(ImageReadError, match="transparent pixels"):
        read_values(tmp_path / "see_through.png")


def test_a_foreign_description_is_not_a_record(tmp_path):
    (tmp_path / "ij.tif").write_bytes(encode_tiff(_hu()[None], "ImageJ=1.54f\nimages=1"))
    assert read_values(tmp_path / "ij.tif").recorded is None
    png = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_TEXT_KEY, "not json")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(png, format="PNG", pnginfo=info)
    (tmp_path / "t.png").write_bytes(png.getvalue())
    assert read_values(tmp_path / "t.png").recorded is None


def test_exact_through_png_and_tiff_with_a_nearest_neighbour_model(tmp_path):
    """Read -> map -> exact x2 model -> map back -> write -> read: the NN-upscaled input."""
    hu = _hu()
    expected = np.repeat(np.repeat(hu, 2, axis=0), 2, axis=1)
    for name, stored in (("ct.png", (hu + 1024).astype(np.uint16)), ("ct.tif", hu)):
        image = read_values(save_values(stored, tmp_path / name))
        m = image.intensity_map()
        unit, _ = m.to_unit(image.values)
        out, clipped = m.decode(_nearest(unit))
        path = save_values(out, tmp_path / f"sr_{name}", mapping=m)
        back = read_values(path)
        offset = 1024 if name.endswith(".png") else 0
        assert clipped.clipped == 0 and back.recorded == m
        assert np.array_equal(back.values[0, 0].astype(np.int32) - offset, expected)


def test_png_int16_tiff_and_float_tiff_of_one_slice_agree_in_hu(tmp_path):
    """The same slice through three files and a smooth model: the same HU (rounding aside)."""
    hu = _hu(shape=(16, 16))
    files = {
        "png": ((hu + 1024).astype(np.uint16), 1024.0),
        "tif16": (hu, 0.0),
        "tiff32": (hu.astype(np.float32), 0.0),
    }
    outs = {}
    for name, (stored, offset) in files.items():
        image = read_values(save_values(stored, tmp_path / f"{name}.{name[:3]}"))
        m = image.intensity_map()
        unit, _ = m.to_unit(image.values)
        sr = F.interpolate(unit, scale_factor=2, mode="bicubic", align_corners=False)
        out, _ = m.decode(sr)
        outs[name] = out[0, 0].astype(np.float64) - offset
    assert np.abs(outs["png"] - outs["tif16"]).max() == 0
    assert np.abs(outs["tiff32"] - outs["tif16"]).max() <= 0.5  # float keeps the fraction


def test_save_values_refuses_what_a_format_cannot_hold(tmp_path):
    with pytest.raises(ImageTypeError, match="PNG holds only unsigned.*\\.tif"):
        save_values(_hu(), tmp_path / "hu.png")
    with pytest.raises(ImageInputError, match="3 pages as one PNG"):
        save_values(np.zeros((3, 1, 4, 4), np.uint16), tmp_path / "s.png")
    with pytest.raises(BadArgumentError, match="use .png"):
        save_values(np.zeros((4, 4), np.uint16), tmp_path / "x.jpg")
    with pytest.raises(ImageTypeError, match="colour ones uint8 or uint16"):
        save_values(np.zeros((3, 4, 4), np.float32), tmp_path / "c.tif")
    with pytest.raises(ImageInputError, match="NaN"):
        save_values(np.full((4, 4), np.nan, np.float32), tmp_path / "n.tif")
    with pytest.raises(ImageInputError, match="C = 1 or 3"):
        save_values(np.zeros((2, 4, 4), np.uint8), tmp_path / "two.png")
    path = save_values(np.zeros((4, 4), np.uint8), tmp_path / "once.png")
    with pytest.raises(OutputExistsError, match="already exists"):
        save_values(np.ones((4, 4), np.uint8), path)
    save_values(np.ones((4, 4), np.uint8), path, overwrite=True)
    assert int(read_values(path).values.max()) == 1


def test_unreadable_files_get_one_line(tmp_path):
    with pytest.raises(ImageReadError, match="missing.png"):
        read_values(tmp_path / "missing.png")
    (tmp_path / "bad.tif").write_bytes(b"II*\0garbage")
    with pytest.raises(ImageReadError, match="bad.tif"):
        read_values(tmp_path / "bad.tif")


def test_a_recorded_rescale_is_applied_before_the_map_and_undone_on_writing(tmp_path):
    """A PNG holding HU + 1024 with its record (slope 1, intercept -1024, units HU): the map
    is over HU (not over the stored numbers), and decoding gives the stored numbers back."""
    stored = np.array([[128, 2191], [1000, 1500]], dtype=np.uint16)
    record = IntensityMap(-896.0, 1167.0, "auto", "uint16", "HU", 1.0, -1024.0)
    image = read_values(save_values(stored, tmp_path / "hu.png", mapping=record))
    np.testing.assert_array_equal(image.physical[0, 0], stored.astype(np.float64) - 1024)
    m = image.intensity_map()
    assert (m.lo, m.hi, m.units, m.intercept) == (-896.0, 1167.0, "HU", -1024.0)
    unit, _ = m.to_unit(image.physical)
    np.testing.assert_array_equal(m.decode(unit)[0], image.values)
    plain = read_values(save_values(stored, tmp_path / "plain.png"))
    assert plain.physical is plain.values  # no record: the stored numbers are the values


def test_storage_for_keeps_values_recoverable_in_png_and_tiff(tmp_path):
    """How values are stored for --format png/tiff and --bits: every rule round-trips."""
    from edsr_lab.stored import storage_for

    ct = IntensityMap(-896.0, 1167.0, "auto", "int16", "HU", 1.0, -1024.0)  # CT_small
    png = storage_for(ct, ".png")
    assert (png.dtype, png.slope, png.intercept) == ("uint16", 1.0, -1024.0)  # HU + 1024
    tif = storage_for(ct, ".tif")
    assert (tif.dtype, tif.slope, tif.intercept) == ("int16", 1.0, 0.0)  # int16 in HU
    wide = IntensityMap(-5000.0, 70000.0, "auto", "int32", "a.u.")
    assert storage_for(wide, ".tif").dtype == "int32"  # as the source stores it
    quantised = storage_for(wide, ".png")
    assert quantised.dtype == "uint16" and quantised.slope == pytest.approx(75000 / 65535)
    floats = IntensityMap(-0.5, 2.25, "auto", "float32", "a.u.")
    assert storage_for(floats, ".tif").dtype == "float32"
    eight = storage_for(ct, ".png", bits=8)
    assert eight.dtype == "uint8" and eight.slope == pytest.approx(ct.peak / 255)
    hu = np.linspace(-896, 1167, 64).round().reshape(8, 8)
    for mapping, suffix, atol in ((png, ".png", 0), (tif, ".tif", 0), (eight, ".png", 4.1)):
        stored, _ = mapping.to_stored(hu)
        back = read_values(save_values(stored, tmp_path / f"x{suffix}", mapping=mapping,
                                       overwrite=True))  # fmt: skip
        np.testing.assert_allclose(back.physical[0, 0], hu, atol=atol)
    with pytest.raises(BadArgumentError, match=".tif"):
        storage_for(floats, ".png", bits=32)


def test_a_folder_at_the_target_is_refused_even_with_overwrite(tmp_path):
    """save_values and save_image share one target check (edsr_lab.files.check_target)."""
    from edsr_lab.errors import OutputPathError
    from edsr_lab.io import save_image

    folder = tmp_path / "scan.png"
    folder.mkdir()
    with pytest.raises(OutputPathError, match="it is a folder"):
        save_values(_hu().astype(np.uint16), folder, overwrite=True)
    with pytest.raises(OutputPathError, match="it is a folder"):
        save_image(torch.zeros(3, 4, 4), folder, overwrite=True)
    assert folder.is_dir() and not any(folder.iterdir())
