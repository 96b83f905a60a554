"""Writing files safely: :func:`atomic_write`, used for images and every checkpoint.

A checkpoint is hours of GPU time: a crash, a kill or a full disk while it is being
written must never leave a half-written file in its place, nor lose the previous one.
Beside it: :func:`stale_staging_folders` (the hidden work folders of killed commands) and
:class:`FolderLock` (one process at a time writes into a folder, e.g. a training run).
This module has no dependency beyond the standard library (no Pillow, no torch), so the
model code can use it without importing the image stack.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edsr_lab.errors import FileWriteError, FolderInUseError, OutputExistsError, OutputPathError

try:  # POSIX; elsewhere FolderLock judges a lock by its process id alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "STALE_AFTER_S",
    "FolderLock",
    "atomic_write",
    "check_target",
    "free_bytes",
    "human_bytes",
    "pid_alive",
    "stale_staging_folders",
    "stale_temp_files",
]

#: Temporary files of a killed writer older than this are removed even when their process
#: id is alive again (ids are reused) or cannot be checked.
STALE_AFTER_S = 24 * 3600

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT} if hasattr(errno, "EDQUOT") else {errno.ENOSPC}


def _temp_name(path: Path) -> Path:
    # Hidden, next to the target (same file system, so the rename is atomic), and naming
    # the writing process so a later writer can tell a dead one's leftovers from a live one.
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` running (on this machine)? True when unsure: a temporary file of
    a live writer must never be taken for a leftover."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: assume alive
    return True


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporary files that an interrupted :func:`atomic_write` of ``path`` left behind.

    Matches only this module's pattern ``.<name>.<pid>-<8 hex>.tmp`` (and the older
    ``.<name>.<8 hex>.tmp``) next to ``path``; a file counts as stale when its process is
    gone or it is older than :data:`STALE_AFTER_S`. Files of a live writer are kept.
    """
    path = Path(path)
    prefix, found = f".{path.name}.", []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    now = time.time()
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        middle = name[len(prefix) : -len(".tmp")]
        pid_text, _, tag = middle.rpartition("-")
        if pid_text.isdigit() and len(tag) == 8 and _is_hex(tag):
            pid: int | None = int(pid_text)
        elif len(middle) == 8 and _is_hex(middle):
            pid = None  # the older pattern had no process id: judge by age only
        else:
            continue
        candidate = path.parent / name
        try:
            age = now - candidate.stat().st_mtime
        except OSError:
            continue
        dead = pid is not None and pid != os.getpid() and not pid_alive(pid)
        if dead or age > STALE_AFTER_S:
            found.append(candidate)
    return found


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def stale_staging_folders(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Hidden work folders ``<prefix><pid>-<8 hex>`` in ``parent`` that killed processes left.

    A command that builds its output in a staging folder and moves it into place removes
    the folder itself, unless it is killed (``kill -9``, a power cut). Such a folder counts
    as stale when its process is gone or it is older than :data:`STALE_AFTER_S`; folders
    of the older pattern ``<prefix><8 hex>`` (no process id, written by earlier versions)
    are stale too. Folders of live processes are kept. Symbolic links are never listed.
    """
    parent = Path(parent)
    pattern = re.compile(re.escape(prefix) + r"(?:(\d+)-)?[0-9a-f]{8}")
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    now, found = time.time(), []
    for name in names:
        match = pattern.fullmatch(name)
        path = parent / name
        if match is None or path.is_symlink() or not path.is_dir():
            continue
        try:
            old = now - path.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        pid = match.group(1)
        if pid is None or old or (int(pid) != os.getpid() and not pid_alive(int(pid))):
            found.append(path)
    return found


def human_bytes(n: float) -> str:
    """``3.2e9`` -> ``"3.0 GiB"``: a byte count as a person reads it."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover - the loop returns


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free bytes on the file system of ``folder`` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _free_bytes(folder: Path) -> str:
    free = free_bytes(folder)
    return "free space unknown" if free is None else f"{human_bytes(free)} free"


def check_target(path: Path, *, overwrite: bool, what: str = "write") -> None:
    """Refuse, before anything is computed or written, a target that is a folder, or one
    that exists when ``overwrite`` is False (the user's file is never replaced unasked).

    Raises:
        OutputPathError: ``path`` is a folder ("cannot {what} {path!r}: it is a folder").
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if path.is_dir():
        raise OutputPathError(f"cannot {what} {str(path)!r}: it is a folder")
    if not overwrite and path.exists():
        raise OutputExistsError(
            f"{str(path)!r} already exists; choose another name or pass overwrite=True"
        )


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that it is never seen half-written.

    ``write(tmp)`` fills a temporary file next to ``path`` (``.<name>.<pid>-<hex>.tmp``),
    which is then flushed to disk and renamed over ``path``. On any failure -- an exception
    inside ``write``, a full disk, Ctrl-C -- the temporary file is removed and a previous
    ``path`` stays untouched. Temporary files that killed writers left next to ``path``
    are removed first (see :func:`stale_temp_files`).

    The new file gets the permissions a plain ``open(path, "wb")`` would give: those of
    the file it replaces, or the umask's for a new file (whatever ``write`` does, e.g.
    libraries that create 0600 files).

    Args:
        path: the final file; its folder must exist.
        write: called with the temporary file's name; must create (or overwrite) and
            fill it.

    Raises:
        FileWriteError: (an ``OSError``) the disk or quota is full, or the data could
            not be written; one line naming the file and the free space.
    """
    path = Path(path)
    for stale in stale_temp_files(path):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = _temp_name(path)
    done = False
    try:
        # Create it ourselves first: its mode is then what the umask gives a new file.
        with open(tmp, "xb"):
            pass
        mode = path.stat().st_mode if path.exists() else tmp.stat().st_mode
        write(str(tmp))
        os.chmod(tmp, mode & 0o7777)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        done = True
    except OSError as e:
        if e.errno in _NO_SPACE:
            raise FileWriteError(
                f"cannot write {str(path)!r}: the disk is full ({_free_bytes(path.parent)}); "
                "free some space or write elsewhere (the previous file, if any, is unchanged)"
            ) from e
        raise
    except RuntimeError as e:
        # torch.save reports a failed write (e.g. a full disk) as a RuntimeError from its
        # zip writer, with a C++ source location ("[enforce fail at inline_container.cc:672]
        # . unexpected pos 704 vs 598", or "... file write failed"); one readable line.
        if not any(k in str(e).lower() for k in ("write", "inline_container", "unexpected pos")):
            raise
        raise FileWriteError(
            f"cannot write {str(path)!r}: writing failed ({_free_bytes(path.parent)}; is the "
            "disk full?); the previous file, if any, is unchanged"
        ) from e
    finally:
        if not done:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return path


# ----------------------------------------------------------------------------------------
# One writer per folder
# ----------------------------------------------------------------------------------------


class FolderLock:
    """An advisory lock: one process at a time writes into ``folder``.

    ``FolderLock(folder).acquire()`` creates ``folder/<name>`` holding who took it (process
    id, host, start time, what for) and holds an exclusive ``flock`` on it, which the
    kernel drops when the process ends, however it ends. A second process is refused
    with :class:`~edsr_lab.errors.FolderInUseError` naming the holder. A lock file left by
    a process that is gone (``kill -9``) is taken over; :attr:`took_over` then names it.
    :meth:`release` (or leaving the ``with`` block) removes the file.

    Without ``fcntl`` (Windows) the file is created exclusively and a holder counts as
    gone when its process id is not running on this host.
    """

    def __init__(self, folder: str | os.PathLike, name: str = ".edsr_lab.lock", what: str = ""):
        self.path = Path(folder) / name
        self.what = what
        self.took_over: dict[str, Any] | None = None
        self._fd: int | None = None

    # -- who holds it
    @staticmethod
    def describe(holder: dict[str, Any]) -> str:
        """``"process 123 on host box since 2026-01-02 10:00:00 (train)"``."""
        what = f" ({holder['what']})" if holder.get("what") else ""
        return (
            f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} since "
            f"{holder.get('started', '?')}{what}"
        )

    def holder(self) -> dict[str, Any] | None:
        """What the lock file says (None: no file, or unreadable)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _gone(self, holder: dict[str, Any] | None) -> bool:
        """Without flock: is the holder's process gone (same host, pid not running)?"""
        if holder is None:
            return True
        pid = holder.get("pid")
        return (
            holder.get("host") == socket.gethostname()
            and isinstance(pid, int)
            and not pid_alive(pid)
        )

    # -- taking and giving back
    def acquire(self) -> FolderLock:
        """Take the lock (the folder must exist); FolderInUseError when another holds it."""
        for _ in range(10):  # retried only if the file is replaced while we take it
            if self._try_once():
                return self
        raise FolderInUseError(f"cannot lock {str(self.path.parent)!r}: its lock keeps changing")

    def _try_once(self) -> bool:
        if fcntl is None:  # pragma: no cover - Windows
            return self._try_exclusive()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self._refuse(self.holder())
        # The holder before us may have removed the file between our open and our flock:
        # then we hold a lock on a file nobody else sees; take the new one instead.
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            os.close(fd)
            return False
        old = self.holder()
        if old is not None:
            self.took_over = old  # its process ended without removing the file
        self._fd = fd
        self._write_info(fd)
        return True

    def _try_exclusive(self) -> bool:  # pragma: no cover - Windows
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            old = self.holder()
            if not self._gone(old):
                self._refuse(old)
            self.took_over = old
            with contextlib.suppress(OSError):
                self.path.unlink()
            return False
        self._fd = fd
        self._write_info(fd)
        return True

    def _write_info(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "what": self.what,
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)

    def _refuse(self, holder: dict[str, Any] | None) -> None:
        who = self.describe(holder) if holder else "another process"
        raise FolderInUseError(
            f"{str(self.path.parent)!r} is in use by {who}; wait until it ends or choose "
            f"another folder (if that process is gone for good, delete {str(self.path)!r})"
        )

    def release(self) -> None:
        """Remove the lock file and give the lock back (nothing if not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
