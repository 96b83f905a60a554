"""Degradations (edsr_lab.data.degradations), each checked against its definition."""

from __future__ import annotations

import math

import pytest
import torch

from edsr_lab.data.degradations import (
    DEGRADATIONS,
    FWHM_PER_SIGMA,
    bicubic,
    ct,
    gaussian_psf_weights,
    kspace,
    kspace_truncate,
    make_lr,
    parse_degradation,
    tukey_window,
)
from edsr_lab.errors import BadArgumentError, ImageInputError
from edsr_lab.resize import degrade


def _phantom(h: int = 48, w: int = 40, seed: int = 0) -> torch.Tensor:
    """(1, h, w) in [0, 1]: a bright disc on a dim background, plus texture."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = (((y - h / 2) ** 2 + (x - w / 3) ** 2) < (h / 4) ** 2).double()
    return (0.2 + 0.6 * disc + 0.1 * torch.rand(h, w, generator=g, dtype=torch.float64))[None]


@pytest.mark.parametrize(("h", "w", "s"), [(48, 40, 2), (45, 39, 3), (48, 48, 4)])
def test_kspace_lr_spectrum_is_the_hr_central_block_over_s_squared(h, w, s):
    hr = _phantom(h, w)
    lr = kspace_truncate(hr, s)
    spectrum = torch.fft.fftshift(torch.fft.fft2(hr), dim=(-2, -1))
    r0, c0 = h // 2 - (h // s) // 2, w // 2 - (w // s) // 2
    block = spectrum[..., r0 : r0 + h // s, c0 : c0 + w // s]
    lr_spectrum = torch.fft.fftshift(torch.fft.fft2(lr), dim=(-2, -1))
    assert torch.allclose(lr_spectrum.abs(), block.abs() / s**2, atol=1e-9)
    # ... up to the documented phase ramp, a shift of (s - 1) / 2 HR pixels.
    ky = (torch.arange(h // s, dtype=torch.float64) - (h // s) // 2)[:, None] / h
    kx = (torch.arange(w // s, dtype=torch.float64) - (w // s) // 2)[None, :] / w
    ramp = torch.exp(2j * math.pi * (s - 1) / 2 * (ky + kx))
    assert torch.allclose(lr_spectrum, block * ramp / s**2, atol=1e-9)
    assert float(lr.real.mean()) == pytest.approx(float(hr.mean()), abs=1e-12)  # DC kept
    # Without window or noise the degradation is the magnitude of that complex image.
    mag = kspace(hr, s, clip=False)
    assert torch.allclose(mag, lr.abs(), atol=1e-12)


def test_kspace_of_a_band_limited_image_is_exact_sampling():
    """A cosine below the LR's Nyquist frequency survives truncation unchanged."""
    h = w = 32
    y = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    x = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    hr = 0.5 + 0.25 * torch.cos(2 * math.pi * 3 * x / w) * torch.cos(2 * math.pi * 2 * y / h)
    lr = kspace(hr[None], 2)[0]
    # Sample at LR pixel centres: HR index 2i + 1/2.
    yc = (2 * torch.arange(16, dtype=torch.float64) + 0.5)[:, None]
    xc = (2 * torch.arange(16, dtype=torch.float64) + 0.5)[None, :]
    expected = 0.5 + 0.25 * torch.cos(2 * math.pi * 3 * xc / w) * torch.cos(
        2 * math.pi * 2 * yc / h
    )
    assert torch.allclose(lr, expected, atol=1e-12)


def test_a_window_reduces_ringing_and_keeps_the_mean():
    hr = torch.zeros(1, 64, 64, dtype=torch.float64)
    hr[..., :, 27:] = 0.8  # a sharp step (and, the DFT being periodic, one back at x = 0)
    centres = torch.arange(32, dtype=torch.float64) * 2 + 0.5  # LR centres in HR pixels
    ideal = torch.where(centres >= 27, 0.8, 0.0)
    far = ((centres - 27).abs() > 6) & (centres > 6) & (centres < 58)  # 3 LR px from edges
    ringing = {}
    for name, kw in (("none", {}), ("tukey", {"window": "tukey"}), ("hann", {"window": "hann"})):
        lr = kspace(hr, 2, clip=False, **kw)
        ringing[name] = float((lr - ideal)[..., far].abs().mean())
        assert float(kspace_truncate(hr, 2, **kw).real.mean()) == pytest.approx(float(hr.mean()))
    assert ringing["none"] > 0.01 and ringing["hann"] < ringing["tukey"] < ringing["none"]
    assert ringing["hann"] < 1e-3


def test_tukey_window_definition():
    w = tukey_window(8, 1.0)  # Hann over k = -4..3
    k = torch.arange(8, dtype=torch.float64) - 4
    assert torch.allclose(w, 0.5 * (1 + torch.cos(math.pi * k.abs() / 4)))
    assert float(w[4]) == 1.0 and float(w[0]) == 0.0
    assert torch.equal(tukey_window(8, 0.0), torch.ones(8, dtype=torch.float64))
    flat = tukey_window(16, 0.25)
    assert torch.equal(flat[3:14], torch.ones(11, dtype=torch.float64))  # |u| <= 0.75
    with pytest.raises(BadArgumentError, match="alpha"):
        tukey_window(8, 1.5)


def test_rician_noise_statistics():
    zero = torch.zeros(1, 256, 256, dtype=torch.float64)
    sigma = 0.05
    background = make_lr(zero, 2, "kspace", noise_sigma=sigma, seed=1)
    # Magnitude of complex N(0, sigma^2) noise: Rayleigh, mean sigma * sqrt(pi / 2).
    assert float(background.mean()) == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.02)
    bright = make_lr(torch.full_like(zero, 0.6), 2, "kspace", noise_sigma=sigma, seed=1)
    # Strong signal: about Gaussian with the same sigma, mean sqrt(A^2 + sigma^2).
    assert float(bright.std()) == pytest.approx(sigma, rel=0.03)
    assert float(bright.mean()) == pytest.approx(math.sqrt(0.36 + sigma**2), abs=2e-3)


def test_psf_rows_sum_to_one_and_have_the_asked_width():
    m = gaussian_psf_weights(60, 3, fwhm=1.5)
    assert m.shape == (20, 60) and torch.allclose(m.sum(dim=1), torch.ones(20, dtype=m.dtype))
    flat = torch.full((1, 60, 60), 0.37, dtype=torch.float64)
    assert torch.allclose(
        ct(flat, 3, fwhm=1.5, noise=None), torch.full_like(flat[..., :20, :20], 0.37)
    )
    # An HR impulse at LR pixel 10's centre (HR index 31 at x3): the LR profile is the
    # Gaussian sampled every 3 HR pixels, i.e. sigma = fwhm / 2.3548 in LR pixels.
    hr = torch.zeros(1, 60, 60, dtype=torch.float64)
    hr[0, 31, 31] = 1.0
    lr = ct(hr, 3, fwhm=1.5, noise=None, clip=False)[0]
    sigma_lr = 1.5 / FWHM_PER_SIGMA
    ratio = float(lr[10, 11] / lr[10, 10])
    assert ratio == pytest.approx(math.exp(-1 / (2 * sigma_lr**2)), rel=1e-9)
    assert int(lr.argmax()) == 10 * 20 + 10


def test_ct_noise_statistics():
    flat = torch.full((1, 200, 200), 0.25, dtype=torch.float64)
    gauss = make_lr(flat, 2, "ct", noise="gaussian", sigma=0.02, seed=3)
    assert float(gauss.std()) == pytest.approx(0.02, rel=0.03)
    assert float(gauss.mean()) == pytest.approx(0.25, abs=1e-3)
    pois = make_lr(flat, 2, "ct", noise="poisson", photons=1000.0, seed=3)
    # Poisson(0.25 * 1000) / 1000: mean 0.25, variance 0.25 / 1000.
    assert float(pois.var()) == pytest.approx(0.25 / 1000, rel=0.05)
    assert float(pois.mean()) == pytest.approx(0.25, abs=1e-3)
    assert float(make_lr(flat, 2, "ct", noise=None).std()) < 1e-12


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("kspace", {"noise_sigma": 0.03}),
        ("ct", {"noise": "gaussian"}),
        ("ct", {"noise": "poisson"}),
    ],
)
def test_noise_is_deterministic_by_seed(name, params):
    hr = _phantom()
    a = make_lr(hr, 2, name, seed=5, **params)
    b = make_lr(hr, 2, name, seed=5, **params)
    c = make_lr(hr, 2, name, seed=6, **params)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(make_lr(hr, 2, name, generator=g1, **params), a)
    # A generator advances: two draws differ (fresh noise per training sample).
    assert not torch.equal(
        make_lr(hr, 2, name, generator=g2, **params), make_lr(hr, 2, name, generator=g2, **params)
    )


def test_bicubic_is_matlab_and_quantize_gives_div2k_lr():
    hr = _phantom().float()
    assert torch.equal(bicubic(hr, 2, quantize=True), degrade(hr, 2))
    assert torch.allclose(bicubic(hr, 2, clip=False), degrade(hr, 2, quantize=False))
    assert not torch.equal(bicubic(hr, 2), bicubic(hr, 2, quantize=True))


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_every_degradation_shapes_batches_and_clips(name):
    hr = torch.stack([_phantom(27, 31, 0), _phantom(27, 31, 1)]).float()  # (2, 1, 27, 31)
    lr = make_lr(hr, 3, name, seed=0)
    assert lr.shape == (2, 1, 9, 10) and lr.dtype == torch.float32
    assert float(lr.min()) >= 0.0 and float(lr.max()) <= 1.0
    single = make_lr(hr[0], 3, name, seed=0)
    assert single.shape == (1, 9, 10)


def test_registry_and_parser_refuse_unknown_names_and_options():
    hr = _phantom()
    with pytest.raises(BadArgumentError, match="bicubic, kspace, ct"):
        make_lr(hr, 2, "gaussian")
    with pytest.raises(BadArgumentError, match="no option fwhm.*window"):
        make_lr(hr, 2, "kspace", fwhm=2.0)
    assert parse_degradation("kspace:window=hann,noise_sigma=0.02") == (
        "kspace",
        {"window": "hann", "noise_sigma": 0.02},
    )
    assert parse_degradation("ct:noise=none,fwhm=2") == ("ct", {"noise": None, "fwhm": 2.0})
    assert parse_degradation("bicubic:quantize=true") == ("bicubic", {"quantize": True})
    assert parse_degradation("bicubic") == ("bicubic", {})
    for bad, match in [
        ("blur", "unknown degradation"),
        ("kspace:sigma=1", "key among"),
        ("kspace:noise_sigma", "key=value"),
        ("ct:fwhm=wide", "not a valid float"),
        ("bicubic:quantize=maybe", "not a valid bool"),
    ]:
        with pytest.raises(BadArgumentError, match=match):
            parse_degradation(bad)
    with pytest.raises(BadArgumentError, match="window must be"):
        kspace(hr, 2, window="gauss")
    with pytest.raises(BadArgumentError, match="fwhm must be > 0"):
        ct(hr, 2, fwhm=0)
    with pytest.raises(BadArgumentError, match="noise must be"):
        ct(hr, 2, noise="salt")
    with pytest.raises(BadArgumentError, match="smaller than the scale"):
        kspace(hr[..., :1, :], 2)
    with pytest.raises(ImageInputError):
        kspace(torch.zeros(4, 4), 2)
