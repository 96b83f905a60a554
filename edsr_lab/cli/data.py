"""``download-div2k``, ``make-dataset`` and ``download-benchmarks``: getting data."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from edsr_lab.cli.common import int_at_least
from edsr_lab.errors import BadArgumentError

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=cmd_download_div2k)

    p = sub.add_parser("make-dataset", help="any folder of HR images -> the DIV2K layout")
    p.add_argument(
        "src",
        help="folder (or file) of HR images; NIfTI volumes, DICOM series and TIFF stacks in "
        "it become one HR image per slice, one intensity map per volume",
    )
    p.add_argument("dst", help="dataset root to create")
    p.add_argument(
        "--scales",
        nargs="+",
        type=int_at_least(2),
        default=[2, 3, 4],
        help="LR scales, whole numbers >= 2 (default: 2 3 4)",
    )
    p.add_argument("--split", default="train", choices=["train", "valid"])
    p.add_argument(
        "--first-index",
        type=int_at_least(0),
        default=1,
        help="number of the first image: DIV2K uses 1 for train, 801 for valid",
    )
    p.add_argument(
        "--degradation",
        default="bicubic",
        metavar="NAME[:k=v,...]",
        help="how LR is made: bicubic (default, MATLAB imresize, the paper's), kspace (MRI "
        "k-space truncation, e.g. kspace:window=hann,noise_sigma=0.01) or ct (blur + noise, "
        "e.g. ct:fwhm=1.5,sigma=0.01); not bicubic: LR in DIV2K_<split>_LR_<name>/",
    )
    p.add_argument("--seed", type=int, default=0, help="LR noise seed (default 0)")
    p.add_argument(
        "--range",
        default="auto",
        metavar="RANGE",
        help="grey sources with more than 8 bits (16-bit PNG, int16/float TIFF): the intensity "
        "range mapped to the 8-bit dataset's 0..255: auto (default: each file's own min..max), "
        "robust, LO,HI in its units (--range=-1024,3071 when LO is negative), a preset "
        "(12bit, ct, ...), or container (divide by 65535, as a photo)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    p.set_defaults(func=cmd_make_dataset)

    p = sub.add_parser(
        "download-benchmarks", help="Set5, Set14, B100, Urban100 into data/benchmark (~250 MB)"
    )
    p.add_argument("--root", default=None, help="folder to hold benchmark/ (default: data/)")
    p.add_argument("--url", default=None, help="the archive's URL (default: the official one)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive, if known")
    p.set_defaults(func=cmd_download_benchmarks)


def cmd_download_div2k(args: argparse.Namespace) -> int:
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
        folder = root / div2k.part_folder(part)
        n = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
        print(f"  {part:<22} {n:>4} images in {folder}")
    print(f"DIV2K parts ready in {root}")
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from edsr_lab.data import div2k, make_dataset
    from edsr_lab.data.degradations import describe_degradation, parse_degradation

    name, params = parse_degradation(args.degradation)

    def progress(done: int, total: int) -> None:
        print(f"\r  {done}/{total} images", end="\n" if done == total else "", flush=True)

    root = make_dataset.make_div2k_layout(
        args.src,
        args.dst,
        scales=args.scales,
        split=args.split,
        first_index=args.first_index,
        overwrite=args.overwrite,
        progress=progress,
        log=print,
        degradation=name,
        params=params,
        seed=args.seed,
        value_range=None if args.range == "container" else args.range,
    )
    lr = f"LR in {div2k.lr_dirname(args.split, args.scales[0], name).split('/')[0]}/"
    made = f"{describe_degradation(name, params)}, seed {args.seed}" if name != "bicubic" else ""
    print(
        f"DIV2K layout written to {root} (scales {args.scales}, split {args.split}; {lr}"
        f"{' made with ' + made if made else ''}); "
        f"DIV2K_{args.split}_sources.csv maps each new name to its source file"
    )
    return 0


def cmd_download_benchmarks(args: argparse.Namespace) -> int:
    from edsr_lab.data import benchmarks

    bench = benchmarks.download_benchmarks(
        args.root, url=args.url or benchmarks.BENCHMARK_URL, sha256=args.sha256
    )
    counts = []
    for key, folder in benchmarks.BENCHMARK_SETS.items():
        n = len(benchmarks.eval_pairs(key, 2, root=bench.parent))
        counts.append(f"{folder} {n}")
    print(f"benchmark sets ready in {bench} ({', '.join(counts)} images)")
    return 0
