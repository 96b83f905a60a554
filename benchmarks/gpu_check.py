"""The course's GPU numbers in one run: CUDA tests, training speed, sampler, fidelity.

One prepared script for a GPU session (it is written to finish in under 8 minutes on one
H100/H200) that prints one table and writes it as JSON. On a CPU, ``--tiny`` runs every
part in seconds with tiny models so CI checks that the script works.

Parts (each one row group of the table):

1. ``tests``: the CUDA-only unit tests (``pytest -k cuda``; they skip on a CPU).
2. ``train``: training steps per second at the paper's batch (16 x 48x48 LR patches):
   - *reference*: how EDSR-PyTorch trains (fp32, NCHW, eager, ``torch.optim.Adam`` without
     fusion, default cuDNN flags), written out here by hand, on data already on the GPU;
   - *ours*: ``edsr_lab.train.train`` with its default settings, end to end (GPU patch
     sampler, loss read-back, bookkeeping included), measured between two log points;
   - *ours + compile*: the same with ``compile=True``.
3. ``sampler``: augmented patch pairs per second from the GPU-resident ``PatchSampler``.
4. ``fidelity``: the EDSR baseline x2 trained for the same steps on the mini-DIV2K in fp32
   and with bf16 autocast (our GPU default), PSNR on its held-out images (benchmark
   protocol), so the cost of bf16 is measured, not assumed.
5. ``inference``: ``benchmarks/bench_infer.py`` (ms per DIV2K-sized image), if present.

    python benchmarks/gpu_check.py --tiny                 # CPU smoke run (CI)
    python benchmarks/gpu_check.py --out gpu_check.json   # on a GPU: the real numbers

Record the printed table, the card and the date in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from edsr_lab.models import EDSR  # noqa: E402

#: name -> (scale, paper-size (blocks, feats, res_scale), tiny (blocks, feats, res_scale))
MODELS = {
    "edsr_baseline_x2": (2, (16, 64, 1.0), (2, 8, 1.0)),
    "edsr_x2": (2, (32, 256, 0.1), (2, 16, 0.1)),
    "edsr_x4": (4, (32, 256, 0.1), (2, 16, 0.1)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(name: str, tiny: bool) -> torch.nn.Module:
    scale, full, small = MODELS[name]
    blocks, feats, res_scale = small if tiny else full
    return EDSR(n_resblocks=blocks, n_feats=feats, scale=scale, res_scale=res_scale)


# ----------------------------------------------------------------------------------------
# 1. CUDA tests
# ----------------------------------------------------------------------------------------


def run_cuda_tests() -> dict[str, Any]:
    """Run the unit tests named ``test_cuda*``; return pytest's summary line."""
    # Only the files that hold CUDA tests: the others may need notebook tooling (nbformat,
    # a browser) that a bare GPU machine lacks, and a collection error would hide the rest.
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "def test_cuda" in p.read_text()
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider"]
    cmd += ["-k", "cuda", *files]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr.strip().splitlines()[-1:]
    if proc.returncode not in (0, 5):  # 5 = nothing collected
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
    return {
        "returncode": proc.returncode,
        "summary": summary,
        "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------------------
# 2. Training speed
# ----------------------------------------------------------------------------------------


def reference_rate(model: torch.nn.Module, batch: int, patch: int, steps: int, device) -> float:
    """it/s of the official loop: fp32, NCHW, eager, unfused Adam, L1 on 0..255 images."""
    torch.backends.cudnn.benchmark = False
    net = build_like(model).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    s = net.scale
    lr = torch.rand(batch, 3, patch, patch, device=device)
    hr = torch.rand(batch, 3, patch * s, patch * s, device=device)

    def step() -> None:
        opt.zero_grad()
        loss = torch.nn.functional.l1_loss(net(lr) * 255, hr * 255)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    _sync(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return 1.0 / statistics.median(times)


def build_like(model: torch.nn.Module) -> torch.nn.Module:
    """A fresh model with the same architecture (and the same initial weights)."""
    import copy

    return copy.deepcopy(model)


def synthetic_sampler(scale: int, batch: int, patch: int, device, n_images: int = 8):
    """A GPU PatchSampler over random uint8 images (DIV2K-like LR size 510x339)."""
    from edsr_lab.data import PatchSampler

    g = torch.Generator().manual_seed(0)
    h, w = (339, 510) if patch >= 48 else (4 * patch, 5 * patch)
    lrs = [
        torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(n_images)
    ]
    hrs = [x.repeat_interleave(scale, 1).repeat_interleave(scale, 2) for x in lrs]
    return PatchSampler(hrs, lrs, scale, patch_size=patch, batch_size=batch, device=device)


def ours_rate(
    model: torch.nn.Module, batch: int, patch: int, steps: int, warmup: int, device, **cfg
) -> dict[str, float]:
    """it/s of ``edsr_lab.train.train`` end to end, between step ``warmup`` and the end.

    The callback runs at log points, right after the loss read-back has synchronised the
    GPU, so the clock readings there bracket exactly the steps in between.
    """
    from edsr_lab.train import train

    net = build_like(model)
    sampler = synthetic_sampler(net.scale, batch, patch, device)
    marks: dict[int, float] = {}
    t0 = time.perf_counter()

    def callback(step: int, history: Any) -> None:
        _sync(device)
        marks[step] = time.perf_counter()

    train(
        net,
        sampler,
        iters=warmup + steps,
        log_every=warmup if warmup else steps,
        device=device,
        callback=callback,
        progress=False,
        **cfg,
    )
    first = marks[warmup] - t0
    return {"it_per_s": steps / (marks[warmup + steps] - marks[warmup]), "warmup_s": first}


def conv_flops_of(model: torch.nn.Module, patch: int, device) -> int:
    from edsr_lab.profile import conv_flops

    x = torch.rand(1, 3, patch, patch, device=device)
    return conv_flops(model.to(device), x)


def bench_training(args, device) -> list[dict[str, Any]]:
    rows = []
    batch, patch = (2, 12) if args.tiny else (16, 48)
    steps, warmup = (5, 2) if args.tiny else (args.steps, 20)
    for name in args.models:
        torch.manual_seed(0)
        model = build(name, args.tiny)
        flops = 3 * batch * conv_flops_of(model, patch, device)  # a step ~ 3x the forward
        ref = reference_rate(model, batch, patch, steps, device)
        row = {"model": name, "tflop_per_step": flops / 1e12, "reference": ref}
        row["ours"] = ours_rate(model, batch, patch, steps, warmup, device)["it_per_s"]
        if args.compile:
            r = ours_rate(model, batch, patch, steps, warmup, device, compile=True)
            row["ours_compile"], row["compile_warmup_s"] = r["it_per_s"], r["warmup_s"]
        rows.append(row)
        print(f"  train {name}: {json.dumps(row)}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# ----------------------------------------------------------------------------------------
# 3. Sampler throughput
# ----------------------------------------------------------------------------------------


def bench_sampler(args, device) -> dict[str, float]:
    batch, patch = (2, 12) if args.tiny else (16, 48)
    sampler = synthetic_sampler(2, batch, patch, device, n_images=4 if args.tiny else 16)
    n = 20 if args.tiny else 500
    for _ in range(5):
        sampler.sample()
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        sampler.sample()
    _sync(device)
    dt = time.perf_counter() - t
    return {"batches_per_s": n / dt, "pairs_per_s": n * batch / dt}


# ----------------------------------------------------------------------------------------
# 4. Fidelity: fp32 vs bf16 training
# ----------------------------------------------------------------------------------------


def bench_fidelity(args, device) -> dict[str, Any]:
    """Train the same baseline x2 in fp32 and bf16 for the same steps; held-out PSNR."""
    from edsr_lab.data import PatchSampler, find_pairs, load_pairs, mini_div2k
    from edsr_lab.evaluate import evaluate
    from edsr_lab.inference import bicubic_upscale
    from edsr_lab.models import edsr_baseline
    from edsr_lab.train import train

    root = mini_div2k(2)
    hrs, lrs = load_pairs(find_pairs(root, "train", 2), scale=2)
    valid = load_pairs(find_pairs(root, "valid", 2), scale=2)
    batch, patch = (2, 12) if args.tiny else (16, 48)
    steps = 10 if args.tiny else args.fidelity_steps
    out: dict[str, Any] = {"steps": steps}
    modes = ["off"] + (["auto"] if device.type == "cuda" else [])
    for amp in modes:
        torch.manual_seed(0)
        model = edsr_baseline(2) if not args.tiny else build("edsr_baseline_x2", True)
        sampler = PatchSampler(hrs, lrs, 2, patch_size=patch, batch_size=batch, device=device)
        t = time.perf_counter()
        train(model, sampler, iters=steps, amp=amp, device=device, progress=False, seed=0)
        _sync(device)
        seconds = time.perf_counter() - t
        hr_v = [h.float() / 255 for h in valid[0]]
        lr_v = [x.float() / 255 for x in valid[1]]
        res = evaluate(model, list(zip(hr_v, lr_v, strict=True)), scale=2, compute_ssim=False)
        label = "fp32" if amp == "off" else "bf16"
        out[label] = {"psnr": res.mean_psnr, "seconds": seconds}
        print(f"  fidelity {label}: {json.dumps(out[label])}", flush=True)
    bic = evaluate(lambda x: bicubic_upscale(x, 2), list(zip(hr_v, lr_v, strict=True)), scale=2)
    out["bicubic"] = {"psnr": bic.mean_psnr, "seconds": 0.0}
    return out


# ----------------------------------------------------------------------------------------
# 5. Inference
# ----------------------------------------------------------------------------------------


def run_bench_infer(args) -> dict[str, Any]:
    script = ROOT / "benchmarks" / "bench_infer.py"
    if not script.exists():
        return {"skipped": "benchmarks/bench_infer.py not present"}
    cmd = [sys.executable, str(script)] + (["--tiny"] if args.tiny else ["--device", "cuda"])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    print(proc.stdout[-6000:])
    if proc.returncode:
        print(proc.stderr[-3000:])
    return {
        "returncode": proc.returncode,
        "stdout": proc.stdout[-6000:],
        "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------------------


def format_table(res: dict[str, Any]) -> str:
    lines = [
        f"edsr-lab GPU check | {res['device_name']} | torch {res['torch']} | "
        f"CUDA {res['cuda']} | {res['date']}",
        f"CUDA tests: {res['tests'].get('summary')}",
        "",
        f"{'training (batch 16x48^2)':<26}{'GFLOP/step':>11}{'reference':>11}{'ours':>9}"
        f"{'ours+compile':>14}{'ours/ref':>10}{'TFLOP/s':>9}",
    ]
    for r in res["train"]:
        best = max(r["ours"], r.get("ours_compile", 0.0))
        comp = f"{r['ours_compile']:.1f}" if "ours_compile" in r else "-"
        lines.append(
            f"{r['model']:<26}{r['tflop_per_step'] * 1e3:>11.1f}{r['reference']:>11.1f}"
            f"{r['ours']:>9.1f}{comp:>14}{best / r['reference']:>9.2f}x"
            f"{r['tflop_per_step'] * best:>9.1f}"
        )
    s = res["sampler"]
    lines.append(
        f"\nsampler (GPU, x2, 16x48^2): {s['batches_per_s']:.0f} batches/s = "
        f"{s['pairs_per_s']:.0f} patch pairs/s"
    )
    f = res["fidelity"]
    parts = [f"{k} {v['psnr']:.3f} dB ({v['seconds']:.0f} s)" for k, v in f.items() if k != "steps"]
    lines.append(f"fidelity, baseline x2, {f['steps']} steps on mini-DIV2K: " + ", ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny models: a CPU smoke run")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=200, help="timed training steps per model")
    p.add_argument("--fidelity-steps", type=int, default=2000)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--skip", default="", help="comma list of parts to skip: tests,infer,...")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    skip = set(args.skip.split(","))
    device = torch.device(args.device)
    if args.tiny:
        args.compile = False  # compiling tiny CPU models only costs time
    res: dict[str, Any] = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%d"),
        "tiny": args.tiny,
    }
    t0 = time.perf_counter()
    res["tests"] = {"summary": "skipped"} if "tests" in skip else run_cuda_tests()
    print("tests:", res["tests"]["summary"], flush=True)
    res["train"] = bench_training(args, device)
    res["sampler"] = bench_sampler(args, device)
    res["fidelity"] = bench_fidelity(args, device)
    res["inference"] = {"skipped": "--skip"} if "infer" in skip else run_bench_infer(args)
    res["seconds"] = time.perf_counter() - t0
    table = format_table(res)
    print("\n" + table + f"\n(total {res['seconds']:.0f} s)")
    res["table"] = table
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2, default=str))
    return res


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
