"""Writing files safely: :func:`atomic_write`, used for images and every checkpoint.

A checkpoint is hours of GPU time: a crash, a kill or a full disk while it is being
written must never leave a half-written file in its place, nor lose the previous one.
This module has no dependency beyond the standard library (no Pillow, no torch), so the
model code can use it without importing the image stack.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from edsr_lab.errors import FileWriteError

__all__ = ["STALE_AFTER_S", "atomic_write", "pid_alive", "stale_temp_files"]

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


def _free_bytes(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:,.0f} MiB free"
    except OSError:
        return "free space unknown"


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
        # zip writer, with a C++ source location; turn it into one readable line.
        if "write" not in str(e).lower():
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
