"""PSNR and SSIM exactly as the EDSR paper (Lim et al., CVPRW 2017) reports them.

Super-resolution numbers are only comparable when measured the same way, and the
details change results by tenths of a dB. The paper uses two protocols:

* ``"benchmark"`` (Table 3: Set5, Set14, B100, Urban100): both images rounded to 8 bits,
  converted to the luma channel Y of YCbCr (ITU-R BT.601, as MATLAB's ``rgb2ycbcr``),
  ``scale`` pixels cropped from every border.
* ``"div2k"`` (Table 2: DIV2K validation): 8-bit RGB, ``6 + scale`` pixels cropped.

and we add ``"rgb"``: 8-bit RGB, no crop. PSNR is measured on the [0, 255] scale with
peak 255; over several images the per-image dB values are averaged (the paper's mean of
dB, not a PSNR of the pooled pixels). SSIM is Wang et al. (2004): 11x11 Gaussian
window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, computed where the window fits
('valid'), averaged over the map, and over channels for RGB; it matches MATLAB's
``ssim_index`` and scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)``.

All functions take float tensors in [0, 1] shaped (C, H, W) or (N, C, H, W), on any
device; the arithmetic is float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edsr_lab.errors import BadArgumentError, ImageInputError, SizeMismatchError
from edsr_lab.validate import check_finite, check_image, check_tensor

__all__ = [
    "PROTOCOLS",
    "crop_border",
    "psnr",
    "psnr_per_image",
    "quantize",
    "rgb_to_y",
    "ssim",
    "ssim_per_image",
]

#: protocol name -> (use the Y channel?, extra border crop added to ``scale``)
PROTOCOLS: dict[str, tuple[bool, int | None]] = {
    "benchmark": (True, 0),  # crop = scale
    "div2k": (False, 6),  # crop = 6 + scale
    "rgb": (False, None),  # no crop
}

# ITU-R BT.601 luma for R, G, B in [0, 1], giving Y in [16, 235] (MATLAB rgb2ycbcr).
_Y_COEFFS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_PEAK = 255.0


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels: ``round(clamp(x, 0, 1) * 255) / 255``, same dtype as x.

    Halves round up (MATLAB's ``im2uint8``); what an image saved as an 8-bit PNG holds.
    """
    _check_float(x, "quantize: x")
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma Y of YCbCr as MATLAB's ``rgb2ycbcr``, on the [0, 1] scale.

    Args:
        x: float tensor (..., 3, H, W) RGB in [0, 1], or (..., 1, H, W) already grey.

    Returns:
        (..., 1, H, W): ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``, in
        [16/255, 235/255]; a 1-channel input is returned unchanged. Not rounded (MATLAB
        returns double Y for double input).

    Note: a grey image stored as 3 equal channels gets Y = 16/255 + (219/255) * grey, a
    contrast of 219/255, so its Y-channel PSNR is 20 log10(255/219) = 1.32 dB higher than
    the same image scored as 1 channel. Compare grey results only within one convention.
    """
    _check_float(x, "rgb_to_y: x")
    if x.dim() < 3 or x.shape[-3] not in (1, 3):
        raise ImageInputError(
            f"rgb_to_y: expected (..., 3, H, W) RGB or (..., 1, H, W), got {tuple(x.shape)}."
        )
    if x.shape[-3] == 1:
        return x
    r, g, b = x[..., 0:1, :, :], x[..., 1:2, :, :], x[..., 2:3, :, :]
    c_r, c_g, c_b = _Y_COEFFS
    return (_Y_OFFSET + c_r * r + c_g * g + c_b * b) / 255.0


def crop_border(x: torch.Tensor, n: int) -> torch.Tensor:
    """Remove ``n`` pixels from each border of (..., H, W); n = 0 returns x.

    Raises:
        BadArgumentError: n negative; ImageInputError: nothing would be left of the image
            (both ValueErrors).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise BadArgumentError(f"crop_border: n must be a whole number >= 0, got {n!r}.")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if 2 * n >= h or 2 * n >= w:
        raise ImageInputError(
            f"crop_border: cannot crop {n} px from each border of a {h}x{w} image "
            "(nothing would be left); use a larger image or a smaller crop."
        )
    return x[..., n : h - n, n : w - n] if n else x


def _check_float(x: object, name: str) -> None:
    check_tensor(x, name, "(..., C, H, W)")


def _prepare(
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    protocol: str,
    crop: int | None,
    fname: str,
    quantize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, quantize, pick channels and crop; return float64 (N, C, H', W') on 0..255."""
    if protocol not in PROTOCOLS:
        raise BadArgumentError(
            f"{fname}: unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}."
        )
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise BadArgumentError(f"{fname}: scale must be a whole number >= 0, got {scale!r}.")
    check_image(sr, f"{fname}: sr", finite=False)
    check_tensor(hr, f"{fname}: hr")
    if sr.shape != hr.shape:
        raise SizeMismatchError(
            f"{fname}: sr has shape {tuple(sr.shape)} but hr has shape {tuple(hr.shape)}; "
            "they must match. If the HR is a few pixels larger, crop it with "
            "edsr_lab.resize.modcrop(hr, scale) to a multiple of the scale."
        )
    check_finite(sr, f"{fname}: sr")
    check_finite(hr, f"{fname}: hr")
    hr_max, hr_min = float(hr.max()), float(hr.min())
    if hr_max > 1.5 or hr_min < -0.5:
        # A ground truth far outside [0, 1] is almost surely on the 0..255 scale; clamping
        # it would silently give meaningless numbers.
        raise ImageInputError(
            f"{fname}: hr values span [{hr_min:g}, {hr_max:g}], expected [0, 1]. "
            "Divide 8-bit images by 255."
        )
    use_y, extra = PROTOCOLS[protocol]
    if crop is None:
        crop = 0 if extra is None else scale + extra
    if sr.dim() == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    hr = hr.to(sr.device)
    # Output is clamped and rounded to 8 bits before scoring, as the paper does; without
    # rounding (quantize=False) finer levels, e.g. of 16-bit images, count too.
    sr8, hr8 = sr.double().clamp(0.0, 1.0), hr.double().clamp(0.0, 1.0)
    if quantize:
        sr8, hr8 = torch.floor(sr8 * 255.0 + 0.5) / 255.0, torch.floor(hr8 * 255.0 + 0.5) / 255.0
    if use_y:
        if sr8.shape[1] not in (1, 3):
            raise ImageInputError(
                f"{fname}: protocol {protocol!r} needs RGB (3 channels) or grey (1 channel) "
                f"images, got {sr8.shape[1]} channels; use protocol='rgb' instead."
            )
        sr8, hr8 = rgb_to_y(sr8), rgb_to_y(hr8)
    sr8 = crop_border(sr8, crop) * 255.0
    hr8 = crop_border(hr8, crop) * 255.0
    return sr8, hr8


def psnr_per_image(
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    protocol: str = "benchmark",
    *,
    crop: int | None = None,
    quantize: bool = True,
) -> list[float]:
    """PSNR in dB of each image, on the 0..255 scale with peak 255.

    Args:
        sr: float tensor (C, H, W) or (N, C, H, W), values in [0, 1] (clamped here).
        hr: ground truth, same shape, in [0, 1]; moved to sr's device.
        scale: the SR scale; sets the border crop (see ``protocol``). 0 = no crop.
        protocol: "benchmark" (Y, crop scale), "div2k" (RGB, crop 6 + scale) or
            "rgb" (RGB, no crop).
        crop: override the protocol's border crop, in pixels.
        quantize: round both images to 8-bit levels first, as the paper does (default).
            False scores the float values, e.g. for 16-bit images; such numbers are not
            comparable with the paper's.

    Returns:
        One float per image; ``inf`` where the 8-bit images are identical.

    Raises:
        ImageTypeError: sr or hr is not a float tensor (also a TypeError).
        SizeMismatchError: shapes differ (message names both).
        NonFiniteImageError: NaN/inf values in sr or hr.
        ImageInputError: crop too large, or hr not in [0, 1]; BadArgumentError: unknown
            protocol or bad scale. (All of these are ValueErrors and EdsrLabErrors.)
    """
    a, b = _prepare(sr, hr, scale, protocol, crop, "psnr", quantize)
    mse = ((a - b) ** 2).flatten(1).mean(dim=1)
    out = []
    for m in mse.tolist():
        out.append(math.inf if m == 0 else 10.0 * math.log10(_PEAK**2 / m))
    return out


def psnr(
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    protocol: str = "benchmark",
    *,
    crop: int | None = None,
    quantize: bool = True,
) -> float:
    """PSNR in dB; for a batch, the mean of the per-image dB values (as in the paper).

    See :func:`psnr_per_image` for the arguments. A batch containing an identical pair
    gives ``inf``.
    """
    values = psnr_per_image(sr, hr, scale, protocol, crop=crop, quantize=quantize)
    return math.fsum(values) / len(values) if math.inf not in values else math.inf


def _gaussian_window(device: torch.device) -> torch.Tensor:
    half = _SSIM_WINDOW // 2
    t = torch.arange(-half, half + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(t**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (B, 1, H, W), keeping only where the window fits."""
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1))
    return F.conv2d(x, g.view(1, 1, 1, k))


def ssim_per_image(
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    protocol: str = "benchmark",
    *,
    crop: int | None = None,
    quantize: bool = True,
) -> list[float]:
    """SSIM (Wang et al. 2004) of each image; same inputs and protocols as PSNR.

    11x11 Gaussian window (sigma 1.5), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2,
    population (biased) variances, mean of the 'valid' SSIM map, mean over channels.
    Identical 8-bit images give exactly 1.0.

    Raises:
        ImageInputError etc.: as :func:`psnr_per_image`, and when the cropped image is smaller than
            the 11x11 window.
    """
    a, b = _prepare(sr, hr, scale, protocol, crop, "ssim", quantize)
    n, c, h, w = a.shape
    if h < _SSIM_WINDOW or w < _SSIM_WINDOW:
        raise ImageInputError(
            f"ssim: after cropping the images are {h}x{w}, smaller than the "
            f"{_SSIM_WINDOW}x{_SSIM_WINDOW} SSIM window."
        )
    g = _gaussian_window(a.device)
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    x = a.reshape(n * c, 1, h, w)
    y = b.reshape(n * c, 1, h, w)
    # One filtering pass for the five local statistics.
    stats = _filter_valid(torch.cat([x, y, x * x, y * y, x * y]), g)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.chunk(5)
    var_x = e_xx - mu_x**2
    var_y = e_yy - mu_y**2
    cov = e_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    per_image = (num / den).reshape(n, -1).mean(dim=1)
    identical = (a == b).flatten(1).all(dim=1)
    # Rounding can leave 1 - 1e-16 for identical inputs; report the exact value.
    return [
        1.0 if same else float(v)
        for v, same in zip(per_image.tolist(), identical.tolist(), strict=True)
    ]


def ssim(
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    protocol: str = "benchmark",
    *,
    crop: int | None = None,
    quantize: bool = True,
) -> float:
    """SSIM; for a batch, the mean of the per-image values. See :func:`ssim_per_image`."""
    values = ssim_per_image(sr, hr, scale, protocol, crop=crop, quantize=quantize)
    return math.fsum(values) / len(values)
