"""``info`` (environment, device, mode, datasets found) and ``course`` (run the notebooks)."""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from edsr_lab import config
from edsr_lab.errors import DatasetError, EdsrLabError, MissingDependencyError

__all__ = ["add_parsers", "notebooks_in_order"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="environment, device, mode and data found")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("course", help="run the notebooks headless into an output folder")
    p.add_argument("--out", default=str(config.PROJECT_ROOT / "runs" / "notebooks"))
    p.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. --only 00 01")
    p.add_argument("--quick", action="store_true", help="force quick mode (EDSR_LAB_QUICK=1)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    p.set_defaults(func=cmd_course)


def cmd_info(args: argparse.Namespace) -> int:
    for key, value in config.describe().items():
        print(f"{key:>16}: {value}")
    from edsr_lab.data import div2k

    for split in ("train", "valid"):
        try:
            pairs = div2k.find_pairs(config.data_dir() / "DIV2K", split=split, scale=2)
            found = f"{len(pairs)} image pairs (x2)"
        except EdsrLabError as err:
            found = f"not found ({str(err).splitlines()[0]})"
        print(f"{'DIV2K ' + split:>16}: {found}")
    return 0


def notebooks_in_order(folder: Path) -> list[Path]:
    """The course notebooks, ``NN_name.ipynb``, in course order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def cmd_course(args: argparse.Namespace) -> int:
    try:
        import nbformat
        from jupyter_client.manager import KernelManager
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as err:
        raise MissingDependencyError(
            f"running notebooks needs nbclient and nbformat ({err}); "
            'install the course tools with: pip install -e ".[dev]"'
        ) from err

    folder = config.PROJECT_ROOT / "notebooks"
    books = notebooks_in_order(folder)
    if args.only:
        books = [b for b in books if any(b.name.startswith(o) for o in args.only)]
    if not books:
        raise DatasetError(f"no notebooks matching {args.only or '*'} in {folder}")
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        os.environ["EDSR_LAB_QUICK"] = "1"
    print(f"running {len(books)} notebooks, quick mode {config.is_quick()}, outputs -> {out}")
    failed = []
    for book in books:
        nb = nbformat.read(book, as_version=4)
        start = time.perf_counter()
        # CurveZMQ keys for the kernel's sockets: encrypted, and no "running over TCP
        # without encryption" warning in the middle of the course's output.
        km = KernelManager(kernel_name="python3", transport_encryption="auto")
        client = NotebookClient(
            nb, timeout=args.timeout, km=km, resources={"metadata": {"path": folder}}
        )
        status = "ok"
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:  # keep going
            last_line = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[-1]
            status = f"FAILED: {type(err).__name__}: {last_line[:120]}"
            failed.append(book.name)
        finally:
            # nbclient shuts down only kernels it started itself; without this every
            # notebook's kernel (and its memory) lives until the command exits.
            if km.has_kernel:
                km.shutdown_kernel(now=False)
        nbformat.write(nb, out / book.name)
        print(f"  {book.name:<40} {time.perf_counter() - start:7.1f} s  {status}", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}; open them in {out}")
        return 1
    print(f"all {len(books)} notebooks ran; open the executed copies in {out}")
    return 0
