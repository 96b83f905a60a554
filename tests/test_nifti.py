"""NIfTI volumes (edsr_lab.nifti) and slice-wise volume SR (edsr_lab.volume)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edsr_lab.errors import (
    BadArgumentError,
    ImageReadError,
    MissingDependencyError,
    OutputExistsError,
    SizeMismatchError,
)
from edsr_lab.geometry import nifti_upscaled_affine
from edsr_lab.intensity import intensity_map
from edsr_lab.volume import dihedral_outputs, model_sr, super_resolve_volume

nib = pytest.importorskip("nibabel")

from edsr_lab.nifti import is_nifti_file, read_nifti, upscale_nifti, write_nifti  # noqa: E402

BUNDLED = Path(nib.__file__).parent / "tests" / "data"


def nearest(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """An exact model: nearest-neighbour upscaling."""
    return F.interpolate(x, scale_factor=scale, mode="nearest")


def _expected(stored: np.ndarray, axis: int, scale: int = 2) -> np.ndarray:
    out = stored
    for a in (0, 1, 2):
        if a != axis:
            out = np.repeat(out, scale, axis=a)
    return out


def _write(tmp_path: Path, data: np.ndarray, *, slope=None, inter=None, name="vol.nii.gz"):
    affine = np.array(
        [[-2.0, 0.0, 0.0, 90.0], [0.0, 2.5, 0.0, -126.0], [0.0, 0.0, 3.0, -72.0], [0, 0, 0, 1]]
    )
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=2)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    path = tmp_path / name
    nib.save(img, str(path))
    return path


def _volume(shape=(10, 12, 4), dtype=np.int16, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-800, 1200, size=shape).astype(dtype)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_exact_through_nifti_with_a_nearest_neighbour_model(tmp_path, axis):
    data = _volume()
    src = _write(tmp_path, data)
    result = upscale_nifti(src, tmp_path / "sr.nii.gz", nearest, 2, axis=axis, progress=False)
    out = read_nifti(result.path)
    assert out.stored.dtype == np.int16 and np.array_equal(out.stored, _expected(data, axis))
    assert result.clipped.clipped == 0 and out.recorded == result.mapping
    src_vol = read_nifti(src)
    axes = [a for a in (0, 1, 2) if a != axis]
    assert np.allclose(out.affine, nifti_upscaled_affine(src_vol.affine, 2, axes))
    zooms = np.array(src_vol.zooms)
    zooms[axes] /= 2
    assert np.allclose(out.zooms, zooms)
    header = out.image.header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 2)
    assert np.allclose(header.get_qform(), header.get_sform(), atol=1e-5)
    assert b"x2 SR" in bytes(header["descrip"]) and b"not for diagnosis" in bytes(header["descrip"])


def test_scaling_and_dtype_are_kept(tmp_path):
    stored = _volume(dtype=np.int16)
    src = _write(tmp_path, stored, slope=0.5, inter=-100.0)
    result = upscale_nifti(src, tmp_path / "sr.nii", nearest, 2, progress=False)
    out = read_nifti(result.path)
    assert (out.slope, out.inter) == (0.5, -100.0)
    assert np.array_equal(out.stored, _expected(stored, 2))
    assert result.mapping.lo == float(stored.min()) * 0.5 - 100.0  # the map is in values
    floats = _volume(dtype=np.int16).astype(np.float32) / 7
    src = _write(tmp_path, floats, name="f.nii.gz")
    out = read_nifti(upscale_nifti(src, tmp_path / "f_sr.nii.gz", nearest, 2, progress=False).path)
    assert out.stored.dtype == np.float32
    assert np.allclose(out.stored, _expected(floats, 2), atol=1e-5 * float(np.abs(floats).max()))


def test_four_d_is_done_volume_by_volume_with_one_map(tmp_path):
    data = _volume(shape=(6, 8, 3, 2))
    data[..., 1] += 300  # the second volume is brighter: one map must cover both
    result = upscale_nifti(
        _write(tmp_path, data), tmp_path / "sr.nii.gz", nearest, 2, progress=False
    )
    out = read_nifti(result.path)
    assert out.stored.shape == (12, 16, 3, 2) and np.array_equal(out.stored, _expected(data, 2))
    assert result.mapping.lo == float(data.min()) and result.mapping.hi == float(data.max())
    assert np.isclose(out.zooms[3], read_nifti(tmp_path / "vol.nii.gz").zooms[3])


def test_bundled_example4d_volume_end_to_end(tmp_path):
    src = BUNDLED / "example4d.nii.gz"
    result = upscale_nifti(src, tmp_path / "sr.nii.gz", nearest, 2, progress=False)
    assert result.shape_in == (128, 96, 24, 2) and result.shape_out == (256, 192, 24, 2)
    out = read_nifti(result.path)
    assert np.array_equal(out.stored, _expected(read_nifti(src).stored, 2))
    assert "0 of" in str(result) and "[0, 1162]" in str(result)


def test_model_outputs_out_of_range_are_clipped_and_counted(tmp_path):
    data = _volume(shape=(4, 4, 2))
    src = _write(tmp_path, data)

    def overshoot(x: torch.Tensor) -> torch.Tensor:
        y = nearest(x)
        y[..., 0, 0] = 1.5  # one pixel per slice far above the range
        y[..., 0, 1] = -0.25
        return y

    result = upscale_nifti(src, tmp_path / "sr.nii.gz", overshoot, 2, progress=False)
    assert (result.clipped.above, result.clipped.below) == (2, 2)
    out = read_nifti(result.path).stored
    assert int(out[0, 0, 0]) == int(data.max()) and int(out[0, 1, 0]) == int(data.min())
    assert "4 of 128 values" in str(result.clipped)


def test_value_range_option_changes_the_map(tmp_path):
    src = _write(tmp_path, _volume())
    auto = upscale_nifti(src, tmp_path / "a.nii.gz", nearest, 2, progress=False)
    named = upscale_nifti(
        src, tmp_path / "b.nii.gz", nearest, 2, value_range="-500,500", progress=False
    )
    assert (auto.mapping.lo, named.mapping.lo) == (float(_volume().min()), -500.0)
    assert named.clipped.clipped == 0  # the input was clipped; the NN model adds nothing
    assert int(read_nifti(named.path).stored.max()) == 500
    with pytest.raises(BadArgumentError, match="Hounsfield"):
        upscale_nifti(src, tmp_path / "c.nii.gz", nearest, 2, value_range="ct", progress=False)
    hu = upscale_nifti(
        src, tmp_path / "d.nii.gz", nearest, 2, value_range="ct", units="HU", progress=False
    )
    assert hu.mapping.units == "HU" and hu.mapping.lo == -1024.0


def test_batches_and_progress_bar(tmp_path, capsys):
    data = _volume(shape=(5, 6, 7))
    calls = []

    def counting(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return nearest(x)

    m = intensity_map(data)
    a = super_resolve_volume(data, counting, 2, m, batch_size=3, progress=False)
    assert calls == [3, 3, 1] and capsys.readouterr().err == ""
    calls.clear()
    b = super_resolve_volume(data, counting, 2, m, batch_size=8, progress=True, desc="vol")
    assert calls == [7] and "vol" in capsys.readouterr().err
    assert np.array_equal(a.values, b.values)
    values = super_resolve_volume(data, nearest, 2, m, as_values=True, progress=False).values
    assert values.dtype == np.float32 and np.allclose(values, _expected(data, 2), atol=1e-3)


def test_volume_refuses_bad_arguments():
    data = _volume()
    m = intensity_map(data)
    with pytest.raises(BadArgumentError, match="3-D"):
        super_resolve_volume(data[0], nearest, 2, m)
    with pytest.raises(BadArgumentError, match="axis"):
        super_resolve_volume(data, nearest, 2, m, axis=3)
    with pytest.raises(BadArgumentError, match="batch_size"):
        super_resolve_volume(data, nearest, 2, m, batch_size=0)
    with pytest.raises(SizeMismatchError, match="expected"):
        super_resolve_volume(data, nearest, 3, m, progress=False)


def test_nifti_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_nifti(tmp_path / "missing.nii.gz")
    (tmp_path / "junk.nii").write_bytes(b"not a nifti header at all")
    with pytest.raises(ImageReadError, match="junk.nii"):
        read_nifti(tmp_path / "junk.nii")
    five = _write(tmp_path, np.zeros((2, 2, 2, 2, 2), np.int16), name="five.nii")
    with pytest.raises(ImageReadError, match="5 dimensions.*four_to_three"):
        read_nifti(five)
    nan = np.zeros((3, 3, 2), np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ImageReadError, match="1 of its 18 voxels are NaN"):
        read_nifti(_write(tmp_path, nan, name="nan.nii"))
    src = _write(tmp_path, _volume())
    (tmp_path / "taken.nii.gz").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="already exists"):
        upscale_nifti(src, tmp_path / "taken.nii.gz", nearest, 2, progress=False)
    with pytest.raises(BadArgumentError, match="upscaled x2"):
        write_nifti(_volume(), read_nifti(src), tmp_path / "w.nii", scale=2, axis=2)
    with pytest.raises(BadArgumentError, match=".nii or .nii.gz"):
        write_nifti(_volume(), read_nifti(src), tmp_path / "w.img", scale=1, axis=2)


def test_missing_nibabel_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[nifti\]"'):
        read_nifti(tmp_path / "any.nii.gz")


def test_is_nifti_file(tmp_path):
    assert is_nifti_file("brain.nii") and is_nifti_file("BRAIN.NII.GZ")
    assert not is_nifti_file(tmp_path / "brain.png")
    src = _write(tmp_path, _volume(), name="plain.nii")
    renamed = tmp_path / "no_suffix"
    renamed.write_bytes(src.read_bytes())
    assert is_nifti_file(renamed)
    (tmp_path / "other").write_bytes(b"\0" * 400)
    assert not is_nifti_file(tmp_path / "other")


def test_model_sr_runs_grey_slices_through_an_rgb_model_unclamped():
    class Doubling(torch.nn.Module):
        scale, n_colors = 2, 3

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            assert x.shape[1] == 3  # grey slices arrive as RGB
            return 1.5 * F.interpolate(x, scale_factor=2, mode="nearest") * self.w

    model = Doubling().train()
    sr = model_sr(model)
    x = torch.rand(2, 1, 4, 5)
    y = sr(x)
    assert y.shape == (2, 1, 8, 10) and torch.allclose(y, 1.5 * nearest(x))  # luma sums to 1
    assert float(y.max()) > 1.0 and model.training  # unclamped; mode restored
    with pytest.raises(SizeMismatchError, match="expected a batch"):
        sr(x[0])


def test_dihedral_outputs_of_an_equivariant_model_agree():
    x = torch.rand(1, 1, 6, 6)
    outs = dihedral_outputs(nearest, x)
    assert outs.shape == (8, 1, 1, 12, 12)
    assert torch.allclose(outs.std(dim=0), torch.zeros(1, 1, 12, 12))


def test_model_sr_needs_a_scale_for_a_multiscale_model():
    from edsr_lab.weights import load_pretrained

    mdsr = load_pretrained("course_mdsr_baseline", progress=False)
    with pytest.raises(BadArgumentError, match="say which: --scale 2"):  # resolve_scale
        model_sr(mdsr)
    x = torch.rand(1, 1, 6, 7)
    assert model_sr(mdsr, scale=3)(x).shape == (1, 1, 18, 21)
    assert model_sr(mdsr, scale=2)(x).shape == (1, 1, 12, 14)


def test_super_resolve_clamp_false_keeps_the_overshoot_and_model_sr_uses_it():
    """inference.super_resolve(clamp=False) returns what the model gives; model_sr goes
    through it (tiles and the self-ensemble included), so clipping can be counted."""
    from edsr_lab.inference import super_resolve

    class Overshoot(torch.nn.Module):
        scale, n_colors = 2, 3

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return (1.5 * F.interpolate(x, scale_factor=2, mode="nearest") - 0.2) * self.w

    model = Overshoot()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    clamped = super_resolve(model, x)
    raw = super_resolve(model, x, clamp=False)
    assert float(clamped.max()) <= 1.0 and float(clamped.min()) >= 0.0
    assert float(raw.max()) > 1.0 and float(raw.min()) < 0.0
    assert torch.equal(raw.clamp(0, 1), clamped)
    grey = x[:, :1]
    y = model_sr(model)(grey)
    assert torch.allclose(y, 1.5 * nearest(grey) - 0.2, atol=1e-6)
    for options in ({"tile": 4}, {"self_ensemble": True}):  # the same model, other paths
        assert torch.allclose(model_sr(model, **options)(grey), y, atol=1e-6), options


def test_model_sr_runs_a_colour_batch_through_a_grey_model_channel_by_channel():
    class Grey(torch.nn.Module):
        scale, n_colors = 2, 1

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            assert x.shape[1] == 1
            return F.interpolate(x, scale_factor=2, mode="nearest") * self.w

    x = torch.rand(2, 3, 4, 5)
    assert torch.equal(model_sr(Grey())(x), nearest(x))
