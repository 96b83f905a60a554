"""Tests of edsr_lab.evaluate: super_resolve (ensemble, tiling) and evaluate (CPU, seconds)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edsr_lab.errors import ImageTypeError, SizeMismatchError
from edsr_lab.evaluate import EvalResult, evaluate
from edsr_lab.inference import bicubic_upscale, super_resolve


class ConvShuffle(nn.Module):
    """Two 3x3 convs + PixelShuffle: receptive-field radius 2 LR pixels (+ the shuffle)."""

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        torch.manual_seed(scale)
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x)) + F.interpolate(x, scale_factor=self.scale)


class PointwiseNearest(nn.Module):
    """1x1 conv + nearest upsampling: commutes with every flip/rotation."""

    def __init__(self, scale: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.scale = scale
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(torch.sigmoid(self.conv(x)), scale_factor=self.scale)


class MultiScale(nn.Module):
    """MDSR-like: forward(x, scale)."""

    scales = (2, 3, 4)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="nearest")


def test_super_resolve_shapes_clamp_and_mode():
    model = ConvShuffle(2)
    model.train()
    lr = torch.rand(3, 11, 7)
    sr = super_resolve(model, lr)
    assert sr.shape == (3, 22, 14) and sr.dtype == torch.float32
    assert sr.min() >= 0 and sr.max() <= 1
    assert not sr.is_inference()  # usable in autograd code afterwards
    assert model.training  # the previous mode is restored
    batch = super_resolve(model, torch.rand(2, 3, 5, 6))
    assert batch.shape == (2, 3, 10, 12)
    # Identical to calling the model in eval mode and clamping.
    model.eval()
    with torch.no_grad():
        ref = model(lr[None])[0].clamp(0, 1)
    assert torch.allclose(sr, ref, atol=1e-6)


def test_super_resolve_multiscale_model_needs_scale():
    model = MultiScale()
    lr = torch.rand(3, 5, 5)
    assert super_resolve(model, lr, scale=3).shape == (3, 15, 15)
    with pytest.raises(ValueError, match="scale"):
        super_resolve(model, lr)
    with pytest.raises(ValueError, match="upscales by .* only"):  # inference.resolve_scale
        super_resolve(model, lr, scale=8)


def test_super_resolve_bad_inputs_are_clear():
    model = ConvShuffle(2)
    with pytest.raises(SizeMismatchError, match="4 channels.*expects 3.*channels=3"):
        super_resolve(model, torch.rand(4, 8, 8))
    with pytest.raises(ImageTypeError, match="float tensor"):
        super_resolve(model, torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ImageTypeError, match="torch.Tensor"):
        super_resolve(model, [[0.0]])
    with pytest.raises(ValueError, match="upscales by x2 only"):  # inference.resolve_scale
        super_resolve(model, torch.rand(3, 8, 8), scale=3)  # a x2 model asked for x3
    with pytest.raises(SizeMismatchError, match="expected"):  # says no scale, gives x1
        super_resolve(nn.Conv2d(3, 3, 3, padding=1), torch.rand(3, 8, 8), scale=2)
    with pytest.raises(ValueError, match="amp"):
        super_resolve(model, torch.rand(3, 8, 8), amp=True)


def test_self_ensemble_of_an_equivariant_model_equals_plain_output():
    model = PointwiseNearest(2)
    lr = torch.rand(3, 9, 6)  # non-square: rotations swap H and W
    plain = super_resolve(model, lr)
    ens = super_resolve(model, lr, self_ensemble=True)
    assert ens.shape == plain.shape == (3, 18, 12)
    assert torch.allclose(ens, plain, atol=1e-6)


def test_self_ensemble_changes_a_non_equivariant_model():
    model = ConvShuffle(2)
    lr = torch.rand(3, 8, 8)
    plain = super_resolve(model, lr)
    ens = super_resolve(model, lr, self_ensemble=True)
    assert (ens - plain).abs().max() > 1e-4


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("tile", [5, 8, 16])
def test_tiled_equals_untiled_at_odd_sizes(scale, tile):
    model = ConvShuffle(scale)
    lr = torch.rand(3, 37, 29)
    full = super_resolve(model, lr)
    tiled = super_resolve(model, lr, tile=tile, tile_overlap=3)
    assert tiled.shape == full.shape == (3, 37 * scale, 29 * scale)
    assert torch.allclose(tiled, full, atol=1e-5)


def test_tiling_with_too_little_overlap_differs():
    # Shows why the overlap must cover the receptive field (radius 2 here).
    model = ConvShuffle(3)
    lr = torch.rand(3, 37, 29)
    diff = super_resolve(model, lr, tile=8, tile_overlap=0) - super_resolve(model, lr)
    assert diff.abs().max() > 1e-4


def test_tiled_self_ensemble_and_multiscale():
    model = ConvShuffle(3)
    lr = torch.rand(1, 3, 13, 10)
    a = super_resolve(model, lr, self_ensemble=True)
    b = super_resolve(model, lr, self_ensemble=True, tile=4, tile_overlap=3)
    assert torch.allclose(a, b, atol=1e-5)
    ms = MultiScale()
    assert torch.equal(
        super_resolve(ms, lr, scale=4, tile=5, tile_overlap=2), super_resolve(ms, lr, scale=4)
    )


def test_bicubic_upscale():
    lr = torch.rand(3, 10, 7)
    up = bicubic_upscale(lr, 3)
    assert up.shape == (3, 30, 21) and up.min() >= 0 and up.max() <= 1


def _pairs(n: int = 2, scale: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from edsr_lab.resize import imresize

    g = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(n):
        hr = F.interpolate(torch.rand(1, 3, 12, 10, generator=g), size=(36, 30), mode="bilinear")[0]
        lr = imresize(hr, 1 / scale).clamp(0, 1)
        pairs.append((hr, lr))
    return pairs


def test_evaluate_bicubic_callable_and_table():
    pairs = _pairs()
    res = evaluate(lambda lr: bicubic_upscale(lr, 2), pairs, 2, names=["a", "b"], label="Bicubic")
    assert isinstance(res, EvalResult) and [r.name for r in res.rows] == ["a", "b"]
    assert all(math.isfinite(r.psnr) and 15 < r.psnr < 80 for r in res.rows)
    assert all(0 < r.ssim <= 1 for r in res.rows)
    assert res.mean_psnr == pytest.approx(sum(res.psnrs) / 2)
    text = res.table()
    assert "Bicubic" in text and "mean" in text and f"{res.mean_psnr:.2f}" in text
    assert res.to_dict()["rows"][0]["name"] == "a"
    # The paper's protocols differ: Y channel with crop 2 vs RGB with crop 8.
    rgb = evaluate(lambda lr: bicubic_upscale(lr, 2), pairs, 2, protocol="div2k")
    assert rgb.mean_psnr != pytest.approx(res.mean_psnr)


def test_evaluate_model_matches_manual_scoring():
    from edsr_lab.metrics import psnr, quantize

    model = ConvShuffle(2)
    pairs = _pairs(1)
    res = evaluate(model, pairs, 2, compute_ssim=False)
    hr, lr = pairs[0]
    expected = psnr(quantize(super_resolve(model, lr)), hr, 2, protocol="benchmark")
    assert res.rows[0].psnr == pytest.approx(float(expected))
    assert math.isnan(res.rows[0].ssim)
    # Batched tensors and dicts are accepted too.
    hr_b = torch.stack([p[0] for p in _pairs(2)])
    lr_b = torch.stack([p[1] for p in _pairs(2)])
    assert len(evaluate(model, (hr_b, lr_b), 2, compute_ssim=False).rows) == 2
    assert evaluate(model, {"x": pairs[0]}, 2, compute_ssim=False).rows[0].name == "x"


def test_evaluate_size_mismatch_suggests_modcrop():
    hr, lr = _pairs(1)[0]
    with pytest.raises(SizeMismatchError, match="modcrop"):
        evaluate(lambda x: bicubic_upscale(x, 2), [(hr[:, :35], lr)], 2)
    with pytest.raises(ValueError, match="no image pairs"):
        evaluate(lambda x: x, [], 2)
    with pytest.raises(TypeError, match="pair"):
        evaluate(lambda x: x, [hr], 2)
