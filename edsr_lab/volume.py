"""Super-resolve a volume slice by slice, with one intensity map and counted clipping.

EDSR is a 2-D model: a volume (a NIfTI file, a DICOM series, a TIFF stack) is super-resolved
*in-plane*, one slice at a time, along a chosen axis; the slice thickness is unchanged. This
module holds what every volume format shares:

* an ``sr`` callable -- ``sr(x) -> y`` with x float (N, C, h, w) in [0, 1] and y
  (N, C, s*h, s*w), *not clamped* so that the policy can count what the model pushes out of
  range (:mod:`edsr_lab.intensity`, rule 4). :func:`model_sr` wraps an EDSR model as one (an
  RGB model gets grey slices replicated to RGB, its output brought back to grey with ITU-R
  601 luma); anything else works too, e.g. bicubic or a nearest-neighbour stand-in in tests.
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

from edsr_lab.config import resolve_device
from edsr_lab.errors import BadArgumentError, SizeMismatchError
from edsr_lab.inference import LUMA, input_channels, model_device, model_scale
from edsr_lab.intensity import ClipCount, IntensityMap
from edsr_lab.models.registry import is_multiscale

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

__all__ = ["SR", "VolumeResult", "dihedral_outputs", "model_sr", "super_resolve_volume"]

#: The inference callable every medical path takes: (N, C, h, w) in [0, 1] -> (N, C, sh, sw).
SR = Callable[[torch.Tensor], torch.Tensor]


def model_sr(
    model: nn.Module, *, scale: int | None = None, device: str | torch.device | None = None
) -> SR:
    """Wrap an SR model as an ``sr`` callable for grey or RGB batches, unclamped.

    Args:
        model: e.g. ``edsr_lab.weights.load_pretrained(...)``; RGB (3 input channels) or
            grey (1). MDSR-style models (a ``scales`` attribute) are called ``model(x, scale)``.
        scale: needed for multi-scale models; default ``model.scale``.
        device: where to run; default the model's parameters' device.

    Returns:
        ``sr(x)``: x float (N, 1 or 3, h, w) in [0, 1] on any device -> float32 (N, same C,
        s*h, s*w) on x's device, in eval mode under ``torch.inference_mode``. A grey batch
        given to an RGB model is repeated to 3 channels and its output turned back into grey
        with ``0.299 R + 0.587 G + 0.114 B``. Values are *not* clamped to [0, 1]. No tiling:
        for very large slices use :func:`edsr_lab.inference.super_resolve` (which clamps).
    """
    channels = input_channels(model)
    scales = getattr(model, "scales", None)
    multiscale = is_multiscale(model)
    if scale is None:
        scale = model_scale(model)
    if multiscale and scale is None:
        raise BadArgumentError(f"model_sr: pass scale= (the model supports scales {scales})")
    run_device = resolve_device(device) if device is not None else model_device(model)

    def sr(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise SizeMismatchError(
                f"sr: expected a batch (N, 1 or 3, h, w), got shape {tuple(x.shape)}"
            )
        grey_to_rgb = x.shape[1] == 1 and channels == 3
        t = x.to(run_device, torch.float32)
        t = t.expand(-1, 3, -1, -1) if grey_to_rgb else t
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                y = model(t, scale) if multiscale else model(t)
        finally:
            model.train(was_training)
        if grey_to_rgb:
            weights = torch.tensor(LUMA, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
            y = (y * weights).sum(dim=1, keepdim=True)
        return y.float().to(x.device).clone()  # clone: leave inference mode for the caller

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
    from tqdm import tqdm

    values = np.asarray(values)
    if values.ndim not in (3, 4):
        raise BadArgumentError(
            f"expected a 3-D (X, Y, Z) or 4-D (X, Y, Z, T) volume, got {values.ndim}-D shape "
            f"{values.shape}"
        )
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise BadArgumentError(f"axis must be 0, 1 or 2 (the slicing axis), got {axis!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BadArgumentError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    slices, lead = _slices_first(values, axis)
    n, h, w = slices.shape
    out_dtype = np.float32 if as_values else np.dtype(mapping.dtype)
    out = np.empty((n, h * scale, w * scale), dtype=out_dtype)
    clipped = ClipCount(where=mapping.where)
    with tqdm(total=n, desc=desc, unit="slice", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            unit, _ = mapping.to_unit(slices[start : start + batch_size])
            y = sr(unit[:, None])
            expect = (unit.shape[0], 1, h * scale, w * scale)
            if tuple(y.shape) != expect:
                raise SizeMismatchError(
                    f"sr turned slices {tuple(unit[:, None].shape)} into {tuple(y.shape)}, "
                    f"expected {expect} for scale {scale}"
                )
            if as_values:
                batch, count = mapping.to_values(y[:, 0])
                out[start : start + len(batch)] = batch
            else:
                batch, count = mapping.decode(y[:, 0])
                out[start : start + len(batch)] = batch
            clipped.add(count)
            bar.update(len(batch))
    return VolumeResult(_restore(out, lead, values.ndim, axis), clipped, mapping, axis)
