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
   range becomes [0, 1] for the model. The training patches are then stored as 8 bits
   (as DIV2K's: :class:`~edsr_lab.data.patches.PatchSampler` keeps uint8), grey slices
   repeated to RGB for an RGB model (as :func:`edsr_lab.volume.model_sr` feeds it).
3. **LR made at load time** by ``degradation`` (:func:`edsr_lab.data.degradations.make_lr`),
   each volume's noise seeded with :func:`~edsr_lab.data.degradations.derived_seed`
   (seed, volume name, scale): the same LR on every run for one seed, other noise for
   another. Validation uses the same degradation, on up to :data:`VALID_SLICES` evenly
   spaced slices of each held-out volume, unrounded (PSNR on [0, 1] is PSNR on the
   volume's data range).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edsr_lab.data.degradations import derived_seed, describe_degradation, make_lr
from edsr_lab.data.groups import check_disjoint, group_split
from edsr_lab.errors import BadArgumentError, DatasetError
from edsr_lab.intensity import intensity_map
from edsr_lab.resize import modcrop

__all__ = ["SPLIT_KEYS", "VALID_SLICES", "MedicalTrainData", "is_medical_folder", "load_medical"]

#: How volumes can be grouped for the held-out split.
SPLIT_KEYS = ("patient", "series", "volume")

#: Most slices of one held-out volume validated during training (evenly spaced).
VALID_SLICES = 8


@dataclass
class MedicalTrainData:
    """What :func:`load_medical` made.

    Attributes:
        train: per scale, (HR slices uint8 (C, s*h, s*w), LR slices uint8 (C, h, w)).
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
            to8 = lambda t: torch.round(t.clamp(0, 1) * 255).to(torch.uint8)  # noqa: E731
            hrs += [to8(h).expand(channels, -1, -1).contiguous() for h in hr]
            lrs += [to8(x).expand(channels, -1, -1).contiguous() for x in lr]
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
