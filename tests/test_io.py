"""Tests for edsr_lab.io: every fixture file is generated here with Pillow, in tmp_path."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

from edsr_lab.errors import ImageReadError
from edsr_lab.io import (
    ALPHA_MODES,
    DEFAULT_MAX_PIXELS,
    load_image,
    save_image,
    to_tensor,
    to_uint8,
)

RNG = np.random.default_rng(0)


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def _assert_tensor(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert isinstance(x, torch.Tensor)
    assert x.dtype == torch.float32
    assert tuple(x.shape) == shape
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


# --------------------------------------------------------------------------------------------
# Reading: every mode
# --------------------------------------------------------------------------------------------
def test_rgb_png_exact(tmp_path):
    arr = _rgb()
    x = load_image(_save(Image.fromarray(arr), tmp_path / "a.png"))
    _assert_tensor(x, (3, 6, 5))
    expected = torch.from_numpy(arr.transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(x, expected)


def test_default_max_pixels_not_above_pillow_default():
    assert 0 < DEFAULT_MAX_PIXELS <= 89_478_485


def test_rgba_alpha_modes(tmp_path):
    arr = np.zeros((1, 3, 4), dtype=np.uint8)
    arr[0, 0] = (10, 20, 30, 0)  # fully transparent
    arr[0, 1] = (200, 100, 50, 255)  # opaque
    arr[0, 2] = (0, 0, 0, 128)  # half-transparent black
    path = _save(Image.fromarray(arr, "RGBA"), tmp_path / "a.png")

    white = load_image(path)
    assert white[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(white[:, 0, 1], torch.tensor([200, 100, 50]) / 255.0)
    assert torch.allclose(white[:, 0, 2], torch.full((3,), 1 - 128 / 255))

    black = load_image(path, alpha="black")
    assert black[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert torch.allclose(black[:, 0, 1], torch.tensor([200, 100, 50]) / 255.0)

    drop = load_image(path, alpha="drop")
    assert torch.allclose(drop[:, 0, 0], torch.tensor([10, 20, 30]) / 255.0)
    assert ALPHA_MODES == ("white", "black", "drop")


def test_la_mode(tmp_path):
    arr = np.array([[[50, 0], [50, 255]]], dtype=np.uint8)
    path = _save(Image.fromarray(arr, "LA"), tmp_path / "la.png")
    x = load_image(path, channels=1)
    _assert_tensor(x, (1, 1, 2))
    assert x[0, 0].tolist() == pytest.approx([1.0, 50 / 255])
    x3 = load_image(path)
    _assert_tensor(x3, (3, 1, 2))
    assert torch.equal(x3[0], x3[2])


def test_palette_and_palette_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    x = load_image(_save(img, tmp_path / "p.png"))
    assert x[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert x[:, 0, 1].tolist() == [0.0, 0.0, 1.0]

    img.info["transparency"] = 1  # palette index 1 is transparent
    path = _save(img, tmp_path / "pt.png", transparency=1)
    assert Image.open(path).mode == "P"
    x = load_image(path)
    assert x[:, 0, 1].tolist() == [1.0, 1.0, 1.0]  # composited on white
    assert load_image(path, alpha="black")[:, 0, 1].tolist() == [0.0, 0.0, 0.0]


def test_gray_channels(tmp_path):
    gray = RNG.integers(0, 256, size=(4, 7), dtype=np.uint8)
    path = _save(Image.fromarray(gray), tmp_path / "g.png")
    one = load_image(path, channels=1)
    _assert_tensor(one, (1, 4, 7))
    assert torch.equal(one[0], torch.from_numpy(gray.astype(np.float32) / 255))
    three = load_image(path, channels=3)
    _assert_tensor(three, (3, 4, 7))
    assert torch.equal(three[0], one[0]) and torch.equal(three[2], one[0])


def test_rgb_to_gray_matches_pillow_luma(tmp_path):
    arr = _rgb(16, 16)
    path = _save(Image.fromarray(arr), tmp_path / "c.png")
    gray = load_image(path, channels=1)
    _assert_tensor(gray, (1, 16, 16))
    pillow = np.asarray(Image.fromarray(arr).convert("L")).astype(np.float32) / 255
    # Pillow rounds to 8 bits; ours is the exact float luma.
    assert np.abs(gray[0].numpy() - pillow).max() <= 0.5 / 255 + 1e-6
    r, g, b = (arr[..., i].astype(np.float64) / 255 for i in range(3))
    assert np.allclose(gray[0].numpy(), 0.299 * r + 0.587 * g + 0.114 * b, atol=1e-6)


def test_one_bit(tmp_path):
    img = Image.new("1", (3, 2), 0)
    img.putpixel((1, 0), 1)
    x = load_image(_save(img, tmp_path / "b.png"), channels=1)
    _assert_tensor(x, (1, 2, 3))
    assert x[0].tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_cmyk_roughly(tmp_path):
    img = Image.new("CMYK", (2, 1))
    img.putpixel((0, 0), (0, 0, 0, 0))  # no ink: white
    img.putpixel((1, 0), (0, 255, 255, 0))  # magenta + yellow: red
    path = _save(img, tmp_path / "c.jpg", quality=100)
    assert Image.open(path).mode == "CMYK"
    x = load_image(path)
    _assert_tensor(x, (3, 1, 2))
    assert torch.allclose(x[:, 0, 0], torch.ones(3), atol=0.1)
    assert torch.allclose(x[:, 0, 1], torch.tensor([1.0, 0.0, 0.0]), atol=0.15)


def test_i16_full_precision(tmp_path):
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = _save(Image.fromarray(ramp), tmp_path / "r.png")
    assert Image.open(path).mode.startswith("I")
    x = load_image(path, channels=1)
    _assert_tensor(x, (1, 256, 256))
    assert x[0, 255, 255].item() == 1.0  # 65535
    assert x[0, 1, 1] == torch.tensor(257 / 65535, dtype=torch.float32)  # 257
    # every one of the 65536 levels survives: not clipped to 8 bits
    assert torch.equal(torch.round(x[0] * 65535).to(torch.int64), torch.from_numpy(ramp).long())
    assert len(torch.unique(x)) == 65536
    assert torch.equal(load_image(path)[1], x[0])  # channels=3 repeats it


def test_i16_big_endian_tiff(tmp_path):
    img = Image.new("I;16B", (3, 2), 0)
    img.putpixel((0, 0), 65535)
    img.putpixel((1, 0), 257)
    img.putpixel((2, 1), 1)
    path = _save(img, tmp_path / "b.tif")
    assert Image.open(path).mode == "I;16B"
    x = load_image(path, channels=1)
    _assert_tensor(x, (1, 2, 3))
    assert x[0, 0, 0].item() == 1.0
    assert x[0, 0, 1] == torch.tensor(257 / 65535, dtype=torch.float32)
    assert x[0, 1, 2] == torch.tensor(1 / 65535, dtype=torch.float32)


def test_mode_i_within_16_bits_and_beyond(tmp_path):
    data = np.array([[0, 257, 65535]], dtype=np.int32)
    path = _save(Image.fromarray(data, "I"), tmp_path / "i.tif")
    assert Image.open(path).mode == "I"
    x = load_image(path, channels=1)
    assert x[0, 0].tolist() == pytest.approx([0.0, 257 / 65535, 1.0])

    big = _save(Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I"), tmp_path / "j.tif")
    with pytest.raises(ImageReadError, match="65535") as info:
        load_image(big)
    assert "j.tif" in str(info.value)
    neg = _save(Image.fromarray(np.array([[-5, 3]], dtype=np.int32), "I"), tmp_path / "n.tif")
    with pytest.raises(ImageReadError, match="-5"):
        load_image(neg)


def test_mode_f(tmp_path):
    data = np.array([[0.0, 0.25, 1.0]], dtype=np.float32)
    path = _save(Image.fromarray(data, "F"), tmp_path / "f.tif")
    x = load_image(path, channels=1)
    assert x[0, 0].tolist() == [0.0, 0.25, 1.0]
    bad = _save(Image.fromarray(data * 255, "F"), tmp_path / "g.tif")
    with pytest.raises(ImageReadError, match="divide by 255"):
        load_image(bad)


def test_exif_orientation_6_jpeg_rotates(tmp_path):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(Image.fromarray(arr), tmp_path / "phone.jpg", exif=exif, quality=95)
    assert Image.open(path).size == (40, 20)
    x = load_image(path)
    _assert_tensor(x, (3, 40, 20))  # height and width swapped
    # orientation 6 = rotate 90 degrees clockwise: the left half becomes the top half
    assert x[:, :15].mean() > 0.9 and x[:, 25:].mean() < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_match_pillow(tmp_path, orientation):
    arr = _rgb(3, 5)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(Image.fromarray(arr), tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    x = load_image(path)
    assert torch.equal(x, torch.from_numpy(expected.transpose(2, 0, 1).astype(np.float32) / 255))


def test_multiframe_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 3), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert Image.open(path).n_frames == 2
    x = load_image(path)
    _assert_tensor(x, (3, 3, 4))
    assert x[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_to_tensor_pil_and_numpy():
    arr = _rgb()
    from_pil = to_tensor(Image.fromarray(arr))
    from_np = to_tensor(arr)
    assert torch.equal(from_pil, from_np)
    _assert_tensor(from_np, (3, 6, 5))
    assert to_tensor(np.array([[0, 65535]], dtype=np.uint16), channels=1)[0, 0, 1] == 1.0
    with pytest.raises(ValueError, match="float pixels"):
        to_tensor(np.array([[2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="dtype"):
        to_tensor(np.array([[1]], dtype=np.int64))
    with pytest.raises(TypeError):
        to_tensor([[0.0]])


@pytest.mark.parametrize(
    ("kwargs", "valid"),
    [
        ({"channels": 2}, "1 .*3"),
        ({"channels": True}, "1 .*3"),
        ({"alpha": "grey"}, "'white', 'black', 'drop'"),
        ({"max_pixels": 0}, "positive int or None"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, valid):
    path = _save(Image.fromarray(_rgb()), tmp_path / "a.png")
    with pytest.raises(ValueError, match=valid):
        load_image(path, **kwargs)


# --------------------------------------------------------------------------------------------
# Reading: bad files
# --------------------------------------------------------------------------------------------
def _raises_read_error(path: Path, match: str, **kwargs) -> ImageReadError:
    with pytest.raises(ImageReadError, match=match) as info:
        load_image(path, **kwargs)
    assert str(path) in str(info.value)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)
    return info.value


def test_missing_file_suggests_close_name(tmp_path):
    _save(Image.fromarray(_rgb()), tmp_path / "butterfly.png")
    err = _raises_read_error(tmp_path / "buterfly.png", "no such file")
    assert "Check the path" in err.reason and "butterfly.png" in err.reason
    err = _raises_read_error(tmp_path / "nope" / "x.png", "does not exist")


def test_directory(tmp_path):
    _raises_read_error(tmp_path, "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _raises_read_error(path, "empty")


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 20)
    _raises_read_error(path, "not an image")


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated(tmp_path, suffix, monkeypatch):
    good = _save(Image.fromarray(_rgb(64, 64)), tmp_path / f"good.{suffix}")
    data = good.read_bytes()
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    _raises_read_error(path, "truncated or damaged")
    # even when a library has switched Pillow to silently accepting truncated files
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    _raises_read_error(path, "truncated or damaged")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored afterwards


def test_size_guard_before_decoding(tmp_path):
    path = _save(Image.fromarray(_rgb(10, 10)), tmp_path / "big.png")
    err = _raises_read_error(path, "more than max_pixels=99", max_pixels=99)
    assert "max_pixels=None" in err.reason and "max_pixels=100" in err.reason
    assert load_image(path, max_pixels=100).shape == (3, 10, 10)
    # a truncated file over the limit is refused for its size: the header alone decides
    data = path.read_bytes()
    cut = tmp_path / "big_cut.png"
    cut.write_bytes(data[: len(data) // 2])
    _raises_read_error(cut, "max_pixels", max_pixels=99)


def test_decompression_bomb(tmp_path, monkeypatch):
    path = _save(Image.fromarray(_rgb(20, 20)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 400 pixels > 2 * 100: Pillow errors
    err = _raises_read_error(path, "decompression bomb", max_pixels=None)
    assert "MAX_IMAGE_PIXELS" in err.reason
    # between 1x and 2x Pillow's limit Pillow only warns; our own limit decides
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    assert load_image(path, max_pixels=None).shape == (3, 20, 20)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def test_save_load_round_trip_all_8bit_levels(tmp_path):
    levels = np.arange(256, dtype=np.float32).reshape(16, 16) / 255
    x = torch.from_numpy(np.stack([levels, levels.T, levels[::-1].copy()]))
    path = save_image(x, tmp_path / "rt.png")
    assert path == tmp_path / "rt.png"
    assert torch.equal(load_image(path), x)
    assert np.array_equal(np.asarray(Image.open(path)), to_uint8(x))


def test_rounding_not_truncation_and_clamping():
    x = np.array([[0.5 / 255, 2.5 / 255, 0.6 / 255, 0.4 / 255, -0.5, 1.5, 254.6 / 255]])
    assert to_uint8(x)[0, :, 0].tolist() == [1, 3, 1, 0, 0, 255, 255]


def test_to_uint8_shapes():
    chw = torch.rand(3, 4, 5)
    out = to_uint8(chw)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    assert np.array_equal(to_uint8(chw[None]), out)
    assert to_uint8(torch.rand(4, 5)).shape == (4, 5, 1)
    assert torch.equal(to_tensor(out), torch.round(chw * 255) / 255)
    with pytest.raises(ValueError, match="batch"):
        to_uint8(torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="permute"):
        to_uint8(torch.rand(6, 5, 3))


def test_save_16bit_gray_round_trip(tmp_path):
    values = np.arange(65536, dtype=np.float64).reshape(256, 256) / 65535
    path = save_image(values, tmp_path / "g16.png", bits=16)
    img = Image.open(path)
    assert img.mode.startswith("I") and np.asarray(img).max() == 65535
    x = load_image(path, channels=1)
    assert torch.equal(torch.round(x[0].double() * 65535), torch.from_numpy(values * 65535))


@pytest.mark.parametrize("channels", [3, 4])
def test_save_16bit_color_round_trip(tmp_path, channels):
    u16 = RNG.integers(0, 65536, size=(channels, 7, 9)).astype(np.float64)
    u16[:, 0, 0] = 65535  # opaque first pixel
    u16[0, 0, 1], u16[0, 0, 2] = 257, 258  # 1/65535 apart: equal at 8-bit precision
    path = save_image(u16 / 65535, tmp_path / "c16.png", bits=16)
    with Image.open(path) as img:
        assert img.size == (9, 7)  # Pillow opens it (it would only see the high bytes)
    x = load_image(path, alpha="drop")
    assert torch.equal(torch.round(x.double() * 65535), torch.from_numpy(u16[:3]))
    assert x[0, 0, 1] == torch.tensor(257 / 65535) and x[0, 0, 2] == torch.tensor(258 / 65535)


def test_save_refuses_overwrite_when_asked(tmp_path):
    path = save_image(torch.zeros(3, 2, 2), tmp_path / "a.png")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        save_image(torch.ones(3, 2, 2), path, overwrite=False)
    assert path.read_bytes() == before
    save_image(torch.ones(3, 2, 2), path)  # default overwrite=True replaces it
    assert load_image(path).min() == 1.0


def test_save_creates_folder_and_leaves_no_temp_files(tmp_path):
    path = save_image(np.zeros((2, 3), dtype=np.float32), tmp_path / "x" / "y" / "g.png")
    assert path.is_file()
    assert os.listdir(path.parent) == ["g.png"]
    assert load_image(path, channels=1).shape == (1, 2, 3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_save_refuses_nan_and_inf(tmp_path, bad):
    x = torch.zeros(3, 2, 2)
    x[1, 0, 1] = bad
    with pytest.raises(ValueError, match="NaN"):
        save_image(x, tmp_path / "n.png")
    assert not (tmp_path / "n.png").exists()


def test_save_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="float"):
        save_image(torch.zeros(3, 2, 2, dtype=torch.uint8), tmp_path / "a.png")
    with pytest.raises(ValueError, match="bits"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "a.png", bits=12)
    with pytest.raises(ValueError, match="only supported for PNG"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "a.jpg", bits=16)
    with pytest.raises(ValueError, match="suffix"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="alpha"):
        save_image(torch.zeros(4, 2, 2), tmp_path / "a.jpg")
    assert not list(tmp_path.iterdir())


def test_save_other_formats(tmp_path):
    x = torch.from_numpy(_rgb(8, 8).transpose(2, 0, 1).astype(np.float32) / 255)
    for suffix in ("bmp", "tif", "webp"):
        assert torch.equal(load_image(save_image(x, tmp_path / f"a.{suffix}")), x)
    jpg = load_image(save_image(x, tmp_path / "a.jpg"))
    assert (jpg - x).abs().mean() < 0.1  # lossy, but the same picture
    rgba = torch.rand(4, 3, 3)
    rgba[3] = 1.0
    assert torch.allclose(
        load_image(save_image(rgba, tmp_path / "rgba.png")), rgba[:3], atol=0.5 / 255
    )


def test_png16_low_level_writer_is_valid_png(tmp_path):
    # check the chunks and CRCs of a hand-encoded file independently of Pillow
    path = save_image(np.full((1, 2, 3), 0.5), tmp_path / "s.png", bits=16)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF
        kinds.append(kind)
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


# --------------------------------------------------------------------------------------------
# PNG pixel streams: too short, absurd headers, interlacing (edsr_lab.png)
# --------------------------------------------------------------------------------------------
def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png(width: int, height: int, raw: bytes, color_type: int = 2, interlace: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def test_png_with_complete_but_short_pixel_stream_is_refused(tmp_path):
    rows = RNG.integers(0, 256, size=(10, 300), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # 10 rows of a 100x100 image
    path = tmp_path / "short.png"
    path.write_bytes(_png(100, 100, raw))
    with Image.open(path) as img:  # what we guard against: Pillow fills the rest with black
        img.load()
        assert np.asarray(img)[10:].max() == 0
    with pytest.raises(ImageReadError, match=r"too short.*10 of 100 rows") as info:
        load_image(path)
    assert "short.png" in str(info.value)


def test_tiny_png_claiming_80_million_pixels_is_refused_without_decoding(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "tall.png"
    path.write_bytes(_png(1, 80_000_000, b"\x00\x00\x00\x00"))
    assert len(path.read_bytes()) < 100
    probe = (
        "import resource, sys\n"
        "from edsr_lab.io import load_image\n"
        "from edsr_lab.errors import ImageReadError\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ImageReadError as err:\n"
        "    print('refused:', err)\n"
        "print('peak MiB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    run = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": repo},
    )
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("refused:") and "too short" in lines[0], run.stdout + run.stderr
    # Decoding would take 2.9 GB (Pillow's 320 MB buffer, then float32 RGB); torch, NumPy
    # and Pillow themselves take a few hundred MB.
    assert int(lines[-1].split()[-1]) < 1024


def _adam7(arr: np.ndarray) -> bytes:
    """Interlaced (Adam7) scanlines, filter 0, of an (H, W, 3) uint8 array."""
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
    passes += ((0, 1, 1, 2),)
    out = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            out += b"".join(b"\x00" + row.tobytes() for row in sub)
    return out


@pytest.mark.parametrize("shape", [(13, 7), (1, 1), (3, 9)])
def test_valid_interlaced_png_still_loads(tmp_path, shape):
    arr = RNG.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    path = tmp_path / "adam7.png"
    path.write_bytes(_png(shape[1], shape[0], _adam7(arr), interlace=1))
    expected = torch.from_numpy(arr.transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(load_image(path), expected)
    short = _adam7(arr)[:-1]
    path.write_bytes(_png(shape[1], shape[0], short, interlace=1))
    with pytest.raises(ImageReadError, match="too short"):
        load_image(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_float_tiff_with_non_finite_pixels_says_so(tmp_path, bad):
    a = np.full((4, 5), 0.5, dtype=np.float32)
    a[2, 3] = bad
    path = _save(Image.fromarray(a, mode="F"), tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match="non-finite values") as info:
        load_image(path)
    assert "255" not in str(info.value)
