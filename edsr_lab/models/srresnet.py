"""SRResNet (Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017): the residual network EDSR starts from.

Structure::

    x in [0,1] -> * rgb_range -> sub_mean -> head (9x9 conv, PReLU)
               -> body (B blocks conv-BN-PReLU-conv-BN, then conv-BN) + global skip
               -> tail (pixel-shuffle x2 stages each followed by PReLU, 9x9 conv)
               -> add_mean -> / rgb_range -> y, about [0,1]

Input scaling: Ledig et al. fed [0, 1] images and produced [-1, 1]; here SRResNet uses the
same x255 scaling and DIV2K mean shift as EDSR, as the EDSR paper did when it retrained
SRResNet for its Table 2, so the two are compared under one recipe. PReLUs are
per-channel (``nn.PReLU(n_feats)``, as EDSR-PyTorch's upsampler has them).
"""

from __future__ import annotations

import torch
from torch import nn

from edsr_lab.config import RGB_RANGE
from edsr_lab.models.common import (
    MeanShift,
    ResBlock,
    SRModel,
    Upsampler,
    dataset_mean,
    default_conv,
)
from edsr_lab.models.registry import register_model


class SRResNet(SRModel):
    """SRResNet with the [0, 1] interface of every model here.

    Args:
        n_resblocks: residual blocks (16 in the paper).
        n_feats: feature channels (64).
        scale: upscaling factor, 3 or a power of two (x4 in Ledig et al.; x2/x4 are one/two
            pixel-shuffle x2 stages, x3 one x3 stage).
        n_colors: 3 (RGB) or 1 (grey).
        rgb_range: pixel range computed in (255).

    ``forward(x, scale=None)``: float (N, n_colors, H, W) in [0, 1] -> (N, n_colors,
    scale*H, scale*W), not clamped. Batch norm makes train and eval mode differ: call
    ``model.eval()`` before inference. x4 has 1,550,659 trainable parameters (paper: 1.5M).
    """

    def __init__(
        self,
        n_resblocks: int = 16,
        n_feats: int = 64,
        scale: int = 4,
        *,
        n_colors: int = 3,
        rgb_range: float = RGB_RANGE,
    ):
        super().__init__()
        mean = dataset_mean(n_colors)
        self.n_colors = int(n_colors)
        self.rgb_range = float(rgb_range)
        self.sub_mean = MeanShift(rgb_range, mean, sign=-1)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 9), nn.PReLU(n_feats))
        blocks: list[nn.Module] = [
            ResBlock(n_feats, 3, bn=True, act="prelu") for _ in range(n_resblocks)
        ]
        blocks += [default_conv(n_feats, n_feats, 3), nn.BatchNorm2d(n_feats)]
        self.body = nn.Sequential(*blocks)
        up = Upsampler(scale, n_feats, mode="pixelshuffle", act="prelu")
        self.tail = nn.Sequential(up, default_conv(n_feats, n_colors, 9))
        self.add_mean = MeanShift(rgb_range, mean, sign=1)
        self.scale = up.scale
        self.scales = (up.scale,)
        self.config = {
            "n_resblocks": int(n_resblocks),
            "n_feats": int(n_feats),
            "scale": up.scale,
            "n_colors": int(n_colors),
            "rgb_range": float(rgb_range),
        }

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        self._check(x, scale)
        x = self.sub_mean(x * self.rgb_range)
        x = self.head(x)
        x = self.body(x) + x
        x = self.add_mean(self.tail(x))
        return x / self.rgb_range


@register_model(SRResNet, official_layout=True, n_resblocks=16, n_feats=64)
def srresnet(scale: int = 4) -> SRResNet:
    """SRResNet as in the EDSR paper's Table 1: 16 blocks, 64 features, BN (1.5M params)."""
    return SRResNet(n_resblocks=16, n_feats=64, scale=scale)
