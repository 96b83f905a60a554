"""Reference solutions of notebook 10's "Your turn" cells (your own and medical images).

Read these after trying: the notebook checks your version against ``edsr_lab.io.load_image``
and ``edsr_lab.dicom.window`` and, while yours is not written yet, runs these instead.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_uint16", "to_unit", "window"]


def to_unit(a: np.ndarray) -> torch.Tensor:
    """A 16-bit image (uint16 array, any shape) as float32 in [0, 1]: ``a / 65535``.

    Dividing by 65535 (not 255, not the image's own maximum) keeps every level and the same
    scale for every file, so ``to_uint16`` can undo it exactly.
    """
    return torch.from_numpy(a.astype(np.float32) / 65535.0)


def to_uint16(t: torch.Tensor) -> np.ndarray:
    """Undo :func:`to_unit`: float in [0, 1] -> uint16, rounded to the nearest level.

    Values outside [0, 1] (a model's output can overshoot) are clamped first.
    """
    return torch.round(t.clamp(0.0, 1.0) * 65535.0).to(torch.int32).numpy().astype(np.uint16)


def window(values: torch.Tensor, center: float, width: float) -> torch.Tensor:
    """DICOM's linear window (PS3.3 C.11.2.1.2): modality units -> [0, 1] for display.

    Values at or below ``center - 0.5 - (width - 1) / 2`` become 0, values above
    ``center - 0.5 + (width - 1) / 2`` become 1, linear in between.
    """
    out = (values.float() - (center - 0.5)) / (width - 1) + 0.5
    return out.clamp(0.0, 1.0)
