"""DICOM series, multi-frame and colour files through super-resolution: one map, one new series.

A CT or MR *series* is many files (one slice each, often without a file extension) that
share a SeriesInstanceUID; a multi-frame file holds a whole volume (or a cine loop) in one
file; ultrasound and pathology are colour. :class:`SeriesUpscaler` takes the DICOM files of
one command and, for each source series:

* reads every slice of the series (all frames, grey or colour:
  :func:`edsr_lab.dicom.read_dicom_image`); a slice that cannot be read is one ``FAILED``
  line, the others go on;
* chooses **one** intensity map over all of them (:mod:`edsr_lab.intensity`, rule 2: a map
  per slice would make the same tissue reach the model at a different grey level in
  neighbouring slices), in the modality's units (HU for CT) after each slice's
  RescaleSlope/Intercept;
* super-resolves every frame of every slice with that map (a multi-frame file is a stack:
  :func:`edsr_lab.volume.super_resolve_stack`), counting what the model pushes outside it;
* writes each slice as a derived DICOM (:func:`edsr_lab.dicom.derive_dataset`) with **one new
  SeriesInstanceUID shared by the series' slices**, a new SeriesNumber (the source's + 1000)
  and a SeriesDescription saying what was done, new SOP Instance UIDs, pixel spacings
  divided by the scale and image positions moved by the pixel-centre shift
  (:mod:`edsr_lab.geometry`), the source's DerivationDescription kept with this step (and
  the intensity map) appended; always Explicit VR Little Endian (big-endian and implicit-VR
  sources are converted).

``fmt="png"`` / ``"tiff"`` write the values instead, recoverably: a PNG (uint16 grey, or the
colour dtype) or a TIFF (int16 values in HU for CT, float32 otherwise; several frames as
pages) with the map recorded in the file (:func:`edsr_lab.stored.storage_for`), so
``stored * slope + intercept`` gives the values back. ``window_cw`` with ``fmt="png"``
writes a windowed 16-bit picture for viewing instead (the values cannot be recovered from it).

Super-resolution invents plausible detail: a super-resolved series is not a measurement and
must not be used for diagnosis without a clinical validation of the whole pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edsr_lab import __version__, dicom
from edsr_lab.errors import BadArgumentError, DicomError, EdsrLabError
from edsr_lab.intensity import ClipCount, IntensityMap, intensity_map, parse_range
from edsr_lab.volume import SR, super_resolve_stack

__all__ = ["DICOM_FORMATS", "SeriesUpscaler", "output_suffix", "series_key"]

#: What a DICOM source may be written as: derived DICOM, or values in a PNG / TIFF.
DICOM_FORMATS = ("dcm", "png", "tiff")


def output_suffix(fmt: str) -> str:
    """The file suffix of a DICOM output format: ``.dcm``, ``.png`` or ``.tif``."""
    if fmt not in DICOM_FORMATS:
        raise BadArgumentError(f"--format must be one of {', '.join(DICOM_FORMATS)}, not {fmt!r}")
    return {"dcm": ".dcm", "png": ".png", "tiff": ".tif"}[fmt]


def series_key(path: str | os.PathLike[str]) -> str:
    """The file's SeriesInstanceUID (header only), or ``file:<path>`` when it has none or
    cannot be read: such a file is a series of its own (and fails on its own, later)."""
    from edsr_lab.data.groups import dicom_series

    try:
        return dicom_series(path)
    except EdsrLabError:
        return f"file:{Path(path).resolve()}"
    # A file pydicom cannot even parse the header of fails when it is read, with its reason.
    except Exception:  # noqa: BLE001
        return f"file:{Path(path).resolve()}"


@dataclass
class _Series:
    """One source series, read: its images, their failures, its map and the new series."""

    images: dict[Path, dicom.DicomImage] = field(default_factory=dict)
    errors: dict[Path, EdsrLabError] = field(default_factory=dict)
    mapping: IntensityMap | None = None
    uid: str = ""
    number: int = 0
    description: str = ""
    size: int = 0  # slices in the series (given to this command)
    left: int = 0  # slices not processed yet; the series is dropped from memory at 0


class SeriesUpscaler:
    """Super-resolves the DICOM files of one command, one source series at a time.

    Args:
        paths: every DICOM file of the command (any order; grouped by SeriesInstanceUID).
        sr: the inference callable (:func:`edsr_lab.volume.model_sr`), unclamped.
        scale: what ``sr`` does.
        value_range: the intensity spec for each series (``"auto"``, ``"ct"``, ``"LO,HI"``...).
        units: the values' units; default the file's (``"HU"`` for CT).
        fmt: ``"dcm"``, ``"png"`` or ``"tiff"`` (see the module docstring).
        window_cw: (center, width): with ``fmt="png"``, a windowed picture for viewing.
        overwrite: replace existing outputs.
        progress: a progress bar per file.

    Call :meth:`process` with each (source, target); it returns the line to print, or raises
    an :class:`~edsr_lab.errors.EdsrLabError` for that file only.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        sr: SR,
        scale: int,
        *,
        value_range: str | tuple[float, float] = "auto",
        units: str | None = None,
        fmt: str = "dcm",
        window_cw: tuple[float, float] | None = None,
        overwrite: bool = False,
        progress: bool = False,
    ) -> None:
        parse_range(value_range)  # a bad spec is refused before any file is read
        self.suffix = output_suffix(fmt)
        self.fmt, self.sr, self.scale = fmt, sr, scale
        self.value_range, self.units, self.window_cw = value_range, units, window_cw
        self.overwrite, self.progress = overwrite, progress
        self.key = {Path(p): series_key(p) for p in paths}
        self.members: dict[str, list[Path]] = {}
        for path, key in self.key.items():
            self.members.setdefault(key, []).append(path)
        self._series: dict[str, _Series] = {}
        self.last: dict[str, Any] = {}  # what the last process() wrote

    # ------------------------------------------------------------------ per series
    def _prepare(self, key: str) -> _Series:
        series = self._series.get(key)
        if series is not None:
            return series
        series = _Series()
        for path in self.members[key]:
            try:
                series.images[path] = dicom.read_dicom_image(path)
            except EdsrLabError as err:
                series.errors[path] = err
        series.size = series.left = len(self.members[key])
        first = next(iter(series.images.values()), None)
        if first is not None:
            self._check_alike(series, first)
            series.mapping = self._series_map(list(series.images.values()), first)
            from pydicom.uid import generate_uid

            series.uid = generate_uid()
            series.number = dicom.derived_series_number(first.ds)
            series.description = dicom.derived_series_description(first.ds, self.scale)
        self._series[key] = series
        return series

    @staticmethod
    def _check_alike(series: _Series, first: dicom.DicomImage) -> None:
        """Slices that cannot share one map with the first (colour among grey, another
        dtype) fail on their own, with the reason."""
        for path, image in list(series.images.items()):
            if (image.channels, image.stored.dtype) != (first.channels, first.stored.dtype):
                del series.images[path]
                series.errors[path] = DicomError(
                    f"DICOM {str(path)!r} is {image.channels}-channel {image.stored.dtype} but "
                    f"its series ({first.path.name}) is {first.channels}-channel "
                    f"{first.stored.dtype}; upscale it on its own"
                )

    def _series_map(self, images: list[dicom.DicomImage], first: dicom.DicomImage) -> IntensityMap:
        """One map over every value of the series (rule 2), storing back as ``first``."""
        kind, _ = parse_range(self.value_range)
        if kind == "robust":
            summary = np.concatenate([im.values.astype(np.float32).ravel() for im in images])
        else:  # auto needs only the extremes; a fixed range none of it
            lows = [im.values.min() for im in images]
            highs = [im.values.max() for im in images]
            summary = np.array([min(lows), max(highs)], dtype=first.values.dtype)
        return intensity_map(
            summary,
            self.value_range,
            units=self.units or first.units,
            dtype=first.stored.dtype.name,
            slope=first.slope,
            intercept=first.intercept,
        )

    # ------------------------------------------------------------------ per file
    def process(self, source: Path, target: Path) -> str:
        """Super-resolve ``source`` (read with its series) and write ``target``."""
        key = self.key[Path(source)]
        series = self._prepare(key)
        try:
            if source in series.errors:
                raise series.errors[source]
            image = series.images[source]
            assert series.mapping is not None  # a readable image exists in the series
            return self._write(image, series, target)
        finally:
            series.left -= 1
            series.images.pop(source, None)
            if series.left <= 0:
                del self._series[key]

    def _write(self, image: dicom.DicomImage, series: _Series, target: Path) -> str:
        ds = image.ds
        mapping = series.mapping.with_storage(  # type: ignore[union-attr]
            dtype=image.stored.dtype.name, slope=image.slope, intercept=image.intercept
        )
        notes: list[str] = []
        if image.channels == 1 and self.window_cw is None:  # a damaged window: a note
            first = torch.from_numpy(np.asarray(image.values[0, 0], dtype=np.float32))
            notes += [note for note in dicom.display_window(ds, first)[1:] if note]
        if self.fmt == "dcm":
            dicom.check_derivable(ds)  # a geometry that cannot be written: before the work
            out, clipped = self._run(image, mapping)
            lo, hi = dicom.stored_range(ds)
            clipped.add(_count_outside(out, lo, hi))
            out = np.clip(out, lo, hi).astype(out.dtype)
            note = (
                f"Super-resolved x{self.scale} by edsr-lab {__version__} (EDSR, Lim et al. "
                "2017); detail is synthesised, not measured: not for diagnostic use; "
                f"intensity map {mapping.to_json()}"
            )
            derived = dicom.derive_dataset(
                ds, out, self.scale, series_uid=series.uid, series_number=series.number,
                series_description=series.description, note=note,
            )  # fmt: skip
            path = dicom.write_dicom(derived, target, overwrite=self.overwrite)
            spacing = derived.get("PixelSpacing")
            what = f"series {series.number}" + (
                f", pixel spacing {float(spacing[0]):g} x {float(spacing[1]):g} mm"
                if spacing is not None
                else ""
            )
        else:
            path, what, clipped, out = self._write_values(image, mapping, target)
        self.last = {
            "path": path,
            "lr_shape": tuple(image.stored.shape[-2:]),
            "sr_shape": tuple(out.shape[-2:]),
            "frames": image.frames,
            "channels": image.channels,
            "mapping": mapping,
            "clipped": clipped,
            "series_uid": series.uid,
            "notes": notes,
        }
        frames = f", {image.frames} frames" if image.frames > 1 else ""
        colour = ", colour" if image.channels == 3 else ""
        return (
            f"{image.path} {tuple(image.stored.shape[-2:])} -> {path} {tuple(out.shape[-2:])}"
            f"{frames}{colour} ({what}; range {mapping.where}, {mapping.kind}; {clipped})"
            + "".join(f"; note: {n}" for n in notes)
        )

    def _run(self, image: dicom.DicomImage, mapping: IntensityMap) -> tuple[np.ndarray, ClipCount]:
        return super_resolve_stack(
            image.values, self.sr, self.scale, mapping, progress=self.progress,
            desc=image.path.name,
        )  # fmt: skip

    def _write_values(
        self,
        image: dicom.DicomImage,
        mapping: IntensityMap,
        target: Path,
    ) -> tuple[Path, str, ClipCount, np.ndarray]:
        from edsr_lab.io import save_image
        from edsr_lab.stored import save_values, storage_for

        if self.suffix == ".png" and image.frames > 1:
            raise DicomError(
                f"DICOM {str(image.path)!r} holds {image.frames} frames and a PNG holds one "
                "image; use --format tiff (one page per frame) or --format dcm"
            )
        if self.suffix == ".png" and self.window_cw is not None and image.channels == 1:
            values, clipped = super_resolve_stack(
                image.values, self.sr, self.scale, mapping, as_values=True,
                progress=self.progress,
            )  # fmt: skip
            center, width = self.window_cw
            invert = str(image.ds.get("PhotometricInterpretation")) == "MONOCHROME1"
            shown = dicom.window(torch.from_numpy(values[0]), center, width, invert=invert)
            path = save_image(shown, target, bits=16, overwrite=self.overwrite)
            return path, f"window {center:g}/{width:g}, for viewing only", clipped, values
        storage = storage_for(mapping, self.suffix, channels=image.channels)
        out, clipped = self._run(image, storage)
        path = save_values(out, target, mapping=storage, overwrite=self.overwrite)
        kind = "values" if storage.slope == 1 and storage.intercept == 0 else "stored"
        what = (
            f"{storage.dtype} {kind}; value = stored x {storage.slope:g} + "
            f"{storage.intercept:g} {storage.units} (recorded in the file)"
        )
        return path, what, clipped, out


def _count_outside(stored: np.ndarray, lo: int, hi: int) -> ClipCount:
    """Stored values outside the DICOM's stored range [lo, hi] (BitsStored), counted."""
    return ClipCount(
        below=int((stored < lo).sum()),
        above=int((stored > hi).sum()),
        total=0,
        where=f"the stored range [{lo}, {hi}]",
    )
