"""Notebook 05 (L1 vs L2), reference solutions of its "Your turn" cells.

Open one in the notebook with ``%load -s loss_and_gradient ../edsr_lab/solutions/nb05.py``.
Both are checked against PyTorch's autograd on ``F.l1_loss`` / ``F.mse_loss``, the losses
``edsr_lab.train`` uses.
"""

from __future__ import annotations

import torch

from edsr_lab.errors import BadArgumentError


def loss_and_gradient(
    y: torch.Tensor, t: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean L1 or L2 loss of prediction ``y`` against target ``t`` and its gradient.

    With e = y - t over N values: L1 = mean |e|, dL1/dy = sign(e) / N;
    L2 = mean e^2, dL2/dy = 2 e / N.

    Returns:
        (loss, gradient): a 0-dim tensor and a tensor shaped like ``y``.
    """
    e = (y - t).detach()
    n = e.numel()
    if loss == "l1":
        return e.abs().mean(), e.sign() / n
    if loss == "l2":
        return (e**2).mean(), 2 * e / n
    raise BadArgumentError(f"loss must be 'l1' or 'l2', got {loss!r}")


def gradient_share(error: torch.Tensor, loss: str, top: float = 0.1) -> float:
    """Share of the gradient's total size that the ``top`` fraction of values with the
    largest absolute error supply.

    Under L1 every value's gradient has the same size (1/N), so the share is the fraction
    of values itself; under L2 it is proportional to |error|.
    """
    err = error.abs().flatten()
    grad = torch.ones_like(err) if loss == "l1" else err
    chosen = err >= err.quantile(1 - top)
    return float(grad[chosen].sum() / grad.sum())
