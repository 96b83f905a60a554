"""Pretrained weights by name: the official EDSR-PyTorch files and the course's own.

Official files (Lim et al. 2017; trained by the authors on DIV2K, served from the model
zoo at ``https://cv.snu.ac.kr/research/EDSR/models/``) follow the torch.hub convention:
the file name carries the first 8 hex digits of the file's SHA-256
(``edsr_baseline_x2-1bc95232.pt``), which is checked after every download and before
every load::

    edsr_baseline_x2 / _x3 / _x4   EDSR baseline (16 blocks, 64 features), ~6 MB each
    edsr_x2 / edsr_x3 / edsr_x4    EDSR (32 blocks, 256 features), ~160 MB each
    mdsr_baseline                  MDSR baseline, scales 2, 3, 4
    mdsr                           MDSR (80 blocks), scales 2, 3, 4

Course weights (``course_*``) are small models trained by ``scripts/train_course_weights.py``
and committed under ``data/course_weights/`` with a ``manifest.json`` that records each
file's full SHA-256 and how it was trained; they need no download.

Downloads go to the cache, ``data/cache/weights`` (:func:`edsr_lab.config.cache_dir`;
``EDSR_LAB_CACHE=DIR`` moves it to ``DIR/weights``). Once a file is there and passes its
hash check, nothing is fetched again: loading works offline. A file that fails
the check is moved aside (``<name>.corrupt``) and never loaded.

    >>> model = load_pretrained("edsr_baseline_x2")          # doctest: +SKIP
    $ python -m edsr_lab download-weights edsr_x4 [--base-url https://my.mirror/models/]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edsr_lab import config, download
from edsr_lab.errors import BadArgumentTypeError, CheckpointError, did_you_mean
from edsr_lab.losses import PAPER_LOSS

__all__ = [
    "COURSE_DIR",
    "OFFICIAL",
    "OFFICIAL_BASE_URL",
    "WeightsInfo",
    "course_dir",
    "course_weights",
    "download_weights",
    "get",
    "load_model",
    "load_pretrained",
    "registry",
    "suggest_for_scale",
    "weights_dir",
]

# _TORCH_FREE: this module imports torch (through edsr_lab.models) only inside the functions
# that build models, so `python -m edsr_lab download-weights --list` answers at once.

#: The official model zoo (EDSR-PyTorch's ``src/model/edsr.py`` and ``mdsr.py`` URLs).
OFFICIAL_BASE_URL = "https://cv.snu.ac.kr/research/EDSR/models/"

#: Where the course's committed weights and their manifest live
#: (``EDSR_LAB_COURSE_WEIGHTS=DIR`` points elsewhere, e.g. to freshly trained ones).
COURSE_DIR = config.PROJECT_ROOT / "data" / "course_weights"


def course_dir() -> Path:
    """``$EDSR_LAB_COURSE_WEIGHTS`` if set, else ``COURSE_DIR`` (``data/course_weights``)."""
    env = os.environ.get("EDSR_LAB_COURSE_WEIGHTS")
    return Path(env).expanduser() if env else COURSE_DIR


@dataclass(frozen=True)
class WeightsInfo:
    """One named set of weights.

    Attributes:
        name: the registry name (``edsr_baseline_x2``, ``course_edsr_baseline_x2``).
        file: the file name (official: with the SHA-256 prefix).
        sha256: the expected SHA-256: 8 hex digits (official) or all 64 (course).
        arch: ``"EDSR"``, ``"MDSR"`` or ``"SRResNet"``.
        scales: the scales the model upscales by.
        paper: the paper's row name for these weights (see :mod:`edsr_lab.paper`), or None.
        url: the download URL (None for course weights, which are local files).
        info: extra manifest fields (course weights: steps, data, held-out PSNR ...).
    """

    name: str
    file: str
    sha256: str
    arch: str
    scales: tuple[int, ...]
    paper: str | None = None
    url: str | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def official(self) -> bool:
        return self.url is not None


def _official(name: str, sha: str, arch: str, scales: tuple[int, ...], paper: str) -> WeightsInfo:
    file = f"{name}-{sha}.pt"
    return WeightsInfo(name, file, sha, arch, scales, paper, OFFICIAL_BASE_URL + file)


#: The official EDSR-PyTorch files, by name.
OFFICIAL: dict[str, WeightsInfo] = {
    w.name: w
    for w in (
        _official("edsr_baseline_x2", "1bc95232", "EDSR", (2,), "EDSR baseline"),
        _official("edsr_baseline_x3", "abf2a44e", "EDSR", (3,), "EDSR baseline"),
        _official("edsr_baseline_x4", "6b446fab", "EDSR", (4,), "EDSR baseline"),
        _official("edsr_x2", "0edfb8a3", "EDSR", (2,), "EDSR"),
        _official("edsr_x3", "ea3ef2c6", "EDSR", (3,), "EDSR"),
        _official("edsr_x4", "4f62e9ef", "EDSR", (4,), "EDSR"),
        _official("mdsr_baseline", "a00cab12", "MDSR", (2, 3, 4), "MDSR baseline"),
        _official("mdsr", "4a78bedf", "MDSR", (2, 3, 4), "MDSR"),
    )
}

#: The most bytes a weights download may bring (the largest official file, edsr_x4, is
#: about 170 MB): a longer body is the wrong file or an endless one, refused before it
#: fills the cache.
MAX_WEIGHTS_BYTES = 2**30

_PAPER_ROWS = {"edsr_baseline": "EDSR baseline", "edsr": "EDSR", "mdsr_baseline": "MDSR baseline"}


def weights_dir() -> Path:
    """Where downloaded weights go: ``config.cache_dir()/weights`` (``data/cache/weights``;
    ``EDSR_LAB_CACHE=DIR`` moves it to ``DIR/weights``)."""
    return config.cache_dir() / "weights"


def course_weights(folder: str | Path | None = None) -> dict[str, WeightsInfo]:
    """The course weights listed in ``folder/manifest.json`` (default :func:`course_dir`).

    Returns {} when there is no manifest. Raises CheckpointError for a manifest that is
    not the expected JSON (``{"format": 1, "weights": {name: {"file", "sha256", ...}}}``).
    """
    folder = Path(folder) if folder is not None else course_dir()
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
        entries = manifest["weights"]
        out = {}
        for name, e in entries.items():
            scale = e.get("scale", 2)
            scales = tuple(int(s) for s in (scale if isinstance(scale, list) else [scale]))
            arch = {"edsr": "EDSR", "mdsr": "MDSR", "srresnet": "SRResNet"}.get(
                str(e.get("arch", "edsr")).lower(), str(e.get("arch"))
            )
            out[name] = WeightsInfo(
                name=name,
                file=str(folder / e["file"]),
                sha256=str(e["sha256"]).lower(),
                arch=arch,
                scales=scales,
                paper=_PAPER_ROWS.get(str(e.get("preset")))
                if e.get("loss", PAPER_LOSS) == PAPER_LOSS  # paper rows assume its loss
                else None,
                info=dict(e),
            )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(
            f"the course weights manifest {str(path)!r} is not valid ({type(err).__name__}: "
            f"{err}); restore it with: git checkout -- {path.parent.name}/manifest.json"
        ) from err
    return out


def registry() -> dict[str, WeightsInfo]:
    """Every known name: the official files, then the course weights."""
    return {**OFFICIAL, **course_weights()}


def get(name: str) -> WeightsInfo:
    """The entry for ``name``; CheckpointError naming close and known names otherwise."""
    known = registry()
    if name not in known:
        raise CheckpointError(
            f"no pretrained weights named {name!r}; {did_you_mean(name, known)}known: "
            f"{', '.join(known)} (or pass a checkpoint file path instead)"
        )
    return known[name]


def _origin(info: WeightsInfo) -> str:
    return "official" if info.official else "course"


def _same_kind(model: Any) -> tuple[str | None, str | None, str | None]:
    """(origin, preset, loss) of a loaded model, as far as it says: its ``weights_info``
    (set by :func:`load_pretrained`) or else its registry preset."""
    from edsr_lab.models.registry import preset_of  # here: see _TORCH_FREE

    info = getattr(model, "weights_info", None)
    if isinstance(info, WeightsInfo):
        if info.official:
            preset = {v: k for k, v in _PAPER_ROWS.items()}.get(info.paper or "")
            return "official", preset, PAPER_LOSS
        return "course", info.info.get("preset"), info.info.get("loss", PAPER_LOSS)
    return None, preset_of(model), None


def suggest_for_scale(model: Any, scale: int) -> str:
    """What to load instead of ``model`` to upscale by ``scale``: a sentence naming
    ``--weights`` for that scale, weights already here (course weights) before downloads.

    Weights of the same kind come first (course weights for a course model, the official
    file for an official model), matched by preset (and loss); weights that are here say
    so, downloads say so. Used as the ``fix`` of :func:`edsr_lab.inference.resolve_scale`,
    e.g. for ``evaluate --weights course_edsr_baseline_x2 --scale 4``.
    """
    origin, preset, loss = _same_kind(model)
    found: list[tuple[bool, WeightsInfo]] = []  # (already here, entry)
    for info in registry().values():
        if scale not in info.scales:
            continue
        if info.official:
            row = _PAPER_ROWS.get(preset or "")
            if row is not None and info.paper == row and loss in (None, PAPER_LOSS):
                found.append(((weights_dir() / info.file).is_file(), info))
        elif info.info.get("preset") == preset and loss in (None, info.info.get("loss")):
            found.append((Path(info.file).is_file(), info))
    if not found:
        return (
            f"use weights trained for x{scale} (python -m edsr_lab download-weights --list "
            "shows the known ones) or a checkpoint of yours"
        )
    # the same origin first, then what is already here
    found.sort(key=lambda f: (_origin(f[1]) != origin, not f[0], not f[1].official))
    parts = []
    for here, info in found[:2]:
        what = (
            "the official x{s} weights, already downloaded" if info.official and here
            else "the official x{s} weights, downloaded once" if info.official
            else "course weights for x{s}, already here, no download" if here
            else "course weights for x{s}, missing: git checkout -- data/course_weights"
        ).format(s=scale)  # fmt: skip
        parts.append(f"--weights {info.name} ({what})")
    return "use " + " or ".join(parts)


def _mirror_url(info: WeightsInfo, base_url: str | None) -> str:
    """The official URL, or the same file name under ``base_url`` (a mirror folder)."""
    if base_url is None:
        return info.url  # type: ignore[return-value]
    download.check_url(base_url, "--base-url")
    return base_url.rstrip("/") + "/" + info.file


def download_weights(
    name: str,
    *,
    base_url: str | None = None,
    progress: download.Progress = True,
    timeout: float = 60.0,
) -> Path:
    """Make the weights ``name`` available locally and checked; return their path.

    Official files are fetched (resumably, with a progress bar) into
    ``config.cache_dir()/weights`` unless already there; ``base_url`` replaces the folder part of
    the URL (a mirror holding the same file names). Course weights are local files; their
    full SHA-256 is checked.

    Raises:
        CheckpointError: unknown name, or a course file that does not match its manifest.
        DownloadError: the download failed, or the file does not carry the SHA-256 its
            name promises (it is then moved aside as ``.corrupt`` and never used).
    """
    info = get(name)
    if not info.official:
        path = Path(info.file)
        if not path.is_file():
            raise CheckpointError(
                f"the course weights {name!r} are listed in the manifest but {str(path)!r} is "
                "missing; restore it with: git checkout -- data/course_weights"
            )
        problem = download.verify(path, sha256=info.sha256)
        if problem is not None:
            raise CheckpointError(
                f"the course weights file {str(path)!r} does not match its manifest: "
                f"{problem}; it will not be loaded. Restore it with: git checkout -- "
                "data/course_weights (or regenerate with scripts/train_course_weights.py)"
            )
        return path
    url = _mirror_url(info, base_url)
    folder = weights_dir()
    with download.removing_new_dirs(folder):
        return download.fetch(
            url, folder / info.file, sha256=info.sha256, max_size=MAX_WEIGHTS_BYTES,
            progress=progress, label=info.file, timeout=timeout,
            fix=f"Or download {info.file} by hand (e.g. from {info.url}) into {str(folder)!r}.",
        )  # fmt: skip


def load_pretrained(
    name: str,
    *,
    base_url: str | None = None,
    map_location: Any = "cpu",
    progress: download.Progress = True,
) -> Any:
    """The model ``name`` with its pretrained weights, float32, in eval mode.

    Fetches the file first if needed (:func:`download_weights`); official files are built
    by :func:`edsr_lab.models.load_official`, course files by
    :func:`edsr_lab.models.load_checkpoint`. The model gets a ``weights_info`` attribute
    (the :class:`WeightsInfo`), which ``evaluate`` uses to find the paper's numbers.
    """
    from edsr_lab.models import load_checkpoint, load_official  # here: see _TORCH_FREE

    info = get(name)
    path = download_weights(name, base_url=base_url, progress=progress)
    if info.official:
        model = load_official(path, map_location=map_location)
    else:
        model = load_checkpoint(path, map_location=map_location)
    model = model.float().eval()
    model.weights_info = info
    return model


def load_model(name_or_path: str | Path, *, map_location: Any = "cpu", **kwargs: Any) -> Any:
    """A model from a checkpoint file or a registry name (:func:`load_pretrained`).

    Files: our format and official EDSR-PyTorch files via
    :func:`edsr_lab.models.load_checkpoint`; BasicSR EDSR files via
    :func:`edsr_lab.models.load_official`, which converts them. An existing file wins over
    a registry name spelled the same. For ``--checkpoint`` / ``--init`` style options that
    accept either. Returns a float32 model in eval mode.

    Raises:
        CheckpointError: a missing file or unknown name (a name-like text without a
            folder or suffix gets the registry's closest names), or an unreadable file.
    """
    from edsr_lab.models import load_checkpoint, load_official  # here: see _TORCH_FREE
    from edsr_lab.models.checkpoints import read_state_dict
    from edsr_lab.models.convert import is_basicsr_edsr

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise BadArgumentTypeError(
            f"load_model: expected a checkpoint path or a weights name, got "
            f"{type(name_or_path).__name__} {name_or_path!r}"
        )
    if not str(name_or_path).strip():
        raise CheckpointError(
            f"--checkpoint {name_or_path!r}: give a checkpoint file or a weights name "
            f"(python -m edsr_lab download-weights --list)"
        )
    path = Path(name_or_path).expanduser()
    text, known = str(name_or_path), registry()
    is_name = not isinstance(name_or_path, Path) and text in known
    if is_name and not path.is_file():
        return load_pretrained(text, map_location=map_location, **kwargs)
    looks_like_name = "/" not in text and os.sep not in text and not Path(text).suffix
    if looks_like_name and not isinstance(name_or_path, Path) and not path.exists():
        raise CheckpointError(
            f"{text!r} is neither a checkpoint file nor a weights name; "
            f"{did_you_mean(text, known)}known names: {', '.join(known)} (python -m edsr_lab "
            f"download-weights --list); or give the path of a checkpoint file (working "
            f"directory: {os.getcwd()})"
        )
    try:
        model = load_checkpoint(path, map_location=map_location)
    except CheckpointError:
        if not path.is_file() or path.suffix == ".safetensors":
            raise
        sd, _ = read_state_dict(path)  # raises the same clear errors
        if not is_basicsr_edsr(sd):
            raise
        model = load_official(sd, map_location=map_location)
    return model.float().eval()
