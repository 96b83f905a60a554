"""Which training-step configuration is fastest on this GPU? (CUDA only, about 100 s.)

Times one Adam step of EDSR x2 (32x256) and the EDSR baseline x2 (16x64) at the paper's
batch (16 x 48x48 LR) in several configurations: the official fp32 eager loop; bf16
autocast + channels_last + fused Adam; + ``torch.compile``; + CUDA graphs
(``mode="reduce-overhead"``); with and without the GPU patch sampler in the loop. Prints
steps/s and the first step's seconds (compile time) as JSON. It was used to choose the
trainer's defaults; the figures measured with it are in ``benchmarks/RESULTS.md``.

    PYTHONPATH=. python benchmarks/probe_step_modes.py
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edsr_lab.data import PatchSampler  # noqa: E402
from edsr_lab.models import EDSR  # noqa: E402

DEVICE = torch.device("cuda")


def rate(step: Callable[[], object], n: int = 60, warm: int = 10) -> float:
    """Steps per second over ``n`` steps after ``warm`` untimed ones (synchronised)."""
    for _ in range(warm):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def variant(
    base: torch.nn.Module,
    *,
    bf16: bool,
    channels_last: bool,
    fused: bool,
    compile_mode: str | None,
    cudnn_benchmark: bool = True,
    sampler: PatchSampler | None = None,
) -> tuple[float, float]:
    """(steps/s, first-step seconds) of one configuration on a fresh copy of ``base``."""
    torch.backends.cudnn.benchmark = cudnn_benchmark
    net = copy.deepcopy(base).to(DEVICE).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-8 / 255, fused=fused)
    forward = torch.compile(net, mode=compile_mode) if compile_mode else net
    s = base.scale
    fixed = (
        torch.rand(16, 3, 48, 48, device=DEVICE),
        torch.rand(16, 3, 48 * s, 48 * s, device=DEVICE),
    )

    def step() -> torch.Tensor:
        lr, hr = sampler.sample() if sampler is not None else fixed
        if channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = forward(lr)
        loss = F.l1_loss(out.float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    return rate(step), first


def main() -> dict[str, object]:
    print(torch.cuda.get_device_name(0), torch.__version__, flush=True)
    torch.manual_seed(0)
    edsr_x2 = EDSR(n_resblocks=32, n_feats=256, scale=2, res_scale=0.1)
    baseline_x2 = EDSR(n_resblocks=16, n_feats=64, scale=2, res_scale=1.0)
    g = torch.Generator().manual_seed(0)
    lrs = [torch.randint(0, 256, (3, 339, 510), generator=g, dtype=torch.uint8) for _ in range(16)]
    hrs = [x.repeat_interleave(2, 1).repeat_interleave(2, 2) for x in lrs]
    sampler = PatchSampler(hrs, lrs, 2, patch_size=48, batch_size=16, device=DEVICE)

    ref = dict(bf16=False, channels_last=False, fused=False, compile_mode=None)
    tuned = dict(bf16=True, channels_last=True, fused=True, compile_mode=None)
    plan = [
        ("edsr_x2", edsr_x2, "ref_fp32", dict(ref, cudnn_benchmark=False)),
        ("edsr_x2", edsr_x2, "bf16_cl_fused", tuned),
        ("edsr_x2", edsr_x2, "bf16_cl_fused_compile", dict(tuned, compile_mode="default")),
        ("base_x2", baseline_x2, "ref_fp32", dict(ref, cudnn_benchmark=False)),
        ("base_x2", baseline_x2, "bf16_cl_fused", tuned),
        ("base_x2", baseline_x2, "bf16_cl_fused_ro", dict(tuned, compile_mode="reduce-overhead")),
        (
            "base_x2",
            baseline_x2,
            "bf16_cl_fused_ro+sampler",
            dict(tuned, compile_mode="reduce-overhead", sampler=sampler),
        ),
        (
            "base_x2",
            baseline_x2,
            "fp32_nocl_fused_ro+sampler",
            dict(ref, fused=True, compile_mode="reduce-overhead", sampler=sampler),
        ),
        ("base_x2", baseline_x2, "bf16_cl_fused+sampler", dict(tuned, sampler=sampler)),
    ]
    res: dict[str, object] = {}
    for model_name, model, label, kwargs in plan:
        key = f"{model_name}/{label}"
        try:
            r, first = variant(model, **kwargs)
            res[key] = (round(r, 1), round(first, 1))
        except RuntimeError as e:  # a compile mode this torch/GPU cannot do: report, go on
            res[key] = repr(e)[:200]
        print(key, res[key], flush=True)
        torch._dynamo.reset()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(300):
        sampler.sample()
    torch.cuda.synchronize()
    res["sampler_batches_per_s"] = round(300 / (time.perf_counter() - t), 1)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
