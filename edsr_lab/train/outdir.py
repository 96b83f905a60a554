"""A run's output folder: who may write into it, and what a failed start leaves there.

One owner for ``--out`` (:class:`RunFolder`), with four rules:

* **one run at a time**: the folder is locked (:class:`edsr_lab.files.FolderLock`, the file
  ``.edsr_lab-train.lock`` naming the process, host and start time) for the whole run; a
  second run into it is refused with a line naming the holder, and the lock of a process
  that was killed is taken over (said in one line);
* **another run is never replaced unasked**: :func:`check_out` refuses a folder holding a
  run's files unless the run resumes it or ``--overwrite`` was given;
* **replace only after every check**: ``--overwrite`` moves the old run's files aside
  (:meth:`RunFolder.replace`, into a hidden ``.replaced-<pid>-<hex>`` folder) only once the
  data, the model, ``--init`` and the device were checked, and deletes them only once the
  new run has saved a checkpoint; only :data:`RUN_FILES` are touched;
* **a failed start leaves the folder as it found it**: until the run saves its first
  checkpoint (``last.pt`` or ``best.pt``), any failure (an exception, Ctrl-C) removes what
  it wrote, puts back ``config.json``, ``summary.json`` and the other records as they were
  (a failed ``--resume`` changes no setting) and the files ``--overwrite`` moved aside, and
  removes the folders it created. Once a checkpoint is written, everything is kept and
  ``--resume`` continues from it.

A run whose loss diverged is a *finished* run: its folder keeps the record (``config.json``,
``summary.json`` with ``"diverged": true``, ``history.csv``, ``curves.png``, and ``last.pt``/
``best.pt`` if saved before the divergence) and the command says how to start again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from edsr_lab.errors import FolderInUseError, OutputPathError, RunExistsError
from edsr_lab.files import FolderLock, atomic_write, stale_staging_folders
from edsr_lab.paths import unwritable_reason

__all__ = ["LOCK_NAME", "RUN_FILES", "RunFolder", "check_out"]

#: The files a run writes into its output folder (``overwrite`` replaces only these).
RUN_FILES = (
    "last.pt",
    "best.pt",
    "history.csv",
    "config.json",
    "curves.png",
    "summary.json",
)

#: The lock file of a running run, inside its folder.
LOCK_NAME = ".edsr_lab-train.lock"

_CHECKPOINTS = ("last.pt", "best.pt")
# Small files a resumed run rewrites (config.json, summary.json at its start): a failed
# start puts their old contents back.
_RECORDS = tuple(f for f in RUN_FILES if f not in _CHECKPOINTS)
_ASIDE = ".replaced-"  # + "<pid>-<8 hex>": the old run's files during an --overwrite


def check_out(out: Path, *, overwrite: bool, own: bool, check_writable: bool = True) -> None:
    """Refuse a folder that holds another run (unless ``overwrite``; ``own``: it holds this
    run), that is a file, or that cannot be written. Changes nothing."""
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--out {out} is a file; give a folder for the run's outputs")
    for name in RUN_FILES:
        if (out / name).is_dir():
            raise RunExistsError(
                f"--out {out}: {name} there is a folder, not the run's file; move it away "
                "(or choose another --out)"
            )
    ours = [f for f in RUN_FILES if (out / f).exists()]
    if ours and not (overwrite or own):
        raise RunExistsError(
            f"--out {out} already holds a run ({', '.join(ours)}); pass --resume to continue "
            "it, --overwrite to start over, or choose another --out"
        )
    reason = unwritable_reason(out) if check_writable else None
    if reason is not None:
        raise OutputPathError(f"--out {out}: {reason}")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class RunFolder:
    """The run's hold on ``out`` (see the module docstring); a context manager.

    ``main``: this process writes the files (rank 0); on other ranks it does nothing.
    ``say``: where notes go (a stale lock taken over, files of a killed ``--overwrite``).
    """

    def __init__(self, out: Path, *, main: bool = True, say: Any = print):
        self.out, self.main, self.say = out, main, say
        self.lock = FolderLock(out, LOCK_NAME, what="python -m edsr_lab train")
        self.new_folders: list[Path] = []  # innermost first
        self.found: dict[str, tuple[int, int, int] | None] = {}
        self.settings: dict[str, bytes] = {}
        self.aside: Path | None = None
        self.committed = False

    def __enter__(self) -> RunFolder:
        if not self.main:
            return self
        folder = self.out
        while not folder.exists() and folder != folder.parent:
            self.new_folders.append(folder)
            folder = folder.parent
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
        except FolderInUseError:
            self._remove_new_folders()
            holder = self.lock.holder()
            who = f" ({FolderLock.describe(holder)})" if holder else ""
            raise FolderInUseError(
                f"--out {self.out} is in use by another training run{who}; wait until it "
                f"ends, or choose another --out (if that process is gone for good, delete "
                f"{self.lock.path})"
            ) from None
        except BaseException:
            self._remove_new_folders()
            raise
        if self.lock.took_over is not None:
            self.say(
                f"note: taking over the lock of {FolderLock.describe(self.lock.took_over)}, "
                "which is no longer running"
            )
        for old in stale_staging_folders(self.out, _ASIDE):
            self.say(
                f"note: {old} holds the files of a run that an --overwrite replaced before it "
                f"was killed; move them back into {self.out} or delete that folder"
            )
        self.found = {f: _signature(self.out / f) for f in RUN_FILES}
        for name in _RECORDS:
            with contextlib.suppress(OSError):
                self.settings[name] = (self.out / name).read_bytes()
        return self

    def replace(self, overwrite: bool) -> None:
        """With ``overwrite``: move the old run's files aside (deleted once this run saved a
        checkpoint, put back if it fails before). Call after every check passed."""
        if not (self.main and overwrite):
            return
        old = [f for f in RUN_FILES if (self.out / f).exists()]
        if not old:
            return
        self.aside = self.out / f"{_ASIDE}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.aside.mkdir()
        for f in old:
            os.replace(self.out / f, self.aside / f)
        self.found = dict.fromkeys(RUN_FILES)
        self.settings = {}

    def _saved_checkpoint(self) -> bool:
        return any(_signature(self.out / f) != self.found.get(f) for f in _CHECKPOINTS)

    def commit_if_saved(self) -> None:
        """Once the run has saved a checkpoint, the old run's files moved aside go."""
        if self.main and not self.committed and self._saved_checkpoint():
            self.committed = True
            if self.aside is not None:
                shutil.rmtree(self.aside, ignore_errors=True)
                self.aside = None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if not self.main:
            return
        try:
            if kind is None:
                self.committed = True
                if self.aside is not None:
                    shutil.rmtree(self.aside, ignore_errors=True)
            else:
                self.commit_if_saved()
                if not self.committed:
                    self._undo()
        finally:
            self.lock.release()
            if not self.committed:
                self._remove_new_folders()

    def _undo(self) -> None:
        """Put the folder back as it was found (a failed start)."""
        for f in RUN_FILES:
            if _signature(self.out / f) != self.found.get(f) and f not in self.settings:
                with contextlib.suppress(OSError):
                    (self.out / f).unlink()
        for name, content in self.settings.items():
            path = self.out / name
            try:
                same = path.read_bytes() == content
            except OSError:
                same = False
            if not same:
                atomic_write(path, lambda tmp, c=content: Path(tmp).write_bytes(c))
        if self.aside is not None:
            for p in self.aside.iterdir():
                os.replace(p, self.out / p.name)
            self.aside.rmdir()
            self.aside = None

    def _remove_new_folders(self) -> None:
        for folder in self.new_folders:
            try:
                folder.rmdir()
            except OSError:  # not empty: someone else's files are in it
                break
