"""Writing TIFF files that keep medical values exactly: int16, uint16, float32, several pages.

Pillow writes uint16 and float32 TIFFs, but it turns int16 (CT in Hounsfield units) into
32-bit integers, and its multi-page writer needs one PIL image per page. This module writes
baseline TIFF (TIFF 6.0, section 2 plus SampleFormat from section 19) by hand: little-endian,
uncompressed, one strip per page, grey (BlackIsZero) or RGB, with the pixel dtype kept
(SampleFormat 1 = unsigned, 2 = signed, 3 = float) and an optional ImageDescription (tag
270) holding a line of ASCII text: :mod:`edsr_lab.io` stores the
:class:`~edsr_lab.intensity.IntensityMap` record there as JSON, so the file says how its
values map to the model's [0, 1]. Pillow, tifffile, ImageJ/Fiji and 3D Slicer read these
files; reading is left to Pillow (:func:`edsr_lab.io.read_values`).

Reference: TIFF Revision 6.0 (Adobe, 1992).
"""

from __future__ import annotations

import struct

import numpy as np

from edsr_lab.errors import BadArgumentError

__all__ = ["TIFF_DTYPES", "encode_tiff"]

#: dtypes :func:`encode_tiff` writes, and their SampleFormat code.
TIFF_DTYPES = {"uint8": 1, "uint16": 1, "int16": 2, "uint32": 1, "int32": 2, "float32": 3}

_SHORT, _LONG, _ASCII = 3, 4, 2


def encode_tiff(pages: np.ndarray, description: str | None = None) -> bytes:
    """Encode (P, H, W) or (P, H, W, 3) pages as a little-endian, uncompressed TIFF.

    Args:
        pages: numpy array, P >= 1 pages, dtype one of :data:`TIFF_DTYPES`; a last axis of 3
            means RGB (uint8/uint16 only), otherwise grey.
        description: ASCII text for the ImageDescription tag of every page (e.g. a JSON
            record), or None.

    Returns:
        The file's bytes.

    Raises:
        BadArgumentError: unsupported dtype or shape, or a description that is not ASCII.
    """
    name = pages.dtype.name  # the same for either byte order ('>i2' is "int16")
    if name not in TIFF_DTYPES:
        raise BadArgumentError(f"encode_tiff: unsupported dtype {pages.dtype}")
    rgb = pages.ndim == 4 and pages.shape[3] == 3
    if pages.ndim != 3 and not rgb:
        raise BadArgumentError(
            f"encode_tiff: expected (P, H, W) or (P, H, W, 3), got {pages.shape}"
        )
    if rgb and name not in ("uint8", "uint16"):
        raise BadArgumentError(f"encode_tiff: RGB pages must be uint8 or uint16, got {name}")
    text = None
    if description is not None:
        if not description.isascii() or "\0" in description:
            raise BadArgumentError("encode_tiff: the description must be ASCII text without NUL")
        text = description.encode("ascii") + b"\0"
    n_pages, height, width = pages.shape[:3]
    spp = 3 if rgb else 1
    bits = np.dtype(name).itemsize * 8
    data = np.ascontiguousarray(pages, dtype=np.dtype(name).newbyteorder("<"))

    out = bytearray(b"II" + struct.pack("<HI", 42, 0))  # first-IFD offset patched below
    previous_link = 4  # where the offset of the next IFD is to be written
    for p in range(n_pages):
        strip = data[p].tobytes()
        strip_offset = len(out)
        out += strip
        if len(out) % 2:
            out += b"\0"  # TIFF offsets should be even (word-aligned)
        extra = bytearray()  # values longer than 4 bytes, stored after the IFD

        entries: list[tuple[int, int, int, bytes | int]] = [
            (256, _LONG, 1, width),
            (257, _LONG, 1, height),
            (258, _SHORT, spp, struct.pack("<" + "H" * spp, *([bits] * spp))),
            (259, _SHORT, 1, 1),  # no compression
            (262, _SHORT, 1, 2 if rgb else 1),  # RGB or BlackIsZero
        ]
        if text is not None:
            entries.append((270, _ASCII, len(text), text))
        entries += [
            (273, _LONG, 1, strip_offset),
            (277, _SHORT, 1, spp),
            (278, _LONG, 1, height),  # one strip holds every row
            (279, _LONG, 1, len(strip)),
            (284, _SHORT, 1, 1),  # chunky (interleaved) samples
            (339, _SHORT, spp, struct.pack("<" + "H" * spp, *([TIFF_DTYPES[name]] * spp))),
        ]
        ifd_offset = len(out)
        ifd_size = 2 + 12 * len(entries) + 4
        extra_base = ifd_offset + ifd_size
        ifd = bytearray(struct.pack("<H", len(entries)))
        for tag, kind, count, value in entries:
            if isinstance(value, bytes):
                if len(value) <= 4:
                    field = value.ljust(4, b"\0")
                else:
                    field = struct.pack("<I", extra_base + len(extra))
                    extra += value
                    if len(extra) % 2:
                        extra += b"\0"
            elif kind == _SHORT:
                field = struct.pack("<HH", value, 0)
            else:
                field = struct.pack("<I", value)
            ifd += struct.pack("<HHI", tag, kind, count) + field
        ifd += struct.pack("<I", 0)  # next IFD: patched when another page follows
        struct.pack_into("<I", out, previous_link, ifd_offset)
        previous_link = ifd_offset + ifd_size - 4
        out += ifd + extra
    return bytes(out)
