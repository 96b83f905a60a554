"""``evaluate`` on medical data: volumes, a realistic degradation, scores on the data range.

The paper's protocol (8-bit RGB photos, peak 255, outputs rounded to 8 bits) measures
nothing on a 12-bit CT: on the 65535 scale of a 16-bit file every method scores 55-62 dB,
and rounding to 8 bits throws the signal away. For medical files ``evaluate`` does this:

1. **Read volumes as stacks of slices**, in their units (:func:`load_volumes`): a NIfTI file
   is a volume (slices along ``axis``; a 4-D file's volumes one after the other), a DICOM
   series is a volume (its files grouped by SeriesInstanceUID, sorted by InstanceNumber;
   the frames of a multi-frame file are slices), a 16-bit / integer / float image or a TIFF
   stack is a volume of its pages (:func:`edsr_lab.stored.read_values`).
2. **One intensity map per volume** (:mod:`edsr_lab.intensity`; ``value_range``): HR in
   [0, 1] for the model; its range is the PSNR peak.
3. **LR made by a named degradation** (:func:`edsr_lab.data.degradations.make_lr`:
   ``bicubic``, ``kspace`` for MRI, ``ct``), seeded per volume (the seed and the volume's
   name, hashed), so every run and machine scores the same LR.
4. **Scores on the data range** (:mod:`edsr_lab.clinical`): PSNR with peak = hi - lo in the
   data's units, SSIM with L = that peak, ``scale`` border pixels cropped in-plane, never
   rounded; **one number per volume**, and the means over volumes (volumes, not slices,
   are the independent samples). The report says which peak it used; the CSV rows carry the
   map (JSON) and the degradation so every number can be interpreted later.
5. **Held-out by group** (``heldout="patient"|"series"|"volume"``): only the volumes of
   the held-out groups of :func:`edsr_lab.data.groups.group_split`, the deterministic split
   training on such a folder uses, so a model is never scored on a patient it saw.

Grey data only (colour medical images are scored with the photo protocol).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edsr_lab.clinical import VolumeReport, score_volume
from edsr_lab.errors import BadArgumentError, DatasetError
from edsr_lab.intensity import ClipCount, IntensityMap, intensity_map, parse_range
from edsr_lab.volume import SR

__all__ = [
    "GROUP_KEYS",
    "MedicalEvaluation",
    "Volume",
    "evaluate_volumes",
    "is_medical_data",
    "load_volumes",
    "volume_seed",
]

#: How volumes can be grouped for a held-out split.
GROUP_KEYS = ("patient", "series", "volume")


@dataclass
class Volume:
    """One volume to score.

    Attributes:
        name: the file (NIfTI, image) or the series' first file and SeriesDescription.
        values: numpy (Z, H, W): the slices, in ``units``.
        units: ``"HU"``, ``"a.u."``, ``"stored"``...
        patient: DICOM PatientID, else the folder holding the file (``patient_017/x.nii``)
            or, for files given directly in a flat folder, the file itself.
        series: DICOM SeriesInstanceUID, else the file.
        path: the file (a series' first file, in InstanceNumber order).
    """

    name: str
    values: np.ndarray
    units: str
    patient: str
    series: str
    path: Path | None = None

    def key(self, by: str) -> str:
        return {"patient": self.patient, "series": self.series, "volume": self.name}[by]


def _items(data: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """(file, the folder given) for each file: folders are read (not recursively) for
    NIfTI, DICOM and image files; patient subfolders one level down are read too."""
    from edsr_lab.dicom import is_dicom_file
    from edsr_lab.nifti import is_nifti_file
    from edsr_lab.upscale import IMAGE_SUFFIXES

    def usable(p: Path) -> bool:
        return p.is_file() and (
            p.suffix.lower() in IMAGE_SUFFIXES or is_nifti_file(p) or is_dicom_file(p)
        )

    found: list[tuple[Path, Path]] = []
    for item in data:
        path = Path(item).expanduser()
        if path.is_file():
            found.append((path, path.parent))
        elif path.is_dir():
            for entry in sorted(path.iterdir()):
                if entry.is_dir():  # patient_017/...: one level of patient folders
                    found += [(p, path) for p in sorted(entry.iterdir()) if usable(p)]
                elif usable(entry):
                    found.append((entry, path))
        else:
            raise DatasetError(f"--data {str(path)!r}: no such file or folder")
    if not found:
        raise DatasetError(
            f"no NIfTI, DICOM or image files in {', '.join(map(str, data))}; give volumes "
            "(.nii/.nii.gz), DICOM series or 16-bit images"
        )
    return found


def is_medical_data(data: Sequence[str | os.PathLike[str]]) -> bool:
    """True when ``data`` names files or folders holding volumes or values images (NIfTI,
    DICOM, 16-bit / integer / float images, TIFF stacks): ``evaluate`` then scores them
    here, on the data range, instead of with the photo protocol."""
    from edsr_lab.dicom import is_dicom_file
    from edsr_lab.nifti import is_nifti_file
    from edsr_lab.upscale import inspect_image
    from edsr_lab.upscale_stored import is_values_image

    paths = [Path(d).expanduser() for d in data]
    if not any(p.exists() for p in paths):
        return False  # set names (set5, div2k-valid...)
    try:
        files = [f for f, _ in _items([p for p in paths if p.exists()])]
    except DatasetError:
        return False
    return any(
        is_nifti_file(f) or is_dicom_file(f) or is_values_image(inspect_image(f))
        for f in files[:50]
    )


def _patient(path: Path, given: Path) -> str:
    return path.parent.name if path.parent != given else path.name


def _name(path: Path, given: Path) -> str:
    """The file as named under the folder given (``P01/t1.nii``): unique across patients."""
    return path.name if path.parent == given else f"{path.parent.name}/{path.name}"


def load_volumes(
    data: Sequence[str | os.PathLike[str]], *, axis: int = 2, units: str | None = None
) -> list[Volume]:
    """Read ``data`` (files and folders) as grey volumes of slices (see the module docstring).

    Raises:
        DatasetError: nothing to read, a colour volume, an unreadable file (naming it).
    """
    from edsr_lab.dicom import is_dicom_file, read_dicom_image
    from edsr_lab.nifti import is_nifti_file, read_nifti
    from edsr_lab.stored import read_values

    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise BadArgumentError(f"--axis {axis!r}: the slicing axis is 0, 1 or 2")
    volumes: list[Volume] = []
    series: dict[str, list[Any]] = {}
    for path, given in _items(data):
        if is_dicom_file(path):
            image = read_dicom_image(path)
            uid = str(image.ds.get("SeriesInstanceUID", "") or path)
            series.setdefault(uid, []).append((image, path, given))
            continue
        if is_nifti_file(path):
            vol = read_nifti(path)
            values = np.moveaxis(vol.values, axis, 0)  # (Z, A, B[, T])
            if values.ndim == 4:  # every volume of a 4-D file, one after the other
                values = np.moveaxis(values, 3, 0).reshape(-1, *values.shape[1:3])
            name, kind = (
                _name(path, given),
                units or (vol.recorded.units if vol.recorded else "a.u."),
            )
        else:
            image = read_values(path)
            if image.channels != 1:
                raise DatasetError(
                    f"{str(path)!r} is a colour image; the data-range scores are for grey "
                    "volumes (score colour images with the photo protocol, on a folder of "
                    "8-bit pictures)"
                )
            values = image.physical[:, 0]
            name = _name(path, given)
            kind = units or (image.recorded.units if image.recorded else "stored")
        volumes.append(Volume(name, values, kind, _patient(path, given), name, path))
    for uid, members in series.items():
        members.sort(key=lambda m: (int(m[0].ds.get("InstanceNumber", 0) or 0), str(m[1])))
        images = [m[0] for m in members]
        if any(im.channels != 1 for im in images):
            raise DatasetError(
                f"DICOM series {members[0][1].name!r} is colour; the data-range scores are "
                "for grey volumes"
            )
        shapes = {im.stored.shape[-2:] for im in images}
        if len(shapes) != 1:
            raise DatasetError(
                f"DICOM series {members[0][1].name!r} holds slices of sizes {sorted(shapes)}; "
                "a volume needs one size"
            )
        values = np.concatenate([np.asarray(im.values, dtype=np.float64)[:, 0] for im in images])
        first, path, given = images[0], members[0][1], members[0][2]
        description = str(first.ds.get("SeriesDescription", "") or "").strip()
        name = _name(path, given) + (f" ({description})" if description else "")
        patient = str(first.ds.get("PatientID", "") or _patient(path, given))
        volumes.append(Volume(name, values, units or first.units, patient, uid, path))
    return volumes


def volume_seed(seed: int, name: str) -> int:
    """The LR noise seed of one volume: ``seed`` and its name, hashed (63-bit safe;
    :func:`edsr_lab.data.degradations.derived_seed`)."""
    from edsr_lab.data.degradations import derived_seed

    return derived_seed(seed, name)


@dataclass
class MedicalEvaluation:
    """What :func:`evaluate_volumes` measured: the per-volume report and the CSV rows.

    Attributes:
        report: one :class:`edsr_lab.clinical.VolumeScore` per (method, volume).
        rows: the CSV rows (the score, its peak and range, scale, degradation, seed,
            patient, the map as JSON).
        degradation: ``name[:k=v,...]`` as it made the LR.
        scale: the upscaling factor.
        clipped: per method, what the maps clipped of its output.
        patients: volume name -> its patient (for the per-patient means).
    """

    report: VolumeReport
    rows: list[dict[str, Any]]
    degradation: str
    scale: int
    clipped: dict[str, ClipCount]
    patients: dict[str, str]

    def patient_means(self, method: str, metric: str = "psnr") -> dict[str, float]:
        """Per patient, the mean over that patient's volumes of ``metric`` for ``method``."""
        by: dict[str, list[float]] = {}
        for s in self.report.scores:
            if s.method == method:
                by.setdefault(self.patients[s.volume], []).append(getattr(s, metric))
        return {p: math.fsum(v) / len(v) for p, v in by.items()}

    def patient_mean(self, method: str, metric: str = "psnr") -> float:
        """The mean over patients of the per-patient means: each patient counts once."""
        means = list(self.patient_means(method, metric).values())
        if not means:
            raise BadArgumentError(f"no scores for method {method!r}")
        return math.fsum(means) / len(means)

    def table(self) -> str:
        """The per-volume table, each volume's peak, the per-patient means, then what the
        LR was and what was clipped."""
        lines = [self.report.table()]
        seen: dict[str, Any] = {}
        for s in self.report.scores:
            seen.setdefault(s.volume, s)
        for name, s in seen.items():
            lines.append(
                f"  peak of {name}: {s.peak:g} {s.units} (range {s.lo:g}..{s.hi:g}), "
                f"patient {self.patients[name]}"
            )
        n_patients = len(set(self.patients[v] for v in seen))
        if n_patients < len(seen):  # several volumes per patient: each patient counts once
            for method in self.report.methods():
                lines.append(
                    f"{method}: mean over {n_patients} patients {self.patient_mean(method):.2f}"
                    f" dB / {self.patient_mean(method, 'ssim'):.4f}"
                )
        lines.append(
            f"x{self.scale}, LR made with {self.degradation} (seeded per volume); "
            f"{len(seen)} volume(s) of {n_patients} patient(s)"
        )
        for method, count in self.clipped.items():
            lines.append(f"{method}: {count}")
        return "\n".join(lines)


def _batched(sr: SR, lr: torch.Tensor, batch: int = 8) -> torch.Tensor:
    return torch.cat([sr(lr[i : i + batch]) for i in range(0, lr.shape[0], batch)])


def evaluate_volumes(
    methods: Mapping[str, SR],
    volumes: Sequence[Volume],
    scale: int,
    *,
    degradation: str = "bicubic",
    params: Mapping[str, Any] | None = None,
    value_range: str | tuple[float, float] = "auto",
    seed: int = 0,
    heldout: str | None = None,
    holdout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> MedicalEvaluation:
    """Score each method on each volume: LR from the HR by ``degradation``, SR by the
    method, PSNR/SSIM on the volume's data range (see the module docstring).

    Args:
        methods: name -> ``sr`` callable ((N, 1, h, w) in [0, 1] -> (N, 1, sh, sw),
            unclamped), e.g. ``{"bicubic": ..., "EDSR": edsr_lab.volume.model_sr(model)}``.
        volumes: from :func:`load_volumes`.
        scale: the upscaling factor.
        degradation, params: a name from :data:`edsr_lab.data.degradations.DEGRADATIONS`
            and its options.
        value_range: the intensity spec of each volume's map.
        seed: the LR noise seed (each volume's is :func:`volume_seed`).
        heldout: ``"patient"``, ``"series"`` or ``"volume"``: score only the held-out
            groups of :func:`edsr_lab.data.groups.group_split` (as training holds them out).
        holdout: the share of groups held out, as given to ``train --holdout`` (default
            that command's, 0.1).
        progress: called with each volume's name before it is scored.

    Returns:
        A :class:`MedicalEvaluation`.
    """
    from edsr_lab.data.degradations import describe_degradation, make_lr
    from edsr_lab.resize import modcrop

    parse_range(value_range)
    params = dict(params or {})
    if heldout is not None:
        volumes = heldout_volumes(volumes, heldout, holdout)
    what = describe_degradation(degradation, params)
    report = VolumeReport()
    rows: list[dict[str, Any]] = []
    clipped = {name: ClipCount(where="each volume's range") for name in methods}
    for volume in volumes:
        if progress is not None:
            progress(volume.name)
        mapping: IntensityMap = intensity_map(volume.values, value_range, units=volume.units)
        hr_unit, _ = mapping.to_unit(volume.values)
        hr_unit = modcrop(hr_unit[:, None], scale)
        if min(hr_unit.shape[-2:]) < 2 * scale + 1:
            size = tuple(hr_unit.shape[-2:])
            raise DatasetError(f"{volume.name}: slices of {size} are too small to score")
        hr_values, _ = mapping.to_values(hr_unit[:, 0])
        lr = make_lr(hr_unit, scale, degradation, seed=volume_seed(seed, volume.name), **params)
        for name, sr in methods.items():
            sr_values, count = mapping.to_values(_batched(sr, lr)[:, 0])
            clipped[name].add(count)
            score = score_volume(
                sr_values, hr_values, volume=volume.name, axis=0, value_range=mapping,
                units=volume.units, crop=scale, method=name,
            )  # fmt: skip
            report.add(score)
            rows.append(
                {
                    **score.row(),
                    "scale": scale,
                    "degradation": what,
                    "seed": volume_seed(seed, volume.name),
                    "patient": volume.patient,
                    "mapping": json.dumps(mapping.to_dict(), separators=(",", ":")),
                }
            )
    patients = {v.name: v.patient for v in volumes}
    return MedicalEvaluation(report, rows, what, scale, clipped, patients)


def heldout_volumes(
    volumes: Sequence[Volume], by: str, holdout: float | None = None
) -> list[Volume]:
    """The volumes of the held-out groups of the deterministic group split by ``by``, with
    ``holdout`` (default ``train``'s, 0.1) the share of groups held out: the groups that
    ``train --data FOLDER --split-by BY --holdout HOLDOUT`` never trained on."""
    from edsr_lab.data.folder import HOLDOUT_FRACTION, HOLDOUT_MAX
    from edsr_lab.data.groups import group_split

    if by not in GROUP_KEYS:
        raise BadArgumentError(f"--heldout must be one of {', '.join(GROUP_KEYS)}, not {by!r}")
    split = group_split(
        list(volumes),
        lambda v: v.key(by),
        fraction=HOLDOUT_FRACTION if holdout is None else holdout,
        max_heldout=HOLDOUT_MAX,
    )
    return split.heldout
