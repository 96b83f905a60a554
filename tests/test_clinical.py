"""Scores on the data range, per volume (edsr_lab.clinical)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edsr_lab.clinical import (
    VolumeReport,
    data_range,
    psnr_data_range,
    score_volume,
    score_volumes,
    ssim_data_range,
)
from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.intensity import IntensityMap
from edsr_lab.metrics import psnr, ssim


def _ct(seed=0, shape=(24, 20, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(-900, 1100, shape[0] * shape[1]).reshape(shape[:2])[..., None]
    return base + rng.normal(0, 30, size=shape)


def test_psnr_uses_the_data_range_as_peak_in_the_data_units():
    hr = _ct()
    sr = hr + 10.0  # 10 HU everywhere: MSE 100 HU^2
    peak = hr.max() - hr.min()
    assert psnr_data_range(sr, hr) == pytest.approx(10 * math.log10(peak**2 / 100.0))
    assert psnr_data_range(sr, hr, value_range="ct") == pytest.approx(
        10 * math.log10(4095.0**2 / 100.0)
    )
    assert psnr_data_range(hr, hr) == math.inf
    # The same number through edsr_lab.metrics: map both by the HR's range, no rounding.
    m = IntensityMap(float(hr.min()), float(hr.max()))
    unit = lambda x: torch.from_numpy(np.moveaxis((x - m.lo) / m.peak, 2, 0))  # noqa: E731
    ours = psnr_data_range(np.clip(sr, m.lo, m.hi), hr, value_range=m)
    theirs = psnr(unit(np.clip(sr, m.lo, m.hi)), unit(hr), 0, "rgb", quantize=False)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_ssim_matches_metrics_ssim_with_l_equal_peak():
    hr = _ct(shape=(24, 20, 1))[..., 0]
    sr = hr + np.random.default_rng(1).normal(0, 50, size=hr.shape)
    lo, hi = data_range(hr)
    ours = ssim_data_range(sr, hr)
    unit = lambda x: torch.from_numpy((x - lo) / (hi - lo))[None]  # noqa: E731
    theirs = ssim(unit(sr), unit(hr).clamp(0, 1), 0, "rgb", quantize=False)
    assert ours == pytest.approx(theirs) and 0 < ours < 1
    assert ssim_data_range(hr, hr) == 1.0


def test_crop_changes_the_score():
    hr = np.moveaxis(_ct(), 2, 0)  # (Z, H, W): the crop is in the last two axes
    sr = hr.copy()
    sr[:, 0, :] += 500.0  # an error only on the border
    assert psnr_data_range(sr, hr, crop=1) == math.inf
    assert psnr_data_range(sr, hr) < 60


def test_volume_score_and_report_average_volumes_not_slices():
    hr_a, hr_b = _ct(0, (20, 20, 2)), _ct(1, (20, 20, 8))
    report = score_volumes([("a", hr_a + 10, hr_a), ("b", hr_b + 40, hr_b)], method="m", units="HU")
    a, b = report.scores
    assert (a.slices, b.slices) == (2, 8)
    assert report.mean("m") == pytest.approx((a.psnr + b.psnr) / 2)  # volumes weigh the same
    assert report.mean("m", "ssim") == pytest.approx((a.ssim + b.ssim) / 2)
    text = report.table()
    assert "peak = hi - lo in HU" in text and "mean over" not in text.splitlines()[0]
    row = a.row()
    assert row["peak"] == pytest.approx(hr_a.max() - hr_a.min()) and row["units"] == "HU"
    other = report.add(score_volume(hr_a, hr_a, volume="a", method="ideal", units="HU"))
    assert other.psnr == math.inf and report.methods() == ["m", "ideal"]
    with pytest.raises(BadArgumentError, match="no scores for method"):
        report.mean("nope")


def test_axis_selects_the_slices_for_ssim():
    hr = _ct(shape=(12, 16, 20))
    sr = hr + np.random.default_rng(0).normal(0, 20, hr.shape)
    z = score_volume(sr, hr, volume="v", axis=2)
    x = score_volume(sr, hr, volume="v", axis=0)
    assert (z.slices, x.slices) == (20, 12) and z.psnr == pytest.approx(x.psnr)
    assert z.ssim != x.ssim


def test_bad_inputs():
    with pytest.raises(SizeMismatchError, match="shape"):
        psnr_data_range(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(BadArgumentError, match="NaN"):
        psnr_data_range(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(BadArgumentError, match="fixed numbers"):
        psnr_data_range(np.zeros((4, 4)), np.ones((4, 4)), value_range="robust")
    with pytest.raises(BadArgumentError, match="crop"):
        psnr_data_range(np.zeros((4, 4)), np.ones((4, 4)), crop=2)
    with pytest.raises(BadArgumentError, match="volumes"):
        score_volume(np.zeros((4, 4)), np.zeros((4, 4)), volume="v")
    assert isinstance(VolumeReport().scores, list)
