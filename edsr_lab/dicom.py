"""Super-resolve DICOM slices (CT, MR, X-ray, ...) and write them back as DICOM or 16-bit PNG.

Needs the optional extra: ``pip install -e ".[dicom]"`` (pydicom). Without it every function
here raises :class:`edsr_lab.errors.MissingDependencyError` with that command.

The path of one slice::

    stored integers --(RescaleSlope, RescaleIntercept)--> values in the modality's units
        (Hounsfield units for CT; arbitrary units for MR)
    --(linear map of [lo, hi] to [0, 1]; lo, hi = the slice's min and max)--> grey image
    --(replicated to RGB, through the RGB model, back to one channel)--> SR grey image
    --(the same linear map, inverted)--> SR values
    --(inverse rescale, rounded, clipped to the stored range)--> stored integers

* :func:`read_dicom` returns the values as float32 (1, H, W) **in the modality's units**
  (not [0, 1]) and the pydicom ``Dataset``.
* :func:`super_resolve_values` runs a model on such values (the linear map above).
* :func:`derived_dataset` builds the output DICOM: a copy of the original (patient, study,
  geometry and acquisition metadata kept) with new pixels, Rows/Columns, PixelSpacing
  divided by the scale, new SOP Instance UID and Series Instance UID (a derived image is a
  new instance in a new series, so viewers never stack it with the originals),
  ImageType DERIVED\\SECONDARY, a DerivationDescription, a SourceImageSequence pointing at
  the original, and the original's BitsAllocated/BitsStored/PixelRepresentation and
  rescale. Values outside the stored range (e.g. a 12-bit CT) are clipped to it.
* :func:`window` maps values to [0, 1] for display with the DICOM linear VOI window
  (WindowCenter/WindowWidth from the file, or given); :func:`upscale_dicom` does the whole
  path for one file and writes ``.dcm`` (default) or a windowed 16-bit ``.png``.

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

from edsr_lab.errors import DicomError, MissingDependencyError, OutputExistsError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydicom.dataset import Dataset
    from torch import nn

__all__ = [
    "INSTALL_HINT",
    "derived_dataset",
    "is_dicom_file",
    "read_dicom",
    "stored_range",
    "super_resolve_values",
    "upscale_dicom",
    "upscale_files",
    "window",
    "window_from_dataset",
    "write_dicom",
]

#: The command that installs what this module needs.
INSTALL_HINT = 'pip install -e ".[dicom]"  (or: pip install pydicom)'

# ITU-R 601 luma, the rule edsr_lab.io uses for colour -> grey.
_LUMA = (0.299, 0.587, 0.114)
_DICOM_SUFFIXES = (".dcm", ".dicom")


def _pydicom() -> Any:
    """Import pydicom, or raise one clear line saying how to install it."""
    try:
        import pydicom
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
    if path.suffix.lower() in _DICOM_SUFFIXES:
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
    pydicom = _pydicom()
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
# Super-resolution
# --------------------------------------------------------------------------------------------
def _super_resolve_grey(model: nn.Module, grey: torch.Tensor, scale: int, **kwargs: Any):
    """(1, h, w) in [0, 1] -> (1, h*s, w*s): replicated to RGB for an RGB model, back by luma.

    Private on purpose: the `upscale` command does the same for grey PNG/TIFF files.
    """
    from edsr_lab.evaluate import input_channels, super_resolve

    if input_channels(model) == 1:
        return super_resolve(model, grey, scale=scale, **kwargs)
    rgb = super_resolve(model, grey.expand(3, -1, -1), scale=scale, **kwargs)
    weights = torch.tensor(_LUMA, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(dim=0, keepdim=True).clamp_(0.0, 1.0)


def super_resolve_values(
    model: nn.Module,
    values: torch.Tensor,
    *,
    scale: int | None = None,
    value_range: tuple[float, float] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Super-resolve a slice given in the modality's units (as :func:`read_dicom` returns).

    Args:
        model: an SR model (RGB or grey), e.g. ``edsr_lab.models.load_checkpoint(...)``.
        values: float (1, H, W) in the modality's units.
        scale: default the model's scale; needed for multi-scale (MDSR) models.
        value_range: (lo, hi) mapped linearly to [0, 1] for the model; default the slice's
            own min and max (invertible, so nothing is clipped). Values outside are clipped.
        **kwargs: passed to :func:`edsr_lab.evaluate.super_resolve` (``tile``,
            ``self_ensemble``, ``device``).

    Returns:
        float32 (1, H*s, W*s) in the same units, within ``value_range``.
    """
    from edsr_lab.evaluate import model_scale

    if not isinstance(values, torch.Tensor) or values.dim() != 3 or values.shape[0] != 1:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise DicomError(f"values must be a float tensor (1, H, W) from read_dicom, got {shape}")
    scale = scale if scale is not None else model_scale(model)
    if scale is None:
        raise DicomError(
            f"the model has several scales {getattr(model, 'scales', '')}; pass scale="
        )
    lo, hi = value_range or (float(values.min()), float(values.max()))
    span = hi - lo if hi > lo else 1.0  # a constant slice stays constant
    unit = ((values.float() - lo) / span).clamp_(0.0, 1.0)
    sr = _super_resolve_grey(model, unit, int(scale), **kwargs)
    return sr.cpu() * span + lo


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
    pydicom = _pydicom()
    from pydicom.dataset import Dataset as _Dataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    import edsr_lab

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
        f"Super-resolved x{scale} by edsr-lab {edsr_lab.__version__} (EDSR, Lim et al. 2017); "
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
    from edsr_lab.files import atomic_write

    _pydicom()
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} already exists; choose another name or pass overwrite=True"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))


def upscale_dicom(
    model: nn.Module,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: int | None = None,
    window_cw: tuple[float, float] | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Super-resolve the DICOM slice ``src`` and write ``dst`` (.dcm, or .png for display).

    Args:
        model: an SR model (RGB or grey).
        src: the input slice.
        dst: the output file. ``.dcm``/``.dicom``: a derived DICOM (see
            :func:`derived_dataset`). ``.png``: a 16-bit grey PNG of the *windowed* image
            (``window_cw`` or the file's window, else its full range), for viewing and
            reports; the DICOM keeps the values, the PNG does not.
        scale: default the model's scale.
        window_cw: (center, width) for the PNG; ignored for DICOM output (the file's own
            WindowCenter/WindowWidth are kept).
        overwrite: replace ``dst`` if it exists (never allowed when ``dst`` is ``src``).
        **kwargs: passed to :func:`edsr_lab.evaluate.super_resolve` (tile, device, ...).

    Returns:
        ``{"path", "lr_shape", "sr_shape", "scale", "window", "pixel_spacing"}`` of the output.
    """
    from edsr_lab.evaluate import model_scale
    from edsr_lab.io import save_image

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    suffix = dst.suffix.lower()
    if suffix not in (*_DICOM_SUFFIXES, ".png"):
        raise DicomError(f"output {str(dst)!r}: use a .dcm (DICOM) or .png (16-bit) file name")
    if dst.exists() and dst.resolve() == src.resolve():
        raise DicomError(f"output {str(dst)!r} is the input file; choose another name or folder")
    if dst.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(dst)!r} already exists; choose another name or pass overwrite=True"
        )
    values, ds = read_dicom(src)
    scale = scale if scale is not None else model_scale(model)
    if scale is None:
        raise DicomError(f"the model has several scales {getattr(model, 'scales', '')}; pass scale")
    sr = super_resolve_values(model, values, scale=int(scale), **kwargs)
    center, width = window_cw or window_from_dataset(ds, values)
    info: dict[str, Any] = {
        "lr_shape": tuple(values.shape[-2:]),
        "sr_shape": tuple(sr.shape[-2:]),
        "scale": int(scale),
        "window": (center, width),
    }
    if suffix == ".png":
        invert = str(ds.get("PhotometricInterpretation")) == "MONOCHROME1"
        info["path"] = save_image(
            window(sr, center, width, invert=invert), dst, bits=16, overwrite=overwrite
        )
        info["pixel_spacing"] = None
        return info
    out = derived_dataset(ds, sr, int(scale))
    info["path"] = write_dicom(out, dst, overwrite=overwrite)
    spacing = out.get("PixelSpacing")
    info["pixel_spacing"] = None if spacing is None else tuple(float(v) for v in spacing)
    return info


def upscale_files(
    model: nn.Module,
    files: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "dcm",
    scale: int | None = None,
    window_cw: tuple[float, float] | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> int:
    """Super-resolve several DICOM slices into ``out_dir`` as ``<name>_x<s>.dcm`` (or .png).

    Every file is tried; each failure is printed as one line, then a summary. Output names
    that two inputs share, or that would replace an input, are refused before anything is
    written. Returns the number of files that failed (0 = all written).
    """
    from edsr_lab.errors import EdsrLabError
    from edsr_lab.evaluate import model_scale

    if fmt not in ("dcm", "png"):
        raise DicomError(f"--format must be dcm or png, got {fmt!r}")
    scale = scale if scale is not None else model_scale(model)
    if scale is None:
        raise DicomError(
            f"the model has several scales {getattr(model, 'scales', '')}; pass --scale"
        )
    out_dir = Path(out_dir).expanduser()
    sources = [Path(f).expanduser() for f in files]
    targets = [out_dir / f"{src.stem}_x{scale}.{fmt}" for src in sources]
    seen: dict[Path, Path] = {}
    for src, dst in zip(sources, targets, strict=True):
        if dst in seen:
            raise DicomError(
                f"{str(seen[dst])!r} and {str(src)!r} would both be written to {str(dst)!r}; "
                "upscale them into different --out folders"
            )
        seen[dst] = src
        if dst.exists() and src.exists() and dst.resolve() == src.resolve():
            raise DicomError(
                f"{str(src)!r} would be overwritten by its own output; use another --out"
            )
    failed = 0
    for src, dst in zip(sources, targets, strict=True):
        try:
            info = upscale_dicom(
                model, src, dst, scale=scale, window_cw=window_cw, overwrite=overwrite, **kwargs
            )
        except (EdsrLabError, FileExistsError, OSError) as err:
            failed += 1
            hint = " (pass --overwrite to replace it)" if isinstance(err, FileExistsError) else ""
            print(f"FAILED {src}: {err}{hint}")
            continue
        spacing = info["pixel_spacing"]
        extra = f", pixel spacing {spacing[0]:g} x {spacing[1]:g} mm" if spacing else ""
        print(f"{src} {info['lr_shape']} -> {info['path']} {info['sr_shape']}{extra}")
    print(f"{len(sources) - failed} of {len(sources)} DICOM file(s) written to {out_dir}")
    return failed
