"""Reference solutions of notebook 08's "Your turn" cells (evaluation and self-ensemble).

Read these after trying: the notebook checks your version against
``edsr_lab.data.inverse_dihedral`` and ``super_resolve(..., self_ensemble=True)`` and, while
yours is not written yet, runs these instead.
"""

from __future__ import annotations

import torch
from torch import nn

from edsr_lab.data import dihedral

__all__ = ["self_ensemble", "undo_dihedral"]


def undo_dihedral(y: torch.Tensor, k: int) -> torch.Tensor:
    """Undo ``dihedral(x, k)`` on the last two dims of ``y`` (..., H, W).

    ``dihedral`` flips left-right when ``k >= 4``, then turns ``k % 4`` quarter turns
    counter-clockwise; undoing goes backwards: turn back first, then flip again (a flip is
    its own inverse).
    """
    y = torch.rot90(y, -(k % 4), dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


def self_ensemble(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """EDSR+ by hand: the mean of the model's outputs for the 8 flips/rotations of ``lr``.

    Args:
        model: an SR model taking (N, 3, h, w) in [0, 1].
        lr: (3, h, w) float in [0, 1].

    Returns:
        (3, s*h, s*w) in [0, 1]: each output transformed back, averaged, then clamped.
    """
    device = next(model.parameters()).device
    outs = []
    with torch.inference_mode():
        for k in range(8):
            out = model(dihedral(lr, k)[None].to(device))[0].cpu()
            outs.append(undo_dihedral(out, k))
    return torch.stack(outs).mean(0).clamp(0, 1)
