"""Grid geometry after upscaling (edsr_lab.geometry): checked against the pixel-centre rule."""

from __future__ import annotations

import numpy as np
import pytest

from edsr_lab.errors import BadArgumentError
from edsr_lab.geometry import (
    dicom_upscaled_geometry,
    nifti_upscaled_affine,
    pixel_centre_offset,
    upscale_grid,
)
from edsr_lab.resize import resize_weights


@pytest.mark.parametrize(("scale", "offset"), [(1, 0.0), (2, -0.25), (3, -1 / 3), (4, -0.375)])
def test_pixel_centre_offset(scale, offset):
    assert pixel_centre_offset(scale) == pytest.approx(offset)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_offset_is_matlab_imresize_alignment(scale):
    """MATLAB's upscaling samples input u = x/s + (1 - 1/s)/2 (1-based): new pixel 0 sits at
    old index -(s-1)/(2s) (0-based), which resize_weights' centre of mass shows."""
    n = 16
    idx, w = resize_weights(n, n * scale, float(scale))
    centre = (idx * w).sum(axis=1)  # interior outputs: the weighted mean is the sample point
    j = np.arange(n * scale)
    interior = (j > 2 * scale) & (j < (n - 3) * scale)
    expected = j / scale + pixel_centre_offset(scale)
    assert np.allclose(centre[interior], expected[interior], atol=1e-12)


def test_the_field_of_view_is_kept():
    """First and last pixel edges are the same before and after (one axis, spacing 1)."""
    n, s = 7, 3
    origin, steps = upscale_grid([10.0, 0.0, 0.0], [[1.0, 0.0, 0.0]], s)
    first_edge_old, last_edge_old = 10.0 - 0.5, 10.0 + (n - 1) + 0.5
    first_edge = origin[0] - steps[0, 0] / 2
    last_edge = origin[0] + (n * s - 1) * steps[0, 0] + steps[0, 0] / 2
    assert first_edge == pytest.approx(first_edge_old) and last_edge == pytest.approx(last_edge_old)


def test_nifti_affine_oblique_with_two_upscaled_axes():
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([2.0, 3.0, 4.0])
    affine[:3, 3] = [5.0, -7.0, 11.0]
    new = nifti_upscaled_affine(affine, 2, axes=(0, 1))
    assert np.allclose(new[:3, 0], affine[:3, 0] / 2) and np.allclose(new[:3, 1], affine[:3, 1] / 2)
    assert np.array_equal(new[:3, 2], affine[:3, 2]) and np.array_equal(new[3], [0, 0, 0, 1])
    # New voxel (0, 0, k) is at old index (-1/4, -1/4, k); new voxel (2, 2, k) at old (3/4, 3/4).
    for new_ijk, old_ijk in (((0, 0, 3), (-0.25, -0.25, 3)), ((2, 2, 0), (0.75, 0.75, 0))):
        assert np.allclose(new @ [*new_ijk, 1], affine @ [*old_ijk, 1])


def test_dicom_position_moves_along_both_direction_cosines():
    position, orientation, spacing = [-125.0, -128.1, 50.0], [1, 0, 0, 0, 1, 0], [0.5, 0.8]
    new_position, new_spacing = dicom_upscaled_geometry(position, orientation, spacing, 2)
    # x (along a row) moves a quarter of the column spacing, y a quarter of the row spacing.
    assert new_position == pytest.approx([-125.0 - 0.8 / 4, -128.1 - 0.5 / 4, 50.0])
    assert new_spacing == [0.25, 0.4]
    # Sagittal slice (rows along +y, columns along -z): the shift follows the cosines.
    sag = [0, 1, 0, 0, 0, -1]
    new_position, _ = dicom_upscaled_geometry([0.0, 0.0, 0.0], sag, [1.0, 1.0], 4)
    assert new_position == pytest.approx([0.0, -0.375, 0.375])


def test_geometry_refuses_bad_arguments():
    with pytest.raises(BadArgumentError, match="whole number"):
        pixel_centre_offset(0)
    with pytest.raises(BadArgumentError, match="whole number"):
        pixel_centre_offset(2.5)
    with pytest.raises(BadArgumentError, match="4x4"):
        nifti_upscaled_affine(np.eye(3), 2, (0, 1))
    with pytest.raises(BadArgumentError, match="among 0, 1, 2"):
        nifti_upscaled_affine(np.eye(4), 2, (0, 3))
    with pytest.raises(BadArgumentError, match="ImageOrientationPatient"):
        dicom_upscaled_geometry([0, 0, 0], [1, 0, 0], [1, 1], 2)
    with pytest.raises(BadArgumentError, match="do not fit"):
        upscale_grid([0, 0], [[1, 0, 0]], 2)
