"""``upscale`` (image files, DICOM series, NIfTI volumes, folders) and ``upscale-dicom``
(DICOM files and series folders)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edsr_lab.cli.common import int_at_least
from edsr_lab.config import resolve_device

__all__ = ["add_parsers"]

_RANGE_HELP = (
    "intensity range mapped to the model's [0, 1] for files that hold values (16-bit, "
    "integer, float, stacks, DICOM, NIfTI): auto (default: the data's own min..max, over "
    "a whole volume or series), robust (0.5..99.5 percentiles), robust:P1,P2, LO,HI in the "
    "data's units (e.g. --range=-1024,3071: with '=' when LO is negative), or a preset: "
    "8bit 12bit 16bit ct ct-brain ct-soft ct-lung ct-bone. The output keeps the input's "
    "units and dtype; what the model pushes outside is clipped and counted"
)


def _value_options(p: argparse.ArgumentParser, *, volumes: bool) -> None:
    p.add_argument("--range", default="auto", metavar="RANGE", help=_RANGE_HELP)
    p.add_argument(
        "--units",
        default=None,
        help="the values' units, e.g. HU (default: the file's: HU for CT DICOM, the record of "
        "a file written here, else 'stored'); HU enables the ct presets",
    )
    if volumes:
        p.add_argument(
            "--axis",
            type=int,
            choices=(0, 1, 2),
            default=2,
            help="NIfTI: the slicing axis; the other two are upscaled (default 2: axial)",
        )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale",
        help="super-resolve images, DICOM series, NIfTI volumes or folders with a checkpoint",
        description="Super-resolve files. 8-bit pictures keep their kind (grey stays grey, "
        "alpha is upscaled with bicubic and kept). Files that hold values (16-bit, integer, "
        "float, TIFF stacks) go through one intensity map (--range) and keep their dtype and "
        "units, the map recorded in the output. DICOM files (any name) are grouped by series: "
        "one map and one new derived series per source series; NIfTI volumes are done slice "
        "by slice along --axis with their geometry kept. A folder is read for all of these "
        "(not recursively) and what it skips is listed. Every file is tried; failures are "
        "listed, and the exit status is 1 if any failed.",
    )
    p.add_argument("images", nargs="+", help="files and/or folders")
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
    _value_options(p, volumes=True)
    p.add_argument(
        "--format",
        default="dcm",
        choices=("dcm", "png", "tiff"),
        help="DICOM inputs: derived DICOM (default), or their values in a 16-bit PNG / a TIFF "
        "(int16 in HU for CT) with the intensity map recorded in the file",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser(
        "upscale-dicom", help="super-resolve DICOM files or series folders (needs .[dicom])"
    )
    p.add_argument(
        "files",
        nargs="+",
        help="DICOM files and/or folders of a series (with or without file extensions); "
        "multi-frame and colour files too",
    )
    p.add_argument("--checkpoint", required=True, help="our .pt/.safetensors or an official .pt")
    p.add_argument("--out", default="upscaled", help="output folder (default: ./upscaled)")
    p.add_argument(
        "--format",
        default="dcm",
        choices=("dcm", "png", "tiff"),
        help="derived DICOM (default), or the values in a 16-bit PNG / a TIFF (int16 in HU "
        "for CT) with the intensity map recorded in the file",
    )
    p.add_argument(
        "--window",
        nargs=2,
        type=float,
        metavar=("CENTER", "WIDTH"),
        help="with --format png: write the windowed picture for viewing instead of the "
        "values (the values cannot be recovered from it)",
    )
    _value_options(p, volumes=False)
    p.add_argument(
        "--scale", type=int_at_least(1), default=None, help="needed for MDSR checkpoints"
    )
    p.add_argument(
        "--tile", type=int_at_least(1), default=None, help="LR tile size, for large images"
    )
    p.add_argument("--self-ensemble", action="store_true", help="EDSR+: 8x slower, ~+0.1 dB")
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
    from edsr_lab.intensity import parse_range
    from edsr_lab.nifti import is_nifti_file, require_nibabel

    device = resolve_device(args.device)  # before the (slow) model load
    parse_range(args.range)
    sources = upscale.collect_inputs(args.images)  # lists what a folder's skipped
    if any(dicom.is_dicom_file(s) for s in sources):
        # upscale_files checks this too, but only after the (slow) model load
        dicom.require_pydicom()
    if any(is_nifti_file(s) and not dicom.is_dicom_file(s) for s in sources):
        require_nibabel()
    model = _load_model(args.checkpoint, device)
    scale = resolve_scale(model, args.scale, source=args.checkpoint)
    # every kind in one plan: a clash or an existing output of any kind stops the
    # command before anything is written
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
        value_range=args.range,
        units=args.units,
        axis=args.axis,
        fmt=args.format,
    )
    return 1 if failed else 0


def cmd_upscale_dicom(args: argparse.Namespace) -> int:
    from edsr_lab import dicom, upscale
    from edsr_lab.intensity import parse_range

    dicom.require_pydicom()  # one clear line before loading the model, if it is missing
    device = resolve_device(args.device)
    parse_range(args.range)
    model = _load_model(args.checkpoint, device)
    window_cw = tuple(args.window) if args.window else None
    _, failed = upscale.upscale_dicom_files(
        model,
        args.files,
        args.out,
        fmt=args.format,
        scale=args.scale,
        window_cw=window_cw,
        value_range=args.range,
        units=args.units,
        overwrite=args.overwrite,
        tile=args.tile,
        self_ensemble=args.self_ensemble,
        device=device,
    )
    return 1 if failed else 0
