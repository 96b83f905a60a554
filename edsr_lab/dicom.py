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
import os
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

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydicom.dataset import Dataset
    from torch import nn

__all__ = [
    "DICOM_SUFFIXES",
    "INSTALL_HINT",
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
def _rescale(ds: Dataset) -> tuple[float, float]:
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return slope, intercept


def read_dicom(path: str | os.PathLike[str]) -> tuple[torch.Tensor, Dataset]:
    """Read one DICOM slice with RescaleSlope/RescaleIntercept applied.

    Args:
        path: a single-frame, single-channel DICOM file (CT, MR, CR/DX, ...).

    Returns:
        ``(values, ds)``: ``values`` is float32 (1, H, W) in the modality's units
        (``stored * RescaleSlope + RescaleIntercept``; Hounsfield units for CT), NOT in
        [0, 1]; ``ds`` is the pydicom ``Dataset`` (metadata and original pixels).

    Raises:
        MissingDependencyError: pydicom is not installed (the message gives the command).
        DicomError: missing file, not DICOM, no pixel data, compressed pixel data pydicom
            cannot decode, several frames, colour, or float pixel data.
    """
    pydicom = require_pydicom()
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DicomError(f"cannot read DICOM {str(path)!r}: it {what}")
    try:
        ds = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as err:
        raise DicomError(
            f"cannot read DICOM {str(path)!r}: {err}; is it a DICOM file (.dcm)?"
        ) from None
    _check_supported(ds, path)
    try:
        stored = ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as err:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise DicomError(
            f"cannot decode the pixels of {str(path)!r} (transfer syntax {syntax}): {err}. "
            "For compressed DICOM install a decoder, e.g. pip install pylibjpeg "
            "pylibjpeg-libjpeg pylibjpeg-openjpeg, or decompress it with gdcmconv --raw"
        ) from None
    slope, intercept = _rescale(ds)
    values = stored.astype(np.float64) * slope + intercept
    return torch.from_numpy(values.astype(np.float32))[None], ds


def _check_supported(ds: Dataset, path: Path) -> None:
    where = f"DICOM {str(path)!r}"
    if "PixelData" not in ds:
        kinds = "FloatPixelData" if "FloatPixelData" in ds else "no pixel data"
        raise DicomError(f"{where} has {kinds}; only integer images can be super-resolved")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise DicomError(
            f"{where} holds {frames} frames; only single-frame slices are supported "
            "(split it into one file per frame first)"
        )
    samples = int(ds.get("SamplesPerPixel", 1))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
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
    if int(ds.get("BitsAllocated", 16)) not in (8, 16, 32):
        raise DicomError(f"{where} has BitsAllocated={ds.BitsAllocated}; expected 8, 16 or 32")


def stored_range(ds: Dataset) -> tuple[int, int]:
    """The smallest and largest stored integer (BitsStored, PixelRepresentation)."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
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


def window_from_dataset(ds: Dataset, values: torch.Tensor | None = None) -> tuple[float, float]:
    """(center, width) for display: the file's first WindowCenter/WindowWidth preset, or,
    when it has none, the full range of ``values`` (needed then)."""
    if "WindowCenter" in ds and "WindowWidth" in ds:
        return _first(ds.WindowCenter), _first(ds.WindowWidth)
    if values is None:
        raise DicomError("the DICOM has no WindowCenter/WindowWidth; pass the values or a window")
    lo, hi = float(values.min()), float(values.max())
    return (lo + hi) / 2, max(hi - lo, 1.0)


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
    """
    pydicom = require_pydicom()
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
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in out:
            out[keyword].value = [_ds_number(float(v) / scale) for v in out[keyword].value]

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


def _ds_number(x: float) -> str:
    """A decimal string (VR DS) of at most 16 characters."""
    text = f"{x:.10g}"
    return text if len(text) <= 16 else f"{x:.8g}"


def write_dicom(ds: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a DICOM file (Part 10, with preamble and file meta), atomically.

    Raises:
        OutputExistsError (a FileExistsError): ``overwrite=False`` and ``path`` exists.
    """
    require_pydicom()
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} already exists; pass --overwrite (overwrite=True from Python) to "
            "replace it, or choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))


# --------------------------------------------------------------------------------------------
# TEMPORARY shim until notebook 10 switches (its owner, the medical engineer): it calls
# dicom.upscale_dicom, which lives in edsr_lab.upscale (that module imports this one, hence
# the import inside the function). Nothing else may use it.
# --------------------------------------------------------------------------------------------
def upscale_dicom(model: nn.Module, src: Any, dst: Any, **kwargs: Any) -> dict[str, Any]:
    """TEMPORARY shim: :func:`edsr_lab.upscale.upscale_dicom`."""
    from edsr_lab.upscale import upscale_dicom as run

    return run(model, src, dst, **kwargs)
