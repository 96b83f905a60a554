"""Inference speed of EDSR on a DIV2K-sized image: the official way vs ours.

One LR image of DIV2K validation size (510x339, the x4 LR of a 2040x1356 HR) is
super-resolved at x2 and x4, each way timed in one process:

  reference  how EDSR-PyTorch tests: fp32 weights, NCHW, eager, one forward per image
             (self-ensemble: the 8 flips/rotations one after another)
  bf16+cl    super_resolve(amp=True): bf16 autocast, channels_last weights,
             cudnn.benchmark; self-ensemble batched (2 batches of 4 for a non-square image)
  +compile   the same model through torch.compile (compile time reported separately;
             shown only with --compile, default on CUDA)

Timing: warm-up runs excluded, then the median of --repeats runs, each synchronised (CUDA
events on a GPU, perf_counter on a CPU). "vs fp32" is the PSNR (dB, peak 1) between the
variant's output and the reference output of the same (randomly initialised) weights: a
measure of bf16 rounding, not of image quality.

    python benchmarks/bench_infer.py --tiny              # CPU, tiny models, seconds
    python benchmarks/bench_infer.py --device cuda       # EDSR x2/x4 at 510x339 (+compile)

Floor to reach on one H100/H200: EDSR x4 on 510x339 in under 45 ms (reference ~91 ms).
Results go in benchmarks/RESULTS.md (card, date, table).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

try:
    import edsr_lab  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edsr_lab.data.patches import dihedral, inverse_dihedral  # noqa: E402
from edsr_lab.inference import super_resolve  # noqa: E402
from edsr_lab.models import EDSR  # noqa: E402

#: name -> (scale, full-size (n_resblocks, n_feats, res_scale), tiny ones)
MODELS: dict[str, tuple[int, tuple[int, int, float], tuple[int, int, float]]] = {
    "edsr_x2": (2, (32, 256, 0.1), (1, 8, 0.1)),
    "edsr_x4": (4, (32, 256, 0.1), (1, 8, 0.1)),
    "edsr_baseline_x4": (4, (16, 64, 1.0), (1, 8, 1.0)),
}


def timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def reference_sr(model: torch.nn.Module, x: torch.Tensor, ensemble: bool) -> torch.Tensor:
    """The official test loop: fp32 eager, ensemble members one after another."""
    with torch.inference_mode():
        if not ensemble:
            return model(x).clamp(0, 1)
        acc = sum(inverse_dihedral(model(dihedral(x, k)), k) for k in range(8))
        return (acc / 8).clamp(0, 1)


def psnr_between(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    h, w = (17, 26) if args.tiny else (339, 510)
    rows = []
    for name in args.models:
        scale, full, tiny = MODELS[name]
        n_resblocks, n_feats, res_scale = tiny if args.tiny else full
        torch.manual_seed(0)
        model = EDSR(n_resblocks=n_resblocks, n_feats=n_feats, scale=scale, res_scale=res_scale)
        model = model.to(device).eval()
        x = torch.rand(1, 3, h, w, device=device)
        torch.backends.cudnn.benchmark = False
        variants: list[tuple[str, Callable[[bool], torch.Tensor]]] = [
            ("reference", lambda e, m=model, x=x: reference_sr(m, x, e))
        ]
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
        variants.append(
            (
                "bf16+cl" if cuda else "cl",
                lambda e, m=fast, x=x: super_resolve(m, x, self_ensemble=e, amp=cuda),
            )  # fmt: skip
        )
        compiled = None
        if args.compile:
            compiled = torch.compile(fast, dynamic=False)
            variants.append(
                (
                    ("bf16+cl" if cuda else "cl") + "+compile",
                    lambda e, m=compiled, x=x: super_resolve(m, x, self_ensemble=e, amp=cuda),
                )  # fmt: skip
            )
        for ensemble in (False, True):
            ref_out = None
            for label, fn in variants:
                if label == "reference":
                    torch.backends.cudnn.benchmark = False
                else:
                    torch.backends.cudnn.benchmark = cuda
                compile_s = None
                if "compile" in label:
                    t0 = time.perf_counter()
                    fn(ensemble)
                    if cuda:
                        torch.cuda.synchronize(device)
                    compile_s = time.perf_counter() - t0
                out = fn(ensemble)
                ms = timed(lambda f=fn, e=ensemble: f(e), device, args.warmup, args.repeats)
                if ref_out is None:
                    ref_out = out
                rows.append(
                    {
                        "model": name,
                        "scale": scale,
                        "ensemble": ensemble,
                        "variant": label,
                        "ms": ms,
                        "compile_s": compile_s,
                        "vs_fp32_db": psnr_between(out, ref_out),
                    }
                )
        del model, fast, compiled
        if cuda:
            torch.cuda.empty_cache()
    return rows


def format_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    dev = str(args.device)
    if args.device.startswith("cuda") and torch.cuda.is_available():
        dev += f" ({torch.cuda.get_device_name(torch.device(args.device))})"
    size = "17x26 (tiny)" if args.tiny else "510x339"
    lines = [
        f"EDSR inference, one LR image {size}, device {dev}, torch {torch.__version__}",
        f"median of {args.repeats} runs after {args.warmup} warm-up runs",
        f"{'model':<17}{'ensemble':<10}{'variant':<18}{'ms/image':>10}{'speed-up':>10}"
        f"{'vs fp32 dB':>12}{'compile s':>11}",
    ]
    ref = {(r["model"], r["ensemble"]): r["ms"] for r in rows if r["variant"] == "reference"}
    for r in rows:
        speedup = ref[(r["model"], r["ensemble"])] / r["ms"]
        db = "exact" if math.isinf(r["vs_fp32_db"]) else f"{r['vs_fp32_db']:.1f}"
        comp = f"{r['compile_s']:.1f}" if r["compile_s"] is not None else ""
        lines.append(
            f"{r['model']:<17}{('EDSR+' if r['ensemble'] else 'plain'):<10}{r['variant']:<18}"
            f"{r['ms']:>10.1f}{speedup:>9.2f}x{db:>12}{comp:>11}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default = "cuda" if torch.cuda.is_available() else "cpu"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=default, help="cpu, cuda, cuda:1, ...")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", default=None, help="tiny models and image")
    size.add_argument("--full", dest="tiny", action="store_false", help="EDSR at 510x339")
    p.add_argument("--models", nargs="+", default=["edsr_x2", "edsr_x4"], choices=list(MODELS))
    p.add_argument("--repeats", type=int, default=None, help="timed runs (median reported)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs before timing")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.tiny is None:
        args.tiny = not cuda
    if args.compile is None:
        args.compile = cuda
    args.repeats = args.repeats or (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    rows = run(args)
    print(format_table(rows, args))
    return rows


if __name__ == "__main__":
    main()
