"""Read and write images as the package's one tensor convention: float32 (C, H, W) in [0, 1].

EDSR (Lim et al., CVPRW 2017) trains and evaluates on 8-bit RGB PNGs (DIV2K, Set5, ...), so
the usual path is simple: ``load_image`` -> model -> ``save_image``. This module makes the
unusual paths safe too, because "your own images" come in every format Pillow can open:

* ``load_image(path, channels=3, *, alpha="white", max_pixels=DEFAULT_MAX_PIXELS)`` reads any
  file Pillow reads and returns float32 (C, H, W) in [0, 1], C = ``channels``.
* ``save_image(image, path, *, bits=8, overwrite=True)`` writes (C, H, W) / (1, C, H, W) /
  (H, W) float values in [0, 1] to PNG (8 or 16 bits) or any 8-bit format Pillow writes.
* ``to_uint8(image)`` gives the (H, W, C) uint8 array that would be saved;
  ``to_tensor(image)`` turns a PIL image or a (H, W[, C]) numpy array into our convention.

How each kind of file is read (``load_image`` and ``to_tensor`` share these rules):

* 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ...) are divided by 255. ``CMYK``, ``YCbCr``,
  ``HSV`` go through Pillow's RGB conversion (for CMYK a naive one: no colour profile).
* Transparency (``RGBA``, ``LA``, ``PA``, a palette or ``tRNS`` transparent colour) is
  removed: ``alpha="white"`` (default) composites on white, ``"black"`` on black, ``"drop"``
  ignores the alpha channel. White matches how a viewer shows most logos and scans.
* 16-bit files keep their precision: ``I;16``/``I;16B``/``I;16L`` gray is divided by 65535
  (so 257 -> 257/65535 and 65535 -> 1.0). Pillow reads 16-bit RGB/RGBA PNGs as 8-bit, so
  such files are decoded twice (high bytes, then low bytes) and joined; 16-bit gray+alpha
  PNGs are still read at 8-bit precision (Pillow has no decoder for their low bytes).
* Mode ``I`` (32-bit integer, e.g. 16-bit PNGs in old Pillow or integer TIFFs): values in
  [0, 65535] are read as 16-bit (divided by 65535). Negative values or values above 65535
  have no standard mapping to [0, 1], so they raise ``ImageReadError`` (convert such a file
  yourself, then use ``to_tensor`` on a float array) instead of guessing a scale.
* Mode ``F`` (32-bit float) must already hold values in [0, 1]; anything else (for example
  a 0-255 scale, NaN or inf) raises ``ImageReadError`` saying what was found.
* EXIF orientation (phone photos) is applied, so the tensor is upright as a viewer shows it.
* Animated files (GIF, APNG) give their first frame only. A multi-page TIFF (usually a
  stack of slices) is refused, never read as its page 1 silently: read every page with
  :func:`edsr_lab.stored.read_values`.
* Medical values (12-bit content in 16-bit files, signed or float TIFFs in Hounsfield
  units) need their own range, not the container's: read them with
  :func:`edsr_lab.stored.read_values` and map them with :mod:`edsr_lab.intensity`.
* A PNG whose pixel data ends cleanly but too early (Pillow would read the missing rows as
  black, after allocating the size the header claims) is refused; see :mod:`edsr_lab.png`.
* Grayscale to ``channels=3`` repeats the channel; colour to ``channels=1`` uses ITU-R 601
  luma ``0.299 R + 0.587 G + 0.114 B`` (what Pillow's ``convert("L")`` does) computed in
  float, so 16-bit inputs keep their precision.

Bad files raise :class:`edsr_lab.errors.ImageReadError` (a ``ValueError``) naming the file and
what to do: missing file, folder, empty file, truncated or damaged data, not an image, or more
pixels than ``max_pixels``. Bad image *arguments* raise the shared
:mod:`edsr_lab.validate` errors (``ImageTypeError``, ``ImageInputError``,
``NonFiniteImageError``), other bad arguments ``BadArgumentError``; all are
:class:`edsr_lab.errors.EdsrLabError` and ``ValueError`` (``ImageTypeError`` also ``TypeError``).
"""

from __future__ import annotations

import contextlib
import io as _bytes_io
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from edsr_lab.errors import (
    BadArgumentError,
    ImageInputError,
    ImageReadError,
    ImageTypeError,
)
from edsr_lab.files import atomic_write, check_target
from edsr_lab.paths import unreadable_reason
from edsr_lab.png import check_png, decode_png16_color, encode_png16
from edsr_lab.validate import check_finite

__all__ = [
    "ALPHA_MODES",
    "DEFAULT_MAX_PIXELS",
    "ImageInfo",
    "apply_orientation",
    "exif_orientation",
    "load_image",
    "open_image",
    "read_image",
    "save_image",
    "to_tensor",
    "to_uint8",
]

#: Largest image ``load_image`` decodes by default (width * height). It equals Pillow's own
#: default ``Image.MAX_IMAGE_PIXELS`` (1024**3 // 4 // 3, ~89.5 M pixels): a file whose header
#: claims more is refused before any pixel is decoded (a "decompression bomb" guard). As
#: float32 RGB such an image already takes about 1 GiB.
DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3

#: Accepted values of ``alpha``: how transparent pixels are turned into opaque ones.
ALPHA_MODES = ("white", "black", "drop")

_CHANNELS = (1, 3)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"
_FLOAT_TOLERANCE = 1e-6  # float pixels this far outside [0, 1] are rounding noise: clipped
# Extra options for lossy formats: a super-resolution result saved at Pillow's defaults
# (JPEG quality 75, halved chroma; lossy WebP) would lose the very detail it is about.
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}


class _BadPixels(ValueError):
    """Internal: the pixel values cannot be mapped to [0, 1] (message says why)."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def load_image(
    path: str | os.PathLike[str],
    channels: int = 3,
    *,
    alpha: str = "white",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> torch.Tensor:
    """Read an image file as a float32 tensor (C, H, W) with values in [0, 1].

    Args:
        path: any file Pillow can open (PNG, JPEG, BMP, TIFF, GIF, WebP, ...).
        channels: 3 for RGB (gray files are repeated to 3 channels) or 1 for grayscale
            (colour files are turned into ITU-R 601 luma, computed in float).
        alpha: how transparency is removed: "white" (composite on white, the default),
            "black" (composite on black) or "drop" (ignore the alpha channel).
        max_pixels: refuse files whose header says width * height is larger, before decoding
            (a guard against decompression bombs and out-of-memory). ``None`` disables it.

    Returns:
        torch.float32 tensor of shape (channels, H, W), values in [0, 1], upright according
        to the file's EXIF orientation; the first frame of animated files. See the module
        docstring for how each Pillow mode (16-bit, ``I``, ``F``, CMYK, palettes) is read.

    Raises:
        ImageReadError: the file is missing, a folder, empty, truncated or damaged, not an
            image, larger than ``max_pixels``, or holds values with no mapping to [0, 1].
        BadArgumentError: ``channels``, ``alpha`` or ``max_pixels`` is not a valid value.
    """
    _check_channels(channels)
    _check_alpha(alpha)
    image, _ = read_image(path, max_pixels=max_pixels)
    array = image.numpy().transpose(1, 2, 0)
    return _finish(array, channels, alpha)


@dataclass(frozen=True)
class ImageInfo:
    """What an image file held, as :func:`read_image` found it.

    Attributes:
        channels: colour channels: 1 (grey) or 3 (RGB); alpha not counted.
        has_alpha: whether the file has transparency (an alpha channel, or a palette or
            ``tRNS`` transparent colour).
        bits: 8, 16, or 32 (32-bit float, Pillow mode ``F``): the precision of the values.
        mode: Pillow's mode string (e.g. ``"I;16"``, ``"RGBA"``, ``"P"``).
        format: Pillow's format name (``"PNG"``, ``"TIFF"``, ``"JPEG"``...).
        pages: how many pages (frames) the file holds (a TIFF stack: several).
        dtype: the numpy dtype of the stored samples (``"uint8"``, ``"uint16"``,
            ``"int16"``, ``"int32"``, ``"uint32"``, ``"float32"``), as
            :func:`edsr_lab.stored.read_values` reads them.
    """

    channels: int
    has_alpha: bool
    bits: int
    mode: str
    format: str | None
    pages: int = 1
    dtype: str = "uint8"


def read_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[torch.Tensor, ImageInfo]:
    """Read every channel of an image file as stored, and what the file was.

    Unlike :func:`load_image`, nothing is converted: grey stays 1 channel and alpha is kept
    as the last channel, so a caller can write back what it read (``upscale`` does).

    Returns:
        (image, info): float32 (C, H, W) in [0, 1] with C = 1 (grey), 2 (grey + alpha),
        3 (RGB) or 4 (RGBA), upright as the EXIF orientation says; and an :class:`ImageInfo`.

    Raises:
        ImageReadError: as :func:`load_image`.
        BadArgumentError: ``max_pixels`` is not a positive int or None.
    """
    path = Path(path).expanduser()
    with open_image(path, max_pixels=max_pixels) as img:
        mode, fmt = img.mode, img.format
        pages = int(getattr(img, "n_frames", 1))
        if fmt == "TIFF" and pages > 1:
            raise ImageReadError(
                path,
                f"it is a multi-page TIFF ({pages} pages, e.g. a stack of slices) and this "
                "reads one image; read every page with edsr_lab.stored.read_values(path), or "
                "save each page as its own file",
            )
        # Decode before reading EXIF: PNG keeps EXIF after the pixels, so getexif() would
        # decode the file itself and spoil the 16-bit PNG path.
        array16 = decode_png16_color(path, img)
        array = None if array16 is None else array16.astype(np.float32) / np.float32(65535)
        bits = 16 if array is not None else _bits_of(mode)
        if array is None:
            args = img.tile[0][3] if len(img.tile) == 1 else ""
            rawmode = args if isinstance(args, str) else ""
            array = _pil_to_array(img)
            if rawmode.startswith("LA;16") and array.shape[2] == 4:
                # Pillow opens 16-bit grey + alpha PNGs as RGBA (8-bit precision):
                # keep them grey + alpha.
                array = array[..., [0, 3]]
        orientation = exif_orientation(img)
    array = apply_orientation(array, orientation)
    n = array.shape[2]
    info = ImageInfo(
        channels=1 if n in (1, 2) else 3, has_alpha=n in (2, 4), bits=bits, mode=mode, format=fmt
    )
    chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw), info


@contextlib.contextmanager
def open_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Iterator[Image.Image]:
    """Open an image file with Pillow, with every check :func:`read_image` makes first.

    The readers of this package (:func:`read_image`, :func:`edsr_lab.stored.read_values`)
    share it: a missing file, a folder, an empty or truncated file, a PNG whose pixel stream
    is too short, more pixels than ``max_pixels``, or anything Pillow fails on inside the
    ``with`` block (decoding included) becomes one :class:`ImageReadError` naming the file.

    Yields:
        The open ``PIL.Image.Image`` (not yet decoded); it is closed afterwards.
    """
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise BadArgumentError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    path = Path(path).expanduser()
    _check_is_readable_file(path)

    with _pil_errors(path), _strict_decoding(), warnings.catch_warnings():
        # Pillow warns above its own limit; our max_pixels check below is the one that decides
        # (the caller may have raised it). Pillow's hard error at twice its limit still applies.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                mib = width * height * 3 * 4 / 2**20  # as float32 RGB
                size = f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.1f} MiB"
                raise ImageReadError(
                    path,
                    f"it is {width}x{height} = {width * height:,} pixels, more than "
                    f"max_pixels={max_pixels:,} (a guard against decompression bombs; as "
                    f"float32 RGB it would take {size}). If you trust the file, pass a "
                    f"larger limit, e.g. load_image(path, max_pixels={width * height}), "
                    "or max_pixels=None to disable the check.",
                )
            if img.format == "PNG":
                # Pillow reads a stream that ends early but cleanly as black rows, after
                # allocating the full claimed size: check the stream's length first.
                with open(path, "rb") as f:
                    reason = check_png(f, max_pixels)
                if reason is not None:
                    raise ImageReadError(path, reason)
            yield img


def _bits_of(mode: str) -> int:
    if mode.startswith("I"):  # I;16*, and I (read as 16-bit when it fits, see above)
        return 16
    if mode.startswith("F"):
        return 32
    return 8


def to_tensor(
    image: Image.Image | np.ndarray, channels: int = 3, *, alpha: str = "white"
) -> torch.Tensor:
    """Turn a PIL image or a numpy array into a float32 (channels, H, W) tensor in [0, 1].

    Args:
        image: a ``PIL.Image.Image`` (any mode, read with the rules of ``load_image``; EXIF
            orientation is *not* applied here) or a numpy array (H, W) or (H, W, C), C in
            {1, 2, 3, 4} (2 and 4 = with alpha last), dtype uint8 (divided by 255), uint16
            (divided by 65535), bool, or float already in [0, 1].
        channels: 3 (RGB) or 1 (grayscale), as in ``load_image``.
        alpha: "white", "black" or "drop", as in ``load_image``.

    Returns:
        torch.float32 tensor (channels, H, W) in [0, 1]. ``to_tensor(to_uint8(x))`` gives back
        ``x`` rounded to 8-bit levels.

    Raises:
        ImageInputError: bad shape or values (float values outside [0, 1]; NaN or inf give
            its subclass NonFiniteImageError).
        ImageTypeError: ``image`` is neither a PIL image nor a numpy array, or has an
            unsupported dtype.
    """
    _check_channels(channels)
    _check_alpha(alpha)
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = _ndarray_to_float(image)
    else:
        raise ImageTypeError(
            f"to_tensor expects a PIL.Image.Image or a numpy array, got {type(image).__name__}"
        )
    return _finish(array, channels, alpha)


def _check_channels(channels: object) -> None:
    if isinstance(channels, bool) or channels not in _CHANNELS:
        raise BadArgumentError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def _check_alpha(alpha: object) -> None:
    if alpha not in ALPHA_MODES:
        raise BadArgumentError(
            f"alpha must be one of {', '.join(map(repr, ALPHA_MODES))}; got {alpha!r}"
        )


def _check_is_readable_file(path: Path) -> None:
    """Raise ImageReadError for the problems that are clearer to explain before opening:
    missing (with what is there instead), a folder, a symlink loop, a FIFO, empty."""
    if path.is_dir():
        raise ImageReadError(
            path,
            "it is a folder, not a file. Pass one image file, e.g. "
            "sorted(Path(folder).glob('*.png'))[0].",
        )
    reason = unreadable_reason(path, "image file")
    if reason is not None:
        raise ImageReadError(path, reason if reason.endswith((".", "?")) else reason + ".")


@contextlib.contextmanager
def _pil_errors(path: Path) -> Iterator[None]:
    """Turn Pillow's many exception types for bad files into one ImageReadError."""
    try:
        yield
    except ImageReadError:
        raise
    except _BadPixels as exc:
        raise ImageReadError(path, str(exc)) from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            path,
            f"Pillow refused it as a possible decompression bomb ({exc}). If you trust the "
            "file, set PIL.Image.MAX_IMAGE_PIXELS = None (process-wide) and call "
            "load_image(path, max_pixels=None).",
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            path,
            "it is not an image file Pillow can read (wrong format, or not an image at all). "
            "Check that it opens in an image viewer.",
        ) from None
    except (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error) as exc:
        # Truncated data (OSError "image file is truncated"), broken PNG chunks (SyntaxError),
        # unsupported conversions (ValueError), permission problems (OSError).
        raise ImageReadError(
            path,
            f"the file is truncated or damaged, or in a form Pillow cannot convert "
            f"({type(exc).__name__}: {exc}). Download or export it again (e.g. as 8-bit PNG).",
        ) from None


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Make Pillow fail on truncated files even if someone set LOAD_TRUNCATED_IMAGES.

    Otherwise Pillow silently fills the missing part with gray, a wrong result that looks
    plausible. The global flag is restored afterwards.
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation tag (1..8, 1 = upright); 1 when absent, invalid or unreadable."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        # Broken EXIF should not make good pixels unreadable: keep the stored orientation.
        warnings.warn(f"ignoring unreadable EXIF data ({exc})", RuntimeWarning, stacklevel=3)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W, C) array as ImageOps.exif_transpose does for each EXIF value.

    Done on the array rather than with Pillow so that it works the same for every mode,
    including the 16-bit colour PNGs decoded by hand.
    """
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(array, k=-1)  # 90 degrees clockwise
    if orientation == 7:
        return array[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(array, k=1)  # 90 degrees counter-clockwise
    return array


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Decode a PIL image to float32 (H, W, C) in [0, 1]; C in {1, 2, 3, 4}, alpha last."""
    img.load()  # decode now, so truncation is detected here (ImageFile raises OSError)
    mode = img.mode
    has_key = "transparency" in img.info  # palette index or tRNS colour key
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if (mode == "PA" or has_key) else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "L" and has_key:
        img = img.convert("LA")
    elif mode == "La":
        img = img.convert("LA")  # undo premultiplied alpha
    elif mode == "RGB" and has_key:
        img = img.convert("RGBA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode.startswith("I;16"):
        data = np.asarray(img)
        if data.dtype.kind == "u":  # I;16, I;16L, I;16B (big-endian dtype), I;16N
            return (data.astype(np.float32) / np.float32(65535))[..., None]
        return _integer_to_float(data, mode)  # signed 16-bit variants
    elif mode.startswith("I"):
        return _integer_to_float(np.asarray(img), mode)
    elif mode.startswith("F"):
        return _float_to_float(np.asarray(img), f"mode {mode!r} (32-bit float) image")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK, YCbCr, HSV, RGBX, ...: Pillow's own conversion
    data = np.asarray(img)
    if data.ndim == 2:
        data = data[..., None]
    return data.astype(np.float32) / np.float32(255)


def _integer_to_float(data: np.ndarray, mode: str) -> np.ndarray:
    lo, hi = int(data.min()), int(data.max())
    if lo < 0 or hi > 65535:
        raise _BadPixels(
            f"its mode {mode!r} (integer) pixels range from {lo} to {hi}. Values in [0, 65535] "
            "are read as 16-bit (divided by 65535), but negative values or values above 65535 "
            "have no standard mapping to [0, 1]. Scale it yourself, e.g. "
            "a = np.asarray(PIL.Image.open(path)).astype('float32'); "
            "edsr_lab.io.to_tensor((a - a.min()) / (a.max() - a.min()))."
        )
    return (data.astype(np.float32) / np.float32(65535))[..., None]


def _float_to_float(data: np.ndarray, what: str) -> np.ndarray:
    """Check float pixels are finite and in [0, 1] (tiny overshoot clipped)."""
    data = data.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        n_nan, n_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
        raise _BadPixels(
            f"the {what} holds non-finite values ({n_nan} NaN, {n_inf} infinite); pixels must "
            "be finite numbers in [0, 1]. Fill the missing values (e.g. with "
            "numpy.nan_to_num) and save the file again."
        )
    lo, hi = float(data.min()), float(data.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
        hint = " It looks like a 0-255 scale: divide by 255." if lo >= 0 and 2 < hi <= 255 else ""
        raise _BadPixels(
            f"the {what} has values from {lo:g} to {hi:g}, but float pixels must already be "
            f"in [0, 1].{hint}"
        )
    data = np.clip(data, 0.0, 1.0)
    return data if data.ndim == 3 else data[..., None]


def _ndarray_to_float(data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4) or 0 in data.shape:
        raise ImageInputError(
            f"expected a numpy array (H, W) or (H, W, C) with C in 1..4 (HWC, as Pillow and "
            f"to_uint8 use), got shape {tuple(data.shape)}"
        )
    if data.dtype == np.uint8:
        return data.astype(np.float32) / np.float32(255)
    if data.dtype == np.uint16:
        return data.astype(np.float32) / np.float32(65535)
    if data.dtype == np.bool_:
        return data.astype(np.float32)
    if data.dtype.kind == "f":
        check_finite(data, "to_tensor: the array")
        try:
            return _float_to_float(data, "array")
        except _BadPixels as exc:
            raise ImageInputError(str(exc)) from None
    raise ImageTypeError(
        f"unsupported array dtype {data.dtype}: use uint8 (0-255), uint16 (0-65535) or float "
        "in [0, 1]"
    )


def _finish(array: np.ndarray, channels: int, alpha: str) -> torch.Tensor:
    """(H, W, C) float32 with optional alpha last -> (channels, H, W) float32 tensor."""
    n = array.shape[2]
    if n in (2, 4):
        color, opacity = array[..., : n - 1], array[..., n - 1 :]
        if alpha == "white":
            array = color * opacity + (1.0 - opacity)
        elif alpha == "black":
            array = color * opacity
        else:
            array = color
    if channels == 1 and array.shape[2] == 3:
        array = np.clip(array @ _LUMA, 0.0, 1.0)[..., None]
    elif channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Convert a float image in [0, 1] to a (H, W, C) uint8 numpy array, as it would be saved.

    Args:
        image: torch tensor or numpy array, float dtype, shape (C, H, W) with C in
            {1, 2, 3, 4}, (1, C, H, W) or (H, W). Values are clamped to [0, 1].

    Returns:
        np.uint8 array (H, W, C): ``floor(x * 255 + 0.5)``, i.e. rounded with halves going
        up (as MATLAB's im2uint8), never truncated (0.6/255 -> 1).

    Raises:
        ImageTypeError: not a tensor or array, or a non-float dtype.
        ImageInputError: wrong shape; NonFiniteImageError: NaN/infinite values.
    """
    hwc = _as_hwc(image)
    return np.floor(hwc * 255 + 0.5).astype(np.uint8)


def save_image(
    image: torch.Tensor | np.ndarray,
    path: str | os.PathLike[str],
    *,
    bits: int = 8,
    overwrite: bool = True,
) -> Path:
    """Write a float image in [0, 1] to ``path``; the suffix picks the format.

    Args:
        image: torch tensor or numpy array, float dtype, shape (C, H, W) with C in
            {1, 2, 3, 4} (gray, gray + alpha, RGB, RGBA), (1, C, H, W) or (H, W). Values are
            clamped to [0, 1] and rounded (halves up) to the nearest level (not rounded for
            ``bits=32``).
        path: file to write, e.g. "out/butterfly_x4.png". Missing parent folders are created.
            Any format Pillow writes works for 8 bits (.png, .bmp, .tif, .jpg, .webp); JPEG is
            written at quality 95 without chroma subsampling and WebP losslessly.
        bits: 8; 16 for a 16-bit PNG (read back exactly by ``load_image``, except gray +
            alpha, which Pillow reads at 8-bit precision); 32 for a float32 TIFF of one grey
            channel (Pillow's mode ``F``, read back exactly). 16-bit files are encoded by
            :mod:`edsr_lab.png`, since Pillow cannot write 16-bit colour.
        overwrite: if False and ``path`` exists, raise OutputExistsError instead of replacing.

    Returns:
        The ``Path`` written. The file appears atomically (written to a temporary file in the
        same folder, then renamed), so a crash never leaves a half-written image.

    Raises:
        ImageTypeError / ImageInputError / NonFiniteImageError: bad dtype, shape, or NaN or
            infinite values (as :func:`to_uint8`).
        BadArgumentError: bits not 8/16/32, 16 bits for a non-PNG suffix, 32 bits for
            anything but a grey .tif, an unknown suffix, or a format that cannot hold the
            channels.
        OutputPathError: ``path`` is a folder (an ``OSError``).
        OutputExistsError: ``overwrite=False`` and the file exists (a ``FileExistsError``).
    """
    if bits not in (8, 16, 32) or isinstance(bits, bool):
        raise BadArgumentError(f"bits must be 8, 16 or 32 (float TIFF), got {bits!r}")
    hwc = _as_hwc(image)
    path = Path(path).expanduser()
    fmt = _format_for(path)
    if bits == 16 and fmt != "PNG":
        raise BadArgumentError(
            f"bits=16 is only supported for PNG files, but {str(path)!r} is {fmt}; "
            "use a .png suffix or bits=8"
        )
    if bits == 32 and (fmt != "TIFF" or hwc.shape[2] != 1):
        raise BadArgumentError(
            f"bits=32 writes a float32 TIFF of one grey channel (Pillow's mode 'F'), but "
            f"{str(path)!r} is {fmt} with {hwc.shape[2]} channel(s); use a .tif suffix and a "
            "grey image, or bits=16 (PNG) for colour"
        )
    check_target(path, overwrite=overwrite, what="save image to")
    if bits == 16:
        data = encode_png16(np.floor(hwc * 65535 + 0.5).astype(np.uint16))
    elif bits == 32:
        buffer = _bytes_io.BytesIO()
        Image.fromarray(np.ascontiguousarray(hwc[..., 0], dtype=np.float32), mode="F").save(
            buffer, format="TIFF"
        )
        data = buffer.getvalue()
    else:
        data = _encode_8bit(np.floor(hwc * 255 + 0.5).astype(np.uint8), fmt, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def _as_hwc(image: object) -> np.ndarray:
    """Validate a float (C,H,W)/(1,C,H,W)/(H,W) image; return it (H, W, C) clamped to [0, 1]."""
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            raise ImageTypeError(
                f"expected a float tensor with values in [0, 1], got dtype {image.dtype}; "
                "for 0-255 integers use x.float() / 255"
            )
        if image.dtype not in (torch.float32, torch.float64):
            image = image.float()  # float16 / bfloat16: numpy has no bfloat16
        array = image.detach().cpu().numpy()
    elif isinstance(image, np.ndarray):
        if image.dtype.kind != "f":
            raise ImageTypeError(
                f"expected a float array with values in [0, 1], got dtype {image.dtype}; "
                "for 0-255 integers use x.astype(np.float32) / 255"
            )
        array = image.astype(np.float32) if image.dtype == np.float16 else image
    else:
        raise ImageTypeError(f"expected a torch.Tensor or numpy array, got {type(image).__name__}")

    shape = tuple(array.shape)
    if array.ndim == 4:
        if shape[0] != 1:
            raise ImageInputError(
                f"expected one image, got a batch of shape {shape}; save x[i] for each i"
            )
        array = array[0]
    elif array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 2, 3, 4):
        hint = ""
        if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
            hint = " It looks like (H, W, C): use x.permute(2, 0, 1) or x.transpose(2, 0, 1)."
        raise ImageInputError(
            f"expected an image shaped (C, H, W) with C in {{1, 2, 3, 4}}, (1, C, H, W) or "
            f"(H, W); got shape {shape}.{hint}"
        )
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ImageInputError(f"the image is empty: shape {shape}")
    check_finite(array, "the image")
    return np.clip(array, 0.0, 1.0).transpose(1, 2, 0)


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise BadArgumentError(
            f"cannot tell which format to write for {str(path)!r} (suffix {suffix or 'none'!r}); "
            "use .png (lossless, recommended), .bmp, .tif, .webp or .jpg"
        )
    return fmt


def _encode_8bit(u8: np.ndarray, fmt: str, path: Path) -> bytes:
    channels = u8.shape[2]
    img = Image.fromarray(u8[..., 0] if channels == 1 else u8)
    buffer = _bytes_io.BytesIO()
    try:
        img.save(buffer, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except (OSError, ValueError, KeyError) as exc:
        raise BadArgumentError(
            f"Pillow cannot write a {channels}-channel 8-bit image as {fmt} for {str(path)!r} "
            f"({exc}); save it as .png, or drop the alpha channel with x[:3]"
        ) from None
    return buffer.getvalue()
