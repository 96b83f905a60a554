"""Reference solutions of notebook 11's "Your turn" cells (medical super-resolution done right).

Read these after trying: the notebook checks your version against
``edsr_lab.intensity.IntensityMap`` and ``edsr_lab.clinical.psnr_data_range`` and, while
yours is not written yet, runs these instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["from_unit", "psnr_on_range", "to_unit"]


def to_unit(values: np.ndarray, lo: float, hi: float) -> tuple[torch.Tensor, int]:
    """Values in the data's units (e.g. HU), any shape -> float32 tensor in [0, 1], and how
    many values fell outside [lo, hi] (clipped to it, and counted rather than hidden)."""
    unit = (torch.as_tensor(np.asarray(values), dtype=torch.float64) - lo) / (hi - lo)
    outside = int(((unit < 0) | (unit > 1)).sum())
    return unit.clamp(0.0, 1.0).to(torch.float32), outside


def from_unit(unit: torch.Tensor, lo: float, hi: float, dtype: str = "int16") -> np.ndarray:
    """Undo :func:`to_unit` for a model's output: clip to [0, 1], back to the data's units,
    rounded to the nearest integer for an integer ``dtype``."""
    values = unit.detach().to(torch.float64).clamp(0.0, 1.0) * (hi - lo) + lo
    array = values.numpy()
    if np.issubdtype(np.dtype(dtype), np.integer):
        array = np.round(array)
    return array.astype(dtype)


def psnr_on_range(sr: np.ndarray, hr: np.ndarray, lo: float, hi: float, crop: int = 0) -> float:
    """PSNR in dB of a volume (slices, H, W) in the data's units, with the data range
    ``hi - lo`` as the peak and ``crop`` border pixels of each slice left out: one MSE
    over every scored voxel of the volume (not a mean of per-slice PSNRs)."""
    a, b = np.asarray(sr, dtype=np.float64), np.asarray(hr, dtype=np.float64)
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10((hi - lo) ** 2 / mse)
