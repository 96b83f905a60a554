"""Training loop for EDSR-style super-resolution networks.

Reproduces the training recipe of Lim et al., "Enhanced Deep Residual Networks for Single
Image Super-Resolution" (CVPR Workshops 2017), Section 4.2: batches of 16 random 48x48 LR
patches with their HR partners, L1 loss, Adam (beta1 0.9, beta2 0.999, eps 1e-8), learning
rate 1e-4 halved every 2x10^5 updates; 3x10^5 updates for the ablations, 10^6 for the final
models.

The loop itself is the textbook one (sample, forward, loss, backward, optimizer step,
scheduler step); what this module adds is what a long run needs:

- a :class:`History` of every step (loss, learning rate, time, gradient norm) that is read
  back from the GPU only every ``log_every`` steps, so logging does not stall the GPU;
- divergence detection: a non-finite loss stops training and is reported in the history
  (``history.diverged``) instead of raising, so a notebook can show what instability looks
  like; loss spikes (more than 10x the running median) are recorded too;
- atomic checkpoints: a model checkpoint (``edsr_lab.models.load_checkpoint`` reads it)
  plus optimizer, scheduler, step, history, sampler and RNG state, written only from
  weights that still give a finite loss; and an exact resume (the official code's users
  report a wrong learning rate after resuming; here the scheduler state is restored, and
  a test checks resumed == uninterrupted; a changed lr is refused or applied, never
  silently ignored);
- multi-scale batches ``(lr, hr, scale)`` for MDSR (paper, Section 3.3);
- the official optimisation exactly (Adam's eps acts on losses in 0..255, see
  :class:`TrainConfig`), and a progress bar (tqdm) with loss, lr, it/s and ETA;
- the speed options: bf16 autocast, channels_last, fused Adam, ``torch.compile``.

Measuring speed, memory and FLOPs is in :mod:`edsr_lab.profile`.

Every tensor is float32 (N, C, H, W) with values in [0, 1], as everywhere in ``edsr_lab``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edsr_lab.errors import (
    BadArgumentError,
    BadArgumentTypeError,
    CheckpointError,
    CheckpointExistsError,
    DeviceError,
    ResumeConfigError,
    SamplerError,
    SizeMismatchError,
    TrainOptionError,
)

__all__ = [
    "History",
    "TrainConfig",
    "load_training_checkpoint",
    "make_optimizer",
    "make_scheduler",
    "make_train_step",
    "resolve_amp",
    "restore_training_state",
    "save_training_checkpoint",
    "train",
]


# ----------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Settings of one training run. Defaults are the paper's ablation recipe.

    ``batch_size`` and ``patch_size`` are not used by :func:`train` itself (the sampler
    makes the batches); they are here so one object describes the run, e.g.
    ``PatchSampler(pairs, scale, patch_size=cfg.patch_size, batch_size=cfg.batch_size)``.
    """

    # --- length ---
    iters: int = 300_000  # paper: 3e5 updates for the ablations (Table 2), 1e6 for final
    # --- data (used to build the sampler) ---
    batch_size: int = 16  # paper: 16 patches per batch
    patch_size: int = 48  # paper: 48x48 LR patches (HR patches are 48*scale)
    # --- objective ---
    loss: str = "l1"  # paper: L1 beats L2 (MSE) in PSNR and convergence (Sec. 4.2)
    # --- optimizer: Adam exactly as the paper ---
    lr: float = 1e-4  # paper: initial learning rate 1e-4
    # paper: halved every 2e5 updates (the official code's default --decay 200, in epochs
    # of 1000 updates, halves only once: a 1e6-update official run ends at 5e-5)
    lr_decay_every: int = 200_000
    lr_gamma: float = 0.5  # "halved"
    betas: tuple[float, float] = (0.9, 0.999)  # paper: beta1 0.9, beta2 0.999
    eps: float = 1e-8  # paper: epsilon 1e-8
    # The official code takes the loss on 0..255 pixels (gradients x255 for L1, x255^2 for
    # L2), where eps weighs 255x (255^2x) less: Adam gets eps / that factor (adam_eps).
    rgb_range: float = 255.0
    grad_clip: float | None = None  # paper: none; residual scaling is its stabiliser
    # --- speed (none of these change the maths beyond rounding; benchmarks/bench_train.py) ---
    amp: str = "auto"  # "auto": bf16 autocast on a CUDA GPU that has it; "bf16"; "off"
    channels_last: bool | None = None  # None = on for CUDA (faster cuDNN convs), off on CPU
    compile: bool = False  # torch.compile: ~1.3x on a GPU, but minutes of compile time
    # --- bookkeeping ---
    log_every: int = 100  # read losses back from the GPU (one sync) and print this often
    eval_every: int = 0  # call eval_fn every this many steps (0 = only at the end)
    spike_factor: float = 10.0  # a loss above this x the running median is a "spike"
    seed: int = 0  # seeds torch's global RNG at the start (the sampler has its own seed)
    checkpoint_every: int = 0  # save every this many steps (0 = only at the end)
    checkpoint_path: str | None = None  # where to save; None = no checkpoints
    overwrite: bool = False  # allow replacing a checkpoint that another run wrote

    @classmethod
    def paper_recipe(cls, *, final: bool = False, **overrides: Any) -> TrainConfig:
        """The paper's recipe: 3e5 updates (ablations) or, with ``final=True``, 1e6."""
        cfg = cls(iters=1_000_000 if final else 300_000)
        return dataclasses.replace(cfg, **overrides)

    @classmethod
    def quick(cls, iters: int = 200, **overrides: Any) -> TrainConfig:
        """A CPU-sized run for notebooks in quick mode: few steps, small batches.

        The learning rate stays the paper's; decay is scaled so it still happens once,
        at two thirds of the run (as 2e5 of 3e5 in the paper).
        """
        cfg = cls(
            iters=iters,
            batch_size=8,
            patch_size=32,
            lr_decay_every=max(1, (2 * iters) // 3),
            log_every=max(1, iters // 10),
        )
        return dataclasses.replace(cfg, **overrides)

    def validate(self) -> None:
        """Raise :class:`~edsr_lab.errors.TrainOptionError` (a ``ValueError``) naming the field
        when a value cannot work."""
        if self.loss not in ("l1", "l2"):
            raise TrainOptionError(f"TrainConfig.loss={self.loss!r}: use 'l1' (the paper) or 'l2'")
        if self.amp not in ("auto", "bf16", "off"):
            raise TrainOptionError(f"TrainConfig.amp={self.amp!r}: use 'auto', 'bf16' or 'off'")
        for name in ("iters", "lr_decay_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise TrainOptionError(f"TrainConfig.{name}={getattr(self, name)!r} must be >= 1")
        for name in ("eval_every", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                raise TrainOptionError(f"TrainConfig.{name} must be >= 0 (0 = only at the end)")
        if not (self.lr > 0 and self.eps > 0 and self.rgb_range > 0):
            bad = next(n for n in ("lr", "eps", "rgb_range") if not getattr(self, n) > 0)
            raise TrainOptionError(f"TrainConfig.{bad}={getattr(self, bad)!r} must be > 0")
        if not self.lr > 0:
            raise TrainOptionError(f"TrainConfig.lr={self.lr!r} must be > 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise TrainOptionError(f"TrainConfig.grad_clip={self.grad_clip!r}: use None or > 0")
        if self.checkpoint_every and not self.checkpoint_path:
            raise TrainOptionError(
                "TrainConfig.checkpoint_every is set but checkpoint_path is None: "
                "say where to save, e.g. checkpoint_path='checkpoints/run.pt'"
            )

    @property
    def loss_scale(self) -> float:
        """Factor from our loss (on [0, 1]) to the official one (on 0..rgb_range)."""
        return self.rgb_range if self.loss == "l1" else self.rgb_range**2

    @property
    def adam_eps(self) -> float:
        """The eps given to Adam: ``eps / loss_scale``, so that each update is the official
        code's (Adam is invariant to the loss scale except for eps)."""
        return self.eps / self.loss_scale

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (only primitives) for checkpoints and logs."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


# ----------------------------------------------------------------------------------------
# History
# ----------------------------------------------------------------------------------------


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
            steps are queued asynchronously, so only the times at log points are exact).
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
        factor = _official_factor(self.config)
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
        from edsr_lab.viz import plot_history

        return plot_history(self, key=key, **kwargs)

    def __repr__(self) -> str:
        status = f"diverged at step {self.diverged_step}" if self.diverged else "ok"
        last = f", last loss {self.loss[-1]:.5g}" if self.loss else ""
        return f"History({len(self)} steps{last}, {status}, {len(self.evals)} evals)"


# ----------------------------------------------------------------------------------------
# The training step (shared with benchmarks/bench_train.py)
# ----------------------------------------------------------------------------------------


def resolve_amp(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``: torch.bfloat16 or None (fp32).

    bf16 keeps fp32's exponent range, so no loss scaling is needed (unlike fp16). It is
    used only on CUDA: CPU bf16 autocast is slower than fp32 on most laptops.
    """
    if amp in (None, False, "off"):
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if amp in (True, "bf16"):
        if device.type != "cuda":
            raise DeviceError(
                f"amp='bf16' needs a CUDA GPU but the device is {device}; "
                "use amp='auto' (bf16 where it helps) or amp='off'"
            )
        return torch.bfloat16
    raise BadArgumentError(f"amp={amp!r}: use 'auto', 'bf16' or 'off'")


def _autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype``, or a no-op context when dtype is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device, *, fused: bool | None = None
) -> torch.optim.Adam:
    """Adam with the paper's hyper-parameters; ``fused=None`` means fused on CUDA.

    Its eps is ``config.adam_eps`` (see :class:`TrainConfig`): with it, each update equals
    the official code's, whose loss is on 0..255 pixels.

    The fused kernel updates every parameter in one launch instead of several per tensor,
    which matters for small models where launch overhead dominates.
    """
    if fused is None:
        fused = device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BadArgumentError("the model has no trainable parameters (all requires_grad=False)")
    return torch.optim.Adam(
        params,
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.adam_eps,
        fused=True if fused else None,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    """The paper's step schedule: lr x ``lr_gamma`` every ``lr_decay_every`` updates."""
    return torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_gamma
    )


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)  # one kernel per group instead of one per tensor
    return torch.linalg.vector_norm(torch.stack(norms))


def make_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    loss: str = "l1",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    grad_clip: float | None = None,
    track_grad_norm: bool = True,
) -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
    """Build ``step(lr, hr, scale=None) -> (loss, grad_norm)``: one forward, backward and
    optimizer update; with a ``scale`` the model is called as ``model(lr, scale)`` (MDSR).

    ``model`` may be a ``torch.compile``-d module. Inputs must already be on the model's
    device. Returned values are 0-d tensors on the device (not synchronised): call
    ``.item()`` only when you need the number. ``grad_norm`` is None when neither
    ``track_grad_norm`` nor ``grad_clip`` asks for it. The loss is computed in fp32 even
    under autocast. The scheduler is not stepped here.
    """
    if loss == "l1":
        loss_fn = F.l1_loss
    elif loss == "l2":
        loss_fn = F.mse_loss
    else:
        raise BadArgumentError(f"loss={loss!r}: use 'l1' or 'l2'")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    device_type = params[0].device.type
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(
        lr: torch.Tensor, hr: torch.Tensor, scale: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if channels_last:
            lr = lr.contiguous(memory_format=memory_format)
        with _autocast(device_type, amp_dtype):
            sr = model(lr) if scale is None else model(lr, scale)
        value = loss_fn(sr.float(), hr)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        norm = None
        if grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        elif track_grad_norm:
            norm = _grad_norm(params)
        optimizer.step()
        return value.detach(), norm

    return step


# ----------------------------------------------------------------------------------------
# Training checkpoints: a model checkpoint (edsr_lab.models.save_checkpoint) + training state
# ----------------------------------------------------------------------------------------


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
    """Write what :func:`train` needs to resume, atomically, replacing ``path``.

    The file is a model checkpoint (see :mod:`edsr_lab.models.checkpoints`, which
    documents the format) whose ``training`` entry holds ``step``, the TrainConfig as a
    dict, the optimizer, scheduler and sampler states, the history and the RNG states.
    ``model`` may be wrapped (DDP, ``torch.compile``): its inner module is saved.
    """
    from edsr_lab.models.checkpoints import save_checkpoint

    training: dict[str, Any] = {
        "step": int(step),
        "config": config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history.to_dict(),
        "rng": _rng_state(),
    }
    sampler_state = _sampler_state(sampler)
    if sampler_state is not None:
        training["sampler"] = sampler_state
    return save_checkpoint(model, path, overwrite=True, training=training)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (safely: ``weights_only=True``).

    Returns a dict with ``model`` (the state_dict: ``model.load_state_dict(ckpt["model"])``
    restores the weights), ``arch`` and ``model_config`` (what ``load_checkpoint`` builds)
    and the training state: ``step, config, optimizer, scheduler, history`` (and
    ``sampler``/``rng`` when saved).

    Raises:
        CheckpointError: missing, damaged, or a model checkpoint without training state.
    """
    from edsr_lab.models import checkpoints as ck

    path = Path(path)
    source = f"checkpoint {str(path)!r}"
    raw = ck._torch_load(path, map_location="cpu")
    if isinstance(raw, dict) and raw.get("format") == ck._LEGACY_TRAINING_FORMAT:
        return dict(raw)  # written by edsr_lab before the formats were merged
    if not (isinstance(raw, dict) and raw.get("format") == ck.FORMAT):
        raise CheckpointError(
            f"{str(path)!r} is not an edsr_lab training checkpoint (it has no "
            f"format {ck.FORMAT!r}); for model weights only use "
            "edsr_lab.models.load_checkpoint or load_official"
        )
    ck._verify_checksum(raw, source)
    training = raw.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(
            f"{str(path)!r} is not an edsr_lab training checkpoint: it holds model weights "
            "only (no optimizer, step or history), so training cannot resume from it; start "
            "a new run from its weights with load_checkpoint(path) instead"
        )
    return {
        "model": ck._unwrap_state_dict(raw.get("state_dict"), source),
        "arch": raw.get("arch"),
        "model_config": raw.get("config"),
        **training,
    }


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


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sampler_state(sampler: Any) -> Any:
    """The sampler's RNG state: ``state_dict()`` or PatchSampler's ``get_state()``."""
    if hasattr(sampler, "state_dict"):
        return {"state_dict": sampler.state_dict()}
    if hasattr(sampler, "get_state"):
        return {"get_state": sampler.get_state()}
    return None


def _set_sampler_state(sampler: Any, state: dict[str, Any]) -> None:
    if "state_dict" in state and hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state["state_dict"])
    elif "get_state" in state and hasattr(sampler, "set_state"):
        sampler.set_state(state["get_state"])


def _unwrap(model: nn.Module) -> nn.Module:
    from edsr_lab.models.checkpoints import _unwrap_model

    return _unwrap_model(model)


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
        _unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model/optimizer: {exc}"
        ) from exc
    # The scheduler state carries the step count: restoring it (rather than building a
    # fresh scheduler) is what keeps the learning rate right after a resume.
    scheduler.load_state_dict(ckpt["scheduler"])
    start = int(ckpt["step"])
    history = History.from_dict(ckpt["history"])
    _reconcile_config(
        ckpt.get("config") or {}, config, optimizer, scheduler, start, history, resume_changes, path
    )
    history.config = config.to_dict()
    if "sampler" in ckpt:
        _set_sampler_state(sampler, ckpt["sampler"])
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


# ----------------------------------------------------------------------------------------
# The pieces of train() beside the loop
# ----------------------------------------------------------------------------------------


def _checkpoint_target(config: TrainConfig, resume_from: str | Path | None) -> Path | None:
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
        with torch.no_grad(), _autocast(self.device.type, self.amp_dtype):
            out_shape = tuple(_forward(self.model, lr[:1], scale).shape)
        if out_shape[1:] != tuple(hr.shape[1:]):
            raise SizeMismatchError(
                f"the model maps an LR patch {tuple(lr.shape[1:])} to {out_shape[1:]} but "
                f"the sampler's HR patch is {tuple(hr.shape[1:])}: do the model's scale "
                "and the sampler's scale agree?"
            )


def _forward(model: nn.Module, lr: torch.Tensor, scale: int | None) -> torch.Tensor:
    """``model(lr)``, or ``model(lr, scale)`` for a multi-scale batch (MDSR)."""
    return model(lr) if scale is None else model(lr, scale)


class _StepLog:
    """The history, filled from losses that stay on the device until a read-back.

    On a GPU, ``.item()`` waits for the queue to drain, so values are read back in chunks
    (every ``log_every`` steps, or before an evaluation or a save). On the CPU there is no
    queue: values are read every step, so divergence stops training at once. It also
    drives the progress bar (tqdm.auto: a widget in notebooks, a text bar elsewhere).
    """

    def __init__(
        self,
        history: History,
        config: TrainConfig,
        device: torch.device,
        start: int,
        progress: bool,
    ):
        self.history, self.config = history, config
        self.every = config.log_every if device.type == "cuda" else 1
        self.t0 = time.perf_counter() - (history.time[-1] if history.time else 0.0)
        self.pending: list[tuple[int, float, float, torch.Tensor, torch.Tensor | None]] = []
        self.bar = _progress_bar(config.iters, start) if progress else None
        self.progress = progress

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
            if _is_spike(loss, h.loss[-101:-1], self.config.spike_factor):
                h.spikes.append((step, loss))
        self.pending.clear()
        if self.bar is not None:
            self.bar.update(h.last_step - self.bar.n)
            if self.at_log_point(h.last_step):
                self.report()
        if not ok and self.progress:
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
        due = step % self.every == 0 or self.at_log_point(step)
        if due or _due(step, c.eval_every) or _due(step, c.checkpoint_every):
            return self.flush()
        return True

    def at_log_point(self, step: int) -> bool:
        """Every ``log_every`` steps and at the last step."""
        return step % self.config.log_every == 0 or step == self.config.iters

    def report(self) -> None:
        """Show the latest loss (ours and in the official 0..255 units) and lr on the bar."""
        if self.bar is None or not self.history.loss:
            return
        h = self.history
        official = h.loss[-1] * _official_factor(h.config)
        self.bar.set_postfix_str(
            f"loss {h.loss[-1]:.5f} ({official:.3f} on 0..255), lr {h.lr[-1]:.2e}",
            refresh=False,
        )

    def write(self, message: str) -> None:
        """A line above the bar (nothing when progress is off)."""
        if self.bar is not None:
            self.bar.write(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(total: int, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, desc="train")


def _is_spike(loss: float, recent: list[float], factor: float) -> bool:
    """A loss above ``factor`` x the median of the recent ones (at least 3): the median,
    not the mean, so one earlier spike does not hide the next."""
    return len(recent) >= 3 and loss > factor * statistics.median(recent)


def _official_factor(config: dict[str, Any]) -> float:
    """Loss on [0, 1] pixels -> the loss the official code logs (on 0..255 pixels)."""
    rgb = float(config.get("rgb_range", 255.0))
    return rgb if config.get("loss", "l1") == "l1" else rgb * rgb


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
    loss_fn = F.l1_loss if config.loss == "l1" else F.mse_loss
    try:
        with torch.no_grad(), _autocast(lr.device.type, amp_dtype):
            value = float(loss_fn(_forward(model, lr, scale).float(), hr))
    finally:
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)
    return math.isfinite(value) and not _is_spike(value, history.loss[-100:], config.spike_factor)


class _Checkpointer:
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
        log: _StepLog,
    ):
        self.path, self.model, self.optimizer, self.scheduler = path, model, optimizer, scheduler
        self.sampler, self.config, self.amp_dtype, self.log = sampler, config, amp_dtype, log
        self.tried = 0  # the last step a save was attempted at

    def save(self, step: int, batch: tuple[torch.Tensor, torch.Tensor, int | None]) -> None:
        self.tried = step
        if self.path is None:
            return
        history = self.log.history
        if not _sound(self.model, batch, self.config, self.amp_dtype, history):
            history.skipped_checkpoints.append(step)
            self.log.write(
                f"step {step}: these weights give an exploding loss on the last batch; "
                f"not saved, {str(self.path)!r} keeps the last good state"
            )
            return
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


def _stop_requested(callback: Any, step: int, history: History) -> bool:
    """Call ``callback(step, history)``; True (and ``history.stopped_early``) to stop."""
    if callback is not None and callback(step, history) is True:
        history.stopped_early = True
        return True
    return False


def _due(step: int, every: int) -> bool:
    return bool(every) and step % every == 0


# ----------------------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------------------


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
            :class:`edsr_lab.data.patches.PatchSampler`; or ``(lr, hr, scale)`` for a
            multi-scale model, which is then called as ``model(lr, scale)`` (MDSR: only
            that scale's modules are used and updated in the step). If it also has
            ``get_state()/set_state()`` or ``state_dict()/load_state_dict()``, its state
            goes into checkpoints so a resumed run sees the same batches as an
            uninterrupted one.
        config: a :class:`TrainConfig` (default: the paper's recipe). Keyword arguments
            override single fields: ``train(model, sampler, iters=100, loss="l2")``.
        device: where to train; default ``edsr_lab.config.default_device()``.
        eval_fn: ``eval_fn(model) -> {"psnr": ...}``, called every ``eval_every`` steps and
            at the end, with the model in eval mode (put back in train mode after).
        callback: ``callback(step, history)`` called every ``log_every`` steps after the
            history is updated; return True to stop training (``history.stopped_early``).
        resume_from: a checkpoint written by this function; model, optimizer, scheduler,
            step, history, sampler and RNG state are restored and training continues to
            ``config.iters``.
        progress: a tqdm progress bar (loss, lr, it/s, ETA); False: silent.
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
        CheckpointExistsError: ``config.checkpoint_path`` exists and is not the file being
            resumed, and ``config.overwrite`` is False.
        CheckpointError: ``resume_from`` is missing or does not fit this model.
        ResumeConfigError: see ``resume_changes``.
    """
    from edsr_lab.config import default_device

    config = dataclasses.replace(config or TrainConfig(), **overrides)
    config.validate()
    device = torch.device(device) if device is not None else default_device()
    ckpt_path = _checkpoint_target(config, resume_from) if is_main else None
    amp_dtype = resolve_amp(config.amp, device)
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    torch.manual_seed(config.seed)

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    core = _unwrap(model)  # what is saved and evaluated (no DDP collectives there)
    optimizer = make_optimizer(model, config, device)
    scheduler = make_scheduler(optimizer, config)
    start, history = 0, History(config=config.to_dict())
    if resume_from is not None:
        start, history = restore_training_state(
            resume_from,
            model,
            optimizer,
            scheduler,
            sampler,
            config,
            resume_changes=resume_changes,
        )
    step_fn = make_train_step(
        torch.compile(model) if config.compile else model,
        optimizer,
        loss=config.loss,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        grad_clip=config.grad_clip,
    )
    check_batch = _BatchChecker(core, amp_dtype, device)

    log = _StepLog(history, config, device, start, progress and is_main)
    saver = _Checkpointer(ckpt_path, core, optimizer, scheduler, sampler, config, amp_dtype, log)
    batch = None
    try:
        # The textbook loop: sample, forward + loss + backward + Adam, schedule, book-keep.
        for step in range(start + 1, config.iters + 1):
            batch = _batch_to(sampler.sample(), device)
            check_batch(*batch)
            lr_now = optimizer.param_groups[0]["lr"]
            loss, norm = step_fn(*batch)
            scheduler.step()
            if not log.record(step, lr_now, loss, norm):
                return history  # diverged: the last checkpoint written stays the good one
            if log.at_log_point(step) and _stop_requested(callback, step, history):
                break
            if _due(step, config.eval_every):
                _evaluate(core, eval_fn, history, step)
            if _due(step, config.checkpoint_every):
                saver.save(step, batch)
        if not log.flush():
            return history
        _evaluate(core, eval_fn, history, history.last_step)
        if batch is not None and history.last_step > max(saver.tried, start):
            saver.save(history.last_step, batch)
    finally:
        log.close()
    return history
