"""DIV2K: the dataset EDSR was trained on, its folder layout, and how to get one.

DIV2K (Agustsson & Timofte, NTIRE 2017) has 800 training images (0001-0800) and 100
validation images (0801-0900) at 2K resolution. The official layout, which this module
reads and writes, is::

    DIV2K/
      DIV2K_train_HR/0001.png ... 0800.png
      DIV2K_train_LR_bicubic/X2/0001x2.png ...   (also X3/, X4/; and the _LR_unknown/ track)
      DIV2K_valid_HR/0801.png ... 0900.png
      DIV2K_valid_LR_bicubic/X2/0801x2.png ...

The LR images are MATLAB ``imresize(HR, 1/s, 'bicubic')`` rounded to 8 bits
(:func:`edsr_lab.resize.degrade` does the same).

Three ways to get such a folder:

* :func:`download_div2k` fetches the official zips (about 7 GB for HR + bicubic x2/x3/x4)
  through :mod:`edsr_lab.download` (resume, checks, safe extraction);
  command line: ``python -m edsr_lab download-div2k --root data/DIV2K``.
* :func:`make_div2k_layout` turns any folder of HR images (yours) into the layout.
* :func:`mini_div2k` builds (once, cached) a tiny one from the bundled sample images, so
  that every notebook runs offline in quick mode.

:func:`find_pairs` checks a layout and lists the (HR, LR) files; :func:`load_pairs` reads
them into uint8 tensors for :class:`edsr_lab.data.patches.PatchSampler`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch

import edsr_lab.io
import edsr_lab.resize
from edsr_lab import config, download
from edsr_lab.data.degradations import derived_seed, describe_degradation, make_lr
from edsr_lab.data.medical import MappedSources, VolumeSlice, source_volumes
from edsr_lab.data.samples import list_samples
from edsr_lab.errors import (
    ArchiveError,
    BadArgumentError,
    DatasetError,
    DatasetExistsError,
    EdsrLabError,
    OutputPathError,
)
from edsr_lab.files import stale_staging_folders
from edsr_lab.intensity import parse_range
from edsr_lab.paths import unreadable_reason, unwritable_reason
from edsr_lab.resize import degrade, modcrop

#: Where the DIV2K zips are served (the dataset's official host, ETH Zurich CVL).
DIV2K_URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K/"

#: Parts (zip files ``DIV2K_<part>.zip``) that :func:`download_div2k` knows.
DIV2K_PARTS = tuple(
    [f"{split}_HR" for split in ("train", "valid")]
    + [
        f"{split}_LR_{track}_X{s}"
        for split in ("train", "valid")
        for track in ("bicubic", "unknown")
        for s in (2, 3, 4)
    ]
)

#: What the course uses: HR and bicubic x2/x3/x4 for both splits (about 7 GB of zips;
#: train_HR alone is about 3.5 GB).
DEFAULT_PARTS = (
    "train_HR",
    "valid_HR",
    "train_LR_bicubic_X2",
    "train_LR_bicubic_X3",
    "train_LR_bicubic_X4",
    "valid_LR_bicubic_X2",
    "valid_LR_bicubic_X3",
    "valid_LR_bicubic_X4",
)

#: Image files :func:`make_div2k_layout` accepts as sources.
SOURCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Sample kinds used by :func:`mini_div2k`, and the samples it puts in the valid split.
MINI_KINDS = ("natural", "texture")
MINI_VALID = ("natural_coffee", "texture_gravel")

# Bump when the way mini_div2k builds its folder changes, so old caches are not reused.
_MINI_VERSION = 1

FIX_DOWNLOAD = "python -m edsr_lab download-div2k --root {root}"


# ----------------------------------------------------------------------------- helpers


def _check_scales(scales: int | Iterable[int]) -> tuple[int, ...]:
    if isinstance(scales, int):
        scales = (scales,)
    out = []
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, int) or s < 2:
            raise BadArgumentError(
                f"scales must be whole numbers >= 2 (the LR is the HR shrunk s times), got {s!r}"
            )
        out.append(int(s))
    if not out:
        raise BadArgumentError("scales is empty; give at least one scale, e.g. (2, 3, 4)")
    return tuple(sorted(set(out)))


def _check_split(split: str) -> str:
    if not isinstance(split, str) or not split.isalnum():
        raise BadArgumentError(f"split must be a word such as 'train' or 'valid', got {split!r}")
    return split


def hr_dirname(split: str) -> str:
    """``DIV2K_{split}_HR``."""
    return f"DIV2K_{split}_HR"


def lr_dirname(split: str, scale: int, track: str = "bicubic") -> str:
    """``DIV2K_{split}_LR_{track}/X{scale}`` (a relative path, POSIX separators)."""
    return f"DIV2K_{split}_LR_{track}/X{scale}"


def lr_filename(hr_name: str, scale: int) -> str:
    """The LR file name of an HR file: ``0001.png`` -> ``0001x2.png``."""
    p = PurePosixPath(hr_name)
    return f"{p.stem}x{scale}{p.suffix}"


def expected_tree(split: str = "train", scale: int = 2, track: str = "bicubic") -> str:
    """The layout :func:`find_pairs` expects, as an indented text tree (for messages)."""
    first = "0801" if split == "valid" else "0001"
    return (
        "  DIV2K/\n"
        f"    {hr_dirname(split)}/{first}.png ...\n"
        f"    {lr_dirname(split, scale, track)}/{first}x{scale}.png ..."
    )


def _fix_hint(root: Path, split: str, scale: int, track: str) -> str:
    return (
        f"Expected layout:\n{expected_tree(split, scale, track)}\n"
        "To fix it, either\n"
        f"  download DIV2K:      {FIX_DOWNLOAD.format(root=root)}\n"
        "  or use your own HR images: edsr_lab.data.make_div2k_layout("
        f"'my_images/', {str(root)!r}, split={split!r})\n"
        "  or, for a quick offline run, the tiny copy built from the samples: "
        "edsr_lab.data.mini_div2k()"
    )


def source_images(src: str | Path | Iterable[str | Path]) -> list[Path]:
    """The image files of ``src``: one file, the images directly in a folder (by name,
    see :data:`SOURCE_SUFFIXES`; hidden files skipped), or a list of files.

    Raises:
        DatasetError: missing, unreadable, or no images found.
    """
    if isinstance(src, (str, os.PathLike)):
        src = Path(src)
        if not src.exists() and not src.is_symlink():
            raise DatasetError(f"the source folder {str(src)!r} does not exist")
        if not src.is_dir():
            reason = unreadable_reason(src, "image file or folder")
            if reason is not None:  # missing, a symlink loop, a FIFO, empty...
                raise DatasetError(f"the source {str(src)!r}: {reason}")
        if src.is_file():
            files = [src]
        else:
            files = sorted(
                p
                for p in src.iterdir()
                if p.is_file() and p.suffix.lower() in SOURCE_SUFFIXES and not p.name[0] == "."
            )
            if not files:
                raise DatasetError(
                    f"the source folder {str(src)!r} holds no images "
                    f"(looked for {', '.join(SOURCE_SUFFIXES)})"
                )
        return files
    files = [Path(p) for p in src]
    if not files:
        raise DatasetError("the list of source images is empty")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise DatasetError(f"source image(s) not found: {', '.join(missing[:5])}")
    return files


# ------------------------------------------------------------------ make_div2k_layout


def make_div2k_layout(
    src: str | Path | Iterable[str | Path],
    dst_root: str | Path,
    scales: int | Iterable[int] = (2, 3, 4),
    *,
    split: str = "train",
    first_index: int = 1,
    channels: int = 3,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    degradation: str = "bicubic",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    value_range: str | None = "auto",
) -> Path:
    """Turn HR images into the DIV2K layout, making the LR images the paper's way (or
    with another degradation).

    Each source image becomes ``dst_root/DIV2K_{split}_HR/NNNN.png`` (NNNN counting up
    from ``first_index``; DIV2K uses 0001 for train and 0801 for valid) and, for each
    scale s, ``dst_root/DIV2K_{split}_LR_bicubic/X{s}/NNNNxs.png`` =
    :func:`edsr_lab.resize.degrade` of the saved HR file (8-bit, MATLAB bicubic).
    ``dst_root/DIV2K_{split}_sources.csv`` maps each new name to its source file.

    With ``degradation`` other than ``"bicubic"`` (``"kspace"``, ``"ct"``:
    :func:`edsr_lab.data.degradations.make_lr`, options in ``params``), the LR goes to the
    track ``DIV2K_{split}_LR_{degradation}/X{s}`` (as DIV2K's ``LR_unknown`` track sits
    beside ``LR_bicubic``), each image's noise seeded with
    :func:`~edsr_lab.data.degradations.derived_seed` (seed, HR file name, scale), and
    ``DIV2K_{split}_LR_{degradation}/degradation.json`` records the degradation, its
    options and the seed.

    The HR image is cropped (top-left kept, like MATLAB's ``modcrop``) to a multiple of
    the least common multiple of the scales (12 for 2, 3, 4), so one HR file serves every
    scale and HR size == s * LR size exactly, as in DIV2K (whose sizes are multiples of 12).

    Conversions, said plainly: files are written as **8-bit** PNGs, like DIV2K and the
    paper's LR. A grey source with more than 8 bits (a 16-bit PNG of a CT slice, an int16 or
    float TIFF) goes through the intensity policy first (:mod:`edsr_lab.intensity`): its own
    range (``value_range="auto"``), a named one (``"LO,HI"``, a preset) maps to [0, 1], so a
    12-bit CT in a 16-bit file does not become a nearly black 8-bit image; each map is
    written to ``DIV2K_{split}_intensity.csv``. ``value_range=None`` divides by the
    container's maximum instead (65535). ``log`` gets one line naming how many sources had
    more than 8 bits. Alpha is composited on white and grey is repeated to RGB (with
    ``channels=3``), as :func:`edsr_lab.io.load_image` does.

    Nothing is half-written: every source is checked first (readable, an image, large
    enough), then all files are made in a hidden staging folder inside ``dst_root`` and
    moved into place only when every image succeeded. On any failure the staging folder
    (and ``dst_root``, if this call created it) is removed.

    Args:
        src: a folder of images (png, jpg, bmp, tif, webp; sorted by name), one image
            file, or a list of files (kept in the given order).
        dst_root: the dataset root (the folder that will hold ``DIV2K_{split}_HR``).
        scales: downscaling factors, whole numbers >= 2.
        split: ``"train"``, ``"valid"`` or another word.
        first_index: number of the first image (>= 0).
        channels: 3 (RGB; gray sources are repeated) or 1.
        overwrite: replace files that exist; otherwise DatasetExistsError before
            anything is written.
        progress: optional ``progress(done, total)`` called after each image.
        log: optional ``log(line)`` for notes about conversions.
        degradation, params, seed: how LR is made (default the MATLAB bicubic).
        value_range: the intensity range of sources with more than 8 bits (see above).

    Returns:
        ``Path(dst_root)``, ready for ``find_pairs(dst_root, split, scale, track=degradation)``.

    Raises:
        BadArgumentError: bad scales, split or first_index.
        OutputPathError: ``dst_root`` is a file, lies under one, or is not writable.
        DatasetError: a source is missing, not an image, or too small (names the file).
        DatasetExistsError: an output exists and ``overwrite`` is False.
    """
    scales = _check_scales(scales)
    split = _check_split(split)
    params = dict(params or {})
    make_lr(torch.zeros(1, 2, 2), 1, degradation, **params)  # unknown name/option: say so now
    if isinstance(first_index, bool) or not isinstance(first_index, int) or first_index < 0:
        raise BadArgumentError(
            f"first_index must be a whole number >= 0 (DIV2K: 1 for train, 801 for valid), "
            f"got {first_index!r}"
        )
    root = Path(dst_root).expanduser()
    reason = unwritable_reason(root)
    if reason is not None:
        raise OutputPathError(f"cannot write the dataset to {str(root)!r}: {reason}")
    files, volumes = _dataset_sources(src)
    if first_index + len(files) - 1 > 9999:
        raise BadArgumentError(
            f"{len(files)} images from first_index {first_index} would need numbers above "
            "9999 (DIV2K names have 4 digits); use a smaller first_index"
        )
    multiple = math.lcm(*scales)
    hr_rel = Path(hr_dirname(split))
    lr_rel = {s: Path(lr_dirname(split, s, degradation)) for s in scales}
    plan = []
    for i, path in enumerate(files):
        name = f"{first_index + i:04d}.png"
        plan.append((path, hr_rel / name, {s: lr_rel[s] / lr_filename(name, s) for s in scales}))
    if not overwrite:
        existing = [
            str(root / p) for _, hr, lrs in plan for p in (hr, *lrs.values()) if (root / p).exists()
        ]
        if existing:
            raise DatasetExistsError(
                f"{len(existing)} file(s) would be overwritten, e.g. {existing[0]!r}; "
                "pass overwrite=True (--overwrite) to replace them, or choose another "
                "dst_root / first_index"
            )
    if value_range is not None:
        parse_range(value_range)  # a bad range: say so before anything is written
    reduced = _check_sources(plan, multiple, scales)  # before writing anything
    notes = {Path(f"DIV2K_{split}_sources.csv"): ""}
    maps_rel = Path(f"DIV2K_{split}_intensity.csv")
    load_hr = MappedSources(value_range, channels)
    if reduced and (value_range is not None or volumes):
        notes[maps_rel] = load_hr.csv  # filled while the files are made
    lr_of = _LRMaker(degradation, params, seed)
    if lr_of.record is not None:
        notes[Path(f"DIV2K_{split}_LR_{degradation}") / "degradation.json"] = lr_of.record
    _write_staged(plan, root, multiple, channels, notes, progress, lr_of, load_hr)
    if reduced and log is not None:
        how = (
            f"each grey one mapped to [0, 1] by its range ({value_range}; the maps are in "
            f"{maps_rel})"
            if value_range is not None
            else "divided by the container's maximum"
        )
        if volumes:
            how += f"; {len(volumes)} volume(s) as slices along axis 2, one map per volume"
        log(
            f"note: {reduced} of {len(plan)} source(s) had more than 8 bits per value: {how}; "
            "the dataset holds 8-bit PNGs, like DIV2K (the paper trains and scores on 8-bit)"
        )
    return root


def _dataset_sources(src: Any) -> tuple[list[Path | VolumeSlice], list[Any]]:
    """make_div2k_layout's sources: the image files, then every slice of the volumes (NIfTI,
    DICOM series, TIFF stacks); and the volumes."""
    volumes = source_volumes(src)
    stacked = {v.path for v in volumes}
    try:
        files: list[Path | VolumeSlice] = [f for f in source_images(src) if f not in stacked]
    except DatasetError:
        if not volumes:
            raise
        files = []
    files += [VolumeSlice(v, z) for v in volumes for z in range(v.values.shape[0])]
    return files, volumes


class _LRMaker:
    """``lr_of(hr, s, name)``: the LR of one saved HR image, by the degradation (noise seeded
    per file name and scale); ``record``: its description for degradation.json, or None for
    the plain MATLAB bicubic."""

    def __init__(self, degradation: str, params: dict[str, Any], seed: int):
        self.degradation, self.params, self.seed = degradation, params, int(seed)
        self.plain = degradation == "bicubic" and not params
        self.record = None if self.plain else json.dumps({
            "degradation": describe_degradation(degradation, params), "seed": self.seed,
            "image_seed": "derived_seed(seed, HR file name, scale)",
        })  # fmt: skip

    def __call__(self, hr: torch.Tensor, s: int, name: str) -> torch.Tensor:
        if self.plain:
            return degrade(hr, s)
        seed = derived_seed(self.seed, name, s)
        return make_lr(hr, s, self.degradation, seed=seed, **self.params)


# One image of make_div2k_layout's plan: (source file or volume slice, HR file, {scale: LR
# file}), the output paths relative to the dataset root.
_Planned = tuple[Path | VolumeSlice, Path, dict[int, Path]]


def _check_sources(plan: list[_Planned], multiple: int, scales: tuple[int, ...]) -> int:
    """Check every source (readable, an image, large enough); return how many have more
    than 8 bits per value."""
    reduced = 0
    for path, _, _ in plan:
        if isinstance(path, VolumeSlice):  # a volume's slice: values, sized by its array
            height, width = path.volume.values.shape[-2:]
            if height < multiple or width < multiple:
                raise DatasetError(
                    f"the slices of {str(path.volume.path)!r} are {width}x{height} pixels; "
                    f"every image must be at least {multiple}x{multiple} for scales "
                    f"{scales}; nothing was written"
                )
            reduced += 1
            continue
        try:
            width, height, bits = _image_header(path)
        except EdsrLabError as err:
            raise DatasetError(f"source image {str(path)!r}: {err}") from None
        if height < multiple or width < multiple:
            raise DatasetError(
                f"source image {str(path)!r} is {width}x{height} pixels; every image must be "
                f"at least {multiple}x{multiple} for scales {scales}; nothing was written"
            )
        reduced += bits > 8
    return reduced


_STAGING = ".make-dataset-"  # + "<pid>-<8 hex>": make_div2k_layout's work folder


def _write_staged(
    plan: list[_Planned],
    root: Path,
    multiple: int,
    channels: int,
    notes: dict[Path, Any],
    progress: Callable[[int, int], None] | None,
    lr_of: Callable[[torch.Tensor, int, str], torch.Tensor],
    load_hr: Callable[[Path, str], torch.Tensor],
) -> None:
    """Make every file in a staging folder inside ``root``; move them into place only if
    all succeeded. On any failure the staging folder (and ``root``, if this made it) goes."""
    created_root = not root.exists()
    # Staging folders that killed runs (kill -9) left behind go first; ours names our
    # process, so the next run can tell a dead one's from a running one's.
    for stale in stale_staging_folders(root, _STAGING):
        shutil.rmtree(stale, ignore_errors=True)
    staging = root / f"{_STAGING}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _, hr_first, lr_first = plan[0]  # every image goes to the same folders
        for rel in (hr_first, *lr_first.values()):
            (staging / rel.parent).mkdir(parents=True, exist_ok=True)
        rows = ["name,source"]
        for i, (path, hr_path, lr_paths) in enumerate(plan):
            try:
                hr = load_hr(path, hr_path.name)
            except EdsrLabError as err:
                raise DatasetError(f"{err}; nothing was written") from None
            edsr_lab.io.save_image(modcrop(hr, multiple), staging / hr_path)
            # Degrade the HR *as saved* (8-bit), so LR == degrade(load_image(HR file)) exactly.
            hr = edsr_lab.io.load_image(staging / hr_path, channels=channels)
            for s, lr_path in lr_paths.items():
                edsr_lab.io.save_image(lr_of(hr, s, hr_path.name), staging / lr_path)
            rows.append(f"{hr_path.name},{_csv_field(str(path.resolve()))}")
            if progress is not None:
                progress(i + 1, len(plan))
        mapping_rel = next(iter(notes))
        notes[mapping_rel] = "\n".join(rows) + "\n"
        for rel, text in notes.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text() if callable(text) else text, encoding="utf-8")
        for _, hr_path, lr_paths in plan:
            for rel in (hr_path, *lr_paths.values()):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, root / rel)
        for rel in notes:
            os.replace(staging / rel, root / rel)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_root:
            shutil.rmtree(root, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def _image_header(path: Path) -> tuple[int, int, int]:
    """(width, height, bits per value) from the file's header, without decoding its pixels;
    ImageReadError when it is not a readable image file (or claims more pixels than
    :func:`edsr_lab.io.load_image` decodes: a decompression bomb)."""
    with edsr_lab.io.open_image(path) as img:  # the package's checks, one error type
        mode, (width, height) = img.mode, img.size
        args = img.tile[0][3] if len(img.tile) == 1 else ""
    wide = mode.startswith(("I", "F")) or (isinstance(args, str) and ";16" in args)
    return width, height, 16 if wide else 8


# ------------------------------------------------------------------------ find_pairs


def find_root(root: str | Path, split: str = "train") -> Path | None:
    """The folder holding ``DIV2K_{split}_HR``: ``root``, ``root/DIV2K``, or the parent of
    a ``DIV2K_*`` folder (the user pointed at ``DIV2K_train_HR``); None when none does."""
    root = Path(root).expanduser()
    name = hr_dirname(split)
    candidates = [root, root / "DIV2K"]
    if root.name.startswith("DIV2K_"):  # the user pointed at DIV2K_train_HR or similar
        candidates.append(root.parent)
    for c in candidates:
        if (c / name).is_dir():
            return c
    return None


def find_pairs(
    root: str | Path,
    split: str = "train",
    scale: int = 2,
    *,
    track: str = "bicubic",
    indices: Iterable[int] | None = None,
) -> list[tuple[Path, Path]]:
    """List the (HR, LR) file pairs of a DIV2K-layout folder, checking the layout.

    Args:
        root: the folder holding ``DIV2K_{split}_HR`` (e.g. ``data/DIV2K``); its parent
            (``data``) or the HR folder itself work too.
        split: ``"train"`` (0001-0800 in DIV2K) or ``"valid"`` (0801-0900).
        scale: 2, 3, 4 (or any scale your own layout has).
        track: ``"bicubic"`` (the paper's), ``"unknown"``, or a degradation's name
            (``make-dataset --degradation kspace`` writes the ``kspace`` track).
        indices: only these image numbers, e.g. ``range(801, 811)`` for the 10
            validation images of the paper's ablations; each must exist.

    Returns:
        ``[(hr_path, lr_path), ...]`` sorted by HR file name; never empty.

    Raises:
        DatasetError: a folder or file is missing (the message names the expected path,
            shows the expected tree and the command that fixes it).
    """
    split = _check_split(split)
    (scale,) = _check_scales(scale)
    from edsr_lab.data.degradations import degradation_names

    tracks = ("bicubic", "unknown", *degradation_names())
    if track not in tracks:
        raise BadArgumentError(f"track must be one of {', '.join(tracks)}, got {track!r}")
    given = Path(root).expanduser()
    base = find_root(given, split)
    if base is None:
        if not given.exists():
            where = f"{str(given)!r} does not exist"
        else:
            looked = [given / hr_dirname(split), given / "DIV2K" / hr_dirname(split)]
            where = "there is no " + " nor ".join(repr(str(p)) for p in looked)
        raise DatasetError(
            f"DIV2K {split} images not found: {where}.\n" + _fix_hint(given, split, scale, track)
        )

    hr_dir = base / hr_dirname(split)
    if indices is not None:
        hr_files = [hr_dir / f"{int(i):04d}.png" for i in indices]
        if not hr_files:
            raise BadArgumentError("indices is empty; give at least one image number")
        missing_hr = [p for p in hr_files if not p.is_file()]
        if missing_hr:
            raise DatasetError(
                f"{len(missing_hr)} requested HR image(s) missing, e.g. {str(missing_hr[0])!r}.\n"
                + _fix_hint(base, split, scale, track)
            )
    else:
        hr_files = sorted(p for p in hr_dir.glob("*.png") if not p.name.startswith("."))
        if not hr_files:
            found = sorted(p.name for p in hr_dir.iterdir())[:5]
            raise DatasetError(
                f"the folder {str(hr_dir)!r} holds no PNG images"
                + (f" (it holds: {', '.join(found)} ...)" if found else " (it is empty)")
                + ".\n"
                + _fix_hint(base, split, scale, track)
            )

    lr_dir = base / lr_dirname(split, scale, track)
    if not lr_dir.is_dir():
        raise DatasetError(
            f"the LR folder for x{scale} ({track}) is missing: expected {str(lr_dir)!r}.\n"
            + _fix_hint(base, split, scale, track)
        )
    pairs = [(hr, lr_dir / lr_filename(hr.name, scale)) for hr in hr_files]
    missing = [(hr, lr) for hr, lr in pairs if not lr.is_file()]
    if missing:
        hr, lr = missing[0]
        raise DatasetError(
            f"{len(missing)} of {len(pairs)} LR image(s) missing: expected {str(lr)!r}, "
            f"the x{scale} LR of {str(hr)!r}.\n" + _fix_hint(base, split, scale, track)
        )
    return pairs


def load_pairs(
    pairs: Sequence[tuple[str | Path, str | Path]],
    channels: int = 3,
    *,
    scale: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Read (HR, LR) file pairs into memory as uint8 tensors.

    Args:
        pairs: ``[(hr_path, lr_path), ...]``, e.g. from :func:`find_pairs`.
        channels: 3 (RGB) or 1.
        scale: the expected HR/LR size ratio; None infers it from the first pair.
        progress: optional ``progress(done, total)`` after each pair.

    Returns:
        ``(hr_images, lr_images)``: lists of uint8 tensors shaped (channels, H, W) and
        (channels, H/s, W/s), values 0..255 (uint8 keeps DIV2K's 800 HR images at ~6 GB
        instead of 24 GB as float32).

    Raises:
        DatasetError: empty list, or an HR image is not exactly s times its LR (names
            both files and sizes).
    """
    if len(pairs) == 0:
        raise DatasetError("no image pairs to load (the list is empty)")
    hrs, lrs = [], []
    for i, (hr_path, lr_path) in enumerate(pairs):
        hr = edsr_lab.io.load_image(hr_path, channels=channels)
        lr = edsr_lab.io.load_image(lr_path, channels=channels)
        (hh, hw), (lh, lw) = hr.shape[-2:], lr.shape[-2:]
        s = scale if scale is not None else hh // max(lh, 1)
        if (hh, hw) != (s * lh, s * lw):
            raise DatasetError(
                f"HR {str(hr_path)!r} is {hh}x{hw} but its LR {str(lr_path)!r} is {lh}x{lw}; "
                f"expected the HR to be exactly x{s} the LR ({s * lh}x{s * lw}). Remake the LR "
                "with make_div2k_layout (which crops HR to a multiple of the scales)."
            )
        hrs.append(_to_uint8(hr))
        lrs.append(_to_uint8(lr))
        if progress is not None:
            progress(i + 1, len(pairs))
    return hrs, lrs


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


# ------------------------------------------------------------------------- mini_div2k


def _mini_sources() -> tuple[list[Path], list[Path]]:
    files = [p for kind in MINI_KINDS for p in list_samples(kind)]
    files.sort(key=lambda p: p.name)
    valid = [p for p in files if p.stem in MINI_VALID]
    train = [p for p in files if p.stem not in MINI_VALID]
    if len(valid) != len(MINI_VALID) or not train:
        raise DatasetError(
            f"the samples needed for mini_div2k are missing from {str(files[0].parent)!r}: "
            f"need {', '.join(MINI_VALID)} and at least one other natural/texture sample; "
            "restore them with: git checkout -- data/samples"
        )
    return train, valid


def _mini_fingerprint(train: list[Path], valid: list[Path], scales: tuple[int, ...]) -> dict:
    digest = hashlib.sha256()
    record: dict = {"version": _MINI_VERSION, "scales": list(scales), "train": {}, "valid": {}}
    for split, files in (("train", train), ("valid", valid)):
        for p in files:
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            record[split][p.name] = h
    # The code that makes the files is part of what they depend on.
    for mod in (edsr_lab.io, edsr_lab.resize):
        record[mod.__name__] = hashlib.sha256(Path(mod.__file__).read_bytes()).hexdigest()
    digest.update(json.dumps(record, sort_keys=True).encode())
    record["digest"] = digest.hexdigest()
    return record


def _is_complete(folder: Path, digest: str) -> bool:
    """True when folder holds a finished build with this digest and all of its files."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    files = manifest.get("files")
    return (
        manifest.get("digest") == digest
        and isinstance(files, list)
        and all((folder / f).is_file() for f in files)
    )


def mini_div2k(scales: int | Iterable[int] = (2, 3, 4)) -> Path:
    """A tiny DIV2K-layout dataset made from the bundled samples (built once, cached).

    Train split: the natural and texture samples except those in ``MINI_VALID``
    (numbered 0001, 0002, ...); valid split: ``MINI_VALID`` (0801, 0802), so code written
    for DIV2K runs unchanged. LR images are made with :func:`make_div2k_layout`.

    The folder is ``config.cache_dir()/mini_div2k/x2x3x4-<hash>``: the hash covers the
    sample files, the scales and the code that made them, so a changed sample set gets a
    fresh build. Safe when several processes call it at once: each builds into a private
    temporary folder and renames it into place atomically; a loser of that race uses the
    winner's folder.

    Returns:
        The dataset root, ready for ``find_pairs(root, "train", 2)``.
    """
    scales = _check_scales(scales)
    train, valid = _mini_sources()
    record = _mini_fingerprint(train, valid, scales)
    parent = config.cache_dir() / "mini_div2k"
    target = parent / ("x" + "x".join(map(str, scales)) + "-" + record["digest"][:12])
    if _is_complete(target, record["digest"]):
        return target

    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        make_div2k_layout(train, tmp, scales, split="train", first_index=1)
        make_div2k_layout(valid, tmp, scales, split="valid", first_index=801)
        record["files"] = sorted(
            p.relative_to(tmp).as_posix() for p in tmp.rglob("*.png") if p.is_file()
        )
        (tmp / "manifest.json").write_text(json.dumps(record, indent=1, sort_keys=True))
        if target.exists() and not _is_complete(target, record["digest"]):
            # A damaged folder (e.g. files deleted by hand): move it aside, then replace.
            trash = parent / f".trash-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(target, trash)
            except FileNotFoundError:
                pass  # another process moved it first; the rename below decides
            else:
                shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, target)  # atomic; fails if another process's build got there first
        except OSError:
            if not _is_complete(target, record["digest"]):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale_minis(parent, keep=target)
    return target


def _remove_stale_minis(parent: Path, keep: Path) -> None:
    """Delete finished mini builds of the same scales with another hash (old sample sets)."""
    prefix = keep.name.rsplit("-", 1)[0] + "-"
    for p in parent.iterdir():
        if p.is_dir() and p != keep and p.name.startswith(prefix):
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------- download_div2k


def part_folder(part: str) -> str:
    """Where a part's images land: ``train_HR`` -> ``DIV2K_train_HR``,
    ``valid_LR_bicubic_X2`` -> ``DIV2K_valid_LR_bicubic/X2`` (POSIX separators)."""
    if part not in DIV2K_PARTS:
        raise BadArgumentError(f"unknown DIV2K part {part!r}; known: {', '.join(DIV2K_PARTS)}")
    if part.endswith("_HR"):
        return f"DIV2K_{part}"
    head, scale = part.rsplit("_", 1)
    return f"DIV2K_{head}/{scale}"


def _part_done(root: Path, part: str) -> bool:
    """A part counts as done when its marker exists *and* its folder still holds PNGs."""
    folder = root / part_folder(part)
    return (root / f".DIV2K_{part}.done").is_file() and any(folder.glob("*.png"))


def download_div2k(
    root: str | Path | None = None,
    parts: Iterable[str] = DEFAULT_PARTS,
    *,
    base_url: str = DIV2K_URL,
    progress: download.Progress = True,
    keep_zips: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download and extract DIV2K zips into ``root`` (default ``config.data_dir()/DIV2K``).

    For each part (e.g. ``"train_HR"``) fetches ``{base_url}DIV2K_{part}.zip`` into
    ``root`` with :func:`edsr_lab.download.fetch` (a ``.part`` file that a rerun resumes,
    the length the server announced checked), checks that the zip holds the part's
    images (``DIV2K_train_HR/*.png`` ...) and is safe to extract, extracts it with
    :func:`edsr_lab.download.safe_extract` and deletes it (unless ``keep_zips``). Only
    then is the part marked done (``root/.DIV2K_{part}.done``); a done part whose folder
    still holds PNGs is skipped. A zip already in ``root`` (e.g. downloaded by hand) is
    extracted without downloading; a zip with the wrong content is renamed
    ``*.zip.corrupt`` (kept, never extracted) so a rerun downloads it again. The host
    publishes no checksums. The zips are large: train_HR is about 3.5 GB, all of
    DEFAULT_PARTS about 7 GB. If the first download fails, no empty folder is left behind.

    Args:
        root: destination; ends up holding ``DIV2K_train_HR/`` etc.
        parts: names from ``DIV2K_PARTS``.
        base_url: the folder URL serving the zips (http or https).
        progress: True for tqdm bars, ``progress(part, bytes_done, bytes_total_or_None)``,
            or None for silence.
        keep_zips: keep the zip files after extraction.
        timeout: seconds to wait for the server on each connection.

    Returns:
        ``root`` (pass it to :func:`find_pairs`).

    Raises:
        DownloadError: the server could not be reached, a transfer broke off (run again to
            resume), or the URL is not http(s).
        ArchiveError: a zip is damaged, unsafe, or does not hold the part's images.
    """
    root = Path(root).expanduser() if root is not None else config.data_dir() / "DIV2K"
    parts = list(parts)
    unknown = [p for p in parts if p not in DIV2K_PARTS]
    if unknown:
        raise BadArgumentError(f"unknown DIV2K part(s) {unknown}; known: {', '.join(DIV2K_PARTS)}")
    download.check_url(base_url, "base_url")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    fix = f"If the server moved, put the zip into {str(root)!r} by hand and run again."
    with download.removing_new_dirs(root):
        for part in parts:
            if _part_done(root, part):
                continue
            zip_path = root / f"DIV2K_{part}.zip"
            if not zip_path.exists():
                download.fetch(
                    base_url + zip_path.name, zip_path, progress=progress, label=part,
                    timeout=timeout, fix=fix,
                )  # fmt: skip
            again = f"{FIX_DOWNLOAD.format(root=root)} --parts {part}"
            try:  # only the part's own folder: a zip never replaces other files in root
                download.safe_extract(
                    zip_path, root, expect=[f"{part_folder(part)}/*.png"],
                    only=[part_folder(part)], what=zip_path.name,
                    fix=f"fetch it again with: {again}",
                )  # fmt: skip
            except ArchiveError as err:
                aside = download.move_aside(zip_path, "not a usable DIV2K zip", quiet=True)
                raise ArchiveError(f"{err} (the file was moved aside to {aside.name})") from err
            (root / f".DIV2K_{part}.done").write_text("extracted\n")
            if not keep_zips:
                zip_path.unlink()
    return root
