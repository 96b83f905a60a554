"""Command line: ``python -m edsr_lab COMMAND`` (or ``edsr-lab COMMAND``).

    info            environment, device, quick/full mode, which datasets were found
    course          run the notebooks headless, top to bottom, into runs/notebooks/
    download-div2k  fetch DIV2K into data/DIV2K (about 7 GB for HR + bicubic x2/x3/x4)
    make-dataset    turn any folder of HR images into the DIV2K layout (LR via MATLAB bicubic)
    upscale         super-resolve your own images or folders (grey, 16-bit, float, alpha kept)
    upscale-dicom   super-resolve DICOM slices into derived DICOM (or 16-bit PNG) files
    train           train SRResNet/EDSR/MDSR on DIV2K or your own images (the paper's recipe)
    evaluate        PSNR/SSIM on Set5/Set14/B100/Urban100/DIV2K valid beside the paper's tables
    download-benchmarks  fetch the benchmark sets into data/benchmark
    download-weights     fetch the official pretrained weights into data/cache/weights
                         (EDSR_LAB_CACHE=DIR: into DIR/weights)
    reproduce       the paper's Table 2 (train on DIV2K) or Table 3 (official weights)

Each command prints what it did and exits non-zero with a one-line reason on bad input.

One module per command group (``course``, ``data``, ``train``, ``evaluate``, ``upscale``,
``reproduce``);
each has ``add_parsers(sub)``, which adds its commands' parsers, and a ``cmd_*(args) ->
int`` per command. To add a command, add it to the group it belongs to (or a new module
listed in :data:`GROUPS`): its parser with ``p.set_defaults(func=cmd_name)``, and
``cmd_name``, which calls the library and returns the exit status.

Start-up: ``--help`` and argument errors must answer at once, so these modules import
only the standard library and torch-free parts of the package (``errors``, ``config``,
``train.config``) at their top; torch, NumPy and Pillow take seconds to import, so each
``cmd_*`` imports what it needs inside itself. ``tests/test_cli.py`` checks that
``--help`` of every command imports no torch.

Mistakes are one line: argparse's errors go through :class:`~edsr_lab.cli.common.Parser`
(no usage dump), ``type=int_at_least(n)`` checks counts and sizes, and a ``cmd_*`` raises
an ``edsr_lab.errors`` type, which :func:`main` prints as ``error: ...`` (exit 2).
"""

from __future__ import annotations

import argparse
import sys

from edsr_lab.cli import course, data, evaluate, reproduce, train, upscale
from edsr_lab.cli.common import Parser
from edsr_lab.cli.course import notebooks_in_order
from edsr_lab.errors import EdsrLabError, one_line

__all__ = ["GROUPS", "build_parser", "main", "notebooks_in_order"]

#: The command groups, in the order ``--help`` lists their commands.
GROUPS = (course, data, upscale, train, evaluate, reproduce)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (plain defaults and choices: no torch)."""
    parser = Parser(prog="python -m edsr_lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 some files failed, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, one line printed)
        return done.code if isinstance(done.code, int) else 2
    try:
        return args.func(args)
    except (EdsrLabError, OSError) as err:  # bad input, or e.g. a disk that is full: one line
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; files already written are complete (each is written atomically)",
            file=sys.stderr,
        )
        return 130
