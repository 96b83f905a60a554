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

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edsr_lab.dicom_header import (
    INSTALL_HINT,
    VALUE_ERRORS,
    dataset_name,
    header_number,
    header_value,
    require_pydicom,
    rescale,
    shown,
    stored_range,
    value_errors,
)
from edsr_lab.dicom_write import (
    check_derivable,
    derive_dataset,
    derived_dataset,
    derived_series_description,
    derived_series_number,
    write_dicom,
)
from edsr_lab.errors import DicomError
from edsr_lab.paths import nearby, unreadable_reason

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydicom.dataset import Dataset

__all__ = [
    "DICOM_SUFFIXES",
    "INSTALL_HINT",
    "MAX_SLICE_BYTES",
    "check_derivable",
    "derive_dataset",
    "derived_dataset",
    "derived_series_description",
    "derived_series_number",
    "DicomImage",
    "display_window",
    "file_window",
    "is_dicom_file",
    "is_dicomdir",
    "read_dicom",
    "read_dicom_image",
    "require_pydicom",
    "stored_range",
    "window",
    "window_from_dataset",
    "write_dicom",
]

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


# First bytes of image files that end up named .dcm.
_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
}


def is_dicomdir(path: str | os.PathLike[str]) -> bool:
    """True for a file named DICOMDIR: the standard name of a DICOM media index."""
    return Path(path).name.upper() == "DICOMDIR"


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` ends in .dcm/.dicom or starts with the DICOM preamble ("DICM" at 128),
    and is not a DICOMDIR (the index an export puts beside its slices: no image).

    Needs no pydicom, so a command can route files before importing anything.
    """
    path = Path(path)
    if is_dicomdir(path):
        return False
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
    except (pydicom.errors.InvalidDicomError, *value_errors(pydicom), OSError):
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


@dataclass
class DicomImage:
    """A DICOM file's pixels as stored, every frame, and what they mean.

    Attributes:
        stored: numpy (F, C, H, W) in the file's integer dtype (native byte order): F
            frames (1 for a slice), C = 1 (grey) or 3 (colour, as RGB: YBR files are
            converted by pydicom).
        ds: the pydicom ``Dataset`` (metadata; its pixels are not used again).
        slope, intercept: RescaleSlope / RescaleIntercept (1 and 0 when absent).
        path: the file read.
    """

    stored: np.ndarray
    ds: Dataset
    slope: float
    intercept: float
    path: Path

    @property
    def values(self) -> np.ndarray:
        """``stored * slope + intercept`` (float64), or ``stored`` itself without a rescale."""
        if self.slope == 1.0 and self.intercept == 0.0:
            return self.stored
        return self.stored.astype(np.float64) * self.slope + self.intercept

    @property
    def units(self) -> str:
        """``"HU"`` for CT (the rescale gives Hounsfield units), the file's RescaleType when
        it names one, else ``"stored"`` (the numbers' meaning is the modality's)."""
        kind = str(self.ds.get("RescaleType", "") or "").strip()
        if str(self.ds.get("Modality", "")) == "CT" and kind in ("", "HU"):
            return "HU"
        return kind if kind and kind != "US" else "stored"

    @property
    def frames(self) -> int:
        return int(self.stored.shape[0])

    @property
    def channels(self) -> int:
        return int(self.stored.shape[1])


def read_dicom(path: str | os.PathLike[str]) -> tuple[torch.Tensor, Dataset]:
    """Read one DICOM slice with RescaleSlope/RescaleIntercept applied.

    Args:
        path: a single-frame, single-channel DICOM file (CT, MR, CR/DX, ...). Multi-frame
            and colour files: :func:`read_dicom_image`.

    Returns:
        ``(values, ds)``: ``values`` is float32 (1, H, W) in the modality's units
        (``stored * RescaleSlope + RescaleIntercept``; Hounsfield units for CT), NOT in
        [0, 1]; ``ds`` is the pydicom ``Dataset`` (metadata and original pixels). 32-bit
        stored values beyond 2**24 lose their last bits in float32 (as in the model).

    Raises:
        MissingDependencyError: pydicom is not installed (the message gives the command).
        DicomError: what :func:`read_dicom_image` raises, and several frames or colour.
    """
    image = _read(path, several=False)
    values = image.stored[0].astype(np.float64) * image.slope + image.intercept
    return torch.from_numpy(values.astype(np.float32)), image.ds


def read_dicom_image(path: str | os.PathLike[str]) -> DicomImage:
    """Read every frame of a DICOM file as stored: grey or colour, one frame or many.

    Any transfer syntax pydicom decodes (uncompressed little- or big-endian, implicit or
    explicit VR, Deflated, RLE; JPEG and JPEG 2000 with a decoder installed) is read; YBR
    colour comes back as RGB.

    Returns:
        A :class:`DicomImage`; ``stored`` is (F, C, H, W).

    Raises:
        MissingDependencyError: pydicom is not installed (the message gives the command).
        DicomError: missing, empty, a folder, an image named .dcm, not DICOM, a header
            value that is not a number (RescaleSlope 'abc', NumberOfFrames 'x', ...),
            declared pixels over :data:`MAX_SLICE_BYTES` or a Deflated file inflating past
            it (checked before decoding), no pixel data, compressed pixel data pydicom
            cannot decode, palette colour, a Modality LUT, or float pixel data.
    """
    return _read(path, several=True)


def _read(path: str | os.PathLike[str], *, several: bool) -> DicomImage:
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
        *value_errors(pydicom),
        OSError,
    ) as err:
        raise DicomError(
            f"cannot read DICOM {str(path)!r}: {str(err).split('. Use force=True')[0]}; is "
            "it a DICOM file (.dcm)?"
        ) from None
    frames, samples = _check_supported(ds, path, several=several)
    slope, intercept = rescale(ds)
    try:
        stored = np.asarray(ds.pixel_array)  # YBR colour converted to RGB by pydicom
    except (*value_errors(pydicom), MemoryError) as err:
        syntax = ds.file_meta.get("TransferSyntaxUID", None)
        compressed = getattr(syntax, "is_compressed", True)  # unknown: the advice may help
        fix = (
            "For compressed DICOM install a decoder, e.g. pip install pylibjpeg "
            "pylibjpeg-libjpeg pylibjpeg-openjpeg, or decompress it with gdcmconv --raw"
            if compressed
            else "The file is damaged or cut short (uncompressed pixels): copy it again "
            "from the source"
        )
        raise DicomError(
            f"cannot decode the pixels of {str(path)!r} (transfer syntax "
            f"{syntax or 'unknown'}): {err}. {fix}"
        ) from None
    # (H, W), (F, H, W), (H, W, 3) or (F, H, W, 3) -> (F, C, H, W), native byte order
    stored = stored.reshape(frames, *stored.shape[-3 if samples == 3 else -2 :])
    stored = stored[:, None] if samples == 1 else stored.transpose(0, 3, 1, 2)
    stored = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("="))
    return DicomImage(stored, ds, slope, intercept, path)


def _check_supported(ds: Dataset, path: Path, *, several: bool = False) -> tuple[int, int]:
    """What the readers handle, checked on the header before any pixel is decoded;
    returns (frames, samples per pixel). ``several``: frames and colour are fine."""
    where = f"DICOM {str(path)!r}"
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DicomError(f"{where} has float pixel data; only integer images can be read")
        if "DirectoryRecordSequence" in ds:  # a DICOMDIR: the index of a DICOM folder
            raise DicomError(
                f"{where} is a DICOMDIR, the index of a DICOM folder, not an image: pass the "
                "folder that holds the series' files instead"
            )
        kind = str(ds.get("Modality", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
        raise DicomError(
            f"{where} holds no image (no PixelData{'; ' + kind if kind else ''}: a report, "
            "structure set or other non-image object); pass the image slices"
        )
    frames = header_number(ds, "NumberOfFrames", 1, whole=True)
    if frames < 1 or (frames != 1 and not several):
        raise DicomError(
            f"{where} holds {frames} frames; read_dicom reads one slice: use "
            "read_dicom_image (every frame), or the upscale command, which takes "
            "multi-frame files"
        )
    samples = header_number(ds, "SamplesPerPixel", 1, whole=True)
    photometric = str(header_value(ds, "PhotometricInterpretation", where) or "MONOCHROME2")
    grey = samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2")
    colour = samples == 3 and (photometric == "RGB" or photometric.startswith("YBR"))
    if not (grey or (colour and several)):
        what = (
            "read_dicom reads grey slices: use read_dicom_image, or the upscale command, "
            "which takes colour files"
            if colour
            else "only grey (MONOCHROME1/2), RGB and YBR images are supported; convert "
            "palette colour to RGB first (e.g. with pydicom.pixels.apply_color_lut)"
        )
        raise DicomError(f"{where} is {photometric} with {samples} samples per pixel; {what}")
    if "ModalityLUTSequence" in ds:
        raise DicomError(
            f"{where} maps stored values through a Modality LUT, which has no inverse to "
            "write back; only RescaleSlope/RescaleIntercept are supported"
        )
    bits = header_number(ds, "BitsAllocated", 16, whole=True)
    if bits not in (8, 16, 32):
        raise DicomError(f"{where} has BitsAllocated={bits}; expected 8, 16 or 32")
    stored_bits = header_number(ds, "BitsStored", bits, whole=True)
    if not 1 <= stored_bits <= bits:
        raise DicomError(
            f"{where} has BitsStored={stored_bits} with BitsAllocated={bits}; BitsStored must "
            "be 1 to BitsAllocated; fix the header or export the slice again"
        )
    if header_number(ds, "PixelRepresentation", 0, whole=True) not in (0, 1):
        raise DicomError(f"{where}: PixelRepresentation must be 0 (unsigned) or 1 (signed)")
    rows, cols = (
        header_number(ds, "Rows", 0, whole=True),
        header_number(ds, "Columns", 0, whole=True),
    )
    if rows < 1 or cols < 1:
        raise DicomError(f"{where} declares {rows} x {cols} pixels; an image has at least 1 x 1")
    declared = rows * cols * frames * samples * bits // 8
    if declared > MAX_SLICE_BYTES:
        raise DicomError(
            f"{where} declares {rows} x {cols} pixels at {bits} bits ({_mib(declared)}), more "
            f"than one slice here may hold ({_mib(MAX_SLICE_BYTES)}); refused before decoding: "
            "a damaged or hostile file? (or crop the image first)"
        )
    return frames, samples


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
    where = dataset_name(ds)
    center = header_value(ds, "WindowCenter", where)
    width = header_value(ds, "WindowWidth", where)
    if center is None or width is None:
        return None
    try:
        window = _first(center), _first(width)
    except VALUE_ERRORS:
        window = (math.nan, math.nan)
    if not all(math.isfinite(v) for v in window) or window[1] < 1:
        raise DicomError(
            f"{where}: its window (WindowCenter {shown(center)}, WindowWidth "
            f"{shown(width)}) is not two numbers with width >= 1"
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
