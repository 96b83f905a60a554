"""Training: the paper's recipe (Lim et al. 2017, Section 4.2) as a loop you can read.

- :mod:`~edsr_lab.train.config`: :class:`TrainConfig` (the loop's settings and their
  reasons) and :class:`RunConfig` (a complete run's: model, data, output folder);
- :mod:`~edsr_lab.train.loop`: :func:`train`, the loop;
- :mod:`~edsr_lab.train.step`: one optimizer step, Adam and the schedule
  (:func:`make_train_step`, :func:`make_optimizer`, :func:`make_scheduler`, :func:`resolve_amp`);
- :mod:`~edsr_lab.train.log`: the :class:`History` and the progress bar;
- :mod:`~edsr_lab.train.state`: checkpoints and an exact resume
  (:func:`save_training_checkpoint`, :func:`load_training_checkpoint`);
- :mod:`~edsr_lab.train.runner`: :func:`run`, a complete run (``python -m edsr_lab
  train``): data, model, output folder; :mod:`~edsr_lab.train.report` what it writes;
  :mod:`~edsr_lab.train.outdir` who may write into the output folder (a lock; a failed
  start leaves it as found); :mod:`~edsr_lab.train.budget` the memory a run needs;
- :mod:`~edsr_lab.train.ddp`: several GPUs with ``torchrun``.

Import from here: ``from edsr_lab.train import TrainConfig, train``.
"""

from importlib import import_module
from typing import Any

# The names below are imported on first use (PEP 562), not here: the command line reads
# its defaults from edsr_lab.train.config, and that must not import torch (seconds).
_EXPORTS = {
    "History": "log",
    "RunConfig": "config",
    "RunResult": "runner",
    "TrainConfig": "config",
    "load_training_checkpoint": "state",
    "make_optimizer": "step",
    "make_scheduler": "step",
    "make_train_step": "step",
    "resolve_amp": "step",
    "restore_training_state": "state",
    "run": "runner",
    "save_training_checkpoint": "state",
    "train": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
