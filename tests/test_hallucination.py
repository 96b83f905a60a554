"""Hallucination tools (edsr_lab.hallucination), checked against their definitions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.hallucination import (
    ensemble_spread,
    error_map,
    insert_lesion,
    model_spread,
    plot_maps,
    region_contrast,
    remove_structure,
    ring_around,
)
from edsr_lab.intensity import IntensityMap


def test_insert_lesion_adds_the_contrast_in_data_units():
    flat = np.full((32, 32), 40.0)  # 40 HU of soft tissue
    disc, mask = insert_lesion(flat, (16, 16), 3, 80.0, shape="disc")
    assert disc[16, 16] == 120.0 and disc[0, 0] == 40.0 and mask.sum() == 29  # r <= 3
    assert region_contrast(disc, mask) == pytest.approx(80.0)
    blob, mask = insert_lesion(flat, (10.5, 20.0), 2, -50.0)
    assert blob.min() > 40.0 - 50.0 and blob[0, 0] == pytest.approx(40.0, abs=1e-6)
    peak_row = np.unravel_index(blob.argmin(), blob.shape)
    assert peak_row in ((10, 20), (11, 20))
    assert -50.0 < region_contrast(blob, mask) < -25.0
    with pytest.raises(BadArgumentError, match="misses"):
        insert_lesion(flat, (100, 100), 2, 10.0)
    with pytest.raises(BadArgumentError, match="shape"):
        insert_lesion(flat, (5, 5), 2, 10.0, shape="star")


def test_ring_is_around_the_mask():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    ring = ring_around(mask, 1)
    assert ring.sum() == 8 and not ring[4, 4]
    assert ring_around(mask, 2).sum() == 24


def test_remove_structure_fills_ramps_exactly_and_keeps_the_rest():
    rows, cols = np.mgrid[0:24, 0:30].astype(float)
    ramp = 3.0 * rows - 2.0 * cols + 100.0
    with_blob, mask = insert_lesion(ramp, (12, 15), 4, 300.0, shape="disc")
    filled = remove_structure(with_blob, mask, tol=1e-10)
    assert np.allclose(filled, ramp, atol=1e-6)  # harmonic functions include linear ones
    assert np.array_equal(filled[~mask], with_blob[~mask])
    assert np.array_equal(remove_structure(ramp, np.zeros_like(mask)), ramp)
    with pytest.raises(BadArgumentError, match="whole image"):
        remove_structure(ramp, np.ones_like(mask))


def test_error_and_model_spread_maps():
    hr = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(error_map(hr + 2.0, hr), np.full((3, 4), 2.0))
    spread = model_spread([hr, hr + 2.0])
    assert np.allclose(spread, 1.0)  # population std of {x, x + 2}
    with pytest.raises(SizeMismatchError):
        error_map(hr, hr[:2])
    with pytest.raises(BadArgumentError, match="two outputs"):
        model_spread([hr])


def test_ensemble_spread_is_zero_for_an_equivariant_model_and_not_otherwise():
    lr = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))

    def nearest(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def shifted(x):  # not rotation-equivariant: a one-pixel shift to the right
        return torch.roll(nearest(x), 1, dims=-1)

    m = IntensityMap(-1000.0, 1000.0, units="HU")
    mean, spread = ensemble_spread(nearest, lr, m)
    assert spread.shape == (16, 16) and np.allclose(spread, 0.0)
    assert np.allclose(mean, nearest(lr[None])[0, 0].double().numpy() * 2000 - 1000)
    _, spread = ensemble_spread(shifted, lr, m)
    assert spread.max() > 10.0  # in HU
    _, unit_spread = ensemble_spread(shifted, lr)
    assert np.allclose(unit_spread * 2000, spread)
    with pytest.raises(BadArgumentError, match="one grey slice"):
        ensemble_spread(nearest, torch.rand(2, 1, 4, 4))


def test_plot_maps_labels_every_colour_bar_with_units():
    hr = np.random.default_rng(0).normal(40, 10, (16, 16))
    fig = plot_maps(
        {"HR": hr, "SR": hr + 1, "SR - HR": np.ones((16, 16)), "spread": np.abs(hr) / 10},
        units="HU",
        diverging=["SR - HR"],
        spread=["spread"],
        columns=3,
    )
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "HU"]
    assert len(bars) == 4
    image_axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in image_axes] == ["HR", "SR", "SR - HR", "spread"]
    err = image_axes[2].images[0]
    assert err.get_clim() == (-1.0, 1.0) and err.get_cmap().name == "RdBu_r"
    assert image_axes[0].images[0].get_clim() == image_axes[1].images[0].get_clim()
    import matplotlib.pyplot as plt

    plt.close(fig)
