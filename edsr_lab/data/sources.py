"""Which data to train and validate on: one rule for the notebooks and the ``train`` command.

:func:`choose_training_data` makes the choice, :func:`training_pairs` lists the chosen
(HR, LR) files for a notebook, and :func:`load_training_data` loads a run's training
images and validation pairs. The rule:

1. **A folder you name** (``--data DIR``, ``run(data=...)``) is used: a DIV2K-layout root
   (``DIR``, ``DIR/DIV2K``, or the parent of a ``DIV2K_*`` folder), else a folder of
   medical files (NIfTI, DICOM, 16-bit/integer/float images: volumes held out by patient,
   one intensity map each, :mod:`edsr_lab.data.medical`), else a folder of HR images (LR
   made with the MATLAB bicubic or ``degradation``, a fixed held-out split for
   validation: :mod:`edsr_lab.data.folder`).
2. **Quick mode** (``EDSR_LAB_QUICK=1``): the mini-DIV2K (:func:`edsr_lab.data.mini_div2k`),
   even where DIV2K is present: loading DIV2K's 800 HR images (~6 GB) alone takes longer
   than quick mode may run. Its train split is the natural and texture samples except
   ``natural_coffee`` and ``texture_gravel``, its valid split (0801, 0802); the course
   weights (``scripts/train_course_weights.py``) are trained on the same split, so "valid"
   is held out for them too.
3. **Full mode**: DIV2K in ``config.data_dir()/DIV2K`` when it holds ``DIV2K_{split}_HR``
   (validating on 0801-0810, the images of the paper's ablations, Table 2). Without it,
   notebooks fall back to the mini-DIV2K and say how to get DIV2K; the ``train`` command
   (``fallback=False``) stops with that command instead: a full-length run on six sample
   images is not what anyone means.

    >>> from edsr_lab.data import load_pairs, training_pairs
    >>> pairs = training_pairs(2)              # doctest: +SKIP
    data: mini-DIV2K x2 train, 6 images made from the bundled samples (data/samples) ...
    >>> hr, lr = load_pairs(pairs, scale=2)    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edsr_lab import config
from edsr_lab.data import div2k
from edsr_lab.data.degradations import describe_degradation, parse_degradation
from edsr_lab.data.folder import heldout_split, list_images, load_folder_pairs
from edsr_lab.data.medical import load_medical
from edsr_lab.errors import BadArgumentError, DatasetError

__all__ = [
    "DIV2K_ABLATION_VALID",
    "DataChoice",
    "TrainData",
    "choose_training_data",
    "div2k_available",
    "load_training_data",
    "training_pairs",
]

#: The DIV2K validation images of the paper's ablations (Table 2): 0801-0810 (also what
#: the official code validates on during training, ``--data_range 801-810``).
DIV2K_ABLATION_VALID = range(801, 811)

#: Where the rule looks for DIV2K, relative to ``config.data_dir()``.
DIV2K_DIRNAME = "DIV2K"


@dataclass(frozen=True)
class DataChoice:
    """The outcome of :func:`choose_training_data`.

    Attributes:
        kind: ``"div2k"`` (a DIV2K layout), ``"mini"`` (the mini-DIV2K, also a DIV2K
            layout) or ``"folder"`` (a folder of HR images).
        root: the folder to read.
        reason: why this data, when the rule had to choose ("" when it was named).
    """

    kind: str
    root: Path
    reason: str = ""


def choose_training_data(
    data: str | Path | None = None,
    *,
    split: str = "train",
    scales: Iterable[int] = (2,),
    source: str = "auto",
    fallback: bool = True,
) -> DataChoice:
    """Which data to use, by the rule in this module's docstring.

    Args:
        data: a folder named by the user (rule 1), or None.
        split: ``"train"`` or ``"valid"``: the DIV2K split that must be present.
        scales: the scales needed (the mini-DIV2K is built with them, and 2, 3, 4).
        source: ``"auto"`` (the rule), ``"div2k"`` or ``"mini"`` (that one, whatever the
            mode; a missing DIV2K then fails where its files are listed).
        fallback: in full mode without DIV2K: the mini-DIV2K (True) or a DatasetError
            naming the download command (False).

    Raises:
        DatasetError: ``data`` is not a folder, or DIV2K is missing and ``fallback`` False.
        BadArgumentError: an unknown ``source`` or ``split`` (a ``ValueError``).
    """
    if source not in ("auto", "div2k", "mini"):
        raise BadArgumentError(f"source={source!r}: use 'auto', 'div2k' or 'mini'")
    if split not in ("train", "valid"):
        raise BadArgumentError(f"split={split!r}: use 'train' or 'valid'")
    if data is not None:
        return _named_folder(Path(data).expanduser(), str(data))
    root = config.data_dir() / DIV2K_DIRNAME
    present = div2k.find_root(root, split) is not None
    if source == "div2k" or (source == "auto" and present and not config.is_quick()):
        return DataChoice("div2k", root)
    if source == "mini":
        reason = ""
    elif config.is_quick():
        reason = "quick mode; DIV2K is found and used in full mode" if present else "quick mode"
    elif fallback:
        reason = f"DIV2K {split} not found in {str(root)!r}; fetch it with {_FETCH}"
    else:
        raise DatasetError(
            f"DIV2K not found in {root}: download it with `{_FETCH}` (about 7 GB), or pass "
            "--data DIR (a DIV2K-layout root or a folder of HR images)"
        )
    return DataChoice("mini", div2k.mini_div2k(sorted(set(scales) | {2, 3, 4})), reason)


_FETCH = "python -m edsr_lab download-div2k"


def _named_folder(path: Path, given: str) -> DataChoice:
    if not path.exists():
        raise DatasetError(f"--data {given}: no such folder")
    if not path.is_dir():
        raise DatasetError(
            f"--data {given}: not a folder (give a DIV2K root or a folder of images)"
        )
    base = div2k.find_root(path, "train")
    if base is not None:
        return DataChoice("div2k", base)
    from edsr_lab.data.medical import is_medical_folder

    if is_medical_folder(path):
        return DataChoice("medical", path)
    return DataChoice("folder", path)


def div2k_available(scale: int, split: str = "train") -> bool:
    """True when ``config.data_dir()/DIV2K`` holds a complete ``split`` at ``scale``."""
    try:
        div2k.find_pairs(config.data_dir() / DIV2K_DIRNAME, split, scale)
    except DatasetError:
        return False
    return True


def training_pairs(
    scale: int,
    split: str = "train",
    *,
    source: str = "auto",
    indices: Iterable[int] | None = None,
    verbose: bool = True,
) -> list[tuple[Path, Path]]:
    """The (HR, LR) file pairs a notebook trains (``split="train"``) or validates on.

    Args:
        scale: 2, 3 or 4.
        split: ``"train"`` or ``"valid"``.
        source: ``"auto"`` (the rule of this module: the mini-DIV2K in quick mode, DIV2K
            in full mode when ``config.data_dir()/DIV2K`` has this split, else the
            mini-DIV2K), ``"div2k"`` (DIV2K or a DatasetError saying how to get it) or
            ``"mini"``.
        indices: DIV2K image numbers to use; default all training images, and for
            ``"valid"`` the paper's 0801-0810. Ignored for mini-DIV2K (it has 6 + 2).
        verbose: print one line saying which data is used (and why).

    Returns:
        ``[(hr_path, lr_path), ...]`` sorted by name, ready for
        :func:`~edsr_lab.data.load_pairs` or ``PatchSampler.from_pairs``.

    Raises:
        DatasetError: DIV2K is chosen but incomplete, or ``source="div2k"`` and it is
            missing (the message names the missing folder and the command that fetches it).
        BadArgumentError: an unknown ``source`` or ``split`` (a ``ValueError``).
    """
    choice = choose_training_data(split=split, scales=(scale,), source=source)
    if choice.kind == "div2k":
        if indices is None and split == "valid":
            indices = DIV2K_ABLATION_VALID
        pairs = div2k.find_pairs(choice.root, split, scale, indices=indices)
        if verbose:
            print(f"data: DIV2K x{scale} {split}, {len(pairs)} images from {str(choice.root)!r}")
        return pairs
    pairs = div2k.find_pairs(choice.root, split, scale)
    if verbose:
        why = f" ({choice.reason})" if choice.reason not in ("", "quick mode") else ""
        print(
            f"data: mini-DIV2K x{scale} {split}, {len(pairs)} images made from the bundled "
            f"samples (data/samples){why}"
        )
    return pairs


# ----------------------------------------------------------------------------- a run's data


@dataclass
class TrainData:
    """A run's data: training images (uint8 (C, H, W); uint16 for medical values; per
    scale) and validation pairs (``(name, hr, lr)`` float in [0, 1], per scale)."""

    kind: str  # "div2k", "mini" or "folder"
    root: Path
    description: str
    train: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = field(default_factory=dict)
    valid: dict[int, list[tuple[str, torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    valid_names: list[str] = field(default_factory=list)


def _u8_to_float(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 255.0


def _named(names: Sequence[str], hrs: Sequence[torch.Tensor], lrs: Sequence[torch.Tensor]):
    return [(n, _u8_to_float(h), _u8_to_float(x)) for n, h, x in zip(names, hrs, lrs, strict=True)]


def load_training_data(
    choice: DataChoice,
    scales: tuple[int, ...],
    *,
    patch_size: int,
    holdout: float,
    degradation: str = "bicubic",
    split_by: str = "patient",
    seed: int = 0,
) -> TrainData:
    """Load a run's training images and validation pairs for each scale.

    A DIV2K layout trains on ``DIV2K_train_*`` and validates on 0801-0810 of
    ``DIV2K_valid_HR`` (or, without a valid split, on a held-out share of the training
    images); a scale without LR files gets them made with the MATLAB bicubic. A folder of
    HR images holds out a fixed ``holdout`` share (:func:`~edsr_lab.data.folder.heldout_split`).
    A folder of medical files holds out whole groups (``split_by``: patient, series or
    volume; :func:`edsr_lab.data.medical.load_medical`).

    ``degradation`` (``name[:k=v,...]``, :func:`~edsr_lab.data.degradations.parse_degradation`)
    makes the LR of folders (seeded with ``seed``, per file); a DIV2K layout reads the
    track ``DIV2K_*_LR_{name}`` when it has one (``make-dataset --degradation``), else
    makes the LR with it.

    Raises:
        DatasetError: an image is too small for ``patch_size`` (or the folder is empty).
    """
    data = TrainData(kind=choice.kind, root=choice.root, description="")
    name, params = parse_degradation(degradation)
    made = (
        "the MATLAB bicubic"
        if name == "bicubic" and not params
        else f"{describe_degradation(name, params)} (seed {seed})"
    )
    if choice.kind == "medical":
        med = load_medical(
            choice.root, scales, patch_size=patch_size, holdout=holdout,
            degradation=degradation, split_by=split_by, seed=seed,
        )  # fmt: skip
        data.train, data.valid, data.valid_names = med.train, med.valid, med.valid_names
        data.description = med.description
        return data
    lr_options = {"degradation": name, "params": params, "seed": seed}
    if choice.kind == "folder":
        train_files, valid_files = heldout_split(list_images(choice.root), holdout)
        data.valid_names = [p.name for p in valid_files]
        for s in scales:
            data.train[s] = load_folder_pairs(train_files, s, min_lr_size=patch_size, **lr_options)
            data.valid[s] = _named(
                data.valid_names, *load_folder_pairs(valid_files, s, **lr_options)
            )
        data.description = (
            f"{len(train_files)} training images, {len(valid_files)} held out "
            f"(--holdout {holdout}: {', '.join(data.valid_names)}); LR made with {made}"
        )
        return data
    for s in scales:
        _load_div2k_scale(data, s, patch_size, holdout, lr_options)
    return data


def _load_div2k_scale(
    data: TrainData, s: int, patch_size: int, holdout: float, lr_options: dict[str, Any]
) -> None:
    root = data.root
    track = lr_options["degradation"]
    has_valid = (root / div2k.hr_dirname("valid")).is_dir()
    hr_files = sorted((root / div2k.hr_dirname("train")).glob("*.png"))
    held: list[Path] = []
    if (root / div2k.lr_dirname("train", s, track)).is_dir():
        hrs, lrs = div2k.load_pairs(div2k.find_pairs(root, "train", s, track=track), scale=s)
        made = "" if track == "bicubic" else f" (LR from {div2k.lr_dirname('train', s, track)})"
    else:  # no LR folder for this scale: make LR on the fly, as for a plain folder
        if not hr_files:
            raise DatasetError(f"{root / div2k.hr_dirname('train')} holds no PNG images")
        files = hr_files
        if not has_valid:
            files, held = heldout_split(hr_files, holdout)
        hrs, lrs = load_folder_pairs(files, s, min_lr_size=patch_size, **lr_options)
        how = describe_degradation(track, lr_options["params"])
        made = f" (no {div2k.lr_dirname('train', s, track)}: LR made with {how})"
    small = [i for i, x in enumerate(lrs) if min(x.shape[-2:]) < patch_size]
    if small:
        raise DatasetError(
            f"training image {small[0] + 1} of {root} at x{s} has an LR of "
            f"{tuple(lrs[small[0]].shape[-2:])}, smaller than --patch-size {patch_size}; "
            "use a smaller --patch-size"
        )
    data.train[s] = (hrs, lrs)
    if has_valid:
        v_dir = root / div2k.hr_dirname("valid")
        wanted = [i for i in DIV2K_ABLATION_VALID if (v_dir / f"{i:04d}.png").is_file()]
        v_hr = [v_dir / f"{i:04d}.png" for i in wanted] or sorted(v_dir.glob("*.png"))[:10]
        if not v_hr:
            raise DatasetError(
                f"{v_dir} holds no PNG images to validate on; put the validation images there "
                "(DIV2K's are 0801.png to 0900.png: python -m edsr_lab download-div2k --parts "
                "valid_HR), or remove the empty folder to hold out a share of the training "
                "images (--holdout)"
            )
        if (root / div2k.lr_dirname("valid", s, track)).is_dir():
            pairs = [
                (h, root / div2k.lr_dirname("valid", s, track) / div2k.lr_filename(h.name, s))
                for h in v_hr
            ]
            vh, vl = div2k.load_pairs(pairs, scale=s)
        else:
            vh, vl = load_folder_pairs(v_hr, s, **lr_options)
        names = [p.stem for p in v_hr]
    else:
        if not held:
            hr_all = sorted(p for p, _ in div2k.find_pairs(root, "train", s, track=track))
            train_part, held = heldout_split(hr_all, holdout)
            keep = {p.name for p in train_part}
            idx = [i for i, p in enumerate(hr_all) if p.name in keep]
            data.train[s] = ([hrs[i] for i in idx], [lrs[i] for i in idx])
        vh, vl = load_folder_pairs(held, s, **lr_options)
        names = [p.stem for p in held]
    data.valid[s] = _named(names, vh, vl)
    data.valid_names = names
    data.description = (
        f"{len(data.train[s][0])} training images, validation on {', '.join(names)}{made}"
    )
