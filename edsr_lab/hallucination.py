"""What super-resolution can invent or erase, made visible: lesion tests, error and spread maps.

A super-resolution network fills in detail the LR does not contain, from what it saw in
training. On photos that is a feature; in a scan, detail that was never measured can be a
lesion that is not there, or the smoothing away of one that is. These tools make that
visible, in the data's units (HU for CT):

* :func:`insert_lesion` adds a small synthetic lesion to an HR slice (a Gaussian blob or a
  disc of given radius and contrast); degrade it, super-resolve it and measure with
  :func:`region_contrast` how much of the contrast each method gives back.
* :func:`remove_structure` erases a real structure by harmonic inpainting from its
  surroundings (the smoothest fill: each pixel the mean of its four neighbours); the methods
  should not bring it back from an LR made of the erased HR.
* :func:`error_map`: SR - HR per pixel (needs the ground truth: a test, not a clinic tool).
* :func:`ensemble_spread`: the standard deviation, per pixel, of the outputs for the eight
  flips/rotations of the input (the self-ensemble's members), or of several models
  (:func:`model_spread`). A network that is unsure produces different detail for rotated
  copies of the same input, so a high spread marks detail that is not anchored in the data.
  It needs no ground truth.
* :func:`plot_maps`: images and maps side by side, each with a colour bar labelled in units.

What they can and cannot detect:

* The spread is a *warning signal*, not a detector. It cannot see a hallucination that is
  consistent under flips and rotations (a network that confidently invents the same vessel
  in all eight orientations has zero spread there), nor an omission all members agree on; it
  is high on every sharp edge too, where real detail is uncertain by a fraction of a pixel.
* The error map needs the HR, so it can only be used on test data, where the LR was made
  from the HR with a *known* degradation; on a real scan the true HR does not exist.
* A synthetic lesion tests that lesion (size, contrast, shape, place, background): a model
  that keeps a 3-pixel disc of +80 HU may still erase a 2-pixel one of +30 HU. Sweep sizes
  and contrasts before trusting it, and use lesions like the ones that matter clinically.
* Harmonic inpainting leaves a smooth patch, which itself is unlike tissue; it tests whether
  a method invents structure where the LR has none, not whether it would find a real one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.intensity import IntensityMap
from edsr_lab.volume import SR, dihedral_outputs

__all__ = [
    "ensemble_spread",
    "error_map",
    "insert_lesion",
    "model_spread",
    "plot_maps",
    "region_contrast",
    "remove_structure",
    "ring_around",
]


def _slice(image: Any, name: str = "image") -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise BadArgumentError(f"{name} must be one 2-D slice (H, W), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise BadArgumentError(f"{name} holds NaN or infinite values")
    return a


def insert_lesion(
    image: Any,
    centre: tuple[float, float],
    radius: float,
    contrast: float,
    *,
    shape: str = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """Add a synthetic lesion to a slice, in the slice's units.

    Args:
        image: (H, W) array or tensor in data units (e.g. HU).
        centre: (row, column) of the lesion's centre, in pixels (may be fractional).
        radius: in pixels (> 0). ``"gaussian"``: standard deviation ``radius``; ``"disc"``:
            pixels whose centre lies within ``radius``.
        contrast: added at the centre, in data units (negative: a dark lesion).
        shape: ``"gaussian"`` (smooth, like a small nodule seen through a blur) or ``"disc"``
            (sharp-edged).

    Returns:
        ``(lesioned, mask)``: float64 (H, W), and bool (H, W) of the pixels within
        ``radius`` of the centre (the region to measure with :func:`region_contrast`).
    """
    a = _slice(image)
    if not float(radius) > 0:
        raise BadArgumentError(f"radius must be > 0 pixels, got {radius!r}")
    rows, cols = np.mgrid[0 : a.shape[0], 0 : a.shape[1]].astype(np.float64)
    r2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    mask = r2 <= float(radius) ** 2
    if shape == "gaussian":
        added = contrast * np.exp(-r2 / (2.0 * float(radius) ** 2))
    elif shape == "disc":
        added = contrast * mask
    else:
        raise BadArgumentError(f"shape must be 'gaussian' or 'disc', got {shape!r}")
    if not mask.any():
        raise BadArgumentError(f"the lesion at {centre} with radius {radius} misses the image")
    return a + added, mask


def ring_around(mask: Any, width: int = 3) -> np.ndarray:
    """The pixels within ``width`` pixels (chessboard distance) of ``mask`` but not in it."""
    m = np.asarray(mask, dtype=bool)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise BadArgumentError(f"width must be a whole number >= 1, got {width!r}")
    t = torch.from_numpy(m.astype(np.float32))[None, None]
    grown = F.max_pool2d(t, 2 * width + 1, stride=1, padding=width)[0, 0].numpy() > 0
    return grown & ~m


def region_contrast(image: Any, mask: Any, *, background: Any = None, width: int = 3) -> float:
    """Mean inside ``mask`` minus mean of ``background`` (default: a ring around the mask).

    In the image's units: after :func:`insert_lesion` with ``contrast=80`` on a flat
    background a faithful method gives about 80 (a Gaussian's mean over its radius is
    about 0.7 of its peak, measured the same way on the HR).
    """
    a = _slice(image)
    m = np.asarray(mask, dtype=bool)
    ring = ring_around(m, width) if background is None else np.asarray(background, dtype=bool)
    if m.shape != a.shape or ring.shape != a.shape:
        raise SizeMismatchError(f"mask {m.shape} / background {ring.shape} vs image {a.shape}")
    if not m.any() or not ring.any():
        raise BadArgumentError("the mask and its background must each hold at least one pixel")
    return float(a[m].mean() - a[ring].mean())


def remove_structure(
    image: Any, mask: Any, *, tol: float = 1e-6, max_iter: int = 20_000
) -> np.ndarray:
    """Erase the masked pixels by harmonic inpainting: solve Laplace's equation inside.

    Each masked pixel becomes the mean of its four neighbours (Jacobi iterations from the
    mean of the boundary, until the largest change is below ``tol`` times the image's
    range); unmasked pixels are kept exactly. Linear ramps are filled exactly; anything is
    filled with the smoothest surface that meets the surroundings.

    Args:
        image: (H, W) in data units.
        mask: bool (H, W), True where the structure is; it must not touch the border
            everywhere (some unmasked pixel must surround it).
        tol: relative stopping tolerance.
        max_iter: iteration cap (a 10-pixel-wide region needs a few hundred).

    Returns:
        float64 (H, W).
    """
    a = _slice(image)
    m = np.asarray(mask, dtype=bool)
    if m.shape != a.shape:
        raise SizeMismatchError(f"mask {m.shape} vs image {a.shape}")
    if m.all():
        raise BadArgumentError("the mask covers the whole image: there is nothing to fill from")
    if not m.any():
        return a.copy()
    out = a.copy()
    boundary = ring_around(m, 1)
    out[m] = a[boundary].mean()
    scale = max(float(a.max() - a.min()), 1e-12)
    for _ in range(max_iter):
        padded = np.pad(out, 1, mode="edge")
        mean4 = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 4
        change = np.abs(mean4[m] - out[m]).max()
        out[m] = mean4[m]
        if change < tol * scale:
            break
    return out


def error_map(sr: Any, hr: Any) -> np.ndarray:
    """SR - HR per pixel, float64, in the data's units (positive: SR too bright)."""
    a, b = _slice(sr, "sr"), _slice(hr, "hr")
    if a.shape != b.shape:
        raise SizeMismatchError(f"sr {a.shape} and hr {b.shape} differ")
    return a - b


def ensemble_spread(
    sr: SR, lr_unit: torch.Tensor, mapping: IntensityMap | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-pixel standard deviation of the eight flip/rotation outputs.

    Args:
        sr: the inference callable (:func:`edsr_lab.volume.model_sr`).
        lr_unit: one LR slice in [0, 1], (1, h, w) or (1, 1, h, w).
        mapping: if given, both maps are in its units (std times ``hi - lo``); else in [0, 1].

    Returns:
        ``(mean, spread)``: float64 (s*h, s*w) each. ``mean`` is the self-ensemble (EDSR+);
        ``spread`` is the population standard deviation of the eight members.
    """
    x = lr_unit if lr_unit.dim() == 4 else lr_unit[None]
    if x.shape[:2] != (1, 1):
        raise BadArgumentError(f"lr_unit must be one grey slice, got shape {tuple(lr_unit.shape)}")
    outs = dihedral_outputs(sr, x)[:, 0, 0].double()  # (8, H, W)
    mean, std = outs.mean(dim=0), outs.std(dim=0, unbiased=False)
    if mapping is not None:
        return (mean * mapping.peak + mapping.lo).numpy(), (std * mapping.peak).numpy()
    return mean.numpy(), std.numpy()


def model_spread(outputs: Sequence[Any]) -> np.ndarray:
    """Per-pixel population standard deviation across several models' outputs (same units)."""
    stack = [_slice(o, f"outputs[{i}]") for i, o in enumerate(outputs)]
    if len(stack) < 2 or any(s.shape != stack[0].shape for s in stack):
        raise BadArgumentError("model_spread needs at least two outputs of the same shape")
    return np.std(np.stack(stack), axis=0)


def plot_maps(
    panels: Mapping[str, Any],
    *,
    units: str,
    diverging: Sequence[str] = (),
    spread: Sequence[str] = (),
    columns: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    panel_size: float = 2.6,
):
    """Images and maps side by side, each with a colour bar labelled in ``units``.

    Args:
        panels: title -> (H, W) array (images in data units, maps in data units).
        units: e.g. ``"HU"``; every colour bar says it.
        diverging: titles of signed maps (error maps): a red-blue map centred on 0, with
            symmetric limits.
        spread: titles of non-negative maps (spread): a sequential map from 0.
        columns: panels per row (default all in one row).
        vmin, vmax: shared grey limits of the image panels (default: their joint range), so
            that images are comparable.
        panel_size: inches per panel.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    names = list(panels)
    if not names:
        raise BadArgumentError("plot_maps needs at least one panel")
    arrays = {n: _slice(panels[n], n) for n in names}
    images = [a for n, a in arrays.items() if n not in diverging and n not in spread]
    lo = vmin if vmin is not None else (min(float(a.min()) for a in images) if images else 0.0)
    hi = vmax if vmax is not None else (max(float(a.max()) for a in images) if images else 1.0)
    cols = columns or len(names)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel_size * cols, panel_size * rows), squeeze=False
    )
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        a = arrays[name]
        if name in diverging:
            limit = max(float(np.abs(a).max()), 1e-12)
            im = ax.imshow(a, cmap="RdBu_r", vmin=-limit, vmax=limit)
        elif name in spread:
            im = ax.imshow(a, cmap="magma", vmin=0.0, vmax=max(float(a.max()), 1e-12))
        else:
            im = ax.imshow(a, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label(units, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
