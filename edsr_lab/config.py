"""Run-time settings shared by the notebooks and the CLI: quick/full mode, device, folders.

Quick mode makes every notebook finish in about a minute on a laptop CPU (few training
steps, small crops, the bundled sample images); full mode is the paper's recipe and is
meant for a CUDA GPU. The switch is read when you call :func:`is_quick`, never at import
time, so a notebook can flip it with ``os.environ`` before asking.

    EDSR_LAB_QUICK=1   force quick mode (CI sets this)
    EDSR_LAB_QUICK=0   force full mode, even on a CPU (slow: days)
    unset              full mode if a CUDA GPU is visible, quick mode otherwise
    EDSR_LAB_DATA=DIR  where data/ lives (default: the repository's data/ folder)
    EDSR_LAB_CACHE=DIR where downloads and derived data go (default: DATA/cache, i.e.
                       data/cache/): official weights in weights/, the mini-DIV2K in
                       mini_div2k/; deleting it is safe (it is rebuilt or fetched again)

:func:`resolve_device` turns a device name (``--device`` / ``device=``) into a
``torch.device``, with one error message for a device this machine does not have.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from edsr_lab.errors import BadArgumentError, DeviceError

if TYPE_CHECKING:  # torch is imported inside the functions that need it, so that
    import torch  # ``python -m edsr_lab --help`` answers without loading it (~2-4 s)

#: The repository root: the folder that holds ``edsr_lab/``, ``data/`` and ``notebooks/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Mean RGB of the DIV2K training set, in [0, 1] (EDSR-PyTorch's ``rgb_mean``).
#: The models subtract ``255 * DIV2K_MEAN`` at the input and add it back at the output.
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

#: Pixel range the models compute in. The paper (and the official weights) work in
#: [0, 255]; every other part of this package speaks [0, 1].
RGB_RANGE = 255.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def is_quick() -> bool:
    """True when notebooks should run their quick (CPU, ~1 minute) settings.

    Reads ``EDSR_LAB_QUICK`` each call; without it, quick mode is on exactly when no
    CUDA GPU is available.
    """
    value = os.environ.get("EDSR_LAB_QUICK", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise BadArgumentError(
            f"EDSR_LAB_QUICK={value!r} is not understood; use 1 (quick mode) or 0 (full mode)"
        )
    import torch

    return not torch.cuda.is_available()


def default_device() -> torch.device:
    """The device to compute on: the first CUDA GPU if there is one, else the CPU.

    (Apple's MPS is not chosen automatically: some operators the course uses are
    missing or slow there; pass ``device="mps"`` explicitly to try it.)
    """
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def data_dir() -> Path:
    """The data folder (``$EDSR_LAB_DATA`` or ``<repo>/data``)."""
    return Path(os.environ.get("EDSR_LAB_DATA", PROJECT_ROOT / "data")).expanduser()


def samples_dir() -> Path:
    """The bundled sample images, ``<repo>/data/samples`` (always the repository's copy)."""
    return PROJECT_ROOT / "data" / "samples"


def cache_dir() -> Path:
    """The one cache folder: ``$EDSR_LAB_CACHE``, else ``data_dir()/cache`` (``data/cache``).

    It holds what can be fetched or rebuilt at any time: downloaded weights
    (``weights/``, :mod:`edsr_lab.weights`) and the mini-DIV2K built from the samples
    (``mini_div2k/``, :func:`edsr_lab.data.div2k.mini_div2k`). Read at each call.
    """
    env = os.environ.get("EDSR_LAB_CACHE")
    return Path(env).expanduser() if env else data_dir() / "cache"


# How every device error ends: the CLI option and the Python argument, so one message
# serves both (the CLI prints it as it is).
_DEVICE_FIX = "use --device cpu (device='cpu' from Python)"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The ``torch.device`` to compute on; ``None`` means :func:`default_device`.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``, or None.

    Raises:
        DeviceError: one line naming the device and what to do, when the name is not a
            device, this machine does not have it (no CUDA GPU, a GPU index past the
            last one, no MPS), or it computes nothing (``meta``). Also a ``ValueError``.
    """
    import torch  # here, not at the top: `python -m edsr_lab --help` must not load torch

    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(
            f"device {str(device)!r} is not a device name (cpu, cuda, cuda:1, mps); " + _DEVICE_FIX
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r}: no CUDA GPU is visible (none on this machine, or "
                f"PyTorch was installed without CUDA); {_DEVICE_FIX}"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(
                f"device {str(device)!r} does not exist: this machine has {count} CUDA "
                f"GPU(s), cuda:0 to cuda:{count - 1}; pick one of them, or {_DEVICE_FIX}"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r}: Apple's MPS is not available; {_DEVICE_FIX}")
    elif dev.type == "meta":  # shapes without data: every computation fails deep in torch
        raise DeviceError(
            f"device {str(device)!r} holds shapes but no data, so nothing can be computed "
            f"on it; {_DEVICE_FIX}"
        )
    return dev


def describe() -> dict[str, str]:
    """A small report of the environment, for notebook 00 and ``python -m edsr_lab info``."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda available": str(cuda),
        "gpu": torch.cuda.get_device_name(0) if cuda else "none",
        "device": str(default_device()),
        "quick mode": str(is_quick()),
        "data dir": str(data_dir()),
    }
