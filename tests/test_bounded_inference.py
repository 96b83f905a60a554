"""Inference is bounded: a forward pass that would not fit in memory is tiled automatically
(said in one line) or refused before it starts, and bad tile/scale values are one clear
error (issue 14, items 8 and 14).

The memory budget is faked through :func:`edsr_lab.inference.available_memory` (the one
place that reads /proc/meminfo or the GPU), so the tests need no large image.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _models import model_inputs
from torch import nn

from edsr_lab import cli, inference, upscale
from edsr_lab.errors import BadArgumentError, BadArgumentTypeError, DeviceError
from edsr_lab.evaluate import evaluate
from edsr_lab.inference import estimate_forward_bytes, super_resolve
from edsr_lab.io import load_image, save_image
from edsr_lab.models import EDSR, edsr_baseline, save_checkpoint


@pytest.fixture(scope="module")
def model() -> EDSR:
    """Receptive-field radius 5 LR pixels: tiles with the default overlap 16 are exact."""
    torch.manual_seed(0)
    return EDSR(n_resblocks=1, n_feats=8, scale=2).eval()


def _budget(monkeypatch, free: int | None) -> None:
    monkeypatch.setattr(inference, "available_memory", lambda device: free)


# ------------------------------------------------------------------ the estimate itself


def test_the_estimate_grows_with_pixels_and_model_width():
    small, wide = EDSR(n_resblocks=1, n_feats=8, scale=2), EDSR(n_resblocks=1, n_feats=32, scale=2)
    a = estimate_forward_bytes(small, (1, 3, 100, 100))
    assert estimate_forward_bytes(small, (1, 3, 200, 200)) == pytest.approx(4 * a, rel=1e-6)
    assert estimate_forward_bytes(small, (2, 3, 100, 100)) == pytest.approx(2 * a, rel=1e-6)
    assert estimate_forward_bytes(wide, (1, 3, 100, 100)) > 3 * a
    # at least the 64 feature maps of the baseline's body, at most a few dozen of them
    base = estimate_forward_bytes(edsr_baseline(2), (1, 3, 100, 100))
    assert 64 * 4 * 100 * 100 * 2 < base < 64 * 4 * 100 * 100 * 40


def test_a_model_that_cannot_be_probed_gets_no_estimate_and_runs_as_before(monkeypatch):
    class NeedsLargeInputs(nn.Module):
        scale = 2

        def forward(self, x):
            coarse = F.avg_pool2d(x, 32)  # fails on inputs under 32x32, as the probe is
            up = F.interpolate(coarse, size=(2 * x.shape[2], 2 * x.shape[3]))
            return F.interpolate(x, scale_factor=2) + 0 * up

    assert estimate_forward_bytes(NeedsLargeInputs(), (1, 3, 64, 64)) is None
    _budget(monkeypatch, 1000)  # far too small: but without an estimate, no tiling
    assert super_resolve(NeedsLargeInputs(), torch.rand(3, 64, 64)).shape == (3, 128, 128)


# --------------------------------------------------------------- tiling when it would not fit


def test_an_image_too_large_for_memory_is_tiled_automatically(model, monkeypatch, capsys):
    x = torch.rand(3, 128, 112, generator=torch.Generator().manual_seed(0))
    with model_inputs() as whole:
        expected = super_resolve(model, x)
    assert whole == [(1, 3, 128, 112)]  # the real budget holds it: one pass
    _budget(monkeypatch, estimate_forward_bytes(model, (1, 3, 128, 112)))
    with model_inputs() as tiled:
        out = super_resolve(model, x)
    assert len(tiled) > 1 and all(h < 128 and w < 112 for _, _, h, w in tiled), tiled
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "128x112" in err[0] and "running it in tiles of" in err[0]


def test_a_tile_asked_for_is_made_smaller_when_it_would_not_fit(model, monkeypatch, capsys):
    x = torch.rand(3, 128, 112, generator=torch.Generator().manual_seed(1))
    _budget(monkeypatch, estimate_forward_bytes(model, (1, 3, 128, 112)))
    with model_inputs() as seen:
        super_resolve(model, x, tile=100)
    assert max(max(h, w) for _, _, h, w in seen) < 100 + 2 * 16
    assert "in 100x100 tiles" in capsys.readouterr().err


def test_self_ensemble_stops_batching_its_transforms_when_they_do_not_fit(model, monkeypatch):
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))
    with model_inputs() as batched:
        expected = super_resolve(model, x, self_ensemble=True)
    assert batched == [(8, 3, 64, 64)]
    # one transform fits, eight at once do not
    _budget(monkeypatch, 3 * estimate_forward_bytes(model, (1, 3, 64, 64)))
    with model_inputs() as one_by_one:
        out = super_resolve(model, x, self_ensemble=True)
    assert one_by_one == [(1, 3, 64, 64)] * 8
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_an_image_that_fits_in_no_tile_is_refused_before_running(model, monkeypatch):
    _budget(monkeypatch, 10_000)  # 10 kB
    with model_inputs() as seen, pytest.raises(DeviceError) as caught:
        super_resolve(model, torch.rand(3, 64, 64))
    assert seen == []
    message = str(caught.value)
    assert "\n" not in message and "64x64" in message and "free" in message


def test_the_cpu_running_out_of_memory_is_one_failed_file_not_the_end_of_the_batch(tmp_path):
    """A forward that still runs out of memory (the estimate is an estimate) fails that
    file only; the files after it are written."""

    class Greedy(nn.Module):
        scale, n_colors = 2, 3

        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            if x.shape[-1] > 32 and x.device.type != "meta":
                raise RuntimeError(
                    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
                    "memory: you tried to allocate 14400000000 bytes."
                )
            return F.interpolate(x, scale_factor=2)

    files = [
        save_image(torch.rand(3, h, w), tmp_path / name)
        for name, h, w in (("a.png", 16, 16), ("big.png", 40, 48), ("c.png", 16, 24))
    ]
    lines: list[str] = []
    written, failed = upscale.upscale_files(Greedy(), files, tmp_path / "out", 2, log=lines.append)
    assert (written, failed) == (2, 1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]
    bad = [line for line in lines if line.startswith("FAILED")]
    assert len(bad) == 1 and "big.png" in bad[0] and "out of memory" in bad[0]


def test_cli_upscale_tiles_the_large_photo_and_writes_the_whole_batch(
    tmp_path, model, monkeypatch, capsys
):
    ckpt = save_checkpoint(model, tmp_path / "tiny.pt")
    g = torch.Generator().manual_seed(3)
    files = [
        save_image(torch.rand(3, h, w, generator=g), tmp_path / name)
        for name, h, w in (("a.png", 16, 16), ("photo.png", 128, 112), ("c.png", 20, 16))
    ]
    out = tmp_path / "out"
    plain = ["upscale", *files, "--checkpoint", ckpt, "--device", "cpu"]
    assert cli.main([str(a) for a in [*plain, "--out", out / "whole"]]) == 0
    capsys.readouterr()
    _budget(monkeypatch, estimate_forward_bytes(model, (1, 3, 128, 112)))
    with model_inputs() as seen:
        assert cli.main([str(a) for a in [*plain, "--out", out / "auto"]]) == 0
    err = capsys.readouterr().err
    assert err.count("running it in tiles of") == 1 and "photo.png" not in err
    assert len(seen) > 3  # a.png, c.png whole; the photo in several tiles
    for name in ("a_x2.png", "photo_x2.png", "c_x2.png"):  # equal up to 8-bit rounding
        a, b = load_image(out / "whole" / name), load_image(out / "auto" / name)
        assert (a - b).abs().max() <= 1 / 255 + 1e-6 and (a != b).float().mean() < 1e-3


# ------------------------------------------------------------------- tile and scale types


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"tile": 2.5}, BadArgumentError),
        ({"tile": "8"}, BadArgumentTypeError),
        ({"tile": True}, BadArgumentError),
        ({"tile": 0}, BadArgumentError),
        ({"tile": float("nan")}, BadArgumentError),
        ({"tile_overlap": 2.5}, BadArgumentError),
        ({"tile_overlap": -1}, BadArgumentError),
        ({"tile_overlap": None}, BadArgumentTypeError),
        ({"scale": 2.5}, BadArgumentError),
        ({"scale": "2"}, BadArgumentTypeError),
        ({"scale": [2]}, BadArgumentTypeError),
    ],
)
def test_bad_tile_and_scale_values_are_one_clear_error(model, kwargs, error):
    with pytest.raises(error) as caught:
        super_resolve(model, torch.rand(3, 8, 8), **kwargs)
    name = next(iter(kwargs))
    assert name in str(caught.value) and "whole number" in str(caught.value)
    if error is BadArgumentTypeError:
        assert isinstance(caught.value, TypeError)  # still what a TypeError catcher expects


def test_whole_number_tiles_of_other_types_are_accepted(model):
    x = torch.rand(3, 20, 20)
    expected = super_resolve(model, x, tile=8)
    for tile in (8.0, torch.tensor(8)):
        torch.testing.assert_close(super_resolve(model, x, tile=tile), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"protocol": "abc"}, "unknown protocol"),
        ({"tile": 2.5}, "tile"),
        ({"tile_overlap": -1}, "tile_overlap"),
        ({"scale": 2.5}, "scale"),
    ],
)
def test_evaluate_checks_its_options_before_running_anything(model, kwargs, error):
    """A bad protocol surfaced after the first image was super-resolved; scale=2.5 was
    silently taken as 2 for a function (int(scale))."""
    calls: list[int] = []

    def fn(lr):
        calls.append(1)
        return F.interpolate(lr[None], scale_factor=2)[0]

    pairs = [(torch.rand(3, 16, 16), torch.rand(3, 8, 8))]
    for subject in (model, fn):
        with model_inputs() as seen, pytest.raises(BadArgumentError, match=error):
            evaluate(subject, pairs, **{"scale": 2, **kwargs})
        assert seen == [] and calls == []
