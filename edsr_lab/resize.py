"""MATLAB-compatible bicubic resizing, and the paper's way of making LR images.

EDSR (Lim et al., CVPRW 2017) trains and evaluates on LR images made with MATLAB's
``imresize(HR, 1/s, 'bicubic')``: DIV2K's ``*_LR_bicubic`` files and the benchmark LR
images were all made that way. PIL, OpenCV and ``torch.nn.functional.interpolate`` use
other kernels, borders or antialiasing filters, and their LR images give different PSNR
numbers. This module re-implements MATLAB's algorithm exactly (to float64 rounding):

* the cubic kernel of Keys (1981) with ``a = -0.5``;
* when shrinking (scale < 1) with antialiasing, the kernel is stretched to
  ``h(x) = scale * cubic(scale * x)``, so it is ``4 / scale`` input pixels wide;
* output length ``ceil(in_len * scale)`` (or the ``size`` you ask for, and then
  ``scale = out_len / in_len`` per dimension);
* output pixel ``x`` (1-based) samples the input at ``u = x / scale + 0.5 * (1 - 1 / scale)``
  (pixel centres aligned, like ``align_corners=False``);
* ``ceil(kernel_width) + 2`` taps starting at ``floor(u - kernel_width / 2)``; weights
  normalised to sum to 1; taps falling outside the image are mirrored symmetrically
  (``[1..n, n..1]`` repeated, so the edge pixel is repeated once);
* the dimension with the smaller scale is resized first (ties: rows first).

Resizing is separable, so each dimension is a small (out_len x taps) table of indices
and weights, built once per call on the input's device and applied to the whole batch.

Reference: MATLAB ``imresize.m`` (Image Processing Toolbox); its documented behaviour is
mirrored by Octave's image package and by the Python ports used in SR research code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from edsr_lab.errors import BadArgumentError, ImageInputError, ImageTypeError
from edsr_lab.validate import check_image, check_scale

__all__ = ["cubic", "degrade", "imresize", "modcrop", "resize_weights"]

# Outputs are produced in blocks of this many: each block only reads a short window of
# the input (about _BLOCK / scale + taps pixels), so a resize costs O(window) per output
# pixel instead of O(in_len) for one dense (out_len x in_len) matrix.
_BLOCK = 64


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``).

    Args:
        x: float64 array of distances, in input pixels.

    Returns:
        Kernel values, same shape; zero for ``|x| > 2``.
    """
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def resize_weights(
    in_len: int, out_len: int, scale: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: the taps and weights of one resized dimension.

    Args:
        in_len: input length (>= 1).
        out_len: output length (>= 1).
        scale: output/input scale used for the kernel and the coordinate mapping.
        antialiasing: stretch the kernel when ``scale < 1`` (MATLAB's default).

    Returns:
        ``(indices, weights)``: int64 array (out_len, taps) of 0-based input indices
        (already mirrored into ``[0, in_len)``) and float64 array (out_len, taps) whose
        rows sum to 1. Columns whose weight is zero for every output are dropped.
    """
    if scale < 1 and antialiasing:
        kernel_width = 4.0 / scale

        def kernel(d: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * d)

    else:
        kernel_width = 4.0
        kernel = cubic
    # 1-based output coordinates mapped into 1-based input coordinates, as in MATLAB.
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric border: aux = [1..n, n..1]; idx = aux(mod(idx - 1, 2n) + 1), 0-based here.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)
    return idx0[:, keep], weights[:, keep]


def _check_float_tensor(x: object, name: str) -> torch.Tensor:
    # NaN/inf are refused too: one would spread over every output pixel its taps reach.
    return check_image(x, name, ndims=None, layout="(..., C, H, W) or (H, W)")


def _as_pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise BadArgumentError(f"{name} must be a number or a pair (rows, cols), got {value!r}.")


def _output_geometry(
    in_hw: tuple[int, int],
    scale: float | Sequence[float] | None,
    size: Sequence[int] | None,
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Return ((out_h, out_w), (scale_h, scale_w)) the way MATLAB derives them."""
    if (scale is None) == (size is None):
        raise BadArgumentError("imresize: give exactly one of `scale` or `size=(out_h, out_w)`.")
    if scale is not None:
        scales = _as_pair(scale, "scale")
        for s in scales:
            if not math.isfinite(s) or s <= 0:
                raise BadArgumentError(f"imresize: scale must be finite and > 0, got {scale!r}.")
        # MATLAB: outputSize = ceil(scale * inputSize). With scale = 1/s and a modcropped
        # input this is exactly H/s.
        # (ceil of a positive length is always >= 1.)
        out = tuple(int(math.ceil(n * s)) for n, s in zip(in_hw, scales, strict=True))
        return (out[0], out[1]), scales
    if not (isinstance(size, Sequence) and len(size) == 2):
        raise BadArgumentError(f"imresize: size must be a pair (out_h, out_w), got {size!r}.")
    out_hw: list[int] = []
    for v in size:
        if isinstance(v, bool) or not float(v).is_integer():
            raise BadArgumentError(f"imresize: size must hold whole numbers, got {size!r}.")
        if int(v) < 1:
            raise BadArgumentError(f"imresize: size must be >= 1 in both dimensions, got {size!r}.")
        out_hw.append(int(v))
    return (out_hw[0], out_hw[1]), (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])


def _resize_first_dim(x: torch.Tensor, idx: np.ndarray, w: np.ndarray) -> torch.Tensor:
    """Apply one dimension's (indices, weights) table along axis 0 of a 2-D tensor.

    x is (in_len, M); returns (out_len, M). The outputs are split into blocks of _BLOCK;
    block b reads the input rows [lo_b, lo_b + win) and multiplies them by a small dense
    (_BLOCK x win) matrix, so everything is one batched matrix multiply (no Python loop
    over pixels). Mirrored taps that land on the same input pixel add up, exactly as in
    MATLAB's sparse-matrix formulation.
    """
    in_len = x.shape[0]
    out_len, taps = idx.shape
    n_blocks = -(-out_len // _BLOCK)
    pad = n_blocks * _BLOCK - out_len
    # Padding outputs reuse the last row's indices with zero weight.
    idx_p = np.concatenate([idx, np.repeat(idx[-1:], pad, axis=0)]).reshape(n_blocks, -1)
    w_p = np.concatenate([w, np.zeros((pad, taps))]).reshape(n_blocks, -1)
    lo = idx_p.min(axis=1)
    win = int((idx_p.max(axis=1) - lo).max()) + 1
    if n_blocks == 1 or 2 * win >= in_len:
        # The windows would cover most of the input: one dense matrix is simpler.
        n_blocks, win, block = 1, in_len, out_len
        lo = np.zeros(1, dtype=np.int64)
        idx_p, w_p = idx.reshape(1, -1), w.reshape(1, -1)
    else:
        block = _BLOCK
        # Shift windows that would run past the end back inside the image.
        lo = np.minimum(lo, in_len - win)
    rows = idx_p - lo[:, None]  # (n_blocks, block * taps), in [0, win)
    cols = np.broadcast_to(np.repeat(np.arange(block), taps), rows.shape)
    blk = np.broadcast_to(np.arange(n_blocks)[:, None], rows.shape)
    mats = np.zeros((n_blocks, block, win))
    np.add.at(mats, (blk, cols, rows), w_p)
    mats_t = torch.from_numpy(mats).to(device=x.device, dtype=x.dtype)
    if n_blocks == 1:
        return mats_t[0] @ x
    window_idx = torch.from_numpy((lo[:, None] + np.arange(win)).reshape(-1)).to(x.device)
    windows = x.index_select(0, window_idx).view(n_blocks, win, -1)
    out = torch.bmm(mats_t, windows)  # (n_blocks, block, M)
    return out.reshape(n_blocks * block, -1)[:out_len]


def _round_uint8(x255: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 255] and round halves up: MATLAB's conversion to uint8."""
    return torch.floor(x255.clamp(0.0, 255.0) + 0.5)


def imresize(
    x: torch.Tensor,
    scale: float | Sequence[float] | None = None,
    *,
    size: Sequence[int] | None = None,
    antialiasing: bool = True,
    uint8: bool = False,
) -> torch.Tensor:
    """Resize like MATLAB's ``imresize(x, scale, 'bicubic')``.

    Args:
        x: float tensor shaped (..., C, H, W) or (H, W), any device. Values are usually
            in [0, 1] but any range works (the operation is linear; nothing is clamped,
            so results can overshoot [0, 1] slightly near edges, as in MATLAB).
            Tensors only: numpy arrays are refused, because their H x W x C layout would
            silently be resized along the wrong axes.
        scale: output/input size ratio, one number or a pair (rows, cols). Output size is
            ``ceil(H * scale)`` x ``ceil(W * scale)``. Give either ``scale`` or ``size``.
        size: output (height, width); then scale = out / in per dimension (as MATLAB's
            ``imresize(x, [h w])``).
        antialiasing: widen the kernel when shrinking (MATLAB's default True).
        uint8: reproduce MATLAB on a *uint8* image bit for bit: x is rounded to 8-bit
            levels (k / 255, like ``im2uint8``) and so is the result of each 1-D pass,
            because MATLAB keeps the uint8 class between its row and column passes.
            Computed in float64. This is how DIV2K's LR PNGs were made from 8-bit HR
            PNGs. A pipeline that resizes in float and rounds once at the end (as
            BasicSR's ``imresize`` followed by ``round`` does, or
            ``metrics.quantize(imresize(x, 1 / s))`` here) gives a different LR image: measured with
            :func:`degrade` on the 12 bundled 8-bit sample images (as RGB), 14.6 % (x2),
            10.6 % (x3) and 10.1 % (x4) of the LR values differ, mostly by 1 level, and up
            to 7 levels (x2; 4 at x3, 6 at x4) next to saturated edges: there the first
            pass overshoots [0, 255], MATLAB's uint8 clips the overshoot before the second
            pass and the float pipeline keeps it. The bicubic-baseline PSNR moves by only
            thousandths of a dB (notebook 01, section 2).

    Returns:
        Tensor of the same dtype and device, shaped (..., C, out_h, out_w). float64 and
        float32 are computed in their own precision; float16/bfloat16 are computed in
        float32 and cast back (``uint8=True``: computed in float64, cast back).

    Raises:
        ImageTypeError: x is not a floating-point torch tensor (also a TypeError).
        ImageInputError: fewer than 2 dimensions or an empty image; NonFiniteImageError
            (a subclass) if x holds NaN or inf.
        BadArgumentError: non-positive or non-finite scale, a size that would be 0
            pixels, or both/neither of ``scale`` and ``size`` (all ValueErrors).
    """
    x = _check_float_tensor(x, "imresize: x")
    in_hw = (int(x.shape[-2]), int(x.shape[-1]))
    out_hw, scales = _output_geometry(in_hw, scale, size)
    orig_dtype = x.dtype
    if uint8:
        # Work on the 0..255 scale like MATLAB does with uint8 data, so that exact halves
        # (common with simple scales) round the same way: 1/255 is not exact in binary.
        x = _round_uint8(x.double() * 255.0)
    elif orig_dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    # MATLAB resizes the dimension with the smaller scale first (stable sort: rows first
    # on ties); the result is the same up to rounding, and shrinking first is cheaper.
    order = sorted(range(2), key=lambda d: scales[d])
    for dim in order:
        axis = x.dim() - 2 + dim
        if scales[dim] == 1.0 and out_hw[dim] == in_hw[dim]:
            continue  # cubic(0) = 1 and cubic(+-1) = cubic(+-2) = 0: the identity.
        idx, w = resize_weights(in_hw[dim], out_hw[dim], scales[dim], antialiasing)
        moved = x.movedim(axis, 0)
        rest = moved.shape[1:]
        out = _resize_first_dim(moved.reshape(in_hw[dim], -1), idx, w)
        x = out.reshape(out_hw[dim], *rest).movedim(0, axis)
        if uint8:
            x = _round_uint8(x)
    if uint8:
        x = x / 255.0
    x = x.contiguous()
    return x.to(orig_dtype) if x.dtype != orig_dtype else x


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (..., H, W) to multiples of ``scale``, keeping the top-left corner.

    Same as MATLAB's ``modcrop`` used to make SR benchmarks: drops the last
    ``H mod scale`` rows and ``W mod scale`` columns. Returns a view (no copy).

    Raises:
        ImageTypeError: x is not a tensor (also a TypeError).
        ImageInputError: the image is smaller than scale; BadArgumentError: scale not a
            whole number >= 1 (both ValueErrors).
    """
    s = check_scale(scale, "modcrop")
    if not isinstance(x, torch.Tensor):
        raise ImageTypeError(f"modcrop: x must be a torch.Tensor, got {type(x).__name__}.")
    if x.dim() < 2:
        raise ImageInputError(f"modcrop: x must be shaped (..., H, W), got {tuple(x.shape)}.")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h < s or w < s:
        raise ImageInputError(f"modcrop: image {h}x{w} is smaller than the scale {s}.")
    return x[..., : h - h % s, : w - w % s]


def degrade(hr: torch.Tensor, scale: int, *, quantize: bool = True) -> torch.Tensor:
    """Make the paper's LR image: MATLAB ``imresize(modcrop(hr, s), 1/s, 'bicubic')``.

    Args:
        hr: float tensor (..., C, H, W) in [0, 1]. It is modcropped here (top-left kept),
            so any size works; the LR is then exactly (H // s, W // s), because
            ``ceil(H' / s) == H' / s`` once H' is a multiple of s.
        scale: whole-number downscaling factor (2, 3, 4, ...).
        quantize: produce 8-bit levels (k / 255) exactly as MATLAB does for a uint8 HR
            image, i.e. ``imresize(..., uint8=True)``: the HR is rounded to 8 bits and
            so is each 1-D pass. This reproduces DIV2K's LR PNGs. False keeps the float
            result of ``imresize(modcrop(hr, s), 1 / s)`` (no clamp, no rounding); how
            much rounding that once differs from the MATLAB way is measured in
            :func:`imresize`'s ``uint8`` note (10-15 % of the values, up to 7 levels).

    Returns:
        LR tensor, same dtype and device as hr, shaped (..., C, H // s, W // s).
    """
    s = check_scale(scale, "degrade")
    hr = _check_float_tensor(hr, "degrade: hr")
    hr = modcrop(hr, s)
    # MATLAB's call is imresize(hr, 1/s); for whole-number s and H a multiple of s,
    # ceil(H * (1/s)) is exactly H // s in float64, so the size is the expected one.
    lr = imresize(hr, 1.0 / s, uint8=quantize)
    return lr.to(hr.dtype)
