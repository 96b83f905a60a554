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
    download-weights     fetch the official pretrained weights into the per-user cache

Each command prints what it did and exits non-zero with a one-line reason on bad input.

Start-up: ``--help`` and argument errors must answer at once, so this module imports only
the standard library and torch-free parts of the package (``errors``, ``config``). Torch,
NumPy and Pillow take seconds to import; each handler imports what it needs *inside*
itself. To add a subcommand:

1. define its parser in :func:`build_parser` (``p = sub.add_parser(...)``, its options,
   ``p.set_defaults(func=_cmd_name)``), using only plain values for defaults/choices;
2. write ``_cmd_name(args) -> int`` that imports its implementation module lazily and
   calls it; put the implementation in that module, not here.

Mistakes are one line: argparse's errors go through :class:`_Parser` (no usage dump), use
``type=_int_at_least(n)`` for counts and sizes, and raise an ``edsr_lab.errors`` type
from handlers (``main`` prints it as ``error: ...`` and returns 2).

``tests/test_cli.py`` checks that ``--help`` of every subcommand imports no torch.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from edsr_lab import config  # torch-free: imports torch only inside its functions
from edsr_lab.errors import (
    BadArgumentError,
    DatasetError,
    EdsrLabError,
    MissingDependencyError,
    one_line,
)


def _cmd_info(args: argparse.Namespace) -> int:
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


def _cmd_course(args: argparse.Namespace) -> int:
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


def _cmd_download_div2k(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    if args.base_url is not None and urlsplit(args.base_url).scheme not in ("http", "https"):
        raise BadArgumentError(
            f"--base-url {args.base_url!r}: only http:// and https:// mirrors are supported"
        )
    from edsr_lab.data import div2k

    parts = args.parts or list(div2k.DEFAULT_PARTS)
    unknown = [p for p in parts if p not in div2k.DIV2K_PARTS]
    if unknown:  # checked here, not by argparse choices, so the parser needs no torch import
        raise BadArgumentError(
            f"unknown DIV2K part(s) {' '.join(unknown)}; choose from: {' '.join(div2k.DIV2K_PARTS)}"
        )
    root = div2k.download_div2k(args.root, parts=parts, base_url=args.base_url or div2k.DIV2K_URL)
    # Report what is there now, part by part (the parts asked for need not include train).
    for part in parts:
        folder = _div2k_part_folder(root, part)
        n = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
        print(f"  {part:<22} {n:>4} images in {folder}")
    print(f"DIV2K parts ready in {root}")
    return 0


def _div2k_part_folder(root: Path, part: str) -> Path:
    """Where a part's zip puts its images: train_HR -> DIV2K_train_HR,
    train_LR_bicubic_X2 -> DIV2K_train_LR_bicubic/X2."""
    split, kind = part.split("_", 1)
    if kind == "HR":
        return root / f"DIV2K_{split}_HR"
    track, scale = kind.removeprefix("LR_").rsplit("_", 1)
    return root / f"DIV2K_{split}_LR_{track}" / scale


def _cmd_make_dataset(args: argparse.Namespace) -> int:
    from edsr_lab.data import div2k

    def progress(done: int, total: int) -> None:
        print(f"\r  {done}/{total} images", end="\n" if done == total else "", flush=True)

    root = div2k.make_div2k_layout(
        args.src,
        args.dst,
        scales=args.scales,
        split=args.split,
        first_index=args.first_index,
        overwrite=args.overwrite,
        progress=progress,
        log=print,
    )
    print(
        f"DIV2K layout written to {root} (scales {args.scales}, split {args.split}); "
        f"DIV2K_{args.split}_sources.csv maps each new name to its source file"
    )
    return 0


def _check_device(device: str | None):
    """The torch device to use; DeviceError (one line) when this machine lacks it."""
    from edsr_lab.train.ddp import check_device

    return check_device(device)


def _load_model(checkpoint: str, device):
    """A checkpoint file, or a name from the weights registry (``edsr_lab.weights``)."""
    from edsr_lab import weights

    return weights.load_model(checkpoint, map_location=device)


def _cmd_upscale(args: argparse.Namespace) -> int:
    from edsr_lab import dicom, upscale

    device = _check_device(args.device)  # before the (slow) model load
    sources = upscale.collect_inputs(args.images)
    # DICOM files given by name go through edsr_lab.dicom (a derived .dcm out)
    slices = [s for s in sources if dicom.is_dicom_file(s)]
    sources = [s for s in sources if s not in slices]
    if slices:
        dicom._pydicom()  # one clear line, before loading the model, if the extra is missing
    out = Path(args.out).expanduser()
    if args.scale is not None and args.scale < 1:
        raise BadArgumentError(f"--scale {args.scale}: the scale must be a whole number >= 1")
    model = _load_model(args.checkpoint, device)
    scale = upscale.check_scale(model, args.scale, args.checkpoint)
    failed = 0
    if sources:
        _, failed = upscale.upscale_files(
            model,
            sources,
            out,
            scale,
            mode=args.mode,
            bits=args.bits,
            overwrite=args.overwrite,
            tile=args.tile,
            self_ensemble=args.self_ensemble,
            device=device,
        )
    if slices:
        failed += dicom.upscale_files(
            model,
            slices,
            out,
            scale=scale,
            overwrite=args.overwrite,
            tile=args.tile,
            self_ensemble=args.self_ensemble,
            device=device,
        )
    return 1 if failed else 0


def _cmd_upscale_dicom(args: argparse.Namespace) -> int:
    from edsr_lab import dicom

    dicom._pydicom()  # one clear line, before loading the model, if the extra is missing
    device = _check_device(args.device)
    model = _load_model(args.checkpoint, device)
    window_cw = tuple(args.window) if args.window else None
    failed = dicom.upscale_files(
        model,
        args.files,
        args.out,
        fmt=args.format,
        scale=args.scale,
        window_cw=window_cw,
        overwrite=args.overwrite,
        tile=args.tile,
        device=device,
    )
    return 1 if failed else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from edsr_lab.errors import TrainOptionError
    from edsr_lab.train import RunConfig, run

    values = {
        k: getattr(args, k)
        for k in RunConfig.__dataclass_fields__
        # "is", not "in": 0 == False, and --iters 0 must reach the check, not vanish
        if hasattr(args, k) and getattr(args, k) is not None and getattr(args, k) is not False
    }
    if "scales" in values:
        values["scales"] = tuple(values["scales"])
    cfg = RunConfig(**values)
    try:
        result = run(cfg, given=set(values))
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; continue with: python -m edsr_lab train --out {cfg.out} --resume",
            file=sys.stderr,
        )
        return 130
    except EdsrLabError:
        raise
    except ValueError as e:  # e.g. torch refusing a value we did not foresee: one line too
        raise TrainOptionError(f"{type(e).__name__}: {str(e).splitlines()[0]}") from e
    return 1 if result.history.diverged else 0


_TRAIN_MODELS = ("srresnet", "edsr_baseline", "edsr", "mdsr_baseline", "mdsr")

_TRAIN_EPILOG = """\
examples:
  the paper's EDSR baseline x2 (Section 4.2: 16 x 48x48 patches, L1, Adam 1e-4 halved every
  2e5 updates, 3e5 updates):
    python -m edsr_lab train --model edsr_baseline --scale 2 --out runs/baseline_x2
  x4 started from that x2 model (as the paper trains x3/x4):
    python -m edsr_lab train --model edsr_baseline --scale 4 \\
        --init runs/baseline_x2/best.pt --out runs/baseline_x4
  MDSR on x2, x3 and x4 at once:
    python -m edsr_lab train --model mdsr_baseline --scale 2 3 4 --out runs/mdsr
  fine-tune on your own images (a folder of HR images; 10 % held out):
    python -m edsr_lab train --init runs/baseline_x2/best.pt --data my_images \\
        --iters 2000 --out runs/mine
  continue after an interruption:      python -m edsr_lab train --out runs/baseline_x2 --resume
  4 GPUs (global batch stays 16):      torchrun --nproc_per_node 4 -m edsr_lab train --out runs/x2
"""


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from edsr_lab.evalcli import cmd_evaluate

    return cmd_evaluate(args)


def _cmd_download_benchmarks(args: argparse.Namespace) -> int:
    from edsr_lab.evalcli import cmd_download_benchmarks

    return cmd_download_benchmarks(args)


def _cmd_download_weights(args: argparse.Namespace) -> int:
    from edsr_lab.evalcli import cmd_download_weights

    return cmd_download_weights(args)


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (argparse prints the whole usage first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    """An argparse type: a whole number >= low, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small; it must be >= {low}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. Keep it import-free: plain defaults and choices only."""
    parser = _Parser(prog="python -m edsr_lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="environment, device, mode and data found")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("course", help="run the notebooks headless into an output folder")
    p.add_argument("--out", default=str(config.PROJECT_ROOT / "runs" / "notebooks"))
    p.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. --only 00 01")
    p.add_argument("--quick", action="store_true", help="force quick mode (EDSR_LAB_QUICK=1)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    p.set_defaults(func=_cmd_course)

    p = sub.add_parser("download-div2k", help="download and extract DIV2K (default ~7 GB)")
    p.add_argument("--root", default=None, help="destination (default: data/DIV2K)")
    p.add_argument(
        "--parts",
        nargs="+",
        default=None,
        metavar="PART",
        help="which zips, e.g. train_HR valid_HR train_LR_bicubic_X2 (default: HR and bicubic"
        " LR x2/x3/x4 of train and valid; an unknown name lists them all)",
    )
    p.add_argument("--base-url", default=None, help="a mirror serving the same zips (http/https)")
    p.set_defaults(func=_cmd_download_div2k)

    p = sub.add_parser("make-dataset", help="any folder of HR images -> the DIV2K layout")
    p.add_argument("src", help="folder (or file) of HR images")
    p.add_argument("dst", help="dataset root to create")
    p.add_argument(
        "--scales",
        nargs="+",
        type=_int_at_least(2),
        default=[2, 3, 4],
        help="LR scales, whole numbers >= 2 (default: 2 3 4)",
    )
    p.add_argument("--split", default="train", choices=["train", "valid"])
    p.add_argument(
        "--first-index",
        type=_int_at_least(0),
        default=1,
        help="number of the first image: DIV2K uses 1 for train, 801 for valid",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    p.set_defaults(func=_cmd_make_dataset)

    p = sub.add_parser(
        "upscale",
        help="super-resolve image files or folders with a checkpoint",
        description="Super-resolve images. Each output keeps its input's kind: grey stays "
        "grey, 16-bit stays 16-bit (PNG), float TIFF stays float TIFF, alpha is upscaled "
        "with bicubic and kept. Every file is tried; failures are listed, and the exit "
        "status is 1 if any failed.",
    )
    p.add_argument("images", nargs="+", help="image files and/or folders of images")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="our .pt/.safetensors, an official EDSR-PyTorch or BasicSR file, or a weights name",
    )
    p.add_argument("--out", default="upscaled", help="output folder (default: ./upscaled)")
    p.add_argument(
        "--scale",
        type=_int_at_least(1),
        default=None,
        help="the model's scale (needed for MDSR: 2, 3 or 4)",
    )
    p.add_argument("--self-ensemble", action="store_true", help="EDSR+: 8x slower, ~+0.1 dB")
    p.add_argument(
        "--tile", type=_int_at_least(1), default=None, help="LR tile size, for large images"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "L", "LA", "RGB", "RGBA"),
        help="output colours (default auto: as the input; L = grey, A = with alpha)",
    )
    p.add_argument(
        "--bits",
        default="auto",
        choices=("auto", "8", "16", "32"),
        help="output precision (default auto: as the input; 16 = 16-bit PNG, 32 = float TIFF)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_cmd_upscale)

    p = sub.add_parser("upscale-dicom", help="super-resolve DICOM slices (needs .[dicom])")
    p.add_argument("files", nargs="+", help="single-frame grey DICOM files (.dcm)")
    p.add_argument("--checkpoint", required=True, help="our .pt/.safetensors or an official .pt")
    p.add_argument("--out", default="upscaled", help="output folder (default: ./upscaled)")
    p.add_argument("--format", default="dcm", choices=["dcm", "png"], help="dcm or 16-bit png")
    p.add_argument(
        "--window",
        nargs=2,
        type=float,
        metavar=("CENTER", "WIDTH"),
        help="display window for --format png (default: the file's)",
    )
    p.add_argument("--scale", type=int, default=None, help="needed for MDSR checkpoints")
    p.add_argument("--tile", type=int, default=None, help="LR tile size, for large images")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_cmd_upscale_dicom)

    p = sub.add_parser(
        "train",
        help="train a model (the paper's recipe by default) into an output folder",
        description="Train SRResNet/EDSR/MDSR. Everything goes into --out: last.pt, best.pt, "
        "history.csv, config.json, curves.png, summary.json.",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=None,
        choices=_TRAIN_MODELS,
        help="architecture preset (paper Table 1; default edsr_baseline)",
    )
    p.add_argument(
        "--scale",
        dest="scales",
        type=int,
        nargs="+",
        default=None,
        metavar="S",
        help="upscaling factor (default 2); MDSR takes several: --scale 2 3 4",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="a DIV2K-layout root (default data/DIV2K; in quick mode the mini-DIV2K "
        "when DIV2K is absent) or any folder of HR images (LR made with the MATLAB "
        "bicubic, a fixed --holdout share kept for validation)",
    )
    p.add_argument(
        "--iters",
        type=int,
        default=None,
        help="updates (default 300000, the paper's ablations; 1000000 for final models)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="patches per update, the global batch over all GPUs (default 16)",
    )
    p.add_argument("--patch-size", type=int, default=None, help="LR patch side (default 48)")
    p.add_argument("--loss", default=None, choices=("l1", "l2"), help="default l1 (the paper)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="initial learning rate (default 1e-4, halved every 2e5 updates)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="CHECKPOINT",
        help="start from these weights: our checkpoint, an official EDSR-PyTorch or BasicSR "
        "file (or a weights-registry name); another scale copies all but the "
        "upsampler, as the paper starts x3/x4 from x2",
    )
    p.add_argument("--out", default=None, help="output folder (default runs/train)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (removes only the files a run writes)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="validation PSNR every N updates; best.pt keeps the best (default 1000)",
    )
    p.add_argument(
        "--save-every",
        dest="checkpoint_every",
        type=int,
        default=None,
        help="write last.pt every N updates (default 1000)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        default=None,
        choices=("auto", "bf16", "off"),
        help="bf16 autocast: auto (default: on for CUDA GPUs with bf16), bf16, off",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the model (faster on a GPU after minutes of compiling)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument(
        "--holdout",
        type=float,
        default=None,
        help="share of a plain image folder held out for validation (default 0.1)",
    )
    p.add_argument(
        "--storage",
        default=None,
        choices=("auto", "device", "pinned", "cpu"),
        help="where training images live (default auto: on the GPU if they fit, "
        "else pinned CPU memory)",
    )
    p.add_argument("--n-resblocks", type=int, default=None, help="resize the preset: blocks")
    p.add_argument("--n-feats", type=int, default=None, help="resize the preset: features")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate", help="PSNR/SSIM on benchmark sets beside bicubic and the paper's tables"
    )
    p.add_argument("--weights", default=None, help="a registry name, e.g. edsr_baseline_x2")
    p.add_argument("--checkpoint", default=None, help="our .pt/.safetensors, official or BasicSR")
    p.add_argument(
        "--data",
        nargs="+",
        default=["set5", "set14", "b100", "urban100"],
        metavar="SET",
        help="set5 set14 b100 urban100 div2k-valid, or folders of HR images (default: the four "
        "benchmarks)",
    )
    p.add_argument("--scale", nargs="+", type=int, default=None, help="default: the model's")
    p.add_argument("--self-ensemble", action="store_true", help="EDSR+: the 8 flips/rotations")
    p.add_argument(
        "--protocol",
        choices=["benchmark", "div2k"],
        default=None,
        help="benchmark: Y, crop s (Table 3); div2k: RGB, crop 6+s (Table 2); default per set",
    )
    p.add_argument("--tile", type=int, default=None, help="LR tile size, for large images")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write per-image PSNR/SSIM")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.add_argument("--limit", type=int, default=None, help="only the first N images per set")
    p.add_argument("--root", default=None, help="data folder (default: data/)")
    p.add_argument("--base-url", default=None, help="mirror for --weights downloads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "download-benchmarks", help="Set5, Set14, B100, Urban100 into data/benchmark (~250 MB)"
    )
    p.add_argument("--root", default=None, help="folder to hold benchmark/ (default: data/)")
    p.add_argument("--url", default=None, help="the archive's URL (default: the official one)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive, if known")
    p.set_defaults(func=_cmd_download_benchmarks)

    p = sub.add_parser("download-weights", help="fetch pretrained weights by name (or --list)")
    p.add_argument("names", nargs="*", help="e.g. edsr_baseline_x2 edsr_x4 mdsr")
    p.add_argument("--base-url", default=None, help="a mirror folder holding the same files")
    p.add_argument("--list", action="store_true", help="list the known names")
    p.set_defaults(func=_cmd_download_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 some files failed, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, one line printed)
        return done.code if isinstance(done.code, int) else 2
    try:
        return args.func(args)
    except EdsrLabError as err:  # bad input: one line, exit 2 (its message says what to do)
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. a disk that is full or went away while writing
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; files already written are complete (each is written atomically)",
            file=sys.stderr,
        )
        return 130
