"""One place that checks image tensors, so every module fails the same way.

The package's tensor convention is float (C, H, W) or (N, C, H, W) with values in [0, 1].
``resize``, ``metrics``, ``io``, the models and ``evaluate`` all call these helpers first,
so the same mistake gets the same exception type and the same advice everywhere:

* not a tensor (a numpy array, a PIL image, a list) -> :class:`~edsr_lab.errors.ImageTypeError`
* an integer dtype (0-255 or 0-65535 pixels)        -> :class:`~edsr_lab.errors.ImageTypeError`
* wrong number of dimensions, an empty image        -> :class:`~edsr_lab.errors.ImageInputError`
* NaN or inf anywhere                               -> :class:`~edsr_lab.errors.NonFiniteImageError`

(``ImageTypeError`` is both a ``TypeError`` and a ``ValueError``; all of them are
:class:`~edsr_lab.errors.EdsrLabError`.) Modules with extra rules (a model's channel count,
two images of the same shape) add their own checks after these, raising subclasses of
``ImageInputError``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from edsr_lab.errors import (
    BadArgumentError,
    BadArgumentTypeError,
    ImageInputError,
    ImageTypeError,
    NonFiniteImageError,
)

__all__ = ["check_finite", "check_image", "check_scale", "check_tensor"]


def check_scale(scale: object, name: str | None = None) -> int:
    """``scale`` as an ``int``: a whole number >= 1 (an int, a NumPy integer, or an
    integral float such as 2.0). The one check of a scale's value; which scales a *model*
    serves, and the scale to run it at, is :func:`edsr_lab.inference.resolve_scale`.

    Raises:
        BadArgumentError: 0, 2.5, True, ... (``"name: scale 0: the scale must be ..."``);
            BadArgumentTypeError (also a TypeError) for what is not a number ("2", [2]).
    """
    value = scale
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        kind = BadArgumentError if isinstance(value, numbers.Real) else BadArgumentTypeError
        where = f"{name}: " if name else ""
        raise kind(
            f"{where}scale {scale!r}: the scale must be a whole number >= 1, e.g. --scale 2 "
            "(scale=2 from Python)"
        )
    return int(value)


def check_tensor(x: object, name: str, layout: str = "(C, H, W) or (N, C, H, W)") -> torch.Tensor:
    """Raise :class:`ImageTypeError` unless ``x`` is a float ``torch.Tensor``.

    Args:
        x: the value to check.
        name: how to call it in the message, e.g. ``"psnr: sr"``.
        layout: the expected shape, for the message.
    """
    if not isinstance(x, torch.Tensor):
        if type(x).__module__ == "numpy":
            raise ImageTypeError(
                f"{name} must be a torch.Tensor shaped {layout}, got a numpy array. Convert it "
                "with torch.from_numpy(a) (for an H x W x C image also .permute(2, 0, 1), so "
                "that the last two axes are height and width)."
            )
        raise ImageTypeError(
            f"{name} must be a torch.Tensor shaped {layout} with values in [0, 1], got "
            f"{type(x).__name__}; load images with edsr_lab.io.load_image(path)."
        )
    if not x.is_floating_point():
        raise ImageTypeError(
            f"{name} has dtype {x.dtype}; a float tensor with values in [0, 1] is expected. "
            "Convert it first: x.float() / 255 (8-bit) or x.float() / 65535 (16-bit)."
        )
    return x


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise :class:`NonFiniteImageError` if ``x`` (a tensor or numpy array) holds NaN or inf.

    One such pixel would turn a whole model output (every conv mixes neighbours, and
    MeanShift/normalisation spread it) or a PSNR into NaN without any error, so it is
    reported here, with its count. Reads one value back from the device.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind != "f" or np.isfinite(x).all():
            return
        n_nan, n_inf, size = int(np.isnan(x).sum()), int(np.isinf(x).sum()), x.size
    else:
        if x.device.type == "meta" or x.numel() == 0 or bool(torch.isfinite(x).all()):
            return
        n_nan, n_inf, size = int(torch.isnan(x).sum()), int(torch.isinf(x).sum()), x.numel()
    raise NonFiniteImageError(
        f"{name} holds non-finite values ({n_nan} NaN, {n_inf} infinite, of {size}); "
        "pixels must be finite numbers in [0, 1]. Fix what produced them (a diverged model, "
        "a division by zero, a float file with missing data), or replace them, e.g. "
        "torch.nan_to_num(x, nan=0.0).clamp(0, 1)."
    )


def check_image(
    x: object,
    name: str,
    *,
    ndims: Sequence[int] | None = (3, 4),
    layout: str = "(C, H, W) or (N, C, H, W)",
    finite: bool = True,
) -> torch.Tensor:
    """Check an image tensor and return it unchanged.

    Args:
        x: should be a float tensor in the package's convention.
        name: how to call it in messages, e.g. ``"imresize: x"``.
        ndims: allowed numbers of dimensions; ``None`` accepts any with at least 2 (H, W).
        layout: the expected shape, for messages, e.g. ``"(..., H, W)"``.
        finite: also check for NaN/inf (one read-back from the device).

    Raises:
        ImageTypeError: not a tensor, or not a float dtype.
        ImageInputError: wrong number of dimensions, or an empty image (H or W is 0).
        NonFiniteImageError: NaN or infinite values (with ``finite=True``).
    """
    x = check_tensor(x, name, layout)
    if ndims is None:
        if x.dim() < 2:
            raise ImageInputError(
                f"{name} must have at least 2 dimensions {layout}, got shape {tuple(x.shape)}."
            )
    elif x.dim() not in ndims:
        raise ImageInputError(f"{name} must be shaped {layout}, got shape {tuple(x.shape)}.")
    if 0 in x.shape:
        raise ImageInputError(f"{name} is an empty image (shape {tuple(x.shape)}).")
    if finite:
        check_finite(x, name)
    return x
