"""One training step, the optimizer and the schedule: the arithmetic of Section 4.2.

Shared by :func:`edsr_lab.train.train`, :mod:`edsr_lab.profile` and
``benchmarks/bench_train.py``, so the benchmark measures exactly what training runs.

Every tensor is float32 (N, C, H, W) with values in [0, 1]; the loss is computed in fp32
even under bf16 autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edsr_lab.errors import BadArgumentError, DeviceError
from edsr_lab.losses import PAPER_LOSS, get_loss
from edsr_lab.train.config import TrainConfig

__all__ = [
    "make_optimizer",
    "make_scheduler",
    "make_train_step",
    "resolve_amp",
]


def resolve_amp(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``: torch.bfloat16 or None (fp32).

    bf16 keeps fp32's exponent range, so no loss scaling is needed (unlike fp16). It is
    used only on CUDA: CPU bf16 autocast is slower than fp32 on most laptops.
    """
    if amp in (None, False, "off"):
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if amp in (True, "bf16"):
        if device.type != "cuda":
            raise DeviceError(
                f"amp='bf16' needs a CUDA GPU but the device is {device}; "
                "use amp='auto' (bf16 where it helps) or amp='off'"
            )
        return torch.bfloat16
    raise BadArgumentError(f"amp={amp!r}: use 'auto', 'bf16' or 'off'")


def autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype``, or a no-op context when dtype is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def forward(model: nn.Module, lr: torch.Tensor, scale: int | None) -> torch.Tensor:
    """``model(lr)``, or ``model(lr, scale)`` for a multi-scale batch (MDSR)."""
    return model(lr) if scale is None else model(lr, scale)


def make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device, *, fused: bool | None = None
) -> torch.optim.Adam:
    """Adam with the paper's hyper-parameters; ``fused=None`` means fused on CUDA.

    Its eps is ``config.adam_eps`` (see :class:`TrainConfig`): with it, each update equals
    the official code's, whose loss is on 0..255 pixels.

    The fused kernel updates every parameter in one launch instead of several per tensor,
    which matters for small models where launch overhead dominates.
    """
    if fused is None:
        fused = device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BadArgumentError("the model has no trainable parameters (all requires_grad=False)")
    return torch.optim.Adam(
        params,
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.adam_eps,
        fused=True if fused else None,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    """The paper's step schedule: lr x ``lr_gamma`` every ``lr_decay_every`` updates."""
    return torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_gamma
    )


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)  # one kernel per group instead of one per tensor
    return torch.linalg.vector_norm(torch.stack(norms))


def make_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    loss: str = PAPER_LOSS,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    grad_clip: float | None = None,
    track_grad_norm: bool = True,
) -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
    """Build ``step(lr, hr, scale=None) -> (loss, grad_norm)``: one forward, backward and
    optimizer update; with a ``scale`` the model is called as ``model(lr, scale)`` (MDSR).

    ``model`` may be a ``torch.compile``-d module. Inputs must already be on the model's
    device. Returned values are 0-d tensors on the device (not synchronised): call
    ``.item()`` only when you need the number. ``grad_norm`` is None when neither
    ``track_grad_norm`` nor ``grad_clip`` asks for it. The loss is computed in fp32 even
    under autocast. The scheduler is not stepped here.
    """
    loss_fn = get_loss(loss).fn  # edsr_lab.losses: name -> function
    params = [p for group in optimizer.param_groups for p in group["params"]]
    device_type = params[0].device.type
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(
        lr: torch.Tensor, hr: torch.Tensor, scale: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if channels_last:
            lr = lr.contiguous(memory_format=memory_format)
        with autocast(device_type, amp_dtype):
            sr = forward(model, lr, scale)
        value = loss_fn(sr.float(), hr)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        norm = None
        if grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        elif track_grad_norm:
            norm = _grad_norm(params)
        optimizer.step()
        return value.detach(), norm

    return step
