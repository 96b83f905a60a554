"""What a run records and shows: the :class:`History`, and the step log behind the bar.

On a GPU, ``.item()`` waits for every queued kernel, so the step log keeps each step's
loss on the device and reads values back in chunks (every :data:`READBACK_EVERY` steps, or
before an evaluation or a save); on the CPU there is no queue and it reads every step.
Each read-back fills the history, checks for divergence and loss spikes, and updates the
progress bar (tqdm.auto: a widget in notebooks, a text bar elsewhere) with the running
loss, the learning rate and, once the first steps were timed, the time the run will take.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from edsr_lab.losses import PAPER_LOSS, get_loss
from edsr_lab.train.config import TrainConfig

__all__ = ["READBACK_EVERY", "History", "StepLog", "due", "duration"]

#: On a GPU, read losses back every this many steps (at most; ``log_every`` if smaller):
#: often enough that the bar shows a fresh loss, seldom enough that the wait for the GPU's
#: queue to drain costs nothing measurable.
READBACK_EVERY = 25

#: The bar's loss is the mean of the last this many steps (one batch's loss is noisy).
RUNNING_WINDOW = 25

#: Steps timed before the run's duration is estimated and printed (after the first
#: read-back, so start-up, the first batch check and compilation are not counted).
TIMED_STEPS = 5


@dataclass
class History:
    """What happened in a run: one entry per optimizer step in each list.

    Attributes:
        step: step numbers, 1-based (step k used the k-th batch).
        loss: training loss of that step: the batch's mean L1 or L2 on [0, 1] pixels (our
            convention). The official code logs it on 0..255 pixels: see
            :meth:`official_loss` (x255 for L1, x255^2 for L2) to compare with its logs.
        lr: learning rate used by that step.
        time: wall-clock seconds since the run started when the step was issued (on a GPU
            steps are queued asynchronously, so only the times at read-backs are exact).
        grad_norm: global L2 norm of the gradient before clipping (nan if not tracked).
        evals: one dict per ``eval_fn`` call: ``{"step": s, **metrics}``.
        spikes: ``(step, loss)`` where the loss exceeded ``spike_factor`` x the median of
            the previous (up to 100, at least 3) losses: a sign of instability, and early
            in training is where wide unscaled models show it (see notebook 06).
        diverged: True when a loss became nan/inf; training stopped there.
        diverged_step: the first step with a non-finite loss, or None.
        stopped_early: True when ``callback`` asked to stop.
        skipped_checkpoints: steps whose checkpoint was not written because the weights
            already gave a non-finite or exploding loss (the file kept the last good state).
        changes: settings changed on resume (``resume_changes="apply"``): one dict per
            resume, ``{"step": s, "<field>": [old, new], ...}``.
        config: the TrainConfig used, as a dict.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    spikes: list[tuple[int, float]] = field(default_factory=list)
    diverged: bool = False
    diverged_step: int | None = None
    stopped_early: bool = False
    skipped_checkpoints: list[int] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.step)

    @property
    def last_step(self) -> int:
        """The last completed step (0 before training)."""
        return self.step[-1] if self.step else 0

    def smoothed(self, key: str = "loss", window: int = 50) -> list[float]:
        """Running mean of ``key`` over the last ``window`` steps (same length as ``key``)."""
        values = getattr(self, key)
        out, acc = [], 0.0
        for i, v in enumerate(values):
            acc += v
            if i >= window:
                acc -= values[i - window]
            out.append(acc / min(i + 1, window))
        return out

    def official_loss(self) -> list[float]:
        """The losses in the official code's units (on 0..255 pixels), as its logs print.

        A run before ``rgb_range`` was recorded counts as 255.
        """
        factor = official_factor(self.config)
        return [v * factor for v in self.loss]

    def eval_series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric returned by ``eval_fn``, e.g. ``"psnr"``."""
        rows = [e for e in self.evals if key in e]
        return [int(e["step"]) for e in rows], [float(e[key]) for e in rows]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of lists and numbers (loadable with ``torch.load(weights_only=True)``)."""
        d = dataclasses.asdict(self)
        d["spikes"] = [list(s) for s in self.spikes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        known = {f.name for f in dataclasses.fields(cls)}
        h = cls(**{k: v for k, v in d.items() if k in known})
        h.spikes = [(int(s), float(v)) for s, v in h.spikes]
        return h

    def plot(self, key: str = "loss", **kwargs: Any):
        """Plot this history; see :func:`edsr_lab.viz.plot_history`. Returns the Figure."""
        from edsr_lab.viz import plot_history  # matplotlib: only when a plot is asked for

        return plot_history(self, key=key, **kwargs)

    def __repr__(self) -> str:
        status = f"diverged at step {self.diverged_step}" if self.diverged else "ok"
        last = f", last loss {self.loss[-1]:.5g}" if self.loss else ""
        return f"History({len(self)} steps{last}, {status}, {len(self.evals)} evals)"


def official_factor(config: dict[str, Any]) -> float:
    """Loss on [0, 1] pixels -> the loss the official code logs (on 0..255 pixels)."""
    loss = get_loss(config.get("loss", PAPER_LOSS))
    return loss.official_scale(float(config.get("rgb_range", 255.0)))


def is_spike(loss: float, recent: list[float], factor: float) -> bool:
    """A loss above ``factor`` x the median of the recent ones (at least 3): the median,
    not the mean, so one earlier spike does not hide the next."""
    return len(recent) >= 3 and loss > factor * statistics.median(recent)


def duration(seconds: float) -> str:
    """``3725`` -> ``"1 h 2 min"``: a duration as a person says it."""
    s = int(round(seconds))
    days, hours, minutes = s // 86400, s // 3600 % 24, s // 60 % 60
    if days:
        return f"{days} days {hours} h" if days < 10 else f"{days} days"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {s % 60} s"
    return f"{s} s"


class StepLog:
    """The history, filled from losses that stay on the device until a read-back."""

    def __init__(
        self,
        history: History,
        config: TrainConfig,
        device: torch.device,
        start: int,
        progress: bool,
    ):
        self.history, self.config = history, config
        self.every = min(config.log_every, READBACK_EVERY) if device.type == "cuda" else 1
        self.t0 = time.perf_counter() - (history.time[-1] if history.time else 0.0)
        self.pending: list[tuple[int, float, float, torch.Tensor, torch.Tensor | None]] = []
        self.bar = _progress_bar(config.iters, start) if progress else None
        self.timed: tuple[int, float] | None = None  # (step, clock) of the first read-back
        self.eta_shown = False

    def add(self, step: int, lr: float, loss: torch.Tensor, norm: torch.Tensor | None) -> None:
        self.pending.append((step, float(lr), time.perf_counter() - self.t0, loss, norm))

    def flush(self) -> bool:
        """Move pending values into the history; return False when training must stop."""
        if not self.pending:
            return True
        h, n = self.history, len(self.pending)
        losses = torch.stack([p[3] for p in self.pending]).float().cpu().tolist()
        norms = [p[4] for p in self.pending]
        norms = (
            torch.stack(norms).float().cpu().tolist() if norms[0] is not None else [math.nan] * n
        )
        ok = True
        for (step, lr, t, _, _), loss, norm in zip(self.pending, losses, norms, strict=True):
            h.step.append(step)
            h.loss.append(loss)
            h.lr.append(lr)
            h.time.append(t)
            h.grad_norm.append(norm)
            if not math.isfinite(loss):
                h.diverged, h.diverged_step, ok = True, step, False
                break
            if is_spike(loss, h.loss[-101:-1], self.config.spike_factor):
                h.spikes.append((step, loss))
        self.pending.clear()
        if self.bar is not None:
            self.bar.update(h.last_step - self.bar.n)
            self.report()
            self._estimate()
        if not ok:
            self.write(
                f"step {h.diverged_step}: loss is {h.loss[-1]} -> training stopped "
                "(diverged). Try a lower lr, res_scale=0.1, or grad_clip."
            )
        return ok

    def record(self, step: int, lr: float, loss: torch.Tensor, norm: Any) -> bool:
        """Add one step; read values back when due (always before a log point, an
        evaluation or a save, so none of them sees diverged weights). False: stop."""
        self.add(step, lr, loss, norm)
        c = self.config
        readback = step % self.every == 0 or self.at_log_point(step)
        if readback or due(step, c.eval_every) or due(step, c.checkpoint_every):
            return self.flush()
        return True

    def at_log_point(self, step: int) -> bool:
        """Every ``log_every`` steps and at the last step."""
        return step % self.config.log_every == 0 or step == self.config.iters

    def report(self) -> None:
        """Show the running loss (ours and in the official 0..255 units) and lr on the bar."""
        h = self.history
        if self.bar is None or not h.loss:
            return
        recent = [v for v in h.loss[-RUNNING_WINDOW:] if math.isfinite(v)] or h.loss[-1:]
        loss = sum(recent) / len(recent)
        official = loss * official_factor(h.config)
        self.bar.set_postfix_str(
            f"loss {loss:.5f} ({official:.3f} on 0..255), lr {h.lr[-1]:.2e}", refresh=False
        )

    def _estimate(self) -> None:
        """Once, after the first timed steps: how long the rest of the run will take."""
        if self.eta_shown or not self.history.step:
            return
        step, now = self.history.last_step, time.perf_counter()
        if self.timed is None:
            self.timed = (step, now)
            return
        done = step - self.timed[0]
        if done < TIMED_STEPS:
            return
        self.eta_shown = True
        per_step = (now - self.timed[1]) / done
        left = self.config.iters - step
        if left <= 0:
            return
        self.write(
            f"speed: {per_step:.3g} s per update; the {left:,} updates to go take about "
            f"{duration(left * per_step)} (validation and saving not counted)"
        )

    def write(self, message: str) -> None:
        """A line above the bar (nothing when progress is off)."""
        if self.bar is not None:
            self.bar.write(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(total: int, start: int) -> Any:
    return tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, desc="train")


def due(step: int, every: int) -> bool:
    return bool(every) and step % every == 0
