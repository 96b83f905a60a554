"""The DIV2K folder layout's names, shared by reading it (:mod:`edsr_lab.data.div2k`) and
making it (:mod:`edsr_lab.data.make_dataset`).

``DIV2K_{split}_HR/0001.png`` beside ``DIV2K_{split}_LR_{track}/X{s}/0001x{s}.png``; the
track is ``bicubic`` (the paper's), ``unknown`` (NTIRE's) or the name of a degradation
written by ``make-dataset --degradation``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from edsr_lab.errors import BadArgumentError

__all__ = [
    "SOURCE_SUFFIXES",
    "check_scales",
    "check_split",
    "expected_tree",
    "hr_dirname",
    "lr_dirname",
    "lr_filename",
]

#: Image files :func:`~edsr_lab.data.make_dataset.make_div2k_layout` accepts as sources.
SOURCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def check_scales(scales: int | Iterable[int]) -> tuple[int, ...]:
    """Whole scales >= 2, sorted, without repeats (one int or several)."""
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


def check_split(split: str) -> str:
    """A split name: one word (``train``, ``valid``, yours)."""
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
