"""One way to fail: the same mistake raises the same edsr_lab.errors type in every module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch

import edsr_lab
from edsr_lab import errors
from edsr_lab.data import PatchSampler
from edsr_lab.errors import (
    EdsrLabError,
    ImageInputError,
    ImageTypeError,
    NonFiniteImageError,
)
from edsr_lab.inference import super_resolve
from edsr_lab.io import save_image, to_tensor, to_uint8
from edsr_lab.metrics import psnr, ssim
from edsr_lab.models import EDSR
from edsr_lab.resize import degrade, imresize


def _model():
    torch.manual_seed(0)
    return EDSR(n_resblocks=1, n_feats=8, scale=2).eval()


# Each entry feeds one (C, H, W) image to one public entry point.
CONSUMERS = {
    "imresize": lambda x: imresize(x, 0.5),
    "degrade": lambda x: degrade(x, 2),
    "psnr sr": lambda x: psnr(x, torch.rand(3, 16, 16), 2),
    "psnr hr": lambda x: psnr(torch.rand(3, 16, 16), x, 2),
    "ssim sr": lambda x: ssim(x, torch.rand(3, 16, 16), 2),
    "to_uint8": to_uint8,
    "save_image": lambda x: save_image(x, "never_written.png"),
    "model": lambda x: _model()(x.unsqueeze(0) if isinstance(x, torch.Tensor) else x),
    "super_resolve": lambda x: super_resolve(_model(), x),
    "PatchSampler": lambda x: PatchSampler([x], [torch.rand(3, 8, 8)], 2, patch_size=4),
}


@pytest.mark.parametrize("where", sorted(CONSUMERS))
def test_integer_pixels_raise_image_type_error_everywhere(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = torch.zeros(3, 16, 16, dtype=torch.int32)
    with pytest.raises(ImageTypeError, match="dtype torch.int32") as info:
        CONSUMERS[where](x)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", sorted(set(CONSUMERS) - {"to_uint8", "save_image"}))
def test_a_list_is_an_image_type_error_everywhere(where):
    with pytest.raises(ImageTypeError, match="torch.Tensor"):
        CONSUMERS[where]([[0.5]])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", sorted(CONSUMERS))
def test_one_non_finite_pixel_gets_its_own_message(where, bad, tmp_path, monkeypatch):
    """Never an all-NaN output, never '[0, 255] pixels': one clear NonFiniteImageError."""
    monkeypatch.chdir(tmp_path)
    x = torch.rand(3, 16, 16)
    x[1, 5, 7] = bad
    with pytest.raises(NonFiniteImageError, match="non-finite values") as info:
        CONSUMERS[where](x)
    message = str(info.value)
    assert "255" not in message and "nan_to_num" in message
    assert list(tmp_path.iterdir()) == []


def test_non_finite_count_is_reported():
    x = torch.rand(1, 3, 8, 8)
    x[0, 0, 0, :3] = float("nan")
    x[0, 2, 1, 1] = float("inf")
    with pytest.raises(NonFiniteImageError, match=r"3 NaN, 1 infinite, of 192"):
        _model()(x)


def test_numpy_arrays_are_refused_with_the_conversion_to_use():
    a = np.zeros((16, 16, 3), dtype=np.float32)
    for call in (lambda: imresize(a, 0.5), lambda: psnr(a, a, 2)):
        with pytest.raises(ImageTypeError, match=r"torch.from_numpy\(a\).*permute\(2, 0, 1\)"):
            call()
    nan = a.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteImageError, match="non-finite"):
        to_tensor(nan)


def test_wrong_layout_is_an_image_input_error():
    with pytest.raises(ImageInputError, match="at least 2 dimensions"):
        imresize(torch.rand(5), 0.5)
    with pytest.raises(ImageInputError, match=r"\(C, H, W\) or \(N, C, H, W\)"):
        psnr(torch.rand(16, 16), torch.rand(16, 16), 2)
    with pytest.raises(ImageInputError, match="empty"):
        imresize(torch.rand(3, 0, 4), 0.5)


def _package_modules():
    for info in pkgutil.walk_packages(edsr_lab.__path__, "edsr_lab."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_exception_types_live_in_errors_only():
    """Defined in edsr_lab.errors, exported from there only; each is an EdsrLabError and
    a built-in type, so ``except ValueError`` (etc.) keeps working."""
    public = {
        name: obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    }
    for name, cls in public.items():
        assert issubclass(cls, EdsrLabError), name
        assert len(inspect.getmro(cls)) > 3, f"{name} derives from no built-in error type"
    for module in _package_modules():
        exported = getattr(module, "__all__", [])
        leaked = [
            n
            for n in exported
            if inspect.isclass(getattr(module, n, None))
            and issubclass(getattr(module, n), BaseException)
        ]
        assert leaked == [], f"{module.__name__} re-exports {leaked}; import from edsr_lab.errors"
        own = [
            name
            for name, obj in vars(module).items()
            if inspect.isclass(obj)
            and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
            and not name.startswith("_")
            and module is not errors
        ]
        assert own == [], f"{module.__name__} defines exception types {own}"


def test_check_scale_is_the_one_value_check_of_a_scale():
    from edsr_lab.errors import BadArgumentError
    from edsr_lab.validate import check_scale

    assert [check_scale(2), check_scale(np.int64(3)), check_scale(4.0)] == [2, 3, 4]
    assert all(type(check_scale(s)) is int for s in (2, np.int64(3), 4.0))
    for bad in (0, -2, 1.5, True, "2", None):
        with pytest.raises(BadArgumentError, match=r"^modcrop: scale .*: the scale must be"):
            check_scale(bad, "modcrop")
    assert isinstance(pytest.raises(BadArgumentError, check_scale, "2").value, TypeError)
    # the modules that take a scale value all say it the same way (inference and evaluate too)
    from edsr_lab import geometry
    from edsr_lab.data import degradations
    from edsr_lab.resize import modcrop

    x = torch.rand(3, 8, 8)
    for call in (lambda: modcrop(x, 0), lambda: geometry.pixel_centre_offset(0),
                 lambda: degradations.make_lr(x, 0)):  # fmt: skip
        with pytest.raises(BadArgumentError, match="scale 0: the scale must be a whole"):
            call()
