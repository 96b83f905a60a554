"""MDSR: the multi-scale model of Lim et al. (CVPR Workshops 2017, section 3.3).

One network for x2, x3 and x4: scale-specific pre-processing (two residual blocks with
5x5 convolutions per scale) and scale-specific upsamplers around one shared body::

    x in [0,1] -> * rgb_range -> sub_mean -> head (conv) -> pre_process[s]
               -> body (B blocks, conv) + skip -> upsample[s] -> tail (conv)
               -> add_mean -> / rgb_range

Module names are the official EDSR-PyTorch ones, so its MDSR checkpoints load. Training
picks a random scale per minibatch; ``forward(x, scale)`` takes the scale explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edsr_lab.config import RGB_RANGE
from edsr_lab.errors import BadArgumentError
from edsr_lab.models.common import (
    MeanShift,
    ResBlock,
    SRModel,
    Upsampler,
    dataset_mean,
    default_conv,
)
from edsr_lab.models.registry import register_model


class MDSR(SRModel):
    """Multi-scale EDSR.

    Args:
        n_resblocks: shared residual blocks (16 baseline, 80 MDSR).
        n_feats: feature channels (64).
        scales: the scales it serves, each 3 or a power of two; the i-th entry of
            ``pre_process`` and ``upsample`` belongs to ``scales[i]`` (official order 2, 3, 4).
        n_colors: 3 (RGB) or 1 (grey).
        rgb_range: pixel range computed in (255).

    ``forward(x, scale)``: float (N, n_colors, H, W) in [0, 1] -> (N, n_colors, scale*H,
    scale*W), not clamped; an unknown ``scale`` raises ValueError naming the known ones.
    """

    def __init__(
        self,
        n_resblocks: int = 16,
        n_feats: int = 64,
        scales: Sequence[int] = (2, 3, 4),
        *,
        n_colors: int = 3,
        rgb_range: float = RGB_RANGE,
    ):
        super().__init__()
        scales = tuple(scales)
        if not scales or len(set(scales)) != len(scales):
            raise BadArgumentError(f"scales must be distinct and not empty, got {scales}")
        mean = dataset_mean(n_colors)
        self.n_colors = int(n_colors)
        self.rgb_range = float(rgb_range)
        self.sub_mean = MeanShift(rgb_range, mean, sign=-1)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
        self.pre_process = nn.ModuleList(
            nn.Sequential(ResBlock(n_feats, 5), ResBlock(n_feats, 5)) for _ in scales
        )
        blocks: list[nn.Module] = [ResBlock(n_feats, 3) for _ in range(n_resblocks)]
        blocks.append(default_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*blocks)
        self.upsample = nn.ModuleList(Upsampler(s, n_feats) for s in scales)
        self.tail = nn.Sequential(default_conv(n_feats, n_colors, 3))
        self.add_mean = MeanShift(rgb_range, mean, sign=1)
        self.scales = tuple(up.scale for up in self.upsample)
        self.config = {
            "n_resblocks": int(n_resblocks),
            "n_feats": int(n_feats),
            "scales": list(self.scales),
            "n_colors": int(n_colors),
            "rgb_range": float(rgb_range),
        }

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        i = self.scales.index(self._check(x, scale))
        x = self.sub_mean(x * self.rgb_range)
        x = self.pre_process[i](self.head(x))
        x = self.body(x) + x
        x = self.tail(self.upsample[i](x))
        return self.add_mean(x) / self.rgb_range


@register_model(MDSR, multiscale=True, official_layout=True, n_resblocks=16, n_feats=64)
def mdsr_baseline(scales: Sequence[int] = (2, 3, 4)) -> MDSR:
    """MDSR baseline (paper Table 1): 16 shared blocks, 64 features (3,227,203 parameters)."""
    return MDSR(n_resblocks=16, n_feats=64, scales=scales)


@register_model(MDSR, multiscale=True, official_layout=True, n_resblocks=80, n_feats=64)
def mdsr(scales: Sequence[int] = (2, 3, 4)) -> MDSR:
    """MDSR (paper Table 1): 80 shared blocks, 64 features (7,953,987 parameters; "8.0M")."""
    return MDSR(n_resblocks=80, n_feats=64, scales=scales)
