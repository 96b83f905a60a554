"""Making the DIV2K layout from your own images and volumes (``make-dataset``).

:func:`make_div2k_layout` turns a folder of HR images (or NIfTI/DICOM volumes, slice by
slice, through the intensity policy) into ``DIV2K_{split}_HR`` plus LR folders made by
MATLAB bicubic or a degradation of :mod:`edsr_lab.data.degradations`, written in a staging
folder and moved in place at the end (a killed run leaves nothing half-written; the next
run removes its staging folder). :func:`source_images` lists a folder's image files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

import edsr_lab.io
import edsr_lab.resize
from edsr_lab.data.degradations import derived_seed, describe_degradation, make_lr
from edsr_lab.data.layout import (
    SOURCE_SUFFIXES,
    check_scales,
    check_split,
    hr_dirname,
    lr_dirname,
    lr_filename,
)
from edsr_lab.data.medical import MappedSources, VolumeSlice, source_volumes
from edsr_lab.errors import (
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

__all__ = ["make_div2k_layout", "source_images"]


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
    scales = check_scales(scales)
    split = check_split(split)
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
