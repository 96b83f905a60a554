"""Test doubles shared by the test files: an exactly predictable SR model and a spy on the
inputs a model class sees."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from edsr_lab.models import EDSR


class Nearest(nn.Module):
    """An exactly predictable 'SR model': nearest-neighbour upsampling of RGB, fast."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.n_colors = 3
        self.dummy = nn.Parameter(torch.zeros(1))  # so the model has a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.scale, 2).repeat_interleave(self.scale, 3)


@contextmanager
def model_inputs(cls: type = EDSR) -> Iterator[list[tuple[int, ...]]]:
    """The input shapes of every forward of a ``cls`` model while the block runs (torch's
    global forward pre-hook: it sees models built anywhere, e.g. inside a CLI command)."""
    shapes: list[tuple[int, ...]] = []

    def hook(module, args):
        if isinstance(module, cls):
            shapes.append(tuple(args[0].shape))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield shapes
    finally:
        handle.remove()
