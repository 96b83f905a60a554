"""Downloading, shared by DIV2K, the benchmark sets and the pretrained weights.

* :func:`fetch` streams a URL to a file through ``<file>.part``, resumes a broken
  download with an HTTP ``Range`` request, shows a tqdm progress bar, and checks the
  result (length announced by the server, a known size, a full SHA-256 or the 8-hex-digit
  prefix that torch.hub-style file names carry) *before* the file gets its final name. A
  file that fails the check is moved aside (``<file>.corrupt``), never used.
* :func:`safe_extract` (from :mod:`edsr_lab.archives`, re-exported here) unpacks a zip or
  tar archive after checking every member.
* :func:`removing_new_dirs` undoes the folders a failed command created, so a download
  that fails leaves no empty folder behind.

Only ``http://`` and ``https://`` URLs are fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from edsr_lab.archives import MAX_RATIO, archive_names, safe_extract
from edsr_lab.errors import DownloadError

__all__ = [
    "MAX_RATIO",
    "archive_names",
    "check_url",
    "fetch",
    "move_aside",
    "removing_new_dirs",
    "safe_extract",
    "sha256_file",
    "verify",
]

#: ``progress(label, bytes_done, bytes_total_or_None)``; or True for a tqdm bar, None/False
#: for silence.
Progress = Callable[[str, int, "int | None"], None] | bool | None

_CHUNK = 1 << 20


def check_url(url: str, what: str = "URL") -> str:
    """Return ``url`` if it is http(s); else DownloadError naming what to pass."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DownloadError(
            f"{what} must start with http:// or https://, got {url!r} "
            "(for files on disk, copy them into place instead)"
        )
    return url


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file as 64 hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path, *, size: int | None = None, sha256: str | None = None) -> str | None:
    """Why ``path`` is not the expected file, or None when it is.

    Args:
        size: the exact size in bytes, if known.
        sha256: the full hex digest, or a prefix of it (torch.hub file names carry 8 hex
            digits, e.g. ``edsr_baseline_x2-1bc95232.pt``).
    """
    path = Path(path)
    have = path.stat().st_size
    if size is not None and have != size:
        return f"it is {have:,} bytes, expected {size:,}"
    if sha256:
        got = sha256_file(path)
        if not got.startswith(sha256.lower()):
            return f"its SHA-256 starts with {got[: len(sha256)]}, expected {sha256.lower()}"
    return None


def move_aside(path: Path, reason: str, *, quiet: bool = False) -> Path:
    """Rename a bad file to ``<name>.corrupt`` (replacing an older one) and say so on stderr
    (unless ``quiet``: the caller's error message says it)."""
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    if not quiet:
        print(f"{path.name}: {reason}; moved aside to {aside}", file=sys.stderr)
    return aside


class _Bar:
    """Adapts ``progress`` (True, None/False or a callable) to update(done, total)."""

    def __init__(self, progress: Progress, label: str):
        self.label, self.bar = label, None
        self.fn = progress if callable(progress) else None
        self.enabled = bool(progress)

    def update(self, done: int, total: int | None) -> None:
        if self.fn is not None:
            self.fn(self.label, done, total)
        elif self.enabled:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=self.label, leave=True,
                )  # fmt: skip
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: Progress = True,
    label: str | None = None,
    timeout: float = 60.0,
    fix: str = "",
) -> Path:
    """Download ``url`` to ``dest``, resumably, and check it before giving it its name.

    If ``dest`` exists and passes the checks, nothing is fetched (offline use once
    downloaded). If it exists but fails them, it is moved aside (``.corrupt``) and fetched
    again. The download streams to ``dest.part``; a rerun after a broken connection
    continues from where it stopped (HTTP Range; a server that ignores Range restarts it).

    Args:
        url: an http(s) URL.
        dest: the file to create (its folder is created).
        size, sha256: expected size / SHA-256 (full or prefix); see :func:`verify`. The
            length the server announces is always checked.
        progress: True for a tqdm bar, a callable ``progress(label, done, total)``, or None.
        label: the name shown by the progress bar (default: the file name).
        timeout: seconds to wait for the server on each connection.
        fix: a sentence appended to error messages (e.g. how to fetch the file by hand).

    Returns:
        ``Path(dest)``.

    Raises:
        DownloadError: HTTP error, no connection, broken-off transfer (rerun to resume),
            or a file that fails the checks (moved aside to ``dest.corrupt``).
    """
    check_url(url)
    dest = Path(dest)
    fix = f" {fix}" if fix else ""
    if dest.exists():
        problem = verify(dest, size=size, sha256=sha256)
        if problem is None:
            return dest
        move_aside(dest, problem)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    bar = _Bar(progress, label or dest.name)
    try:
        _stream(url, partial, bar, timeout, fix)
    finally:
        bar.close()
    if size is not None and partial.stat().st_size > size:
        partial.unlink()  # a longer file cannot be resumed into the right one
    problem = verify(partial, size=size, sha256=sha256)
    if problem is not None:
        aside = move_aside(partial, problem)
        raise DownloadError(
            f"the file downloaded from {url} is not the expected one: {problem}. It was moved "
            f"aside to {str(aside)!r} and will not be used; run the command again, or use "
            f"another mirror.{fix}"
        )
    os.replace(partial, dest)
    return dest


def _stream(url: str, partial: Path, bar: _Bar, timeout: float, fix: str) -> None:
    """Append ``url`` to ``partial`` from its current size (HTTP Range)."""
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "edsr-lab"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http checked)
    except urllib.error.HTTPError as err:
        if err.code == 416 and done:  # our .part is already full length (or bogus): restart
            partial.unlink()
            return _stream(url, partial, bar, timeout, fix)
        raise DownloadError(
            f"downloading {url} failed: HTTP {err.code} {err.reason}.{fix}"
        ) from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"cannot download {url}: {reason}. Check your internet connection or the URL.{fix}"
        ) from err
    with response:
        if done and response.status == 206:
            mode = "ab"
        else:  # the server ignored the Range header: start over
            mode, done = "wb", 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None and length.isdigit() else None
        bar.update(done, total)
        try:
            with open(partial, mode) as f:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(done, total)
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(
                f"the download of {url} broke off after {done:,} bytes ({err}); run the same "
                "command again to resume it"
            ) from err
    if total is not None and done != total:
        raise DownloadError(
            f"the download of {url} is incomplete ({done:,} of {total:,} bytes); run the same "
            "command again to resume it"
        )
    return None


# ------------------------------------------------------------------------------ folders


@contextlib.contextmanager
def removing_new_dirs(path: str | Path) -> Iterator[Path]:
    """Create ``path`` (and parents); if the block fails, remove those that are still empty.

    A folder that holds something (e.g. a ``.part`` file to resume from) is kept.
    """
    path = Path(path).expanduser()
    new = []
    p = path
    while not p.exists() and p != p.parent:
        new.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in new:  # deepest first
            try:
                d.rmdir()  # only succeeds when empty
            except OSError:
                break
        raise
