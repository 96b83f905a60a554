"""Tests of edsr_lab.gallery: crop choice by computation, scores, and the figure (Agg)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from edsr_lab.errors import VizInputError  # noqa: E402
from edsr_lab.gallery import GalleryRow, pick_crop, score_outputs, show_gallery  # noqa: E402
from edsr_lab.metrics import psnr, ssim  # noqa: E402


def _scene():
    """HR 3x64x80; method 'good' is exact except noise everywhere; 'bad' also misses a
    square at (40, 24) of size 12: the methods differ most there."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 64, 80, generator=g)
    good = (hr + 0.01 * torch.randn(3, 64, 80, generator=g)).clamp(0, 1)
    bad = good.clone()
    bad[:, 40:52, 24:36] = 0.5
    return hr, {"good": good, "bad": bad}


def test_pick_crop_finds_where_the_methods_differ():
    hr, outs = _scene()
    y, x, h, w = pick_crop(outs, hr, 12, stride=1)
    assert (y, x, h, w) == (40, 24, 12, 12)
    # With a stride the window still overlaps the difference; with a border it stays inside.
    y, x, _, _ = pick_crop(outs, hr, 16, stride=4)
    assert y <= 40 < y + 16 and x <= 24 < x + 16
    y, x, _, _ = pick_crop(outs, hr, 12, border=20, stride=1)
    assert 20 <= y and y + 12 <= 64 - 20 and 20 <= x and x + 12 <= 80 - 20  # inside the border
    assert y + 12 > 40 and x < 36  # and as close to the difference as it can get
    # A mask keeps the window where it is True (here: away from the difference).
    mask = torch.ones(64, 80, dtype=torch.bool)
    mask[32:, :] = False
    y, x, _, _ = pick_crop(outs, hr, 12, stride=1, mask=mask)
    assert y + 12 <= 32
    # Identical methods: no difference anywhere, any window is fine, but it fits.
    same = pick_crop({"a": hr, "b": hr.clone()}, hr, 8)
    assert same[2:] == (8, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"size": 100}, "does not fit"), ({"size": 0}, "size"), ({"size": 8, "border": 30}, "fit")],
)
def test_pick_crop_bad_arguments(kwargs, match):
    hr, outs = _scene()
    with pytest.raises(VizInputError, match=match):
        pick_crop(outs, hr, **kwargs)
    with pytest.raises(VizInputError, match="two methods"):
        pick_crop({"one": hr}, hr, 8)
    with pytest.raises(VizInputError, match="HR's size"):
        pick_crop({"a": hr, "b": hr[:, :32]}, hr, 8)
    with pytest.raises(VizInputError, match="mask has shape"):
        pick_crop(outs, hr, 8, mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(VizInputError, match="inside the mask"):
        pick_crop(outs, hr, 8, mask=torch.zeros(64, 80, dtype=torch.bool))


def test_score_outputs_uses_the_protocol():
    hr, outs = _scene()
    scores = score_outputs(outs, hr, 2, "div2k")
    assert scores["good"] == (
        pytest.approx(psnr(outs["good"], hr, 2, "div2k")),
        pytest.approx(ssim(outs["good"], hr, 2, "div2k")),
    )
    assert scores["good"][0] > scores["bad"][0]
    bench = score_outputs(outs, hr, 2, "benchmark")
    assert bench["good"][0] != pytest.approx(scores["good"][0])  # another protocol, another number


def _render(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return np.asarray(Image.open(buf))


def test_show_gallery_renders_with_the_computed_numbers():
    n_before = len(plt.get_fignums())
    hr, outs = _scene()
    scores = score_outputs(outs, hr, 2, "div2k")
    crop = pick_crop(outs, hr, 12, stride=1)
    rows = [
        GalleryRow("scene", hr, outs, scores, crop),
        GalleryRow("grey", hr[:1], {k: v[:1] for k, v in outs.items()}, {}, (0, 0, 10, 10)),
    ]
    fig = show_gallery(rows, title="div2k protocol")
    axes = fig.axes
    assert len(axes) == 2 * 4  # per row: whole image, HR crop, 2 methods
    labels = [ax.get_xlabel() for ax in axes[:4]]
    assert labels[0] == "scene" and labels[1] == "HR"
    p, s = scores["good"]
    assert labels[2] == f"good\n{p:.2f} dB / {s:.4f}"
    assert labels[3].startswith("bad\n") and labels[3].endswith(f"{scores['bad'][1]:.4f}")
    # The crop panels show exactly the chosen region; the whole image is boxed.
    assert axes[2].get_images()[0].get_array().shape[:2] == (12, 12)
    assert len(axes[0].patches) == 1
    assert [ax.get_xlabel() for ax in axes[6:]] == ["good", "bad"]  # no scores: names only
    assert axes[5].get_images()[0].get_array().shape == (10, 10)  # grey crop, 2-D
    assert fig._suptitle.get_text() == "div2k protocol"
    assert _render(fig).shape[2] == 4
    assert len(plt.get_fignums()) == n_before  # not registered with pyplot


def test_show_gallery_bad_input():
    hr, outs = _scene()
    with pytest.raises(VizInputError, match="not inside"):
        show_gallery(GalleryRow("x", hr, outs, crop=(60, 0, 10, 10)))
    with pytest.raises(VizInputError, match="same methods"):
        show_gallery([GalleryRow("a", hr, outs), GalleryRow("b", hr, {"good": outs["good"]})])
    with pytest.raises(VizInputError, match="HR's size"):
        show_gallery(GalleryRow("x", hr, {"small": hr[:, :32, :32]}))
    with pytest.raises(VizInputError, match="no rows"):
        show_gallery([])
