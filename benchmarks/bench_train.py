"""Training-step speed of EDSR models: the official code's loop vs a tuned one.

For each model, one training step (forward, L1 loss, backward, Adam update) on random
data already on the device is timed in two (optionally three) ways, in one process:

  reference  how EDSR-PyTorch trains: fp32, NCHW, eager, default cuDNN flags,
             torch.optim.Adam without fusion
  tuned      bf16 autocast (CUDA only), channels_last, cudnn.benchmark, fused Adam (CUDA)
  compiled   tuned + torch.compile (with --compile; compile time reported separately)

Timing: warm-up steps excluded, then the median of --steps steps, each bracketed by CUDA
events on a GPU (perf_counter on a CPU). FLOPs are counted per convolution (2 x MACs,
forward hooks), and a training step is taken as 3x the forward pass. The step code is
edsr_lab.train's own (make_train_step), so this measures what train() runs.

    python benchmarks/bench_train.py                  # tiny models on CPU (seconds)
    python benchmarks/bench_train.py --device cuda    # paper-size models, batch 16x48^2
    python benchmarks/bench_train.py --device cuda --compile --steps 100

Results go in benchmarks/RESULTS.md (card, date, table); CPU numbers only show that the
script works (bf16 and fused Adam are GPU features, so the ratio is ~1 there).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

try:
    import edsr_lab  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edsr_lab.profile import conv_flops, time_steps  # noqa: E402
from edsr_lab.train import (  # noqa: E402
    TrainConfig,
    make_optimizer,
    make_train_step,
    resolve_amp,
)

#: name -> (scale, full-size builder args, tiny builder args): (n_resblocks, n_feats, res_scale)
MODELS: dict[str, tuple[int, tuple[int, int, float], tuple[int, int, float]]] = {
    "edsr_baseline_x2": (2, (16, 64, 1.0), (2, 16, 1.0)),
    "edsr_x2": (2, (32, 256, 0.1), (2, 32, 0.1)),
    "edsr_x4": (4, (32, 256, 0.1), (2, 32, 0.1)),
}


def build_model(name: str, tiny: bool) -> torch.nn.Module:
    from edsr_lab.models import EDSR

    scale, full, small = MODELS[name]
    n_resblocks, n_feats, res_scale = small if tiny else full
    return EDSR(n_resblocks=n_resblocks, n_feats=n_feats, scale=scale, res_scale=res_scale)


def bench_variant(
    model: torch.nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    *,
    tuned: bool,
    compile: bool,
    steps: int,
    warmup: int,
    device: torch.device,
) -> dict[str, Any]:
    """Median ms per training step of a fresh copy of ``model`` in one configuration."""
    net = copy.deepcopy(model).to(device).train()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = tuned  # autotune conv algorithms (tuned only)
    if tuned:
        net.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(net, TrainConfig(), device, fused=tuned and device.type == "cuda")
    forward = torch.compile(net) if compile else net
    step = make_train_step(
        forward,
        optimizer,
        loss="l1",
        amp_dtype=resolve_amp("auto" if tuned else "off", device),
        channels_last=tuned,
        track_grad_norm=False,
    )
    t0 = time.perf_counter()
    step(lr, hr)  # first call: compiles, allocates; reported, not timed
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first_s = time.perf_counter() - t0
    ms = time_steps(lambda: step(lr, hr), steps=steps, warmup=warmup, device=device)
    return {"ms": statistics.median(ms), "first_step_s": first_s}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        scale = MODELS[name][0]
        model = build_model(name, args.tiny)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        lr = torch.rand(args.batch_size, 3, args.patch_size, args.patch_size, device=device)
        hr = torch.rand(
            args.batch_size, 3, args.patch_size * scale, args.patch_size * scale, device=device
        )
        flops = 3 * conv_flops(model.to(device), lr)  # training step = 3x forward
        row: dict[str, Any] = {"model": name, "params": params, "tflop_per_step": flops / 1e12}
        variants = [("reference", False, False), ("tuned", True, False)]
        if args.compile:
            variants.append(("compiled", True, True))
        for label, tuned, comp in variants:
            r = bench_variant(
                model,
                lr,
                hr,
                tuned=tuned,
                compile=comp,
                steps=args.steps,
                warmup=args.warmup,
                device=device,
            )
            row[label] = {
                "it_per_s": 1e3 / r["ms"],
                "tflops": flops / (r["ms"] / 1e3) / 1e12,
                "first_step_s": r["first_step_s"],
            }
        best = row["compiled" if args.compile else "tuned"]["it_per_s"]
        row["ratio"] = best / row["reference"]["it_per_s"]
        rows.append(row)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def format_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    labels = ["reference", "tuned"] + (["compiled"] if args.compile else [])
    head = f"{'model':<18} {'params':>10} {'GFLOP/step':>10}"
    for label in labels:
        head += f" {label + ' it/s':>15} {'TFLOP/s':>8}"
    head += f" {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['model']:<18} {r['params']:>10,} {r['tflop_per_step'] * 1e3:>10.2f}"
        for label in labels:
            line += f" {r[label]['it_per_s']:>15.1f} {r[label]['tflops']:>8.3f}"
        line += f" {r['ratio']:>5.2f}x"
        lines.append(line)
    if args.compile:
        lines.append(
            "compile time (first step, s): "
            + ", ".join(f"{r['model']} {r['compiled']['first_step_s']:.1f}" for r in rows)
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from edsr_lab.config import default_device

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=str(default_device()), help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated subset of: {', '.join(MODELS)}",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", default=None, help="tiny models/batches")
    size.add_argument("--full", dest="tiny", action="store_false", help="paper-size models")
    p.add_argument("--steps", type=int, default=None, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps before timing")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--patch-size", type=int, default=None, help="LR patch side")
    p.add_argument("--compile", action="store_true", help="also time tuned + torch.compile")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if args.tiny is None:  # tiny by default on CPU: the full models take minutes per step
        args.tiny = torch.device(args.device).type != "cuda"
    defaults = (5, 1, 2, 12) if args.tiny else (50, 10, 16, 48)  # paper: batch 16 of 48^2
    for key, value in zip(("steps", "warmup", "batch_size", "patch_size"), defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    size = "tiny models" if args.tiny else "paper-size models"
    print(
        f"EDSR training step, {size}, batch {args.batch_size} x {args.patch_size}^2 LR, "
        f"{name}, torch {torch.__version__}, median of {args.steps} steps"
    )
    benchmark_flag = torch.backends.cudnn.benchmark
    try:
        rows = run(args)
    finally:
        torch.backends.cudnn.benchmark = benchmark_flag
    print(format_table(rows, args))
    if device.type != "cuda":
        print("(CPU: bf16 autocast and fused Adam are off, so the ratio is not meaningful)")
    return rows


if __name__ == "__main__":
    main()
