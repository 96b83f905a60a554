"""Diagrams drawn by code: each renders without a display and shows what its model has."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from edsr_lab import diagrams  # noqa: E402
from edsr_lab.errors import BadArgumentTypeError  # noqa: E402
from edsr_lab.models import (  # noqa: E402
    EDSR,
    MDSR,
    ResBlock,
    count_parameters,
    edsr_baseline,
    mdsr_baseline,
    srresnet,
)


def _texts(fig) -> str:
    """Every label of the figure, after drawing it to PNG as a notebook would."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def test_residual_blocks_side_by_side():
    before = plt.get_fignums()
    text = _texts(diagrams.residual_blocks())
    assert plt.get_fignums() == before  # not registered with pyplot
    assert "SRResNet block" in text and "EDSR block" in text
    for label in ("BN", "PReLU", "ReLU", "\u00d7 0.1", "skip", "+", "conv 3x3\n256\u2192256"):
        assert label in text, label
    assert "74,176 parameters" in text  # SRResNet's block, counted from the layers


def test_residual_blocks_are_read_from_the_blocks_given():
    plain = ResBlock(32)  # no BN, res_scale 1: no multiply box
    text = _texts(diagrams.residual_blocks([plain], titles=["mine"]))
    assert "mine" in text and "conv 3x3\n32\u219232" in text
    assert "BN" not in text and "res_scale" not in text
    with pytest.raises(BadArgumentTypeError, match="residual blocks"):
        diagrams.residual_blocks([torch.nn.Conv2d(3, 3, 3)])


def test_edsr_network_shows_its_parts_from_the_model():
    model = edsr_baseline(2)
    text = _texts(diagrams.network(model))
    for label in ("sub_mean", "add_mean", "head", "tail", "global skip", "16 \u00d7 ResBlock",
                  "64 features", "conv 3x3\n64\u2192256", "pixel\nshuffle x2",
                  "upsampler x2 (this model)"):  # fmt: skip
        assert label in text, label
    assert f"{count_parameters(model):,} trainable parameters" in text
    assert "upsampler x3" not in text


def test_network_follows_other_arguments_and_draws_other_scales():
    with torch.device("meta"):
        model = EDSR(8, 32, 3, res_scale=0.1)
    text = _texts(diagrams.network(model, scales=(2, 3, 4)))
    assert "8 \u00d7 ResBlock" in text and "32 features" in text and "\u00d7 0.1" in text
    assert "16 \u00d7" not in text
    assert "upsampler x3 (this model)" in text and "upsampler x4" in text
    assert "pixel\nshuffle x3" in text and "conv 3x3\n32\u2192288" in text  # 9F at x3
    srr = _texts(diagrams.network(srresnet(4)))
    assert "SRResNet x4" in srr and "PReLU" in srr and "BN" in srr and "res_scale" not in srr
    with pytest.raises(BadArgumentTypeError, match="diagrams.mdsr"):
        diagrams.network(MDSR(2, 8))


def test_mdsr_lanes_per_scale_around_a_shared_body():
    with torch.device("meta"):
        model = mdsr_baseline()
    text = _texts(diagrams.mdsr(model))
    for s in (2, 3, 4):
        assert f"x{s} pre-process" in text and f"x{s} upsampler" in text
    for label in ("2 \u00d7 ResBlock 5x5", "body (shared)", "16 \u00d7 ResBlock 3x3",
                  "head (shared)", "tail (shared)", "global skip", "3,227,203"):  # fmt: skip
        assert label in text, label
    two = _texts(diagrams.mdsr(MDSR(4, 16, scales=(2, 4))))
    assert "x4 upsampler" in two and "x3 pre-process" not in two and "4 \u00d7 ResBlock 3x3" in two
    with pytest.raises(BadArgumentTypeError, match="diagrams.network"):
        diagrams.mdsr(edsr_baseline(2))
