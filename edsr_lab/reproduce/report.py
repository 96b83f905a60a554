"""What both tables share: provenance (commit, device, versions, date, command), number
formatting, and writing the markdown file without ever replacing a file someone else wrote.
"""

from __future__ import annotations

import datetime
import math
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import edsr_lab
from edsr_lab import config
from edsr_lab.errors import OutputExistsError, OutputPathError
from edsr_lab.files import atomic_write

__all__ = [
    "CITATION",
    "Provenance",
    "check_replaceable",
    "device_name",
    "git_commit",
    "marker",
    "pair",
    "shown",
    "write_markdown",
]


#: The paper, as each table names it.
CITATION = (
    "Lim, Son, Kim, Nah, Lee, Enhanced Deep Residual Networks for Single Image "
    "Super-Resolution, CVPR Workshops 2017; arXiv 1707.02921"
)


def marker(what: str) -> str:
    """The first line of every table file: says who wrote it (and lets a rerun replace it)."""
    return (
        f"<!-- written by `python -m edsr_lab reproduce {what}`; "
        "rerunning the command rewrites this file -->"
    )


def git_commit(root: str | Path | None = None) -> str:
    """The commit of the checkout holding the package (``root``, default the project root),
    with "(with uncommitted changes)" when tracked files differ; a sentence when unknown."""
    root = Path(root) if root is not None else config.PROJECT_ROOT

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown (not a git checkout: an installed package?)"
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not installed)"
    dirty = " (with uncommitted changes)" if status.stdout.strip() else ""
    return head.stdout.strip() + dirty


def device_name(device: torch.device) -> str:
    """``NVIDIA H100 80GB HBM3 (cuda:0)``, or the CPU and its thread count."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    if device.type == "cpu":
        cpu = platform.processor() or platform.machine() or "CPU"
        return f"CPU {cpu}, {torch.get_num_threads()} torch threads"
    return str(device)


def _now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@dataclass
class Provenance:
    """Where a table's numbers came from: enough to rerun it and to doubt it.

    ``extra`` holds (label, text) lines a table adds (its data, updates, weights files).
    """

    command: str
    device: str
    started: str = field(default_factory=_now)
    commit: str = field(default_factory=git_commit)
    torch: str = torch.__version__
    package: str = edsr_lab.__version__
    python: str = platform.python_version()
    extra: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The markdown bullet list (the date is when the command started and finished)."""
        rows = [
            ("command", f"`{self.command}`"),
            ("git commit", self.commit),
            ("device", self.device),
            ("software", f"torch {self.torch}, edsr_lab {self.package}, Python {self.python}"),
            ("date", f"{self.started} to {_now()}"),
            *self.extra,
        ]
        return [f"- {label}: {text}" for label, text in rows]


def pair(psnr: float | None, ssim: float | None = None) -> str:
    """``38.11/0.9601`` (PSNR dB / SSIM); ``38.11`` without SSIM; ``-`` for nothing."""
    if psnr is None or (isinstance(psnr, float) and math.isnan(psnr)):
        return "-"
    if ssim is None or (isinstance(ssim, float) and math.isnan(ssim)):
        return f"{psnr:.2f}"
    return f"{psnr:.2f}/{ssim:.4f}"


def shown(path: str | Path) -> str:
    """A path as a reader should see it: relative to the working folder when inside it."""
    path = Path(path).expanduser().absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check_replaceable(path: str | Path, what: str) -> None:
    """OutputExistsError unless ``path`` is free or holds a table this command wrote."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{shown(path)} is a folder; the table is written to a file there")
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().rstrip("\n")
        if first != marker(what):
            raise OutputExistsError(
                f"{shown(path)} exists and was not written by `reproduce {what}`; it is never "
                "replaced: move it away or choose another --out"
            )


def write_markdown(path: str | Path, lines: Sequence[str], what: str) -> Path:
    """Write ``lines`` to ``path`` atomically, under :func:`marker` ``(what)``.

    A file already at ``path`` is replaced only when it starts with that marker (an earlier
    run of the same command wrote it); anything else is kept and OutputExistsError says so.
    """
    path = Path(path)
    check_replaceable(path, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([marker(what), *lines]) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)
    return path
