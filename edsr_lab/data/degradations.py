"""How low-resolution images are made: MATLAB bicubic, MRI k-space truncation, a CT-like model.

EDSR (Lim et al., CVPRW 2017) learns to undo one degradation: MATLAB's
``imresize(HR, 1/s, 'bicubic')``. A model trained that way is tested in the course on LR it
will never meet in a scanner: low-resolution MRI is acquired with fewer k-space lines (a
truncated spectrum: ringing, no aliasing), low-resolution CT comes from a wider detector
and reconstruction kernel (a blur) plus quantum noise. Training and evaluating with the
degradation the data really has is the first thing that matters for medical SR (notebook 11
measures the gap). Each degradation here is a function

    ``f(hr, scale, *, generator=None, **params) -> lr``

on float tensors (C, H, W) or (N, C, H, W) in [0, 1], registered by name in
:data:`DEGRADATIONS`; :func:`make_lr` looks one up by name and seeds its noise. The HR is
first cropped to a multiple of ``scale`` (top-left kept, :func:`edsr_lab.resize.modcrop`), so
LR is exactly (H // s, W // s) for every degradation. Results are clipped to [0, 1] (the
model's input range) unless ``clip=False``.

* ``"bicubic"`` (:func:`bicubic`): MATLAB ``imresize(HR, 1/s)`` (:func:`edsr_lab.resize.degrade`),
  float by default; ``quantize=True`` gives DIV2K's 8-bit LR exactly.
* ``"kspace"`` (:func:`kspace`): keep the central (H/s) x (W/s) block of the HR's centred 2-D
  DFT, optionally taper it with a Tukey/Hann window (less ringing, a little more blur),
  transform back, add complex Gaussian noise of standard deviation ``noise_sigma`` to the
  real and imaginary parts (so the magnitude image has Rician noise, as MR magnitude images
  do), and take the magnitude. With the unnormalised forward DFT (``torch.fft.fft2``)::

      fft2(LR_complex) = centre_block(fft2(HR)) * window * ramp / s**2

  The 1/s**2 keeps the mean intensity (the DC term over the number of pixels) unchanged;
  ``ramp`` is a pure phase that puts LR pixel centres where bicubic puts them
  (:func:`kspace_truncate` says why), so ``|fft2(LR_complex)| = |block| * window / s**2``.
* ``"ct"`` (:func:`ct`): a Gaussian point-spread function whose full width at half maximum
  is ``fwhm`` LR pixels, evaluated at each LR pixel's centre (HR index ``s*i + (s-1)/2``, the
  alignment of :mod:`edsr_lab.geometry`), weights normalised to sum to 1 (flat regions keep
  their value), borders mirrored; then Gaussian (``sigma``) or Poisson noise (``photons``
  expected counts at intensity 1: ``Poisson(lr * photons) / photons``). Blurring then
  sampling equals sampling the blurred image; adding noise after the decimation instead of
  before gives the same distribution (white noise stays white when subsampled, Poisson
  noise is pixel-wise). It is "CT-like": real CT noise is Poisson in the *projections* and
  reaches the image through filtered back-projection, correlated and non-uniform; this
  image-domain model is a teaching approximation.

Seeding: pass ``generator`` (a ``torch.Generator``, e.g. one per data loader worker) or
``seed`` to :func:`make_lr`; with neither, noise comes from torch's global generator
(reproducible after ``torch.manual_seed``). The same seed gives the same LR.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from edsr_lab.errors import BadArgumentError
from edsr_lab.resize import degrade as _matlab_bicubic
from edsr_lab.resize import modcrop
from edsr_lab.validate import check_image, check_scale

__all__ = [
    "DEGRADATIONS",
    "bicubic",
    "ct",
    "degradation_names",
    "derived_seed",
    "describe_degradation",
    "gaussian_psf_weights",
    "kspace",
    "kspace_truncate",
    "make_lr",
    "parse_degradation",
    "tukey_window",
]

#: FWHM of a Gaussian = this many standard deviations.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _prepare(hr: torch.Tensor, scale: int, name: str) -> torch.Tensor:
    hr = check_image(hr, f"{name}: hr", ndims=(3, 4), layout="(C, H, W) or (N, C, H, W)")
    s = check_scale(scale)
    h, w = hr.shape[-2:]
    if h < s or w < s:
        raise BadArgumentError(f"{name}: the HR is {h}x{w}, smaller than the scale {s}")
    return modcrop(hr, s)


def _finish(lr: torch.Tensor, like: torch.Tensor, clip: bool) -> torch.Tensor:
    lr = lr.to(like.dtype)
    return lr.clamp_(0.0, 1.0) if clip else lr


# ------------------------------------------------------------------------------ bicubic
def bicubic(
    hr: torch.Tensor,
    scale: int,
    *,
    quantize: bool = False,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """MATLAB ``imresize(HR, 1/s, 'bicubic')``; ``quantize=True``: DIV2K's 8-bit LR exactly.

    Args:
        hr: float (C, H, W) or (N, C, H, W) in [0, 1].
        scale: whole number >= 1.
        quantize: round to 8-bit levels the MATLAB uint8 way (see
            :func:`edsr_lab.resize.degrade`); default False keeps 16-bit and float detail.
        generator: unused (no noise); accepted so every degradation has one signature.
        clip: clamp to [0, 1] (bicubic overshoots a little at edges).

    Returns:
        LR (..., C, H // s, W // s), hr's dtype.
    """
    hr = _prepare(hr, scale, "bicubic")
    return _finish(_matlab_bicubic(hr, scale, quantize=quantize), hr, clip)


# ------------------------------------------------------------------------------ k-space
def tukey_window(n: int, alpha: float, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Tukey window over the ``n`` centred frequencies ``k = -(n // 2) .. n - n // 2 - 1``.

    With ``u = |k| / (n / 2)`` in [0, 1]: ``w = 1`` for ``u <= 1 - alpha``, else
    ``(1 + cos(pi * (u - 1 + alpha) / alpha)) / 2``, which reaches 0 at ``u = 1``.
    ``alpha = 1`` is the Hann window, ``alpha = 0`` no window. The order is that of
    ``torch.fft.fftshift`` (zero frequency at index ``n // 2``); ``w[n // 2] = 1`` always.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise BadArgumentError(f"window alpha must be in [0, 1], got {alpha!r}")
    k = torch.arange(n, dtype=dtype) - n // 2
    u = k.abs() / (n / 2.0)
    if alpha == 0:
        return torch.ones(n, dtype=dtype)
    taper = 0.5 * (1.0 + torch.cos(math.pi * (u - 1.0 + alpha) / alpha))
    return torch.where(u <= 1.0 - alpha, torch.ones_like(u), taper)


def _window_alpha(window: str | None, alpha: float) -> float:
    if window is None or window == "none":
        return 0.0
    if window == "hann":
        return 1.0
    if window == "tukey":
        return float(alpha)
    raise BadArgumentError(f"window must be None, 'none', 'hann' or 'tukey', got {window!r}")


def kspace_truncate(
    hr: torch.Tensor, scale: int, *, window: str | None = None, alpha: float = 0.5
) -> torch.Tensor:
    """The complex LR image whose DFT is the central block of the HR's (see module docstring).

    Args:
        hr: float (..., H, W) with H, W multiples of ``scale``.
        scale: whole number >= 1.
        window: None, ``"hann"`` or ``"tukey"`` (with ``alpha``): a separable taper of the
            kept block (:func:`tukey_window` along each axis).
        alpha: the Tukey window's tapered fraction.

    Returns:
        complex128 (..., H // s, W // s): ``ifft2(ifftshift(block * window * ramp)) / s**2``.

    The phase ramp ``ramp[k, l] = exp(2 pi i (k / H + l / W) (s - 1) / 2)`` shifts the image
    by ``(s - 1) / 2`` HR pixels, so LR pixel ``i`` samples the band-limited HR at
    ``s*i + (s-1)/2``: the pixel-centre alignment of MATLAB bicubic and of
    :mod:`edsr_lab.geometry` (a plain truncation would put LR pixel ``i`` at HR ``s*i``,
    and a model trained on it would learn a half-pixel shift at x2). It changes phases only:
    ``|fft2(LR)| = |block * window| / s**2``.
    """
    s = check_scale(scale)
    big_h, big_w = hr.shape[-2:]
    if big_h % s or big_w % s:
        raise BadArgumentError(
            f"kspace_truncate: {big_h}x{big_w} is not a multiple of the scale {s}; crop it "
            "with edsr_lab.resize.modcrop(hr, scale)"
        )
    h, w = big_h // s, big_w // s
    spectrum = torch.fft.fftshift(torch.fft.fft2(hr.to(torch.float64)), dim=(-2, -1))
    r0, c0 = big_h // 2 - h // 2, big_w // 2 - w // 2
    block = spectrum[..., r0 : r0 + h, c0 : c0 + w]
    shift = (s - 1) / 2.0
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / big_h
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / big_w
    ramp = torch.polar(
        torch.ones(h, w, dtype=torch.float64), 2 * math.pi * shift * (ky[:, None] + kx[None, :])
    )
    block = block * ramp.to(block.device)
    a = _window_alpha(window, alpha)
    if a > 0:
        taper = tukey_window(h, a)[:, None] * tukey_window(w, a)[None, :]
        block = block * taper.to(block.device)
    return torch.fft.ifft2(torch.fft.ifftshift(block, dim=(-2, -1))) / (s * s)


def kspace(
    hr: torch.Tensor,
    scale: int,
    *,
    window: str | None = None,
    alpha: float = 0.5,
    noise_sigma: float = 0.0,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """MRI-like LR: k-space truncation, optional window, optional Rician noise, magnitude.

    Args:
        hr: float (C, H, W) or (N, C, H, W) in [0, 1] (a magnitude image).
        scale: whole number >= 1 (the kept block is (H/s) x (W/s)).
        window: None (sharpest, most ringing), ``"hann"`` or ``"tukey"`` (with ``alpha``).
        alpha: Tukey taper fraction in [0, 1].
        noise_sigma: standard deviation of the Gaussian noise added to the real and to the
            imaginary part of the complex LR, in [0, 1] intensity units (0 = none). The
            magnitude is then Rician: about Gaussian with this sigma where the signal is
            strong, Rayleigh (mean ``sigma * sqrt(pi / 2)``) in the background.
        generator: for the noise (see the module docstring).
        clip: clamp the magnitude to [0, 1] (ringing overshoots bright edges).

    Returns:
        LR (..., C, H // s, W // s), hr's dtype.
    """
    hr = _prepare(hr, scale, "kspace")
    if not float(noise_sigma) >= 0.0:
        raise BadArgumentError(f"kspace: noise_sigma must be >= 0, got {noise_sigma!r}")
    lr = kspace_truncate(hr, scale, window=window, alpha=alpha)
    if noise_sigma > 0:
        noise = torch.randn(
            (2, *lr.shape), generator=generator, dtype=torch.float64, device=lr.device
        )
        lr = lr + noise_sigma * torch.complex(noise[0], noise[1])
    return _finish(lr.abs(), hr, clip)


# ------------------------------------------------------------------------------ CT-like
def gaussian_psf_weights(
    in_len: int, scale: int, fwhm: float, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The (in_len // s, in_len) matrix of one axis of :func:`ct`'s blur-and-sample.

    Row ``i`` holds ``g(j - c_i)`` for HR pixels ``j``, with ``c_i = s*i + (s-1)/2`` the LR
    pixel's centre in HR indices and ``g`` a Gaussian of standard deviation
    ``fwhm * s / 2.3548`` HR pixels, cut at 4 standard deviations; taps beyond the border
    are mirrored back in (``[0..n-1, n-1..0]``, as :mod:`edsr_lab.resize`), and each row is
    normalised to sum to 1.
    """
    s = check_scale(scale)
    if not float(fwhm) > 0:
        raise BadArgumentError(f"ct: fwhm must be > 0 (in LR pixels), got {fwhm!r}")
    sigma = float(fwhm) * s / FWHM_PER_SIGMA
    out_len = in_len // s
    reach = int(math.ceil(4.0 * sigma)) + s
    centres = torch.arange(out_len, dtype=torch.float64) * s + (s - 1) / 2.0
    taps = torch.floor(centres)[:, None] + torch.arange(-reach, reach + 2, dtype=torch.float64)
    weights = torch.exp(-((taps - centres[:, None]) ** 2) / (2.0 * sigma**2))
    weights = torch.where((taps - centres[:, None]).abs() <= 4.0 * sigma, weights, 0.0)
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    index = mirror[torch.remainder(taps.long(), 2 * in_len)]
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, index, weights)
    return (matrix / matrix.sum(dim=1, keepdim=True)).to(dtype)


def ct(
    hr: torch.Tensor,
    scale: int,
    *,
    fwhm: float = 1.0,
    noise: str | None = "gaussian",
    sigma: float = 0.01,
    photons: float = 1e4,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """CT-like LR: Gaussian PSF of ``fwhm`` LR pixels sampled at LR centres, then noise.

    Args:
        hr: float (C, H, W) or (N, C, H, W) in [0, 1].
        scale: whole number >= 1.
        fwhm: full width at half maximum of the PSF, in LR pixels (> 0).
        noise: ``"gaussian"`` (additive, standard deviation ``sigma``), ``"poisson"``
            (``photons`` expected counts at intensity 1) or None.
        sigma: Gaussian noise standard deviation in [0, 1] units.
        photons: Poisson counts at intensity 1 (more photons, less noise: the relative noise
            of a pixel of intensity x is ``1 / sqrt(x * photons)``).
        generator: for the noise (see the module docstring).
        clip: clamp to [0, 1].

    Returns:
        LR (..., C, H // s, W // s), hr's dtype.
    """
    hr = _prepare(hr, scale, "ct")
    if noise not in (None, "none", "gaussian", "poisson"):
        raise BadArgumentError(f"ct: noise must be 'gaussian', 'poisson' or None, got {noise!r}")
    big_h, big_w = hr.shape[-2:]
    rows = gaussian_psf_weights(big_h, scale, fwhm).to(hr.device)
    cols = gaussian_psf_weights(big_w, scale, fwhm).to(hr.device)
    # float64 throughout; the result is cast back to hr's dtype by _finish.
    lr = torch.einsum("ih,...hw,jw->...ij", rows, hr.to(torch.float64), cols)
    if noise == "gaussian" and sigma > 0:
        lr = lr + sigma * torch.randn(
            lr.shape, generator=generator, dtype=lr.dtype, device=lr.device
        )
    elif noise == "poisson":
        if not float(photons) > 0:
            raise BadArgumentError(f"ct: photons must be > 0, got {photons!r}")
        lr = torch.poisson(lr.clamp(min=0.0) * photons, generator=generator) / photons
    return _finish(lr, hr, clip)


# ------------------------------------------------------------------------------ registry
#: name -> degradation function (see the module docstring).
DEGRADATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "bicubic": bicubic,
    "kspace": kspace,
    "ct": ct,
}


def degradation_names() -> list[str]:
    return list(DEGRADATIONS)


def derived_seed(seed: int, *parts: object) -> int:
    """A noise seed for one image or volume: ``seed`` and ``parts`` (its name, the scale)
    hashed with BLAKE2b to 63 bits, so the same file gets the same LR on every run and
    machine and no two files share a noise stream (``seed + i`` would make run 1's image
    0 run 0's image 1)."""
    import hashlib

    text = ":".join(str(p) for p in (int(seed), *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def describe_degradation(name: str, params: dict[str, Any] | None = None) -> str:
    """``name`` or ``name:k=v,...`` (options sorted): how CSVs and summaries record it;
    :func:`parse_degradation` reads it back."""
    params = params or {}
    return name + (":" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")


def _options(fn: Callable[..., torch.Tensor]) -> dict[str, inspect.Parameter]:
    skip = {"hr", "scale", "generator"}
    return {n: p for n, p in inspect.signature(fn).parameters.items() if n not in skip}


def make_lr(
    hr: torch.Tensor,
    scale: int,
    degradation: str = "bicubic",
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    **params: Any,
) -> torch.Tensor:
    """Make LR from HR with a degradation named in :data:`DEGRADATIONS`.

    Args:
        hr: float (C, H, W) or (N, C, H, W) in [0, 1].
        scale: whole number >= 1.
        degradation: ``"bicubic"``, ``"kspace"`` or ``"ct"``.
        seed: seed for the noise (a fresh CPU generator); ignored if ``generator`` is given.
        generator: a ``torch.Generator`` on hr's device (e.g. one per data loader worker).
        **params: the degradation's options (e.g. ``window="hann", noise_sigma=0.02``).

    Raises:
        BadArgumentError: unknown degradation or option (the message lists the valid ones).
    """
    if degradation not in DEGRADATIONS:
        raise BadArgumentError(
            f"unknown degradation {degradation!r}; choose one of {', '.join(DEGRADATIONS)}"
        )
    fn = DEGRADATIONS[degradation]
    options = _options(fn)
    unknown = sorted(set(params) - set(options))
    if unknown:
        raise BadArgumentError(
            f"degradation {degradation!r} has no option {', '.join(unknown)}; its options: "
            f"{', '.join(options)}"
        )
    if generator is None and seed is not None:
        generator = torch.Generator(device=hr.device if isinstance(hr, torch.Tensor) else "cpu")
        generator.manual_seed(int(seed))
    return fn(hr, scale, generator=generator, **params)


def parse_degradation(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``"name"`` or ``"name:key=value,key=value"`` (a command-line option).

    Values are converted to the type of the option's default (``float``, ``bool``, ``str``;
    ``none`` -> None). Example: ``"kspace:window=hann,noise_sigma=0.02"`` ->
    ``("kspace", {"window": "hann", "noise_sigma": 0.02})``.

    Raises:
        BadArgumentError: unknown name, unknown option, or a value of the wrong type.
    """
    name, _, rest = str(text).strip().partition(":")
    if name not in DEGRADATIONS:
        raise BadArgumentError(
            f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)} "
            "(e.g. kspace:window=hann,noise_sigma=0.02)"
        )
    options = _options(DEGRADATIONS[name])
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in options:
            raise BadArgumentError(
                f"degradation {text!r}: {item!r} is not key=value with a key among "
                f"{', '.join(options)}"
            )
        default = options[key].default
        bad = BadArgumentError(
            f"degradation {text!r}: {key}={value!r} is not a valid {type(default).__name__}"
        )
        if value.lower() == "none":
            params[key] = None
        elif isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise bad
            params[key] = value.lower() in ("true", "1")
        elif isinstance(default, int | float):
            try:
                params[key] = float(value)
            except ValueError:
                raise bad from None
        else:
            params[key] = value
    return name, params
