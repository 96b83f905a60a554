"""Train on any folder of HR images: a fixed held-out split, LR made on the fly.

Your own data rarely comes in the DIV2K layout: it is a folder of high-resolution images
(retina photographs, histology tiles, CT slices exported as PNG). This module turns such a
folder into training and validation data the way the paper makes DIV2K's LR images:

* :func:`heldout_split` sets some images aside for validation. The choice depends only on
  the file *names* (ranked by a SHA-256 hash), so it is the same on every machine and run,
  and adding new images never moves an old training image into the held-out set unless
  the held-out count grows.
* :func:`load_folder_pairs` reads the HR images, crops them to a multiple of the scale
  (MATLAB ``modcrop``) and makes each LR with :func:`edsr_lab.resize.degrade` (MATLAB
  ``imresize(HR, 1/s, 'bicubic')``, 8-bit), as DIV2K's ``*_LR_bicubic`` files were made.

Images are returned as uint8 tensors (C, H, W) ready for
:class:`edsr_lab.data.patches.PatchSampler`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from edsr_lab.data.degradations import derived_seed, make_lr
from edsr_lab.data.make_dataset import source_images
from edsr_lab.errors import BadArgumentError, DatasetError
from edsr_lab.io import load_image
from edsr_lab.resize import degrade, modcrop

__all__ = ["heldout_split", "list_images", "load_folder_pairs"]

#: Default share of a folder's images held out for validation, and the cap on their number
#: (validation runs on whole images, so a few are enough to rank checkpoints).
HOLDOUT_FRACTION = 0.1
HOLDOUT_MAX = 10


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder`` (png, jpg, bmp, tif, webp), by name.

    Raises:
        DatasetError: the folder does not exist or holds no images.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"the image folder {str(folder)!r} does not exist (or is not a folder)")
    return source_images(folder)


def _rank(path: Path) -> str:
    return hashlib.sha256(path.name.encode("utf-8")).hexdigest()


def heldout_split(
    paths: Sequence[str | Path],
    fraction: float = HOLDOUT_FRACTION,
    *,
    max_heldout: int = HOLDOUT_MAX,
) -> tuple[list[Path], list[Path]]:
    """Split image files into (train, held-out), deterministically from their names.

    ``n_held = clamp(round(fraction * N), 1, max_heldout)`` (and at most N - 1): the
    images whose name has the smallest SHA-256 hash are held out. Both lists come back
    sorted by name.

    Raises:
        DatasetError: fewer than 2 images (one to train on, one to validate on).
        ValueError: fraction not in (0, 1) or max_heldout < 1.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise BadArgumentError(f"fraction must be between 0 and 1, got {fraction!r}")
    if isinstance(max_heldout, bool) or not isinstance(max_heldout, int) or max_heldout < 1:
        raise BadArgumentError(f"max_heldout must be a whole number >= 1, got {max_heldout!r}")
    paths = sorted((Path(p) for p in paths), key=lambda p: p.name)
    n = len(paths)
    if n < 2:
        raise DatasetError(
            f"need at least 2 images to train with a held-out split, found {n}; "
            "add images to the folder"
        )
    n_held = min(max(1, round(fraction * n)), max_heldout, n - 1)
    held = set(sorted(paths, key=_rank)[:n_held])
    return [p for p in paths if p not in held], [p for p in paths if p in held]


def load_folder_pairs(
    paths: Sequence[str | Path],
    scale: int,
    *,
    channels: int = 3,
    min_lr_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    degradation: str = "bicubic",
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Read HR image files and make their LR partners (MATLAB bicubic by default, 8-bit).

    Args:
        paths: HR image files (any size; each is modcropped to a multiple of ``scale``).
        scale: the SR factor s (whole number >= 2).
        channels: 3 (RGB; grey images are repeated) or 1.
        min_lr_size: refuse images whose LR would be smaller than this (e.g. the patch size).
        progress: optional ``progress(done, total)`` after each image.
        degradation, params: how LR is made (:func:`edsr_lab.data.degradations.make_lr`:
            ``"bicubic"``, ``"kspace"``, ``"ct"`` and their options).
        seed: the noise seed; each image's is
            :func:`~edsr_lab.data.degradations.derived_seed` of (seed, file name, scale),
            so the LR does not depend on the order or the folder the files are read from.

    Returns:
        ``(hr_images, lr_images)``: uint8 tensors (C, s*h, s*w) and (C, h, w). The HR is
        rounded to 8 bits *before* the LR is made, so LR == degrade(HR) for the HR exactly
        as stored (16-bit sources are trained on as 8-bit, like DIV2K).

    Raises:
        DatasetError: an image is too small (names the file and the minimum size).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise BadArgumentError(f"scale must be a whole number >= 2, got {scale!r}")
    hrs, lrs = [], []
    for i, path in enumerate(paths):
        hr = load_image(path, channels=channels)
        h, w = hr.shape[-2:]
        need = scale * max(1, int(min_lr_size))
        if h < need or w < need:
            raise DatasetError(
                f"{str(path)!r} is {h}x{w} pixels; at x{scale} each image must be at least "
                f"{need}x{need} (LR {min_lr_size}x{min_lr_size}); remove it or use a smaller "
                "--patch-size"
            )
        hr8 = torch.round(modcrop(hr, scale).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        if degradation == "bicubic" and not params:
            lr = degrade(hr8.float() / 255.0, scale)
        else:
            lr = make_lr(
                hr8.float() / 255.0, scale, degradation,
                seed=derived_seed(seed, Path(path).name, scale), **(params or {}),
            )  # fmt: skip
        hrs.append(hr8)
        lrs.append(torch.round(lr.clamp(0.0, 1.0) * 255.0).to(torch.uint8))
        if progress is not None:
            progress(i + 1, len(paths))
    return hrs, lrs
