"""The DICOM header, read carefully: numbers, rescale, stored range (shared by the readers
and writers of :mod:`edsr_lab.dicom`).

pydicom converts an element's value when it is first used; a damaged header ('abc' in
RescaleSlope, one value in PixelSpacing, an unknown VR) raises a different exception each
time. Every value the package uses goes through :func:`header_value` /
:func:`header_number`, which turn each of them into one
:class:`~edsr_lab.errors.DicomError` naming the file and the element.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edsr_lab.errors import DicomError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydicom.dataset import Dataset

__all__ = [
    "INSTALL_HINT",
    "VALUE_ERRORS",
    "dataset_name",
    "ds_number",
    "header_number",
    "header_value",
    "require_pydicom",
    "rescale",
    "shown",
    "stored_dtype",
    "stored_range",
    "value_errors",
]

#: The command that installs what the DICOM modules need.
INSTALL_HINT = 'pip install -e ".[dicom]"  (or: pip install pydicom)'

# What pydicom raises on a value it cannot convert or a damaged element (found by
# feeding it bad headers, truncated and bit-flipped files).
VALUE_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,  # an unknown VR
    struct.error,
    EOFError,
)


def value_errors(pydicom: Any) -> tuple[type[BaseException], ...]:
    """:data:`VALUE_ERRORS` and pydicom's own (BytesLengthException is an Exception)."""
    return (*VALUE_ERRORS, RuntimeError, pydicom.errors.BytesLengthException)


def require_pydicom() -> Any:
    """The pydicom module, or MissingDependencyError: one line with the install command
    (a command calls it first, so a missing extra is said before a model is loaded)."""
    try:
        import pydicom  # here: an optional extra, and this module must import without it
    except ImportError as err:
        raise MissingDependencyError(
            f"reading and writing DICOM needs pydicom, which is not installed ({err}); "
            f"install the extra with: {INSTALL_HINT}"
        ) from None
    return pydicom


def dataset_name(ds: Dataset) -> str:
    """How messages name ``ds``: ``DICOM '<its file>'``, or "the DICOM"."""
    name = getattr(ds, "filename", None)
    return f"DICOM {str(name)!r}" if isinstance(name, (str, os.PathLike)) else "the DICOM"


def header_value(ds: Dataset, keyword: str, where: str) -> Any:
    """The value of ``keyword`` (None when absent or empty); DicomError if pydicom
    cannot convert it (e.g. RescaleSlope 'abc')."""
    try:
        with warnings.catch_warnings():  # pydicom's "Invalid value for VR": said below
            warnings.filterwarnings("ignore", message="Invalid value for VR")
            value = ds.get(keyword)
    except value_errors(require_pydicom()) as err:
        raise DicomError(
            f"{where}: its {keyword} cannot be read ({err}); fix the header (e.g. with "
            "dcmodify) or export the slice again"
        ) from None
    return None if value is None or value == "" else value


def header_number(ds: Dataset, keyword: str, default: float | None, *, whole: bool = False) -> Any:
    """``keyword`` as one finite number (an int if ``whole``), ``default`` when absent.

    Raises:
        DicomError: not a number, several values, or not whole when ``whole``.
    """
    where = dataset_name(ds)
    value = header_value(ds, keyword, where)
    if value is None:
        return default
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != 1:
            raise DicomError(
                f"{where}: {keyword} holds {len(value)} values ({shown(value)}); it must be "
                "one number; fix the header or export the slice again"
            )
        value = value[0]
    try:
        number = float(value)
    except VALUE_ERRORS:
        number = math.nan
    if not math.isfinite(number) or (whole and not number.is_integer()):
        raise DicomError(
            f"{where}: {keyword} is {shown(value)}, not a {'whole ' if whole else ''}number; "
            "fix the header (e.g. with dcmodify) or export the slice again"
        )
    return int(number) if whole else number


def shown(value: Any) -> str:
    """A header value as a message shows it: quoted, multi-values joined by \\, 40 chars."""
    text = (
        "\\".join(map(str, value))
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes))
        else str(value)
    )
    return repr(text[:40])


def rescale(ds: Dataset) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept), 1 and 0 when absent; DicomError for 0 or not numbers."""
    slope = header_number(ds, "RescaleSlope", 1.0)
    intercept = header_number(ds, "RescaleIntercept", 0.0)
    if slope == 0:
        raise DicomError(
            f"{dataset_name(ds)}: RescaleSlope is 0, which maps every pixel to the same value; "
            "fix the header (usually 1) or export the slice again"
        )
    return slope, intercept


def stored_range(ds: Dataset) -> tuple[int, int]:
    """The smallest and largest stored integer (BitsStored, PixelRepresentation)."""
    bits = header_number(
        ds, "BitsStored", header_number(ds, "BitsAllocated", 16, whole=True), whole=True
    )
    if header_number(ds, "PixelRepresentation", 0, whole=True) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def stored_dtype(ds: Dataset) -> np.dtype:
    """The little-endian numpy dtype of the stored pixels (BitsAllocated, PixelRepresentation)."""
    bits = int(ds.get("BitsAllocated", 16))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")


def ds_number(x: float) -> str:
    """A decimal string (VR DS) of at most 16 characters."""
    text = f"{x:.10g}"
    return text if len(text) <= 16 else f"{x:.8g}"
