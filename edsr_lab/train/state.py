"""Training checkpoints: save, load and restore everything a run needs to continue exactly.

A training checkpoint is a model checkpoint (:mod:`edsr_lab.models.checkpoints` documents
the format; ``load_checkpoint`` reads it as a model) whose ``training`` entry holds the
step, the :class:`TrainConfig`, the optimizer, scheduler and sampler states, the history
and the RNG states. Files are written atomically and only from weights that still give a
finite loss, so the file on disk is always the last good state.

The official code's users report a wrong learning rate after resuming; here the scheduler
state is restored (a test checks resumed == uninterrupted), and a changed optimisation
setting is refused or applied, never silently ignored.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.errors import (
    CheckpointError,
    CheckpointExistsError,
    FileWriteError,
    ResumeConfigError,
)
from edsr_lab.files import free_bytes, human_bytes
from edsr_lab.losses import get_loss
from edsr_lab.models import checkpoints as ck
from edsr_lab.models.common import unwrap_model
from edsr_lab.models.state_dicts import torch_load
from edsr_lab.train.config import TrainConfig
from edsr_lab.train.log import History, StepLog, is_spike
from edsr_lab.train.step import autocast, forward

__all__ = [
    "check_training_state",
    "load_training_checkpoint",
    "no_space_error",
    "restore_training_state",
    "save_training_checkpoint",
]

#: Fields whose change on resume alters the optimisation (see ``resume_changes``).
_OPTIMISATION_FIELDS = (
    "lr",
    "lr_decay_every",
    "lr_gamma",
    "betas",
    "eps",
    "rgb_range",
    "loss",
    "grad_clip",
)


def save_training_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    step: int,
    config: TrainConfig,
    history: History,
    sampler: Any = None,
) -> Path:
    """Write what :func:`~edsr_lab.train.train` needs to resume, atomically, replacing ``path``.

    ``model`` may be wrapped (DDP, ``torch.compile``): its inner module is saved. The
    sampler's state (its ``state_dict()``) is saved when it has one.
    """
    training: dict[str, Any] = {
        "step": int(step),
        "config": config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history.to_dict(),
        "rng": _rng_state(),
    }
    if hasattr(sampler, "state_dict"):
        training["sampler"] = {"state_dict": sampler.state_dict()}
    try:
        return ck.save_checkpoint(model, path, overwrite=True, training=training)
    except FileWriteError as e:
        raise no_space_error(e, Path(path), (unwrap_model(model).state_dict(), training)) from e


def _tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in nested dicts/lists/tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def no_space_error(error: FileWriteError, path: Path, content: Any) -> FileWriteError:
    """One line for a checkpoint that could not be written: the folder, the space it
    needs (the bytes of the tensors in ``content``) and the space free there."""
    free = free_bytes(path.parent)
    have = "free space unknown" if free is None else f"{human_bytes(free)} free"
    return FileWriteError(
        f"cannot save {path.name} in {path.parent}: the disk is full or the write failed "
        f"(about {human_bytes(_tensor_bytes(content))} needed, {have}); free some space "
        f"there (the previous {path.name}, if any, is unchanged)"
    )


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`~edsr_lab.train.train` (``weights_only=True``).

    Returns a dict with ``model`` (the state_dict: ``model.load_state_dict(ckpt["model"])``
    restores the weights), ``arch`` and ``model_config`` (what ``load_checkpoint`` builds)
    and the training state: ``step, config, optimizer, scheduler, history`` (and
    ``sampler``/``rng`` when saved).

    Raises:
        CheckpointError: missing, damaged, or a model checkpoint without training state.
    """
    path = Path(path)
    source = f"checkpoint {str(path)!r}"
    raw = torch_load(path, map_location="cpu")
    if isinstance(raw, dict) and raw.get("format") == ck.LEGACY_TRAINING_FORMAT:
        legacy = dict(raw)  # written by edsr_lab before the formats were merged
        check_training_state(legacy, path)
        return legacy
    if not (isinstance(raw, dict) and raw.get("format") == ck.FORMAT):
        raise CheckpointError(
            f"{str(path)!r} is not an edsr_lab training checkpoint (it has no "
            f"format {ck.FORMAT!r}); for model weights only use "
            "edsr_lab.models.load_checkpoint or load_official"
        )
    ck.verify_checksum(raw, source)
    training = raw.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(
            f"{str(path)!r} is not an edsr_lab training checkpoint: it holds model weights "
            "only (no optimizer, step or history), so training cannot resume from it; start "
            "a new run from its weights with load_checkpoint(path) instead"
        )
    ckpt = {
        "model": ck.unwrap_state_dict(raw.get("state_dict"), source),
        "arch": raw.get("arch"),
        "model_config": raw.get("config"),
        **training,
    }
    check_training_state(ckpt, path)
    return ckpt


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _whole(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _history_problem(h: Any) -> str | None:
    """What is wrong with a saved History (None: it is one ``History.to_dict`` wrote)."""
    if not isinstance(h, Mapping):
        return f"the history is a {type(h).__name__}, not a table"
    series = ("step", "loss", "lr", "time", "grad_norm")
    for key in (*series, "evals", "spikes", "skipped_checkpoints", "changes"):
        if key in h and not isinstance(h[key], list):
            return f"history {key!r} is a {type(h[key]).__name__}, not a list"
    if not all(_whole(v) for v in h.get("step", [])):
        return "history 'step' holds something other than step numbers"
    for key in series[1:]:
        if not all(_real(v) for v in h.get(key, [])):
            return f"history {key!r} holds something other than numbers"
    lengths = {key: len(h[key]) for key in series[:3] if key in h}
    if len(set(lengths.values())) > 1:
        return f"history lists of different lengths ({lengths})"
    evals = h.get("evals", [])
    if not all(isinstance(e, Mapping) and all(_real(v) for v in e.values()) for e in evals):
        return "history 'evals' holds something other than tables of numbers"
    spikes = h.get("spikes", [])
    if not all(isinstance(x, (list, tuple)) and len(x) == 2 and all(map(_real, x)) for x in spikes):
        return "history 'spikes' holds something other than (step, loss) pairs"
    if not all(_whole(v) for v in h.get("skipped_checkpoints", [])):
        return "history 'skipped_checkpoints' holds something other than step numbers"
    if not all(isinstance(c, Mapping) for c in h.get("changes", [])):
        return "history 'changes' holds something other than tables"
    if "config" in h and not isinstance(h["config"], Mapping):
        return "history 'config' is not a table"
    return None


def _rng_problem(rng: Any) -> str | None:
    if not isinstance(rng, Mapping) or "cpu" not in rng:
        return "the random-number state has no CPU generator state"
    cpu, size = rng["cpu"], torch.get_rng_state().numel()
    if not (isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8 and cpu.numel() == size):
        got = f"{cpu.numel()} bytes" if isinstance(cpu, torch.Tensor) else type(cpu).__name__
        return f"the CPU random-number state is {got}, not the {size} bytes torch keeps"
    cuda = rng.get("cuda", [])
    if not (isinstance(cuda, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in cuda)):
        return "the CUDA random-number state is not a list of tensors"
    return None


def _state_problem(ckpt: Mapping[str, Any]) -> str | None:
    """What is wrong with a training checkpoint's state (None: nothing found)."""
    if not _whole(ckpt.get("step")) or ckpt["step"] < 0:
        return f"its step is {ckpt.get('step')!r}, not a whole number >= 0"
    if "config" in ckpt and ckpt["config"] is not None and not isinstance(ckpt["config"], Mapping):
        return "its training settings are not a table"
    opt = ckpt.get("optimizer")
    if not (
        isinstance(opt, Mapping)
        and isinstance(opt.get("state"), Mapping)
        and isinstance(opt.get("param_groups"), list)
        and opt["param_groups"]
        and all(isinstance(g, Mapping) for g in opt["param_groups"])
    ):
        return "the optimizer state is not one torch.optim.Adam.state_dict() writes"
    sched = ckpt.get("scheduler")
    if not (
        isinstance(sched, Mapping)
        and _whole(sched.get("last_epoch"))
        and isinstance(sched.get("base_lrs"), list)
        and all(_real(v) for v in sched["base_lrs"])
    ):
        return "the learning-rate schedule's state has no step count or base rates"
    problem = _history_problem(ckpt.get("history"))
    if problem is not None:
        return problem
    if "rng" in ckpt and (problem := _rng_problem(ckpt["rng"])) is not None:
        return problem
    if "sampler" in ckpt:
        saved = ckpt["sampler"]
        inner = None
        if isinstance(saved, Mapping):
            inner = saved.get("state_dict", saved.get("get_state"))
        if inner is None or (isinstance(inner, Mapping) and not inner):
            return "the sampler state is empty (the batches to come cannot be restored)"
        count = inner.get("count") if isinstance(inner, Mapping) else None
        if count is not None and count != ckpt["step"]:  # a step-seeded sampler: 1 per step
            return f"its sampler has drawn {count!r} batches, but the run is at step {ckpt['step']}"
    return None


def check_training_state(ckpt: Mapping[str, Any], path: str | Path) -> None:
    """Raise CheckpointError (one line) when a training checkpoint's state is not what
    :func:`save_training_checkpoint` writes: a wrong type, an empty sampler state, a random
    state of the wrong size. Run before anything is restored, so a damaged (or forged)
    file never reaches torch's loaders, whose errors say nothing about the file."""
    problem = _state_problem(ckpt)
    if problem is not None:
        raise CheckpointError(f"{str(path)!r} is damaged: {problem}")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _set_sampler_state(sampler: Any, state: dict[str, Any], path: Any) -> None:
    # "get_state": a PatchSampler's bare generator state, as checkpoints written before
    # the samplers shared one protocol hold it; PatchSampler.load_state_dict takes it.
    saved = state.get("state_dict", state.get("get_state"))
    if saved is None or not hasattr(sampler, "load_state_dict"):
        return
    try:
        sampler.load_state_dict(saved)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise CheckpointError(
            f"{str(path)!r} is damaged: its sampler state does not fit this sampler "
            f"({type(e).__name__}: {e})"
        ) from None


def restore_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler: Any,
    config: TrainConfig,
    *,
    resume_changes: str = "refuse",
) -> tuple[int, History]:
    """Load a training checkpoint into ``model``, ``optimizer``, ``scheduler``, ``sampler``
    and the global RNG; return ``(step, history)``.

    When ``config`` changes an optimisation setting (lr, schedule, Adam, loss, clipping)
    the checkpoint was trained with, ``resume_changes="refuse"`` raises
    :class:`ResumeConfigError` naming the fields, and ``"apply"`` applies them from this
    step on (the lr follows the new schedule at the current step) and records them in
    ``history.changes``. Changing ``iters`` (to train longer) is always allowed.
    """
    ckpt = load_training_checkpoint(path)
    try:
        unwrap_model(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model/optimizer: {exc}"
        ) from exc
    # The scheduler state carries the step count: restoring it (rather than building a
    # fresh scheduler) is what keeps the learning rate right after a resume.
    try:
        scheduler.load_state_dict(ckpt["scheduler"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{str(path)!r} is damaged: its learning-rate schedule does not load ({exc})"
        ) from None
    start = int(ckpt["step"])
    history = History.from_dict(ckpt["history"])
    _reconcile_config(
        ckpt.get("config") or {}, config, optimizer, scheduler, start, history, resume_changes, path
    )
    history.config = config.to_dict()
    if "sampler" in ckpt:
        _set_sampler_state(sampler, ckpt["sampler"], path)
    if "rng" in ckpt:
        _set_rng_state(ckpt["rng"])
    return start, history


def _reconcile_config(
    stored: dict[str, Any],
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    start: int,
    history: History,
    mode: str,
    path: str | Path,
) -> None:
    """Refuse or apply optimisation settings that differ from the checkpoint's."""
    new = config.to_dict()
    changed = {
        k: (stored[k], new[k])
        for k in _OPTIMISATION_FIELDS
        if k in stored and _plain(stored[k]) != _plain(new[k])
    }
    if not changed:
        return
    listing = ", ".join(f"{k} {old!r} -> {now!r}" for k, (old, now) in changed.items())
    if mode != "apply":
        raise ResumeConfigError(
            f"resuming {str(path)!r}: its run was trained with other settings ({listing}); "
            "resume with the stored settings, or pass resume_changes='apply' to train on "
            "with the new ones from this step (they are recorded in history.changes)"
        )
    lr_now = config.lr * config.lr_gamma ** (start // config.lr_decay_every)
    for group in optimizer.param_groups:
        group.update(lr=lr_now, initial_lr=config.lr, betas=tuple(config.betas))
        group["eps"] = config.adam_eps
    scheduler.base_lrs = [config.lr] * len(optimizer.param_groups)
    scheduler.step_size, scheduler.gamma = config.lr_decay_every, config.lr_gamma
    scheduler._last_lr = [lr_now] * len(optimizer.param_groups)
    history.changes.append({"step": start, **{k: [old, now] for k, (old, now) in changed.items()}})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def checkpoint_target(config: TrainConfig, resume_from: str | Path | None) -> Path | None:
    """Where to save; refuses to clobber another run's checkpoint."""
    if not config.checkpoint_path:
        return None
    path = Path(config.checkpoint_path).expanduser()
    if path.exists() and not config.overwrite:
        resuming_same = (
            resume_from is not None and Path(resume_from).expanduser().resolve() == path.resolve()
        )
        if not resuming_same:
            raise CheckpointExistsError(
                f"checkpoint_path {str(path)!r} already exists and belongs to another "
                "run; pass resume_from=checkpoint_path to continue that run, choose another "
                "path, or set overwrite=True to replace it"
            )
    return path


def _sound(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, int | None],
    config: TrainConfig,
    amp_dtype: torch.dtype | None,
    history: History,
) -> bool:
    """Do the current weights still give a finite, non-exploding loss on the last batch?

    The loss of step k was computed *before* step k's update; a huge learning rate can
    make that update itself blow the weights up. So before saving, the updated weights are
    checked on the same batch (train mode, no gradient; batch-norm statistics are put
    back, so checking changes nothing).
    """
    lr, hr, scale = batch
    buffers = [b.detach().clone() for b in model.buffers()]
    loss_fn = get_loss(config.loss).fn  # the run's own loss (an L2 run is checked with L2)
    try:
        with torch.no_grad(), autocast(lr.device.type, amp_dtype):
            value = float(loss_fn(forward(model, lr, scale).float(), hr))
    finally:
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)
    return math.isfinite(value) and not is_spike(value, history.loss[-100:], config.spike_factor)


class Checkpointer:
    """Writes training checkpoints, but only from weights that are still sound."""

    def __init__(
        self,
        path: Path | None,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        sampler: Any,
        config: TrainConfig,
        amp_dtype: torch.dtype | None,
        log: StepLog,
    ):
        self.path, self.model, self.optimizer, self.scheduler = path, model, optimizer, scheduler
        self.sampler, self.config, self.amp_dtype, self.log = sampler, config, amp_dtype, log
        self.tried = 0  # the last step a save was attempted at
        self.saved = 0  # the last step saved

    def save(self, step: int, batch: tuple[torch.Tensor, torch.Tensor, int | None]) -> bool:
        """Save the state after ``step``; False when nothing was written (no path, or the
        weights are no longer sound and the file keeps the last good state)."""
        self.tried = step
        if self.path is None:
            return False
        history = self.log.history
        if not _sound(self.model, batch, self.config, self.amp_dtype, history):
            history.skipped_checkpoints.append(step)
            self.log.write(
                f"step {step}: these weights give an exploding loss on the last batch; "
                f"not saved, {str(self.path)!r} keeps the last good state"
            )
            return False
        save_training_checkpoint(
            self.path,
            self.model,
            self.optimizer,
            self.scheduler,
            step=step,
            config=self.config,
            history=history,
            sampler=self.sampler,
        )
        self.saved = step
        return True
