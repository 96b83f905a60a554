"""Tests for edsr_lab.models.checkpoints: official files, our format, errors, x2 -> x4 init."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from edsr_lab.config import DIV2K_MEAN
from edsr_lab.errors import CheckpointError
from edsr_lab.models import (
    EDSR,
    MDSR,
    SRResNet,
    edsr,
    infer_config,
    init_from,
    load_checkpoint,
    load_official,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)

B, FEATS = 2, 8  # a tiny official-layout EDSR


def official_edsr_shapes(scale: int) -> dict[str, tuple[int, ...]]:
    """The official EDSR-PyTorch state dict for B=2, F=8, written out by hand from the
    official code (model/edsr.py, model/common.py)."""
    up = 9 * FEATS if scale == 3 else 4 * FEATS
    shapes = {
        "sub_mean.weight": (3, 3, 1, 1),
        "sub_mean.bias": (3,),
        "add_mean.weight": (3, 3, 1, 1),
        "add_mean.bias": (3,),
        "head.0.weight": (FEATS, 3, 3, 3),
        "head.0.bias": (FEATS,),
        "body.0.body.0.weight": (FEATS, FEATS, 3, 3),
        "body.0.body.0.bias": (FEATS,),
        "body.0.body.2.weight": (FEATS, FEATS, 3, 3),
        "body.0.body.2.bias": (FEATS,),
        "body.1.body.0.weight": (FEATS, FEATS, 3, 3),
        "body.1.body.0.bias": (FEATS,),
        "body.1.body.2.weight": (FEATS, FEATS, 3, 3),
        "body.1.body.2.bias": (FEATS,),
        "body.2.weight": (FEATS, FEATS, 3, 3),
        "body.2.bias": (FEATS,),
        "tail.0.0.weight": (up, FEATS, 3, 3),
        "tail.0.0.bias": (up,),
        "tail.1.weight": (3, FEATS, 3, 3),
        "tail.1.bias": (3,),
    }
    if scale == 4:
        shapes["tail.0.2.weight"] = (up, FEATS, 3, 3)
        shapes["tail.0.2.bias"] = (up,)
    return shapes


def official_edsr_state_dict(scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the official layout, with the official mean-shift values."""
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=g) * 0.05 for k, s in official_edsr_shapes(scale).items()}
    mean = torch.tensor(DIV2K_MEAN)
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        sd[f"{name}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        sd[f"{name}.bias"] = sign * 255 * mean
    return sd


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, scale: int) -> torch.Tensor:
    """The official EDSR forward, written with functional ops straight from the weights."""

    def conv(t, key, pad=1):
        return F.conv2d(t, sd[key + ".weight"], sd[key + ".bias"], padding=pad)

    h = conv(conv(x * 255, "sub_mean", 0), "head.0")
    r = h
    for i in range(B):
        r = r + conv(F.relu(conv(r, f"body.{i}.body.0")), f"body.{i}.body.2")
    r = conv(r, f"body.{B}") + h
    if scale == 3:
        r = F.pixel_shuffle(conv(r, "tail.0.0"), 3)
    else:
        for j in range(0, 2 * (scale // 2), 2):
            r = F.pixel_shuffle(conv(r, f"tail.0.{j}"), 2)
    return conv(conv(r, "tail.1"), "add_mean", 0) / 255


# -------------------------------------------------------------------- official format


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_our_edsr_has_exactly_the_official_keys(scale):
    model = EDSR(B, FEATS, scale)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == official_edsr_shapes(scale)
    model.load_state_dict(official_edsr_state_dict(scale), strict=True)
    assert ("tail.0.2.weight" in shapes) == (scale == 4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_load_official_infers_config_and_matches_reference(tmp_path, scale):
    sd = official_edsr_state_dict(scale)
    path = tmp_path / f"edsr_baseline_x{scale}-tiny.pt"
    torch.save(sd, path)
    model = load_official(path)
    assert isinstance(model, EDSR) and not model.training
    assert model.config["n_resblocks"] == B and model.config["n_feats"] == FEATS
    assert model.scale == scale and model.config["res_scale"] == 1.0
    assert model.config["rgb_range"] == 255.0 and model.config["n_colors"] == 3
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_forward(sd, x, scale), rtol=1e-4, atol=1e-5)


def test_load_official_accepts_wrapped_state_dicts():
    sd = official_edsr_state_dict(2)
    direct = load_official(sd)
    for wrapped in (
        {"state_dict": sd},
        {"model": {f"module.{k}": v for k, v in sd.items()}},
        {f"_orig_mod.{k}": v for k, v in sd.items()},
    ):
        model = load_official(wrapped)
        for k, v in direct.state_dict().items():
            torch.testing.assert_close(model.state_dict()[k], v)


def test_res_scale_and_rgb_range_inference():
    # res_scale is not in the weights: 0.1 for the paper's 32x256 EDSR, 1.0 otherwise.
    with torch.device("meta"):
        big = edsr(3).state_dict()
    big["sub_mean.bias"] = -255 * torch.tensor(DIV2K_MEAN)  # read for rgb_range (not meta)
    cfg = infer_config(big)
    assert cfg == {
        "arch": "EDSR",
        "n_resblocks": 32,
        "n_feats": 256,
        "scale": 3,
        "res_scale": 0.1,
        "kernel_size": 3,
        "batch_norm": False,
        "n_colors": 3,
        "rgb_range": 255.0,
        "act": "relu",
    }
    sd = official_edsr_state_dict(2)
    assert load_official(sd).config["res_scale"] == 1.0
    model = load_official(sd, res_scale=0.5)
    assert model.config["res_scale"] == 0.5 and model.body[0].res_scale == 0.5
    small_range = EDSR(B, FEATS, 2, rgb_range=1).state_dict()
    assert load_official(small_range).rgb_range == 1.0
    grey = EDSR(B, FEATS, 2, n_colors=1, batch_norm=True).state_dict()
    cfg = infer_config(grey)
    assert cfg["n_colors"] == 1 and cfg["batch_norm"] is True
    assert infer_config(EDSR(1, 8, 2, act="prelu").state_dict())["act"] == "prelu"


def test_load_checkpoint_reads_weights_nested_in_a_training_checkpoint(tmp_path):
    # edsr_lab.train writes {"format": "edsr_lab.train/1", "model": state_dict, ...}.
    model = EDSR(B, FEATS, 2).eval()
    path = tmp_path / "train.pt"
    torch.save({"format": "edsr_lab.train/1", "model": model.state_dict(), "step": 3}, path)
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_load_official_refuses_the_wrong_scale(tmp_path):
    path = tmp_path / "edsr_baseline_x2.pt"
    torch.save(official_edsr_state_dict(2), path)
    assert load_official(path, scale=2).scale == 2
    with pytest.raises(
        CheckpointError, match=r"edsr_baseline_x2.pt' holds an EDSR model for x2, not x4"
    ):
        load_official(path, scale=4)


def test_mdsr_round_trip_through_official_format(tmp_path):
    torch.manual_seed(0)
    model = MDSR(2, 8).eval()
    keys = set(model.state_dict())
    assert {"pre_process.2.1.body.2.weight", "upsample.2.2.weight", "tail.0.weight"} <= keys
    assert model.state_dict()["pre_process.0.0.body.0.weight"].shape == (8, 8, 5, 5)
    assert model.state_dict()["upsample.1.0.weight"].shape == (72, 8, 3, 3)
    path = tmp_path / "mdsr_baseline-tiny.pt"
    torch.save(model.state_dict(), path)
    loaded = load_official(path)
    assert isinstance(loaded, MDSR) and loaded.scales == (2, 3, 4)
    assert loaded.config["n_resblocks"] == 2 and loaded.config["n_feats"] == 8
    x = torch.rand(1, 3, 5, 4)
    with torch.no_grad():
        for s in (2, 3, 4):
            torch.testing.assert_close(loaded(x, s), model(x, s))
    with pytest.raises(CheckpointError, match="not x8"):
        load_official(path, scale=8)


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope.pt' does not exist"):
        load_official(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_official(tmp_path)


def test_garbage_empty_and_truncated_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"<html>404 Not Found</html>" * 20)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    good = tmp_path / "good.pt"
    torch.save(official_edsr_state_dict(2), good)
    data = good.read_bytes()
    for name, cut in (("half.pt", len(data) // 2), ("tenth.pt", len(data) // 10)):
        (tmp_path / name).write_bytes(data[:cut])
    for name in ("garbage.pt", "empty.pt", "half.pt", "tenth.pt"):
        with pytest.raises(CheckpointError, match=name) as info:
            load_official(tmp_path / name)
        assert "download" in str(info.value)
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "half.pt")
    # A dead download link often saves an HTML page under the .pt name.
    with pytest.raises(CheckpointError, match="web page .*download link is probably dead"):
        load_official(garbage)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(7, 200)))
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        load_official(noise)


def test_truncated_safetensors(tmp_path):
    path = save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)


def test_pickled_objects_are_refused_weights_only(tmp_path):
    marker = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"head.0.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        load_official(path)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        load_checkpoint(path)
    assert not marker.exists()  # the payload never ran


def test_state_dict_with_wrong_keys():
    with pytest.raises(CheckpointError, match=r"no 'head.0.weight'.*'conv1.weight'"):
        load_official({"conv1.weight": torch.zeros(8, 3, 3, 3)})
    with pytest.raises(CheckpointError, match="not tensors"):
        load_official({"head.0.weight": [1, 2, 3]})
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_official([torch.zeros(1)])
    sd = official_edsr_state_dict(2)
    del sd["body.1.body.2.weight"]
    with pytest.raises(
        CheckpointError, match=r"1 key\(s\) missing from the file.*body.1.body.2.weight"
    ):
        load_official(sd)


def test_shape_mismatch_names_key_shapes_and_the_model_that_fits(tmp_path):
    path = tmp_path / "edsr_baseline_x3.pt"
    torch.save(official_edsr_state_dict(3), path)
    with pytest.raises(CheckpointError) as info:
        load_weights(EDSR(B, FEATS, 2), path)
    msg = str(info.value)
    assert "edsr_baseline_x3.pt" in msg
    assert "tail.0.0.weight: (72, 8, 3, 3) in the file, (32, 8, 3, 3) in the model" in msg
    assert "fit EDSR(n_resblocks=2, n_feats=8, scale=3" in msg
    # x2 weights into an x4 model: the second upsampling stage is missing.
    with pytest.raises(CheckpointError, match=r"missing from the file, e.g. \['tail.0.2.weight'"):
        load_weights(EDSR(B, FEATS, 4), official_edsr_state_dict(2))
    # Wrong width everywhere.
    with pytest.raises(CheckpointError, match=r"head.0.weight: \(8, 3, 3, 3\) in the file"):
        load_weights(EDSR(B, 16, 2), official_edsr_state_dict(2))
    model = load_weights(EDSR(B, FEATS, 3), path)
    torch.testing.assert_close(model.tail[0][0].weight, torch.load(path)["tail.0.0.weight"])


# ----------------------------------------------------------------------- x2 -> x3/x4


def test_init_from_x2_copies_all_but_the_upsampler():
    torch.manual_seed(0)
    x2 = EDSR(B, FEATS, 2, res_scale=0.5)
    x3 = init_from(x2, 3)
    assert isinstance(x3, EDSR) and x3.scale == 3 and x3.config["res_scale"] == 0.5
    src, dst = x2.state_dict(), x3.state_dict()
    report = x3.transfer_report
    assert set(report.skipped) == {"tail.0.0.weight", "tail.0.0.bias"}
    assert "(32, 8, 3, 3) in the x2 model, (72, 8, 3, 3) at x3" in report.skipped["tail.0.0.weight"]
    assert set(report.copied) == set(dst) - set(report.skipped)
    for key in report.copied:
        torch.testing.assert_close(dst[key], src[key])
    assert any(k.startswith("body.") for k in report.copied) and "tail.1.weight" in report.copied
    # Copies, not shared tensors: training the x3 model leaves the x2 model alone.
    with torch.no_grad():
        x3.head[0].weight.add_(1.0)
    assert not torch.equal(x3.head[0].weight, x2.head[0].weight)

    x4 = init_from(x2, 4)
    skipped = x4.transfer_report.skipped
    assert set(skipped) == {"tail.0.2.weight", "tail.0.2.bias"}  # tail.0.0 fits and is copied
    assert skipped["tail.0.2.weight"] == "not in the x2 model"
    torch.testing.assert_close(x4.tail[0][0].weight, x2.tail[0][0].weight)
    assert x4(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)


def test_init_from_other_models():
    srr = init_from(SRResNet(1, 8, 2).eval(), 4)
    assert isinstance(srr, SRResNet) and srr.scale == 4 and not srr.training
    assert "head.0.weight" in srr.transfer_report.copied
    with pytest.raises(ValueError, match="MDSR already serves"):
        init_from(MDSR(1, 8), 2)


# ------------------------------------------------------------------------ our format


def test_save_load_round_trip_pt(tmp_path):
    torch.manual_seed(0)
    model = EDSR(B, FEATS, 3, 0.2, upsampler="nearest_conv", batch_norm=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.rand(2, 3, 6, 6)).mean().backward()
    opt.step()  # optimizer state: int keys, tensors, tuples -- all weights_only-safe
    extra = {"step": 7, "optimizer": opt.state_dict(), "history": [0.5, 0.25], "note": "x"}
    path = save_checkpoint(model, tmp_path / "run" / "step7.pt", extra=extra)
    assert path.exists() and path.parent.name == "run"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "edsr_lab" and raw["version"] == 2 and raw["arch"] == "EDSR"
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and not loaded.training
    model.eval()
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.checkpoint_extra["step"] == 7
    opt2 = torch.optim.Adam(loaded.parameters(), lr=1e-4)
    opt2.load_state_dict(loaded.checkpoint_extra["optimizer"])
    record = read_checkpoint(path)
    assert record["arch"] == "EDSR" and record["extra"]["history"] == [0.5, 0.25]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("factory", [lambda: SRResNet(1, 8, 2), lambda: MDSR(1, 8, (2, 3))])
def test_save_load_other_architectures(tmp_path, factory, suffix):
    torch.manual_seed(0)
    model = factory().eval()
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / f"m{suffix}"))
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 2), model(x, 2), rtol=0, atol=0)


def test_save_load_round_trip_safetensors(tmp_path):
    torch.manual_seed(0)
    model = EDSR(B, FEATS, 4, upsampler="deconv").eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"step": 3, "psnr": [30.5]})
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a zip
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.checkpoint_extra == {"step": 3, "psnr": [30.5]}
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(model, tmp_path / "t.safetensors", extra={"t": torch.zeros(1)})
    assert not (tmp_path / "t.safetensors").exists()


def test_official_state_dict_in_safetensors_and_load_checkpoint_on_official(tmp_path):
    import safetensors.torch

    sd = official_edsr_state_dict(4)
    safetensors.torch.save_file(sd, tmp_path / "off.safetensors")
    torch.save(sd, tmp_path / "off.pt")
    for name in ("off.safetensors", "off.pt"):
        model = load_checkpoint(tmp_path / name)
        assert isinstance(model, EDSR) and model.scale == 4 and model.checkpoint_extra is None
    assert read_checkpoint(tmp_path / "off.pt")["format"] == "official"


def test_overwrite_refused_and_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(EDSR(1, 8, 2), path, extra={"v": 1})
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(EDSR(1, 8, 2), path, extra={"v": 2})
    assert path.read_bytes() == before
    save_checkpoint(EDSR(1, 8, 2), path, extra={"v": 2}, overwrite=True)
    assert read_checkpoint(path)["extra"] == {"v": 2}

    # A crash half-way through writing leaves the old file intact and no temp file behind.
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(3)}, f)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(EDSR(1, 8, 2), path, extra={"v": 3}, overwrite=True)
    monkeypatch.undo()
    assert read_checkpoint(path)["extra"] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_save_refuses_what_it_cannot_reload(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"extra\['arr'\] is a numpy.ndarray.*weights_only"):
        save_checkpoint(EDSR(1, 8, 2), tmp_path / "a.pt", extra={"arr": np.zeros(2)})
    with pytest.raises(TypeError, match=r"extra\['p'\] is a pathlib"):
        save_checkpoint(EDSR(1, 8, 2), tmp_path / "a.pt", extra={"p": tmp_path})
    with pytest.raises(TypeError, match=r"state_dict\(\), path"):
        save_checkpoint(torch.nn.Conv2d(1, 1, 1), tmp_path / "a.pt")
    assert list(tmp_path.iterdir()) == []
    compiled_like = torch.nn.DataParallel(EDSR(1, 8, 2))
    assert load_checkpoint(save_checkpoint(compiled_like, tmp_path / "dp.pt")).scale == 2


def test_newer_format_version_is_refused(tmp_path):
    path = save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="version 99.*update edsr_lab"):
        load_checkpoint(path)


def test_safetensors_missing_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # import now fails
    with pytest.raises(CheckpointError, match="pip install safetensors"):
        save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


# ------------------------------------------------- one format: model + training state


class _Batches:
    """x2 LR/HR batches for a tiny training run (HR random, LR its 2x2 average)."""

    def __init__(self, scale: int = 2, seed: int = 0):
        self.scale, self.gen = scale, torch.Generator().manual_seed(seed)

    def sample(self):
        hr = torch.rand(2, 3, 8 * self.scale, 8 * self.scale, generator=self.gen)
        return F.avg_pool2d(hr, self.scale), hr


def _trained_checkpoint(tmp_path, model, name="run.pt", steps=2):
    from edsr_lab.train import train

    path = tmp_path / name
    train(
        model,
        _Batches(model.scale),
        iters=steps,
        amp="off",
        checkpoint_path=str(path),
        progress=False,
        device="cpu",
    )
    return path


def test_a_training_checkpoint_is_a_model_checkpoint(tmp_path, capsys):
    from edsr_lab import cli
    from edsr_lab.train import load_training_checkpoint

    torch.manual_seed(0)
    model = EDSR(1, 8, 2)
    path = _trained_checkpoint(tmp_path, model)
    for loaded in (load_checkpoint(path), load_official(path)):
        assert isinstance(loaded, EDSR) and loaded.config == model.config
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    record = read_checkpoint(path)
    assert record["format"] == "edsr_lab" and record["training"]["step"] == 2
    assert load_training_checkpoint(path)["step"] == 2
    # ... and the CLI's upscale reads it.
    from edsr_lab.data import sample_path

    out = tmp_path / "out"
    image = sample_path("rgba_coffee")
    assert cli.main(["upscale", str(image), "--checkpoint", str(path), "--out", str(out)]) == 0
    assert (out / "rgba_coffee_x2.png").is_file()


def test_a_model_checkpoint_cannot_be_resumed_and_says_why(tmp_path):
    from edsr_lab.train import load_training_checkpoint

    path = save_checkpoint(EDSR(1, 8, 2), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="model weights only.*load_checkpoint"):
        load_training_checkpoint(path)


def test_load_official_names_our_training_checkpoint_in_its_messages(tmp_path):
    torch.manual_seed(0)
    path = _trained_checkpoint(tmp_path, SRResNet(1, 8, 2))
    assert isinstance(load_checkpoint(path), SRResNet)
    with pytest.raises(CheckpointError, match=r"edsr_lab training checkpoint of SRResNet, step 2"):
        load_official(path)


def test_training_checkpoint_of_a_foreign_model_explains_how_to_load_it(tmp_path):
    from edsr_lab.train import train

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    path = tmp_path / "foreign.pt"
    train(net, _Batches(), iters=1, amp="off", checkpoint_path=str(path), progress=False)
    with pytest.raises(CheckpointError, match="load_weights"):
        load_checkpoint(path)
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    fresh.load_state_dict(read_checkpoint(path)["state_dict"])


def test_importing_the_models_does_not_import_pillow():
    import subprocess

    code = (
        "import sys, edsr_lab.models, edsr_lab.train, edsr_lab.files; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PIL', 'matplotlib')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _rewrite(path, **changes):
    """Edit a stored config and re-sign it (so only the config check can catch it)."""
    from edsr_lab.models.checkpoints import tensor_checksum

    raw = torch.load(path, weights_only=True)
    raw["config"].update(changes)
    raw["checksum"] = tensor_checksum(raw["state_dict"], raw.get("training"))
    torch.save(raw, path)


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"n_resblocks": 10**7}, "n_resblocks=10000000"),
        ({"n_feats": 10**6}, "n_feats=1000000"),
        ({"kernel_size": 10**4}, "kernel_size=10000"),
        ({"scale": 2**40}, "scale 1099511627776"),
    ],
)
def test_config_is_checked_against_tensors_before_building(tmp_path, changes, named):
    path = save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.pt")
    _rewrite(path, **changes)
    # Building first would allocate without bound (10**7 blocks) or fail in the allocator.
    with pytest.raises(CheckpointError, match=f"{named}.*damaged or was edited"):
        load_checkpoint(path)


def test_mdsr_config_is_checked_against_tensors(tmp_path):
    path = save_checkpoint(MDSR(1, 8, (2, 3)), tmp_path / "m.pt")
    _rewrite(path, scales=[2, 2**30])
    with pytest.raises(CheckpointError, match="upsample.1"):
        load_checkpoint(path)
    _rewrite(path, scales=[2, 3, 4])
    with pytest.raises(CheckpointError, match="2 upsamplers"):
        load_checkpoint(path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_flipped_byte_in_tensor_data_is_detected(tmp_path, suffix):
    torch.manual_seed(0)
    model = EDSR(1, 8, 2)
    path = save_checkpoint(model, tmp_path / f"m{suffix}")
    raw = bytearray(path.read_bytes())
    weight = model.state_dict()["body.0.body.0.weight"].contiguous().numpy().tobytes()
    at = bytes(raw).find(weight[:64])
    assert at > 0
    raw[at + 100] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged.*checksum"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="damaged.*checksum"):
        load_weights(EDSR(1, 8, 2), path)


def test_pt_and_safetensors_files_get_the_same_permissions(tmp_path):
    import os
    import stat

    pytest.importorskip("safetensors")
    old = os.umask(0o022)
    try:
        pt = save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.pt")
        st = save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(pt.stat().st_mode) == stat.S_IMODE(st.stat().st_mode) == 0o644


# ------------------------------------------------------------------ the atomic writer


def test_atomic_write_removes_its_temp_file_on_any_failure(tmp_path):
    from edsr_lab.files import atomic_write

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def fail(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt  # not even an Exception

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert target.read_bytes() == b"old"


def test_atomic_write_clears_stale_temp_files_of_dead_writers_only(tmp_path):
    import os
    import subprocess

    from edsr_lab.files import atomic_write

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now
    target = tmp_path / "ckpt.pt"
    stale = tmp_path / f".ckpt.pt.{dead.pid}-0123abcd.tmp"
    legacy_old = tmp_path / ".ckpt.pt.89abcdef.tmp"  # the previous pattern, old
    live = tmp_path / f".ckpt.pt.{os.getpid()}-feedbeef.tmp"  # a writer still running
    other = tmp_path / ".other.pt.0123abcd.tmp"  # another target's
    mine_look_alike = tmp_path / ".ckpt.pt.notes.tmp"  # not our pattern
    for p in (stale, legacy_old, live, other, mine_look_alike):
        p.write_bytes(b"x" * 10)
    os.utime(legacy_old, (0, 0))
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"new"))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["ckpt.pt", live.name, other.name, mine_look_alike.name])


def test_a_full_disk_gives_one_line_and_keeps_the_old_file(tmp_path):
    import errno

    from edsr_lab.errors import EdsrLabError, FileWriteError
    from edsr_lab.files import atomic_write

    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"precious")

    def full(tmp):
        open(tmp, "wb").write(b"par")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileWriteError) as info:
        atomic_write(target, full)
    assert isinstance(info.value, OSError) and isinstance(info.value, EdsrLabError)
    message = str(info.value)
    assert "\n" not in message and "disk is full" in message and "ckpt.pt" in message
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]

    def torch_full(tmp):  # what torch.save raises when the disk fills
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed "
            "writing file data/3: file write failed"
        )

    with pytest.raises(FileWriteError, match="writing failed.*disk full"):
        atomic_write(target, torch_full)
    assert target.read_bytes() == b"precious"


def test_save_checkpoint_on_a_full_disk(tmp_path, monkeypatch):
    import errno

    from edsr_lab.errors import FileWriteError

    path = save_checkpoint(EDSR(1, 8, 2), tmp_path / "m.pt")
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(FileWriteError, match="disk is full"):
        save_checkpoint(EDSR(1, 8, 2), path, overwrite=True)
    assert path.read_bytes() == before
