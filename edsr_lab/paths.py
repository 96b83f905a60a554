"""Why a path cannot be read as a file, or written as an output: one sentence each.

Torch-free (the command line checks its arguments with it before loading anything).
``Path.exists()`` says False both for a missing file and for a symbolic link that points
to itself, and a named pipe (FIFO) has size 0 like an empty file; the helpers here tell
those cases apart so that the message names the real problem.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
from pathlib import Path

__all__ = ["nearby", "unreadable_reason", "unwritable_reason"]


def nearby(path: Path) -> str:
    """A hint about what *is* there, for a 'no such file' message."""
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {str(folder)!r} does not exist either."
    try:
        names = sorted(entry.name for entry in folder.iterdir() if entry.name != path.name)
    except OSError:
        return f"the folder {str(folder)!r} exists but cannot be listed."
    if not names:
        return f"the folder {str(folder)!r} is empty."
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(n) for n in close) + "?"
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
    return f"the folder {str(folder)!r} holds: {shown}."


def unreadable_reason(path: Path, what: str = "file") -> str | None:
    """None if ``path`` is a regular, non-empty, readable file; else why not (one sentence).

    Args:
        path: the file to check.
        what: what it should be, for the messages ("image file", "checkpoint").
    """
    try:
        st = path.stat()  # follows symbolic links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (
                "it is a symbolic link that leads back to itself (a loop); point the link "
                f"at the real {what}, or give the {what}'s own path"
            )
        if path.is_symlink():
            target = os.readlink(path)
            return f"it is a symbolic link to {target!r}, which does not exist (a broken link)"
        if exc.errno == errno.ENOENT:
            return f"no such file. Check the path; {nearby(path)}"
        if exc.errno == errno.EACCES:
            return "permission denied while looking it up; check the folder's permissions"
        return f"cannot access it ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return f"it is a folder, not a {what}"
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        return f"it is {kind}, not a regular file; give the path of a saved {what}"
    if st.st_size == 0:
        return "the file is empty (0 bytes); it was probably not fully downloaded or written"
    if not os.access(path, os.R_OK):
        return "permission denied; check the file's permissions"
    return None


def unwritable_reason(folder: Path) -> str | None:
    """None if files can be created in ``folder`` (existing or to be created); else why not.

    Nothing is created: the nearest existing ancestor is checked instead, so a failed
    command leaves no empty folder behind.
    """
    if folder.exists() and not folder.is_dir():
        return f"{str(folder)!r} is an existing file, not a folder"
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            return f"{str(probe)!r} is a broken symbolic link"
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"cannot create the folder {str(folder)!r}: {str(probe)!r} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"the folder {str(probe)!r} is not writable (permission denied)"
    return None
