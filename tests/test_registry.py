"""The model registry: presets by name, and a new model as one file plus one registration
(a toy model registered here builds, saves, loads and upscales through the library)."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from edsr_lab import upscale
from edsr_lab.errors import BadArgumentError, CheckpointError
from edsr_lab.io import save_image
from edsr_lab.models import (
    ARCHITECTURES,
    EDSR,
    MDSR,
    build_model,
    get_model,
    init_from,
    is_multiscale,
    load_checkpoint,
    model_names,
    register_model,
    save_checkpoint,
)
from edsr_lab.models.common import SRModel
from edsr_lab.models.registry import architecture, preset_of, unregister_model


class ToyNet(SRModel):
    """The smallest model with the package's interface: one conv + pixel shuffle, plus a
    nearest-neighbour skip. Not in the official layout (no head/body/tail)."""

    def __init__(self, n_feats: int = 4, scale: int = 2, *, n_colors: int = 3):
        super().__init__()
        self.n_colors, self.rgb_range = n_colors, 1.0
        self.conv1 = nn.Conv2d(n_colors, n_feats, 3, padding=1)
        self.conv2 = nn.Conv2d(n_feats, n_colors * scale * scale, 3, padding=1)
        self.scale, self.scales = scale, (scale,)
        self.config = {"n_feats": n_feats, "scale": scale, "n_colors": n_colors}

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        s = self._check(x, scale)
        up = F.pixel_shuffle(self.conv2(torch.relu(self.conv1(x))), s)
        return up + F.interpolate(x, scale_factor=s, mode="nearest")


@pytest.fixture
def toy():
    """Register ToyNet's preset for one test (the one registration line a model file has)."""

    @register_model(ToyNet, n_feats=6)
    def toy_small(scale: int = 2) -> ToyNet:
        """ToyNet, 6 features: a test model."""
        return ToyNet(n_feats=6, scale=scale)

    yield toy_small
    unregister_model("toy_small")
    assert "ToyNet" not in ARCHITECTURES and "toy_small" not in model_names()


def test_the_paper_presets_in_order():
    assert model_names() == ("srresnet", "edsr_baseline", "edsr", "mdsr_baseline", "mdsr")
    assert set(ARCHITECTURES) == {"SRResNet", "EDSR", "MDSR"}
    assert [n for n in model_names() if is_multiscale(n)] == ["mdsr_baseline", "mdsr"]
    spec = get_model("edsr")
    assert spec.cls is EDSR and dict(spec.preset) == {
        "n_resblocks": 32,
        "n_feats": 256,
        "res_scale": 0.1,
    }
    assert spec.description.startswith("EDSR (paper Table 1)")


@pytest.mark.parametrize("name", ["srresnet", "edsr_baseline", "edsr", "mdsr_baseline", "mdsr"])
def test_each_preset_function_builds_what_its_registration_says(name):
    spec = get_model(name)
    with torch.device("meta"):  # shapes only: EDSR's 43M parameters cost no memory
        model = spec.factory((2, 3) if spec.multiscale else 3)
    assert type(model) is spec.cls
    assert {k: model.config[k] for k in spec.preset} == dict(spec.preset)
    assert preset_of(model) == name
    defaults = inspect.signature(spec.factory).parameters
    assert len(defaults) == 1  # a preset takes the scale(s) only


def test_build_model_scales_overrides_and_mistakes():
    m = build_model("edsr_baseline", 4, n_feats=16, n_resblocks=None)  # None: keep preset
    assert (m.scale, m.config["n_feats"], m.config["n_resblocks"]) == (4, 16, 16)
    assert preset_of(m) is None  # resized: no longer the preset
    assert build_model("mdsr_baseline", (2, 3), n_resblocks=1).scales == (2, 3)
    assert build_model("edsr_baseline", [3]).scale == 3
    with pytest.raises(BadArgumentError, match="did you mean 'edsr_baseline'"):
        build_model("edsr_basline", 2)
    with pytest.raises(BadArgumentError, match="serves one scale.*mdsr_baseline, mdsr"):
        build_model("edsr_baseline", (2, 3))
    with pytest.raises(BadArgumentError, match="n_feets is not an argument of EDSR"):
        build_model("edsr_baseline", 2, n_feets=3)


def test_is_multiscale_of_models():
    assert is_multiscale(MDSR(n_resblocks=1, n_feats=8, scales=(2,)))  # the class serves several
    assert not is_multiscale(EDSR(n_resblocks=1, n_feats=8, scale=2))
    with pytest.raises(BadArgumentError, match="init_from is for single-scale"):
        init_from(MDSR(n_resblocks=1, n_feats=8, scales=(2, 3)), 4)


def test_registering_a_name_or_class_twice_is_refused(toy):
    with pytest.raises(BadArgumentError, match="registered already"):
        register_model(ToyNet)(toy)
    with pytest.raises(BadArgumentError, match="one set of flags"):
        register_model(ToyNet, multiscale=True)

    # a notebook cell run again: the same definitions, replaced on request
    class ToyNet2(ToyNet):
        pass

    ToyNet2.__name__ = "ToyNet"

    @register_model(ToyNet2, replace=True, n_feats=5)
    def toy_small(scale: int = 2) -> ToyNet:
        return ToyNet2(n_feats=5, scale=scale)

    assert get_model("toy_small").cls is ToyNet2 and ARCHITECTURES["ToyNet"] is ToyNet2
    assert isinstance(build_model("toy_small", 2), ToyNet2)


def test_a_new_model_is_one_file_plus_one_registration(toy, tmp_path):
    torch.manual_seed(0)
    model = build_model("toy_small", 3)
    assert isinstance(model, ToyNet) and model.scale == 3 and preset_of(model) == "toy_small"
    assert architecture(model).official_layout is False

    # saved and rebuilt from the file alone
    path = save_checkpoint(model, tmp_path / "toy.pt")
    back = load_checkpoint(path)
    assert type(back) is ToyNet and back.config == model.config
    for a, b in zip(model.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # upscaled through the library's upscale path (the `upscale` command's)
    lr = save_image(torch.rand(3, 10, 12), tmp_path / "in" / "photo.png")
    written, failed = upscale.upscale_files(back, [lr], tmp_path / "out", 3, log=lambda s: None)
    assert (written, failed) == (1, 0)
    with Image.open(tmp_path / "out" / "photo_x3.png") as im:
        assert im.size == (36, 30)


def test_a_new_models_damaged_config_is_refused_before_building(toy, tmp_path):
    path = save_checkpoint(build_model("toy_small", 2), tmp_path / "toy.pt")
    record = torch.load(path, weights_only=True)
    record["config"]["n_feats"] = 7  # edited: no longer fits the tensors
    torch.save(record, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="edited.pt.*n_feats.*differ from the file's"):
        load_checkpoint(tmp_path / "edited.pt")


# ------------------------------------------------------------------ through the CLI


def _image_folder(folder, n: int = 4, size: int = 24):
    """``n`` smooth RGB images of ``size`` x ``size``: a tiny folder of HR images."""
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        x = torch.rand(1, 3, size // 4, size // 4, generator=g)
        save_image(F.interpolate(x, size=(size, size), mode="bilinear")[0], folder / f"{i}.png")
    return folder


@pytest.fixture
def toy_cli():
    """One registration: the preset ``toy``, as a model file's line would add it."""

    @register_model(ToyNet, n_feats=4)
    def toy(scale: int = 2) -> ToyNet:
        """ToyNet, 4 features: trained and used through the command line."""
        return ToyNet(n_feats=4, scale=scale)

    yield toy
    unregister_model("toy")


def test_a_registered_model_trains_and_upscales_through_the_cli(toy_cli, tmp_path, capsys):
    """Adding a model is one file plus one registration: ``--model toy`` trains it and
    ``upscale`` runs the result, with no other edit anywhere."""
    from edsr_lab import cli
    from edsr_lab.inference import super_resolve
    from edsr_lab.io import load_image

    data = _image_folder(tmp_path / "hr")
    out = tmp_path / "run"
    args = ["train", "--model", "toy", "--data", str(data), "--out", str(out), "--device", "cpu"]
    args += ["--iters", "3", "--batch-size", "2", "--patch-size", "8", "--eval-every", "3"]
    assert cli.main([*args, "--save-every", "3"]) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "model: toy x2" in stdout
    trained = load_checkpoint(out / "best.pt")
    assert type(trained) is ToyNet and preset_of(trained) == "toy"
    fresh = build_model("toy", 2)
    assert any(  # it was trained: 3 Adam steps moved the weights
        not torch.equal(a, b)
        for a, b in zip(trained.state_dict().values(), fresh.state_dict().values(), strict=True)
    )

    lr = save_image(torch.rand(3, 10, 12), tmp_path / "in" / "photo.png")
    code = cli.main(["upscale", str(lr), "--checkpoint", str(out / "best.pt"),
                     "--out", str(tmp_path / "up"), "--device", "cpu"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    written = load_image(tmp_path / "up" / "photo_x2.png")
    expected = super_resolve(trained, load_image(lr))
    assert written.shape == (3, 20, 24)
    assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6  # the model's output, 8-bit

    # a name the registry does not know: one line naming close ones, exit 2, nothing written
    code = cli.main([*args[:2], "tooy", *args[3:5], "--out", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "did you mean 'toy'" in err
    assert not (tmp_path / "no").exists()


def test_the_help_lists_the_registrys_own_presets():
    """``--help`` names the presets from a literal (it must not load torch): it is the
    registry's list of the package's own models."""
    from edsr_lab.train.config import BUILTIN_MODELS

    assert BUILTIN_MODELS == tuple(
        n for n in model_names() if get_model(n).factory.__module__.startswith("edsr_lab.")
    )
