"""The ``evaluate``, ``download-benchmarks`` and ``download-weights`` commands.

:mod:`edsr_lab.cli` defines their arguments and imports this module only when one of them
runs (so ``--help`` stays fast). Each function takes the parsed ``argparse.Namespace``,
prints what it did, and returns the exit status; errors are ``EdsrLabError`` s, which the
CLI prints in one line (exit 2).
"""

from __future__ import annotations

import argparse

from edsr_lab.errors import BadArgumentError


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


def _scales(model, asked: list[int] | None) -> list[int]:
    have = list(getattr(model, "scales", ()) or [getattr(model, "scale", None)])
    have = [int(s) for s in have if s is not None]
    if not asked:
        if not have:
            raise BadArgumentError("the model does not say its scale; pass --scale")
        return have
    wrong = [s for s in asked if s not in have]
    if wrong:
        raise BadArgumentError(
            f"the model upscales by x{'/x'.join(map(str, have))}, not x"
            f"{'/x'.join(map(str, wrong))}; pick a model for that scale (e.g. --weights "
            f"edsr_baseline_x{wrong[0]}) or drop --scale"
        )
    return asked


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edsr_lab.cli import _check_device
    from edsr_lab.evaluate import evaluate_sets

    if args.tile is not None and args.tile < 1:
        raise BadArgumentError(f"--tile {args.tile} must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise BadArgumentError(f"--limit {args.limit} must be >= 1")
    device = _check_device(args.device)
    model = _load_model(args, device)
    reports = []
    for scale in _scales(model, args.scale):
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
        from edsr_lab.evaluate import write_csv_rows

        rows = [row for r in reports for row in r.csv_rows()]
        write_csv_rows(
            rows, args.csv, overwrite=args.overwrite, how_to_overwrite="pass --overwrite"
        )
        print(f"per-image PSNR/SSIM written to {args.csv}")
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


def cmd_download_weights(args: argparse.Namespace) -> int:
    from edsr_lab import weights

    if args.list or not args.names:
        for name, w in weights.registry().items():
            where = w.url or w.file
            scales = "/".join(f"x{s}" for s in w.scales)
            print(f"{name:<28} {w.arch:<8} {scales:<10} {where}")
        if not args.names:
            print(f"(cache: {weights.cache_dir() / 'weights'})")
        return 0
    for name in args.names:
        path = weights.download_weights(name, base_url=args.base_url)
        print(f"{name}: {path} (SHA-256 checked)")
    return 0


__all__ = ["cmd_download_benchmarks", "cmd_download_weights", "cmd_evaluate"]
