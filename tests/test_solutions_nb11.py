"""The reference solutions of notebook 11 agree with the package (edsr_lab.intensity,
edsr_lab.clinical); the notebook falls back to them, so nbval runs them too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edsr_lab.clinical import psnr_data_range
from edsr_lab.intensity import intensity_map
from edsr_lab.solutions import nb11


def test_to_unit_and_from_unit_are_the_intensity_policy():
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1500, (3, 20, 20)).astype(np.int16)
    m = intensity_map(hu, "-500,1000", units="HU")
    mine, outside = nb11.to_unit(hu, -500, 1000)
    theirs, count = m.to_unit(hu)
    assert torch.allclose(mine, theirs, atol=1e-7)
    assert outside == count.below + count.above > 0
    out = theirs * 1.1 - 0.05  # overshoot both ends, as a model may
    assert np.array_equal(nb11.from_unit(out, -500, 1000), m.decode(out)[0])
    assert nb11.from_unit(torch.tensor([0.5]), 0, 3, "float32").dtype == np.float32


def test_psnr_on_range_is_the_clinical_psnr():
    rng = np.random.default_rng(1)
    hr = rng.normal(100, 30, (4, 24, 24))
    sr = hr + rng.normal(0, 5, hr.shape)
    for crop in (0, 2):
        expected = psnr_data_range(sr, hr, value_range=(-20.0, 250.0), crop=crop)
        assert nb11.psnr_on_range(sr, hr, -20, 250, crop) == pytest.approx(expected)
    assert nb11.psnr_on_range(hr, hr, 0, 1) == float("inf")
