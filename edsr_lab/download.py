"""Downloading and unpacking, shared by DIV2K, the benchmark sets and the pretrained weights.

Three jobs, each done once here so every dataset and weight file gets the same care:

* :func:`fetch` streams a URL to a file through ``<file>.part``, resumes a broken
  download with an HTTP ``Range`` request, shows a tqdm progress bar, and checks the
  result (length announced by the server, a known size, a full SHA-256 or the 8-hex-digit
  prefix that torch.hub-style file names carry) *before* the file gets its final name. A
  file that fails the check is moved aside (``<file>.corrupt``), never used.
* :func:`safe_extract` unpacks a zip or tar archive after checking every member: no
  absolute paths, ``..``, links or device files; no Deflate64/encrypted members or names
  too long for the file system (each reported in one line); no archive bombs (the
  declared sizes are checked first, and bytes are counted while writing, because a zip's
  header can lie); optionally the files that must be present (``expect``). Files appear
  under their final names only when complete.
* :func:`removing_new_dirs` undoes the folders a failed command created, so a download
  that fails leaves no empty folder behind.

Only ``http://`` and ``https://`` URLs are fetched.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import http.client
import os
import stat
import sys
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from edsr_lab.errors import ArchiveError, DownloadError

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

#: An archive may expand to at most this many times its own size (plus ``_MIN_BUDGET``):
#: images barely compress (PNG ~1x), so a 2 MB zip claiming 2 GiB is refused.
MAX_RATIO = 100
_MIN_BUDGET = 64 * 2**20
# Longest file name component and path most file systems accept (bytes, UTF-8).
_NAME_MAX, _PATH_MAX = 255, 4096
_CHUNK = 1 << 20
# zipfile can decompress these: stored, deflate, bzip2, lzma. Type 9 is Deflate64.
_ZIP_METHODS = {0, 8, 12, 14}


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


def move_aside(path: Path, reason: str) -> Path:
    """Rename a bad file to ``<name>.corrupt`` (replacing an older one) and say so on stderr."""
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
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


# ---------------------------------------------------------------------------- archives


def _name_problem(name: str) -> str | None:
    """Why an archive member name must not be extracted, or None."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "has an absolute path"
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        return "contains '..' (it would land outside the destination)"
    if len(posix.encode()) > _PATH_MAX or any(len(p.encode()) > _NAME_MAX for p in parts):
        longest = max(len(p.encode()) for p in parts) if parts else 0
        return (
            f"has a name too long for the file system ({longest} bytes in one part, at most "
            f"{_NAME_MAX} allowed)"
        )
    return None


class _Member:
    """One archive entry, the same for zip and tar: name, kind, declared size, opener."""

    def __init__(self, name: str, is_dir: bool, size: int, open_: Callable | None):
        self.name, self.is_dir, self.size, self.open = name.replace("\\", "/"), is_dir, size, open_


def _zip_members(zf: zipfile.ZipFile, label: str) -> list[_Member]:
    out = []
    for info in zf.infolist():
        name = info.filename
        mode = info.external_attr >> 16
        problem = _name_problem(name)
        if problem is None and stat.S_ISLNK(mode):
            problem = "is a symbolic link"
        if problem is None and info.flag_bits & 0x1:
            problem = "is encrypted (password-protected); Python cannot unpack it"
        if problem is None and info.compress_type not in _ZIP_METHODS:
            method = "Deflate64" if info.compress_type == 9 else f"method {info.compress_type}"
            problem = (
                f"uses {method} compression, which Python's zipfile cannot decompress; unpack "
                "it with 7-Zip or `unzip` into the destination and run the command again"
            )
        if problem:
            raise ArchiveError(f"refusing to extract {label}: member {name!r} {problem}")
        out.append(_Member(name, info.is_dir(), info.file_size, lambda i=info: zf.open(i)))
    return out


def _tar_members(tf: tarfile.TarFile, label: str) -> list[_Member]:
    out = []
    for info in tf.getmembers():
        problem = _name_problem(info.name)
        if problem is None and (info.issym() or info.islnk()):
            problem = "is a symbolic or hard link"
        if problem is None and not (info.isfile() or info.isdir()):
            problem = "is a device, FIFO or other special file"
        if problem:
            raise ArchiveError(f"refusing to extract {label}: member {info.name!r} {problem}")
        out.append(_Member(info.name, info.isdir(), info.size, lambda i=info: tf.extractfile(i)))
    return out


def _open_archive(path: Path) -> tuple[contextlib.AbstractContextManager, str]:
    if zipfile.is_zipfile(path):
        return zipfile.ZipFile(path), "zip"
    if tarfile.is_tarfile(path):
        return tarfile.open(path), "tar"
    raise ArchiveError(
        f"{str(path)!r} is not a readable zip or tar archive (damaged, or an interrupted "
        "download?); delete it and download again"
    )


def archive_names(path: str | Path) -> list[str]:
    """The member names of a zip/tar archive (checked as :func:`safe_extract` checks them)."""
    path = Path(path)
    archive, kind = _open_archive(path)
    with archive as a:
        label = repr(str(path))
        members = _zip_members(a, label) if kind == "zip" else _tar_members(a, label)
    return [m.name for m in members]


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    *,
    expect: Sequence[str] = (),
    max_bytes: int | None = None,
    what: str = "",
) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` after checking every member.

    Before anything is written: absolute paths, ``..``, drive letters, symbolic/hard links
    and special files, encrypted or Deflate64 members and over-long names raise
    ArchiveError (one line naming the member); so does an archive whose members declare
    more than ``max_bytes`` in total (default: ``MAX_RATIO`` times the archive's size plus
    64 MiB) -- an archive bomb; and, if ``expect`` is given, an archive that lacks any of
    those members. While writing, bytes are counted, so a member that expands beyond its
    declared size (a lying header) is stopped too. Each file is written to a temporary
    name and renamed when complete.

    Args:
        archive: a ``.zip``, ``.tar`` or compressed tar file.
        dest: the folder to extract into (created).
        expect: glob patterns (``fnmatch``, POSIX separators) each of which at least one
            member must match, e.g. ``["DIV2K_valid_HR/*.png"]``.
        max_bytes: the most bytes the extracted files may take.
        what: how to name the archive in messages (e.g. ``"the DIV2K zip"``).

    Returns:
        The extracted file paths.
    """
    archive, dest = Path(archive), Path(dest)
    label = what or repr(str(archive))
    if not archive.is_file():
        raise ArchiveError(f"archive {str(archive)!r} not found")
    budget = max_bytes if max_bytes is not None else archive.stat().st_size * MAX_RATIO
    budget = budget if max_bytes is not None else budget + _MIN_BUDGET
    try:
        handle, kind = _open_archive(archive)
        with handle as a:
            members = _zip_members(a, label) if kind == "zip" else _tar_members(a, label)
            _check_contents(members, expect, budget, archive, label)
            return _write_members(members, dest, budget, label)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError) as err:
        raise ArchiveError(
            f"{label} is not a readable {'zip' if archive.suffix == '.zip' else 'archive'} "
            f"({err}); delete it and download again"
        ) from err


def _check_contents(
    members: list[_Member], expect: Sequence[str], budget: int, archive: Path, label: str
) -> None:
    files = [m for m in members if not m.is_dir]
    declared = sum(m.size for m in files)
    if declared > budget:
        raise ArchiveError(
            f"refusing to extract {label}: its members declare {declared / 2**20:,.0f} MiB in a "
            f"{archive.stat().st_size / 2**20:,.1f} MiB archive (more than the "
            f"{budget / 2**20:,.0f} MiB allowed); it looks like an archive bomb, delete it"
        )
    names = [m.name for m in files]
    for pattern in expect:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            shown = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "") or "nothing"
            raise ArchiveError(
                f"{label} does not hold what it should: no member matches {pattern!r} (it "
                f"holds: {shown}); it is the wrong file, delete it and download again"
            )


def _write_members(members: list[_Member], dest: Path, budget: int, label: str) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    for m in members:  # resolve() catches escapes through folders that already exist
        if not (root / m.name).resolve().is_relative_to(root):
            raise ArchiveError(
                f"refusing to extract {label}: member {m.name!r} resolves outside the destination"
            )
    written: list[Path] = []
    total = 0
    for m in members:
        target = root / m.name
        if m.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with m.open() as src, open(tmp, "wb") as out:
                count = 0
                while chunk := src.read(_CHUNK):
                    count += len(chunk)
                    total += len(chunk)
                    if count > m.size or total > budget:
                        raise ArchiveError(
                            f"refusing to extract {label}: member {m.name!r} expands beyond "
                            f"its declared {m.size:,} bytes (an archive bomb?); delete it"
                        )
                    out.write(chunk)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append(target)
    return written
