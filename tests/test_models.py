"""Tests for edsr_lab.models: shapes, parameter counts, the [0, 1] interface, input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edsr_lab.config import DIV2K_MEAN
from edsr_lab.errors import ImageTypeError, ModelInputError
from edsr_lab.models import (
    EDSR,
    GRAY_MEAN,
    MDSR,
    MeanShift,
    ResBlock,
    SRResNet,
    Upsampler,
    count_parameters,
    edsr,
    edsr_baseline,
    mdsr,
    mdsr_baseline,
    srresnet,
)

SCALES = (2, 3, 4)


def tiny(kind: str, scale: int = 2, n_colors: int = 3) -> nn.Module:
    """Small models: these tests are about wiring, not capacity."""
    if kind == "edsr":
        return EDSR(2, 8, scale, n_colors=n_colors)
    if kind == "srresnet":
        return SRResNet(2, 8, scale, n_colors=n_colors)
    return MDSR(1, 8, SCALES, n_colors=n_colors)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("n_colors", [3, 1])
@pytest.mark.parametrize("kind", ["edsr", "srresnet", "mdsr"])
def test_output_shape_every_scale(kind, n_colors):
    torch.manual_seed(0)
    x = torch.rand(2, n_colors, 7, 5)  # odd sizes catch off-by-one padding
    mdsr_model = tiny("mdsr", n_colors=n_colors) if kind == "mdsr" else None
    for s in SCALES:
        model = mdsr_model if kind == "mdsr" else tiny(kind, s, n_colors)
        model.eval()
        with torch.no_grad():
            y = model(x, s)
        assert y.shape == (2, n_colors, 7 * s, 5 * s)
        assert y.dtype == torch.float32
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("mode", ["pixelshuffle", "deconv", "nearest_conv"])
def test_upsampler_modes_give_exact_size(mode):
    for s in (2, 3, 4, 8):
        up = Upsampler(s, 4, mode=mode)
        assert up(torch.rand(1, 4, 5, 3)).shape == (1, 4, 5 * s, 3 * s)
    model = EDSR(1, 8, 3, upsampler=mode).eval()
    assert model(torch.rand(1, 3, 4, 6)).shape == (1, 3, 12, 18)


def test_upsampler_pixelshuffle_layout_matches_official():
    # x2: conv to 4F + shuffle; x4: two of those (tail.0.0, tail.0.2); x3: conv to 9F.
    assert [type(m) for m in Upsampler(2, 8)] == [nn.Conv2d, nn.PixelShuffle]
    x4 = Upsampler(4, 8)
    assert [type(m) for m in x4] == [nn.Conv2d, nn.PixelShuffle] * 2
    assert x4[0].out_channels == 32 and x4[2].out_channels == 32
    assert Upsampler(3, 8)[0].out_channels == 72
    with_act = Upsampler(4, 8, act="prelu")
    assert isinstance(with_act[2], nn.PReLU) and isinstance(with_act[5], nn.PReLU)
    assert with_act[2] is not with_act[5]  # learnable activations are not shared


@pytest.mark.parametrize("scale", [5, 6, 1, 0, 2.5])
def test_upsampler_unsupported_scale(scale):
    with pytest.raises(ValueError, match=r"supported scales: 3 and the powers of two"):
        Upsampler(scale, 8)
    with pytest.raises(ValueError, match="supported scales"):
        EDSR(1, 8, scale)


def test_upsampler_unknown_mode():
    with pytest.raises(ValueError, match="pixelshuffle"):
        Upsampler(2, 8, mode="bicubic")


def test_n_colors_must_be_1_or_3():
    for bad in (2, 4):
        with pytest.raises(ValueError, match="n_colors must be 3"):
            EDSR(1, 8, 2, n_colors=bad)
        with pytest.raises(ValueError, match="n_colors must be 3"):
            MDSR(1, 8, n_colors=bad)


# ------------------------------------------------------------------ parameter counts

OFFICIAL_COUNTS = {
    ("edsr_baseline", 2): 1_369_859,
    ("edsr_baseline", 3): 1_554_499,
    ("edsr_baseline", 4): 1_517_571,
    ("edsr", 2): 40_729_603,
    ("edsr", 3): 43_680_003,
    ("edsr", 4): 43_089_923,
}


@pytest.mark.parametrize(("preset", "scale"), list(OFFICIAL_COUNTS))
def test_parameter_counts_match_official_code(preset, scale):
    # The meta device builds the 43M-parameter model without allocating or initialising it.
    with torch.device("meta"):
        model = {"edsr_baseline": edsr_baseline, "edsr": edsr}[preset](scale)
    assert count_parameters(model) == OFFICIAL_COUNTS[(preset, scale)]


def test_mdsr_parameter_counts_match_official_code():
    with torch.device("meta"):
        assert count_parameters(mdsr_baseline()) == 3_227_203
        assert count_parameters(mdsr()) == 7_953_987


def test_srresnet_about_1_5m_parameters():
    with torch.device("meta"):
        n = count_parameters(srresnet(4))
    assert 1_400_000 <= n <= 1_600_000  # exactly 1,550,659 with per-channel PReLUs
    assert n == 1_550_659


def test_presets_follow_table_1():
    with torch.device("meta"):
        big, base, srr = edsr(4), edsr_baseline(3), srresnet(4)
        m80 = mdsr()
    assert (big.config["n_resblocks"], big.config["n_feats"], big.config["res_scale"]) == (
        32,
        256,
        0.1,
    )
    assert (base.config["n_resblocks"], base.config["n_feats"], base.scale) == (16, 64, 3)
    assert base.config["res_scale"] == 1.0 and all(b.res_scale == 0.1 for b in big.body[:-1])
    assert srr.scale == 4 and isinstance(srr.body[0].body[1], nn.BatchNorm2d)
    assert m80.config["n_resblocks"] == 80 and m80.scales == (2, 3, 4)


# ------------------------------------------------------------------------ mean shift


def test_meanshift_is_frozen_and_excluded_from_count():
    model = EDSR(1, 8, 2)
    for layer in (model.sub_mean, model.add_mean):
        assert not layer.weight.requires_grad and not layer.bias.requires_grad
    # Two frozen 1x1 convs (3x3 weight + 3 bias each) are all that differ.
    assert count_parameters(model, trainable_only=False) - count_parameters(model) == 24
    assert "sub_mean.weight" in model.state_dict()


def test_meanshift_values():
    x = torch.rand(1, 3, 4, 4) * 255
    sub, add = MeanShift(255, sign=-1), MeanShift(255, sign=1)
    mean = torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(sub(x), x - mean)
    torch.testing.assert_close(add(sub(x)), x, rtol=0, atol=1e-4)
    std = MeanShift(1, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    torch.testing.assert_close(
        std(torch.ones(1, 3, 1, 1)).flatten(),
        torch.tensor([2.0, 1.0, 0.5]),  # (1 - 0.5) / std
    )
    with pytest.raises(ValueError, match="sign"):
        MeanShift(255, sign=0)


def test_model_with_zero_tail_outputs_the_dataset_mean():
    # Zeroing the last conv leaves only add_mean: output = mean in [0, 1] units. Checks the
    # x255 scaling, the mean shift and the division back, for RGB and grey models.
    for n_colors, mean in ((3, DIV2K_MEAN), (1, (GRAY_MEAN,))):
        model = EDSR(1, 8, 2, n_colors=n_colors).eval()
        nn.init.zeros_(model.tail[1].weight)
        nn.init.zeros_(model.tail[1].bias)
        with torch.no_grad():
            y = model(torch.rand(1, n_colors, 3, 3))
        expected = torch.tensor(mean).view(1, n_colors, 1, 1).expand_as(y)
        torch.testing.assert_close(y, expected, rtol=0, atol=1e-5)
    assert abs(GRAY_MEAN - 0.43683) < 1e-4  # BT.601 luma of the DIV2K mean


def test_untrained_output_range_is_sane_and_not_clamped():
    torch.manual_seed(0)
    model = edsr_baseline(2).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 12, 12))
    assert torch.isfinite(y).all()
    assert -1 < y.min() and y.max() < 2  # near the data range, around the mean
    assert abs(y.mean().item() - sum(DIV2K_MEAN) / 3) < 0.15
    # Not clamped: a huge tail bias shows through unchanged.
    with torch.no_grad():
        model.tail[1].bias.fill_(255.0)
        assert model(torch.rand(1, 3, 4, 4)).min() > 1.0


# ---------------------------------------------------------------------- blocks, names


def test_resblock_layout_and_res_scale():
    block = ResBlock(4, 3, res_scale=0.1)
    assert [type(m) for m in block.body] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert set(block.state_dict()) == {
        "body.0.weight",
        "body.0.bias",
        "body.2.weight",
        "body.2.bias",
    }
    x = torch.randn(1, 4, 5, 5)
    c0, c2 = block.body[0], block.body[2]
    manual = x + 0.1 * F.conv2d(
        F.relu(F.conv2d(x, c0.weight, c0.bias, padding=1)), c2.weight, c2.bias, padding=1
    )
    torch.testing.assert_close(block(x), manual)
    bn = ResBlock(4, bn=True, act="prelu")
    assert [type(m) for m in bn.body] == [
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.PReLU,
        nn.Conv2d,
        nn.BatchNorm2d,
    ]
    assert ResBlock(4, 5).body[0].kernel_size == (5, 5)


def test_edsr_module_names_are_official():
    model = EDSR(2, 8, 4)
    names = [n for n, _ in model.named_children()]
    assert names == ["sub_mean", "head", "body", "tail", "add_mean"]
    assert len(model.body) == 3 and isinstance(model.body[2], nn.Conv2d)
    assert isinstance(model.tail[0], Upsampler) and isinstance(model.tail[1], nn.Conv2d)
    mdsr_model = MDSR(1, 8)
    assert [n for n, _ in mdsr_model.named_children()] == [
        "sub_mean",
        "head",
        "pre_process",
        "body",
        "upsample",
        "tail",
        "add_mean",
    ]
    assert mdsr_model.pre_process[0][0].body[0].kernel_size == (5, 5)


def test_edsr_options():
    assert isinstance(EDSR(1, 8, 2, act="prelu").body[0].body[1], nn.PReLU)
    assert isinstance(EDSR(1, 8, 2, batch_norm=True).body[0].body[1], nn.BatchNorm2d)
    assert EDSR(1, 8, 2, kernel_size=5).head[0].kernel_size == (5, 5)
    with pytest.raises(ValueError, match="act="):
        EDSR(1, 8, 2, act="swish")
    cfg = EDSR(3, 16, 4, 0.5, upsampler="deconv").config
    assert cfg == {
        "n_resblocks": 3,
        "n_feats": 16,
        "scale": 4,
        "res_scale": 0.5,
        "kernel_size": 3,
        "batch_norm": False,
        "upsampler": "deconv",
        "n_colors": 3,
        "rgb_range": 255.0,
        "act": "relu",
    }


def test_edsr_forward_matches_hand_written_graph():
    torch.manual_seed(0)
    model = EDSR(1, 4, 2).eval()
    x = torch.rand(1, 3, 5, 5)
    sd = model.state_dict()

    def conv(t, key, pad=1):
        return F.conv2d(t, sd[key + ".weight"], sd[key + ".bias"], padding=pad)

    h = conv(x * 255, "sub_mean", 0)
    h = conv(h, "head.0")
    r = h + conv(F.relu(conv(h, "body.0.body.0")), "body.0.body.2")
    h = conv(r, "body.1") + h
    y = conv(F.pixel_shuffle(conv(h, "tail.0.0"), 2), "tail.1")
    y = conv(y, "add_mean", 0) / 255
    torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-5)


def _randomised(model: nn.Module) -> nn.Module:
    """Every trainable tensor and batch-norm statistic random, so no wiring mistake can
    hide behind an identity-like initialisation (BN var 1, PReLU 0.25)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.is_floating_point() and not name.startswith(("sub_mean", "add_mean")):
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
    return model.eval()


def _conv(t, sd, key, pad):
    return F.conv2d(t, sd[key + ".weight"], sd[key + ".bias"], padding=pad)


def _bn(t, sd, key):
    return F.batch_norm(
        t,
        sd[key + ".running_mean"],
        sd[key + ".running_var"],
        sd[key + ".weight"],
        sd[key + ".bias"],
        training=False,
        eps=1e-5,
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_forward_matches_hand_written_graph(scale):
    model = _randomised(SRResNet(2, 4, scale))
    sd = model.state_dict()
    x = torch.rand(1, 3, 5, 5)

    h = _conv(x * 255, sd, "sub_mean", 0)
    h = F.prelu(_conv(h, sd, "head.0", 4), sd["head.1.weight"])  # 9x9 head, PReLU
    skip = h
    for i in range(2):  # conv-BN-PReLU-conv-BN + identity
        b = f"body.{i}.body."
        r = F.prelu(_bn(_conv(h, sd, b + "0", 1), sd, b + "1"), sd[b + "2.weight"])
        h = h + _bn(_conv(r, sd, b + "3", 1), sd, b + "4")
    h = _bn(_conv(h, sd, "body.2", 1), sd, "body.3") + skip  # the global skip
    stages = [3] if scale == 3 else [2] * (scale // 2)
    for j, f in enumerate(stages):  # (conv, shuffle, PReLU) per stage
        h = F.pixel_shuffle(_conv(h, sd, f"tail.0.{3 * j}", 1), f)
        h = F.prelu(h, sd[f"tail.0.{3 * j + 2}.weight"])
    y = _conv(_conv(h, sd, "tail.1", 4), sd, "add_mean", 0) / 255
    torch.testing.assert_close(model(x), y, rtol=1e-4, atol=1e-4)


def test_mdsr_forward_matches_hand_written_graph():
    model = _randomised(MDSR(1, 4, (2, 3, 4)))
    sd = model.state_dict()
    x = torch.rand(1, 3, 5, 5)

    def resblock(t, key, pad):
        return t + _conv(F.relu(_conv(t, sd, key + ".body.0", pad)), sd, key + ".body.2", pad)

    for i, scale in enumerate((2, 3, 4)):
        h = _conv(_conv(x * 255, sd, "sub_mean", 0), sd, "head.0", 1)
        h = resblock(resblock(h, f"pre_process.{i}.0", 2), f"pre_process.{i}.1", 2)  # 5x5
        b = _conv(resblock(h, "body.0", 1), sd, "body.1", 1) + h  # shared body + skip
        stages = [3] if scale == 3 else [2] * (scale // 2)
        for j, f in enumerate(stages):
            b = F.pixel_shuffle(_conv(b, sd, f"upsample.{i}.{2 * j}", 1), f)
        y = _conv(_conv(b, sd, "tail.0", 1), sd, "add_mean", 0) / 255
        torch.testing.assert_close(model(x, scale), y, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------- input errors


def test_rgba_input_gets_a_clear_message():
    model = EDSR(1, 8, 2)
    x = torch.rand(1, 4, 6, 6)
    with pytest.raises(ModelInputError, match=r"3-channel input .* got \(1, 4, 6, 6\); an RGBA"):
        model(x)
    with pytest.raises(ValueError, match=r"load_image\(path, channels=3\)"):
        model(x)
    # The raw PyTorch error the course shows is still there one layer down.
    with pytest.raises(RuntimeError, match="to have 3 channels"):
        model.head(x)


def test_other_input_mistakes():
    model = EDSR(1, 8, 2).eval()
    with pytest.raises(ModelInputError, match=r"unsqueeze\(0\)"):
        model(torch.rand(3, 6, 6))
    with pytest.raises(ModelInputError, match="4-D"):
        model(torch.rand(1, 1, 3, 6, 6))
    # integer pixels: the same ImageTypeError (a TypeError) as in resize, metrics and io
    with pytest.raises(ImageTypeError, match=r"dtype torch.uint8.*x.float\(\) / 255"):
        model(torch.zeros(1, 3, 6, 6, dtype=torch.uint8))
    with pytest.raises(ModelInputError, match="grey image"):
        model(torch.rand(1, 1, 6, 6))
    with pytest.raises(ModelInputError, match=r"permute\(0, 3, 1, 2\)"):
        model(torch.rand(1, 6, 6, 3))
    with pytest.raises(ModelInputError, match="channels=1"):
        EDSR(1, 8, 2, n_colors=1)(torch.rand(1, 3, 6, 6))
    with pytest.raises(ImageTypeError, match="torch.Tensor"):
        model([[0.0]])
    with pytest.raises(ModelInputError, match="empty"):
        model(torch.rand(1, 3, 0, 6))


def test_0_255_input_is_refused_in_eval_mode_only():
    model = EDSR(1, 8, 2).eval()
    x = torch.rand(1, 3, 6, 6) * 255
    with pytest.raises(ModelInputError, match="divide by 255"):
        model(x)
    model.check_range = False
    model(x)  # switched off on purpose
    model.check_range = True
    model.train()
    model(x)  # training steps skip the check (it would sync the device every step)


def test_scale_argument():
    model = EDSR(1, 8, 2).eval()
    x = torch.rand(1, 3, 4, 4)
    assert model(x, 2).shape == model(x).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"built for scale\(s\) \(2,\) but was asked for x3"):
        model(x, 3)
    mdsr_model = MDSR(1, 8, (2, 4)).eval()
    with pytest.raises(ValueError, match=r"\(2, 4\).*x3"):
        mdsr_model(x, 3)
    with pytest.raises(ValueError, match="say which one"):
        mdsr_model(x)
    assert mdsr_model(x, 4).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="distinct"):
        MDSR(1, 8, (2, 2))


def test_mdsr_branches_are_scale_specific():
    torch.manual_seed(0)
    model = MDSR(1, 8).eval()
    x = torch.rand(1, 3, 4, 4)
    y2 = model(x, 2)
    with torch.no_grad():
        model.pre_process[1][0].body[0].weight.add_(1.0)  # the x3 branch only
    torch.testing.assert_close(model(x, 2), y2)
    model2 = MDSR(1, 8).eval()
    model2.load_state_dict(model.state_dict())
    torch.testing.assert_close(model2(x, 3), model(x, 3))


# ------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", ["edsr", "srresnet", "mdsr"])
def test_gradients_reach_every_trainable_parameter(kind):
    torch.manual_seed(0)
    model = tiny(kind, 2).train()
    lr, hr = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 12, 12)
    F.l1_loss(model(lr, 2), hr).backward()
    used = [
        (n, p)
        for n, p in model.named_parameters()
        if p.requires_grad
        and not n.startswith(("pre_process.1", "pre_process.2", "upsample.1", "upsample.2"))
    ]
    assert used
    for name, p in used:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for _, p in used)
    assert model.sub_mean.weight.grad is None
