"""The reference solutions of notebooks 01, 04, 07, 08 and 10 agree with the package.

The notebooks check a student's version against the package and fall back to these
solutions (nbval runs that path in CI); these tests check the solutions directly, in
seconds, so a change in the package that breaks a solution fails here first.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edsr_lab import dicom
from edsr_lab.data import center_crop_pair, dihedral, inverse_dihedral
from edsr_lab.data.patches import PatchSampler
from edsr_lab.inference import super_resolve
from edsr_lab.metrics import psnr, rgb_to_y
from edsr_lab.models import EDSR, Upsampler, count_parameters
from edsr_lab.solutions import nb01, nb04, nb07, nb08, nb10
from edsr_lab.train import TrainConfig, train


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_nb01_y_and_benchmark_psnr():
    hr = _rand(3, 20, 24)
    sr = (hr + 0.05 * _rand(3, 20, 24, seed=1) - 0.025).clamp(0, 1)
    assert torch.allclose(nb01.rgb_to_y(hr), rgb_to_y(hr), atol=1e-6)
    for s in (2, 3, 4):
        assert nb01.psnr_benchmark(sr, hr, s) == pytest.approx(
            psnr(sr, hr, s, "benchmark"), abs=1e-6
        )


def test_nb04_pixel_shuffle_and_upsampler_params():
    x = _rand(2, 3 * 16, 5, 7)
    for r in (2, 4):
        assert torch.equal(nb04.pixel_shuffle(x, r), nn.PixelShuffle(r)(x))
    for n_feats in (8, 64):
        for s in (2, 3, 4):
            assert nb04.upsampler_params(s, n_feats) == count_parameters(Upsampler(s, n_feats))


def test_nb07_crop_pair_and_schedule():
    hr = torch.randint(0, 256, (3, 36, 48), dtype=torch.uint8)
    lr = torch.randint(0, 256, (3, 12, 16), dtype=torch.uint8)
    hr_c, lr_c = center_crop_pair(hr, lr, 6, 3)
    mine_lr, mine_hr = nb07.crop_pair(hr, lr, (12 - 6) // 2, (16 - 6) // 2, 6, 3)
    assert torch.equal(mine_lr, lr_c) and torch.equal(mine_hr, hr_c)
    sampler = PatchSampler([hr], [lr], 3, patch_size=4, batch_size=1, seed=0)
    h = train(
        EDSR(n_resblocks=1, n_feats=8, scale=3),
        sampler,
        TrainConfig(iters=7, lr=1e-4, lr_decay_every=3, log_every=7),
        device="cpu",
        progress=False,
    )
    assert [nb07.paper_lr(t - 1, 1e-4, 3, 0.5) for t in h.step] == h.lr
    assert nb07.paper_lr(199_999) == 1e-4 and nb07.paper_lr(200_000) == 5e-5


def test_nb08_undo_and_self_ensemble():
    x = torch.arange(2 * 3 * 5).reshape(2, 3, 5)
    for k in range(8):
        assert torch.equal(nb08.undo_dihedral(dihedral(x, k), k), x)
        assert torch.equal(nb08.undo_dihedral(x, k), inverse_dihedral(x, k))
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2).eval()
    lr = _rand(3, 10, 12)
    mine = nb08.self_ensemble(model, lr)
    assert torch.allclose(mine, super_resolve(model, lr, self_ensemble=True), atol=1e-4)
    assert not torch.allclose(mine, super_resolve(model, lr), atol=1e-4)  # the ensemble matters


def test_nb10_sixteen_bit_round_trip_and_window():
    levels = np.arange(65536, dtype=np.uint16)
    unit = nb10.to_unit(levels)
    assert unit.dtype == torch.float32 and float(unit.max()) == 1.0
    assert np.array_equal(nb10.to_uint16(unit), levels)
    assert nb10.to_uint16(torch.tensor([-1.0, 2.0])).tolist() == [0, 65535]
    hu = torch.linspace(-1200, 1500, 2701)
    for c, w in ((40, 400), (400, 1800), (-600, 1500)):
        assert torch.allclose(nb10.window(hu, c, w), dicom.window(hu, c, w), atol=1e-6)
