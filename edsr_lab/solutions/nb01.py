"""Reference solutions of notebook 01's "Your turn" cells (the SR problem).

Read these after trying: the notebook checks your version against ``edsr_lab.metrics``
and, while yours is not written yet, runs these instead.
"""

from __future__ import annotations

import math

import torch

__all__ = ["psnr_benchmark", "rgb_to_y"]


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma Y of MATLAB's ``rgb2ycbcr``, on the [0, 1] scale.

    Args:
        x: float tensor (..., 3, H, W), RGB in [0, 1].

    Returns:
        (..., 1, H, W): ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``, in
        [16/255, 235/255].
    """
    r, g, b = x[..., 0:1, :, :], x[..., 1:2, :, :], x[..., 2:3, :, :]
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255


def psnr_benchmark(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """PSNR (dB) of the benchmark protocol (the paper's Table 3) for one image.

    Args:
        sr, hr: float tensors (3, H, W), RGB in [0, 1], the same shape.
        scale: the SR scale; that many pixels are cropped from every border.

    Steps: round both to 8-bit levels (halves up, as MATLAB), take Y, crop ``scale``
    pixels from each border, PSNR with peak 255 on the 0..255 scale.
    """
    sr8 = torch.floor(sr.double().clamp(0, 1) * 255 + 0.5) / 255
    hr8 = torch.floor(hr.double().clamp(0, 1) * 255 + 0.5) / 255
    y_sr, y_hr = rgb_to_y(sr8) * 255, rgb_to_y(hr8) * 255
    s = scale
    diff = (y_sr - y_hr)[..., s:-s, s:-s] if s > 0 else y_sr - y_hr
    mse = float(diff.pow(2).mean())
    return 10 * math.log10(255**2 / mse)
