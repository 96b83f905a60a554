"""An interactive comparison viewer for notebooks (ipywidgets): bicubic / model / HR.

Differences between super-resolution methods live in small regions (an edge, a vessel,
text), so the viewer shows every image of the same size side by side (or two of them as a
*swipe*: left of the slider one image, right of it the other), marks one square region on
all of them, shows that region enlarged (pixel repetition, no smoothing) and, when the
ground truth is known, the PSNR and SSIM of the region against it::

    from edsr_lab.viewer import CompareViewer, compare
    viewer = compare(model, hr=hr, scale=2)          # LR made from HR with MATLAB bicubic
    viewer                                           # last line of a cell: the widget
    viewer.set_region(y=120, x=200, size=48)         # or move the sliders
    viewer.region_metrics()                          # {"bicubic": {"psnr": ..., "ssim": ...}, ...}
    viewer.save_figure("runs/figures/retina_x2.png") # a static figure for a report

The region is chosen with sliders (x, y, size in HR pixels; ipywidgets images do not report
clicks). Region scores use :mod:`edsr_lab.metrics` on the crops with the paper's benchmark
protocol (8-bit, luma Y) but no border crop, since the region is an interior crop already.
A region PSNR is a property of a few thousand pixels: it tells you where a method differs,
not how good it is overall (use :func:`edsr_lab.evaluate.evaluate` for that).

Images are float tensors (C, H, W) with 1 or 3 channels in [0, 1], all of the same size.
Widgets render PNG bytes in ``ipywidgets.Image`` elements, so the viewer also works in
JupyterLab, VS Code and a saved notebook's widget state.
"""

from __future__ import annotations

import io as _bytes_io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np
import torch
from IPython.display import display
from PIL import Image

from edsr_lab.errors import OutputExistsError, VizInputError
from edsr_lab.files import atomic_write
from edsr_lab.inference import (
    bicubic_upscale,
    input_channels,
    resolve_scale,
    super_resolve,
    super_resolve_grey,
)
from edsr_lab.io import to_uint8
from edsr_lab.metrics import psnr, ssim
from edsr_lab.resize import degrade, modcrop
from edsr_lab.viz import show_images

__all__ = ["CompareViewer", "compare", "comparison_images"]

_BOX = (255, 215, 0)  # region outline on the full images (gold, visible on grey and RGB)
_MIN_REGION = 16  # SSIM's 11x11 window needs room; smaller regions say little anyway


def _to_u8_rgb(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) float [0, 1] -> (H, W, 3) uint8, rounded as edsr_lab.io.to_uint8."""
    u8 = to_uint8(t)
    return np.repeat(u8, 3, axis=2) if u8.shape[2] == 1 else u8


def _png(u8: np.ndarray) -> bytes:
    buffer = _bytes_io.BytesIO()
    Image.fromarray(u8).save(buffer, format="PNG", compress_level=1)  # fast; shown, not stored
    return buffer.getvalue()


def _check_images(images: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not isinstance(images, Mapping) or not images:
        raise VizInputError(
            "CompareViewer: give images as a dict {name: (C, H, W) tensor}, e.g. "
            '{"bicubic": b, "EDSR": sr, "HR": hr}'
        )
    checked: dict[str, torch.Tensor] = {}
    for name, img in images.items():
        if not isinstance(img, torch.Tensor) or not img.is_floating_point():
            what = img.dtype if isinstance(img, torch.Tensor) else type(img).__name__
            raise VizInputError(f"CompareViewer: {name!r} is {what}; expected a float tensor")
        t = img.detach().cpu().float()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise VizInputError(
                f"CompareViewer: {name!r} has shape {tuple(img.shape)}; expected (C, H, W) "
                "with 1 or 3 channels"
            )
        checked[str(name)] = t.clamp(0, 1)
    shapes = {n: tuple(t.shape) for n, t in checked.items()}
    if len(set(shapes.values())) != 1:
        raise VizInputError(
            f"CompareViewer: all images must have the same shape, got {shapes}; upscale the "
            "LR first (edsr_lab.inference.bicubic_upscale) and crop HR with "
            "edsr_lab.resize.modcrop"
        )
    return checked


class CompareViewer:
    """Side-by-side / swipe comparison with a synchronised zoom and region PSNR/SSIM.

    Args:
        images: ``{name: tensor}``, each float (C, H, W) in [0, 1], C in {1, 3}, same shape,
            in display order (e.g. bicubic, model, HR).
        reference: the name of the ground truth (e.g. "HR"), or None when it is unknown
            (then no scores are shown).
        region: ``(y, x, size)`` of the square region in pixels; default a centred square
            of a quarter of the shorter side (at least 16 px).
        zoom_px: on-screen size of each enlarged region, in pixels.
        panel_px: on-screen width of each full image, in pixels (the PNG keeps every pixel).

    Attributes (the widgets, to read or set from code and tests): ``mode`` (ToggleButtons
    "side by side"/"swipe"), ``left``/``right`` (Dropdowns: the swipe's two images),
    ``split`` (FloatSlider 0..1: where the swipe changes image), ``x``, ``y``, ``size``
    (IntSliders: the region), ``full`` and ``zoomed`` (name -> ``ipywidgets.Image``),
    ``swipe_full`` and ``swipe_zoomed`` (``ipywidgets.Image``), ``scores`` (HTML table),
    ``widget`` (the whole VBox; a cell whose last line is the viewer displays it).
    """

    def __init__(
        self,
        images: Mapping[str, torch.Tensor],
        *,
        reference: str | None = None,
        region: tuple[int, int, int] | None = None,
        zoom_px: int = 192,
        panel_px: int = 320,
    ):
        self.images = _check_images(images)
        self.names = list(self.images)
        if reference is not None and reference not in self.images:
            raise VizInputError(
                f"CompareViewer: reference {reference!r} is not one of {self.names}"
            )
        self.reference = reference
        _, self.height, self.width = next(iter(self.images.values())).shape
        shorter = min(self.height, self.width)
        if shorter < _MIN_REGION:
            raise VizInputError(
                f"CompareViewer: images of {self.height}x{self.width} are too small; the "
                f"region needs at least {_MIN_REGION}x{_MIN_REGION} pixels"
            )
        self.zoom_px, self.panel_px = int(zoom_px), int(panel_px)
        self._updating = False  # True while several sliders change together: draw once
        self._u8 = {n: _to_u8_rgb(t) for n, t in self.images.items()}

        size0 = max(_MIN_REGION, shorter // 4)
        y0, x0 = (self.height - size0) // 2, (self.width - size0) // 2
        slider = {"continuous_update": False, "layout": w.Layout(width="320px")}
        self.size = w.IntSlider(size0, min=_MIN_REGION, max=shorter, description="size", **slider)
        self.y = w.IntSlider(y0, min=0, max=self.height - size0, description="y", **slider)
        self.x = w.IntSlider(x0, min=0, max=self.width - size0, description="x", **slider)
        self.mode = w.ToggleButtons(options=["side by side", "swipe"], value="side by side")
        others = [n for n in self.names if n != reference]
        self.left = w.Dropdown(options=self.names, value=others[0], description="left")
        self.right = w.Dropdown(
            options=self.names, value=reference or self.names[-1], description="right"
        )
        self.split = w.FloatSlider(0.5, min=0.0, max=1.0, step=0.01, description="swipe", **slider)

        self.full = {n: w.Image(format="png", width=self.panel_px) for n in self.names}
        self.zoomed = {n: w.Image(format="png", width=self.zoom_px) for n in self.names}
        self.swipe_full = w.Image(format="png", width=2 * self.panel_px)
        self.swipe_zoomed = w.Image(format="png", width=2 * self.zoom_px)
        self.scores = w.HTML()

        def column(name: str) -> Any:
            # fixed width, so columns wrap on a narrow screen instead of growing scrollbars
            size = w.Layout(width=f"{self.panel_px + 8}px", overflow="hidden")
            return w.VBox(
                [w.HTML(f"<b>{name}</b>"), self.full[name], self.zoomed[name]], layout=size
            )

        self._side = w.HBox([column(n) for n in self.names], layout=w.Layout(flex_flow="row wrap"))
        self._swipe = w.VBox(
            [w.HBox([self.left, self.right, self.split]), self.swipe_full, self.swipe_zoomed]
        )
        self._body = w.VBox([self._side])
        self.widget = w.VBox(
            [self.mode, w.HBox([self.x, self.y, self.size]), self._body, self.scores]
        )
        self.widget.add_class("edsr-lab-viewer")  # lets a browser test find it

        for control in (self.x, self.y, self.left, self.right, self.split, self.mode):
            control.observe(lambda _change: self.update(), names="value")
        self.size.observe(self._on_size, names="value")
        if region is not None:
            self.set_region(*region)
        else:
            self.update()

    # -- region -----------------------------------------------------------------------------
    def set_region(self, y: int, x: int, size: int) -> None:
        """Move the region to ``(y, x)`` (top-left, pixels) with side ``size``."""
        y, x, size = int(y), int(x), int(size)
        if size < _MIN_REGION or size > min(self.height, self.width):
            raise VizInputError(
                f"CompareViewer: region size {size} must be in {_MIN_REGION}.."
                f"{min(self.height, self.width)} for {self.height}x{self.width} images"
            )
        if not (0 <= y <= self.height - size and 0 <= x <= self.width - size):
            raise VizInputError(
                f"CompareViewer: region (y={y}, x={x}, size={size}) is not inside the "
                f"{self.height}x{self.width} images"
            )
        with self.widget.hold_trait_notifications():
            self._updating = True
            try:
                self.size.value = size
                self.y.max, self.x.max = self.height - size, self.width - size
                self.y.value, self.x.value = y, x
            finally:
                self._updating = False
        self.update()

    @property
    def region(self) -> tuple[int, int, int]:
        """``(y, x, size)`` of the current region, in pixels."""
        return self.y.value, self.x.value, self.size.value

    def _on_size(self, change: dict) -> None:
        size = change["new"]
        self._updating = True
        try:  # keep the region inside the image
            self.y.max, self.x.max = self.height - size, self.width - size
        finally:
            self._updating = False
        self.update()

    def crop(self, name: str) -> torch.Tensor:
        """The current region of image ``name``: float (C, size, size)."""
        y, x, s = self.region
        return self.images[name][:, y : y + s, x : x + s]

    def region_metrics(self) -> dict[str, dict[str, float]]:
        """PSNR (dB) and SSIM of each image's region against the reference's region.

        Computed by :func:`edsr_lab.metrics.psnr` / :func:`~edsr_lab.metrics.ssim` on the
        crops with ``protocol="benchmark", crop=0`` (8-bit, Y channel, no border crop).
        Empty when there is no reference.
        """
        if self.reference is None:
            return {}
        ref = self.crop(self.reference)
        return {
            n: {
                "psnr": psnr(self.crop(n), ref, 0, "benchmark", crop=0),
                "ssim": ssim(self.crop(n), ref, 0, "benchmark", crop=0),
            }
            for n in self.names
            if n != self.reference
        }

    # -- rendering ----------------------------------------------------------------------------
    def _with_box(self, u8: np.ndarray) -> np.ndarray:
        y, x, s = self.region
        out = u8.copy()
        t = max(1, min(self.height, self.width) // 128)  # outline thickness, scales with size
        out[y : y + s, x : x + t] = out[y : y + s, x + s - t : x + s] = _BOX
        out[y : y + t, x : x + s] = out[y + s - t : y + s, x : x + s] = _BOX
        return out

    def _zoom(self, u8: np.ndarray) -> np.ndarray:
        y, x, s = self.region
        factor = max(1, self.zoom_px // s)
        return u8[y : y + s, x : x + s].repeat(factor, axis=0).repeat(factor, axis=1)

    def _swipe_u8(self) -> np.ndarray:
        a, b = self._u8[self.left.value], self._u8[self.right.value]
        cut = int(round(self.split.value * self.width))
        out = np.concatenate([a[:, :cut], b[:, cut:]], axis=1)
        if 0 < cut < self.width:
            out[:, cut - 1] = 255  # a white line where the images meet
        return out

    def update(self) -> None:
        """Redraw every image and the scores (called by the widgets on every change)."""
        if getattr(self, "_updating", False) or not hasattr(self, "widget"):
            return
        swipe = self.mode.value == "swipe"
        self._body.children = [self._swipe if swipe else self._side]
        if swipe:
            composite = self._swipe_u8()
            self.swipe_full.value = _png(self._with_box(composite))
            self.swipe_zoomed.value = _png(self._zoom(composite))
        else:
            for n in self.names:
                self.full[n].value = _png(self._with_box(self._u8[n]))
                self.zoomed[n].value = _png(self._zoom(self._u8[n]))
        self.scores.value = self._scores_html()

    def _scores_html(self) -> str:
        y, x, s = self.region
        where = f"region y={y}, x={x}, {s}x{s} px"
        metrics = self.region_metrics()
        if not metrics:
            return f"<p>{where}; no ground truth given, so no scores.</p>"
        rows = "".join(
            f"<tr><td>{n}</td><td>{m['psnr']:.2f}</td><td>{m['ssim']:.4f}</td></tr>"
            for n, m in metrics.items()
        )
        return (
            f"<p>{where}, against {self.reference} (8-bit, Y channel):</p>"
            f"<table><tr><th></th><th>PSNR (dB)</th><th>SSIM</th></tr>{rows}</table>"
        )

    def _ipython_display_(self) -> None:
        display(self.widget)

    # -- static figure ----------------------------------------------------------------------
    def figure(self) -> Any:
        """A matplotlib Figure of the current state: the full images with the region marked,
        the enlarged regions below, region PSNR/SSIM in the titles (edsr_lab.viz.show_images)."""
        metrics = self.region_metrics()
        titles = [
            n
            if n not in metrics
            else f"{n}\n{metrics[n]['psnr']:.2f} dB / {metrics[n]['ssim']:.3f}"
            for n in self.names
        ]
        y, x, s = self.region
        return show_images(
            [self.images[n] for n in self.names], titles=titles, crop=(y, x, s, s), zoom="row"
        )

    def save_figure(
        self, path: str | os.PathLike[str], *, dpi: int = 150, overwrite: bool = False
    ) -> Path:
        """Save :meth:`figure` as a PNG (or any format matplotlib writes), atomically.

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is False (a ``FileExistsError``).
        """
        path = Path(path).expanduser()
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already exists; choose another name or pass overwrite=True"
            )
        fig = self.figure()
        fmt = path.suffix.lstrip(".").lower() or "png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))


def comparison_images(
    model: torch.nn.Module,
    *,
    hr: torch.Tensor | None = None,
    lr: torch.Tensor | None = None,
    scale: int | None = None,
    name: str = "model",
) -> dict[str, torch.Tensor]:
    """``{"bicubic": ..., name: ..., "HR": ...}``: what :func:`compare` shows, without widgets.

    Args:
        model: an SR model (RGB or grey input; a grey image goes through an RGB model as
            three equal channels and comes back as one, with ITU-R 601 luma).
        hr: the ground truth (C, H, W) in [0, 1]. Given alone, the LR is made from it with
            the paper's degradation (:func:`edsr_lab.resize.degrade`, MATLAB bicubic) after
            cropping it to a multiple of the scale.
        lr: your low-resolution image (C, h, w); alone when there is no HR (then no "HR"
            entry), or with ``hr`` for a real LR/HR pair (HR = scale x LR).
        scale: default the model's scale.
        name: the model's key.
    """
    scale = resolve_scale(model, scale)
    if hr is None and lr is None:
        raise VizInputError("compare: give hr= (the LR is made from it), lr=, or both")
    if hr is not None and lr is None:
        hr = modcrop(hr, scale)
        lr = degrade(hr, scale)
    if lr.shape[-3] == 1 and input_channels(model) == 3:
        sr = super_resolve_grey(model, lr, scale)  # grey -> RGB -> model -> grey
    else:
        sr = super_resolve(model, lr, scale=scale)
    images = {"bicubic": bicubic_upscale(lr, scale), name: sr}
    if hr is not None:
        images["HR"] = hr
    return images


def compare(
    model: torch.nn.Module,
    *,
    hr: torch.Tensor | None = None,
    lr: torch.Tensor | None = None,
    scale: int | None = None,
    name: str = "model",
    **kwargs: Any,
) -> CompareViewer:
    """A :class:`CompareViewer` of bicubic, the model's output and (if known) HR.

    Arguments as :func:`comparison_images`; ``**kwargs`` go to :class:`CompareViewer`
    (``region``, ``zoom_px``, ...).
    """
    images = comparison_images(model, hr=hr, lr=lr, scale=scale, name=name)
    return CompareViewer(images, reference="HR" if "HR" in images else None, **kwargs)
