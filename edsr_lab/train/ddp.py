"""Several GPUs with ``torchrun`` (PyTorch DistributedDataParallel).

Under ``torchrun --nproc_per_node N -m edsr_lab train ...`` every process runs the same
run; the global batch stays the recipe's 16 (each of N ranks draws 16/N patches from its
own random stream), gradients are averaged by DDP, and only rank 0 writes files. Without
torchrun everything here is a no-op: rank 0 of 1.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from edsr_lab.config import resolve_device
from edsr_lab.errors import TrainOptionError

__all__ = [
    "DDP",
    "any_rank",
    "average_losses_across_ranks",
    "is_distributed",
    "rank",
    "setup_distributed",
    "world_size",
]


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def setup_distributed(device: str | None) -> torch.device:
    """Join the torchrun process group when launched by torchrun; return this rank's device.

    torchrun sets WORLD_SIZE, RANK and LOCAL_RANK. CUDA ranks use NCCL and GPU LOCAL_RANK;
    CPU ranks use gloo (how the tests run it).
    """
    dev = resolve_device(device or None)  # the one device check (edsr_lab.config)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise TrainOptionError(
                f"torchrun started rank {local} but only {torch.cuda.device_count()} GPU(s) are "
                "visible; use --nproc_per_node <= the number of GPUs"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    return dev


class DDP(nn.parallel.DistributedDataParallel):
    """DDP whose state_dict is the wrapped model's (no ``module.`` prefix), so checkpoints
    from 1 and from N processes are the same files and resume on any number of ranks."""

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def average_losses_across_ranks(history: Any, start: int) -> None:
    """Replace this rank's losses from index ``start`` by the mean over ranks (in place).

    Each rank's loss is the mean over its 16/N patches; the mean over ranks is the loss of
    the global batch of 16, the number a single-process run would log.
    """
    n = len(history.loss) - start
    if n <= 0:
        return
    t = torch.tensor(history.loss[start:], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    history.loss[start:] = (t / world_size()).cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on any (one tiny all-reduce)."""
    t = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _collective_device() -> torch.device:
    """Where a collective's tensor must live: NCCL reduces CUDA tensors only, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
