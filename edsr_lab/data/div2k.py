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
* :func:`make_div2k_layout` (:mod:`edsr_lab.data.make_dataset`) turns any folder of HR images
  (yours) into the layout.
* :func:`mini_div2k` builds (once, cached) a tiny one from the bundled sample images, so
  that every notebook runs offline in quick mode.

:func:`find_pairs` checks a layout and lists the (HR, LR) files; :func:`load_pairs` reads
them into uint8 tensors for :class:`edsr_lab.data.patches.PatchSampler`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

import edsr_lab.io
import edsr_lab.resize
from edsr_lab import config, download
from edsr_lab.data.layout import check_scales as _check_scales
from edsr_lab.data.layout import check_split as _check_split
from edsr_lab.data.layout import expected_tree, hr_dirname, lr_dirname, lr_filename
from edsr_lab.data.make_dataset import make_div2k_layout
from edsr_lab.data.samples import list_samples
from edsr_lab.errors import (
    ArchiveError,
    BadArgumentError,
    DatasetError,
)

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


#: Sample kinds used by :func:`mini_div2k`, and the samples it puts in the valid split.
MINI_KINDS = ("natural", "texture")
MINI_VALID = ("natural_coffee", "texture_gravel")

# Bump when the way mini_div2k builds its folder changes, so old caches are not reused.
_MINI_VERSION = 1

FIX_DOWNLOAD = "python -m edsr_lab download-div2k --root {root}"


# ----------------------------------------------------------------------------- helpers


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
