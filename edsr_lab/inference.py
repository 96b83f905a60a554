"""Running a trained model on images: forward, tiles, self-ensemble, scale, grey images.

- :func:`super_resolve` runs a model on one image or a batch, optionally with the paper's
  geometric self-ensemble (EDSR+, Lim et al. 2017 section 4.3: average over the 8
  flips/rotations) and with tiled inference for images too large for the GPU. Tiles overlap
  and only each tile's centre is kept, so for a network whose receptive field fits in the
  overlap the result equals the untiled one exactly, at every scale and image size (the
  official ``chop`` has bugs at x3 and odd sizes).
- :func:`resolve_scale` is the one check of "which scale": every entry point (this
  module, ``upscale``, DICOM, the viewer, the CLI) asks it, so a wrong or missing scale
  gets the same one-line message everywhere.
- :func:`super_resolve_grey` runs a grey image through an RGB model (replicated to three
  channels, brought back with ITU-R 601 luma); :func:`super_resolve_values` does that for
  values in physical units (Hounsfield units of a CT slice, MR intensities), mapping their
  range to [0, 1] and back.
- :func:`bicubic_upscale` is the baseline every table starts with.

Tensors are float32 (C, H, W) or (N, C, H, W) with values in [0, 1] unless said otherwise.
Scoring (PSNR/SSIM, the paper's protocols) is :mod:`edsr_lab.evaluate`.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from edsr_lab.config import resolve_device
from edsr_lab.data.patches import dihedral, inverse_dihedral
from edsr_lab.errors import BadArgumentError, DeviceError, SizeMismatchError
from edsr_lab.resize import imresize
from edsr_lab.validate import check_image

__all__ = [
    "LUMA",
    "MIN_TILE",
    "bicubic_upscale",
    "input_channels",
    "model_device",
    "model_scale",
    "model_scales",
    "resolve_scale",
    "super_resolve",
    "super_resolve_grey",
    "super_resolve_values",
]

#: ITU-R 601 luma weights (R, G, B): colour -> grey, as Pillow's convert("L") and
#: ``edsr_lab.io.load_image(path, channels=1)``.
LUMA = (0.299, 0.587, 0.114)

#: Smallest LR tile the out-of-memory fall-back tries before giving up.
MIN_TILE = 16


# ----------------------------------------------------------------------------------------
# What a model is
# ----------------------------------------------------------------------------------------


def model_scale(model: nn.Module) -> int | None:
    """The model's single upscaling factor (``model.scale`` or its config); None if unknown."""
    scale = getattr(model, "scale", None)
    if scale is None and isinstance(getattr(model, "config", None), Mapping):
        scale = model.config.get("scale")
    if isinstance(scale, (list, tuple)):
        scale = scale[0] if len(scale) == 1 else None
    return int(scale) if scale is not None else None


def model_scales(model: nn.Module) -> tuple[int, ...]:
    """Every scale ``model`` serves: its ``scales`` (MDSR), else its one scale, else ()."""
    scales = getattr(model, "scales", None)
    if isinstance(scales, (list, tuple)) and scales:
        return tuple(int(s) for s in scales)
    own = model_scale(model)
    return (own,) if own is not None else ()


def _takes_scale(model: nn.Module) -> bool:
    """Models with a ``scales`` attribute (ours; MDSR needs it) are called ``model(x, scale)``."""
    scales = getattr(model, "scales", None)
    return isinstance(scales, (list, tuple)) and len(scales) > 0


def input_channels(model: nn.Module) -> int | None:
    """Channels ``model`` expects: its ``n_colors``, else its first conv's; None if unknown."""
    n = getattr(model, "n_colors", None)
    if n is not None:
        return int(n)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters (else buffers) live; the CPU for a model without any."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _xs(scales: tuple[int, ...]) -> str:
    return ", ".join(f"x{s}" for s in scales)


def resolve_scale(
    model: nn.Module,
    scale: int | None = None,
    *,
    source: str | None = None,
    fix: str | None = None,
) -> int:
    """The scale to run ``model`` at: ``scale`` if the model serves it, else its only one.

    Args:
        model: any SR model; its scales come from :func:`model_scales` (a model that does
            not say its scale takes any ``scale`` given).
        scale: the scale asked for (``--scale`` / ``scale=``), or None for the model's own.
        source: how to name the model in the message, e.g. ``"checkpoint 'x2.pt'"``.
        fix: what to do about a scale the model does not serve (default: use a model
            trained for it); e.g. which weights to take instead.

    Returns:
        The scale, a whole number >= 1.

    Raises:
        BadArgumentError: one line, the same from every entry point: a scale that is not
            a whole number >= 1, one the model does not serve, or none given for a model
            that serves several (MDSR) or does not say its scale.
    """
    have = model_scales(model)
    what = f"{source} ({type(model).__name__})" if source else f"the {type(model).__name__} model"
    if scale is None:
        if len(have) == 1:
            return have[0]
        s = have[0] if have else 2
        why = f"serves several scales ({_xs(have)})" if have else "does not say its scale"
        raise BadArgumentError(f"{what} {why}; say which: --scale {s} (scale={s} from Python)")
    if isinstance(scale, float) and scale.is_integer():
        scale = int(scale)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise BadArgumentError(
            f"scale {scale!r}: the scale must be a whole number >= 1, e.g. --scale 2 "
            "(scale=2 from Python)"
        )
    scale = int(scale)
    if have and scale not in have:
        other = "drop --scale" if len(have) == 1 else "pick one of its scales"
        raise BadArgumentError(
            f"--scale {scale} (scale={scale} from Python): {what} upscales by {_xs(have)} "
            f"only; {fix or f'use a model trained for x{scale}'}, or {other}"
        )
    return scale


# ----------------------------------------------------------------------------------------
# super_resolve
# ----------------------------------------------------------------------------------------


def _tile_starts(size: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, size) into consecutive (start, end) pieces of at most ``tile`` pixels."""
    return [(a, min(a + tile, size)) for a in range(0, size, tile)]


def _run_tiled(
    run: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
) -> torch.Tensor:
    """Run ``run`` on overlapping tiles of x (N, C, H, W) and stitch the tile centres.

    Each core tile [y0, y1) x [x0, x1) is extended by ``overlap`` LR pixels on every side
    that is not an image border, run through the network, and only the core's
    ``scale``-times-larger region of the output is kept. All sizes are in LR pixels and
    multiplied by the integer scale, so x3 and odd sizes stitch without gaps or shifts.
    """
    n, c, h, w = x.shape
    out: torch.Tensor | None = None
    for y0, y1 in _tile_starts(h, tile):
        for x0, x1 in _tile_starts(w, tile):
            py0, py1 = max(0, y0 - overlap), min(h, y1 + overlap)
            px0, px1 = max(0, x0 - overlap), min(w, x1 + overlap)
            y = run(x[:, :, py0:py1, px0:px1])
            if out is None:
                out = y.new_empty(n, y.shape[1], h * scale, w * scale)
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = y[
                :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
    assert out is not None  # h, w >= 1, so at least one tile ran
    return out


def _free_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Forward:
    """One :func:`super_resolve` call's forward passes: whole, tiled, out-of-memory safe,
    self-ensembled. ``tile`` shrinks (for the rest of the call) when CUDA runs out of memory."""

    def __init__(self, model: nn.Module, scale: int, tile: int | None, overlap: int):
        self.model, self.scale, self.tile, self.overlap = model, scale, tile, overlap
        self.takes_scale = _takes_scale(model)

    def run(self, t: torch.Tensor) -> torch.Tensor:
        """One forward pass; checks the output size."""
        s = self.scale
        y = self.model(t, s) if self.takes_scale else self.model(t)
        expect = (t.shape[0], t.shape[1], t.shape[2] * s, t.shape[3] * s)
        if tuple(y.shape) != expect:
            raise SizeMismatchError(
                f"super_resolve: the model turned {tuple(t.shape)} into {tuple(y.shape)}, "
                f"expected {expect} for scale {s}; is scale= the model's scale?"
            )
        return y.float()

    def run_tiled(self, t: torch.Tensor) -> torch.Tensor:
        size = self.tile
        if size is None or (t.shape[2] <= size and t.shape[3] <= size):
            return self.run(t)
        return _run_tiled(self.run, t, self.scale, size, self.overlap)

    def run_safe(self, t: torch.Tensor) -> torch.Tensor:
        """:meth:`run_tiled`, halving the tiles on CUDA out-of-memory (said on stderr)."""
        while True:
            try:
                return self.run_tiled(t)
            except torch.cuda.OutOfMemoryError as err:
                _free_cuda_memory()
                size = self.tile or max(t.shape[2], t.shape[3])
                smaller = size // 2
                if smaller < MIN_TILE:
                    raise DeviceError(
                        f"super_resolve: out of GPU memory even in {size}x{size} tiles; free "
                        "GPU memory (other processes?) or use device='cpu'"
                    ) from err
                print(
                    f"super_resolve: out of GPU memory on a {t.shape[2]}x{t.shape[3]} input "
                    f"(tile {self.tile or 'none'}); retrying in tiles of "
                    f"{smaller}x{smaller} LR pixels (pass tile= to start there)",
                    file=sys.stderr,
                )
                self.tile = smaller

    def ensemble(self, x: torch.Tensor, batch: bool) -> torch.Tensor:
        """The mean over the 8 flips/rotations, each undone on its output."""
        n, c, h, w = x.shape
        acc = torch.zeros(n, c, h * self.scale, w * self.scale, device=x.device)
        # Transforms 0, 2, 4, 6 keep H x W; 1, 3, 5, 7 swap them (dihedral's docstring).
        groups = [list(range(8))] if h == w else [[0, 2, 4, 6], [1, 3, 5, 7]]
        for group in groups:
            if batch and self.tile is None:
                try:
                    ys = self.run(torch.cat([dihedral(x, k) for k in group])).split(n)
                except torch.cuda.OutOfMemoryError:
                    _free_cuda_memory()  # fall back to one transform at a time below
                else:
                    for k, yk in zip(group, ys, strict=True):
                        acc += inverse_dihedral(yk, k)
                    continue
            for k in group:
                acc += inverse_dihedral(self.run_safe(dihedral(x, k)), k)
        return acc / 8


def _check_channels(model: nn.Module, x: torch.Tensor, shape: tuple) -> None:
    expected = input_channels(model)
    if expected is not None and x.shape[1] != expected:
        hint = (
            "drop or composite the alpha channel: edsr_lab.io.load_image(path, channels=3)"
            if x.shape[1] == 4
            else f"load the image with edsr_lab.io.load_image(path, channels={expected})"
        )
        raise SizeMismatchError(
            f"super_resolve: the image has {x.shape[1]} channels but the model expects "
            f"{expected} (input shape {shape}); {hint}"
        )


def super_resolve(
    model: nn.Module,
    lr: torch.Tensor,
    *,
    scale: int | None = None,
    self_ensemble: bool = False,
    tile: int | None = None,
    tile_overlap: int = 16,
    device: str | torch.device | None = None,
    amp: bool = False,
    ensemble_batch: bool = True,
) -> torch.Tensor:
    """Upscale ``lr`` with ``model``: SR = model(LR), clamped to [0, 1].

    Args:
        model: a network mapping (N, C, h, w) in [0, 1] to (N, C, h*s, w*s), e.g.
            ``edsr_lab.models.edsr_baseline(2)``. Models with a ``scales`` attribute (ours,
            MDSR included) are called as ``model(x, scale)``.
        lr: float tensor (C, h, w) or (N, C, h, w) with values in [0, 1], on any device.
        scale: the upscaling factor; default the model's (:func:`resolve_scale`).
            Required for MDSR.
        self_ensemble: the paper's geometric self-ensemble (EDSR+ / MDSR+): run the 8
            flips/rotations of the input, undo each on the output, average. 8x the cost,
            about +0.1 dB.
        tile: if set, process the LR image in tiles of ``tile`` x ``tile`` pixels (plus the
            overlap) to bound memory on large images. None = whole image at once.
        tile_overlap: LR pixels of context added on each side of a tile; it must cover the
            network's receptive-field radius for the result to equal the untiled one
            (about 37 LR pixels for the EDSR baseline, 69 for EDSR). The default 16, like
            the official code's ``shave=10``, computes less but leaves small differences
            near tile seams (far-away pixels barely influence the output); measure them
            for your model, as notebook 08 does, or raise the overlap for exactness.
        device: where to compute; default: where the model's parameters are. If given, the
            model is moved there. A device this machine does not have raises DeviceError
            (:func:`edsr_lab.config.resolve_device`).
        amp: run under bf16 autocast (CUDA only): ~1.5x faster, differences of about
            1e-2 in pixel values (notebook 08 measures the PSNR cost).
        ensemble_batch: with ``self_ensemble``, run the transforms as one batch of 8 (square
            inputs) or two batches of 4 (the transforms that keep H x W, then those that swap
            them), which keeps a GPU busy; on out-of-memory it falls back to one at a time.

    Out of memory: if CUDA runs out of memory (``torch.cuda.OutOfMemoryError``), the input
    is processed again in tiles half as large (the whole image first counts as one tile),
    halving until it fits or tiles would be smaller than ``MIN_TILE``; each fall-back is
    printed on stderr.

    Returns:
        float32 tensor shaped like ``lr`` but ``scale`` times larger in H and W, clamped to
        [0, 1], on ``lr``'s device. Not rounded; :func:`edsr_lab.evaluate.evaluate` rounds
        to 8 bits as the paper does.

    The model runs in eval mode under ``torch.inference_mode``; its previous mode
    (train/eval) is restored afterwards.
    """
    # Type, dtype, dimensions (the model checks NaN/inf and the value range in eval mode).
    check_image(lr, "super_resolve: lr", finite=False)
    if tile is not None and tile < 1:
        raise BadArgumentError(f"super_resolve: tile={tile} must be >= 1 or None")
    if tile_overlap < 0:
        raise BadArgumentError(f"super_resolve: tile_overlap={tile_overlap} must be >= 0")
    single = lr.dim() == 3
    x = lr.unsqueeze(0) if single else lr
    _check_channels(model, x, tuple(lr.shape))
    forward = _Forward(model, resolve_scale(model, scale), tile, tile_overlap)
    device = resolve_device(device) if device is not None else model_device(model)
    if amp and device.type != "cuda":
        raise DeviceError(f"super_resolve: amp=True (bf16) needs a CUDA device, not {device}")
    model.to(device)

    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    try:
        with torch.inference_mode(), autocast:
            xd = x.to(device, torch.float32)
            y = forward.ensemble(xd, ensemble_batch) if self_ensemble else forward.run_safe(xd)
            y = y.clamp_(0, 1).to(lr.device)
    finally:
        model.train(was_training)
    # Leave inference mode: the caller may want to use the result in autograd code.
    y = y.clone()
    return y[0] if single else y


def bicubic_upscale(lr: torch.Tensor, scale: int | float) -> torch.Tensor:
    """The bicubic baseline: MATLAB-compatible ``imresize(lr, scale)`` clamped to [0, 1].

    lr: float (C, h, w) or (N, C, h, w) in [0, 1]. Returns (…, C, h*scale, w*scale).
    """
    return imresize(lr, scale).clamp(0, 1)


# ----------------------------------------------------------------------------------------
# Grey images and physical units
# ----------------------------------------------------------------------------------------


def super_resolve_grey(
    model: nn.Module, grey: torch.Tensor, scale: int | None = None, **kwargs: Any
) -> torch.Tensor:
    """A grey image (1, h, w) in [0, 1] -> (1, h*s, w*s) in [0, 1], through any model.

    A 1-channel model (``n_colors=1``) runs on it directly. An RGB model runs on it
    replicated to three channels (a valid RGB image: R = G = B); its three output channels,
    nearly equal, are brought back to one with ITU-R 601 :data:`LUMA`, the rule
    ``edsr_lab.io.load_image(path, channels=1)`` uses. ``**kwargs`` go to
    :func:`super_resolve` (``tile``, ``self_ensemble``, ``device``, ...).
    """
    if input_channels(model) == 1:
        return super_resolve(model, grey, scale=scale, **kwargs)
    rgb = super_resolve(model, grey.expand(3, -1, -1), scale=scale, **kwargs)
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(dim=0, keepdim=True).clamp_(0.0, 1.0)


def super_resolve_values(
    model: nn.Module,
    values: torch.Tensor,
    *,
    scale: int | None = None,
    value_range: tuple[float, float] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Super-resolve a grey slice given in physical units (e.g. Hounsfield units of a CT).

    Args:
        model: an SR model (RGB or grey), e.g. ``edsr_lab.models.load_checkpoint(...)``.
        values: float (1, H, W) in the modality's units, as
            :func:`edsr_lab.dicom.read_dicom` returns them.
        scale: default the model's (:func:`resolve_scale`); needed for MDSR.
        value_range: (lo, hi) mapped linearly to [0, 1] for the model; default the slice's
            own min and max (invertible, so nothing is clipped). Values outside are clipped.
        **kwargs: passed to :func:`super_resolve` (``tile``, ``self_ensemble``, ``device``).

    Returns:
        float32 (1, H*s, W*s) on the CPU, in the same units, within ``value_range``.
    """
    if not isinstance(values, torch.Tensor) or values.dim() != 3 or values.shape[0] != 1:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise SizeMismatchError(
            f"values must be a float tensor (1, H, W) in physical units (as read_dicom "
            f"returns), got {shape}"
        )
    scale = resolve_scale(model, scale)
    lo, hi = value_range or (float(values.min()), float(values.max()))
    span = hi - lo if hi > lo else 1.0  # a constant slice stays constant
    unit = ((values.float() - lo) / span).clamp_(0.0, 1.0)
    sr = super_resolve_grey(model, unit, scale, **kwargs)
    return sr.cpu() * span + lo
