"""Notebook 02 (SRResNet), reference solutions of its "Your turn" cells.

Open it in the notebook with ``%load -s srresnet_parameters ../edsr_lab/solutions/nb02.py``
(or read this file). Both are checked by the notebook against the package:
``SRResNetBlock`` against ``edsr_lab.models.srresnet(2).body[0]`` with the same weights, and
``srresnet_parameters`` against ``count_parameters(srresnet(scale))``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SRResNetBlock(nn.Module):
    """SRResNet's residual block, x + BN(conv(PReLU(BN(conv(x))))) (Ledig et al. 2017, Fig. 4).

    Shapes: (N, n_feats, H, W) -> (N, n_feats, H, W). Layer names ``conv1 bn1 act conv2 bn2``.
    """

    def __init__(self, n_feats: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(n_feats)
        self.act = nn.PReLU(n_feats)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


def _conv_parameters(c_in: int, c_out: int, k: int) -> int:
    """Weights and biases of a k x k convolution: k*k*c_in*c_out + c_out."""
    return k * k * c_in * c_out + c_out


def srresnet_parameters(scale: int, n_resblocks: int = 16, n_feats: int = 64) -> int:
    """Trainable parameters of ``srresnet(scale)``, from the layer sizes alone.

    head: 9x9 conv 3 -> F and a PReLU (F slopes); each block: two 3x3 convs, two BNs
    (scale and shift: 2F each) and a PReLU; after the blocks a 3x3 conv and a BN; per x2
    stage of the upsampler a 3x3 conv F -> 4F and a PReLU (x3: one stage, F -> 9F); tail:
    9x9 conv F -> 3. The frozen mean shifts are not counted.
    """
    f = n_feats
    head = _conv_parameters(3, f, 9) + f
    block = 2 * _conv_parameters(f, f, 3) + 2 * (2 * f) + f
    body = n_resblocks * block + _conv_parameters(f, f, 3) + 2 * f
    if scale == 3:
        up = _conv_parameters(f, 9 * f, 3) + f
    else:
        stages = int(math.log2(scale))
        up = stages * (_conv_parameters(f, 4 * f, 3) + f)
    tail = _conv_parameters(f, 3, 9)
    return head + body + up + tail
