"""Training on a folder of medical files: volumes split by patient, LR made by a degradation.

A folder of NIfTI volumes, DICOM series or 16-bit / integer / float images (TIFF stacks
included; one level of patient subfolders, ``P017/t1.nii.gz``, is read too) is training
data the way :func:`edsr_lab.evaluate_volumes.load_volumes` reads it for ``evaluate``:

1. **Volumes, split by group, never by slice.** Each file (a NIfTI volume, a DICOM series,
   a stack) is one volume of slices; volumes are grouped by ``split_by`` (``"patient"``:
   DICOM PatientID, else the patient subfolder, else the file; ``"series"``; ``"volume"``)
   and whole groups are held out (:func:`edsr_lab.data.groups.group_split`: the groups
   whose key hashes lowest, the same on every machine; :func:`~edsr_lab.data.groups.check_disjoint`
   re-checks). ``evaluate --heldout patient`` on the same folder scores the same groups.
2. **One intensity map per volume** (:mod:`edsr_lab.intensity`, ``value_range``): its
   range becomes [0, 1] for the model. The training patches are stored as 16-bit levels
   of that range (:class:`~edsr_lab.data.patches.PatchSampler` keeps uint16 input at 16
   bits; 8 bits would be 16 HU steps on a CT at -1024..3071 HU), grey slices
   repeated to RGB for an RGB model (as :func:`edsr_lab.volume.model_sr` feeds it).
3. **LR made at load time** by ``degradation`` (:func:`edsr_lab.data.degradations.make_lr`),
   each volume's noise seeded with :func:`~edsr_lab.data.degradations.derived_seed`
   (seed, volume name, scale): the same LR on every run for one seed, other noise for
   another. Validation uses the same degradation, on up to :data:`VALID_SLICES` evenly
   spaced slices of each held-out volume (HR and LR kept in float). The run scores them
   on the data range to pick ``best.pt`` (grey, unrounded, a mean over those slices:
   :data:`edsr_lab.train.report.DATA_RANGE_PROTOCOL`); the numbers to report come from
   ``evaluate --heldout patient`` (every slice, one number per volume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edsr_lab.data.degradations import derived_seed, describe_degradation, make_lr
from edsr_lab.data.groups import check_disjoint, group_split
from edsr_lab.errors import BadArgumentError, DatasetError
from edsr_lab.intensity import intensity_map
from edsr_lab.resize import modcrop

__all__ = [
    "SPLIT_KEYS",
    "VALID_SLICES",
    "MappedSources",
    "MedicalTrainData",
    "VolumeSlice",
    "is_medical_folder",
    "load_medical",
    "source_volumes",
]

#: How volumes can be grouped for the held-out split.
SPLIT_KEYS = ("patient", "series", "volume")

#: Most slices of one held-out volume validated during training (evenly spaced).
VALID_SLICES = 8


@dataclass
class MedicalTrainData:
    """What :func:`load_medical` made.

    Attributes:
        train: per scale, (HR slices uint16 (C, s*h, s*w), LR slices uint16 (C, h, w)):
            16-bit levels of the volume's range (the sampler keeps them at 16 bits).
        valid: per scale, (name, HR float (C, s*h, s*w), LR float (C, h, w)) in [0, 1].
        valid_names: the held-out slices' names (``volume[z]``).
        train_groups, heldout_groups: the group keys on each side.
        description: one line for the run's log.
    """

    train: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = field(default_factory=dict)
    valid: dict[int, list[tuple[str, torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    valid_names: list[str] = field(default_factory=list)
    train_groups: list[str] = field(default_factory=list)
    heldout_groups: list[str] = field(default_factory=list)
    description: str = ""


def is_medical_folder(root: str | Path) -> bool:
    """True when the folder holds NIfTI, DICOM or values images (16-bit, integer, float,
    stacks): training on it goes through :func:`load_medical`."""
    from edsr_lab.evaluate_volumes import is_medical_data

    return is_medical_data([root])


def _slices(values: Any, name: str, value_range: str, units: str) -> torch.Tensor:
    mapping = intensity_map(values, value_range, units=units)
    unit, _ = mapping.to_unit(values)  # (Z, H, W) float32 in [0, 1]
    return unit[:, None]


def load_medical(
    root: str | Path,
    scales: tuple[int, ...],
    *,
    patch_size: int,
    holdout: float,
    degradation: str = "bicubic",
    split_by: str = "patient",
    seed: int = 0,
    axis: int = 2,
    value_range: str = "auto",
    channels: int = 3,
) -> MedicalTrainData:
    """Read a folder of medical files as training and held-out slices (module docstring).

    Args:
        root: the folder.
        scales: SR factors.
        patch_size: LR patch side; slices whose LR is smaller are left out (counted).
        holdout: share of the *groups* held out (at least one group, at most 10).
        degradation: ``name`` or ``name:k=v,...``
            (:func:`~edsr_lab.data.degradations.parse_degradation`).
        split_by: ``"patient"``, ``"series"`` or ``"volume"``.
        seed: the LR noise seed.
        axis: the NIfTI slicing axis.
        value_range: the intensity spec of each volume's map (``"auto"``, ``"LO,HI"``, ...).
        channels: 3 (grey repeated, for RGB models) or 1.

    Raises:
        DatasetError: fewer than 2 groups, no slice large enough, unreadable files (named).
        BadArgumentError: unknown ``split_by`` or degradation.
    """
    from edsr_lab.data.degradations import parse_degradation
    from edsr_lab.data.folder import HOLDOUT_MAX
    from edsr_lab.evaluate_volumes import load_volumes

    if split_by not in SPLIT_KEYS:
        raise BadArgumentError(
            f"--split-by must be one of {', '.join(SPLIT_KEYS)}, not {split_by!r}"
        )
    name, params = parse_degradation(degradation)
    volumes = load_volumes([root], axis=axis)
    split = group_split(
        volumes, lambda v: v.key(split_by), fraction=holdout, max_heldout=HOLDOUT_MAX
    )
    check_disjoint(split.train, split.heldout, key=lambda v: v.key(split_by))
    data = MedicalTrainData(train_groups=split.train_groups, heldout_groups=split.heldout_groups)
    small = 0
    for s in scales:
        hrs: list[torch.Tensor] = []
        lrs: list[torch.Tensor] = []
        for vol in split.train:
            hr = modcrop(_slices(vol.values, vol.name, value_range, vol.units), s)
            if min(hr.shape[-2:]) < s * patch_size:
                small += hr.shape[0]
                continue
            lr = make_lr(hr, s, name, seed=derived_seed(seed, vol.name, s), **params)
            # 16-bit levels: 256 would be 16 HU steps on a CT at -1024..3071
            to16 = lambda t: torch.round(t.clamp(0, 1) * 65535).to(torch.uint16)  # noqa: E731
            hrs += [to16(h).expand(channels, -1, -1).contiguous() for h in hr]
            lrs += [to16(x).expand(channels, -1, -1).contiguous() for x in lr]
        if not hrs:
            raise DatasetError(
                f"no training slice of {root} is large enough for --patch-size {patch_size} "
                f"at x{s} (slices need {s * patch_size} pixels a side); use a smaller "
                "--patch-size or another --axis"
            )
        data.train[s] = (hrs, lrs)
        valid = []
        for vol in split.heldout:
            hr = modcrop(_slices(vol.values, vol.name, value_range, vol.units), s)
            picks = sorted(
                set(torch.linspace(0, hr.shape[0] - 1, VALID_SLICES).round().long().tolist())
            )
            hr = hr[picks]
            lr = make_lr(hr, s, name, seed=derived_seed(seed, vol.name, s), **params)
            for z, h, x in zip(picks, hr, lr, strict=True):
                valid.append(
                    (f"{vol.name}[{z}]", h.expand(channels, -1, -1), x.expand(channels, -1, -1))
                )
        data.valid[s] = valid
        data.valid_names = [v[0] for v in valid]
    skipped = f"; {small} slice(s) smaller than the patch left out" if small else ""
    data.description = (
        f"{len(split.train)} training volume(s) of {len(split.train_groups)} {split_by}(s), "
        f"held out by {split_by}: {', '.join(split.heldout_groups)} "
        f"({len(split.heldout)} volume(s), {len(data.valid_names)} validation slices); "
        f"LR made with {describe_degradation(name, params)} (seed {seed}){skipped}"
    )
    return data


@dataclass
class VolumeSlice:
    """One slice of a volume among the sources of ``make-dataset`` (NIfTI, DICOM series,
    TIFF stack): :func:`edsr_lab.data.make_dataset.make_div2k_layout` writes it as one HR image."""

    volume: Any  # edsr_lab.evaluate_volumes.Volume
    z: int

    def resolve(self) -> str:
        return f"{Path(self.volume.path).resolve()}[{self.z}]"

    def __str__(self) -> str:
        return f"{self.volume.path}[{self.z}]"


def source_volumes(src: Any) -> list[Any]:
    """The volumes among ``src`` (a file or a folder): NIfTI files, DICOM series, TIFF
    stacks, read by :func:`edsr_lab.evaluate_volumes.load_volumes` (slices along axis 2)."""
    from edsr_lab.dicom import is_dicom_file
    from edsr_lab.evaluate_volumes import load_volumes
    from edsr_lab.nifti import is_nifti_file
    from edsr_lab.upscale import inspect_image

    if not isinstance(src, (str, os.PathLike)):
        return []
    src = Path(src)
    if not (src.is_file() or src.is_dir()):  # missing, a FIFO, a loop: source_images says
        return []
    entries = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.is_file())

    def is_volume(p: Path) -> bool:
        if is_nifti_file(p) or is_dicom_file(p):
            return True
        info = inspect_image(p) if p.suffix.lower() in (".tif", ".tiff") else None
        return info is not None and info.pages > 1

    found = [p for p in entries if not p.name.startswith(".") and is_volume(p)]
    return load_volumes(found) if found else []


class MappedSources:
    """``make-dataset``'s sources in [0, 1], through the intensity policy where they hold
    values: ``loader(path, name) -> (C, H, W)`` float tensor, each map recorded.

    * a :class:`VolumeSlice`: its volume's one map (made once per volume, ``value_range``,
      ``"auto"`` when None);
    * a grey file with more than 8 bits (16-bit PNG, int16/float TIFF): its own map, unless
      ``value_range`` is None (then value / container maximum, as a photo);
    * anything else: :func:`edsr_lab.io.load_image` (8-bit pictures, colour).

    :meth:`csv` gives ``name,intensity_map`` rows for every mapped source.
    """

    def __init__(self, value_range: str | None, channels: int = 3):
        self.value_range, self.channels = value_range, channels
        self.rows: list[tuple[str, str]] = []
        self._maps: dict[int, Any] = {}

    def __call__(self, path: Path | VolumeSlice, name: str) -> torch.Tensor:
        from edsr_lab.io import load_image
        from edsr_lab.stored import read_values
        from edsr_lab.upscale import inspect_image

        if isinstance(path, VolumeSlice):
            vol = path.volume
            if id(vol) not in self._maps:  # one map per volume
                spec = self.value_range or "auto"
                self._maps[id(vol)] = intensity_map(vol.values, spec, units=vol.units)
            mapping = self._maps[id(vol)]
            unit = mapping.to_unit(vol.values[path.z])[0][None]
        else:
            info = inspect_image(Path(path)) if self.value_range is not None else None
            image = read_values(path) if info is not None and info.dtype != "uint8" else None
            if image is None or image.channels != 1:
                return load_image(path, channels=self.channels)  # errors name the file
            mapping = image.intensity_map(self.value_range)
            unit = mapping.to_unit(image.physical[0])[0]  # page 1, (1, H, W)
        self.rows.append((name, mapping.to_json()))
        return unit.expand(self.channels, -1, -1).contiguous()

    def csv(self) -> str:
        """``name,intensity_map`` and one row per mapped source (the map as JSON, quoted)."""
        quoted = [f'{n},"{j.replace(chr(34), chr(34) * 2)}"' for n, j in self.rows]
        lines = ["name,intensity_map", *quoted]
        return "\n".join(lines) + "\n"
