"""The small sample images bundled in ``data/samples/`` (all CC0 or public domain).

Every notebook runs on these when DIV2K is absent. A file's name says what it is:
``<kind>_<name>.png`` where kind is one of

    natural  RGB photographs (astronaut, cat, coffee, rocket, Hubble deep field)
    texture  8-bit grayscale textures with fine detail (brick, grass, gravel)
    medical  a retina fundus photo (RGB) and a quantitative phase image of a cell (gray)
    gray     an 8-bit grayscale photo
    gray16   a 16-bit grayscale image (Shepp-Logan head phantom)
    rgba     an RGBA photo with a synthetic alpha channel

``data/samples/README.md`` names the source, licence and any modification of each file.

    >>> from edsr_lab.data import samples
    >>> [p.name for p in samples.list_samples("gray16")]
    ['gray16_phantom.png']
    >>> samples.load_sample("natural_chelsea").shape   # float32 (3, H, W) in [0, 1]
    torch.Size([3, 300, 451])
"""

from __future__ import annotations

from pathlib import Path

import torch

from edsr_lab import config
from edsr_lab.errors import DatasetError
from edsr_lab.io import load_image

#: File types that count as sample images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _folder() -> Path:
    folder = config.samples_dir()
    if not folder.is_dir():
        raise DatasetError(
            f"the sample folder {str(folder)!r} is missing; it is part of the repository "
            "(data/samples/). Restore it with: git checkout -- data/samples"
        )
    return folder


def sample_kind(path: str | Path) -> str:
    """The kind of a sample: its file name up to the first underscore (``natural`` ...)."""
    return Path(path).stem.split("_", 1)[0]


def list_samples(kind: str | None = None) -> list[Path]:
    """All sample images, sorted by file name.

    Args:
        kind: keep only samples of this kind (``"natural"``, ``"texture"``, ``"medical"``,
            ``"gray"``, ``"gray16"``, ``"rgba"``): the part of the file name before the
            first ``_``. ``"gray"`` does not match ``gray16_*``.

    Returns:
        Sorted list of paths. Raises DatasetError when ``kind`` matches nothing (the
        message lists the kinds there are) or the folder is missing/empty.
    """
    files = sorted(
        p for p in _folder().iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DatasetError(
            f"no sample images in {str(_folder())!r}; restore them with: "
            "git checkout -- data/samples"
        )
    if kind is None:
        return files
    chosen = [p for p in files if sample_kind(p) == kind]
    if not chosen:
        kinds = sorted({sample_kind(p) for p in files})
        raise DatasetError(f"no sample of kind {kind!r}; the kinds are: {', '.join(kinds)}")
    return chosen


def sample_names(kind: str | None = None) -> list[str]:
    """The names (file names without suffix) of :func:`list_samples`."""
    return [p.stem for p in list_samples(kind)]


def sample_path(name: str) -> Path:
    """The path of one sample, by name with or without suffix (``"natural_chelsea"``).

    Raises DatasetError listing the available names when there is no such sample.
    """
    files = list_samples()
    wanted = Path(str(name)).name
    for p in files:
        if wanted in (p.name, p.stem):
            return p
    raise DatasetError(
        f"there is no sample called {name!r} in {str(_folder())!r}; "
        f"available: {', '.join(p.stem for p in files)}"
    )


def load_sample(name: str, channels: int = 3, **kwargs) -> torch.Tensor:
    """Load a sample image as float32 ``(channels, H, W)`` in [0, 1].

    Args:
        name: sample name, with or without suffix (see :func:`sample_names`).
        channels: 3 (RGB; gray images are repeated) or 1 (luminance).
        **kwargs: passed to :func:`edsr_lab.io.load_image` (e.g. ``alpha="drop"``).
    """
    return load_image(sample_path(name), channels=channels, **kwargs)
