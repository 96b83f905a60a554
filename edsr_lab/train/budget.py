"""How much memory a training run needs, estimated before anything big is built.

``--n-feats 100000`` asks for ~2.9 x 10^12 parameters: building that model fails deep inside
torch ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 360000000000
bytes") after minutes, or the machine swaps. :func:`estimate_training_memory` works the
bill out from tiny copies of the architecture instead, so that the run can refuse, in one
line naming the option to change, what cannot fit (:func:`describe_shortfall`).

The estimate is exact for the parameters and the activations autograd keeps (the two
parts that grow without bound): parameters are linear in the number of residual blocks B
and quadratic in the features F, and the saved activations are linear in B, in F and in
batch x patch area, so a few models with B in {0, 1} and F in {4, 8, 12} (built on the
``meta`` device: no memory) and one forward pass of a 1 x 3 x 8 x 8 patch through each
give the coefficients (:func:`edsr_lab.profile.activation_memory` counts what autograd
saves). Backward's short-lived buffers and the allocator's slack come on top: the total
is a lower bound, so a refused run could never have fitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from edsr_lab.files import human_bytes
from edsr_lab.profile import activation_memory

__all__ = ["MemoryEstimate", "available_bytes", "describe_shortfall", "estimate_training_memory"]

# Bytes per parameter during training: fp32 weights, their gradients and Adam's two moments.
_BYTES_PER_PARAMETER = 4 * 4
_PROBE_FEATS = (4, 8, 12)  # three points fix a quadratic in F
_PROBE_PATCH = 8  # LR side of the probe patch; activations scale with the area


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory of one training step (bytes; a lower bound, see the module docstring).

    Attributes:
        parameters: the model's trainable parameter count (exact; as
            :func:`edsr_lab.models.count_parameters`).
        weights_bytes: fp32 weights + gradients + Adam's two moments (16 bytes each).
        activation_bytes: what autograd keeps for the backward pass of one batch (the
            largest over the scales of a multi-scale model).
        batch_bytes: the batch itself: LR and HR patches, the output and the loss's
            difference (float32).
    """

    parameters: int
    weights_bytes: int
    activation_bytes: int
    batch_bytes: int

    @property
    def total(self) -> int:
        return self.weights_bytes + self.activation_bytes + self.batch_bytes


def _quadratic_at(points: dict[int, int], x: int) -> int:
    """The quadratic through three (x, y) points, evaluated at ``x`` (exact, Lagrange)."""
    xs = list(points)
    total = Fraction(0)
    for i, xi in enumerate(xs):
        term = Fraction(points[xi])
        for j, xj in enumerate(xs):
            if i != j:
                term *= Fraction(x - xj, xi - xj)
        total += term
    return int(total)


def _linear_at(points: dict[int, int], x: int) -> int:
    (x0, y0), (x1, y1) = points.items()
    return int(Fraction(y0) + Fraction(y1 - y0, x1 - x0) * (x - x0))


def _parameters(build: Callable[[int, int], nn.Module], n_resblocks: int, n_feats: int) -> int:
    """Parameter count of ``build(n_resblocks, n_feats)`` without building it."""
    counts = {}
    with torch.device("meta"):  # shapes only: nothing is allocated
        for b in (0, 1):
            for f in _PROBE_FEATS:
                counts[b, f] = sum(p.numel() for p in build(b, f).parameters() if p.requires_grad)
    fixed = _quadratic_at({f: counts[0, f] for f in _PROBE_FEATS}, n_feats)
    per_block = _quadratic_at({f: counts[1, f] - counts[0, f] for f in _PROBE_FEATS}, n_feats)
    return fixed + n_resblocks * per_block


def _activations(
    build: Callable[[int, int], nn.Module],
    scales: tuple[int, ...],
    n_resblocks: int,
    n_feats: int,
    batch_size: int,
    patch_size: int,
) -> int:
    """Bytes autograd saves for one training batch (the largest scale's)."""
    x = torch.rand(1, 3, _PROBE_PATCH, _PROBE_PATCH)
    worst = 0
    for s in scales:
        saved = {}
        for b in (0, 1):
            for f in _PROBE_FEATS[:2]:  # linear in F: two points
                model = build(b, f).train()
                forward = model.forward
                if len(scales) > 1:  # MDSR: model(x, scale)

                    def forward(t: torch.Tensor, m: nn.Module = model, s: int = s) -> torch.Tensor:
                        return m(t, s)

                saved[b, f] = activation_memory(_Call(model, forward), x)
        fixed = _linear_at({f: saved[0, f] for f in _PROBE_FEATS[:2]}, n_feats)
        per_block = _linear_at({f: saved[1, f] - saved[0, f] for f in _PROBE_FEATS[:2]}, n_feats)
        worst = max(worst, fixed + n_resblocks * per_block)
    return worst * batch_size * patch_size**2 // _PROBE_PATCH**2


class _Call(nn.Module):
    """``model`` called as ``forward(x)`` (so activation_memory can call an MDSR at a scale)."""

    def __init__(self, model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model, self._call = model, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(x)


def estimate_training_memory(
    build: Callable[[int, int], nn.Module],
    *,
    n_resblocks: int,
    n_feats: int,
    scales: tuple[int, ...],
    batch_size: int,
    patch_size: int,
) -> MemoryEstimate:
    """The memory one training step of ``build(n_resblocks, n_feats)`` needs.

    Args:
        build: ``build(n_resblocks, n_feats) -> nn.Module``, the run's architecture at
            another size (called only with tiny sizes).
        n_resblocks, n_feats: the size asked for (B >= 0, F >= 1).
        scales: the model's scales (MDSR: several; a step trains one of them).
        batch_size: patches per step on this device; patch_size: the LR patch side.
    """
    params = _parameters(build, n_resblocks, n_feats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: a thread pool only adds waiting
    try:
        acts = _activations(build, scales, n_resblocks, n_feats, batch_size, patch_size)
    finally:
        torch.set_num_threads(threads)
    s = max(scales)
    lr = batch_size * 3 * patch_size**2
    batch = 4 * (lr + 3 * lr * s * s)  # LR, HR, the output and |output - HR|, float32
    return MemoryEstimate(params, params * _BYTES_PER_PARAMETER, acts, batch)


def available_bytes(device: torch.device) -> tuple[int, str] | None:
    """``(bytes free, where)`` for training on ``device``, or None where unknown (MPS)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"GPU {device}"
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024, "this machine"
        except (OSError, ValueError, IndexError):
            return None
    return None


def describe_shortfall(estimate: MemoryEstimate, available: tuple[int, str]) -> str:
    """``"training would need at least 11.6 TiB of memory (...), but ... has 21.9 GiB free"``."""
    free, where = available
    return (
        f"training would need at least {human_bytes(estimate.total)} of memory "
        f"({estimate.parameters:,} parameters: {human_bytes(estimate.weights_bytes)} for "
        f"weights, gradients and Adam's moments; {human_bytes(estimate.activation_bytes)} of "
        f"activations and {human_bytes(estimate.batch_bytes)} of patches per batch), but "
        f"{where} has {human_bytes(free)} free"
    )
