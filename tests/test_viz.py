"""Tests of edsr_lab.viz: figures are built without a display (Agg) and without pyplot."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from edsr_lab.errors import VizInputError  # noqa: E402
from edsr_lab.train import History  # noqa: E402
from edsr_lab.viz import error_map, plot_history, show_error_maps, show_images  # noqa: E402


def _images():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 24, 18, generator=g)
    return {
        "LR": hr[:, ::3, ::3].clone(),
        "SR": (hr + 0.05).clamp(0, 1),
        "gray": hr.mean(0, keepdim=True),
        "HR": hr,
    }


def _render(fig: Figure) -> np.ndarray:
    """Draw the figure to PNG (as a notebook or savefig would) and read it back."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return np.asarray(Image.open(buf))


def test_show_images_with_zoom_row():
    n_before = len(plt.get_fignums())
    fig = show_images(_images(), crop=(3, 6, 6, 9), reference="HR", scale=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 8  # 4 images + 4 zoomed crops
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles[0] == "LR" and titles[3] == "HR"  # LR is a different size: no PSNR
    assert titles[1].startswith("SR\n") and titles[1].endswith("dB")
    # The LR image is displayed at HR size, so its crop has the HR crop's shape.
    crops = [ax.get_images()[0].get_array().shape for ax in fig.axes[4:]]
    assert crops[0][:2] == crops[3][:2] == (6, 9)
    assert _render(fig).shape[2] == 4
    assert len(plt.get_fignums()) == n_before  # not registered with pyplot


def test_show_images_list_inset_and_explicit_psnr():
    imgs = list(_images().values())
    fig = show_images(
        imgs, titles=["a", "b", "c", "d"], crop=(0, 0, 4, 4), zoom="inset", psnr={"b": 31.234}
    )
    assert [ax.get_title() for ax in fig.axes[:4]] == ["a", "b\n31.23 dB", "c", "d"]
    _render(fig)
    fig2 = show_images([torch.rand(1, 1, 8, 8), torch.rand(8, 8)])  # (1,C,H,W) and (H,W)
    assert len(fig2.axes) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"crop": (20, 0, 10, 10)}, "not inside"),
        ({"zoom": "side"}, "zoom"),
        ({"reference": "nope", "scale": 2}, "reference"),
    ],
)
def test_show_images_bad_arguments(kwargs, match):
    with pytest.raises(VizInputError, match=match):
        show_images(_images(), **kwargs)


def test_show_images_rejects_four_channels():
    with pytest.raises(VizInputError, match="channels"):
        show_images([torch.rand(4, 8, 8)])


def _history(n: int = 100, diverge: bool = False) -> History:
    loss = [1.0 / (i + 1) for i in range(n)]
    h = History(
        step=list(range(1, n + 1)),
        loss=loss,
        lr=[1e-4] * n,
        time=[0.01 * i for i in range(n)],
        grad_norm=[1.0] * n,
    )
    h.evals = [{"step": 50, "psnr": 30.0}, {"step": 100, "psnr": 31.0}]
    h.spikes = [(40, 0.5)]
    if diverge:
        h.loss[-1] = math.nan
        h.diverged, h.diverged_step = True, n
    return h


def test_plot_history_variants():
    fig = plot_history({"L1": _history(), "L2": _history(diverge=True)})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "loss"
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"L1", "L2"}
    assert any(t.get_text() == "diverged" for t in ax.texts)
    _render(fig)
    fig = plot_history(_history(), key="psnr")
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [50, 100] and fig.axes[0].get_yscale() == "linear"
    fig = _history().plot(key="lr", smooth=0)
    assert fig.axes[0].get_ylabel() == "lr"
    empty = plot_history([History()], key="psnr")
    assert "no 'psnr'" in empty.axes[0].texts[0].get_text()


def test_plot_history_into_existing_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_history(_history(), ax=ax) is fig
    with pytest.raises(VizInputError):
        plot_history(42)


def test_importing_viz_leaves_ipython_display_settings_alone():
    """No side effect at import; figures still draw in Jupyter through their _repr_png_."""
    import os
    import subprocess
    import sys

    probe = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "png = shell.display_formatter.formatters['image/png']\n"
        "before = dict(png.type_printers), dict(png.deferred_printers)\n"
        "import edsr_lab.viz\n"
        "assert (dict(png.type_printers), dict(png.deferred_printers)) == before\n"
        "import sys; assert 'matplotlib.pyplot' not in sys.modules\n"
        "import torch\n"
        "fig = edsr_lab.viz.show_images({'a': torch.rand(3, 8, 8)}, crop=None)\n"
        "data, _ = shell.display_formatter.format(fig)\n"
        "assert data['image/png'][:4] == b'\\x89PNG', data.keys()\n"
        "print('ok')\n"
    )
    from pathlib import Path

    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo, "MPLBACKEND": "Agg"}
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.stdout.strip() == "ok", run.stderr[-2000:]


def _psnr_by_hand(sr: torch.Tensor, hr: torch.Tensor, crop: int, luma: bool) -> float:
    """The paper's PSNR written out in NumPy, independently of edsr_lab.metrics."""
    a = np.floor(sr.double().numpy().clip(0, 1) * 255 + 0.5)
    b = np.floor(hr.double().numpy().clip(0, 1) * 255 + 0.5)
    if luma:  # BT.601 Y as MATLAB's rgb2ycbcr, on the 0..255 scale
        w = np.array([65.481, 128.553, 24.966])[:, None, None] / 255
        a, b = 16 + (a * w).sum(0), 16 + (b * w).sum(0)
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    return 10 * math.log10(255**2 / np.mean((a - b) ** 2))


@pytest.mark.parametrize(
    "protocol, crop, luma",
    [("benchmark", 3, True), ("div2k", 9, False), ("rgb", 0, False)],
)
def test_show_images_titles_use_the_requested_protocol(protocol, crop, luma):
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(3, 30, 33, generator=g)
    sr = (hr + 0.1 * torch.randn(3, 30, 33, generator=g)).clamp(0, 1)
    fig = show_images({"SR": sr, "HR": hr}, reference="HR", scale=3, protocol=protocol)
    expected = _psnr_by_hand(sr, hr, crop, luma)
    others = [_psnr_by_hand(sr, hr, c, y) for c, y in ((3, True), (9, False), (0, False))]
    assert sum(abs(expected - v) < 0.01 for v in others) == 1  # the protocols differ here
    assert fig.axes[0].get_title() == f"SR\n{expected:.2f} dB"


# --- error maps ---------------------------------------------------------------------------


def _pair():
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(3, 20, 30, generator=g)
    return hr, {"close": (hr + 2 / 255).clamp(0, 1), "far": (hr - 10 / 255).clamp(0, 1)}


def test_error_map_units_sign_and_channel():
    hr = torch.full((3, 4, 5), 128 / 255)  # on the 8-bit grid
    sr = hr.clone()
    sr[0] += 3 / 255  # R three levels too bright, G and B exact
    assert torch.allclose(error_map(sr, hr), torch.full((4, 5), 1.0))  # mean over R, G, B
    assert torch.allclose(error_map(sr, hr, units="[0, 1]"), torch.full((4, 5), 1 / 255))
    assert torch.allclose(error_map(hr, sr, signed=True), torch.full((4, 5), -1.0))
    assert torch.allclose(error_map(hr, sr), torch.full((4, 5), 1.0))
    # Y = (16 + 65.481 R + ...)/255: 3 levels of R move Y by 3 * 65.481/255 levels.
    y = error_map(sr, hr, channel="y")
    assert torch.allclose(y, torch.full((4, 5), 3 * 65.481 / 255), atol=1e-4)
    assert torch.allclose(
        error_map(sr, hr, units="HU", unit_scale=4095), torch.full((4, 5), 4095 / 255)
    )
    # Rounding to 8 bits first (as PSNR does): a 0.3-level difference vanishes, unless asked.
    tiny = hr + 0.3 / 255
    assert float(error_map(tiny, hr).max()) == 0.0
    assert float(error_map(tiny, hr, quantize=False).max()) == pytest.approx(0.3, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": "HU"}, "unit_scale"),
        ({"units": "HU", "unit_scale": -1}, "positive"),
        ({"channel": "red"}, "channel"),
    ],
)
def test_error_map_bad_arguments(kwargs, match):
    hr = torch.rand(3, 4, 4)
    with pytest.raises(VizInputError, match=match):
        error_map(hr, hr, **kwargs)
    with pytest.raises(VizInputError, match="must match"):
        error_map(hr, torch.rand(3, 4, 5))


def test_show_error_maps_shared_scale_colour_bar_and_titles():
    n_before = len(plt.get_fignums())
    hr, imgs = _pair()
    fig = show_error_maps(imgs, hr)
    image_axes = [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 3  # the reference + 2 maps
    assert image_axes[0].get_title() == "reference"
    clims = [ax.get_images()[0].get_clim() for ax in image_axes[1:]]
    assert clims[0] == clims[1] and clims[0][0] == 0.0  # one colour scale for all maps
    assert clims[0][1] == pytest.approx(10.0, abs=1e-6)  # the far one: 10 levels (99.5th pct)
    # The titles carry the computed mean absolute error in the units.
    maes = [float(error_map(v, hr).mean()) for v in imgs.values()]
    assert image_axes[1].get_title() == f"close\nmean |error| {maes[0]:.2f} levels"
    assert image_axes[2].get_title() == f"far\nmean |error| {maes[1]:.2f} levels"
    assert maes[0] < maes[1]
    cbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(cbars) == 1
    assert cbars[0].get_ylabel() == "|error| vs reference (8-bit levels)"
    assert _render(fig).shape[2] == 4
    assert len(plt.get_fignums()) == n_before  # not registered with pyplot


def test_show_error_maps_options_change_the_figure():
    hr, imgs = _pair()
    plain = show_error_maps(imgs, hr)
    signed = show_error_maps(imgs, hr, signed=True, show_reference=False, vmax=4, channel="y")
    maps = [ax for ax in signed.axes if ax.get_label() != "<colorbar>"]
    assert len(maps) == 2  # no reference panel
    assert maps[0].get_images()[0].get_clim() == (-4.0, 4.0)  # symmetric, as given
    assert "mean error +" in maps[0].get_title() and "mean error -" in maps[1].get_title()
    mae_y = float(error_map(imgs["close"], hr, channel="y").mean())  # |.| before averaging
    assert maps[0].get_title().split("\n")[1] == f"mean |error| {mae_y:.2f} levels"
    cbar = [ax for ax in signed.axes if ax.get_label() == "<colorbar>"][0]
    assert cbar.get_ylabel() == "Y error vs reference (8-bit levels)"
    # vmax below the largest error (10 levels): arrows at both ends say the scale clips.
    assert cbar._colorbar.extend == "both"
    roomy = show_error_maps(imgs, hr, vmax=100)
    assert roomy.axes[-1]._colorbar.extend == "neither"
    assert plain.axes[1].get_images()[0].get_cmap().name == "inferno"
    assert maps[0].get_images()[0].get_cmap().name == "RdBu_r"
    # The reference given by name; a crop shows (and scores) only that region.
    named = show_error_maps({"HR": hr, **imgs}, "HR", crop=(2, 3, 5, 6))
    ax = [a for a in named.axes if a.get_label() != "<colorbar>"]
    assert ax[0].get_title() == "HR"
    assert ax[1].get_images()[0].get_array().shape == (5, 6)
    _render(signed)
    _render(named)


def test_show_error_maps_bad_arguments():
    hr, imgs = _pair()
    with pytest.raises(VizInputError, match="not one of"):
        show_error_maps(imgs, "HR")
    with pytest.raises(VizInputError, match="not inside"):
        show_error_maps(imgs, hr, crop=(15, 0, 10, 10))
    with pytest.raises(VizInputError, match="no images"):
        show_error_maps({}, hr)
    with pytest.raises(VizInputError, match="vmax"):
        show_error_maps(imgs, hr, vmax=0)
