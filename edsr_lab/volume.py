"""Super-resolve a volume slice by slice, with one intensity map and counted clipping.

EDSR is a 2-D model: a volume (a NIfTI file, a DICOM series, a TIFF stack) is super-resolved
*in-plane*, one slice at a time, along a chosen axis; the slice thickness is unchanged. This
module holds what every volume format shares:

* an ``sr`` callable -- ``sr(x) -> y`` with x float (N, C, h, w) in [0, 1] and y
  (N, C, s*h, s*w), *not clamped* so that the policy can count what the model pushes out of
  range (:mod:`edsr_lab.intensity`, rule 4). :func:`model_sr` wraps an EDSR model as one
  (through :func:`edsr_lab.inference.super_resolve` with ``clamp=False``: tiles and the
  self-ensemble included; an RGB model gets grey slices replicated to RGB, its output
  brought back to grey with ITU-R 601 luma); anything else works too, e.g. bicubic or a
  nearest-neighbour stand-in in tests.
* :func:`super_resolve_stack`: a stack of images (N, C, H, W) -- the frames of a multi-frame
  DICOM, the pages of a TIFF, one colour image -- through ``sr`` with one map.
* :func:`super_resolve_volume`: slices batched through ``sr`` (a progress bar on stderr),
  each batch mapped back to the stored dtype with the volume's one map as it arrives, so the
  float copy of the whole output never exists.
* :func:`dihedral_outputs`: the eight flips/rotations of the input, each undone on its
  output: the self-ensemble (their mean) and its spread (:mod:`edsr_lab.hallucination`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.inference import LUMA, check_tile, input_channels, resolve_scale, super_resolve
from edsr_lab.intensity import ClipCount, IntensityMap

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

__all__ = [
    "SR",
    "VolumeResult",
    "dihedral_outputs",
    "model_sr",
    "super_resolve_stack",
    "super_resolve_volume",
]

#: The inference callable every medical path takes: (N, C, h, w) in [0, 1] -> (N, C, sh, sw).
SR = Callable[[torch.Tensor], torch.Tensor]


def model_sr(
    model: nn.Module,
    *,
    scale: int | None = None,
    device: str | torch.device | None = None,
    tile: int | None = None,
    tile_overlap: int = 16,
    self_ensemble: bool = False,
) -> SR:
    """Wrap an SR model as an ``sr`` callable for grey or RGB batches, unclamped.

    The model runs through :func:`edsr_lab.inference.super_resolve` with ``clamp=False``,
    so tiling (and the automatic tiles when a slice would not fit in memory), the
    self-ensemble, the scale check and the device handling are the ones every other path
    uses; only the final clamp is left out, so the intensity policy can count overshoot.

    Args:
        model: e.g. ``edsr_lab.weights.load_pretrained(...)``; RGB (3 input channels) or
            grey (1). MDSR-style models (a ``scales`` attribute) are called ``model(x, scale)``.
        scale: needed for multi-scale models; default the model's
            (:func:`edsr_lab.inference.resolve_scale`).
        device: where to run; default the model's parameters' device.
        tile, tile_overlap: tiled inference (see :func:`edsr_lab.inference.super_resolve`).
        self_ensemble: the paper's 8-transform self-ensemble (EDSR+).

    Returns:
        ``sr(x)``: x float (N, 1 or 3, h, w) in [0, 1] on any device -> float32 (N, same C,
        s*h, s*w) on x's device. A grey batch given to an RGB model is repeated to 3
        channels and its output turned back into grey with ITU-R 601 luma
        (``0.299 R + 0.587 G + 0.114 B``); a colour batch given to a grey model is run one
        channel at a time. Values are *not* clamped to [0, 1].
    """
    channels = input_channels(model)
    scale = resolve_scale(model, scale)
    tile, tile_overlap = check_tile(tile, tile_overlap)
    options = {
        "scale": scale,
        "device": device,
        "tile": tile,
        "tile_overlap": tile_overlap,
        "self_ensemble": self_ensemble,
        "clamp": False,
    }

    def sr(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SizeMismatchError(f"sr: expected a batch (N, 1 or 3, h, w), got {shape}")
        n, c, h, w = x.shape
        t = x.to(torch.float32)
        if c == 1 and channels == 3:
            y = super_resolve(model, t.expand(-1, 3, -1, -1), **options)
            weights = torch.tensor(LUMA, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
            y = (y * weights).sum(dim=1, keepdim=True)
        elif c == 3 and channels == 1:
            y = super_resolve(model, t.reshape(n * 3, 1, h, w), **options)
            y = y.reshape(n, 3, *y.shape[-2:])
        else:
            y = super_resolve(model, t, **options)
        return y.to(x.device)

    sr.scale = scale  # type: ignore[attr-defined]  # what the callable does, for its users
    return sr


def dihedral_outputs(sr: SR, lr: torch.Tensor) -> torch.Tensor:
    """Run ``sr`` on the 8 flips/rotations of ``lr`` and undo each on its output.

    Args:
        sr: the inference callable (see the module docstring).
        lr: float (N, C, h, w) in [0, 1].

    Returns:
        (8, N, C, s*h, s*w): output ``k`` is ``inverse_dihedral(sr(dihedral(lr, k)), k)``.
        Their mean is the paper's self-ensemble (EDSR+); their spread is a warning signal.
    """
    from edsr_lab.data.patches import dihedral, inverse_dihedral

    return torch.stack([inverse_dihedral(sr(dihedral(lr, k)), k) for k in range(8)])


@dataclass
class VolumeResult:
    """What :func:`super_resolve_volume` produced.

    Attributes:
        values: the upscaled volume, numpy, in the map's stored dtype (or float32 units with
            ``as_values=True``), the slicing axis unchanged, the in-plane axes ``s`` times
            longer.
        clipped: values the model pushed outside the map's range (clipped, counted).
        mapping: the one map used for every slice.
        axis: the slicing axis.
    """

    values: np.ndarray
    clipped: ClipCount
    mapping: IntensityMap
    axis: int


def _slices_first(values: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """(X, Y, Z[, T]) -> (slices, A, B) with the slicing axis (and T) in front."""
    moved = np.moveaxis(values, axis, 0)  # (Z, A, B[, T])
    if values.ndim == 4:
        moved = np.moveaxis(moved, 3, 1)  # (Z, T, A, B)
    lead = moved.shape[:-2]
    return moved.reshape(-1, *moved.shape[-2:]), lead


def _restore(flat: np.ndarray, lead: tuple[int, ...], ndim: int, axis: int) -> np.ndarray:
    out = flat.reshape(*lead, *flat.shape[-2:])
    if ndim == 4:
        out = np.moveaxis(out, 1, 3)
    return np.moveaxis(out, 0, axis)


def super_resolve_stack(
    values: np.ndarray,
    sr: SR,
    scale: int,
    mapping: IntensityMap,
    *,
    batch_size: int = 8,
    progress: bool = True,
    as_values: bool = False,
    desc: str = "images",
) -> tuple[np.ndarray, ClipCount]:
    """Super-resolve a stack of images (N, C, H, W) with one map, a batch at a time.

    Each batch is mapped to [0, 1] with ``mapping``, run through ``sr`` and mapped back to
    the stored dtype (or float32 values with ``as_values``) as it arrives, so the float copy
    of the whole output never exists.

    Args:
        values: numpy (N, C, H, W) in the map's units, C = 1 or 3 (the frames of a
            multi-frame DICOM, the pages of a TIFF stack, one colour image).
        sr: the inference callable; it may change the channel count (e.g. grey -> RGB).
        scale: what ``sr`` does to H and W.
        mapping: the stack's one map.
        batch_size, progress, as_values, desc: as :func:`super_resolve_volume`.

    Returns:
        ``(out, clipped)``: numpy (N, C', s*H, s*W) and what was clipped (counted).

    Raises:
        BadArgumentError: not (N, C, H, W) or a bad batch size.
        SizeMismatchError: ``sr`` returned another batch size or spatial size.
    """
    from tqdm import tqdm

    values = np.asarray(values)
    if values.ndim != 4 or values.shape[1] not in (1, 3) or 0 in values.shape:
        raise BadArgumentError(
            f"expected a stack (N, C, H, W) with C = 1 or 3, got shape {values.shape}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BadArgumentError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    n, _, h, w = values.shape
    out_dtype = np.float32 if as_values else np.dtype(mapping.dtype)
    out: np.ndarray | None = None
    clipped = ClipCount(where=mapping.where)
    with tqdm(total=n, desc=desc, unit="slice", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            unit, _ = mapping.to_unit(values[start : start + batch_size])
            y = sr(unit)
            if y.dim() != 4 or (y.shape[0], *y.shape[2:]) != (unit.shape[0], h * scale, w * scale):
                raise SizeMismatchError(
                    f"sr turned {tuple(unit.shape)} into {tuple(y.shape)}, expected "
                    f"({unit.shape[0]}, C, {h * scale}, {w * scale}) for scale {scale}"
                )
            if out is None:
                out = np.empty((n, y.shape[1], h * scale, w * scale), dtype=out_dtype)
            batch, count = mapping.to_values(y) if as_values else mapping.decode(y)
            out[start : start + len(batch)] = batch
            clipped.add(count)
            bar.update(len(batch))
    assert out is not None  # n >= 1
    return out, clipped


def _grey(sr: SR) -> SR:
    """``sr`` checked to give one channel back for one channel in."""

    def grey(x: torch.Tensor) -> torch.Tensor:
        y = sr(x)
        if y.dim() != 4 or y.shape[1] != 1:
            raise SizeMismatchError(
                f"sr turned grey slices {tuple(x.shape)} into {tuple(y.shape)}; a volume "
                "needs one channel back"
            )
        return y

    return grey


def super_resolve_volume(
    values: np.ndarray,
    sr: SR,
    scale: int,
    mapping: IntensityMap,
    *,
    axis: int = 2,
    batch_size: int = 8,
    progress: bool = True,
    as_values: bool = False,
    desc: str = "slices",
) -> VolumeResult:
    """Super-resolve every slice of a 3-D or 4-D volume in-plane, with one map.

    Args:
        values: numpy (X, Y, Z) or (X, Y, Z, T) in the map's units (after any rescale). A
            4-D series (fMRI, several echoes) is done volume by volume, every volume with
            the same map.
        sr: the inference callable; grey slices (N, 1, h, w) are passed to it.
        scale: the factor the in-plane axes grow by; must be what ``sr`` does.
        mapping: the volume's one intensity map (:func:`edsr_lab.intensity.intensity_map`
            on the whole volume).
        axis: the slicing axis among 0, 1, 2 (2: axial slices of an RAS-like volume); the
            other two axes are upscaled, in their order (rows = the lower axis).
        batch_size: slices per call of ``sr``.
        progress: show a tqdm progress bar on stderr.
        as_values: return float32 values in the map's units instead of the stored dtype.
        desc: the progress bar's label.

    Returns:
        A :class:`VolumeResult`.

    Raises:
        BadArgumentError: not 3-D/4-D, a bad axis or batch size.
        SizeMismatchError: ``sr`` did not return (N, 1, s*h, s*w).
    """

    values = np.asarray(values)
    if values.ndim not in (3, 4):
        raise BadArgumentError(
            f"expected a 3-D (X, Y, Z) or 4-D (X, Y, Z, T) volume, got {values.ndim}-D shape "
            f"{values.shape}"
        )
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise BadArgumentError(f"axis must be 0, 1 or 2 (the slicing axis), got {axis!r}")
    slices, lead = _slices_first(values, axis)
    out, clipped = super_resolve_stack(
        slices[:, None], _grey(sr), scale, mapping, batch_size=batch_size,
        progress=progress, as_values=as_values, desc=desc,
    )  # fmt: skip
    out = out[:, 0]
    return VolumeResult(_restore(out, lead, values.ndim, axis), clipped, mapping, axis)
