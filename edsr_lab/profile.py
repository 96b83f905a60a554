"""Measuring training cost: speed, memory and FLOPs of a network.

Helpers for notebooks 03 (the cost of batch norm) and 04 (pixel shuffle), and for
``benchmarks/bench_train.py``:

* :func:`measure_step`: it/s and peak memory of full training steps (forward, loss,
  backward, Adam) of a copy of a model, with the speed options of :class:`TrainConfig`;
* :func:`time_steps`: milliseconds per call of any function (CUDA events on a GPU);
* :func:`activation_memory`: bytes saved for backward, exact and identical on every device;
* :func:`conv_flops`: floating-point operations of the convolutions of one forward pass.

Inputs are float32 (N, C, H, W) in [0, 1], as everywhere in ``edsr_lab``.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edsr_lab.config import resolve_device
from edsr_lab.errors import BadArgumentError
from edsr_lab.inference import input_channels, model_scale
from edsr_lab.losses import PAPER_LOSS
from edsr_lab.train import TrainConfig, make_optimizer, make_train_step, resolve_amp

__all__ = ["activation_memory", "conv_flops", "measure_step", "time_steps"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    fn: Callable[[], Any], *, steps: int, warmup: int, device: torch.device
) -> list[float]:
    """Milliseconds of each of ``steps`` calls of ``fn()``, after ``warmup`` untimed calls.

    On CUDA each call is bracketed by CUDA events (GPU time, no per-step host sync);
    elsewhere by ``time.perf_counter``.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(steps)
        ]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) for start, end in events]
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def measure_step(
    model: nn.Module,
    batch: Any = None,
    *,
    scale: int | None = None,
    batch_size: int = 16,
    patch_size: int = 48,
    steps: int = 20,
    warmup: int = 3,
    loss: str = PAPER_LOSS,
    amp: str = "off",
    channels_last: bool = False,
    fused: bool | None = False,
    compile: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Time full training steps (forward, loss, backward, Adam) of a copy of ``model``.

    Args:
        model: the network; a deep copy is trained, so ``model`` is left untouched.
        batch: a sampler (``.sample() -> (lr, hr)``), a tuple ``(lr, hr)`` of tensors, or
            None for random data of ``batch_size`` x ``patch_size``^2 LR patches (HR
            ``patch_size * scale``; ``scale`` defaults to ``model.scale``). One batch is
            reused for every step so data loading is not timed.
        steps, warmup: timed steps and untimed warm-up steps (cuDNN autotuning, compile).
        amp, channels_last, fused, compile: the speed options (see :class:`TrainConfig`);
            the defaults are the official code's plain fp32 loop.

    Returns:
        ``{"it_per_s", "ms_per_step" (median), "ms_per_step_all" (list), "peak_mem_bytes",
        "activation_bytes", "device"}``. ``peak_mem_bytes`` is
        ``torch.cuda.max_memory_allocated`` during the timed steps (weights, Adam state and
        activations) on CUDA, and None on other devices: PyTorch's CPU allocator has no
        peak counter and ``tracemalloc`` does not see its allocations. Compare
        ``activation_bytes`` (from :func:`activation_memory`) instead; it is the same on
        every device, which is why notebook 03 asserts on it.
    """
    device = resolve_device(device)
    net = copy.deepcopy(model).to(device)
    net.train()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if batch is None:
        s = scale or model_scale(model)
        if s is None:
            raise BadArgumentError("measure_step: pass scale= (the model has no .scale attribute)")
        c = input_channels(model) or 3
        g = torch.Generator().manual_seed(0)
        lr = torch.rand(batch_size, c, patch_size, patch_size, generator=g)
        hr = torch.rand(batch_size, c, patch_size * s, patch_size * s, generator=g)
    elif hasattr(batch, "sample"):
        lr, hr = batch.sample()
    else:
        lr, hr = batch
    lr, hr = lr.to(device), hr.to(device)

    activation_bytes = activation_memory(net, lr)
    cfg = TrainConfig()
    optimizer = make_optimizer(net, cfg, device, fused=fused)
    forward = torch.compile(net) if compile else net
    step = make_train_step(
        forward,
        optimizer,
        loss=loss,
        amp_dtype=resolve_amp(amp, device),
        channels_last=channels_last,
        track_grad_norm=False,
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(lambda: step(lr, hr), steps=steps, warmup=warmup, device=device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    ms = statistics.median(times)
    return {
        "it_per_s": 1e3 / ms,
        "ms_per_step": ms,
        "ms_per_step_all": times,
        "peak_mem_bytes": peak,
        "activation_bytes": activation_bytes,
        "device": str(device),
    }


def activation_memory(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of activations that one forward pass keeps for the backward pass.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd saves
    is recorded once (by storage), parameters excluded. This is the memory that grows with
    batch and patch size and that batch norm adds to (BN saves its input and its output
    feeds the next conv, which saves it too). It is exact and identical on every device,
    unlike allocator statistics. The model runs in its current mode (train mode for the
    training cost) and no gradient is kept.

    Args:
        model: the network.
        x: an input batch, e.g. (16, 3, 48, 48) float in [0, 1], on the model's device.
    """
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    param_ptrs |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.strided and t.device.type != "meta":
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in param_ptrs and ptr != 0:
                seen[ptr] = storage.nbytes()
        return t

    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = model(x)
    del out
    return int(sum(seen.values()))


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Floating-point operations of the convolutions in one forward pass on ``x``.

    Each ``nn.Conv2d`` costs 2 x MACs = 2 x out_elements x (in_channels / groups) x kh x kw;
    each ``nn.ConvTranspose2d`` (every input pixel scatters a kh x kw kernel to every output
    channel) 2 x in_elements x (out_channels / groups) x kh x kw. Bias and activations are
    negligible next to it. A training step costs about 3x this
    (forward, plus backward for inputs and for weights). Used for TFLOP/s estimates.
    """
    total = 0

    def hook(module: nn.Conv2d | nn.ConvTranspose2d, inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):
            total += 2 * inp[0].numel() * (module.out_channels // module.groups) * kh * kw
        else:
            total += 2 * out.numel() * (module.in_channels // module.groups) * kh * kw

    convs = (nn.Conv2d, nn.ConvTranspose2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, convs)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total
