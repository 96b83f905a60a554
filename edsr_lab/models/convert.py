"""Converting other projects' EDSR state dicts to the official EDSR-PyTorch layout.

BasicSR (``basicsr.archs.edsr_arch.EDSR``) is where many users' EDSR weights come from.
Its network is the same as the official one, with other module names and the mean shift
done in ``forward`` instead of by 1x1 convs, so its files carry no mean tensors::

    BasicSR                          official EDSR-PyTorch (what our EDSR loads)
    conv_first.*                     head.0.*
    body.{i}.conv1.* / conv2.*       body.{i}.body.0.* / body.{i}.body.2.*
    conv_after_body.*                body.{B}.*              (B = number of blocks)
    upsample.{j}.*                   tail.0.{j}.*            (pixel-shuffle convs)
    conv_last.*                      tail.1.*
    (img_range 255, DIV2K mean)      sub_mean.*, add_mean.*  (frozen 1x1 convs)

BasicSR saves ``{"params": state_dict}`` (and ``"params_ema"`` for EMA weights, which
:func:`edsr_lab.models.load_official` prefers); that unwrapping happens before this module
sees the dict. BasicSR's ``res_scale`` is 1 for its 16x64 "EDSR_M" and 0.1 for its 32x256
"EDSR_L" models, the values :func:`edsr_lab.models.infer_config` assumes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from edsr_lab.config import RGB_RANGE
from edsr_lab.errors import CheckpointError
from edsr_lab.models.common import MeanShift, dataset_mean

_RENAMES = (
    (re.compile(r"^conv_first\.(weight|bias)$"), r"head.0.\1"),
    (re.compile(r"^body\.(\d+)\.conv1\.(weight|bias)$"), r"body.\1.body.0.\2"),
    (re.compile(r"^body\.(\d+)\.conv2\.(weight|bias)$"), r"body.\1.body.2.\2"),
    (re.compile(r"^upsample\.(\d+)\.(weight|bias)$"), r"tail.0.\1.\2"),
    (re.compile(r"^conv_last\.(weight|bias)$"), r"tail.1.\1"),
)


def is_basicsr_edsr(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a BasicSR EDSR state dict (``conv_first`` + ``conv_after_body`` keys)."""
    return "conv_first.weight" in state_dict and "conv_after_body.weight" in state_dict


def from_basicsr_edsr(
    state_dict: Mapping[str, torch.Tensor], *, source: str = "the state dict"
) -> dict[str, torch.Tensor]:
    """Rename a BasicSR EDSR state dict to the official layout and add the mean shift.

    Args:
        state_dict: BasicSR keys (see the module docstring), already unwrapped from
            ``{"params": ...}``.
        source: how to name it in error messages.

    Returns:
        A new dict with official keys, including ``sub_mean``/``add_mean`` tensors for the
        DIV2K mean at pixel range 255 (BasicSR's ``img_range`` default).

    Raises:
        CheckpointError: a key that fits neither layout (named in the message).
    """
    n_blocks = 0
    while f"body.{n_blocks}.conv1.weight" in state_dict:
        n_blocks += 1
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("conv_after_body."):
            new = f"body.{n_blocks}.{key.split('.', 1)[1]}"
        else:
            for pattern, repl in _RENAMES:
                new, n = pattern.subn(repl, key)
                if n:
                    break
            else:
                raise CheckpointError(
                    f"{source} looks like a BasicSR EDSR state dict but has the key {key!r}, "
                    "which BasicSR's EDSR does not have; is it another BasicSR network?"
                )
        out[new] = value
    n_colors = state_dict["conv_first.weight"].shape[1]
    mean = dataset_mean(n_colors)
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        shift = MeanShift(RGB_RANGE, mean, sign=sign)
        out[f"{name}.weight"] = shift.weight.detach().clone()
        out[f"{name}.bias"] = shift.bias.detach().clone()
    return out
