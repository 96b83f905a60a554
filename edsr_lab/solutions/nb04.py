"""Reference solutions of notebook 04's "Your turn" cells (pixel shuffle).

Read these after trying: the notebook checks your version against PyTorch and
``edsr_lab.models.Upsampler`` and, while yours is not written yet, runs these instead.
"""

from __future__ import annotations

import torch

__all__ = ["pixel_shuffle", "upsampler_params"]


def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """``nn.PixelShuffle(r)`` with reshape and permute only.

    Args:
        x: tensor (N, C*r*r, H, W), any dtype.
        r: the upscaling factor.

    Returns:
        (N, C, H*r, W*r): input channel ``c*r*r + i*r + j`` at pixel (h, w) lands in
        channel c at pixel (h*r + i, w*r + j). Nothing is computed, only moved.
    """
    n, crr, h, w = x.shape
    c = crr // (r * r)
    x = x.reshape(n, c, r, r, h, w)  # channel index = c*r*r + i*r + j
    x = x.permute(0, 1, 4, 2, 5, 3)  # (n, c, h, i, w, j): i next to h, j next to w
    return x.reshape(n, c, h * r, w * r)


def upsampler_params(scale: int, n_feats: int) -> int:
    """Trainable parameters of EDSR's sub-pixel upsampler at ``scale`` (2, 3 or 4).

    One stage at factor f is a 3x3 convolution from F to f*f*F channels with bias:
    ``9 * F * f*f*F`` weights + ``f*f*F`` biases. x2 and x3 are one stage, x4 is two x2
    stages (a pixel shuffle by 4 would need 16F channels).
    """

    def stage(f: int) -> int:
        return 9 * n_feats * (f * f * n_feats) + f * f * n_feats

    return 2 * stage(2) if scale == 4 else stage(scale)
