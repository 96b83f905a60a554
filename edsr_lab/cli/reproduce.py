"""``reproduce table2`` (train the ablation rows on DIV2K) and ``reproduce table3`` (score
the official weights on the benchmark sets): the paper's tables beside measured numbers
(:mod:`edsr_lab.reproduce`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from edsr_lab.cli.common import int_at_least
from edsr_lab.reproduce.rows import SETS, TABLE2_ROWS, TABLE3_MODELS

__all__ = ["add_parsers", "command_line"]

ROWS = [r.key for r in TABLE2_ROWS]
MODELS = [m.key for m in TABLE3_MODELS]

EPILOG2 = """\
Each row is a training run in its own folder under --out; rerunning the command skips
finished rows and resumes unfinished ones (Ctrl-C is safe). The table is --out/table2.md.
examples:
  the paper's ablation at x2 (3e5 updates per row; hours per row on one GPU):
    python -m edsr_lab reproduce table2
  the two baselines at x2, x3 and x4 (x3/x4 start from x2, as the paper):
    python -m edsr_lab reproduce table2 --rows edsr-baseline mdsr-baseline --scale 2 3 4
  a smoke test of the whole command on a CPU (numbers meaningless):
    python -m edsr_lab reproduce table2 --tiny --updates 3 --out runs/smoke
"""

EPILOG3 = """\
Downloads what is missing: the official weights (about 0.6 GB for all, into
data/cache/weights) and the benchmark sets (about 250 MB, into data/benchmark). The table
is --out/table3.md.
examples:
  everything (EDSR, EDSR+, MDSR, MDSR+ and the baselines at x2, x3, x4):
    python -m edsr_lab reproduce table3
  EDSR x4 on Set5 only, without the self-ensemble:
    python -m edsr_lab reproduce table3 --models edsr --scale 4 --sets set5 --no-self-ensemble
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "reproduce",
        help="reproduce the paper's Table 2 (train on DIV2K) or Table 3 (official weights)",
        description="Reproduce the paper's tables; each writes a markdown table beside the "
        "paper's values, with provenance.",
    )
    tables = group.add_subparsers(dest="table", required=True, metavar="{table2,table3}")

    p = tables.add_parser(
        "table2",
        help="train the ablation rows on DIV2K, score them on DIV2K 0801-0810",
        description="Table 2 (Lim et al. 2017): SRResNet L2/L1, the EDSR and MDSR baselines, "
        "EDSR and MDSR (and EDSR+/MDSR+) trained with the paper's recipe, scored with the "
        "DIV2K protocol on valid 0801-0810.",
        epilog=EPILOG2,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/reproduce/table2", help="runs and table2.md go here")
    p.add_argument(
        "--scale", nargs="+", type=int, choices=[2, 3, 4], default=[2], metavar="S",
        help="scales to reproduce (default: 2)",
    )  # fmt: skip
    p.add_argument(
        "--rows", nargs="+", choices=ROWS, default=None, metavar="ROW",
        help=f"which rows (default: all): {', '.join(ROWS)}",
    )  # fmt: skip
    p.add_argument(
        "--updates", type=int_at_least(1), default=300_000,
        help="updates per row (default: the paper's 300000)",
    )  # fmt: skip
    p.add_argument("--data", default=None, metavar="DIR", help="DIV2K root (default data/DIV2K)")
    p.add_argument(
        "--scratch", action="store_true",
        help="train x3/x4 from scratch instead of from the row's x2 run",
    )  # fmt: skip
    p.add_argument(
        "--tiny", action="store_true",
        help="smoke test: tiny models and batches (seconds on a CPU; numbers meaningless)",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars while scoring")
    p.set_defaults(func=cmd_table2)

    p = tables.add_parser(
        "table3",
        help="score the official weights on Set5/Set14/B100/Urban100 (downloads them)",
        description="Table 3 (Lim et al. 2017): the official EDSR, MDSR and baseline weights "
        "(and EDSR+/MDSR+) scored with the benchmark protocol.",
        epilog=EPILOG3,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/reproduce/table3", help="table3.md goes here")
    p.add_argument(
        "--scale", nargs="+", type=int, choices=[2, 3, 4], default=[2, 3, 4], metavar="S",
        help="scales (default: 2 3 4)",
    )  # fmt: skip
    p.add_argument(
        "--models", nargs="+", choices=MODELS, default=None, metavar="MODEL",
        help=f"which models (default: all): {', '.join(MODELS)}",
    )  # fmt: skip
    p.add_argument(
        "--sets", nargs="+", choices=SETS, default=list(SETS), metavar="SET",
        help=f"benchmark sets (default: {' '.join(SETS)})",
    )  # fmt: skip
    p.add_argument(
        "--no-self-ensemble", action="store_true",
        help="skip EDSR+/MDSR+ (the self-ensemble takes 8x the time)",
    )  # fmt: skip
    p.add_argument("--root", default=None, help="data folder holding benchmark/ (default data/)")
    p.add_argument("--base-url", default=None, help="a mirror folder serving the weights files")
    p.add_argument(
        "--benchmark-url", default=None, metavar="URL",
        help="where to fetch the benchmark archive (default: the official one)",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_table3)


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out (defaults included): rerunning it
    reproduces the table even if a default changes later."""
    words = ["python", "-m", "edsr_lab", "reproduce", args.table, "--out", args.out]
    words += ["--scale", *map(str, args.scale)]
    if args.table == "table2":
        words += ["--rows", *(args.rows or ROWS), "--updates", str(args.updates)]
        flags = ("scratch", "tiny")
        options = ("data", "device")
    else:
        words += ["--models", *(args.models or MODELS), "--sets", *args.sets]
        flags = ("no_self_ensemble",)
        options = ("root", "base_url", "benchmark_url", "device")
    for name in options:
        if getattr(args, name) is not None:
            words += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    words += ["--" + name.replace("_", "-") for name in flags if getattr(args, name)]
    return shlex.join(words)


def _interrupted() -> int:
    print(
        "interrupted; rerun the same command to go on (finished rows are kept, an "
        "unfinished one resumes from its last.pt)",
        file=sys.stderr,
    )
    return 130


def cmd_table2(args: argparse.Namespace) -> int:
    from edsr_lab.reproduce.ablation import table2

    try:
        result = table2(
            args.out, scales=args.scale, rows=args.rows, updates=args.updates,
            data=args.data, scratch=args.scratch, tiny=args.tiny, device=args.device,
            command=command_line(args), progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        return _interrupted()
    print(result.path.read_text())
    return 0


def cmd_table3(args: argparse.Namespace) -> int:
    from edsr_lab.data.benchmarks import BENCHMARK_URL
    from edsr_lab.reproduce.benchmark import table3

    try:
        result = table3(
            args.out, scales=args.scale, models=args.models, sets=args.sets,
            self_ensemble=not args.no_self_ensemble, root=args.root, base_url=args.base_url,
            benchmark_url=args.benchmark_url or BENCHMARK_URL, device=args.device,
            command=command_line(args), progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        return _interrupted()
    print(result.path.read_text())
    return 0
