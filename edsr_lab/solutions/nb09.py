"""Notebook 09 (MDSR), reference solutions of its "Your turn" cells.

Open one in the notebook with ``%load -s mdsr_parameters ../edsr_lab/solutions/nb09.py``.
``mdsr_parameters`` is checked against ``count_parameters(MDSR(...))``, ``mdsr_forward``
against ``model(x, scale)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _conv(c_in: int, c_out: int, k: int) -> int:
    return k * k * c_in * c_out + c_out


def mdsr_parameters(
    n_resblocks: int = 16, n_feats: int = 64, scales: tuple[int, ...] = (2, 3, 4)
) -> int:
    """Trainable parameters of ``MDSR(n_resblocks, n_feats, scales)``, from the layer sizes.

    shared: head 3x3 conv 3 -> F, body of B blocks (two 3x3 convs each) and a 3x3 conv,
    tail 3x3 conv F -> 3; per scale: pre-processing of two residual blocks with 5x5 convs,
    and an upsampler (per x2 stage a 3x3 conv F -> 4F; x3 one stage F -> 9F).
    """
    f = n_feats
    shared = _conv(3, f, 3) + n_resblocks * 2 * _conv(f, f, 3) + _conv(f, f, 3) + _conv(f, 3, 3)
    per_scale = 0
    for s in scales:
        pre = 2 * 2 * _conv(f, f, 5)
        up = _conv(f, 9 * f, 3) if s == 3 else int(math.log2(s)) * _conv(f, 4 * f, 3)
        per_scale += pre + up
    return shared + per_scale


def mdsr_forward(model: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
    """MDSR's forward pass with the model's own modules, picking the branch of ``scale``.

    x: (N, 3, H, W) in [0, 1] -> (N, 3, scale*H, scale*W).
    """
    i = model.scales.index(scale)  # which branch belongs to this scale
    h = model.head(model.sub_mean(x * 255))  # shared: pixels in [0, 255], minus the mean
    h = model.pre_process[i](h)  # x{scale} only: two 5x5 residual blocks
    h = model.body(h) + h  # shared: residual body plus the global skip
    h = model.tail(model.upsample[i](h))  # x{scale} only: upsampler; shared: last conv
    return model.add_mean(h) / 255
