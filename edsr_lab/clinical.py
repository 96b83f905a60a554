"""Scores a clinician would accept: PSNR/SSIM on the data range, averaged per volume.

The paper's PSNR is for 8-bit photos: peak 255 after rounding to 8 bits. On a 12-bit CT
stored in 16 bits, the same formula with peak 65535 gives 55-62 dB for almost anything
(the data fill 3 % of the scale), and rounding to 8 bits throws away most of the signal.
Here:

* **Peak = the data range.** ``PSNR = 10 log10(peak^2 / MSE)`` with ``peak = hi - lo`` and
  the MSE both in the data's units (HU for CT), no rounding. The range is the reference
  (HR) volume's own min..max unless you pass one (e.g. ``"ct"``: 4095 HU, to compare across
  volumes on one scale). Every report says which peak it used. SSIM (Wang et al. 2004, the
  paper's settings, :func:`edsr_lab.metrics.ssim`) is computed with ``L = peak`` the same
  way: both images are mapped by ``(x - lo) / peak`` and scored unrounded (SR values
  outside the reference's range are clamped to it, as SSIM's [0, L] scale requires).
* **One number per volume, then the mean over volumes.** A volume's PSNR uses the MSE over
  all its voxels (per-slice PSNR is infinite on empty background slices); its SSIM is the
  mean over its slices. Volumes, not slices, are the independent samples (slices of one scan
  are strongly correlated), so the summary is the mean of the per-volume values, each
  volume weighing the same whatever its slice count, and the spread is shown per volume.
* Borders: ``crop`` in-plane pixels are removed from each slice before scoring (as the
  paper removes ``scale`` pixels); slices are never cropped along the slicing axis.

A PSNR on the data range is not comparable with the paper's 8-bit numbers, and neither says
whether a lesion survived: see :mod:`edsr_lab.hallucination`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.intensity import IntensityMap, parse_range

__all__ = [
    "VolumeReport",
    "VolumeScore",
    "data_range",
    "psnr_data_range",
    "score_volume",
    "score_volumes",
    "ssim_data_range",
]


def _array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise BadArgumentError(f"{name} holds NaN or infinite values")
    return a


def _pair(sr: Any, hr: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _array(sr, "sr"), _array(hr, "hr")
    if a.shape != b.shape:
        raise SizeMismatchError(f"sr has shape {a.shape} but hr has shape {b.shape}")
    return a, b


def data_range(
    hr: Any, value_range: str | tuple[float, float] | IntensityMap | None = None
) -> tuple[float, float]:
    """The (lo, hi) that sets the peak: the HR's min..max, a spec (``"ct"``, ``"0,4095"``) or
    an :class:`IntensityMap`'s range."""
    if isinstance(value_range, IntensityMap):
        return value_range.lo, value_range.hi
    if value_range is None or value_range == "auto":
        a = _array(hr, "hr")
        lo, hi = float(a.min()), float(a.max())
        return (lo, hi) if hi > lo else (lo, lo + 1.0)
    kind, numbers = parse_range(value_range)
    if numbers is None or kind == "robust":
        raise BadArgumentError(
            f"a metric's range must be fixed numbers or a preset, got {value_range!r}"
        )
    return numbers


def _crop(a: np.ndarray, crop: int) -> np.ndarray:
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0:
        raise BadArgumentError(f"crop must be a whole number >= 0, got {crop!r}")
    if crop == 0:
        return a
    if 2 * crop >= a.shape[-1] or 2 * crop >= a.shape[-2]:
        raise BadArgumentError(f"cannot crop {crop} px from each border of {a.shape[-2:]}")
    return a[..., crop:-crop, crop:-crop]


def psnr_data_range(
    sr: Any,
    hr: Any,
    *,
    value_range: str | tuple[float, float] | IntensityMap | None = None,
    crop: int = 0,
) -> float:
    """PSNR in dB with peak = the data range, both images in the data's units.

    Args:
        sr, hr: arrays or tensors of the same shape (..., H, W) in the data's units.
        value_range: what sets the peak (:func:`data_range`); default the HR's min..max.
        crop: pixels removed from each border of the last two axes.

    Returns:
        ``10 log10((hi - lo)^2 / mean((sr - hr)^2))``; ``inf`` if identical.
    """
    a, b = _pair(sr, hr)
    lo, hi = data_range(b, value_range)
    mse = float(np.mean((_crop(a, crop) - _crop(b, crop)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10((hi - lo) ** 2 / mse)


def ssim_data_range(
    sr: Any,
    hr: Any,
    *,
    value_range: str | tuple[float, float] | IntensityMap | None = None,
    crop: int = 0,
) -> float:
    """SSIM with ``L = hi - lo`` (mean over the slices of (..., H, W)); see the module docstring."""
    from edsr_lab.metrics import ssim_per_image

    a, b = _pair(sr, hr)
    lo, hi = data_range(b, value_range)
    a, b = _crop(a, crop), _crop(b, crop)
    h, w = a.shape[-2:]
    to_unit = lambda x: torch.from_numpy((x.reshape(-1, 1, h, w) - lo) / (hi - lo))  # noqa: E731
    values = ssim_per_image(to_unit(a), to_unit(b).clamp(0, 1), 0, "rgb", quantize=False)
    return math.fsum(values) / len(values)


@dataclass
class VolumeScore:
    """One volume's scores on its data range.

    Attributes:
        volume: its name (e.g. the file or SeriesInstanceUID).
        psnr: dB, from the MSE over all scored voxels.
        ssim: mean over the slices.
        lo, hi: the range that set the peak; ``units`` its units.
        slices: how many slices were scored.
        method: what produced the SR (e.g. ``"bicubic"``, ``"EDSR course"``).
    """

    volume: str
    psnr: float
    ssim: float
    lo: float
    hi: float
    units: str
    slices: int
    method: str = ""

    @property
    def peak(self) -> float:
        return self.hi - self.lo

    def row(self) -> dict[str, Any]:
        """A CSV row (the range and peak included, so the numbers can be interpreted)."""
        return {
            "method": self.method,
            "volume": self.volume,
            "slices": self.slices,
            "psnr_db": round(self.psnr, 4),
            "ssim": round(self.ssim, 6),
            "peak": self.peak,
            "range_lo": self.lo,
            "range_hi": self.hi,
            "units": self.units,
        }


def score_volume(
    sr: Any,
    hr: Any,
    *,
    volume: str,
    axis: int = 2,
    value_range: str | tuple[float, float] | IntensityMap | None = None,
    units: str = "a.u.",
    crop: int = 0,
    method: str = "",
) -> VolumeScore:
    """Score one SR volume against its HR on the data range.

    Args:
        sr, hr: arrays (X, Y, Z) in the data's units, same shape.
        volume: the volume's name, for the report.
        axis: the slicing axis (SSIM per slice along it; ``crop`` in the other two).
        value_range: what sets the peak (:func:`data_range`); default the HR's min..max.
        units: the data's units, for the report (``"HU"``).
        crop: in-plane border pixels removed from each slice.
        method: what produced the SR, for the report.
    """
    a, b = _pair(sr, hr)
    if a.ndim != 3 or axis not in (0, 1, 2):
        raise BadArgumentError(
            f"score_volume expects (X, Y, Z) volumes and axis 0-2, got {a.shape}"
        )
    lo, hi = data_range(b, value_range)
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    psnr = psnr_data_range(a, b, value_range=(lo, hi), crop=crop)
    ssim = ssim_data_range(a, b, value_range=(lo, hi), crop=crop)
    return VolumeScore(volume, psnr, ssim, lo, hi, units, int(a.shape[0]), method)


@dataclass
class VolumeReport:
    """Per-volume scores of one or more methods, and their means over volumes."""

    scores: list[VolumeScore] = field(default_factory=list)

    def add(self, score: VolumeScore) -> VolumeScore:
        self.scores.append(score)
        return score

    def methods(self) -> list[str]:
        return list(dict.fromkeys(s.method for s in self.scores))

    def mean(self, method: str, metric: str = "psnr") -> float:
        """Mean over volumes of ``metric`` (``"psnr"`` or ``"ssim"``) for ``method``."""
        values = [getattr(s, metric) for s in self.scores if s.method == method]
        if not values:
            raise BadArgumentError(f"no scores for method {method!r}; have {self.methods()}")
        return math.fsum(values) / len(values)

    def table(self, *, digits: int = 2) -> str:
        """Methods as rows, volumes as columns, then the mean over volumes."""
        volumes = list(dict.fromkeys(s.volume for s in self.scores))
        width = max([len(m) for m in self.methods()] + [6])
        head = f"{'method':<{width}} | " + " | ".join(f"{v[:14]:>14}" for v in volumes)
        lines = [head + " |   mean PSNR / SSIM", "-" * (len(head) + 22)]
        for m in self.methods():
            cells = []
            for v in volumes:
                s = next((x for x in self.scores if x.method == m and x.volume == v), None)
                cells.append(f"{s.psnr:>8.{digits}f}/{s.ssim:.3f}" if s else " " * 14)
            lines.append(
                f"{m:<{width}} | "
                + " | ".join(cells)
                + f" | {self.mean(m):>6.{digits}f} / {self.mean(m, 'ssim'):.4f}"
            )
        units = {s.units for s in self.scores}
        lines.append(
            "PSNR (dB) and SSIM on each volume's data range (peak = hi - lo in "
            f"{', '.join(sorted(units))}), means over volumes"
        )
        return "\n".join(lines)

    def rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.scores]

    def __str__(self) -> str:
        return self.table()


def score_volumes(
    pairs: Sequence[tuple[str, Any, Any]], *, method: str = "", **kwargs: Any
) -> VolumeReport:
    """Score several (name, sr, hr) volumes with :func:`score_volume`; one report."""
    report = VolumeReport()
    for name, sr, hr in pairs:
        report.add(score_volume(sr, hr, volume=name, method=method, **kwargs))
    return report
