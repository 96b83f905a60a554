"""Writing derived DICOM: super-resolved pixels in a copy of the original's header.

:func:`derive_dataset` builds the output dataset (pixels, size, geometry, UIDs, series,
derivation note), :func:`write_dicom` writes it atomically. :mod:`edsr_lab.dicom` re-exports
both (with :func:`derived_dataset` and :func:`check_derivable`); the series logic (one new
series per source series, one intensity map) is :mod:`edsr_lab.dicom_series`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edsr_lab import __version__
from edsr_lab.dicom_header import (
    VALUE_ERRORS,
    dataset_name,
    ds_number,
    header_number,
    header_value,
    require_pydicom,
    rescale,
    shown,
    stored_dtype,
    stored_range,
    value_errors,
)
from edsr_lab.errors import DicomError, OutputExistsError
from edsr_lab.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydicom.dataset import Dataset

__all__ = [
    "check_derivable",
    "derive_dataset",
    "derived_dataset",
    "derived_series_description",
    "derived_series_number",
    "write_dicom",
]


def derived_dataset(
    ds: Dataset, values: torch.Tensor, scale: int, *, description: str | None = None
) -> Dataset:
    """A new DICOM dataset holding one super-resolved slice's ``values``, derived from ``ds``.

    Args:
        ds: the original slice's dataset (from :func:`read_dicom`); not modified.
        values: float (1, H*s, W*s) in the modality's units.
        scale: the upscaling factor.
        description: text appended to the DerivationDescription; default names edsr-lab
            and the scale.

    Returns:
        :func:`derive_dataset` of the stored integers ``(values - intercept) / slope``,
        rounded and clipped to the stored range (:func:`stored_range`).
    """
    slope, intercept = rescale(ds)
    lo, hi = stored_range(ds)
    stored = np.rint((values[0].double().numpy() - intercept) / slope)
    pixels = np.clip(stored, lo, hi).astype(stored_dtype(ds))
    return derive_dataset(ds, pixels[None, None], scale, note=description)


def derived_series_number(ds: Dataset) -> int:
    """The SeriesNumber of a series derived from ``ds``'s: the source's + 1000 (1000 if it
    has none), so a viewer lists it apart from, and next to, the original."""
    number = header_number(ds, "SeriesNumber", 0, whole=True)
    return number + 1000 if 0 <= number < 2**31 - 1000 else 1000


def derived_series_description(ds: Dataset, scale: int) -> str:
    """The source's SeriesDescription with " SR xS (edsr-lab)" added (64 characters at most,
    the LO limit: the source's part is shortened, never the addition)."""
    added = f" SR x{scale} (edsr-lab)"
    source = str(ds.get("SeriesDescription", "") or "").strip()
    return (source[: 64 - len(added)] + added).strip()


def derive_dataset(
    ds: Dataset,
    pixels: np.ndarray,
    scale: int,
    *,
    series_uid: str | None = None,
    series_number: int | None = None,
    series_description: str | None = None,
    note: str | None = None,
) -> Dataset:
    """A new DICOM dataset holding super-resolved stored ``pixels``, derived from ``ds``.

    Args:
        ds: the original's dataset (from :func:`read_dicom_image`); not modified.
        pixels: numpy (F, C, s*H, s*W) stored integers (C = 1, or 3 for RGB), in the range
            the original stores (:func:`stored_range`); F = the original's frames.
        scale: the upscaling factor, to divide the pixel spacings by and move the positions.
        series_uid, series_number, series_description: the derived series (the slices of
            one source series share them); default a new UID, :func:`derived_series_number`
            and :func:`derived_series_description`.
        note: what to append to the DerivationDescription (default: edsr-lab, the scale).

    Returns:
        A deep copy of ``ds`` with the new pixels (the original's BitsAllocated/BitsStored/
        PixelRepresentation and rescale; colour written as RGB, PlanarConfiguration 0),
        Rows/Columns, pixel spacings divided by ``s`` and image positions moved by the
        pixel-centre shift (:func:`edsr_lab.geometry.dicom_upscaled_geometry`; at the top
        level and in the functional groups of enhanced multi-frame files), new SOP
        Instance UID, the series above, ImageType DERIVED\\SECONDARY, the source's
        DerivationDescription with ``note`` appended, a SourceImageSequence item
        referencing the original, and Explicit VR Little Endian (uncompressed) transfer
        syntax (big-endian and implicit-VR originals are converted). Everything else is kept.

    Raises:
        DicomError: a header value this needs is not a number (RescaleSlope, PixelSpacing,
            ImagePositionPatient...), or an element of the original cannot be converted.
    """
    pydicom = require_pydicom()
    try:
        return _derive(
            pydicom, ds, pixels, scale, series_uid, series_number, series_description, note
        )
    except value_errors(pydicom) as err:
        raise DicomError(
            f"{dataset_name(ds)}: its header holds an element that cannot be carried into the "
            f"derived file ({str(err).splitlines()[0][:200]}); repair it (e.g. dcmconv) or "
            "use --format png"
        ) from None


def _derive(
    pydicom: Any,
    ds: Dataset,
    pixels: np.ndarray,
    scale: int,
    series_uid: str | None,
    series_number: int | None,
    series_description: str | None,
    note: str | None,
) -> Dataset:
    from pydicom.dataset import Dataset as _Dataset  # pydicom is an optional extra
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames, channels, rows, cols = pixels.shape
    out = copy.deepcopy(ds)
    data = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1), dtype=stored_dtype(ds))
    out.Rows, out.Columns = rows, cols
    out.SamplesPerPixel = channels
    if channels == 3:  # pydicom gave RGB (YBR converted); written interleaved
        out.PhotometricInterpretation = "RGB"
        out.PlanarConfiguration = 0
    if frames > 1 or "NumberOfFrames" in ds:
        out.NumberOfFrames = frames
    out.PixelData = data.tobytes()
    out["PixelData"].VR = "OB" if data.itemsize == 1 else "OW"
    # The smallest/largest pixel values of the original no longer hold.
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in out:
            del out[keyword]
    _move_geometry(ds, out, scale)

    image_type = list(ds.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    out.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    added = note or (
        f"Super-resolved x{scale} by edsr-lab {__version__} (EDSR, Lim et al. 2017); "
        "detail is synthesised, not measured: not for diagnostic use"
    )
    source_text = str(ds.get("DerivationDescription", "") or "").strip()
    if source_text:  # kept, shortened only if both do not fit ST's 1024 characters
        room = 1024 - len(added) - 2
        source_text = source_text if len(source_text) <= room else source_text[: room - 3] + "..."
    out.DerivationDescription = (f"{source_text}; {added}" if source_text else added)[:1024]
    source = _Dataset()
    source.ReferencedSOPClassUID = ds.get("SOPClassUID", "")
    source.ReferencedSOPInstanceUID = ds.get("SOPInstanceUID", "")
    out.SourceImageSequence = [source]

    out.SOPInstanceUID = generate_uid()
    out.SeriesInstanceUID = series_uid or generate_uid()
    out.SeriesNumber = series_number if series_number is not None else derived_series_number(ds)
    out.SeriesDescription = series_description or derived_series_description(ds, scale)
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


def _floats(item: Any, keyword: str, count: int, where: str) -> list[float] | None:
    """``item.keyword`` as ``count`` finite numbers; None when absent; DicomError otherwise."""
    value = header_value(item, keyword, where)
    if value is None:
        return None
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        numbers = [float(v) for v in items]
    except VALUE_ERRORS:
        numbers = []
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise DicomError(
            f"{where}: {keyword} is {shown(value)}; DICOM needs {count} numbers there to "
            f"write a derived image with the right geometry; fix it or use --format png"
        )
    return numbers


def _first_item(item: Any, sequence: str, where: str) -> Any:
    seq = header_value(item, sequence, where) if item is not None else None
    return seq[0] if seq is not None and len(seq) else None


def _group_value(group: Any, sequence: str, keyword: str, count: int, where: str) -> Any:
    """``group.sequence[0].keyword`` as numbers (a functional group's macro), or None."""
    item = _first_item(group, sequence, where)
    return _floats(item, keyword, count, where) if item is not None else None


def _move_geometry(ds: Dataset, out: Dataset, scale: int) -> None:
    """Move every image position by the pixel-centre shift and divide every pixel spacing
    by ``scale``, at the top level and in the functional groups of enhanced multi-frame
    files (Shared/PerFrameFunctionalGroupsSequence: PixelMeasures, PlanePosition,
    PlaneOrientation). ``ds`` gives the original numbers, ``out`` (its copy) takes the new."""
    from edsr_lab.geometry import dicom_upscaled_geometry

    where = dataset_name(ds)

    def shift(src: Any, dst: Any, spacing: Any, orientation: Any) -> None:
        position = _floats(src, "ImagePositionPatient", 3, where)
        if position is not None and spacing is not None and orientation is not None:
            new, _ = dicom_upscaled_geometry(position, orientation, spacing, scale)
            dst.ImagePositionPatient = [ds_number(v) for v in new]

    spacing = _floats(ds, "PixelSpacing", 2, where)
    orientation = _floats(ds, "ImageOrientationPatient", 6, where)
    shift(ds, out, spacing, orientation)
    shared = _first_item(ds, "SharedFunctionalGroupsSequence", where)
    spacing = _group_value(shared, "PixelMeasuresSequence", "PixelSpacing", 2, where) or spacing
    orientation = (
        _group_value(shared, "PlaneOrientationSequence", "ImageOrientationPatient", 6, where)
        or orientation
    )
    groups = [(shared, _first_item(out, "SharedFunctionalGroupsSequence", where))]
    per_frame = header_value(ds, "PerFrameFunctionalGroupsSequence", where) or []
    per_frame_out = header_value(out, "PerFrameFunctionalGroupsSequence", where) or []
    for src, dst in zip(per_frame, per_frame_out, strict=True):
        groups.append((src, dst))
        shift(
            _first_item(src, "PlanePositionSequence", where) or _Empty(),
            _first_item(dst, "PlanePositionSequence", where),
            _group_value(src, "PixelMeasuresSequence", "PixelSpacing", 2, where) or spacing,
            _group_value(src, "PlaneOrientationSequence", "ImageOrientationPatient", 6, where)
            or orientation,
        )
    holders = [(ds, out)] + [
        (
            _first_item(a, "PixelMeasuresSequence", where),
            _first_item(b, "PixelMeasuresSequence", where),
        )
        for a, b in groups
        if a is not None
    ]
    for src, dst in holders:
        if src is None:
            continue
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            numbers = _floats(src, keyword, 2, where)
            if numbers is not None:
                dst[keyword].value = [ds_number(v / scale) for v in numbers]


class _Empty(dict):
    """A stand-in item without elements (a frame without a PlanePositionSequence)."""


def check_derivable(ds: Dataset) -> dict[str, tuple[float, float]]:
    """The pixel spacings a derived DICOM divides by the scale: ``{keyword: (row, col)}``
    for PixelSpacing and ImagerPixelSpacing where present. Called before super-resolving,
    so a header that cannot be written correctly fails before the work.

    Raises:
        DicomError: a spacing that is not two positive numbers (DICOM requires row\\column;
            one value or 'abc' would give a derived file with a wrong geometry).
    """
    where, found = dataset_name(ds), {}
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = header_value(ds, keyword, where)
        if value is None:
            continue
        items = (
            list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        )
        try:
            numbers = [float(v) for v in items]
        except VALUE_ERRORS:
            numbers = []
        if len(numbers) != 2 or not all(math.isfinite(v) and v > 0 for v in numbers):
            raise DicomError(
                f"{where}: {keyword} is {shown(value)}; DICOM needs two positive numbers "
                f"(row\\column spacing in mm) to write a derived slice with the right "
                f"geometry; fix it (e.g. dcmodify -m {keyword}=0.5\\0.5) or use --format png"
            )
        found[keyword] = (numbers[0], numbers[1])
    return found


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
    except value_errors(pydicom) as err:
        raise DicomError(
            f"cannot write {str(path)!r}: the original's header holds an element that cannot "
            f"be written ({str(err).splitlines()[0][:200]}); repair the original (e.g. "
            "dcmconv) or use --format png"
        ) from None
