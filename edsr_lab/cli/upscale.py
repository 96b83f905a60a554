"""``upscale`` (your image files and folders) and ``upscale-dicom`` (DICOM slices)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edsr_lab.cli.common import int_at_least
from edsr_lab.config import resolve_device

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
        type=int_at_least(1),
        default=None,
        help="the model's scale (needed for MDSR: 2, 3 or 4)",
    )
    p.add_argument("--self-ensemble", action="store_true", help="EDSR+: 8x slower, ~+0.1 dB")
    p.add_argument(
        "--tile", type=int_at_least(1), default=None, help="LR tile size, for large images"
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
    p.set_defaults(func=cmd_upscale)

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
    p.add_argument(
        "--scale", type=int_at_least(1), default=None, help="needed for MDSR checkpoints"
    )
    p.add_argument(
        "--tile", type=int_at_least(1), default=None, help="LR tile size, for large images"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_upscale_dicom)


def _load_model(checkpoint: str, device):
    """A checkpoint file, or a name from the weights registry (``edsr_lab.weights``)."""
    from edsr_lab import weights

    return weights.load_model(checkpoint, map_location=device)


def cmd_upscale(args: argparse.Namespace) -> int:
    from edsr_lab import dicom, upscale
    from edsr_lab.inference import resolve_scale

    device = resolve_device(args.device)  # before the (slow) model load
    sources = upscale.collect_inputs(args.images)
    if any(dicom.is_dicom_file(s) for s in sources):
        # upscale_files checks this too, but only after the (slow) model load
        dicom.require_pydicom()
    model = _load_model(args.checkpoint, device)
    scale = resolve_scale(model, args.scale, source=args.checkpoint)
    # images and DICOM slices in one plan: a clash or an existing output of either kind
    # stops the command before anything is written
    _, failed = upscale.upscale_files(
        model,
        sources,
        Path(args.out).expanduser(),
        scale,
        mode=args.mode,
        bits=args.bits,
        overwrite=args.overwrite,
        tile=args.tile,
        self_ensemble=args.self_ensemble,
        device=device,
    )
    return 1 if failed else 0


def cmd_upscale_dicom(args: argparse.Namespace) -> int:
    from edsr_lab import dicom, upscale

    dicom.require_pydicom()  # one clear line before loading the model, if it is missing
    device = resolve_device(args.device)
    model = _load_model(args.checkpoint, device)
    window_cw = tuple(args.window) if args.window else None
    _, failed = upscale.upscale_dicom_files(
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
