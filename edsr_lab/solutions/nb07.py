"""Reference solutions of notebook 07's "Your turn" cells (training on DIV2K).

Read these after trying: the notebook checks your version against
``edsr_lab.data.PatchSampler`` / ``center_crop_pair`` and against the learning rates
``edsr_lab.train.train`` used, and, while yours is not written yet, runs these instead.
"""

from __future__ import annotations

import torch

__all__ = ["crop_pair", "paper_lr"]


def crop_pair(
    hr: torch.Tensor, lr: torch.Tensor, y: int, x: int, p: int, s: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The aligned training pair whose LR patch has its top-left corner at (y, x).

    Args:
        hr: (C, s*h, s*w) HR image; lr: (C, h, w) its LR image (MATLAB bicubic / s).
        y, x: top-left corner of the LR patch, in LR pixels.
        p: LR patch side (48 in the paper); s: the scale.

    Returns:
        ``(lr[:, y:y+p, x:x+p], hr[:, s*y:s*(y+p), s*x:s*(x+p)])``: LR pixel (i, j) stands for
        the s x s HR block starting at (s*i, s*j), so the HR patch starts at (s*y, s*x) and is
        s*p wide.
    """
    return lr[:, y : y + p, x : x + p], hr[:, s * y : s * (y + p), s * x : s * (x + p)]


def paper_lr(step: int, lr: float = 1e-4, every: int = 200_000, gamma: float = 0.5) -> float:
    """The paper's learning rate at update ``step`` (0-based): halved every ``every`` updates.

    ``lr * gamma ** (step // every)``: 1e-4 for updates 0..199,999, 5e-5 from 200,000, ...
    """
    return lr * gamma ** (step // every)
