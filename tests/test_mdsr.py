"""MDSR's multi-scale behaviour: per-scale branches, the official layout, checkpoints.

(The hand-written reference forward pass of MDSR lives in test_models.py.)
"""

from __future__ import annotations

import pytest
import torch

from edsr_lab.config import DIV2K_MEAN
from edsr_lab.models import (
    MDSR,
    count_parameters,
    load_checkpoint,
    load_official,
    mdsr,
    mdsr_baseline,
    save_checkpoint,
)

SCALES = (2, 3, 4)


def official_shapes(n_resblocks: int, n_feats: int, scales=SCALES) -> dict[str, tuple]:
    """Every tensor of the official EDSR-PyTorch MDSR (``model/mdsr.py``), written out by
    hand from that code: name -> shape. MeanShift is a frozen 1x1 conv per side."""
    f = n_feats
    shapes: dict[str, tuple] = {
        "sub_mean.weight": (3, 3, 1, 1),
        "sub_mean.bias": (3,),
        "add_mean.weight": (3, 3, 1, 1),
        "add_mean.bias": (3,),
        "head.0.weight": (f, 3, 3, 3),
        "head.0.bias": (f,),
    }
    for i in range(len(scales)):  # per scale: two residual blocks of 5x5 convolutions
        for j in range(2):
            for c in (0, 2):
                shapes[f"pre_process.{i}.{j}.body.{c}.weight"] = (f, f, 5, 5)
                shapes[f"pre_process.{i}.{j}.body.{c}.bias"] = (f,)
    for k in range(n_resblocks):
        for c in (0, 2):
            shapes[f"body.{k}.body.{c}.weight"] = (f, f, 3, 3)
            shapes[f"body.{k}.body.{c}.bias"] = (f,)
    shapes[f"body.{n_resblocks}.weight"] = (f, f, 3, 3)
    shapes[f"body.{n_resblocks}.bias"] = (f,)
    for i, s in enumerate(scales):  # pixel-shuffle stages: conv to 4F (x2 each) or 9F (x3)
        stages = [3] if s == 3 else [2] * (s.bit_length() - 1)
        for j, r in enumerate(stages):
            shapes[f"upsample.{i}.{2 * j}.weight"] = (r * r * f, f, 3, 3)
            shapes[f"upsample.{i}.{2 * j}.bias"] = (r * r * f,)
    shapes["tail.0.weight"] = (3, f, 3, 3)
    shapes["tail.0.bias"] = (3,)
    return shapes


def official_state_dict(n_resblocks: int, n_feats: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the official layout, mean shifts as the official code sets them."""
    g = torch.Generator().manual_seed(seed)
    sd = {
        k: torch.randn(shape, generator=g) * 0.05
        for k, shape in official_shapes(n_resblocks, n_feats).items()
    }
    mean = torch.tensor(DIV2K_MEAN)
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        sd[f"{name}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        sd[f"{name}.bias"] = sign * 255.0 * mean
    return sd


def _trainable(shapes: dict[str, tuple]) -> int:
    return sum(
        torch.Size(s).numel() for k, s in shapes.items() if not k.startswith(("sub_", "add_"))
    )


# --------------------------------------------------------------- layout and parameter counts


@pytest.mark.parametrize(
    ("factory", "blocks", "count"),
    [(mdsr_baseline, 16, 3_227_203), (mdsr, 80, 7_953_987)],
)
def test_layout_and_parameter_count_are_the_official_ones(factory, blocks, count):
    expected = official_shapes(blocks, 64)
    assert _trainable(expected) == count  # the counts of the official code, from its layout
    with torch.device("meta"):  # no memory, no initialisation: instant
        model = factory()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected  # same names, same shapes, nothing more or less
    assert count_parameters(model) == count
    assert f"body.{blocks}.weight" in got and f"body.{blocks + 1}.weight" not in got


# ----------------------------------------------------------------- per-scale branches


def _outputs(model: MDSR, x: torch.Tensor) -> dict[int, torch.Tensor]:
    with torch.no_grad():
        return {s: model(x, s) for s in model.scales}


@pytest.mark.parametrize(
    ("part", "changes"),
    [
        ("pre_process.0", {2}),
        ("pre_process.1", {3}),
        ("pre_process.2", {4}),
        ("upsample.0", {2}),
        ("upsample.1", {3}),
        ("upsample.2", {4}),
        ("head", {2, 3, 4}),
        ("body", {2, 3, 4}),
        ("tail", {2, 3, 4}),
    ],
)
def test_each_scale_uses_its_own_branch_and_the_shared_parts(part, changes):
    """Perturbing one scale's pre-processing or upsampler changes that scale's output
    only; perturbing a shared part changes every scale's."""
    torch.manual_seed(0)
    model = MDSR(2, 8).eval()
    x = torch.rand(1, 3, 6, 5)
    before = _outputs(model, x)
    with torch.no_grad():
        for p in model.get_submodule(part).parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = _outputs(model, x)
    changed = {s for s in SCALES if not torch.allclose(before[s], after[s], rtol=0, atol=1e-6)}
    assert changed == changes


def test_forward_runs_only_the_modules_of_its_scale():
    model = MDSR(1, 8).eval()
    ran: list[str] = []
    for name in ("pre_process", "upsample"):
        for i, m in enumerate(model.get_submodule(name)):
            m.register_forward_hook(lambda *_, tag=f"{name}.{i}": ran.append(tag))
    x = torch.rand(1, 3, 4, 4)
    for i, s in enumerate(SCALES):
        ran.clear()
        assert model(x, s).shape == (1, 3, 4 * s, 4 * s)
        assert ran == [f"pre_process.{i}", f"upsample.{i}"]


def test_a_step_at_one_scale_leaves_the_other_branches_without_gradient():
    torch.manual_seed(0)
    model = MDSR(1, 8).train()
    model(torch.rand(2, 3, 4, 4), 3).abs().mean().backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:  # the frozen mean shifts
            continue
        own = name.startswith(("pre_process.1.", "upsample.1."))
        other = name.startswith(("pre_process.", "upsample.")) and not own
        if other:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_scale_order_follows_the_constructor():
    """``scales=(4, 2)`` puts x4's branch first; the loaders keep that order."""
    model = MDSR(1, 8, (4, 2))
    assert model.scales == (4, 2)
    assert len(model.upsample[0]) == 4 and len(model.upsample[1]) == 2  # 2 stages vs 1
    loaded = load_official(model.state_dict())
    assert loaded.scales == (4, 2)


# ------------------------------------------------------------------- official weights


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_official_state_dict_loads_and_round_trips_through_our_checkpoints(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    sd = official_state_dict(3, 8)
    path = tmp_path / "mdsr_baseline-tiny.pt"
    torch.save(sd, path)
    official = load_official(path)
    assert isinstance(official, MDSR) and not official.training
    assert official.scales == SCALES
    assert official.config["n_resblocks"] == 3 and official.config["n_feats"] == 8
    for k, v in official.state_dict().items():
        assert torch.equal(v, sd[k]), k  # every tensor where the official code puts it

    ours = save_checkpoint(official, tmp_path / f"mdsr{suffix}")
    back = load_checkpoint(ours)
    assert isinstance(back, MDSR) and back.config == official.config
    x = torch.rand(2, 3, 7, 5)
    want, got = _outputs(official, x), _outputs(back.eval(), x)
    for s in SCALES:
        assert want[s].shape == (2, 3, 7 * s, 5 * s)
        torch.testing.assert_close(got[s], want[s], rtol=0, atol=0)
    # The three scales give three different images (different branches ran).
    down = [torch.nn.functional.avg_pool2d(want[s], s) for s in SCALES]
    assert not torch.allclose(down[0], down[1]) and not torch.allclose(down[1], down[2])


def test_official_file_for_the_baseline_and_the_full_model_is_recognised():
    """infer_config reads the blocks from ``body.16`` / ``body.80`` (full size, meta tensors)."""
    from edsr_lab.models import infer_config

    for blocks in (16, 80):
        with torch.device("meta"):
            sd = {k: torch.empty(s) for k, s in official_shapes(blocks, 64).items()}
        sd["sub_mean.bias"] = -255.0 * torch.tensor(DIV2K_MEAN)  # read for rgb_range
        cfg = infer_config(sd)
        assert cfg["arch"] == "MDSR" and cfg["n_resblocks"] == blocks
        assert cfg["n_feats"] == 64 and cfg["scales"] == list(SCALES)
