"""Pictures for the course: images side by side with zoomed crops, error maps, training curves.

Super-resolution differences live in fine detail (edges, text, texture), so comparisons
in the EDSR paper (Figs. 5-6) show small zoomed crops of the same region from each method.
:func:`show_images` does that: every image is shown at the HR size (LR images enlarged by
pixel repetition, so pixel grids and crops line up), a rectangle marks the crop, and a
second row (or an inset) shows the crop enlarged. :func:`show_error_maps` shows *where* each
method is wrong: the per-pixel error against the reference, in stated units (8-bit levels by
default), on one colour scale shared by all panels, with a labelled colour bar, so two maps
can be compared by colour. :func:`plot_history` draws the curves of
:class:`edsr_lab.train.History` objects.

Both return a ``matplotlib.figure.Figure`` (a small subclass that Jupyter draws as PNG by
itself) that is *not* registered with pyplot: nothing is shown or kept alive behind your
back, and it works with any backend, Agg included. Importing this module changes no global
state (no pyplot, no IPython display settings). In a notebook, make the call the last line
of a cell (or ``display(fig)``) to see it; in a script, ``fig.savefig("out.png")``.

Images are float tensors (C, H, W) (or (1, C, H, W), or (H, W)) with 1 or 3 channels and
values in [0, 1].
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure as _MplFigure
from matplotlib.patches import Rectangle

from edsr_lab.errors import VizInputError

__all__ = [
    "ERROR_UNITS",
    "as_chw",
    "error_map",
    "plot_history",
    "show_error_maps",
    "show_images",
]


class Figure(_MplFigure):
    """A matplotlib ``Figure`` that Jupyter draws as PNG by itself (``_repr_png_``).

    Our figures are not registered with pyplot, and IPython only knows how to draw a bare
    ``Figure`` once pyplot or ``%matplotlib inline`` set up its formatter; without one a
    returned figure shows as ``<Figure size ...>``. Giving the figure its own
    ``_repr_png_`` avoids changing IPython's display settings as a side effect of
    importing this module (an earlier version registered the formatter at import).
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def as_chw(img: Any, name: str = "image", fname: str = "show_images") -> torch.Tensor:
    """Any image the pictures accept as float32 (C, H, W) in [0, 1] on the CPU.

    Accepts tensors (C, H, W), (1, C, H, W) or (H, W) and numpy arrays (also H, W, C as
    from PIL) with 1 or 3 channels; integer data is divided by 255 (65535 above 255).
    ``name`` and ``fname`` name the image and the calling function in the error message.
    """
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(img)
        if img.dim() == 3 and img.shape[-1] in (1, 3) and img.shape[0] not in (1, 3):
            img = img.permute(2, 0, 1)  # H, W, C arrays (as from PIL) -> C, H, W
    if not isinstance(img, torch.Tensor):
        raise VizInputError(f"{fname}: {name!r} is {type(img).__name__}, not a tensor")
    t = img.detach().to("cpu")
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise VizInputError(
            f"{fname}: {name!r} has shape {tuple(img.shape)}; expected (C, H, W) with 1 or 3 "
            "channels (drop alpha with edsr_lab.io.load_image(path, channels=3))"
        )
    if not t.is_floating_point():
        t = t.float() / (65535.0 if t.max() > 255 else 255.0)
    return t.float().clamp(0, 1)


def _to_display(t: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Enlarge by pixel repetition to ``size`` and convert to an HxW or HxWx3 array."""
    h, w = t.shape[-2:]
    if (h, w) != size:
        if size[0] % h == 0 and size[1] % w == 0 and size[0] // h == size[1] // w:
            f = size[0] // h
            t = t.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)
        else:
            t = F.interpolate(t[None], size=size, mode="nearest")[0]
    arr = t.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def _imshow(ax: Any, arr: np.ndarray, **kwargs: Any) -> None:
    if arr.ndim == 2:
        ax.imshow(arr, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", **kwargs)
    else:
        ax.imshow(arr, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


def show_images(
    images: Mapping[str, Any] | Sequence[Any],
    *,
    crop: tuple[int, int, int, int] | None = None,
    zoom: str = "row",
    titles: Sequence[str] | None = None,
    psnr: Mapping[str, float] | None = None,
    reference: str | None = None,
    scale: int | None = None,
    protocol: str = "benchmark",
    panel_size: float = 3.0,
    color: str = "red",
) -> Figure:
    """Show images side by side, with an optional zoomed crop of the same region.

    Args:
        images: ``{"LR": lr, "bicubic": b, "EDSR": sr, "HR": hr}`` or a list of tensors
            (C, H, W) with 1 or 3 channels in [0, 1]. Smaller images (the LR) are enlarged
            by pixel repetition to the largest image's size, so crops line up.
        crop: ``(y, x, h, w)`` in HR pixels: the region to zoom into. None: no zoom.
        zoom: "row" puts the zoomed crops in a second row; "inset" in the corner of each
            image.
        titles: panel titles for a list of images (default: the dict keys or "image i").
        psnr: ``{name: dB}`` appended to the titles.
        reference: name of the ground-truth image (e.g. "HR"); with ``scale`` given, PSNR
            against it (``edsr_lab.metrics.psnr`` with ``protocol``) is computed for every
            image of the same size and added to its title.
        panel_size: inches per panel.

    Returns:
        the Figure (not shown; see the module docstring).
    """
    if isinstance(images, Mapping):
        names = [str(k) for k in images]
        tensors = [as_chw(v, str(k)) for k, v in images.items()]
    else:
        tensors = [as_chw(v, f"image {i}") for i, v in enumerate(images)]
        names = list(titles) if titles is not None else [f"image {i}" for i in range(len(tensors))]
        if len(names) != len(tensors):
            raise VizInputError(f"show_images: {len(names)} titles for {len(tensors)} images")
    if not tensors:
        raise VizInputError("show_images: no images given")
    if zoom not in ("row", "inset"):
        raise VizInputError(f"show_images: zoom={zoom!r}; use 'row' or 'inset'")

    size = (max(t.shape[-2] for t in tensors), max(t.shape[-1] for t in tensors))
    if crop is not None:
        y, x, h, w = (int(v) for v in crop)
        if h < 1 or w < 1 or y < 0 or x < 0 or y + h > size[0] or x + w > size[1]:
            raise VizInputError(
                f"show_images: crop (y={y}, x={x}, h={h}, w={w}) is not inside the "
                f"{size[0]}x{size[1]} (HR) image; give it in HR pixel coordinates"
            )

    scores = dict(psnr or {})
    if reference is not None and scale is not None:
        if reference not in names:
            raise VizInputError(f"show_images: reference {reference!r} is not one of {names}")
        from edsr_lab.metrics import psnr as psnr_fn

        ref = tensors[names.index(reference)]
        for n, t in zip(names, tensors, strict=True):
            if n != reference and n not in scores and t.shape == ref.shape:
                scores[n] = float(psnr_fn(t, ref, scale, protocol=protocol))

    arrays = [_to_display(t, size) for t in tensors]
    ncols = len(arrays)
    nrows = 2 if crop is not None and zoom == "row" else 1
    aspect = size[0] / size[1]
    heights = [aspect] + ([h / w] if nrows == 2 else [])
    fig = Figure(figsize=(panel_size * ncols, panel_size * sum(heights) + 0.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"height_ratios": heights})
    for j, (name, arr) in enumerate(zip(names, arrays, strict=True)):
        ax = axes[0][j]
        _imshow(ax, arr)
        title = name if name not in scores else f"{name}\n{_fmt_db(scores[name])}"
        ax.set_title(title, fontsize=10)
        if crop is None:
            continue
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=color, lw=1.5))
        patch = arr[y : y + h, x : x + w]
        zax = axes[1][j] if zoom == "row" else ax.inset_axes([0.58, 0.02, 0.4, 0.4])
        _imshow(zax, patch)
        for spine in zax.spines.values():
            spine.set_edgecolor(color)
    fig.tight_layout()
    return fig


def _fmt_db(v: float) -> str:
    return "inf dB" if math.isinf(v) else f"{v:.2f} dB"


#: error units -> how many of them the full [0, 1] range spans (``unit_scale``).
ERROR_UNITS: dict[str, float] = {"8-bit levels": 255.0, "16-bit levels": 65535.0, "[0, 1]": 1.0}


def _unit_scale(units: str, unit_scale: float | None, fname: str) -> float:
    if unit_scale is not None:
        if (
            not (isinstance(unit_scale, int | float) and math.isfinite(unit_scale))
            or unit_scale <= 0
        ):
            raise VizInputError(
                f"{fname}: unit_scale must be a positive number, got {unit_scale!r}"
            )
        return float(unit_scale)
    if units not in ERROR_UNITS:
        raise VizInputError(
            f"{fname}: units={units!r} is not one of {sorted(ERROR_UNITS)}; for other units give "
            "unit_scale too (how many units the [0, 1] range spans, e.g. units='HU', "
            "unit_scale=4095)"
        )
    return ERROR_UNITS[units]


def error_map(
    image: Any,
    reference: Any,
    *,
    signed: bool = False,
    channel: str = "mean",
    units: str = "8-bit levels",
    unit_scale: float | None = None,
    quantize: bool = True,
) -> torch.Tensor:
    """Per-pixel error of ``image`` against ``reference``, in ``units``.

    Args:
        image, reference: tensors (C, H, W) (or (1, C, H, W), (H, W)) with 1 or 3 channels,
            float in [0, 1] (integer tensors are divided by 255 or 65535), the same shape.
        signed: False: ``|image - reference|``; True: ``image - reference`` (positive = the
            image is too bright there).
        channel: how 3 channels become one map: "mean" (mean over R, G, B of the
            per-channel error; signed errors of opposite sign cancel) or "y" (the error of
            the luma Y of MATLAB's ``rgb2ycbcr``, the channel of the benchmark protocol).
            Ignored for 1-channel images.
        units: a name in :data:`ERROR_UNITS` ("8-bit levels", "16-bit levels", "[0, 1]"),
            or any label together with ``unit_scale``.
        unit_scale: how many units the [0, 1] range spans (e.g. 4095 for 12-bit data);
            default: from ``units``.
        quantize: round both images to 8-bit levels first, as PSNR does
            (:func:`edsr_lab.metrics.quantize`); pass False for 16-bit data.

    Returns:
        float32 tensor (H, W): the error in ``units``, >= 0 unless ``signed``.
    """
    from edsr_lab.metrics import quantize as quantize_8bit
    from edsr_lab.metrics import rgb_to_y

    fname = "error_map"
    if channel not in ("mean", "y"):
        raise VizInputError(f"{fname}: channel={channel!r}; use 'mean' or 'y'")
    factor = _unit_scale(units, unit_scale, fname)
    a = as_chw(image, "image", fname).double()
    b = as_chw(reference, "reference", fname).double()
    if a.shape != b.shape:
        raise VizInputError(
            f"{fname}: image has shape {tuple(a.shape)} but reference has {tuple(b.shape)}; "
            "they must match (crop the HR with edsr_lab.resize.modcrop(hr, scale))"
        )
    if quantize:
        a, b = quantize_8bit(a), quantize_8bit(b)
    if channel == "y" and a.shape[0] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    diff = a - b
    err = diff if signed else diff.abs()
    return (err.mean(0) * factor).float()


def show_error_maps(
    images: Mapping[str, Any] | Sequence[Any],
    reference: Any,
    *,
    titles: Sequence[str] | None = None,
    signed: bool = False,
    channel: str = "mean",
    units: str = "8-bit levels",
    unit_scale: float | None = None,
    quantize: bool = True,
    crop: tuple[int, int, int, int] | None = None,
    vmax: float | None = None,
    show_reference: bool = True,
    panel_size: float = 3.0,
    cmap: str | None = None,
) -> Figure:
    """Error maps of several images against one reference, on one colour scale.

    Args:
        images: ``{"bicubic": b, "EDSR": sr}`` or a list of tensors (C, H, W) in [0, 1],
            each the reference's shape.
        reference: the ground truth (a tensor), or the name of one of ``images`` (that one
            is then the reference and gets no map).
        titles: panel titles for a list of images.
        signed: absolute error (colour map "inferno", 0 = black) or signed error
            ("RdBu_r", 0 = white, red = too bright, blue = too dark).
        channel, units, unit_scale, quantize: as :func:`error_map`.
        crop: ``(y, x, h, w)``: show only this region (in reference pixels); the mean
            errors in the titles are then of the region.
        vmax: the end of the colour scale in ``units``; default: the 99.5th percentile of
            all maps together (errors above it get the end colour, and the bar says so
            with an arrow).
        show_reference: draw the reference as the first panel, for orientation.

    Every panel uses the same colour scale, so equal colours are equal errors. The title
    of each map carries its mean absolute error (and, signed, its mean error) in ``units``;
    the colour bar is labelled with what is shown and the units.

    Returns:
        the Figure (not shown; see the module docstring).
    """
    fname = "show_error_maps"
    if isinstance(images, Mapping):
        names = [str(k) for k in images]
        values = list(images.values())
    else:
        values = list(images)
        names = list(titles) if titles is not None else [f"image {i}" for i in range(len(values))]
        if len(names) != len(values):
            raise VizInputError(f"{fname}: {len(names)} titles for {len(values)} images")
    ref_name = "reference"
    if isinstance(reference, str):
        if reference not in names:
            raise VizInputError(f"{fname}: reference {reference!r} is not one of {names}")
        ref_name = reference
        i = names.index(reference)
        reference = values.pop(i)
        names.pop(i)
    if not values:
        raise VizInputError(f"{fname}: no images to compare with the reference")
    ref = as_chw(reference, ref_name, fname)
    kw = {"channel": channel, "units": units, "unit_scale": unit_scale, "quantize": quantize}
    maps = [error_map(v, ref, signed=signed, **kw) for v in values]
    # Titles give the mean absolute error (channels averaged after abs) in either mode.
    abs_maps = maps if not signed else [error_map(v, ref, **kw) for v in values]
    if crop is not None:
        y, x, h, w = (int(c) for c in crop)
        H, W = ref.shape[-2:]
        if h < 1 or w < 1 or y < 0 or x < 0 or y + h > H or x + w > W:
            raise VizInputError(
                f"{fname}: crop (y={y}, x={x}, h={h}, w={w}) is not inside the {H}x{W} "
                "reference; give it in reference pixel coordinates"
            )
        maps = [m[y : y + h, x : x + w] for m in maps]
        abs_maps = [m[y : y + h, x : x + w] for m in abs_maps]
        ref = ref[:, y : y + h, x : x + w]
    stacked = torch.stack([m.abs() for m in maps]).double()  # the shown values, unsigned
    top = float(torch.quantile(stacked.flatten()[:: max(1, stacked.numel() // 1_000_000)], 0.995))
    if vmax is None:
        vmax = top if top > 0 else 1.0
    elif not math.isfinite(vmax) or vmax <= 0:
        raise VizInputError(f"{fname}: vmax must be a positive number, got {vmax!r}")
    vmax = float(vmax)
    vmin = -vmax if signed else 0.0
    cmap = cmap or ("RdBu_r" if signed else "inferno")
    clipped = float(stacked.max()) > vmax

    ncols = len(maps) + int(show_reference)
    h_, w_ = ref.shape[-2:]
    fig = Figure(
        figsize=(panel_size * ncols + 1.2, panel_size * h_ / w_ + 0.8), layout="constrained"
    )
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    if show_reference:
        _imshow(axes[0], _to_display(ref, (h_, w_)))
        axes[0].set_title(ref_name, fontsize=10)
    short = units if len(units) <= 8 else units.split()[-1]  # "8-bit levels" -> "levels"
    mappable = None
    for ax, name, m, a in zip(axes[int(show_reference) :], names, maps, abs_maps, strict=True):
        mappable = ax.imshow(m.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        mae = float(a.mean())
        title = f"{name}\nmean |error| {mae:.2f} {short}"
        if signed:
            title += f"\nmean error {float(m.mean()):+.2f}"
        ax.set_title(title, fontsize=10)
    what = "Y error" if channel == "y" and ref.shape[0] == 3 else "error"
    label = f"{what} vs {ref_name} ({units})" if signed else f"|{what}| vs {ref_name} ({units})"
    extend = ("both" if signed else "max") if clipped else "neither"
    fig.colorbar(mappable, ax=list(axes[int(show_reference) :]), label=label, extend=extend)
    return fig


def _is_history(obj: Any) -> bool:
    """Anything with a History's fields (duck typing: viz does not import train)."""
    return all(hasattr(obj, name) for name in ("step", "loss", "eval_series"))


def _as_histories(histories: Any) -> dict[str, Any]:
    if _is_history(histories):
        return {"": histories}
    if isinstance(histories, Mapping):
        return {str(k): v for k, v in histories.items()}
    if isinstance(histories, Sequence):
        return {f"run {i}": h for i, h in enumerate(histories)}
    raise VizInputError(
        f"plot_history: expected a History, a dict of them or a list, got {type(histories)}"
    )


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < 2:
        return values
    kernel = np.ones(window) / window
    # Pad with edge values so the curve starts at the first value rather than near 0.
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_history(
    histories: Any,
    key: str = "loss",
    *,
    smooth: int | None = None,
    log_y: bool | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Figure:
    """Plot one quantity of one or several training runs against the step.

    Args:
        histories: a :class:`edsr_lab.train.History`, a dict ``{"L1": h1, "L2": h2}``, or a
            list of them.
        key: "loss", "lr", "grad_norm", "time", or a metric returned by ``eval_fn``
            (e.g. "psnr"), which is plotted at the evaluation steps.
        smooth: moving-average window for per-step curves (raw values drawn faintly
            behind). None: about 1/50 of the run; 0 or 1: none.
        log_y: logarithmic y axis; default on for loss, lr and grad_norm.
        ax: draw into this Axes instead of a new Figure.

    Divergence (a vertical dashed line) and loss spikes (x markers) are marked.
    Returns the Figure.
    """
    runs = _as_histories(histories)
    if ax is None:
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    per_step = key in ("loss", "lr", "grad_norm", "time")
    if log_y is None:
        log_y = key in ("loss", "lr", "grad_norm")
    drew = False
    for label, h in runs.items():
        if per_step:
            steps = np.asarray(h.step, dtype=float)
            values = np.asarray(getattr(h, key), dtype=float)
        else:
            s, v = h.eval_series(key)
            steps, values = np.asarray(s, dtype=float), np.asarray(v, dtype=float)
        ok = np.isfinite(values) & ((values > 0) if log_y else True)
        steps, values = steps[ok], values[ok]
        if len(values) == 0:
            continue
        drew = True
        window = max(1, len(values) // 50) if smooth is None else int(smooth)
        if per_step and key != "time" and window > 1:
            (line,) = ax.plot(steps, values, alpha=0.25, lw=0.8)
            ax.plot(steps, _moving_average(values, window), color=line.get_color(), label=label)
        else:
            (line,) = ax.plot(steps, values, marker="" if per_step else "o", label=label)
        if key == "loss" and h.spikes:
            sx, sy = zip(*h.spikes, strict=True)
            ax.plot(sx, sy, "x", color=line.get_color(), ms=7)
        if h.diverged and h.diverged_step is not None:
            ax.axvline(h.diverged_step, color=line.get_color(), ls="--", lw=1)
            ax.annotate(
                "diverged",
                (h.diverged_step, 0.95),
                xycoords=("data", "axes fraction"),
                color=line.get_color(),
                ha="right",
                va="top",
                fontsize=9,
            )
    if not drew:
        ax.text(0.5, 0.5, f"no {key!r} values to plot", ha="center", transform=ax.transAxes)
    if log_y and drew:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if title:
        ax.set_title(title)
    if any(label for label in runs) and drew:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
