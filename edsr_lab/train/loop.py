"""The training loop: :func:`train`.

The loop itself is the textbook one (sample, forward, loss, backward, optimizer step,
scheduler step); what a long run needs beside it are named helpers:

- the :class:`~edsr_lab.train.log.History` of every step, read back from the GPU in
  chunks so logging does not stall it, and a progress bar with the running loss, the lr
  and the time the run will take;
- divergence detection: a non-finite loss stops training and is reported in the history
  (``history.diverged``) instead of raising, so a notebook can show what instability looks
  like; loss spikes (more than 10x the running median) are recorded too;
- atomic checkpoints written only from sound weights, and an exact resume
  (:mod:`edsr_lab.train.state`);
- Ctrl-C (SIGINT) and SIGTERM stop the run after the current step, *after* saving a
  resumable checkpoint (a second Ctrl-C stops at once);
- multi-scale batches ``(lr, hr, scale)`` for MDSR (paper, Section 3.3);
- the speed options: bf16 autocast, channels_last, fused Adam, ``torch.compile``.

Every tensor is float32 (N, C, H, W) with values in [0, 1], as everywhere in ``edsr_lab``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.config import resolve_device
from edsr_lab.errors import BadArgumentTypeError, SamplerError, SizeMismatchError
from edsr_lab.models.common import unwrap_model
from edsr_lab.train import ddp
from edsr_lab.train.config import TrainConfig
from edsr_lab.train.log import History, StepLog, due
from edsr_lab.train.state import Checkpointer, checkpoint_target, restore_training_state
from edsr_lab.train.step import (
    autocast,
    forward,
    make_optimizer,
    make_scheduler,
    make_train_step,
    resolve_amp,
)

__all__ = ["train"]


def train(
    model: nn.Module,
    sampler: Any,
    config: TrainConfig | None = None,
    *,
    device: str | torch.device | None = None,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    callback: Callable[[int, History], bool | None] | None = None,
    resume_from: str | Path | None = None,
    progress: bool = True,
    is_main: bool = True,
    resume_changes: str = "refuse",
    **overrides: Any,
) -> History:
    """Train ``model`` on batches from ``sampler`` with the paper's recipe.

    Args:
        model: maps LR (N, C, h, w) in [0, 1] to SR (N, C, h*s, w*s). It is moved to
            ``device`` and trained in place; it is left in train mode. It may be wrapped
            (DDP): checkpoints and evaluation use the inner module.
        sampler: anything with ``.sample() -> (lr, hr)`` float tensors in [0, 1], e.g.
            :class:`edsr_lab.data.PatchSampler`; or ``(lr, hr, scale)`` for a multi-scale
            model, which is then called as ``model(lr, scale)`` (MDSR: only that scale's
            modules are used and updated in the step). If it also has ``state_dict()`` and
            ``load_state_dict()``, its state goes into checkpoints so a resumed run sees
            the same batches as an uninterrupted one.
        config: a :class:`TrainConfig` (default: the paper's recipe). Keyword arguments
            override single fields: ``train(model, sampler, iters=100, loss="l2")``.
        device: where to train; default CUDA if available, else the CPU
            (:func:`edsr_lab.config.resolve_device`).
        eval_fn: ``eval_fn(model) -> {"psnr": ...}``, called every ``eval_every`` steps and
            at the end, with the model in eval mode (put back in train mode after).
        callback: ``callback(step, history)`` called every ``log_every`` steps after the
            history is updated; return True to stop training (``history.stopped_early``).
        resume_from: a checkpoint written by this function; model, optimizer, scheduler,
            step, history, sampler and RNG state are restored and training continues to
            ``config.iters``.
        progress: a tqdm progress bar (running loss, lr, it/s, ETA) and a line saying how
            long the run will take; False: silent.
        is_main: False on the non-zero ranks of a multi-process run: no checkpoint is
            written and no progress shown there.
        resume_changes: what to do when ``config`` changes the stored lr, schedule, Adam
            settings, loss or clipping: "refuse" (ResumeConfigError) or "apply" (used
            from the resumed step on, recorded in ``history.changes``).

    Returns:
        the :class:`History`. A nan/inf loss stops training with ``history.diverged=True``
        (no exception). A checkpoint is written only from weights that still give a
        finite, non-exploding loss, so the file on disk is the last good state.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM, raised after the current step once
            ``config.checkpoint_path`` holds it; its ``signal``, ``step`` and ``saved``
            (the file, or None) say what happened.
        CheckpointExistsError: ``config.checkpoint_path`` exists and is not the file being
            resumed, and ``config.overwrite`` is False.
        CheckpointError: ``resume_from`` is missing or does not fit this model.
        ResumeConfigError: see ``resume_changes``.
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    config.validate()
    run = _Setup(model, sampler, config, device, resume_from, resume_changes, is_main)
    core, history, start = run.core, run.history, run.start
    log = StepLog(history, config, run.device, start, progress and is_main)
    saver = Checkpointer(
        run.path, core, run.optimizer, run.scheduler, sampler, config, run.amp_dtype, log
    )
    batch = None
    with _Signals() as signals, contextlib.closing(log):
        # The textbook loop: sample, forward + loss + backward + Adam, schedule, book-keep.
        for step in range(start + 1, config.iters + 1):
            batch = _batch_to(sampler.sample(), run.device)
            run.check_batch(*batch)
            lr_now = run.optimizer.param_groups[0]["lr"]
            loss, norm = run.step(*batch)
            run.scheduler.step()
            if not log.record(step, lr_now, loss, norm):
                return history  # diverged: the last checkpoint written stays the good one
            if log.at_log_point(step) and _stop_requested(callback, step, history):
                break
            if due(step, config.eval_every):
                _evaluate(core, eval_fn, history, step)
            if due(step, config.checkpoint_every):
                saver.save(step, batch)
            if signals.stop_due(log.at_log_point(step)):
                _stop_on_signal(signals.received, step, batch, log, saver)
        if not log.flush():
            return history
        _evaluate(core, eval_fn, history, history.last_step)
        if batch is not None and history.last_step > max(saver.tried, start):
            saver.save(history.last_step, batch)
    return history


class _Setup:
    """Everything the loop uses, ready: the model on its device (and in its memory
    format), the optimizer and schedule (restored when resuming), the step function."""

    def __init__(self, model, sampler, config, device, resume_from, resume_changes, is_main):
        self.device = resolve_device(device)
        self.path = checkpoint_target(config, resume_from) if is_main else None
        self.amp_dtype = resolve_amp(config.amp, self.device)
        cuda = self.device.type == "cuda"
        channels_last = cuda if config.channels_last is None else config.channels_last
        torch.manual_seed(config.seed)

        model.to(self.device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        self.core = unwrap_model(model)  # what is saved and evaluated (no DDP collectives there)
        self.optimizer = make_optimizer(model, config, self.device)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.start, self.history = 0, History(config=config.to_dict())
        if resume_from is not None:
            self.start, self.history = restore_training_state(
                resume_from,
                model,
                self.optimizer,
                self.scheduler,
                sampler,
                config,
                resume_changes=resume_changes,
            )
        self.step = make_train_step(
            torch.compile(model) if config.compile else model,
            self.optimizer,
            loss=config.loss,
            amp_dtype=self.amp_dtype,
            channels_last=channels_last,
            grad_clip=config.grad_clip,
        )
        self.check_batch = _BatchChecker(self.core, self.amp_dtype, self.device)


def _batch_to(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """``(lr, hr)`` or ``(lr, hr, scale)`` from a sampler, moved to ``device``."""
    if not (isinstance(batch, (tuple, list)) and len(batch) in (2, 3)):
        raise BadArgumentTypeError(
            f"sampler.sample() returned {type(batch).__name__}; expected a tuple (lr, hr) "
            "of float tensors (N, C, h, w) and (N, C, h*scale, w*scale) in [0, 1], or "
            "(lr, hr, scale) for a multi-scale model"
        )
    lr, hr = batch[0], batch[1]
    scale = int(batch[2]) if len(batch) == 3 else None
    return lr.to(device, non_blocking=True), hr.to(device, non_blocking=True), scale


class _BatchChecker:
    """Checks the first batch of each scale against the model, with a readable message."""

    def __init__(self, model: nn.Module, amp_dtype: torch.dtype | None, device: torch.device):
        self.model, self.amp_dtype, self.device = model, amp_dtype, device
        self.seen: set[int | None] = set()

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor, scale: int | None) -> None:
        if scale in self.seen:
            return
        self.seen.add(scale)
        if lr.dim() != 4 or hr.dim() != 4 or not lr.is_floating_point():
            raise SamplerError(
                f"sampler.sample() gave lr {tuple(lr.shape)} {lr.dtype} and hr "
                f"{tuple(hr.shape)}; expected float tensors (N, C, h, w) and "
                "(N, C, h*scale, w*scale)"
            )
        with torch.no_grad(), autocast(self.device.type, self.amp_dtype):
            out_shape = tuple(forward(self.model, lr[:1], scale).shape)
        if out_shape[1:] != tuple(hr.shape[1:]):
            raise SizeMismatchError(
                f"the model maps an LR patch {tuple(lr.shape[1:])} to {out_shape[1:]} but "
                f"the sampler's HR patch is {tuple(hr.shape[1:])}: do the model's scale "
                "and the sampler's scale agree?"
            )


def _evaluate(
    model: nn.Module, eval_fn: Callable[[nn.Module], Any] | None, history: History, step: int
) -> None:
    """Call ``eval_fn`` in eval mode (once per step) and record its metrics."""
    if eval_fn is None or (history.evals and history.evals[-1]["step"] == step):
        return
    model.eval()
    try:
        metrics = eval_fn(model)
    finally:
        model.train()
    history.evals.append({"step": step, **{k: float(v) for k, v in dict(metrics).items()}})


def _stop_requested(callback: Any, step: int, history: History) -> bool:
    """Call ``callback(step, history)``; True (and ``history.stopped_early``) to stop."""
    if callback is not None and callback(step, history) is True:
        history.stopped_early = True
        return True
    return False


# ----------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM: save first, then stop
# ----------------------------------------------------------------------------------------


class _TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) or SIGTERM, at the end of a step.

    Catch it as what it is, a ``KeyboardInterrupt`` (the class is private: exception types
    of the package's own live in ``edsr_lab.errors``, and this is no error). Attributes:
    ``signal`` (the signal's number), ``step`` (the last step done) and ``saved`` (the
    checkpoint that holds that step, or None when the run saves no checkpoints or its
    weights were no longer sound).
    """

    def __init__(self, signum: int, step: int, saved: Path | None):
        self.signal, self.step, self.saved = signum, step, saved
        where = f"; {str(saved)!r} holds it" if saved is not None else ""
        super().__init__(f"{signal.Signals(signum).name} after step {step}{where}")


class _Signals:
    """While training: SIGINT/SIGTERM only ask the loop to stop after the current step.

    The first signal sets :attr:`received` and puts the previous handlers back, so a
    second Ctrl-C interrupts at once. Handlers can only be set from the main thread;
    elsewhere signals keep their usual effect.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    def stop_due(self, at_log_point: bool) -> bool:
        """Stop after this step? Several processes (DDP) must stop at the same step: they
        agree at log points (one tiny all-reduce there), so each rank checks only then."""
        if not ddp.is_distributed():
            return self.received is not None
        return at_log_point and ddp.any_rank(self.received is not None)


def _stop_on_signal(
    signum: int | None, step: int, batch: Any, log: StepLog, saver: Checkpointer
) -> None:
    """Read the last losses back, save this step (unless just saved), and raise."""
    signum = signal.SIGINT if signum is None else signum  # another rank was signalled
    log.flush()
    if saver.tried != step:
        saver.save(step, batch)
    path = saver.path if saver.saved == step else None
    if path is not None:
        log.write(f"{signal.Signals(signum).name}: stopped after step {step}, saved to {path}")
    raise _TrainingInterrupted(signum, step, path)
