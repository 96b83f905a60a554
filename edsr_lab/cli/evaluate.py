"""``evaluate`` (PSNR/SSIM on the paper's sets beside bicubic and the paper's tables) and
``download-weights`` (pretrained weights by name)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edsr_lab.cli.common import int_at_least
from edsr_lab.config import resolve_device
from edsr_lab.errors import BadArgumentError, OutputExistsError, OutputPathError
from edsr_lab.paths import unwritable_reason

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--scale", nargs="+", type=int_at_least(1), default=None, help="default: the model's"
    )
    p.add_argument("--self-ensemble", action="store_true", help="EDSR+: the 8 flips/rotations")
    p.add_argument(
        "--protocol",
        choices=["benchmark", "div2k"],
        default=None,
        help="benchmark: Y, crop s (Table 3); div2k: RGB, crop 6+s (Table 2); default per set",
    )
    p.add_argument(
        "--tile", type=int_at_least(1), default=None, help="LR tile size, for large images"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write per-image PSNR/SSIM")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.add_argument(
        "--limit", type=int_at_least(1), default=None, help="only the first N images per set"
    )
    p.add_argument("--root", default=None, help="data folder (default: data/)")
    p.add_argument("--base-url", default=None, help="mirror for --weights downloads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    medical = p.add_argument_group(
        "medical data",
        "NIfTI volumes, DICOM series and 16-bit/integer/float images (files or folders in "
        "--data) are scored per volume on the data range (peak = hi - lo of each volume's "
        "intensity map, in its units), with LR made by --degradation; these options select "
        "that scoring for any folder",
    )
    medical.add_argument(
        "--degradation",
        default=None,
        metavar="NAME[:k=v,...]",
        help="how LR is made from HR: bicubic (default), kspace (MRI k-space truncation, "
        "e.g. kspace:window=hann,noise_sigma=0.01) or ct (blur + noise)",
    )
    medical.add_argument(
        "--range", default=None, metavar="RANGE", help="intensity range (default auto)"
    )
    medical.add_argument("--units", default=None, help="the values' units, e.g. HU")
    medical.add_argument(
        "--axis", type=int, choices=(0, 1, 2), default=None, help="NIfTI slicing axis (default 2)"
    )
    medical.add_argument(
        "--heldout",
        choices=("patient", "series", "volume"),
        default=None,
        help="score only the held-out groups of the split that train --data FOLDER "
        "--split-by (the same key) uses",
    )
    medical.add_argument(
        "--holdout",
        type=float,
        default=None,
        help="with --heldout: the share of groups held out, as given to train (default 0.1)",
    )
    medical.add_argument("--seed", type=int, default=None, help="LR noise seed (default 0)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("download-weights", help="fetch pretrained weights by name (or --list)")
    p.add_argument("names", nargs="*", help="e.g. edsr_baseline_x2 edsr_x4 mdsr")
    p.add_argument("--base-url", default=None, help="a mirror folder holding the same files")
    p.add_argument("--list", action="store_true", help="list the known names")
    p.set_defaults(func=cmd_download_weights)


def _load_model(args: argparse.Namespace, device):
    from edsr_lab import weights

    if bool(args.weights) == bool(args.checkpoint):
        raise BadArgumentError(
            "evaluate needs exactly one of --weights NAME (e.g. edsr_baseline_x2; see "
            "python -m edsr_lab download-weights --list) or --checkpoint PATH"
        )
    if args.weights:
        return weights.load_pretrained(args.weights, base_url=args.base_url, map_location=device)
    return weights.load_model(args.checkpoint, map_location=device)


def _scales(model, asked: list[int] | None, source: str) -> list[int]:
    """The scales to evaluate: those asked (each checked by inference.resolve_scale, which
    suggests weights for a scale the model lacks), else every scale the model serves."""
    from edsr_lab.inference import model_scales, resolve_scale
    from edsr_lab.weights import suggest_for_scale

    if not asked:
        return list(model_scales(model)) or [resolve_scale(model, None, source=source)]
    have = model_scales(model)
    return [
        resolve_scale(
            model, s, source=source, fix=suggest_for_scale(model, s) if s not in have else None
        )
        for s in asked
    ]


def _check_csv(csv: str, overwrite: bool) -> None:
    """Refuse a --csv that cannot be written *before* the evaluation, not after it."""
    path = Path(csv).expanduser()
    if path.is_dir():
        raise OutputPathError(
            f"--csv {csv} is a folder; give a file name, e.g. {path / 'scores.csv'}"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(f"--csv {csv} exists; pass --overwrite to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputPathError(
            f"--csv {csv}: {str(path.parent)!r} is a file, not a folder; choose another --csv"
        )
    if not path.parent.is_dir():
        raise OutputPathError(
            f"--csv {csv}: the folder {str(path.parent)!r} does not exist; create it first"
        )
    reason = unwritable_reason(path.parent)
    if reason is not None:
        raise OutputPathError(f"--csv {csv}: {reason}")


#: The options of the medical scoring (edsr_lab.evaluate_volumes), by their dest.
_MEDICAL_OPTIONS = ("degradation", "range", "units", "axis", "heldout", "holdout", "seed")


def _medical(args: argparse.Namespace) -> bool:
    """True for medical scoring: files holding volumes or values, or a medical option given.
    Checks the medical options before the (slow) model load."""
    from pathlib import Path

    from edsr_lab.data.degradations import parse_degradation
    from edsr_lab.evaluate_volumes import is_medical_data
    from edsr_lab.intensity import parse_range

    given = [f"--{o}" for o in _MEDICAL_OPTIONS if getattr(args, o) is not None]
    if given and not any(Path(d).expanduser().exists() for d in args.data):
        raise BadArgumentError(
            f"{' '.join(given)} score files and folders on their data range, but --data "
            f"{' '.join(args.data)} names no file or folder here (set5, set14... are scored "
            "the paper's way): give your files or folders, or leave these options out"
        )
    if not given and not is_medical_data(args.data):
        return False
    ignored = [o for o, v in (("--protocol", args.protocol), ("--bf16", args.bf16)) if v]
    if ignored:
        raise BadArgumentError(
            f"{' and '.join(ignored)} apply to the photo sets; medical data (volumes, DICOM, "
            "16-bit/integer/float images) are scored in float32 on each volume's data range: "
            f"leave {' and '.join(ignored)} out"
        )
    if args.holdout is not None and args.heldout is None:
        raise BadArgumentError(
            "--holdout is the share of groups --heldout scores; give --heldout patient "
            "(or series, volume) with it"
        )
    if args.scale and len(args.scale) != 1:
        raise BadArgumentError("medical data are scored at one --scale at a time")
    parse_degradation(args.degradation or "bicubic")
    parse_range(args.range or "auto")
    return True


def cmd_evaluate_volumes(args: argparse.Namespace, model, device) -> int:
    """Volumes scored on the data range (edsr_lab.evaluate_volumes); the options were
    checked by :func:`_medical` before the model was loaded."""
    from pathlib import Path

    from edsr_lab.data.degradations import parse_degradation
    from edsr_lab.evaluate import write_csv_rows
    from edsr_lab.evaluate_volumes import evaluate_volumes, heldout_volumes, load_volumes
    from edsr_lab.inference import bicubic_upscale, resolve_scale
    from edsr_lab.volume import model_sr

    name, params = parse_degradation(args.degradation or "bicubic")
    scale = resolve_scale(model, (args.scale or [None])[0], source=args.checkpoint or args.weights)
    volumes = load_volumes(args.data, axis=2 if args.axis is None else args.axis, units=args.units)
    if args.heldout is not None:  # the split of all the volumes, then --limit
        volumes = heldout_volumes(volumes, args.heldout, args.holdout)
    sr = model_sr(model, scale=scale, tile=args.tile, self_ensemble=args.self_ensemble,
                  device=device)  # fmt: skip
    label = args.weights or Path(args.checkpoint).stem
    label += "+" if args.self_ensemble else ""
    result = evaluate_volumes(
        {"bicubic": lambda x: bicubic_upscale(x, scale), label: sr},
        volumes[: args.limit] if args.limit else volumes,
        scale,
        degradation=name,
        params=params,
        value_range=args.range or "auto",
        seed=args.seed or 0,
        progress=None if args.no_progress else lambda v: print(f"  scoring {v}"),
    )
    print(result.table())
    if args.csv:
        write_csv_rows(
            result.rows, args.csv, overwrite=args.overwrite, how_to_overwrite="pass --overwrite"
        )
        print(f"per-volume PSNR/SSIM, with each volume's map and the degradation, in {args.csv}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edsr_lab.evaluate import evaluate_sets, write_csv_rows

    if args.csv:  # before the evaluation, so a bad target never costs its scores
        _check_csv(args.csv, args.overwrite)
    device = resolve_device(args.device)
    medical = _medical(args)
    model = _load_model(args, device)
    if medical:
        return cmd_evaluate_volumes(args, model, device)
    reports = []
    source = f"--weights {args.weights}" if args.weights else f"--checkpoint {args.checkpoint}"
    for scale in _scales(model, args.scale, source):
        report = evaluate_sets(
            model,
            args.data,
            scale,
            protocol=args.protocol,
            self_ensemble=args.self_ensemble,
            tile=args.tile,
            device=device,
            amp=args.bf16,
            root=args.root,
            limit=args.limit,
            progress=not args.no_progress,
        )
        print(report.table())
        reports.append(report)
    if args.csv:
        rows = [row for r in reports for row in r.csv_rows()]
        write_csv_rows(
            rows, args.csv, overwrite=args.overwrite, how_to_overwrite="pass --overwrite"
        )
        print(f"per-image PSNR/SSIM written to {args.csv}")
    return 0


def cmd_download_weights(args: argparse.Namespace) -> int:
    from edsr_lab import weights

    if args.list or not args.names:
        for name, w in weights.registry().items():
            where = w.url or w.file
            scales = "/".join(f"x{s}" for s in w.scales)
            print(f"{name:<28} {w.arch:<8} {scales:<10} {where}")
        if not args.names:
            print(f"(cache: {weights.weights_dir()})")
        return 0
    for name in args.names:
        path = weights.download_weights(name, base_url=args.base_url)
        print(f"{name}: {path} (SHA-256 checked)")
    return 0
