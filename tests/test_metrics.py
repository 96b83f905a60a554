"""Tests for edsr_lab.metrics: the paper's PSNR/SSIM protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edsr_lab.metrics import (
    crop_border,
    psnr,
    psnr_per_image,
    quantize,
    rgb_to_y,
    ssim,
    ssim_per_image,
)


def _levels(shape, seed=0, lo=20, hi=230):
    """Random 8-bit images (as k/255 floats) away from 0 and 255, so +-levels stay valid."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g).double() / 255


# ---------------------------------------------------------------------------------------
# quantize / rgb_to_y / crop_border


def test_quantize():
    x = torch.tensor([-0.2, 0.0, 0.31, 1.0, 1.2, 100.4 / 255, 100.6 / 255])
    want = torch.tensor([0, 0, 79, 255, 255, 100, 101]) / 255
    torch.testing.assert_close(quantize(x), want)
    assert quantize(x.double()).dtype == torch.float64


def test_rgb_to_y_known_values():
    white = torch.ones(3, 2, 2)
    black = torch.zeros(3, 2, 2)
    red = torch.zeros(3, 1, 1)
    red[0] = 1
    torch.testing.assert_close(rgb_to_y(white), torch.full((1, 2, 2), 235 / 255))
    torch.testing.assert_close(rgb_to_y(black), torch.full((1, 2, 2), 16 / 255))
    torch.testing.assert_close(rgb_to_y(red), torch.full((1, 1, 1), (16 + 65.481) / 255))
    batch = torch.rand(4, 3, 5, 6)
    assert rgb_to_y(batch).shape == (4, 1, 5, 6)
    grey = torch.rand(2, 1, 5, 6)
    assert rgb_to_y(grey) is grey
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(torch.rand(4, 5, 6))


def test_crop_border():
    x = torch.arange(6 * 7).view(1, 6, 7)
    torch.testing.assert_close(crop_border(x, 2), x[:, 2:4, 2:5])
    assert crop_border(x, 0) is x
    with pytest.raises(ValueError, match="nothing would be left"):
        crop_border(x, 3)
    with pytest.raises(ValueError, match=">= 0"):
        crop_border(x, -1)


# ---------------------------------------------------------------------------------------
# PSNR: closed forms


def test_psnr_one_level_error_rgb():
    hr = _levels((3, 20, 20))
    sr = hr + 1 / 255
    assert psnr(sr, hr, 2, "rgb") == pytest.approx(20 * math.log10(255), abs=1e-9)  # 48.13
    assert psnr(sr, hr, 2, "div2k") == pytest.approx(48.1308036, abs=1e-6)


def test_psnr_one_level_error_on_y():
    hr = _levels((3, 20, 20))
    # +1 level on R, G and B moves Y by (65.481 + 128.553 + 24.966) / 255 = 219/255 level.
    sr = hr + 1 / 255
    want = 20 * math.log10(255 / (219 / 255))
    assert psnr(sr, hr, 2) == pytest.approx(want, abs=1e-9)
    # +1 level on R only: Y moves by 65.481/255 level.
    sr_r = hr.clone()
    sr_r[0] += 1 / 255
    assert psnr(sr_r, hr, 2) == pytest.approx(20 * math.log10(255 / (65.481 / 255)), abs=1e-9)


def test_identical_is_inf():
    hr = _levels((3, 16, 16))
    assert psnr(hr, hr.clone(), 2) == math.inf
    assert ssim(hr, hr.clone(), 2) == 1.0


def test_crop_is_applied():
    s = 3
    hr = _levels((3, 40, 40))
    sr = hr.clone()
    sr[:, :s, :] += 10 / 255  # errors only in the outer `scale` pixels
    sr[:, :, -s:] -= 10 / 255
    assert psnr(sr, hr, s, "benchmark") == math.inf
    assert psnr(sr, hr, s, "div2k") == math.inf
    assert psnr(sr, hr, s, "rgb") < 40
    assert psnr(sr, hr, s, "benchmark", crop=s - 1) < 45
    # An error just inside the benchmark crop but within the DIV2K crop (6 + s).
    sr2 = hr.clone()
    sr2[:, s + 2, 20] += 10 / 255
    assert psnr(sr2, hr, s, "benchmark") < math.inf
    assert psnr(sr2, hr, s, "div2k") == math.inf


def _psnr_numpy(sr, hr, crop, y):
    a = np.floor(np.clip(sr.numpy(), 0, 1) * 255 + 0.5)
    b = np.floor(np.clip(hr.numpy(), 0, 1) * 255 + 0.5)
    if y:
        a = 16 + (65.481 * a[0] + 128.553 * a[1] + 24.966 * a[2]) / 255
        b = 16 + (65.481 * b[0] + 128.553 * b[1] + 24.966 * b[2]) / 255
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    return 10 * math.log10(255**2 / np.mean((a - b) ** 2))


def test_protocols_match_independent_formula_and_differ():
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(3, 48, 40, generator=g, dtype=torch.float64)
    sr = (hr + 0.05 * torch.randn(3, 48, 40, generator=g, dtype=torch.float64)).clamp(0, 1)
    bench = psnr(sr, hr, 4, "benchmark")
    div2k = psnr(sr, hr, 4, "div2k")
    rgb = psnr(sr, hr, 4, "rgb")
    assert bench == pytest.approx(_psnr_numpy(sr, hr, 4, True), abs=1e-10)
    assert div2k == pytest.approx(_psnr_numpy(sr, hr, 10, False), abs=1e-10)
    assert rgb == pytest.approx(_psnr_numpy(sr, hr, 0, False), abs=1e-10)
    # Y averages independent channel noise, so it scores higher than RGB.
    assert bench - div2k > 1.0
    assert abs(div2k - rgb) > 1e-4


def test_quantisation_matters():
    hr = _levels((3, 20, 20))
    assert psnr(hr + 0.4 / 255, hr, 2, "rgb") == math.inf  # rounds back to the same levels
    assert psnr(hr + 0.6 / 255, hr, 2, "rgb") == pytest.approx(20 * math.log10(255))
    # SR outputs beyond [0, 1] are clamped before scoring.
    white = torch.ones(3, 20, 20)
    assert psnr(white + 0.3, white, 2) == math.inf


def test_batch_is_mean_of_db_not_pooled():
    hr = _levels((2, 3, 20, 20))
    sr = hr.clone()
    sr[0] += 1 / 255  # MSE 1 -> 48.13 dB
    sr[1] += 4 / 255  # MSE 16 -> 36.09 dB
    per = psnr_per_image(sr, hr, 2, "rgb")
    assert per == pytest.approx([20 * math.log10(255), 20 * math.log10(255 / 4)])
    assert psnr(sr, hr, 2, "rgb") == pytest.approx(sum(per) / 2)
    pooled = 10 * math.log10(255**2 / ((1 + 16) / 2))
    assert abs(psnr(sr, hr, 2, "rgb") - pooled) > 1.0
    # (C, H, W) and (1, C, H, W) agree
    assert psnr(sr[0], hr[0], 2) == psnr(sr[:1], hr[:1], 2)


def test_mean_with_an_identical_image_is_inf():
    hr = _levels((2, 3, 20, 20))
    sr = hr.clone()
    sr[1] += 1 / 255
    per = psnr_per_image(sr, hr, 2)
    assert per[0] == math.inf and math.isfinite(per[1])
    assert psnr(sr, hr, 2) == math.inf


def test_grey_images_use_the_channel_itself():
    hr = _levels((1, 20, 20))
    sr = hr + 1 / 255
    assert psnr(sr, hr, 2) == pytest.approx(20 * math.log10(255))


# ---------------------------------------------------------------------------------------
# SSIM


def test_ssim_matches_skimage():
    import skimage.metrics as skm

    g = torch.Generator().manual_seed(2)
    hr = torch.rand(2, 3, 40, 37, generator=g, dtype=torch.float64)
    sr = (hr + 0.1 * torch.randn(hr.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    opts = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    q = lambda t: np.floor(t.numpy() * 255 + 0.5)  # noqa: E731
    per_rgb = ssim_per_image(sr, hr, 0, "rgb")
    per_div2k = ssim_per_image(sr, hr, 2, "div2k")
    per_bench = ssim_per_image(sr, hr, 3, "benchmark")
    for i in range(2):
        a, b = q(sr[i]), q(hr[i])
        ref = skm.structural_similarity(a, b, channel_axis=0, **opts)
        assert per_rgb[i] == pytest.approx(ref, abs=1e-6)
        c = 8
        ref = skm.structural_similarity(a[:, c:-c, c:-c], b[:, c:-c, c:-c], channel_axis=0, **opts)
        assert per_div2k[i] == pytest.approx(ref, abs=1e-6)
        ya = 16 + (65.481 * a[0] + 128.553 * a[1] + 24.966 * a[2]) / 255
        yb = 16 + (65.481 * b[0] + 128.553 * b[1] + 24.966 * b[2]) / 255
        ref = skm.structural_similarity(ya[3:-3, 3:-3], yb[3:-3, 3:-3], **opts)
        assert per_bench[i] == pytest.approx(ref, abs=1e-6)
    assert ssim(sr, hr, 3) == pytest.approx(sum(per_bench) / 2)
    assert 0.3 < per_rgb[0] < 0.99


def test_ssim_constant_images_closed_form():
    a, b = 100, 140
    x = torch.full((1, 20, 20), a / 255, dtype=torch.float64)
    y = torch.full((1, 20, 20), b / 255, dtype=torch.float64)
    c1 = (0.01 * 255) ** 2
    want = (2 * a * b + c1) / (a**2 + b**2 + c1)  # variances are 0, contrast term = 1
    assert ssim(x, y, 0, "rgb") == pytest.approx(want, abs=1e-9)
    assert want < 0.99


def test_ssim_too_small_after_crop():
    x = torch.rand(3, 14, 14)
    with pytest.raises(ValueError, match="window"):
        ssim(x, x, 2)  # 10x10 left


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    hr = torch.rand(2, 3, 32, 32)
    sr = (hr + 0.05 * torch.randn(2, 3, 32, 32)).clamp(0, 1)
    assert psnr(sr.cuda(), hr, 2) == pytest.approx(psnr(sr, hr, 2), abs=1e-9)
    assert ssim(sr.cuda(), hr.cuda(), 2) == pytest.approx(ssim(sr, hr, 2), abs=1e-9)


# ---------------------------------------------------------------------------------------
# Errors


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 20, 20\).*\(3, 21, 20\).*modcrop"):
        psnr(torch.rand(3, 20, 20), torch.rand(3, 21, 20), 2)
    with pytest.raises(ValueError, match="modcrop"):
        ssim(torch.rand(3, 20, 20), torch.rand(3, 21, 20), 2)


def test_bad_inputs():
    x = torch.rand(3, 20, 20)
    with pytest.raises(ValueError, match="nothing would be left"):
        psnr(x, x, 10)
    with pytest.raises(ValueError, match="protocol"):
        psnr(x, x, 2, "ycbcr")
    with pytest.raises(TypeError, match="float"):
        psnr((x * 255).to(torch.uint8), x, 2)
    with pytest.raises(ValueError, match="255"):
        psnr(x, x * 255, 2)
    with pytest.raises(ValueError, match="NaN"):
        psnr(x * float("nan"), x, 2)
    with pytest.raises(ValueError, match="scale"):
        psnr(x, x, -1)
    with pytest.raises(ValueError, match="channels"):
        psnr(torch.rand(4, 20, 20), torch.rand(4, 20, 20), 2)
    assert math.isfinite(psnr(torch.rand(4, 20, 20), torch.rand(4, 20, 20), 2, "rgb"))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        psnr(torch.rand(20, 20), torch.rand(20, 20), 2)


def test_quantize_false_scores_sub_8_bit_differences():
    # 16-bit-like data: a difference of a quarter 8-bit level vanishes when rounded to 8 bits
    hr = torch.full((1, 20, 20), 100.0 / 255, dtype=torch.float64)
    sr = hr + 0.25 / 255
    assert psnr(sr, hr, 2, "rgb") == math.inf
    assert psnr(sr, hr, 2, "rgb", quantize=False) == pytest.approx(20 * math.log10(255 / 0.25))
    assert ssim(sr, hr, 2, "rgb") == 1.0
    assert ssim(sr, hr, 2, "rgb", quantize=False) < 1.0
