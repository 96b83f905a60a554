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
