"""The comparison viewer, built without a browser: its widgets hold the images it should,
region scores are edsr_lab.metrics on the crops, swipe composes two images, and the static
figure is written."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from edsr_lab import metrics
from edsr_lab.errors import VizInputError
from edsr_lab.models import EDSR
from edsr_lab.viewer import CompareViewer, compare, comparison_images


def _images(c: int = 3, h: int = 48, w: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(c, h, w, generator=g)
    noisy = (hr + 0.05 * torch.randn(c, h, w, generator=g)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(hr[None], 3, 1, 1)[0]
    return {"bicubic": blurred, "model": noisy, "HR": hr}


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def test_region_scores_are_the_metrics_of_the_crops():
    images = _images()
    viewer = CompareViewer(images, reference="HR")
    viewer.set_region(y=10, x=20, size=24)
    assert viewer.region == (10, 20, 24)
    scores = viewer.region_metrics()
    assert set(scores) == {"bicubic", "model"}
    ref = images["HR"][:, 10:34, 20:44]
    for name in ("bicubic", "model"):
        crop = images[name][:, 10:34, 20:44]
        assert torch.equal(viewer.crop(name), crop)
        assert scores[name]["psnr"] == metrics.psnr(crop, ref, 0, "benchmark", crop=0)
        assert scores[name]["ssim"] == metrics.ssim(crop, ref, 0, "benchmark", crop=0)
    # the scores differ between the two, and the HTML shows them
    assert scores["bicubic"]["psnr"] != scores["model"]["psnr"]
    assert f"{scores['model']['psnr']:.2f}" in viewer.scores.value


def test_sliders_move_the_region_and_redraw_the_zoom():
    images = _images()
    viewer = CompareViewer(images, reference="HR", zoom_px=96)
    before = viewer.zoomed["HR"].value
    viewer.size.value = 16
    viewer.x.value, viewer.y.value = 30, 5
    assert viewer.region == (5, 30, 16)
    assert viewer.zoomed["HR"].value != before
    zoom = _decode(viewer.zoomed["HR"].value)
    assert zoom.shape == (96, 96, 3)  # 16 px enlarged 6x by pixel repetition
    expected = (images["HR"][:, 5:21, 30:46] * 255 + 0.5).floor().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(zoom[::6, ::6], expected)
    # a bigger region pulls the sliders' limits in, so the region stays inside
    viewer.size.value = 40
    assert viewer.x.max == 64 - 40 and viewer.y.max == 48 - 40
    y, x, s = viewer.region
    assert y + s <= 48 and x + s <= 64


def test_full_images_show_the_region_outline():
    viewer = CompareViewer(_images(), reference="HR", region=(8, 8, 16))
    full = _decode(viewer.full["model"].value)
    assert full.shape == (48, 64, 3)
    assert tuple(full[8, 10]) == (255, 215, 0) and tuple(full[30, 30]) != (255, 215, 0)


def test_swipe_shows_left_image_left_of_the_split():
    images = _images()
    viewer = CompareViewer(images, reference="HR")
    viewer.mode.value = "swipe"
    assert viewer._body.children == (viewer._swipe,)
    viewer.left.value, viewer.right.value = "bicubic", "HR"
    viewer.split.value = 0.25
    comp = _decode(viewer.swipe_full.value)
    u8 = {n: (t * 255 + 0.5).floor().byte().permute(1, 2, 0).numpy() for n, t in images.items()}
    cut = 16  # 0.25 * 64
    np.testing.assert_array_equal(comp[:5, : cut - 1], u8["bicubic"][:5, : cut - 1])
    np.testing.assert_array_equal(comp[:5, cut:], u8["HR"][:5, cut:])
    viewer.mode.value = "side by side"
    assert viewer._body.children == (viewer._side,)


def test_save_figure_writes_a_png_and_never_overwrites(tmp_path):
    viewer = CompareViewer(_images(c=1), reference="HR")
    path = viewer.save_figure(tmp_path / "fig" / "compare.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 300
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        viewer.save_figure(path)
    assert path.read_bytes() == before


def test_without_reference_there_are_no_scores():
    images = _images()
    del images["HR"]
    viewer = CompareViewer(images)
    assert viewer.region_metrics() == {}
    assert "no ground truth" in viewer.scores.value


def test_compare_builds_bicubic_model_and_hr_panels():
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    hr = torch.rand(3, 41, 50)  # not a multiple of 2: cropped
    viewer = compare(model, hr=hr, name="EDSR")
    assert viewer.names == ["bicubic", "EDSR", "HR"] and viewer.reference == "HR"
    assert viewer.images["HR"].shape == (3, 40, 50)
    grey = compare(model, lr=torch.rand(1, 20, 25))  # grey through an RGB model
    assert grey.images["model"].shape == (1, 40, 50) and grey.reference is None
    images = comparison_images(model, hr=hr, name="EDSR")  # the same, without widgets
    assert list(images) == viewer.names
    for n in viewer.names:
        assert torch.equal(images[n], viewer.images[n].clamp(0, 1))


def test_bad_inputs_give_clear_errors():
    images = _images()
    with pytest.raises(VizInputError, match="same shape"):
        CompareViewer({**images, "small": torch.rand(3, 10, 10)})
    with pytest.raises(VizInputError, match="reference"):
        CompareViewer(images, reference="GT")
    viewer = CompareViewer(images, reference="HR")
    with pytest.raises(VizInputError, match="not inside"):
        viewer.set_region(40, 0, 16)
    with pytest.raises(VizInputError, match="size"):
        viewer.set_region(0, 0, 8)
    with pytest.raises(VizInputError, match="float tensor"):
        CompareViewer({"a": torch.zeros(3, 20, 20, dtype=torch.uint8)})
