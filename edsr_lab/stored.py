"""Read and write image files as the numbers they store (uint16, int16, float32, stacks).

:func:`edsr_lab.io.load_image` turns every file into [0, 1] by its container's scale
(8-bit / 255, 16-bit / 65535): right for photographs, wrong for a CT slice whose 12-bit
values (HU + 1024 = 128..2191) sit in a 16-bit PNG -- the model would see an image at 3 % of
full brightness. This module reads the values *as stored*, so the intensity policy
(:mod:`edsr_lab.intensity`) can map them with the data's own range, and writes results back
in the same dtype with that map recorded in the file:

* :func:`read_values` -> :class:`StoredImage`: ``values`` (P, C, H, W) in the file's dtype
  (uint8, uint16, int16, int32, uint32, float32), C = 1 (grey) or 3 (RGB), P pages. Every
  page of a multi-page TIFF is read (a stack: a volume exported slice by slice); callers
  that want one image check ``pages`` and refuse stacks with a clear message, never
  taking page 1 silently. ``recorded`` holds the :class:`~edsr_lab.intensity.IntensityMap`
  the file carries, if it was written by :func:`save_values`.
* :func:`save_values` writes such arrays: PNG (uint8 / uint16, grey or RGB, one page) or
  TIFF (uint8, uint16, int16, int32, float32 grey; uint8/uint16 RGB; several pages).

Where the map is recorded, and why there:

* PNG: a ``tEXt`` chunk with keyword ``edsr_lab.intensity`` holding the JSON record. Text
  chunks are the PNG standard's place for metadata (PNG spec 11.3.4); every PNG reader keeps
  or ignores them, none misreads the pixels because of them.
* TIFF: the ImageDescription tag (270) holding the same JSON. It is the one free-text tag of
  baseline TIFF that Pillow, tifffile and ImageJ show; a description written by another
  program (ImageJ puts its own text there) is simply not a record and is ignored.
* No sidecar files: they get separated from their image when files are copied one by one.

Signed and float TIFFs (HU) are read as they are; nothing is refused for its range.
Refused, with one line saying what to do: alpha channels that are not fully opaque, 16-bit
colour TIFFs (Pillow reads only their high bytes), pages of different sizes or dtypes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edsr_lab.errors import (
    BadArgumentError,
    ImageInputError,
    ImageReadError,
    ImageTypeError,
)
from edsr_lab.files import atomic_write, check_target
from edsr_lab.intensity import IntensityMap, intensity_map
from edsr_lab.io import DEFAULT_MAX_PIXELS, apply_orientation, exif_orientation, open_image
from edsr_lab.png import decode_png16_color, encode_png
from edsr_lab.tiff import TIFF_DTYPES, encode_tiff

__all__ = ["PNG_TEXT_KEY", "StoredImage", "read_values", "save_values", "storage_for"]

#: Keyword of the PNG text chunk that holds the intensity record.
PNG_TEXT_KEY = "edsr_lab.intensity"

_TIFF_DESCRIPTION = 270
_TIFF_BITS = 258
_TIFF_SAMPLE_FORMAT = 339


@dataclass(frozen=True)
class StoredImage:
    """An image file's values as stored.

    Attributes:
        values: numpy array (P, C, H, W) in the file's dtype (native byte order), P >= 1
            pages, C = 1 (grey) or 3 (RGB), upright as the EXIF orientation says.
        format: Pillow's format name (``"PNG"``, ``"TIFF"``, ...).
        recorded: the intensity map stored in the file (by :func:`save_values`), or None.
        path: the file read.
    """

    values: np.ndarray
    format: str
    recorded: IntensityMap | None
    path: Path

    @property
    def dtype(self) -> str:
        return self.values.dtype.name

    @property
    def pages(self) -> int:
        return int(self.values.shape[0])

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def physical(self) -> np.ndarray:
        """The values in the recorded map's units: ``stored * slope + intercept`` (float64)
        when the file's record has a rescale, else ``values`` itself. This, not ``values``,
        is what :meth:`intensity_map`'s map takes (a PNG holding HU + 1024 with its record
        gives HU here)."""
        rec = self.recorded
        if rec is None or (rec.slope == 1.0 and rec.intercept == 0.0):
            return self.values
        return self.values.astype(np.float64) * rec.slope + rec.intercept

    def intensity_map(self, spec: str | tuple[float, float] = "auto", *, units: str | None = None):
        """The :class:`~edsr_lab.intensity.IntensityMap` for all pages together, over
        :attr:`physical`.

        ``units`` default: the recorded map's units (e.g. ``"HU"``) if the file has one, else
        ``"stored"``. The recorded rescale (slope, intercept) is kept, so values written
        back are stored the way they were read.
        """
        rec = self.recorded
        return intensity_map(
            self.physical,
            spec,
            units=units or (rec.units if rec else "stored"),
            dtype=self.dtype,
            slope=rec.slope if rec else 1.0,
            intercept=rec.intercept if rec else 0.0,
        )


def read_values(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> StoredImage:
    """Read every page of an image file as stored numbers (see the module docstring).

    Args:
        path: a PNG, TIFF or any other file Pillow reads (JPEG, BMP: 8-bit).
        max_pixels: refuse files whose header claims more pixels per page (decompression
            bomb guard, as :func:`edsr_lab.io.load_image`); None disables it.

    Returns:
        A :class:`StoredImage`; ``values`` is (P, C, H, W).

    Raises:
        ImageReadError: unreadable file (as ``load_image``), a partly transparent image,
            a 16-bit colour TIFF, or pages that differ in size or dtype.
    """
    path = Path(path).expanduser()
    pages: list[np.ndarray] = []
    recorded = None
    with open_image(path, max_pixels=max_pixels) as img:
        fmt = img.format or "?"
        n_frames = int(getattr(img, "n_frames", 1))
        for index in range(n_frames):
            if index:
                img.seek(index)
            page = _page_values(img, path)
            if pages and (page.shape != pages[0].shape or page.dtype != pages[0].dtype):
                raise ImageReadError(
                    path,
                    f"its page {index + 1} is {page.shape[1]}x{page.shape[0]} {page.dtype} "
                    f"but page 1 is {pages[0].shape[1]}x{pages[0].shape[0]} "
                    f"{pages[0].dtype}; a stack must have equal pages. Save each page as its "
                    "own file (e.g. with tifffile or ImageJ's Stack to Images)",
                )
            pages.append(page)
        text = _description(img)
        orientation = exif_orientation(img) if fmt != "TIFF" else 1
    if text is not None:
        recorded = IntensityMap.from_json(text)
    stack = np.stack([apply_orientation(p, orientation) for p in pages])
    values = np.ascontiguousarray(stack.transpose(0, 3, 1, 2))
    return StoredImage(values=values, format=fmt, recorded=recorded, path=path)


def _description(img: Image.Image) -> str | None:
    if img.format == "PNG":
        img.load()  # text chunks after the pixels are only seen once decoded
        text = getattr(img, "text", {}).get(PNG_TEXT_KEY)
        return text if isinstance(text, str) else None
    tags = getattr(img, "tag_v2", None)
    if tags is not None:
        text = tags.get(_TIFF_DESCRIPTION)
        return text if isinstance(text, str) else None
    return None


def _tiff_sample(img: Image.Image) -> tuple[int, int] | None:
    """(bits per sample, SampleFormat) of the current TIFF page, or None for other formats."""
    tags = getattr(img, "tag_v2", None)
    if img.format != "TIFF" or tags is None:
        return None
    bits = tags.get(_TIFF_BITS, (1,))
    fmt = tags.get(_TIFF_SAMPLE_FORMAT, (1,))
    first = lambda v: int(v[0] if isinstance(v, tuple | list) else v)  # noqa: E731
    return first(bits), first(fmt)


def _page_values(img: Image.Image, path: Path) -> np.ndarray:
    """Decode the current frame to (H, W, C) in its stored dtype, C in {1, 3}."""
    sample = _tiff_sample(img)
    mode = img.mode
    if sample is not None and sample[0] == 16 and mode in ("RGB", "RGBA", "RGBX"):
        raise ImageReadError(
            path,
            "it is a 16-bit colour TIFF, which Pillow reads at 8-bit precision only; save "
            "it as a 16-bit PNG or as one grey TIFF per channel",
        )
    if img.format == "PNG" and img.tile and img.tile[0][3] in ("RGB;16B", "RGBA;16B"):
        array = decode_png16_color(path, img)
        if array is not None:
            return _drop_opaque_alpha(array, 65535, path)
    img.load()
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        data = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
        return _drop_opaque_alpha(data, 255, path)
    if mode == "1":
        return (np.asarray(img.convert("L")))[..., None]
    if mode in ("L", "LA", "RGB", "RGBA"):
        data = np.asarray(img)
        data = data[..., None] if data.ndim == 2 else data
        return _drop_opaque_alpha(data, 255, path)
    if mode.startswith("I;16"):
        data = np.asarray(img)
        native = data.dtype.newbyteorder("=")
        return data.astype(native)[..., None]
    if mode in ("I", "I;32", "I;32S"):
        data = np.asarray(img)
        if sample == (16, 2):
            data = data.astype(np.int16)  # a signed 16-bit TIFF, widened by Pillow
        elif sample == (32, 1):
            data = data.view(np.uint32)  # an unsigned 32-bit TIFF, read as signed
        elif sample is None and data.min() >= 0 and data.max() <= 65535:
            data = data.astype(np.uint16)  # old Pillow's mode "I" for 16-bit PNGs
        return data[..., None]
    if mode == "F":
        return np.asarray(img).astype(np.float32)[..., None]
    if mode in ("La", "RGBa"):
        return _drop_opaque_alpha(np.asarray(img.convert(mode.upper())), 255, path)
    return np.asarray(img.convert("RGB"))  # CMYK, YCbCr, HSV: Pillow's conversion


def _drop_opaque_alpha(data: np.ndarray, opaque: int, path: Path) -> np.ndarray:
    if data.shape[2] not in (2, 4):
        return data
    if not (data[..., -1] == opaque).all():
        raise ImageReadError(
            path,
            "it has transparent pixels, which have no stored value to super-resolve; "
            "composite it with edsr_lab.io.load_image(path, alpha='white') or remove the "
            "alpha channel",
        )
    return data[..., :-1]


def _as_pages(values: np.ndarray) -> np.ndarray:
    """(H, W) / (C, H, W) / (P, C, H, W) -> (P, H, W, C)."""
    if values.ndim == 2:
        values = values[None, None]
    elif values.ndim == 3:
        values = values[None]
    if values.ndim != 4 or values.shape[1] not in (1, 3) or 0 in values.shape:
        raise ImageInputError(
            f"save_values expects values shaped (H, W), (C, H, W) or (P, C, H, W) with C = 1 "
            f"or 3, got {tuple(values.shape)}"
        )
    return values.transpose(0, 2, 3, 1)


def save_values(
    values: np.ndarray,
    path: str | os.PathLike[str],
    *,
    mapping: IntensityMap | None = None,
    overwrite: bool = False,
) -> Path:
    """Write stored values (as :func:`read_values` returns them) to a PNG or TIFF file.

    Args:
        values: numpy array (H, W), (C, H, W) or (P, C, H, W), C = 1 or 3. Its dtype is the
            file's: PNG takes uint8 / uint16 (one page); TIFF takes uint8, uint16, int16,
            int32, uint32, float32 for grey and uint8 / uint16 for RGB, any number of pages.
        path: ``.png``, ``.tif`` or ``.tiff``; parent folders are created.
        mapping: the intensity map to record in the file (PNG text chunk / TIFF
            ImageDescription), or None.
        overwrite: replace an existing file; default False (OutputExistsError).

    Returns:
        The path written (atomically: a crash never leaves a half-written file).

    Raises:
        ImageTypeError: a dtype the format cannot hold (the message names the one that can).
        ImageInputError: bad shape, NaN in float values, several pages for PNG.
        BadArgumentError: another suffix.
        OutputExistsError / OutputPathError: the file exists / the path is a folder.
    """
    if not isinstance(values, np.ndarray):
        raise ImageTypeError(
            f"save_values expects a numpy array of stored values, got {type(values).__name__}"
        )
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    pages = _as_pages(values)
    name = pages.dtype.name
    text = mapping.to_json() if mapping is not None else None
    if pages.dtype.kind == "f" and not np.isfinite(pages).all():
        raise ImageInputError(f"cannot save {str(path)!r}: the values hold NaN or infinity")
    if suffix == ".png":
        if name not in ("uint8", "uint16"):
            raise ImageTypeError(
                f"cannot save {name} values as PNG {str(path)!r}: PNG holds only unsigned 8- "
                "or 16-bit integers; use a .tif file (int16 and float32 are kept)"
            )
        if pages.shape[0] != 1:
            raise ImageInputError(
                f"cannot save {pages.shape[0]} pages as one PNG {str(path)!r}; use a .tif file "
                "(multi-page) or one PNG per page"
            )
        data = encode_png(pages[0], {PNG_TEXT_KEY: text} if text else None)
    elif suffix in (".tif", ".tiff"):
        if name not in TIFF_DTYPES or (pages.shape[3] == 3 and name not in ("uint8", "uint16")):
            raise ImageTypeError(
                f"cannot save {name} values with {pages.shape[3]} channel(s) as TIFF "
                f"{str(path)!r}; grey TIFFs take {', '.join(TIFF_DTYPES)}, colour ones uint8 "
                "or uint16 (convert with values.astype(...))"
            )
        data = encode_tiff(pages if pages.shape[3] == 3 else pages[..., 0], text)
    else:
        raise BadArgumentError(
            f"cannot save stored values to {str(path)!r}: use .png (uint8/uint16) or .tif "
            "(also int16, float32, stacks)"
        )
    check_target(path, overwrite=overwrite, what="save image to")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def _whole(x: float) -> bool:
    return float(x).is_integer()


def storage_for(
    mapping: IntensityMap, suffix: str, *, channels: int = 1, bits: int | None = None
) -> IntensityMap:
    """How to store values of ``mapping`` in a PNG or TIFF so they can be read back.

    The result is ``mapping`` with another stored dtype and rescale
    (:meth:`~edsr_lab.intensity.IntensityMap.with_storage`); :func:`save_values` records it
    in the file, so ``stored * slope + intercept`` gives the values again.

    Args:
        mapping: the map of the values (its range, units, dtype and rescale).
        suffix: ``".png"`` or ``".tif"``/``".tiff"``.
        channels: 1 (grey) or 3 (colour: uint8 or uint16 only; kept when it is one).
        bits: ``8`` or ``16`` (unsigned integers over [lo, hi]) or ``32`` (float32 values
            in TIFF) to ask for a precision; None: the one that keeps the values exactly.

    Returns:
        The map to decode with. Rules (first that applies), for grey values:

        * ``bits=8`` / ``16`` where the values do not fit exactly: ``(value - lo) / step``
          with ``step = (hi - lo) / (2**bits - 1)`` (quantised, the step recorded);
        * ``bits=32``, or a TIFF of non-integer values: float32 values (slope 1, intercept 0);
        * a TIFF of integer values within int16: int16 values, slope 1, intercept 0 (an
          "int16 TIFF in HU" for CT); other integers in a TIFF: as the source stores them;
        * a PNG of integer values: uint16 with the map's own rescale if [lo, hi] fits it
          (a CT stored as HU + 1024 stays so), else ``value - lo``;
        * anything else: the quantised 16-bit form.

    Raises:
        BadArgumentError: another suffix, or a colour dtype the format cannot hold.
    """
    suffix = suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise BadArgumentError(f"storage_for: {suffix!r} is not .png, .tif or .tiff")
    if bits not in (None, 8, 16, 32):
        raise BadArgumentError(f"storage_for: bits must be 8, 16 or 32, got {bits!r}")
    if channels == 3 and bits is None and mapping.dtype in ("uint8", "uint16"):
        return mapping
    if channels == 3 and bits == 32:
        raise BadArgumentError("colour values are stored as 8- or 16-bit integers, not floats")
    whole = (
        np.dtype(mapping.dtype).kind in "iu"
        and _whole(mapping.slope)
        and _whole(mapping.intercept)
        and _whole(mapping.lo)
        and _whole(mapping.hi)
    )
    if bits == 8:
        return _quantised(mapping, 255, "uint8")
    tiff = suffix != ".png" and channels == 1  # colour TIFFs take uint8/uint16 only
    if bits == 32 or (tiff and not whole and bits is None):
        if not tiff:
            raise BadArgumentError("float values (bits 32) are stored in a .tif, not a .png")
        return mapping.with_storage(dtype="float32", slope=1.0, intercept=0.0)
    if tiff and bits is None:
        if whole and -32768 <= mapping.lo and mapping.hi <= 32767:
            return mapping.with_storage(dtype="int16", slope=1.0, intercept=0.0)
        if mapping.dtype in TIFF_DTYPES:  # e.g. uint32 dose grids: as the source stores them
            return mapping
        return mapping.with_storage(dtype="float32", slope=1.0, intercept=0.0)
    if whole:
        own = [(mapping.lo - mapping.intercept) / mapping.slope]
        own.append((mapping.hi - mapping.intercept) / mapping.slope)
        if all(0 <= v <= 65535 and _whole(v) for v in own):
            return mapping.with_storage(dtype="uint16")
        if mapping.hi - mapping.lo <= 65535:
            return mapping.with_storage(dtype="uint16", slope=1.0, intercept=mapping.lo)
    return _quantised(mapping, 65535, "uint16")


def _quantised(mapping: IntensityMap, top: int, dtype: str) -> IntensityMap:
    """[lo, hi] spread over the integers 0..top: stored = (value - lo) / step."""
    return mapping.with_storage(dtype=dtype, slope=mapping.peak / top, intercept=mapping.lo)
