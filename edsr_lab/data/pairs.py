"""One entry point for the notebooks' training data: DIV2K if you have it, else mini-DIV2K.

Every notebook that trains or validates calls :func:`training_pairs`, so the choice
"DIV2K or the bundled samples?" is made (and printed) in one place:

    >>> from edsr_lab.data import load_pairs, training_pairs
    >>> pairs = training_pairs(2)              # doctest: +SKIP
    data: mini-DIV2K x2 train, 6 images made from the bundled samples (data/samples) ...
    >>> hr, lr = load_pairs(pairs, scale=2)    # doctest: +SKIP

- **DIV2K** (``config.data_dir()/DIV2K``, the layout of :func:`edsr_lab.data.find_pairs`)
  is used in full mode when it is there: the 800 training images, and for validation the
  10 images 0801-0810 the paper's ablations report (Sec. 4.2, Table 2).
- **mini-DIV2K** (:func:`edsr_lab.data.mini_div2k`) is used otherwise, and always in quick
  mode: loading DIV2K's 800 HR images (~6 GB) alone takes longer than a quick notebook
  may run. Its train split is the natural and texture samples except ``natural_coffee``
  and ``texture_gravel``, which form its valid split (0801, 0802). The course weights
  (``scripts/train_course_weights.py``) are trained on the same split, so "valid" here is
  held out for them too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edsr_lab import config
from edsr_lab.errors import BadArgumentError, DatasetError

__all__ = [
    "DIV2K_ABLATION_VALID",
    "div2k_available",
    "training_pairs",
]

#: The DIV2K validation images of the paper's ablations (Table 2): 0801-0810.
DIV2K_ABLATION_VALID = range(801, 811)

#: Where :func:`training_pairs` looks for DIV2K, relative to ``config.data_dir()``.
DIV2K_DIRNAME = "DIV2K"


def div2k_available(scale: int, split: str = "train") -> bool:
    """True when ``config.data_dir()/DIV2K`` holds a complete ``split`` at ``scale``."""
    from edsr_lab.data.div2k import find_pairs

    try:
        find_pairs(config.data_dir() / DIV2K_DIRNAME, split, scale)
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
        source: ``"auto"`` (DIV2K in full mode when ``config.data_dir()/DIV2K`` has this
            split and scale, mini-DIV2K otherwise and always in quick mode), ``"div2k"``
            (DIV2K or a DatasetError saying how to get it) or ``"mini"``.
        indices: DIV2K image numbers to use; default all training images, and for
            ``"valid"`` the paper's 0801-0810. Ignored for mini-DIV2K (it has 6 + 2).
        verbose: print one line saying which data is used (and why).

    Returns:
        ``[(hr_path, lr_path), ...]`` sorted by name, ready for
        :func:`~edsr_lab.data.load_pairs` or ``PatchSampler.from_pairs``.

    Raises:
        DatasetError: ``source="div2k"`` and DIV2K is missing or incomplete (the message
            names the missing folder and the command that fetches it).
        BadArgumentError: an unknown ``source`` or ``split`` (a ``ValueError``).
    """
    from edsr_lab.data.div2k import find_pairs, mini_div2k

    if source not in ("auto", "div2k", "mini"):
        raise BadArgumentError(f"source={source!r}: use 'auto', 'div2k' or 'mini'")
    if split not in ("train", "valid"):
        raise BadArgumentError(f"split={split!r}: use 'train' or 'valid'")
    root = config.data_dir() / DIV2K_DIRNAME
    why = ""
    if source == "auto":
        if config.is_quick():
            use_div2k = False
            if div2k_available(scale, split):
                why = " (quick mode; DIV2K is found and used in full mode)"
        else:
            use_div2k = div2k_available(scale, split)
            if not use_div2k:
                why = (
                    f" (DIV2K x{scale} {split} not found in {str(root)!r}; fetch it with "
                    "python -m edsr_lab download-div2k)"
                )
    else:
        use_div2k = source == "div2k"

    if use_div2k:
        if indices is None and split == "valid":
            indices = DIV2K_ABLATION_VALID
        pairs = find_pairs(root, split, scale, indices=indices)
        if verbose:
            print(f"data: DIV2K x{scale} {split}, {len(pairs)} images from {str(root)!r}")
        return pairs

    pairs = find_pairs(mini_div2k(), split, scale)
    if verbose:
        print(
            f"data: mini-DIV2K x{scale} {split}, {len(pairs)} images made from the bundled "
            f"samples (data/samples){why}"
        )
    return pairs
