"""Inference that does not fall over: OOM fall-back to tiles, batched self-ensemble, devices;
and evaluate() checked against closed-form PSNR values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edsr_lab import inference
from edsr_lab.errors import DeviceError
from edsr_lab.evaluate import evaluate
from edsr_lab.inference import super_resolve


class Pointwise(nn.Module):
    """1x1 conv + nearest x2: every output pixel depends on one input pixel, so tiles are
    exact. Records the input shapes it sees; raises CUDA OOM above ``limit`` pixels."""

    scale = 2

    def __init__(self, limit: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)
        self.limit, self.shapes = limit, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        if self.limit is not None and x.shape[0] * x.shape[2] * x.shape[3] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return F.interpolate(torch.sigmoid(self.conv(x)), scale_factor=2)


class Asymmetric(nn.Module):
    """Not flip/rotation-equivariant (a 2x1 kernel), so each ensemble member differs."""

    scale = 2

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 12, (2, 1), padding=(1, 0))
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return F.pixel_shuffle(self.conv(x)[:, :, : x.shape[2]], 2).sigmoid()


def test_out_of_memory_falls_back_to_smaller_tiles_and_says_so(capsys):
    x = torch.rand(3, 64, 48)
    expected = super_resolve(Pointwise(), x)
    model = Pointwise(limit=20 * 20)  # "fits" only tiles of at most 20x20 pixels
    out = super_resolve(model, x, tile_overlap=0)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    err = capsys.readouterr().err
    assert "out of GPU memory on a 64x48 input" in err and "tiles of 32x32" in err
    assert "tiles of 16x16" in err  # halved twice: 64 -> 32 -> 16
    assert max(s[2] * s[3] for s in model.shapes[-4:]) <= 20 * 20


def test_out_of_memory_everywhere_is_one_clear_error():
    with pytest.raises(DeviceError, match="out of GPU memory even in 20x20 tiles"):
        super_resolve(Pointwise(limit=1), torch.rand(3, 40, 40))


@pytest.mark.parametrize("h, w, batches", [(12, 12, [8]), (12, 9, [4, 4])])
def test_self_ensemble_is_batched_and_equals_one_at_a_time(h, w, batches):
    x = torch.rand(2, 3, h, w)
    one = Asymmetric()
    expected = super_resolve(one, x, self_ensemble=True, ensemble_batch=False)
    assert [s[0] for s in one.shapes] == [2] * 8
    batched = Asymmetric()
    out = super_resolve(batched, x, self_ensemble=True)
    assert [s[0] // 2 for s in batched.shapes] == batches  # 2 images x transforms per batch
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    plain = super_resolve(Asymmetric(), x)
    assert (out - plain).abs().max() > 1e-3  # the ensemble does change this model's output


def test_self_ensemble_batch_out_of_memory_runs_one_at_a_time():
    x = torch.rand(3, 10, 10)
    model = Pointwise(limit=150)  # one 10x10 image fits, a batch of 8 does not
    out = super_resolve(model, x, self_ensemble=True)
    assert [s[0] for s in model.shapes] == [8] + [1] * 8
    torch.testing.assert_close(out, super_resolve(Pointwise(), x, self_ensemble=True))


def test_missing_devices_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU.*device='cpu'"):
        super_resolve(Pointwise(), torch.rand(3, 4, 4), device="cuda")
    with pytest.raises(DeviceError, match="not a device name"):
        super_resolve(Pointwise(), torch.rand(3, 4, 4), device="gpu0")
    with pytest.raises(DeviceError, match="bf16.*CUDA"):
        super_resolve(Pointwise(), torch.rand(3, 4, 4), amp=True)
    assert issubclass(DeviceError, ValueError)


# ----------------------------------------------------- evaluate against closed-form PSNR


def _block_pair(h=16, w=14, seed=0):
    """HR made of 2x2 blocks of 8-bit levels in [20, 230]; LR = one pixel per block."""
    g = torch.Generator().manual_seed(seed)
    lr = torch.randint(20, 231, (3, h, w), generator=g).float() / 255
    return F.interpolate(lr[None], scale_factor=2, mode="nearest")[0], lr


class NearestPlus(nn.Module):
    """Nearest x2 plus ``d`` 8-bit levels: SR - HR = d/255 at every pixel of a block pair."""

    scale = 2

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.register_buffer("dummy", torch.zeros(1))

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest") + self.d / 255


@pytest.mark.parametrize("d", [1, 2, 5])
def test_evaluate_matches_closed_form_psnr(d):
    pairs = [_block_pair(seed=i) for i in range(3)]
    # RGB (DIV2K protocol): every pixel off by d levels -> PSNR = 20 log10(255 / d).
    res = evaluate(NearestPlus(d), pairs, 2, protocol="div2k", compute_ssim=False)
    for r in res.rows:
        assert r.psnr == pytest.approx(20 * math.log10(255 / d), abs=1e-9)
    # Y channel (benchmark protocol): Y moves by (65.481 + 128.553 + 24.966) d / 255
    # = 219 d / 255 levels, so PSNR = 20 log10(255 * 255 / (219 d)).
    res = evaluate(NearestPlus(d), pairs, 2, protocol="benchmark", compute_ssim=False)
    assert res.mean_psnr == pytest.approx(20 * math.log10(255 * 255 / (219 * d)), abs=1e-6)
    # The identical image scores SSIM 1 and PSNR inf.
    same = evaluate(NearestPlus(0), pairs[:1], 2)
    assert same.rows[0].psnr == math.inf and same.rows[0].ssim == pytest.approx(1.0)


def test_paper_bicubic_reference_is_the_table():
    from edsr_lab import paper

    assert paper.paper_value("Bicubic", 2, "set5")[:2] == (33.66, 0.9299)
    assert paper.paper_value("EDSR+", 4, "urban100")[0] == 26.86
    assert paper.paper_value("EDSR", 3, "div2k-valid")[0] == 31.26
    assert paper.paper_value("EDSR baseline", 2, "set5") is None  # not in Table 3
    assert paper.paper_model_name("edsr", 32, 256, True) == "EDSR+"
    assert inference.MIN_TILE == 16
