"""Held-out splits by patient, series or volume: never slices of one scan on both sides.

Neighbouring slices of one scan are nearly the same image. Split the *slices* of a few
volumes at random into training and test sets and the test set is, pixel for pixel, almost
the training set: the score measures memory, not generalisation, and is typically several dB
too good. A clinician asks how the model does on a *new patient*, so the unit of a split is
a group -- a patient (DICOM PatientID), a series (SeriesInstanceUID), a volume (one NIfTI
file) or whatever a key function says -- and every item of a group lands on the same side.

:func:`group_split` ranks the groups by the SHA-256 hash of their key, as
:func:`edsr_lab.data.folder.heldout_split` ranks file names: the split depends only on the
keys, so it is the same on every machine and run, whatever the order of the items, and adding
new groups never moves an old training group into the held-out set unless the held-out count
grows. :func:`check_disjoint` is the safety net for splits made elsewhere.

Key functions (each takes one item, usually a path, and returns a string):

* :func:`dicom_patient`, :func:`dicom_series`: read PatientID / SeriesInstanceUID from a
  DICOM file's header (pydicom; the pixels are not read). A file without the tag is an error,
  never a group of its own.
* :func:`volume_file`: the file name without ``.nii``/``.nii.gz``/... (one file, one volume).
* :func:`parent_folder`: the folder's name (layouts like ``patient_017/slice_003.png``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edsr_lab.errors import BadArgumentError, DatasetError, MissingDependencyError

__all__ = [
    "GroupSplit",
    "check_disjoint",
    "dicom_patient",
    "dicom_series",
    "group_split",
    "parent_folder",
    "volume_file",
]

T = TypeVar("T")

_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".tif", ".tiff", ".png")


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class GroupSplit:
    """The result of :func:`group_split`.

    Attributes:
        train, heldout: the items, each list in the input order.
        train_groups, heldout_groups: the group keys on each side, sorted.
    """

    train: list[Any]
    heldout: list[Any]
    train_groups: list[str]
    heldout_groups: list[str]

    def __str__(self) -> str:
        return (
            f"{len(self.train)} items in {len(self.train_groups)} groups for training, "
            f"{len(self.heldout)} items in {len(self.heldout_groups)} held-out groups "
            f"({', '.join(self.heldout_groups)})"
        )


def group_split(
    items: Sequence[T],
    key: Callable[[T], Hashable],
    *,
    fraction: float = 0.2,
    max_heldout: int | None = None,
) -> GroupSplit:
    """Split items into (train, held-out) by group, deterministically from the group keys.

    ``n_held = clamp(round(fraction * G), 1, max_heldout)`` groups, and at most G - 1 (G
    groups in all); the groups whose key has the smallest SHA-256 hash are held out.

    Args:
        items: anything (paths, (volume, slice) tuples, ...).
        key: item -> group key (converted with ``str``), e.g. :func:`dicom_patient`.
        fraction: share of the *groups* to hold out, in (0, 1).
        max_heldout: cap on the number of held-out groups (None: no cap).

    Raises:
        DatasetError: fewer than 2 groups (nothing to hold out without leaking).
        BadArgumentError: fraction not in (0, 1) or a bad max_heldout.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise BadArgumentError(f"fraction must be between 0 and 1, got {fraction!r}")
    if max_heldout is not None and (
        isinstance(max_heldout, bool) or not isinstance(max_heldout, int) or max_heldout < 1
    ):
        raise BadArgumentError(f"max_heldout must be a whole number >= 1, got {max_heldout!r}")
    keys = [str(key(item)) for item in items]
    groups = sorted(set(keys))
    if len(groups) < 2:
        raise DatasetError(
            f"need at least 2 groups (patients, series or volumes) to hold one out, found "
            f"{len(groups)} ({', '.join(groups) or 'none'}) in {len(keys)} items; add data from "
            "another patient, or split by a finer key (series, volume)"
        )
    n_held = max(1, round(float(fraction) * len(groups)))
    if max_heldout is not None:
        n_held = min(n_held, max_heldout)
    n_held = min(n_held, len(groups) - 1)
    held = set(sorted(groups, key=_rank)[:n_held])
    train = [item for item, k in zip(items, keys, strict=True) if k not in held]
    heldout = [item for item, k in zip(items, keys, strict=True) if k in held]
    return GroupSplit(train, heldout, sorted(set(groups) - held), sorted(held))


def check_disjoint(train: Sequence[T], heldout: Sequence[T], key: Callable[[T], Hashable]) -> None:
    """Raise DatasetError if any group has items on both sides (a leaking split).

    The message names up to five shared groups and what to do.
    """
    shared = sorted({str(key(i)) for i in train} & {str(key(i)) for i in heldout})
    if shared:
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise DatasetError(
            f"{len(shared)} group(s) have items in both the training and the held-out set "
            f"({', '.join(shared[:5])}{more}): slices of one scan on both sides make the "
            "held-out score meaningless. Split by group with edsr_lab.data.groups.group_split"
        )


def _dicom_tag(path: str | os.PathLike[str], tag: str) -> str:
    try:
        import pydicom
    except ImportError as err:
        raise MissingDependencyError(
            f"grouping DICOM files needs pydicom, which is not installed ({err}); install "
            'the extra with: pip install -e ".[dicom]"'
        ) from None
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=[tag])
    except (OSError, pydicom.errors.InvalidDicomError) as err:
        raise DatasetError(f"cannot read {str(path)!r} as DICOM ({err})") from None
    value = str(ds.get(tag, "") or "").strip()
    if not value:
        raise DatasetError(
            f"{str(path)!r} has no {tag}, so its group is unknown; group by another key "
            "(e.g. edsr_lab.data.groups.dicom_series or parent_folder) or pass key=your_function"
        )
    return value


def dicom_patient(path: str | os.PathLike[str]) -> str:
    """The DICOM file's PatientID (needs pydicom; reads the header only)."""
    return _dicom_tag(path, "PatientID")


def dicom_series(path: str | os.PathLike[str]) -> str:
    """The DICOM file's SeriesInstanceUID (needs pydicom; reads the header only)."""
    return _dicom_tag(path, "SeriesInstanceUID")


def volume_file(path: str | os.PathLike[str]) -> str:
    """The file name without its volume suffix: ``sub-01_T1w.nii.gz`` -> ``sub-01_T1w``."""
    name = Path(path).name
    for suffix in _VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def parent_folder(path: str | os.PathLike[str]) -> str:
    """The name of the folder holding the file: ``patient_017/slice_003.png`` -> ``patient_017``."""
    return Path(path).parent.name
