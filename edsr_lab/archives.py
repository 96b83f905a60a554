"""Unpacking zip and tar archives safely (DIV2K zips, the benchmark tar).

:func:`safe_extract` checks every member before anything is written: no absolute paths,
``..``, empty names, links or device files, nothing written through a symbolic link that
leads out of the destination, no member that would replace a folder or need a folder
where a file is; no Deflate64/encrypted members or names too long for the file system
(each reported in one line); no archive bombs (the declared sizes are checked first, and
bytes are counted while writing, because a zip's header can lie); optionally the files
that must be present (``expect``) and the only folders that may be written (``only``).
Everything is extracted into a staging folder and moved into place only when the whole
archive read without error, so a damaged archive (bad CRC, corrupt or truncated data, a
damaged tar header) leaves nothing half-extracted.
"""

from __future__ import annotations

import contextlib
import fnmatch
import lzma
import os
import re
import shutil
import stat
import sys
import tarfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from edsr_lab.errors import ArchiveError, FileWriteError
from edsr_lab.files import STALE_AFTER_S, pid_alive

__all__ = ["MAX_RATIO", "archive_names", "safe_extract"]

#: An archive may expand to at most this many times its own size (plus ``_MIN_BUDGET``):
#: images barely compress (PNG ~1x), so a 2 MB zip claiming 2 GiB is refused.
MAX_RATIO = 100
_MIN_BUDGET = 64 * 2**20
# Longest file name component and path most file systems accept (bytes, UTF-8).
_NAME_MAX, _PATH_MAX = 255, 4096
_CHUNK = 1 << 20
# zipfile can decompress these: stored, deflate, bzip2, lzma. Type 9 is Deflate64.
_ZIP_METHODS = {0, 8, 12, 14}

#: What reading a damaged archive raises: zip/tar format errors, a bad CRC (BadZipFile,
#: gzip.BadGzipFile), corrupt compressed data (zlib.error, LZMAError, bz2's OSError) or a
#: stream that ends too early (EOFError).
_DAMAGE = (
    zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, zlib.error, lzma.LZMAError,
    EOFError, OSError,
)  # fmt: skip

#: The folder an extraction writes into before moving the files into place:
#: ``.extracting-<pid>-<8 hex>`` in the destination (same file system: renames are atomic).
_STAGE = re.compile(r"\.extracting-(\d+)-[0-9a-f]{8}")


class _Damaged(Exception):
    """Internal: reading the archive failed; turned into one ArchiveError line."""


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Turns the errors of reading a damaged archive into :class:`_Damaged`."""
    try:
        yield
    except _DAMAGE as err:
        raise _Damaged(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__) from err


def _name_problem(name: str) -> str | None:
    """Why an archive member name must not be extracted, or None."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "has an absolute path"
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        return "contains '..' (it would land outside the destination)"
    if not parts:
        return "has an empty name (it would be the destination folder itself)"
    if len(posix.encode()) > _PATH_MAX or any(len(p.encode()) > _NAME_MAX for p in parts):
        longest = max(len(p.encode()) for p in parts)
        return (
            f"has a name too long for the file system ({longest} bytes in one part, at most "
            f"{_NAME_MAX} allowed)"
        )
    return None


class _Member:
    """One archive entry, the same for zip and tar: name (normalised POSIX path), kind,
    declared size, opener."""

    def __init__(self, name: str, is_dir: bool, size: int, open_: Callable | None):
        self.name = PurePosixPath(name.replace("\\", "/")).as_posix()
        self.is_dir, self.size, self.open = is_dir, size, open_


def _zip_members(zf: zipfile.ZipFile, label: str) -> list[_Member]:
    out = []
    for info in zf.infolist():
        name = info.filename
        mode = info.external_attr >> 16  # Unix mode bits (0 from zips made on Windows)
        kind = stat.S_IFMT(mode)
        problem = _name_problem(name)
        root = PurePosixPath(name.replace("\\", "/")).parts in ((), ("/",))
        if problem is not None and info.is_dir() and root:
            continue  # "./" or "/": an entry for the archive's own root folder
        if problem is None and stat.S_ISLNK(mode):
            problem = "is a symbolic link"
        if problem is None and kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            problem = "is a device, FIFO or other special file"
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
        if problem is not None and info.isdir() and PurePosixPath(info.name).parts in ((), ("/",)):
            continue  # "./" or "/": the archive's own root folder (GNU tar writes "./")
        if problem is None and (info.issym() or info.islnk()):
            problem = "is a symbolic or hard link"
        if problem is None and not (info.isfile() or info.isdir()):
            problem = "is a device, FIFO or other special file"
        if problem:
            raise ArchiveError(f"refusing to extract {label}: member {info.name!r} {problem}")
        out.append(_Member(info.name, info.isdir(), info.size, lambda i=info: tf.extractfile(i)))
    return out


def _check_tar_end(tf: tarfile.TarFile) -> None:
    """Read the rest of a tar archive: its end-of-archive block must be there (tarfile
    stops quietly at a damaged header, dropping the members after it), and a compressed
    stream's checksum is verified only when it is read to its very end."""
    f = tf.fileobj
    f.seek(tf.offset)
    block = f.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        where = f"byte {tf.offset:,}"
        raise _Damaged(
            f"the archive ends without its end marker at {where} (truncated)"
            if len(block) < tarfile.BLOCKSIZE
            else f"the member header at {where} is damaged"
        )
    while f.read(_CHUNK):
        pass


def _open_archive(
    path: Path, label: str, fix: str
) -> tuple[contextlib.AbstractContextManager, str]:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        raise ArchiveError(f"cannot read {label}: {err.strerror or err}") from err
    try:
        with _reading():
            if zipfile.is_zipfile(path):
                return zipfile.ZipFile(path), "zip"
            if tarfile.is_tarfile(path):
                return tarfile.open(path), "tar"
    except _Damaged as err:
        raise ArchiveError(f"{label} is damaged ({err}); nothing was extracted; {fix}") from err
    raise ArchiveError(
        f"{label} is not a readable zip or tar archive (damaged, an interrupted download, or "
        f"the wrong file?); nothing was extracted; {fix}"
    )


def _members(a, kind: str, label: str) -> list[_Member]:
    return _zip_members(a, label) if kind == "zip" else _tar_members(a, label)


def archive_names(path: str | Path) -> list[str]:
    """The member names of a zip/tar archive (checked as :func:`safe_extract` checks them)."""
    path = Path(path)
    label = repr(str(path))
    fix = "delete it and download it again"
    archive, kind = _open_archive(path, label, fix)
    try:
        with archive as a, _reading():
            members = _members(a, kind, label)
    except _Damaged as err:
        raise ArchiveError(f"{label} is damaged ({err}); {fix}") from err
    return [m.name for m in members]


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    *,
    expect: Sequence[str] = (),
    only: Sequence[str] | None = None,
    max_bytes: int | None = None,
    what: str = "",
    fix: str = "delete it and download it again",
) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` after checking every member.

    Before anything is written: absolute paths, ``..``, empty names, drive letters,
    symbolic/hard links and special files, encrypted or Deflate64 members and over-long
    names raise ArchiveError (one line naming the member); so does an archive whose
    members declare more than ``max_bytes`` in total (default: ``MAX_RATIO`` times the
    archive's size plus 64 MiB) -- an archive bomb; an archive that lacks a member
    ``expect`` asks for; and a member that would be written through a symbolic link
    leading out of ``dest``, replace a folder, or need a folder where a file is.

    Members outside the ``only`` folders are skipped (one line on stderr lists them), so
    an archive can never replace files beside the tree it should hold.

    Everything is first extracted into a hidden folder in ``dest``
    (``.extracting-<pid>-<hex>``), reading every byte: a member that expands beyond its
    declared size (a lying header) is stopped, and a damaged archive (bad CRC, corrupt
    compressed data, a truncated or damaged tar) raises ArchiveError ("is damaged ...
    ``fix``"). Only a complete extraction is moved into place, so a failure leaves
    ``dest`` as it was. Leftovers of an extraction that was killed are removed.

    Args:
        archive: a ``.zip``, ``.tar`` or compressed tar file.
        dest: the folder to extract into (created).
        expect: glob patterns (``fnmatch``, POSIX separators) each of which at least one
            member must match, e.g. ``["DIV2K_valid_HR/*.png"]``.
        only: folders of the archive (POSIX, e.g. ``["benchmark/Set5"]``) whose contents
            are extracted; None extracts every (safe) member.
        max_bytes: the most bytes the extracted files may take.
        what: how to name the archive in messages (e.g. ``"the DIV2K zip"``).
        fix: what to do about a damaged archive (ends that message), e.g. the command
            that downloads it again.

    Returns:
        The extracted file paths.

    Raises:
        ArchiveError: the archive is unsafe, damaged, a bomb, or lacks an expected member.
        FileWriteError: ``dest`` cannot be written (e.g. the disk is full).
    """
    archive, dest = Path(archive), Path(dest)
    label = what or repr(str(archive))
    if not archive.is_file():
        raise ArchiveError(f"archive {str(archive)!r} not found")
    budget = max_bytes if max_bytes is not None else archive.stat().st_size * MAX_RATIO
    budget = budget if max_bytes is not None else budget + _MIN_BUDGET
    handle, kind = _open_archive(archive, label, fix)
    try:
        with handle as a:
            with _reading():
                members = _members(a, kind, label)
            _check_contents(members, expect, budget, archive, label)
            members = _select(members, only, label)
            finish = (lambda: _check_tar_end(a)) if kind == "tar" else None
            return _write_members(members, dest, budget, label, finish=finish)
    except _Damaged as err:
        raise ArchiveError(f"{label} is damaged ({err}); nothing was extracted; {fix}") from err


def _select(members: list[_Member], only: Sequence[str] | None, label: str) -> list[_Member]:
    """The members inside the ``only`` folders; the others are listed on stderr."""
    if only is None:
        return members
    folders = [PurePosixPath(o.replace("\\", "/")).as_posix().strip("/") for o in only]
    kept, skipped = [], []
    for m in members:
        if any(m.name.startswith(f + "/") or (m.is_dir and m.name == f) for f in folders):
            kept.append(m)
        elif not (m.is_dir and any(f.startswith(m.name + "/") for f in folders)):
            skipped.append(m.name)  # (a folder above the kept ones is simply not needed)
    if skipped:
        shown = ", ".join(repr(n) for n in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(
            f"{label}: skipped {len(skipped)} member(s) outside "
            f"{', '.join(f + '/' for f in folders)}: {shown} (only those folders are extracted)",
            file=sys.stderr,
        )
    return kept


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


def _check_targets(members: list[_Member], root: Path, label: str) -> None:
    """Refuse, before writing, a member that would leave ``root`` through a symbolic link,
    replace a folder, or need a folder where a file is."""
    folders = {str(p) for m in members for p in PurePosixPath(m.name).parents} - {"."}
    folders |= {m.name for m in members if m.is_dir}
    for m in members:
        if not m.is_dir and m.name in folders:
            raise ArchiveError(
                f"refusing to extract {label}: member {m.name!r} is both a file and a folder "
                "in the archive (a damaged or hostile archive); delete it"
            )
    for m in members:
        path = root
        for part in PurePosixPath(m.name).parts:
            path = path / part
            if path.is_symlink():
                inside = path.resolve().is_relative_to(root)
                if not inside:
                    raise ArchiveError(
                        f"refusing to extract {label}: member {m.name!r} would be written "
                        f"through {str(path)!r}, a symbolic link to {os.readlink(path)!r} "
                        f"outside {str(root)!r}; replace the link by a folder, or extract "
                        "elsewhere"
                    )
            if path == root / m.name:
                break
            if path.exists() and not path.is_dir():
                raise ArchiveError(
                    f"refusing to extract {label}: member {m.name!r} needs {str(path)!r} to be "
                    "a folder, but it is a file; move that file away and run the command again"
                )
        target = root / m.name
        if not target.resolve().is_relative_to(root):
            raise ArchiveError(
                f"refusing to extract {label}: member {m.name!r} resolves outside the destination"
            )
        if not m.is_dir and target.is_dir():
            raise ArchiveError(
                f"refusing to extract {label}: member {m.name!r} would replace the folder "
                f"{str(target)!r}; move that folder away and run the command again"
            )
        if m.is_dir and target.exists() and not target.is_dir():
            raise ArchiveError(
                f"refusing to extract {label}: folder member {m.name!r} would replace the file "
                f"{str(target)!r}; move that file away and run the command again"
            )


def _remove_dead_stages(root: Path) -> None:
    """Remove the staging folders that killed extractions left in ``root``."""
    now = time.time()
    for p in root.iterdir():
        match = _STAGE.fullmatch(p.name)
        if match and p.is_dir() and not p.is_symlink():
            old = now - p.stat().st_mtime > STALE_AFTER_S
            if old or not pid_alive(int(match.group(1))):
                shutil.rmtree(p, ignore_errors=True)


def _write_members(
    members: list[_Member],
    dest: Path,
    budget: int,
    label: str,
    finish: Callable[[], None] | None = None,
) -> list[Path]:
    """Extract ``members`` into a staging folder in ``dest``, then move them into place.

    ``finish`` runs after every member was read (e.g. it reads a tar to its end, so a
    compressed stream's checksum is verified) and before anything is moved into place.
    """
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileWriteError(f"cannot create the folder {str(dest)!r}: {err.strerror}") from err
    root = dest.resolve()
    _remove_dead_stages(root)
    _check_targets(members, root, label)
    stage = root / f".extracting-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir()
        total = 0
        for m in members:
            if not m.is_dir:
                total = _stage_member(m, stage / m.name, total, budget, label)
        if finish is not None:
            with _reading():
                finish()
        return _move_into_place(members, stage, root)
    except OSError as err:
        raise FileWriteError(
            f"cannot write the files of {label} into {str(root)!r}: {err.strerror or err}; "
            "free some space (or fix the permissions) and run the command again"
        ) from err
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _stage_member(m: _Member, out_path: Path, total: int, budget: int, label: str) -> int:
    """Copy one member to ``out_path``, counting bytes; the new running total."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with _reading():
        src = m.open()
    with src, open(out_path, "wb") as out:
        count = 0
        while True:
            with _reading():
                chunk = src.read(_CHUNK)
            if not chunk:
                break
            count += len(chunk)
            total += len(chunk)
            if count > m.size or total > budget:
                raise ArchiveError(
                    f"refusing to extract {label}: member {m.name!r} expands beyond "
                    f"its declared {m.size:,} bytes (an archive bomb?); delete it"
                )
            out.write(chunk)
    return total


def _move_into_place(members: list[_Member], stage: Path, root: Path) -> list[Path]:
    written: dict[Path, None] = {}
    for m in members:
        target = root / m.name
        if m.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if target in written:
            continue  # a name the archive holds twice: its last copy is already there
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / m.name, target)
        written[target] = None
    return list(written)
