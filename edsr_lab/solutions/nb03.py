"""Notebook 03 (removing batch norm), reference solutions of its "Your turn" cells.

Open one in the notebook with ``%load -s PlainBlock ../edsr_lab/solutions/nb03.py``.
``PlainBlock`` is checked against ``edsr_lab.models.ResBlock`` with the same weights,
``batch_norm_train`` against ``nn.BatchNorm2d`` in training mode.
"""

from __future__ import annotations

import torch
from torch import nn


class PlainBlock(nn.Module):
    """EDSR's residual block without BN: x + res_scale * conv(ReLU(conv(x))).

    No activation after the addition. Shapes: (N, n_feats, H, W) -> (N, n_feats, H, W).
    Layer names ``conv1 act conv2``.
    """

    def __init__(self, n_feats: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.act(self.conv1(x)))


def batch_norm_train(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """What a BN layer computes in training mode, per channel c:
    gamma_c * (x - mean_c) / sqrt(var_c + eps) + beta_c, with the mean and the (biased)
    variance over the batch and all pixels of channel c.

    Args:
        x: (N, C, H, W) features; gamma, beta: (C,).
    """
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return gamma.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + eps) + beta.view(1, -1, 1, 1)
