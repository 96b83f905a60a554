"""edsr_lab.inference: one scale check with one message at every entry point, and the grey
path (a grey image through an RGB model; values in physical units)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edsr_lab import evaluate, inference, viewer
from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.inference import resolve_scale, super_resolve, super_resolve_grey
from edsr_lab.models import EDSR, MDSR


def _edsr(scale=2, n_colors=3):
    torch.manual_seed(0)
    return EDSR(n_resblocks=1, n_feats=8, scale=scale, n_colors=n_colors).eval()


def _mdsr():
    torch.manual_seed(0)
    return MDSR(n_resblocks=1, n_feats=8, scales=(2, 3)).eval()


def test_resolve_scale_answers_and_refuses_with_one_message():
    assert resolve_scale(_edsr(2)) == 2
    assert resolve_scale(_edsr(2), 2) == 2
    assert resolve_scale(_edsr(2), 2.0) == 2 and resolve_scale(_mdsr(), np.int64(3)) == 3
    with pytest.raises(BadArgumentError) as info:
        resolve_scale(_mdsr())
    assert str(info.value) == (
        "the MDSR model serves several scales (x2, x3); say which: --scale 2 (scale=2 from Python)"
    )
    with pytest.raises(BadArgumentError, match=r"^--scale 4 \(scale=4 from Python\): the MDSR"):
        resolve_scale(_mdsr(), 4)
    with pytest.raises(BadArgumentError, match="upscales by x2 only; use a model trained for x3"):
        resolve_scale(_edsr(2), 3)
    with pytest.raises(BadArgumentError, match="whole number >= 1"):
        resolve_scale(_edsr(2), "two")
    with pytest.raises(BadArgumentError, match="whole number >= 1"):
        resolve_scale(_edsr(2), True)
    # a source names where the model came from, a fix says what to take instead
    with pytest.raises(BadArgumentError, match="checkpoint 'a.pt' \\(EDSR\\).*; take b.pt, or"):
        resolve_scale(_edsr(2), 4, source="checkpoint 'a.pt'", fix="take b.pt")


def _message(fn) -> str:
    with pytest.raises(BadArgumentError) as info:
        fn()
    return str(info.value)


def test_every_entry_point_gives_the_same_scale_message():
    grey = torch.rand(1, 6, 6)
    expected = _message(lambda: resolve_scale(_mdsr()))
    assert _message(lambda: super_resolve(_mdsr(), grey.expand(3, -1, -1))) == expected
    assert _message(lambda: super_resolve_grey(_mdsr(), grey)) == expected
    assert _message(lambda: inference.super_resolve_values(_mdsr(), grey * 1000)) == expected
    assert _message(lambda: viewer.comparison_images(_mdsr(), lr=grey)) == expected
    wrong = _message(lambda: resolve_scale(_edsr(2), 3))
    assert _message(lambda: viewer.comparison_images(_edsr(2), lr=grey, scale=3)) == wrong
    rgb = grey.expand(3, -1, -1)
    assert _message(lambda: evaluate.evaluate(_edsr(2), [(rgb, rgb)], 3)) == wrong


def test_grey_through_an_rgb_model_is_the_luma_of_its_output():
    model, grey = _edsr(2), torch.rand(1, 6, 7)
    rgb = super_resolve(model, grey.expand(3, -1, -1))
    luma = sum(w * rgb[i] for i, w in enumerate(inference.LUMA))[None].clamp(0, 1)
    torch.testing.assert_close(super_resolve_grey(model, grey), luma)
    grey_model = _edsr(2, n_colors=1)
    torch.testing.assert_close(
        super_resolve_grey(grey_model, grey), super_resolve(grey_model, grey)
    )


def test_values_in_physical_units_map_to_unit_range_and_back():
    model, hu = _edsr(2), torch.rand(1, 6, 6) * 2000 - 1000  # like a CT in HU
    lo, hi = float(hu.min()), float(hu.max())
    out = inference.super_resolve_values(model, hu)
    expected = super_resolve_grey(model, (hu - lo) / (hi - lo)) * (hi - lo) + lo
    torch.testing.assert_close(out, expected)
    with pytest.raises(SizeMismatchError, match=r"\(1, H, W\)"):
        inference.super_resolve_values(model, hu[0])
