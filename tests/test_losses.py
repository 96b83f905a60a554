"""edsr_lab.losses: one table of losses, their official scale, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from edsr_lab import losses
from edsr_lab.errors import BadArgumentError


def test_names_paper_loss_first():
    assert losses.loss_names() == ("l1", "l2")
    assert losses.PAPER_LOSS == losses.loss_names()[0]


def test_functions_match_pytorch_and_scale_to_the_official_values():
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    l1, l2 = losses.get_loss("l1"), losses.get_loss("l2")
    torch.testing.assert_close(l1.fn(sr, hr), F.l1_loss(sr, hr))
    torch.testing.assert_close(l2.fn(sr, hr), F.mse_loss(sr, hr))
    assert (l1.official_scale(), l2.official_scale()) == (255.0, 255.0**2)
    # the scale is what turns our [0, 1] loss into the official 0..255 one
    for loss in (l1, l2):
        official = loss.fn(sr * 255, hr * 255)
        torch.testing.assert_close(official, loss.fn(sr, hr) * loss.official_scale())
    assert l1.official_scale(1.0) == 1.0


def test_unknown_loss_lists_the_names():
    with pytest.raises(BadArgumentError, match="'charbonnier' is not known; use one of l1, l2"):
        losses.get_loss("charbonnier")
    with pytest.raises(BadArgumentError):
        losses.get_loss(["l1"])


def test_importing_losses_does_not_import_torch():
    code = "import sys, edsr_lab.losses as l; l.loss_names(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture
def charbonnier():
    """One registration: a Charbonnier loss (smooth L1, LapSRN's), counting its calls."""
    calls: list[int] = []

    def charbonnier(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.sqrt((sr - hr) ** 2 + 1e-3**2).mean()

    losses.register_loss("charbonnier", charbonnier, power=1, description="smooth L1")
    yield calls
    losses.unregister_loss("charbonnier")
    assert "charbonnier" not in losses.loss_names()


def test_register_loss_refuses_what_cannot_work(charbonnier):
    with pytest.raises(BadArgumentError, match="exists already; choose another name, or pass"):
        losses.register_loss("charbonnier", F.l1_loss, power=1, description="")
    with pytest.raises(BadArgumentError, match="'l1' exists already; choose another name$"):
        losses.register_loss("l1", F.l1_loss, power=1, description="", replace=True)
    with pytest.raises(BadArgumentError, match="plain word"):
        losses.register_loss("l 3", F.l1_loss, power=1, description="")
    with pytest.raises(BadArgumentError, match="power=0"):
        losses.register_loss("l0", F.l1_loss, power=0, description="")
    with pytest.raises(BadArgumentError, match="one of the package's losses"):
        losses.unregister_loss("l2")
    assert losses.loss_names() == ("l1", "l2", "charbonnier")


def test_a_registered_loss_trains_through_the_cli(charbonnier, tmp_path, capsys):
    """Adding a loss is one register_loss call: ``--loss charbonnier`` trains with it (the
    step and the check before saving call it), and differs from an L1 run."""
    from edsr_lab import cli
    from edsr_lab.io import save_image
    from edsr_lab.train import load_training_checkpoint

    g = torch.Generator().manual_seed(0)
    data = tmp_path / "hr"
    for i in range(4):
        x = torch.rand(1, 3, 6, 6, generator=g)
        save_image(F.interpolate(x, size=(24, 24), mode="bilinear")[0], data / f"{i}.png")
    base = ["train", "--data", str(data), "--device", "cpu", "--n-resblocks", "1"]
    base += ["--n-feats", "8", "--iters", "3", "--batch-size", "2", "--patch-size", "8"]
    base += ["--eval-every", "3", "--save-every", "3"]

    assert cli.main([*base, "--loss", "charbonnier", "--out", str(tmp_path / "c")]) == 0
    assert len(charbonnier) >= 3 + 1  # 3 steps and the check before saving last.pt
    assert cli.main([*base, "--loss", "l1", "--out", str(tmp_path / "l1")]) == 0
    capsys.readouterr()
    mine = load_training_checkpoint(tmp_path / "c" / "last.pt")
    l1 = load_training_checkpoint(tmp_path / "l1" / "last.pt")
    assert mine["config"]["loss"] == "charbonnier"
    # the same first batch and weights: sqrt(d^2 + eps^2) > |d| everywhere
    first_c, first_l1 = mine["history"]["loss"][0], l1["history"]["loss"][0]
    assert first_l1 < first_c < first_l1 + 2e-3
    assert not torch.equal(mine["model"]["head.0.weight"], l1["model"]["head.0.weight"])

    # a loss that is not registered: argparse's one line, exit 2
    assert cli.main([*base, "--loss", "charbonier", "--out", str(tmp_path / "x")]) == 2
    assert "invalid choice: 'charbonier'" in capsys.readouterr().err
