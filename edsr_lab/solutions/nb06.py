"""Notebook 06 (EDSR and residual scaling), reference solutions of its "Your turn" cells.

Open one in the notebook with ``%load -s scaled_block ../edsr_lab/solutions/nb06.py``.
``scaled_block`` and ``fold_res_scale`` are checked against ``edsr_lab.models.ResBlock``,
``transferable_keys`` against the report of ``edsr_lab.models.init_from``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def scaled_block(block: nn.Module, x: torch.Tensor, res_scale: float) -> torch.Tensor:
    """x + res_scale * body(x), with the layers of ``block.body`` (conv-ReLU-conv)."""
    conv1, act, conv2 = block.body
    return x + res_scale * conv2(act(conv1(x)))


def fold_res_scale(block: nn.Module) -> nn.Module:
    """A copy of ``block`` with its residual scaling folded into the last convolution:
    the weight and bias of ``body[2]`` multiplied by ``res_scale``, and ``res_scale`` 1."""
    folded = copy.deepcopy(block)
    with torch.no_grad():
        folded.body[2].weight.mul_(block.res_scale)
        folded.body[2].bias.mul_(block.res_scale)
    folded.res_scale = 1.0
    return folded


def transferable_keys(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> list[str]:
    """The keys of ``dst`` (a state_dict) that a model with state_dict ``src`` can fill:
    those with the same name and the same shape (what the official code, and
    ``init_from``, copy when an x3/x4 model starts from the x2 one)."""
    return [k for k, v in dst.items() if k in src and src[k].shape == v.shape]
