"""The benchmark sets of the paper's Table 3 (Set5, Set14, B100, Urban100) and DIV2K valid.

Layout (the one EDSR-PyTorch reads and its ``benchmark.tar`` unpacks to)::

    data/benchmark/
      Set5/HR/baby.png ...                 (Set14, B100, Urban100 alike)
      Set5/LR_bicubic/X2/babyx2.png ...    (also X3/, X4/)

DIV2K validation (0801-0900) uses the DIV2K layout of :mod:`edsr_lab.data.div2k`
(``python -m edsr_lab download-div2k --parts valid_HR valid_LR_bicubic_X2 ...``).

* :func:`download_benchmarks` fetches the archive the official project publishes
  (``BENCHMARK_URL``, about 250 MB) through :mod:`edsr_lab.download`: resumable, progress
  bar, length checked (and a SHA-256 if you pass one: the host publishes none), the four
  sets' HR folders checked to be in it, extracted safely (only the sets' folders; a
  damaged archive leaves nothing half-extracted and is fetched again by a rerun).
* :func:`eval_pairs` lists a data set's images as ``(name, hr_path, lr_path or None)``,
  checking the layout with messages that say what is missing and the command that fixes
  it; where an LR folder is missing, ``lr_path`` is None and :func:`load_eval_pair` makes
  the LR with the MATLAB-compatible bicubic (:func:`edsr_lab.resize.degrade`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import torch

from edsr_lab import config, download
from edsr_lab.data.layout import SOURCE_SUFFIXES
from edsr_lab.errors import ArchiveError, DatasetError

__all__ = [
    "BENCHMARK_SETS",
    "BENCHMARK_URL",
    "SET_SIZES",
    "benchmark_dir",
    "download_benchmarks",
    "eval_pairs",
    "load_eval_pair",
]

#: The benchmark archive of the official EDSR-PyTorch project (its README links it).
BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"

#: ``--data`` keys of the benchmark sets -> folder names, and their sizes (images).
BENCHMARK_SETS = {"set5": "Set5", "set14": "Set14", "b100": "B100", "urban100": "Urban100"}
SET_SIZES = {"set5": 5, "set14": 14, "b100": 100, "urban100": 100, "div2k-valid": 100}

#: Image files accepted in a folder given as ``--data``: the same as a DIV2K source folder's.
IMAGE_SUFFIXES = SOURCE_SUFFIXES

FIX_BENCHMARKS = "python -m edsr_lab download-benchmarks"

#: The most bytes the benchmark archive may have (it has about 250 MB): a longer body is
#: the wrong file or an endless one, and is refused before it fills the disk.
MAX_ARCHIVE_BYTES = 2**30


def benchmark_dir(root: str | Path | None = None) -> Path:
    """The folder holding ``Set5/`` etc.: ``root/benchmark`` (default ``data/benchmark``)."""
    base = Path(root).expanduser() if root is not None else config.data_dir()
    return base if base.name == "benchmark" else base / "benchmark"


def _expected_tree(folder: str, scale: int) -> str:
    return (
        f"  benchmark/{folder}/HR/<name>.png ...\n"
        f"  benchmark/{folder}/LR_bicubic/X{scale}/<name>x{scale}.png ...  (optional: made "
        "with MATLAB bicubic when missing)"
    )


def _fetch_command(root: str | Path | None, url: str, sha256: str | None) -> str:
    """The command that downloads the archive again, with the options this call used."""
    parts = [FIX_BENCHMARKS]
    if root is not None:
        parts += ["--root", shlex.quote(str(root))]
    if url != BENCHMARK_URL:
        parts += ["--url", shlex.quote(url)]
    if sha256:
        parts += ["--sha256", shlex.quote(sha256)]
    return " ".join(parts)


def download_benchmarks(
    root: str | Path | None = None,
    *,
    url: str = BENCHMARK_URL,
    sha256: str | None = None,
    progress: download.Progress = True,
    keep_archive: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download and unpack the benchmark sets into ``root/benchmark`` (default ``data/``).

    Skips the work when all four sets are already there (marker ``benchmark/.done`` and
    an HR folder per set). The archive streams to ``benchmark.tar.part`` (a rerun resumes
    it; at most ``MAX_ARCHIVE_BYTES``), is checked (length; ``sha256`` if given, also for
    a ``benchmark.tar`` already there, which is moved aside and fetched again from ``url``
    when it fails; the four ``<Set>/HR/*.png`` folders are present; safe to extract) and
    is deleted after extraction unless ``keep_archive``. Only the four sets' folders
    (``benchmark/Set5/`` ...) are extracted: anything else in the archive is skipped and
    listed, so it can never replace other files of the data folder. The extraction
    happens in a staging folder and is moved into place only when the whole archive read
    without error. A damaged or wrong archive is moved aside as ``benchmark.tar.corrupt``
    (a rerun fetches it again) and the error says the command to run. If the first
    download fails, no empty folder is left behind.

    Returns:
        The ``benchmark`` folder.

    Raises:
        DownloadError: the server could not be reached, the transfer broke off or stalled
            (run again to resume), or the file fails its checks.
        ArchiveError: the archive is damaged, unsafe, or lacks a set.
    """
    download.check_url(url, "url")
    bench = benchmark_dir(root)
    parent = bench.parent
    marker = bench / ".done"
    folders = list(BENCHMARK_SETS.values())
    if marker.is_file() and all(any((bench / f / "HR").glob("*.png")) for f in folders):
        return bench
    again = _fetch_command(root, url, sha256)
    with download.removing_new_dirs(parent):
        archive = parent / "benchmark.tar"
        # Also for an archive already there: it is checked against sha256 (when given).
        download.fetch(
            url, archive, sha256=sha256, max_size=MAX_ARCHIVE_BYTES, progress=progress,
            label="benchmark.tar", timeout=timeout,
            fix=f"Or download {url} by hand into {str(parent)!r} and run the command again.",
        )  # fmt: skip
        try:
            download.safe_extract(
                archive,
                parent,
                expect=[f"benchmark/{f}/HR/*.png" for f in folders],
                only=[f"benchmark/{f}" for f in folders],
                what=archive.name,
                fix=f"fetch it again with: {again}",
            )
        except ArchiveError as err:
            aside = download.move_aside(archive, "not a usable benchmark archive", quiet=True)
            raise ArchiveError(f"{err} (the file was moved aside to {aside.name})") from err
        marker.write_text("extracted\n")
        if not keep_archive:
            archive.unlink()
    return bench


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def eval_pairs(
    data: str | Path, scale: int, *, root: str | Path | None = None
) -> list[tuple[str, Path, Path | None]]:
    """The images of a data set for evaluation: ``[(name, hr_path, lr_path or None)]``.

    Args:
        data: ``"set5"``, ``"set14"``, ``"b100"``, ``"urban100"`` (under
            ``benchmark_dir(root)``), ``"div2k-valid"`` (DIV2K 0801-0900 under
            ``data/DIV2K``, or ``root``), a folder in the official benchmark layout
            (``HR/`` and ``LR_bicubic/X<scale>/``, e.g. your own copy of ``Set5``; its LR
            images are used), or a folder of HR images (any names; their LR is made with
            MATLAB bicubic).
        scale: 2, 3 or 4 (any integer >= 2 for folders and missing LR folders).
        root: where the data lives (default: ``config.data_dir()``).

    Raises:
        DatasetError: the set or folder is missing or empty, or an LR file is missing from
            an LR folder that exists (the message shows the layout and the fix).
    """
    from edsr_lab.data import div2k

    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise DatasetError(f"scale must be a whole number >= 2, got {scale!r}")
    key = str(data).lower()
    if key == "div2k-valid":
        base = Path(root).expanduser() if root is not None else config.data_dir()
        pairs = div2k.find_pairs(base, split="valid", scale=scale)  # base or base/DIV2K
        return [(hr.stem, hr, lr) for hr, lr in pairs]
    if key in BENCHMARK_SETS:
        bench = benchmark_dir(root)
        folder = BENCHMARK_SETS[key]
        fix = FIX_BENCHMARKS + (f" --root {str(bench.parent)!r}" if root is not None else "")
        hr_dir = bench / folder / "HR"
        if not hr_dir.is_dir() or not _images(hr_dir):
            state = "is empty" if hr_dir.is_dir() else "does not exist"
            raise DatasetError(
                f"{folder} not found: {str(hr_dir)!r} {state}. Expected layout:\n"
                f"{_expected_tree(folder, scale)}\nGet the benchmark sets with: {fix}"
            )
        return _set_pairs(bench / folder, scale, folder, f"run: {fix}")
    folder = Path(data).expanduser()
    if not folder.is_dir():
        known = ", ".join([*BENCHMARK_SETS, "div2k-valid"])
        raise DatasetError(
            f"--data {str(data)!r} is neither a known data set ({known}) nor a folder of HR images"
        )
    if (folder / "HR").is_dir() and _images(folder / "HR"):
        # the official benchmark layout: <set>/HR/*.png and <set>/LR_bicubic/X<s>/*x<s>.png
        return _set_pairs(folder, scale, str(folder), "give its HR folder alone")
    files = _images(folder)
    if not files:
        raise DatasetError(
            f"the folder {str(folder)!r} holds no images (looked for "
            f"{', '.join(IMAGE_SUFFIXES)}); give a folder of HR images, or one in the official "
            f"benchmark layout ({folder.name}/HR/<name>.png and, optionally, "
            f"{folder.name}/LR_bicubic/X{scale}/<name>x{scale}.png)"
        )
    return [(p.stem, p, None) for p in files]


def _set_pairs(
    set_dir: Path, scale: int, name: str, fix: str
) -> list[tuple[str, Path, Path | None]]:
    """``(name, hr, lr or None)`` of a set in the official layout (``set_dir/HR``, optional
    ``set_dir/LR_bicubic/X<scale>`` with ``<name>x<scale>.<ext>``); LR None without that folder."""
    lr_dir = set_dir / "LR_bicubic" / f"X{scale}"
    out = []
    for hr in _images(set_dir / "HR"):
        lr = lr_dir / f"{hr.stem}x{scale}{hr.suffix}" if lr_dir.is_dir() else None
        if lr is not None and not lr.is_file():
            raise DatasetError(
                f"{name}: the LR image {str(lr)!r} of {str(hr)!r} is missing (the folder "
                f"{str(lr_dir)!r} exists but is incomplete). Delete that folder to have the "
                f"LR images made with MATLAB bicubic, or {fix}"
            )
        out.append((hr.stem, hr, lr))
    return out


def load_eval_pair(
    hr_path: str | Path, lr_path: str | Path | None, scale: int, channels: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an (HR, LR) pair for scoring: float (C, H, W) and (C, H/s, W/s) in [0, 1].

    With an LR file, the HR is cropped (top-left kept) to exactly ``scale`` times the LR,
    as the official test code does (benchmark HR sizes are not all multiples of the
    scale). Without one, the HR is cropped to a multiple of ``scale`` (MATLAB's
    ``modcrop``) and the LR is made with :func:`edsr_lab.resize.degrade` (MATLAB bicubic,
    rounded to 8 bits, like the published LR files).
    """
    from edsr_lab.io import load_image
    from edsr_lab.resize import degrade, modcrop

    hr = load_image(hr_path, channels=channels)
    if lr_path is None:
        hr = modcrop(hr, scale)
        if min(hr.shape[-2:]) < scale:
            raise DatasetError(f"{str(hr_path)!r} is smaller than {scale}x{scale} pixels")
        return hr, degrade(hr, scale)
    lr = load_image(lr_path, channels=channels)
    (hh, hw), (lh, lw) = hr.shape[-2:], lr.shape[-2:]
    if hh < lh * scale or hw < lw * scale or hh >= (lh + 1) * scale or hw >= (lw + 1) * scale:
        raise DatasetError(
            f"HR {str(hr_path)!r} is {hh}x{hw} but its LR {str(lr_path)!r} is {lh}x{lw}; "
            f"at x{scale} the HR should be {lh * scale}x{lw * scale} (up to {scale - 1} more). "
            "Is the LR folder for another scale? Delete it to have the LR made from the HR."
        )
    return hr[..., : lh * scale, : lw * scale], lr
