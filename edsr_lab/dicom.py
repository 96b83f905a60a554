"""Reading and writing DICOM slices (CT, MR, X-ray, ...), and windowing them for display.

Needs the optional extra: ``pip install -e ".[dicom]"`` (pydicom). Without it every function
here raises :class:`edsr_lab.errors.MissingDependencyError` with that command.

The path of one slice through super-resolution::

    stored integers --(RescaleSlope, RescaleIntercept)--> values in the modality's units
        (Hounsfield units for CT; arbitrary units for MR)                 [read_dicom]
    --(linear map of [lo, hi] to [0, 1]; lo, hi = the slice's min and max)--> grey image
    --(replicated to RGB, through the RGB model, back to one channel)--> SR grey image
    --(the same linear map, inverted)--> SR values   [edsr_lab.inference.super_resolve_values]
    --(inverse rescale, rounded, clipped to the stored range)--> stored integers
                                                           [derived_dataset, write_dicom]

* :func:`read_dicom` returns the values as float32 (1, H, W) **in the modality's units**
  (not [0, 1]) and the pydicom ``Dataset``.
* :func:`derived_dataset` builds the output DICOM: a copy of the original (patient, study,
  geometry and acquisition metadata kept) with new pixels, Rows/Columns, PixelSpacing
  divided by the scale, new SOP Instance UID and Series Instance UID (a derived image is a
  new instance in a new series, so viewers never stack it with the originals),
  ImageType DERIVED\\SECONDARY, a DerivationDescription, a SourceImageSequence pointing at
  the original, and the original's BitsAllocated/BitsStored/PixelRepresentation and
  rescale. Values outside the stored range (e.g. a 12-bit CT) are clipped to it.
  :func:`write_dicom` writes it atomically.
* :func:`window` maps values to [0, 1] for display with the DICOM linear VOI window
  (WindowCenter/WindowWidth from the file, or given).

Running the whole path on files (``python -m edsr_lab upscale-dicom``) is
:func:`edsr_lab.upscale.upscale_dicom` / :func:`edsr_lab.upscale.upscale_dicom_files`.

Why a min/max map and not the window: the window clips everything outside it (bone, air
in a soft-tissue window); the min/max map is invertible, so the written DICOM keeps the
full range of the input. Why grey via RGB: the course models are trained on RGB photos; a
grey image replicated to three channels is a valid RGB input, and the three output
channels (nearly equal) are brought back to one with ITU-R 601 luma, the rule
``edsr_lab.io.load_image(path, channels=1)`` uses. A model built for one channel
(``n_colors=1``) is run on the grey image directly.

Only single-frame, single-channel (MONOCHROME1/MONOCHROME2) integer images are handled;
other files raise :class:`edsr_lab.errors.DicomError` saying what was found.

Super-resolution invents plausible detail: a super-resolved slice is not a measurement and
must not be used for diagnosis without a clinical validation of the whole pipeline.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edsr_lab import __version__
from edsr_lab.errors import DicomError, MissingDependencyError, OutputExistsError
from edsr_lab.files import atomic_write

# TEMPORARY shim until notebook 10 switches (its owner, the medical engineer): it calls
# dicom.super_resolve_values, which lives in edsr_lab.inference. Nothing else may use it.
from edsr_lab.inference import super_resolve_values  # noqa: F401 - the shim
from edsr_lab.paths import nearby, unreadable_reason

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydicom.dataset import Dataset
    from torch import nn

__all__ = [
    "DICOM_SUFFIXES",
    "INSTALL_HINT",
    "MAX_SLICE_BYTES",
    "check_derivable",
    "display_window",
    "file_window",
    "require_pydicom",
    "derived_dataset",
    "is_dicom_file",
    "read_dicom",
    "stored_range",
    "window",
    "window_from_dataset",
    "write_dicom",
]

#: The command that installs what this module needs.
INSTALL_HINT = 'pip install -e ".[dicom]"  (or: pip install pydicom)'

#: File name endings taken as DICOM without looking inside.
DICOM_SUFFIXES = (".dcm", ".dicom")

#: Most bytes of pixels one slice may declare (Rows x Columns x frames x samples x
#: BitsAllocated / 8), and about the most a Deflated file may inflate to: 256 MiB, e.g.
#: 11585 x 11585 at 16 bits, 7x a large mammogram. A file declaring more is refused before
#: anything is decoded (a 5 kB RLE file can claim 65535 x 65535 pixels: 8 GiB).
MAX_SLICE_BYTES = 2**28


def _max_file_bytes() -> int:
    """Most bytes a slice's file (or a Deflated one's inflated dataset) may hold: its
    pixels plus 1/16 for the header."""
    return MAX_SLICE_BYTES + MAX_SLICE_BYTES // 16


# What pydicom raises on a value it cannot convert or a damaged element (found by
# feeding it bad headers, truncated and bit-flipped files).
_VALUE_ERRORS = (
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


def _value_errors(pydicom: Any) -> tuple[type[BaseException], ...]:
    """:data:`_VALUE_ERRORS` and pydicom's own (BytesLengthException is an Exception)."""
    return (*_VALUE_ERRORS, RuntimeError, pydicom.errors.BytesLengthException)


# First bytes of image files that end up named .dcm.
_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
}


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


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` ends in .dcm/.dicom or starts with the DICOM preamble ("DICM" at 128).

    Needs no pydicom, so a command can route files before importing anything.
    """
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if not path.is_file():  # never open a FIFO (it would block) or a folder
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _where(ds: Dataset) -> str:
    name = getattr(ds, "filename", None)
    return f"DICOM {str(name)!r}" if isinstance(name, (str, os.PathLike)) else "the DICOM"


def _element(ds: Dataset, keyword: str, where: str) -> Any:
    """The value of ``keyword`` (None when absent or empty); DicomError if pydicom
    cannot convert it (e.g. RescaleSlope 'abc')."""
    try:
        with warnings.catch_warnings():  # pydicom's "Invalid value for VR": said below
            warnings.filterwarnings("ignore", message="Invalid value for VR")
            value = ds.get(keyword)
    except _value_errors(require_pydicom()) as err:
        raise DicomError(
            f"{where}: its {keyword} cannot be read ({err}); fix the header (e.g. with "
            "dcmodify) or export the slice again"
        ) from None
    return None if value is None or value == "" else value


def _number(ds: Dataset, keyword: str, default: float | None, *, whole: bool = False) -> Any:
    """``keyword`` as one finite number (an int if ``whole``), ``default`` when absent.

    Raises:
        DicomError: not a number, several values, or not whole when ``whole``.
    """
    where = _where(ds)
    value = _element(ds, keyword, where)
    if value is None:
        return default
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != 1:
            raise DicomError(
                f"{where}: {keyword} holds {len(value)} values ({_shown(value)}); it must be "
                "one number; fix the header or export the slice again"
            )
        value = value[0]
    try:
        number = float(value)
    except _VALUE_ERRORS:
        number = math.nan
    if not math.isfinite(number) or (whole and not number.is_integer()):
        raise DicomError(
            f"{where}: {keyword} is {_shown(value)}, not a {'whole ' if whole else ''}number; "
            "fix the header (e.g. with dcmodify) or export the slice again"
        )
    return int(number) if whole else number


def _shown(value: Any) -> str:
    text = (
        "\\".join(map(str, value))
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes))
        else str(value)
    )
    return repr(text[:40])


def _rescale(ds: Dataset) -> tuple[float, float]:
    slope = _number(ds, "RescaleSlope", 1.0)
    intercept = _number(ds, "RescaleIntercept", 0.0)
    if slope == 0:
        raise DicomError(
            f"{_where(ds)}: RescaleSlope is 0, which maps every pixel to the same value; "
            "fix the header (usually 1) or export the slice again"
        )
    return slope, intercept


def _not_dicom(path: Path, head: bytes) -> str | None:
    """Why ``path`` is not a DICOM file, from its first bytes; None if it may be one."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return None
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return (
                f"it is {what}, not DICOM (only its name says .dcm); rename it to its "
                "image suffix and use `upscale`"
            )
    return None


def _check_deflated(path: Path, pydicom: Any) -> None:
    """Refuse a Deflated file whose dataset inflates past :func:`_max_file_bytes`,
    inflating it in chunks and keeping nothing (pydicom would inflate it whole in memory:
    a 3 MB file can hold 3 GB of zeros)."""
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except (pydicom.errors.InvalidDicomError, *_value_errors(pydicom), OSError):
        return  # not a Part 10 file with meta: dcmread says what is wrong
    if meta.get("TransferSyntaxUID") != pydicom.uid.DeflatedExplicitVRLittleEndian:
        return
    where = f"DICOM {str(path)!r}"
    length = meta.get("FileMetaInformationGroupLength")
    if not isinstance(length, int):
        raise DicomError(
            f"{where} is Deflated but has no FileMetaInformationGroupLength, so its size "
            "cannot be checked before inflating it; decompress it first (gdcmconv --raw)"
        )
    limit = _max_file_bytes()
    inflate, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    with open(path, "rb") as f:
        f.seek(128 + 4 + 12 + length)  # preamble, "DICM", the group length element
        while not inflate.eof:
            chunk = inflate.unconsumed_tail or f.read(2**16)
            if not chunk:
                break
            try:
                total += len(inflate.decompress(chunk, 2**20))
            except zlib.error as err:
                raise DicomError(f"{where}: its Deflated data is damaged ({err})") from None
            if total > limit:
                raise DicomError(
                    f"{where} inflates to more than {_mib(limit)} (its file is "
                    f"{_mib(path.stat().st_size)}), more than one slice here may hold "
                    f"({_mib(MAX_SLICE_BYTES)} of pixels); refused before inflating it: a "
                    "damaged or hostile file?"
                )


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def read_dicom(path: str | os.PathLike[str]) -> tuple[torch.Tensor, Dataset]:
    """Read one DICOM slice with RescaleSlope/RescaleIntercept applied.

    Args:
        path: a single-frame, single-channel DICOM file (CT, MR, CR/DX, ...).

    Returns:
        ``(values, ds)``: ``values`` is float32 (1, H, W) in the modality's units
        (``stored * RescaleSlope + RescaleIntercept``; Hounsfield units for CT), NOT in
        [0, 1]; ``ds`` is the pydicom ``Dataset`` (metadata and original pixels). 32-bit
        stored values beyond 2**24 lose their last bits in float32 (as in the model).

    Raises:
        MissingDependencyError: pydicom is not installed (the message gives the command).
        DicomError: missing, empty, a folder, an image named .dcm, not DICOM, a header
            value that is not a number (RescaleSlope 'abc', NumberOfFrames 'x', ...),
            declared pixels over :data:`MAX_SLICE_BYTES` or a Deflated file inflating past
            it (checked before decoding), no pixel data, compressed pixel data pydicom
            cannot decode, several frames, colour, or float pixel data.
    """
    pydicom = require_pydicom()
    path = Path(path).expanduser()
    reason = unreadable_reason(path, "DICOM file")
    if not path.exists() and not path.is_symlink():
        reason = f"it does not exist; {nearby(path)}"
    if reason is None:
        with open(path, "rb") as f:
            reason = _not_dicom(path, f.read(132))
    if reason is None and path.stat().st_size > _max_file_bytes():
        reason = (
            f"it holds {_mib(path.stat().st_size)}, more than one slice here may hold "
            f"({_mib(MAX_SLICE_BYTES)} of pixels)"
        )
    if reason is not None:
        raise DicomError(f"cannot read DICOM {str(path)!r}: {reason}")
    _check_deflated(path, pydicom)
    try:
        ds = pydicom.dcmread(path)
    except (
        pydicom.errors.InvalidDicomError,
        zlib.error,
        MemoryError,
        *_value_errors(pydicom),
        OSError,
    ) as err:
        raise DicomError(
            f"cannot read DICOM {str(path)!r}: {str(err).split('. Use force=True')[0]}; is "
            "it a DICOM file (.dcm)?"
        ) from None
    _check_supported(ds, path)
    slope, intercept = _rescale(ds)
    try:
        stored = ds.pixel_array
    except (*_value_errors(pydicom), MemoryError) as err:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise DicomError(
            f"cannot decode the pixels of {str(path)!r} (transfer syntax {syntax}): {err}. "
            "For compressed DICOM install a decoder, e.g. pip install pylibjpeg "
            "pylibjpeg-libjpeg pylibjpeg-openjpeg, or decompress it with gdcmconv --raw"
        ) from None
    values = stored.astype(np.float64) * slope + intercept
    return torch.from_numpy(values.astype(np.float32))[None], ds


def _check_supported(ds: Dataset, path: Path) -> None:
    """What :func:`read_dicom` handles, checked on the header before any pixel is decoded."""
    where = f"DICOM {str(path)!r}"
    if "PixelData" not in ds:
        kinds = "FloatPixelData" if "FloatPixelData" in ds else "no pixel data"
        raise DicomError(f"{where} has {kinds}; only integer images can be super-resolved")
    frames = _number(ds, "NumberOfFrames", 1, whole=True)
    if frames != 1:
        raise DicomError(
            f"{where} holds {frames} frames; only single-frame slices are supported "
            "(split it into one file per frame first)"
        )
    samples = _number(ds, "SamplesPerPixel", 1, whole=True)
    photometric = str(_element(ds, "PhotometricInterpretation", where) or "MONOCHROME2")
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(
            f"{where} is {photometric} with {samples} samples per pixel; only grey "
            "(MONOCHROME1/MONOCHROME2) slices are supported; export colour images as PNG "
            "and use `upscale`"
        )
    if "ModalityLUTSequence" in ds:
        raise DicomError(
            f"{where} maps stored values through a Modality LUT, which has no inverse to "
            "write back; only RescaleSlope/RescaleIntercept are supported"
        )
    bits = _number(ds, "BitsAllocated", 16, whole=True)
    if bits not in (8, 16, 32):
        raise DicomError(f"{where} has BitsAllocated={bits}; expected 8, 16 or 32")
    stored_bits = _number(ds, "BitsStored", bits, whole=True)
    if not 1 <= stored_bits <= bits:
        raise DicomError(
            f"{where} has BitsStored={stored_bits} with BitsAllocated={bits}; BitsStored must "
            "be 1 to BitsAllocated; fix the header or export the slice again"
        )
    if _number(ds, "PixelRepresentation", 0, whole=True) not in (0, 1):
        raise DicomError(f"{where}: PixelRepresentation must be 0 (unsigned) or 1 (signed)")
    rows, cols = _number(ds, "Rows", 0, whole=True), _number(ds, "Columns", 0, whole=True)
    if rows < 1 or cols < 1:
        raise DicomError(f"{where} declares {rows} x {cols} pixels; an image has at least 1 x 1")
    declared = rows * cols * frames * samples * bits // 8
    if declared > MAX_SLICE_BYTES:
        raise DicomError(
            f"{where} declares {rows} x {cols} pixels at {bits} bits ({_mib(declared)}), more "
            f"than one slice here may hold ({_mib(MAX_SLICE_BYTES)}); refused before decoding: "
            "a damaged or hostile file? (or crop the image first)"
        )


def stored_range(ds: Dataset) -> tuple[int, int]:
    """The smallest and largest stored integer (BitsStored, PixelRepresentation)."""
    bits = _number(ds, "BitsStored", _number(ds, "BitsAllocated", 16, whole=True), whole=True)
    if _number(ds, "PixelRepresentation", 0, whole=True) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


# --------------------------------------------------------------------------------------------
# Window / level for display
# --------------------------------------------------------------------------------------------
def _first(value: Any) -> float:
    """WindowCenter/Width may hold several values (several presets): use the first."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):  # MultiValue too
        value = value[0]
    return float(value)


def file_window(ds: Dataset) -> tuple[float, float] | None:
    """The file's first WindowCenter/WindowWidth preset, or None when it has none.

    Raises:
        DicomError: a window that is not two numbers with width >= 1 (e.g. 'abc'): only
            display is affected, so callers may fall back to the data's range and say so.
    """
    where = _where(ds)
    center, width = _element(ds, "WindowCenter", where), _element(ds, "WindowWidth", where)
    if center is None or width is None:
        return None
    try:
        window = _first(center), _first(width)
    except _VALUE_ERRORS:
        window = (math.nan, math.nan)
    if not all(math.isfinite(v) for v in window) or window[1] < 1:
        raise DicomError(
            f"{where}: its window (WindowCenter {_shown(center)}, WindowWidth "
            f"{_shown(width)}) is not two numbers with width >= 1"
        )
    return window


def window_from_dataset(ds: Dataset, values: torch.Tensor | None = None) -> tuple[float, float]:
    """(center, width) for display: the file's first WindowCenter/WindowWidth preset, or,
    when it has none, the full range of ``values`` (needed then).

    Raises:
        DicomError: the file's window is not numbers (:func:`file_window`), or it has
            none and no ``values`` were given.
    """
    window = file_window(ds)
    if window is not None:
        return window
    if values is None:
        raise DicomError("the DICOM has no WindowCenter/WindowWidth; pass the values or a window")
    return _full_range(values)


def _full_range(values: torch.Tensor) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    return (lo + hi) / 2, max(hi - lo, 1.0)


def display_window(ds: Dataset, values: torch.Tensor) -> tuple[tuple[float, float], str | None]:
    """``(window, note)``: :func:`window_from_dataset`, but a window that cannot be read
    falls back to the full range of ``values`` with a note saying so (it is cosmetic: a
    damaged WindowCenter must not lose the slice)."""
    try:
        return window_from_dataset(ds, values), None
    except DicomError as err:
        return _full_range(values), f"{err}; the slice's full range is used for display"


def window(
    values: torch.Tensor, center: float, width: float, *, invert: bool = False
) -> torch.Tensor:
    """Map values (modality units) to [0, 1] with the DICOM linear VOI window.

    DICOM PS3.3 C.11.2.1.2: values at or below ``center - 0.5 - (width - 1) / 2`` become 0,
    above ``center - 0.5 + (width - 1) / 2`` become 1, linear in between. E.g. a CT
    soft-tissue window is center 40, width 400 (HU). ``invert=True`` for MONOCHROME1 files
    (low values shown bright).

    Args:
        values: float tensor of any shape, in the modality's units.
        center, width: the window; width must be >= 1.

    Returns:
        float32 tensor of the same shape, in [0, 1].
    """
    if not width >= 1:
        raise DicomError(f"window width must be >= 1, got {width!r}")
    out = ((values.float() - (center - 0.5)) / (width - 1) + 0.5).clamp_(0.0, 1.0)
    return 1.0 - out if invert else out


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _stored_dtype(ds: Dataset) -> np.dtype:
    bits = int(ds.get("BitsAllocated", 16))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")


def derived_dataset(
    ds: Dataset, values: torch.Tensor, scale: int, *, description: str | None = None
) -> Dataset:
    """A new DICOM dataset holding super-resolved ``values``, derived from ``ds``.

    Args:
        ds: the original slice's dataset (from :func:`read_dicom`); not modified.
        values: float (1, H*s, W*s) in the modality's units (from :func:`super_resolve_values`).
        scale: the upscaling factor, to divide PixelSpacing by.
        description: text for DerivationDescription; default names edsr-lab and the scale.

    Returns:
        A deep copy of ``ds`` with the new pixels (inverse rescale, rounded, clipped to the
        stored range), Rows/Columns, PixelSpacing (and ImagerPixelSpacing) / scale, new
        SOP Instance UID and Series Instance UID, ImageType DERIVED\\SECONDARY, the
        description, a SourceImageSequence item referencing the original, and Explicit VR
        Little Endian (uncompressed) transfer syntax. Everything else is kept.

    Raises:
        DicomError: a header value this needs is not a number (RescaleSlope, PixelSpacing,
            ...), or an element of the original cannot be converted (a damaged header).
    """
    pydicom = require_pydicom()
    try:
        return _derive(pydicom, ds, values, scale, description)
    except _value_errors(pydicom) as err:
        raise DicomError(
            f"{_where(ds)}: its header holds an element that cannot be carried into the "
            f"derived file ({str(err).splitlines()[0][:200]}); repair it (e.g. dcmconv) or "
            "use --format png"
        ) from None


def _derive(
    pydicom: Any, ds: Dataset, values: torch.Tensor, scale: int, description: str | None
) -> Dataset:
    from pydicom.dataset import Dataset as _Dataset  # pydicom is an optional extra
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out = copy.deepcopy(ds)
    slope, intercept = _rescale(ds)
    lo, hi = stored_range(ds)
    stored = np.rint((values[0].double().numpy() - intercept) / slope)
    pixels = np.clip(stored, lo, hi).astype(_stored_dtype(ds))
    rows, cols = pixels.shape

    out.Rows, out.Columns = rows, cols
    out.PixelData = pixels.tobytes()
    out["PixelData"].VR = "OB" if pixels.itemsize == 1 else "OW"
    # The smallest/largest pixel values of the original no longer hold.
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in out:
            del out[keyword]
    for keyword, (row, col) in check_derivable(ds).items():
        out[keyword].value = [_ds_number(row / scale), _ds_number(col / scale)]

    image_type = list(ds.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    out.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    text = description or (
        f"Super-resolved x{scale} by edsr-lab {__version__} (EDSR, Lim et al. 2017); "
        "detail is synthesised, not measured: not for diagnostic use"
    )
    out.DerivationDescription = text[:1024]
    source = _Dataset()
    source.ReferencedSOPClassUID = ds.get("SOPClassUID", "")
    source.ReferencedSOPInstanceUID = ds.get("SOPInstanceUID", "")
    out.SourceImageSequence = [source]

    out.SOPInstanceUID = generate_uid()
    out.SeriesInstanceUID = generate_uid()
    now = _dt.datetime.now()
    out.InstanceCreationDate, out.InstanceCreationTime = (
        now.strftime("%Y%m%d"),
        now.strftime("%H%M%S"),
    )
    if not hasattr(out, "file_meta"):
        out.file_meta = pydicom.dataset.FileMetaDataset()
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    if "SOPClassUID" in out:
        out.file_meta.MediaStorageSOPClassUID = out.SOPClassUID
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return out


def check_derivable(ds: Dataset) -> dict[str, tuple[float, float]]:
    """The pixel spacings a derived DICOM divides by the scale: ``{keyword: (row, col)}``
    for PixelSpacing and ImagerPixelSpacing where present. Called before super-resolving,
    so a header that cannot be written correctly fails before the work.

    Raises:
        DicomError: a spacing that is not two positive numbers (DICOM requires row\\column;
            one value or 'abc' would give a derived file with a wrong geometry).
    """
    where, found = _where(ds), {}
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _element(ds, keyword, where)
        if value is None:
            continue
        items = (
            list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        )
        try:
            numbers = [float(v) for v in items]
        except _VALUE_ERRORS:
            numbers = []
        if len(numbers) != 2 or not all(math.isfinite(v) and v > 0 for v in numbers):
            raise DicomError(
                f"{where}: {keyword} is {_shown(value)}; DICOM needs two positive numbers "
                f"(row\\column spacing in mm) to write a derived slice with the right "
                f"geometry; fix it (e.g. dcmodify -m {keyword}=0.5\\0.5) or use --format png"
            )
        found[keyword] = (numbers[0], numbers[1])
    return found


def _ds_number(x: float) -> str:
    """A decimal string (VR DS) of at most 16 characters."""
    text = f"{x:.10g}"
    return text if len(text) <= 16 else f"{x:.8g}"


def write_dicom(ds: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a DICOM file (Part 10, with preamble and file meta), atomically.

    Raises:
        OutputExistsError (a FileExistsError): ``overwrite=False`` and ``path`` exists.
    """
    pydicom = require_pydicom()
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} already exists; pass --overwrite (overwrite=True from Python) to "
            "replace it, or choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    little = syntax is None or syntax.is_little_endian  # a big-endian original is converted

    def write(tmp: str) -> None:
        pydicom.dcmwrite(
            tmp, ds, enforce_file_format=True, little_endian=little,
            implicit_vr=bool(syntax is not None and syntax.is_implicit_VR),
        )  # fmt: skip

    try:
        return atomic_write(path, write)
    except _value_errors(pydicom) as err:
        raise DicomError(
            f"cannot write {str(path)!r}: the original's header holds an element that cannot "
            f"be written ({str(err).splitlines()[0][:200]}); repair the original (e.g. "
            "dcmconv) or use --format png"
        ) from None


# --------------------------------------------------------------------------------------------
# TEMPORARY shim until notebook 10 switches (its owner, the medical engineer): it calls
# dicom.upscale_dicom, which lives in edsr_lab.upscale (that module imports this one, hence
# the import inside the function). Nothing else may use it.
# --------------------------------------------------------------------------------------------
def upscale_dicom(model: nn.Module, src: Any, dst: Any, **kwargs: Any) -> dict[str, Any]:
    """TEMPORARY shim: :func:`edsr_lab.upscale.upscale_dicom`."""
    from edsr_lab.upscale import upscale_dicom as run

    return run(model, src, dst, **kwargs)
