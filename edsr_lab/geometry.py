"""Where the voxels of a super-resolved image sit in the patient: NIfTI affines, DICOM positions.

A medical image is a grid placed in space. Upscaling by ``s`` keeps the *extent* the pixels
cover (the field of view) and divides the spacing by ``s``; the first pixel's centre moves.

Derivation (one axis; old pixel ``i`` covers [i - 1/2, i + 1/2] in old index units). New
pixel ``j`` has width ``1/s`` and the new grid starts where the old one starts, at -1/2::

    centre of new pixel j = -1/2 + (j + 1/2) / s = j / s - (s - 1) / (2 s)

so the new pixel 0 sits at old index ``-(s - 1) / (2 s)``: -1/4 of the old spacing at x2,
-1/3 at x3, -3/8 at x4. This is the same alignment MATLAB's ``imresize`` uses (output pixel
``x`` samples input ``u = x / s + (1 - 1 / s) / 2`` in 1-based indices, i.e. the pixel
centres of both grids share the image's outer edges), so EDSR trained on bicubic LR
reproduces exactly this grid. A DICOM or NIfTI that keeps the old origin (the old first pixel
centre) shifts the whole image by a quarter of a pixel at x2: small, but a registration or
a measurement of a lesion's position inherits it.

With the world position of old index ``i`` written ``origin + i * step`` (``step``: the
spacing along the axis times its direction cosine), the new grid has::

    new_step = step / s
    new_origin = origin - (s - 1) / (2 s) * step      (summed over every upscaled axis)

* NIfTI: ``step`` of array axis k is column k of the 4x4 affine; :func:`nifti_upscaled_affine`.
* DICOM: ImagePositionPatient is the centre of the first pixel (row 0, column 0); the first
  three ImageOrientationPatient values are the direction of increasing *column* index (along
  a row), the last three that of increasing *row* index, and PixelSpacing is (row spacing,
  column spacing) = (the step between rows, the step between columns); see DICOM PS3.3
  C.7.6.2.1.1. :func:`dicom_upscaled_geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edsr_lab.errors import BadArgumentError
from edsr_lab.validate import check_scale

__all__ = [
    "dicom_upscaled_geometry",
    "nifti_upscaled_affine",
    "pixel_centre_offset",
    "upscale_grid",
]


def pixel_centre_offset(scale: int) -> float:
    """Old-index position of the new pixel 0's centre: ``-(s - 1) / (2 s)`` (-0.25 at x2)."""
    s = check_scale(scale)
    return -(s - 1) / (2 * s)


def upscale_grid(
    origin: Sequence[float] | np.ndarray,
    steps: Sequence[Sequence[float]] | np.ndarray,
    scale: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Move a grid's origin and divide its steps for an upscale by ``scale``.

    Args:
        origin: world position (3,) of the centre of pixel (0, 0[, 0]).
        steps: (k, 3) world step of each *upscaled* axis (spacing times direction).
        scale: whole number >= 1.

    Returns:
        ``(new_origin, new_steps)``: float64 (3,) and (k, 3); see the module docstring.
    """
    s = check_scale(scale)
    origin = np.asarray(origin, dtype=np.float64)
    steps = np.atleast_2d(np.asarray(steps, dtype=np.float64))
    if origin.shape != (steps.shape[1],):
        raise BadArgumentError(
            f"origin {origin.shape} and steps {steps.shape} do not fit: steps must be (k, "
            f"{origin.shape[0] if origin.ndim == 1 else '?'})"
        )
    new_origin = origin + pixel_centre_offset(s) * steps.sum(axis=0)
    return new_origin, steps / s


def nifti_upscaled_affine(affine: np.ndarray, scale: int, axes: Sequence[int]) -> np.ndarray:
    """The 4x4 voxel-to-world affine after upscaling array ``axes`` by ``scale``.

    Columns ``axes`` are divided by ``scale`` (the voxel size shrinks along them) and the
    translation (column 3) moves by ``-(s-1)/(2s)`` times each of those columns.

    Args:
        affine: (4, 4) array, e.g. ``nibabel.load(path).affine``.
        scale: whole number >= 1.
        axes: the upscaled array axes among 0, 1, 2 (the in-plane axes of the slices).

    Returns:
        float64 (4, 4).
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise BadArgumentError(f"affine must be 4x4, got shape {affine.shape}")
    axes = sorted({int(a) for a in axes})
    if not axes or any(a not in (0, 1, 2) for a in axes):
        raise BadArgumentError(f"axes must be among 0, 1, 2, got {axes}")
    origin, steps = upscale_grid(affine[:3, 3], affine[:3, axes].T, scale)
    out = affine.copy()
    out[:3, axes] = steps.T
    out[:3, 3] = origin
    return out


def dicom_upscaled_geometry(
    image_position: Sequence[float],
    image_orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    scale: int,
) -> tuple[list[float], list[float]]:
    """ImagePositionPatient and PixelSpacing of a slice upscaled in-plane by ``scale``.

    Args:
        image_position: ImagePositionPatient (3 values, mm): centre of the first pixel.
        image_orientation: ImageOrientationPatient (6 values): row direction (along
            increasing column index), then column direction (along increasing row index).
        pixel_spacing: PixelSpacing (row spacing, column spacing) in mm.
        scale: whole number >= 1.

    Returns:
        ``(new_position, new_spacing)`` as lists of floats (3 and 2 values).
    """
    position = np.asarray(image_position, dtype=np.float64)
    orientation = np.asarray(image_orientation, dtype=np.float64)
    spacing = np.asarray(pixel_spacing, dtype=np.float64)
    if position.shape != (3,) or orientation.shape != (6,) or spacing.shape != (2,):
        raise BadArgumentError(
            "expected ImagePositionPatient (3 values), ImageOrientationPatient (6) and "
            f"PixelSpacing (2), got {position.size}, {orientation.size} and {spacing.size}"
        )
    row_dir, col_dir = orientation[:3], orientation[3:]
    row_spacing, col_spacing = spacing
    # Moving one column goes col_spacing along the row direction; one row, row_spacing
    # along the column direction.
    steps = np.stack([row_dir * col_spacing, col_dir * row_spacing])
    new_position, _ = upscale_grid(position, steps, scale)
    return new_position.tolist(), (spacing / check_scale(scale)).tolist()
