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
import copy
import math
import numbers
import operator
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.config import resolve_device
from edsr_lab.data.patches import dihedral, inverse_dihedral
from edsr_lab.errors import (
    BadArgumentError,
    BadArgumentTypeError,
    DeviceError,
    SizeMismatchError,
)
from edsr_lab.resize import imresize
from edsr_lab.validate import check_image, check_scale

__all__ = [
    "LUMA",
    "MEMORY_FRACTION",
    "MIN_TILE",
    "available_memory",
    "bicubic_upscale",
    "check_tile",
    "estimate_forward_bytes",
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

#: Share of the free memory one forward pass may be planned to use; the rest covers
#: allocator fragmentation, convolution workspaces and the estimate's error.
MEMORY_FRACTION = 0.75


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
    scale = check_scale(scale)
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


def _whole_number(value: Any, name: str, low: int, example: str) -> int:
    """``value`` as an int >= ``low`` (an integral float such as 8.0 is accepted), else one
    BadArgumentError (BadArgumentTypeError for what is not a number at all)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    elif not isinstance(value, (bool, numbers.Real)):
        try:  # a numpy integer or a 0-dim integer tensor is fine
            value = operator.index(value)
        except TypeError:
            raise BadArgumentTypeError(
                f"{name}={value!r} ({type(value).__name__}): {name} must be a whole number "
                f">= {low}, e.g. {example}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise BadArgumentError(
            f"{name}={value!r} must be >= {low} and a whole number, e.g. {example}"
        )
    return int(value)


def check_tile(tile: Any, tile_overlap: Any = 16) -> tuple[int | None, int]:
    """``(tile, tile_overlap)`` as ints, checked before any image is read.

    Raises:
        BadArgumentError: ``tile`` is not None or a whole number >= 1 (``--tile 0``,
            ``tile=2.5``, ``tile=True``), or ``tile_overlap`` is not a whole number >= 0
            (BadArgumentTypeError, also a TypeError, for a value that is no number at all).
    """
    if tile is not None:
        tile = _whole_number(tile, "tile", 1, "--tile 256 (tile=256 from Python) or no tiling")
    overlap = _whole_number(tile_overlap, "tile_overlap", 0, "tile_overlap=16")
    return tile, overlap


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


# ----------------------------------------------------------------------------------------
# Memory: estimate a forward pass before running it, tile when it would not fit
# ----------------------------------------------------------------------------------------

#: Side of the probe input (LR pixels): small, as it costs a real forward pass (0.2 s
#: for the 43M-parameter EDSR on a CPU core), and enough for 3 halvings.
_PROBE = 8
#: The probe counts tensors only; allocator and convolution (mkldnn/cuDNN) buffers come
#: on top (about 12% for EDSR on a CPU, measured with the peak resident size).
_ESTIMATE_MARGIN = 1.25
# Bytes per LR pixel of one forward: probed once per model (per architecture and config
# for ours, which are rebuilt often: a notebook cell, a checkpoint load).
_PER_PIXEL: weakref.WeakKeyDictionary[nn.Module, dict[tuple, float | None]] = (
    weakref.WeakKeyDictionary()
)
_PER_PIXEL_BY_CONFIG: dict[tuple, float | None] = {}


def _read_int(path: str, key: str | None = None) -> int | None:
    """An integer from a /proc or /sys file (``key``: the line starting with it, in kB)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    if key is None:
        word = text.strip()
        return int(word) if word.isdigit() else None
    for line in text.splitlines():
        if line.startswith(key):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return None


def available_memory(device: str | torch.device) -> int | None:
    """Bytes free for new tensors on ``device``; None where it cannot be told.

    CUDA: ``torch.cuda.mem_get_info`` plus what PyTorch's cache holds unused. CPU: the
    kernel's MemAvailable (/proc/meminfo, else free pages from ``os.sysconf``), lowered to
    what the container's memory limit leaves (cgroup v2 or v1).
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0))
    if device.type != "cpu":
        return None
    free = _read_int("/proc/meminfo", "MemAvailable:")
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not on this system
            return None
    for limit_file, used_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, used = _read_int(limit_file), _read_int(used_file)
        if limit is not None and used is not None and limit < 2**60:  # else: no limit
            free = min(free, max(limit - used, 0))
    return int(free)


# The meter of the probe running in this thread (probes in other threads count apart).
_ACTIVE = threading.local()


class _PeakMeter:
    """Counts the bytes of the tensors a forward creates that are alive at once (by
    storage, so views and in-place results count once) and keeps the peak."""

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.now = self.peak = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.now -= self.size.pop(key)

    def track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata  # one id per storage, shared by its views
        if key not in self.refs:
            self.refs[key], self.size[key] = 0, storage.nbytes()
            self.now += self.size[key]
            self.peak = max(self.peak, self.now)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)


def _results(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _results(item)]
    return []


class _Counted(torch.Tensor):
    """A tensor whose every result (a ``torch`` function, method or operator on it) is
    counted by the active :class:`_PeakMeter`; results are ``_Counted`` again."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        out = super().__torch_function__(func, types, args, kwargs or {})
        meter = getattr(_ACTIVE, "meter", None)
        if meter is not None:
            for t in _results(out):
                meter.track(t)
        return out


def _probe_per_pixel(model: nn.Module, channels: int, scale: int) -> float | None:
    """Peak bytes per LR pixel of one forward of ``model``: counted on a run on an
    8x8 input. None if the model cannot run on it.

    The run is on a shallow copy (parameters shared, nothing copied) through ``.forward``,
    so what the model records and hooks that spy on its calls do not see it.
    """
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    meter = _PeakMeter()
    try:
        shadow = copy.deepcopy(model, shared).eval()
        device = model_device(model)
        with torch.inference_mode():
            x = torch.zeros(1, channels, _PROBE, _PROBE, device=device).as_subclass(_Counted)
            _ACTIVE.meter = meter
            y = shadow.forward(x, scale) if _takes_scale(shadow) else shadow.forward(x)
            del y
    # Any model may be given: one that cannot run on a tiny input, or that deepcopy
    # refuses, simply gets no estimate (and so no automatic tiling).
    except Exception:  # noqa: BLE001
        return None
    finally:
        _ACTIVE.meter = None
    return meter.peak * _ESTIMATE_MARGIN / (_PROBE * _PROBE)


def estimate_forward_bytes(
    model: nn.Module, lr_shape: tuple[int, ...], scale: int | None = None
) -> int | None:
    """Peak bytes of the tensors one forward pass of ``model`` creates on an input of
    ``lr_shape`` ((N, C, h, w) or (C, h, w)), output included, with a 25% margin for
    allocator and convolution buffers; None if the model cannot be probed.

    Measured once per model, on a forward pass on an 8x8 input where every tensor
    created is counted while it lives, and scaled by the number of pixels, which holds
    for convolutional networks.
    """
    shape = (1, *lr_shape) if len(lr_shape) == 3 else tuple(lr_shape)
    n, c, h, w = shape
    scale = resolve_scale(model, scale)
    config = getattr(model, "config", None)
    if isinstance(config, Mapping):
        cache, key = _PER_PIXEL_BY_CONFIG, (type(model), repr(sorted(config.items())), scale, c)
    else:
        cache, key = _PER_PIXEL.setdefault(model, {}), (scale, c)
    if key not in cache:
        cache[key] = _probe_per_pixel(model, c, scale)
    per_pixel = cache[key]
    return None if per_pixel is None else int(math.ceil(per_pixel * n * h * w))


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _fit_in_memory(
    model: nn.Module,
    x_shape: tuple[int, int, int, int],
    scale: int,
    device: torch.device,
    tile: int | None,
    overlap: int,
    ensemble: int,
) -> tuple[int | None, bool]:
    """The tile to run with and whether the ensemble may batch its transforms, so that the
    estimated peak fits :data:`MEMORY_FRACTION` of the free memory (said on stderr when
    tiles are chosen); DeviceError before anything runs when even small tiles do not fit.
    Without an estimate or a budget, (tile, True): today's behaviour."""
    n, c, h, w = x_shape
    free = available_memory(device)
    per_image = estimate_forward_bytes(model, (1, c, h, w), scale) if free is not None else None
    if per_image is None or free is None:
        return tile, True
    per_pixel = per_image / (h * w)
    budget = free * MEMORY_FRACTION
    # Input, the stitched output, its copy at the end (and the ensemble's sum and one
    # transformed output): held whatever the tile size.
    out_bytes = n * c * h * w * scale * scale * 4
    fixed = n * c * h * w * 4 + out_bytes * (2 + 2 * (ensemble > 1))

    def need(side: int | None, batch: int) -> float:
        th, tw = (
            (h, w) if side is None else (min(h, side + 2 * overlap), min(w, side + 2 * overlap))
        )
        return fixed + per_pixel * batch * n * th * tw

    batched = ensemble > 1 and tile is None and need(None, ensemble) <= budget
    if need(tile, 1) <= budget:
        return tile, batched
    room = (budget - fixed) / (per_pixel * n)
    side = int(math.isqrt(int(room))) - 2 * overlap if room > 0 else 0
    if side < MIN_TILE:
        raise DeviceError(
            f"super_resolve: a {h}x{w} input needs about {_gib(need(MIN_TILE, 1))} even in "
            f"{MIN_TILE}x{MIN_TILE} tiles (its output alone is {_gib(out_bytes)}), but about "
            f"{_gib(free)} of {device} memory is free; free memory, or use a smaller image "
            "or another device"
        )
    print(
        f"super_resolve: a {h}x{w} input needs about {_gib(need(tile, 1))} "
        f"{'in one pass' if tile is None else f'in {tile}x{tile} tiles'} but about "
        f"{_gib(free)} of {device} memory is free; running it in tiles of {side}x{side} LR "
        "pixels (pass tile= / --tile to choose the size)",
        file=sys.stderr,
    )
    return side, False


def _free_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_cpu_oom(err: BaseException) -> bool:
    """True for the CPU allocator's failures (MemoryError, or torch's RuntimeError)."""
    text = str(err).lower()
    return (
        isinstance(err, MemoryError)
        or "can't allocate memory" in text
        or ("not enough memory" in text)
    )


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
        """:meth:`run_tiled`, halving the tiles on CUDA out-of-memory (said on stderr); the
        CPU running out of memory is one DeviceError (the next image may still fit)."""
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
            except (MemoryError, RuntimeError) as err:
                if not _is_cpu_oom(err):
                    raise
                size = f"{t.shape[2]}x{t.shape[3]}"
                raise DeviceError(
                    f"super_resolve: out of memory on a {size} input"
                    f"{f' in {self.tile}x{self.tile} tiles' if self.tile else ''} on the CPU; "
                    "pass a smaller tile= (--tile), free memory, or use a smaller image"
                ) from None

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
                except (MemoryError, RuntimeError) as err:
                    if not (isinstance(err, torch.cuda.OutOfMemoryError) or _is_cpu_oom(err)):
                        raise
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
    clamp: bool = True,
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
        clamp: clamp the output to [0, 1] (default). ``clamp=False`` returns what the model
            gives, overshoot included, so that a caller mapping values back to physical units
            can count what falls outside the range (:mod:`edsr_lab.intensity`, rule 4).

    Out of memory: if CUDA runs out of memory (``torch.cuda.OutOfMemoryError``), the input
    is processed again in tiles half as large (the whole image first counts as one tile),
    halving until it fits or tiles would be smaller than ``MIN_TILE``; each fall-back is
    printed on stderr.

    Returns:
        float32 tensor shaped like ``lr`` but ``scale`` times larger in H and W, clamped to
        [0, 1] (unless ``clamp=False``), on ``lr``'s device. Not rounded;
        :func:`edsr_lab.evaluate.evaluate` rounds to 8 bits as the paper does.

    The model runs in eval mode under ``torch.inference_mode``; its previous mode
    (train/eval) is restored afterwards.
    """
    # Type, dtype, dimensions (the model checks NaN/inf and the value range in eval mode).
    check_image(lr, "super_resolve: lr", finite=False)
    tile, tile_overlap = check_tile(tile, tile_overlap)
    single = lr.dim() == 3
    x = lr.unsqueeze(0) if single else lr
    _check_channels(model, x, tuple(lr.shape))
    scale = resolve_scale(model, scale)
    device = resolve_device(device) if device is not None else model_device(model)
    if amp and device.type != "cuda":
        raise DeviceError(f"super_resolve: amp=True (bf16) needs a CUDA device, not {device}")
    # Before anything runs: tiles when the whole image would not fit (said on stderr).
    tile, batch_fits = _fit_in_memory(
        model, tuple(x.shape), scale, device, tile, tile_overlap, 8 if self_ensemble else 1
    )
    forward = _Forward(model, scale, tile, tile_overlap)
    model.to(device)

    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    try:
        with torch.inference_mode(), autocast:
            xd = x.to(device, torch.float32)
            if self_ensemble:
                y = forward.ensemble(xd, ensemble_batch and batch_fits)
            else:
                y = forward.run_safe(xd)
            y = (y.clamp_(0, 1) if clamp else y).to(lr.device)
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
    ``clamp=False`` (passed on) keeps the overshoot, for counting it.
    """
    if input_channels(model) == 1:
        return super_resolve(model, grey, scale=scale, **kwargs)
    rgb = super_resolve(model, grey.expand(3, -1, -1), scale=scale, **kwargs)
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    grey_out = (rgb * weights).sum(dim=0, keepdim=True)
    return grey_out.clamp_(0.0, 1.0) if kwargs.get("clamp", True) else grey_out


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
