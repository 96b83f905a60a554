"""The training losses, in one table: name -> function, official scale, description.

Lim et al. (2017, section 4.2) train with L1 and report that it beats L2 (the MSE that
PSNR rewards) in both PSNR and convergence; notebook 05 repeats the comparison.

Our models speak [0, 1] pixels, the official code 0..255 pixels, so a loss value here is
the official one divided by ``255 ** power`` (L1: 255, L2: 255^2).
:attr:`Loss.official_scale` converts, which is what logging and Adam's ``eps`` need (Adam
is invariant to the loss scale except for ``eps``).

How to add a loss: one entry in :data:`LOSSES` (a name, a function ``(sr, hr) -> 0-d
tensor`` on float (N, C, H, W) in [0, 1], its power, a one-line description). Everything
that offers a loss (``TrainConfig.loss``, ``--loss``) reads the names from here.

Importing this module does not import torch (the command line lists the names in its
``--help`` before torch is loaded); the functions import it when first called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edsr_lab.errors import BadArgumentError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["LOSSES", "PAPER_LOSS", "Loss", "get_loss", "loss_names"]

#: The loss the paper trains with (section 4.2); the paper's result rows assume it.
PAPER_LOSS = "l1"


def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (the paper's loss): float tensors of one shape -> 0-d tensor."""
    import torch.nn.functional as F  # here: importing edsr_lab.losses must not load torch

    return F.l1_loss(sr, hr)


def l2_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean squared error (what PSNR rewards): float tensors of one shape -> 0-d tensor."""
    import torch.nn.functional as F  # here: importing edsr_lab.losses must not load torch

    return F.mse_loss(sr, hr)


@dataclass(frozen=True)
class Loss:
    """One training loss.

    Attributes:
        name: what ``TrainConfig.loss`` / ``--loss`` say ("l1").
        fn: ``(sr, hr) -> 0-d tensor``, on float tensors of one shape in [0, 1].
        power: the loss is homogeneous of this degree in the pixel values, so on
            0..rgb_range pixels it is ``rgb_range ** power`` times larger.
        description: one line for tables and ``--help``.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    power: int
    description: str

    def official_scale(self, rgb_range: float = 255.0) -> float:
        """Factor from this loss on [0, 1] pixels to the official code's on 0..rgb_range
        (L1: 255, L2: 255^2 at the default)."""
        return float(rgb_range) ** self.power


#: Every loss, by name; the paper's (:data:`PAPER_LOSS`) first.
LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("l1", l1_loss, 1, "mean absolute error; the paper's loss (section 4.2)"),
        Loss("l2", l2_loss, 2, "mean squared error; what PSNR measures, trains worse"),
    )
}


def loss_names() -> tuple[str, ...]:
    """The names of the losses, the paper's (:data:`PAPER_LOSS`) first."""
    return tuple(LOSSES)


def get_loss(name: str) -> Loss:
    """The :class:`Loss` called ``name``; BadArgumentError listing the names otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise BadArgumentError(
            f"loss {name!r} is not known; use one of {', '.join(loss_names())} "
            f"(--loss {PAPER_LOSS}, loss={PAPER_LOSS!r} from Python)"
        ) from None
