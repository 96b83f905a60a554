"""PNG details Pillow does not handle for us: writing 16-bit colour, checking pixel streams.

* :func:`encode_png16` writes (H, W, C) uint16 arrays as 16-bit gray/RGB/RGBA PNGs. Pillow
  has no 16-bit colour mode, so :func:`edsr_lab.io.save_image` (``bits=16``) uses this.
  :func:`encode_png` does the same for uint8 or uint16 and adds text chunks
  (:mod:`edsr_lab.stored` records the intensity map in one).
* :func:`check_png` reads a PNG's chunk structure (not its pixels) and refuses files whose
  header claims an absurd size, or whose compressed pixel stream ends cleanly but holds
  fewer rows than the header promises. Pillow accepts the latter and fills the missing rows
  with black (a plausible-looking wrong image), and for the former it would allocate the
  claimed size first (a 68-byte file claiming 1 x 80,000,000 pixels decodes to 2.9 GB
  of zeros if allowed).

Reference: the PNG specification (W3C, 2nd edition), sections 5 (chunks), 7-8 (scanlines,
filtering, interlacing) and 11.2.2 (IHDR).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL import Image

__all__ = [
    "PNG_SIGNATURE",
    "check_png",
    "decode_png16_color",
    "encode_png",
    "encode_png16",
    "expected_stream_length",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
# Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


def encode_png16(u16: np.ndarray) -> bytes:
    """Encode (H, W, C) uint16, C in {1, 2, 3, 4}, as a 16-bit PNG (gray, gray + alpha, RGB
    or RGBA). Same as ``encode_png(u16)``."""
    return encode_png(u16)


def encode_png(array: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """Encode (H, W, C) uint8 or uint16, C in {1, 2, 3, 4}, as an 8- or 16-bit PNG (gray,
    gray + alpha, RGB or RGBA), with optional text chunks.

    PNG stores samples big-endian, each row prefixed by a filter byte; filter 0 ("none")
    keeps this simple, at the cost of somewhat larger files than adaptive filtering.

    Args:
        array: the pixels; the dtype sets the bit depth (8 or 16).
        text: keyword -> text, written as ``tEXt`` chunks before the pixels (PNG spec
            11.3.4.3: keyword of 1-79 Latin-1 characters, text in Latin-1). Pillow shows
            them in ``Image.open(path).text``; :mod:`edsr_lab.stored` keeps the intensity
            record there.
    """
    height, width, channels = array.shape
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}[np.dtype(array.dtype)]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = np.zeros((height, 1 + width * channels * bit_depth // 8), dtype=np.uint8)
    big_endian = np.dtype(array.dtype).newbyteorder(">")
    rows[:, 1:] = np.ascontiguousarray(array, dtype=big_endian).view(np.uint8).reshape(height, -1)
    compressed = zlib.compress(rows.tobytes(), 6)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    texts = b"".join(
        chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
        for key, value in (text or {}).items()
    )
    step = 1 << 20  # several IDAT chunks: a chunk's length must stay below 2**31
    idat = b"".join(
        chunk(b"IDAT", compressed[i : i + step]) for i in range(0, len(compressed), step)
    )
    return PNG_SIGNATURE + chunk(b"IHDR", header) + texts + idat + chunk(b"IEND", b"")


def expected_stream_length(
    width: int, height: int, bit_depth: int, color_type: int, interlace: int
) -> int:
    """Bytes of filtered scanlines (filter byte + packed samples per row) the image needs."""
    bits_per_pixel = _CHANNELS.get(color_type, 1) * bit_depth

    def rows_bytes(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if interlace != 1:
        return rows_bytes(width, height)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        total += rows_bytes((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
    return total


def _chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Yield (type, length) of each chunk, leaving ``f`` at the start of its data."""
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)
        yield kind, length


def check_png(f: BinaryIO, max_pixels: int | None) -> str | None:
    """Check a PNG file's header and pixel-stream length; return a reason it is bad, or None.

    Reads the chunk structure and inflates the IDAT data incrementally without keeping
    it, so the check costs one pass of decompression and constant memory, and stops as soon
    as the stream exceeds what the header allows. Files that are not PNGs return None (the
    caller's usual decoder decides about them).

    Args:
        f: a binary file positioned anywhere; it is read from the start.
        max_pixels: refuse a header claiming more than this many pixels (None: no limit).
    """
    f.seek(0)
    if f.read(8) != PNG_SIGNATURE:
        return None
    header: tuple[int, ...] | None = None
    inflater = zlib.decompressobj()
    produced = 0
    expected = 0
    saw_idat = False
    for kind, length in _chunks(f):
        if kind == b"IHDR":
            data = f.read(length)
            if len(data) != 13:
                return "its PNG header (IHDR) is damaged"
            header = struct.unpack(">IIBBBBB", data)
            width, height, bit_depth, color_type, _, _, interlace = header
            if width == 0 or height == 0:
                return f"its PNG header says the image is {width}x{height} pixels"
            if max_pixels is not None and width * height > max_pixels:
                return None  # the caller's max_pixels check explains this one
            expected = expected_stream_length(width, height, bit_depth, color_type, interlace)
            f.seek(4, 1)  # CRC
            continue
        if kind == b"IDAT":
            if header is None:
                return "its pixel data comes before the PNG header (IHDR)"
            saw_idat = True
            remaining = length
            while remaining:
                piece = f.read(min(remaining, 1 << 16))
                if not piece:
                    break  # truncated file: Pillow reports it as truncated
                remaining -= len(piece)
                try:
                    produced += len(inflater.decompress(piece, 1 << 20))
                    while inflater.unconsumed_tail:
                        produced += len(inflater.decompress(inflater.unconsumed_tail, 1 << 20))
                except zlib.error:
                    return None  # damaged data: Pillow's decoder gives its own message
                if produced > expected:
                    return None  # extra data: Pillow ignores it, the image is complete
            f.seek(4, 1)
            continue
        if kind == b"IEND":
            break
        f.seek(length + 4, 1)
    if header is None or not saw_idat:
        return None
    if not inflater.eof:
        return None  # the stream is cut off: Pillow raises "truncated" for this case
    if produced < expected:
        width, height = header[0], header[1]
        row = expected // height if header[6] != 1 else 0
        rows = f" ({produced // row} of {height} rows)" if row else ""
        return (
            f"its pixel data is complete but too short: {produced:,} of the {expected:,} bytes "
            f"a {width}x{height} image needs{rows}; the missing part would be read as black. "
            "The file was written by a broken program; export it again"
        )
    return None


def decode_png16_color(path: Path, img: Image.Image) -> np.ndarray | None:
    """Read a 16-bit RGB/RGBA PNG at full precision, or return None for any other file.

    Args:
        path: the file ``img`` was opened from (it is opened a second time).
        img: the open, not yet decoded ``PIL.Image``.

    Returns:
        uint16 (H, W, 3 or 4), or None when ``img`` is not a 16-bit colour PNG.

    Pillow has no 16-bit colour mode: its PNG decoder keeps only the high byte of each
    sample (raw mode "RGB;16B"). Its "RGB;16L" unpacker, used on the same big-endian data,
    keeps the low byte instead, with the same PNG row filtering. Decoding twice and joining
    the bytes gives the exact 16-bit values.
    """
    tile = img.tile
    if img.format != "PNG" or len(tile) != 1 or tile[0][3] not in ("RGB;16B", "RGBA;16B"):
        return None
    from PIL import Image  # only here: the rest of this module needs no Pillow

    img.load()
    high = np.asarray(img)
    with Image.open(path) as low_img:
        low_tile = low_img.tile[0]
        low_img.tile = [
            (low_tile[0], low_tile[1], low_tile[2], low_tile[3].replace(";16B", ";16L"))
        ]
        try:
            low_img.load()
        except ValueError as exc:  # a Pillow without that unpacker: fall back to 8 bits
            warnings.warn(
                f"{str(path)!r}: reading this 16-bit PNG at 8-bit precision ({exc})",
                RuntimeWarning,
                stacklevel=3,
            )
            return high.astype(np.uint16) * np.uint16(257)  # 8-bit levels on the 16-bit scale
        low = np.asarray(low_img)
    return (high.astype(np.uint16) << 8) | low.astype(np.uint16)
