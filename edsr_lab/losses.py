"""The training losses, in one table: name -> function, official scale, description.

Lim et al. (2017, section 4.2) train with L1 and report that it beats L2 (the MSE that
PSNR rewards) in both PSNR and convergence; notebook 05 repeats the comparison.

Our models speak [0, 1] pixels, the official code 0..255 pixels, so a loss value here is
the official one divided by ``255 ** power`` (L1: 255, L2: 255^2).
:attr:`Loss.official_scale` converts, which is what logging and Adam's ``eps`` need (Adam
is invariant to the loss scale except for ``eps``).

How to add a loss: one entry in :data:`LOSSES` for a loss of the package, or, from your
own code, one :func:`register_loss` call (a name, a function ``(sr, hr) -> 0-d tensor`` on
float (N, C, H, W) in [0, 1], its power, a one-line description)::

    def charbonnier(sr, hr, eps=1e-3):
        return torch.sqrt((sr - hr) ** 2 + eps**2).mean()

    register_loss("charbonnier", charbonnier, power=1, description="smooth L1 (LapSRN)")

Everything that offers or uses a loss reads this table: ``TrainConfig.loss`` and its
check, ``--loss`` (its choices are read when the parser is built), the training step, the
check before a checkpoint is saved, Adam's ``eps`` and the logged official-scale loss.
``tests/test_losses.py`` trains with a registered loss through ``python -m edsr_lab train``.

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

__all__ = [
    "LOSSES",
    "PAPER_LOSS",
    "Loss",
    "get_loss",
    "loss_names",
    "register_loss",
    "unregister_loss",
]

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


#: The losses the package defines (the others came from :func:`register_loss`).
BUILTIN_LOSSES = tuple(LOSSES)


def register_loss(
    name: str,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    power: int,
    description: str,
    replace: bool = False,
) -> Loss:
    """Add a loss to :data:`LOSSES`, so ``TrainConfig(loss=name)`` and ``--loss name`` train
    with it. Returns its :class:`Loss`.

    Args:
        name: what ``loss=`` / ``--loss`` will say; letters, digits, ``_`` and ``-``.
        fn: ``(sr, hr) -> 0-d tensor`` on float tensors of one shape in [0, 1]; it must
            be differentiable in ``sr``.
        power: the degree of homogeneity in the pixel values (1 for L1-like losses, 2 for
            squared ones): scales the loss to the official 0..255 units and Adam's eps.
        description: one line for tables and ``--help``.
        replace: replace a loss of that name that you registered before (e.g. a notebook
            cell that runs again); the package's own losses cannot be replaced.

    Raises:
        BadArgumentError: a name that is taken, or not a plain word; a power that is not
            a whole number >= 1; a ``fn`` that is not callable.
    """
    ok_name = isinstance(name, str) and name.replace("_", "").replace("-", "").isalnum()
    if not ok_name:
        raise BadArgumentError(
            f"register_loss: name {name!r} must be a plain word (letters, digits, _ or -), "
            "e.g. 'charbonnier'"
        )
    if name in BUILTIN_LOSSES or (name in LOSSES and not replace):
        raise BadArgumentError(
            f"register_loss: a loss named {name!r} exists already; choose another name"
            + ("" if name in BUILTIN_LOSSES else ", or pass replace=True")
        )
    if not callable(fn):
        raise BadArgumentError(f"register_loss({name!r}): fn must be callable, got {fn!r}")
    if isinstance(power, bool) or not isinstance(power, int) or power < 1:
        raise BadArgumentError(
            f"register_loss({name!r}): power={power!r} must be a whole number >= 1 "
            "(1 for L1-like losses, 2 for squared errors)"
        )
    LOSSES[name] = Loss(name, fn, power, str(description))
    return LOSSES[name]


def unregister_loss(name: str) -> None:
    """Remove a loss added with :func:`register_loss` (the package's own stay)."""
    get_loss(name)
    if name in BUILTIN_LOSSES:
        raise BadArgumentError(f"unregister_loss: {name!r} is one of the package's losses")
    del LOSSES[name]


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
