"""A gallery in the style of the EDSR paper's qualitative comparison figures (Lim et al. 2017).

Each row is one test image: on the left the whole HR image with a box around a small
region; to its right that region in HR and in the output of each method, enlarged, with
the method's PSNR / SSIM under it. The numbers are the *whole* image's (scored with one
protocol); the crop shows where the eye can see the difference.

:func:`pick_crop` chooses the region by computation instead of by eye: the window where
the methods' errors differ most. :func:`score_outputs` scores whole outputs with a
protocol of :mod:`edsr_lab.metrics`; :func:`show_gallery` draws the figure.

Images are float tensors (C, H, W) with 1 or 3 channels and values in [0, 1], all of
one image the same size (the HR size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from edsr_lab.errors import VizInputError
from edsr_lab.viz import Figure, as_chw

__all__ = ["GalleryRow", "pick_crop", "score_outputs", "show_gallery"]


@dataclass
class GalleryRow:
    """One test image of the gallery.

    Attributes:
        name: the image's name, shown beside the row (``"natural_coffee"``).
        hr: the ground truth (C, H, W) in [0, 1].
        outputs: method name -> its output (C, H, W) in [0, 1], in the order to draw.
        scores: method name -> (PSNR dB, SSIM) of the whole image, shown under the crops.
            A method without scores gets only its name.
        crop: ``(y, x, h, w)`` in HR pixels (e.g. from :func:`pick_crop`).
    """

    name: str
    hr: Any
    outputs: Mapping[str, Any]
    scores: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    crop: tuple[int, int, int, int] = (0, 0, 48, 48)


def _squared_error(img: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """(H, W) squared error on the 8-bit scale, channels averaged, both rounded to 8 bits."""
    a = torch.floor(img.double().clamp(0, 1) * 255 + 0.5)
    b = torch.floor(hr.double().clamp(0, 1) * 255 + 0.5)
    return (a - b).pow(2).mean(0)


def pick_crop(
    outputs: Mapping[str, Any],
    hr: Any,
    size: int,
    *,
    border: int = 0,
    stride: int | None = None,
    mask: Any = None,
) -> tuple[int, int, int, int]:
    """The ``size`` x ``size`` window where the methods' errors differ most.

    For each method the squared error against ``hr`` (8-bit levels, channels averaged) is
    averaged over every window (a box filter moved by ``stride``); the window with the
    largest spread between the methods (largest mean squared error minus smallest) wins.
    That is where one method gets visibly closer to HR than another, usually edges and
    texture, never a flat region where they all agree.

    Args:
        outputs: method name -> output (C, H, W) in [0, 1], at least two.
        hr: the ground truth (C, H, W) in [0, 1].
        size: window side in HR pixels.
        border: pixels at each edge the window must not touch (the protocol's crop).
        stride: step between candidate windows (default ``size // 4``, at least 1).
        mask: optional bool tensor (H, W): only windows lying wholly where it is True are
            candidates (e.g. the inside of a fundus photo, not its black surround).

    Returns:
        ``(y, x, size, size)``, the window's top-left corner and size, in HR pixels.
    """
    if len(outputs) < 2:
        raise VizInputError(f"pick_crop: needs at least two methods to compare, got {len(outputs)}")
    ref = as_chw(hr, "hr", "pick_crop")
    h, w = ref.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise VizInputError(f"pick_crop: size must be a whole number >= 1, got {size!r}")
    if size + 2 * border > min(h, w):
        raise VizInputError(
            f"pick_crop: a {size}x{size} window with a {border}-pixel border does not fit the "
            f"{h}x{w} image; use a smaller size"
        )
    step = max(1, size // 4) if stride is None else int(stride)
    errors = []
    for name, img in outputs.items():
        t = as_chw(img, str(name), "pick_crop")
        if t.shape != ref.shape:
            raise VizInputError(
                f"pick_crop: {name!r} has shape {tuple(t.shape)}, the HR {tuple(ref.shape)}; "
                "every output must have the HR's size"
            )
        err = _squared_error(t, ref)[border : h - border, border : w - border]
        errors.append(F.avg_pool2d(err[None, None], size, stride=step)[0, 0])
    stacked = torch.stack(errors)
    spread = stacked.max(0).values - stacked.min(0).values
    if mask is not None:
        m = torch.as_tensor(mask).to("cpu")
        if m.shape != (h, w):
            raise VizInputError(
                f"pick_crop: mask has shape {tuple(m.shape)}; expected the image's ({h}, {w})"
            )
        m = m.bool()[border : h - border, border : w - border].double()
        inside = F.avg_pool2d(m[None, None], size, stride=step)[0, 0] >= 1.0
        if not bool(inside.any()):
            raise VizInputError(
                f"pick_crop: no {size}x{size} window lies wholly inside the mask; use a smaller "
                "size or a larger mask"
            )
        spread = torch.where(inside, spread, torch.full_like(spread, -1.0))
    iy, ix = divmod(int(spread.argmax()), spread.shape[1])
    return (border + iy * step, border + ix * step, size, size)


def score_outputs(
    outputs: Mapping[str, Any], hr: Any, scale: int, protocol: str
) -> dict[str, tuple[float, float]]:
    """(PSNR dB, SSIM) of each whole output against ``hr`` with ``protocol``.

    ``protocol`` is a name of :data:`edsr_lab.metrics.PROTOCOLS` (the course's comparisons
    use :data:`edsr_lab.ledger.PROTOCOL`); outputs are rounded to 8 bits first, as the
    paper does.
    """
    from edsr_lab.metrics import psnr, ssim

    ref = as_chw(hr, "hr", "score_outputs")
    scores = {}
    for name, img in outputs.items():
        t = as_chw(img, str(name), "score_outputs")
        scores[str(name)] = (
            float(psnr(t, ref, scale, protocol)),
            float(ssim(t, ref, scale, protocol)),
        )
    return scores


def _draw(ax: Any, t: torch.Tensor) -> None:
    """Show a (C, H, W) image pixel for pixel, without ticks."""
    arr = t.permute(1, 2, 0).numpy()
    if arr.shape[-1] == 1:
        ax.imshow(arr[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(arr, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _label(name: str, scores: Mapping[str, tuple[float, float]]) -> str:
    if name not in scores:
        return name
    p, s = scores[name]
    return f"{name}\n{p:.2f} dB / {s:.4f}"


def show_gallery(
    rows: GalleryRow | Sequence[GalleryRow],
    *,
    title: str | None = None,
    hr_label: str = "HR",
    panel_size: float = 1.9,
    color: str = "red",
) -> Figure:
    """Draw the gallery: per row, the HR image with the crop boxed, then the crops.

    Args:
        rows: one :class:`GalleryRow` or several (one image each; every row must have the
            same methods).
        title: a line above the figure (e.g. the protocol the numbers use).
        hr_label: the name under the HR crop (its PSNR would be infinite, so none).
        panel_size: inches per crop panel.

    Returns:
        the Figure (not shown; see :mod:`edsr_lab.viz`). Each crop panel's x-label is
        ``"<method>\\n<PSNR> dB / <SSIM>"`` (the whole image's numbers from ``scores``).
    """
    rows = [rows] if isinstance(rows, GalleryRow) else list(rows)
    if not rows:
        raise VizInputError("show_gallery: no rows given")
    methods = list(rows[0].outputs)
    if not methods:
        raise VizInputError(f"show_gallery: row {rows[0].name!r} has no outputs")
    for row in rows[1:]:
        if list(row.outputs) != methods:
            raise VizInputError(
                f"show_gallery: row {row.name!r} has methods {list(row.outputs)}, the first row "
                f"{methods}; give every row the same methods in the same order"
            )
    ncols = 2 + len(methods)  # whole image, HR crop, one crop per method
    widths = []
    for row in rows:
        hr = as_chw(row.hr, f"{row.name}: hr", "show_gallery")
        widths.append(hr.shape[-1] / hr.shape[-2])
    whole_w = max(widths)
    fig = Figure(
        figsize=(panel_size * (whole_w + ncols - 1), (panel_size + 0.55) * len(rows) + 0.3),
        layout="constrained",
    )
    axes = fig.subplots(
        len(rows), ncols, squeeze=False, gridspec_kw={"width_ratios": [whole_w] + [1] * (ncols - 1)}
    )
    for r, row in enumerate(rows):
        hr = as_chw(row.hr, f"{row.name}: hr", "show_gallery")
        size = tuple(hr.shape[-2:])
        y, x, h, w = (int(v) for v in row.crop)
        if h < 1 or w < 1 or y < 0 or x < 0 or y + h > size[0] or x + w > size[1]:
            raise VizInputError(
                f"show_gallery: row {row.name!r}: crop (y={y}, x={x}, h={h}, w={w}) is not "
                f"inside the {size[0]}x{size[1]} HR image"
            )
        ax = axes[r][0]
        _draw(ax, hr)
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=color, lw=1.5))
        ax.set_xlabel(row.name, fontsize=9)
        panels = [(hr_label, hr)]
        for name, img in row.outputs.items():
            t = as_chw(img, f"{row.name}: {name}", "show_gallery")
            if tuple(t.shape[-2:]) != size:
                raise VizInputError(
                    f"show_gallery: row {row.name!r}: {name!r} is {tuple(t.shape[-2:])}, the HR "
                    f"{size}; every output must have the HR's size"
                )
            panels.append((name, t))
        for c, (name, t) in enumerate(panels, start=1):
            ax = axes[r][c]
            _draw(ax, t[:, y : y + h, x : x + w])
            ax.set_xlabel(_label(name, row.scores), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
