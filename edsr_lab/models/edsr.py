"""EDSR: Enhanced Deep Super-Resolution network (Lim et al., CVPRW 2017, sections 3.1-3.2).

Structure (module names are the official EDSR-PyTorch ones, so its checkpoints load)::

    x in [0,1] -> * rgb_range -> sub_mean -> head (conv)
               -> body (B residual blocks conv-ReLU-conv, then a conv) + global skip
               -> tail (upsampler, conv) -> add_mean -> / rgb_range -> y, about [0,1]

Compared with SRResNet the blocks have no batch normalization and no activation after the
addition, and wide models scale each residual by ``res_scale`` (0.1) to train stably.
"""

from __future__ import annotations

import torch
from torch import nn

from edsr_lab.config import RGB_RANGE
from edsr_lab.errors import BadArgumentError
from edsr_lab.models.common import (
    ACTIVATIONS,
    MeanShift,
    ResBlock,
    SRModel,
    Upsampler,
    dataset_mean,
    default_conv,
)
from edsr_lab.models.registry import register_model

__all__ = ["EDSR", "edsr", "edsr_baseline"]


class EDSR(SRModel):
    """The single-scale EDSR model (and its baseline: same class, smaller numbers).

    Args:
        n_resblocks: residual blocks B (16 baseline, 32 EDSR).
        n_feats: feature channels F (64 baseline, 256 EDSR).
        scale: upscaling factor, 3 or a power of two (the paper: 2, 3, 4).
        res_scale: residual scaling (1.0 baseline, 0.1 EDSR).
        kernel_size: convolution size in head, body and tail (the upsampler's convs are 3x3).
        batch_norm: put BatchNorm2d in the residual blocks (SRResNet's block; for the
            ablation of notebook 03; the checkpoints of the paper have none).
        upsampler: "pixelshuffle" (the paper), "deconv" or "nearest_conv" (notebook 04).
        n_colors: 3 for RGB, 1 for grey images (the mean shift then uses
            :data:`~edsr_lab.models.common.GRAY_MEAN`, the luma of the DIV2K mean).
        rgb_range: the pixel range computed in (255, like the paper and its weights).
        act: activation in the blocks, one of "relu" (the paper), "prelu", "leaky_relu".

    ``forward(x, scale=None)``: x float (N, n_colors, H, W) in [0, 1] -> (N, n_colors,
    scale*H, scale*W), about [0, 1] but *not* clamped (training sees the raw output; clamp
    and round for evaluation, as the paper does). ``scale``, if given, must equal the
    model's: it lets code call every model, MDSR included, as ``model(x, scale)``.
    Input mistakes raise :class:`~edsr_lab.models.common.ModelInputError` with a hint; in
    eval mode an input that looks like [0, 255] is refused too (``model.check_range``).

    ``config`` holds the constructor arguments (for checkpoints), ``scale`` the factor.
    """

    def __init__(
        self,
        n_resblocks: int = 16,
        n_feats: int = 64,
        scale: int = 2,
        res_scale: float = 1.0,
        *,
        kernel_size: int = 3,
        batch_norm: bool = False,
        upsampler: str = "pixelshuffle",
        n_colors: int = 3,
        rgb_range: float = RGB_RANGE,
        act: str = "relu",
    ):
        super().__init__()
        if not isinstance(act, str) or act not in ACTIVATIONS:
            # A name, not a module, so the config stays saveable.
            raise BadArgumentError(f"act={act!r} is not known; use one of {ACTIVATIONS}")
        if int(n_resblocks) < 0 or int(n_feats) < 1:
            raise BadArgumentError(
                f"need n_resblocks >= 0 and n_feats >= 1: {n_resblocks}, {n_feats}"
            )
        mean = dataset_mean(n_colors)
        self.n_colors = int(n_colors)
        self.rgb_range = float(rgb_range)

        self.sub_mean = MeanShift(rgb_range, mean, sign=-1)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, kernel_size))
        blocks: list[nn.Module] = [
            ResBlock(n_feats, kernel_size, bn=batch_norm, act=act, res_scale=res_scale)
            for _ in range(n_resblocks)
        ]
        blocks.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*blocks)
        up = Upsampler(scale, n_feats, mode=upsampler)
        self.tail = nn.Sequential(up, default_conv(n_feats, n_colors, kernel_size))
        self.add_mean = MeanShift(rgb_range, mean, sign=1)
        self.scale = up.scale
        self.config = {
            "n_resblocks": int(n_resblocks),
            "n_feats": int(n_feats),
            "scale": up.scale,
            "res_scale": float(res_scale),
            "kernel_size": int(kernel_size),
            "batch_norm": bool(batch_norm),
            "upsampler": str(upsampler),
            "n_colors": int(n_colors),
            "rgb_range": float(rgb_range),
            "act": act,
        }
        self.scales = (up.scale,)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        self._check(x, scale)
        x = self.sub_mean(x * self.rgb_range)
        x = self.head(x)
        x = self.body(x) + x  # global residual: the body learns a correction of the head
        x = self.add_mean(self.tail(x))
        return x / self.rgb_range


@register_model(EDSR, official_layout=True, n_resblocks=16, n_feats=64, res_scale=1.0)
def edsr_baseline(scale: int = 2) -> EDSR:
    """EDSR baseline (paper Table 1): 16 blocks, 64 features, no residual scaling.

    1,369,859 / 1,554,499 / 1,517,571 trainable parameters at x2 / x3 / x4.
    """
    return EDSR(n_resblocks=16, n_feats=64, scale=scale, res_scale=1.0)


@register_model(EDSR, official_layout=True, n_resblocks=32, n_feats=256, res_scale=0.1)
def edsr(scale: int = 2) -> EDSR:
    """EDSR (paper Table 1): 32 blocks, 256 features, residual scaling 0.1.

    40,729,603 / 43,680,003 / 43,089,923 trainable parameters at x2 / x3 / x4 (the
    paper's "43M").
    """
    return EDSR(n_resblocks=32, n_feats=256, scale=scale, res_scale=0.1)
