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
- atomic checkpoints that hold model, optimizer, scheduler, step and history, and an exact
  resume (the official code's users report a wrong learning rate after resuming; here the
  scheduler state is restored, and a test checks resumed == uninterrupted);
- the speed options measured in ``performance.md``: bf16 autocast, channels_last, fused
  Adam, ``torch.compile``.

Helpers for notebook 03 (the cost of batch norm) and ``benchmarks/bench_train.py``:
:func:`measure_step` (it/s and peak memory of one training step), :func:`activation_memory`
(bytes saved for backward, deterministic on any device) and :func:`conv_flops`.

Every tensor is float32 (N, C, H, W) with values in [0, 1], as everywhere in ``edsr_lab``.
"""

from __future__ import annotations

import contextlib
import copy
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

from edsr_lab.errors import CheckpointError, CheckpointExistsError
from edsr_lab.evaluate import input_channels, model_scale
from edsr_lab.io import atomic_write

__all__ = [
    "History",
    "TrainConfig",
    "activation_memory",
    "conv_flops",
    "load_training_checkpoint",
    "make_optimizer",
    "make_train_step",
    "measure_step",
    "time_steps",
    "train",
]

#: Format tag written into every training checkpoint (bump when the layout changes).
CHECKPOINT_FORMAT = "edsr_lab.train/1"


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
    lr_decay_every: int = 200_000  # paper: halved every 2e5 updates
    lr_gamma: float = 0.5  # "halved"
    betas: tuple[float, float] = (0.9, 0.999)  # paper: beta1 0.9, beta2 0.999
    eps: float = 1e-8  # paper: epsilon 1e-8
    grad_clip: float | None = None  # paper: none; residual scaling is its stabiliser
    # --- speed (see performance.md; none of these change the maths beyond rounding) ---
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
        """Raise ValueError naming the field when a value cannot work."""
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"TrainConfig.loss={self.loss!r}: use 'l1' (the paper) or 'l2'")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"TrainConfig.amp={self.amp!r}: use 'auto', 'bf16' or 'off'")
        for name in ("iters", "lr_decay_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} must be >= 1")
        for name in ("eval_every", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0 (0 = only at the end)")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr={self.lr!r} must be > 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip={self.grad_clip!r}: use None or > 0")
        if self.checkpoint_every and not self.checkpoint_path:
            raise ValueError(
                "TrainConfig.checkpoint_every is set but checkpoint_path is None: "
                "say where to save, e.g. checkpoint_path='checkpoints/run.pt'"
            )

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
        loss: training loss of that step (the batch's mean L1 or L2, on [0, 1] pixels).
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
            raise ValueError(
                f"amp='bf16' needs a CUDA GPU but the device is {device}; "
                "use amp='auto' (bf16 where it helps) or amp='off'"
            )
        return torch.bfloat16
    raise ValueError(f"amp={amp!r}: use 'auto', 'bf16' or 'off'")


def _autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype``, or a no-op context when dtype is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device, *, fused: bool | None = None
) -> torch.optim.Adam:
    """Adam with the paper's hyper-parameters; ``fused=None`` means fused on CUDA.

    The fused kernel updates every parameter in one launch instead of several per tensor,
    which matters for small models where launch overhead dominates.
    """
    if fused is None:
        fused = device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    return torch.optim.Adam(
        params,
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
        fused=True if fused else None,
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
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]:
    """Build ``step(lr, hr) -> (loss, grad_norm)``: one forward/backward/optimizer update.

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
        raise ValueError(f"loss={loss!r}: use 'l1' or 'l2'")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    device_type = params[0].device.type
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if channels_last:
            lr = lr.contiguous(memory_format=memory_format)
        with _autocast(device_type, amp_dtype):
            sr = model(lr)
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
# Checkpoints
# ----------------------------------------------------------------------------------------


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save via a temporary file: a crash mid-write leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (safely: ``weights_only=True``).

    Returns the dict with keys ``format, model, optimizer, scheduler, step, config,
    history`` (and ``sampler``/``rng`` when saved). ``ckpt["model"]`` is a plain
    state_dict: ``model.load_state_dict(ckpt["model"])`` restores the weights.
    """
    from edsr_lab.models.checkpoints import _torch_load  # one safe reader for every .pt

    path = Path(path)
    ckpt = _torch_load(path, map_location="cpu")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not an edsr_lab training checkpoint (no format "
            f"{CHECKPOINT_FORMAT!r}); for model weights only use "
            "edsr_lab.models.load_checkpoint or load_official"
        )
    return ckpt


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


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


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------------------


def _batch_to(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(
            f"sampler.sample() returned {type(batch).__name__}; expected a tuple (lr, hr) "
            "of float tensors (N, C, h, w) and (N, C, h*scale, w*scale) in [0, 1]"
        )
    lr, hr = batch
    return lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)


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
    **overrides: Any,
) -> History:
    """Train ``model`` on batches from ``sampler`` with the paper's recipe.

    Args:
        model: maps LR (N, C, h, w) in [0, 1] to SR (N, C, h*s, w*s). It is moved to
            ``device`` and trained in place; it is left in train mode.
        sampler: anything with ``.sample() -> (lr, hr)`` float tensors in [0, 1], e.g.
            :class:`edsr_lab.data.patches.PatchSampler`. If it also has
            ``get_state()/set_state()`` (PatchSampler) or ``state_dict()/load_state_dict()``,
            its state goes into checkpoints so a resumed run sees the same batches as an
            uninterrupted one.
        config: a :class:`TrainConfig` (default: the paper's recipe). Keyword arguments
            override single fields: ``train(model, sampler, iters=100, loss="l2")``.
        device: where to train; default ``edsr_lab.config.default_device()``.
        eval_fn: ``eval_fn(model) -> {"psnr": ...}``, called every ``eval_every`` steps and
            at the end, with the model in eval mode (put back in train mode after).
        callback: ``callback(step, history)`` called every ``log_every`` steps after the
            history is updated; return True to stop training (``history.stopped_early``).
        resume_from: a checkpoint written by this function; model, optimizer, scheduler,
            step, history (and sampler/RNG state) are restored and training continues to
            ``config.iters``.
        progress: print one line every ``log_every`` steps.

    Returns:
        the :class:`History`. A nan/inf loss stops training with ``history.diverged=True``
        (no exception, and no checkpoint is written from the diverged weights).

    Raises:
        CheckpointExistsError: ``config.checkpoint_path`` exists and is not the file being
            resumed, and ``config.overwrite`` is False.
        CheckpointError: ``resume_from`` is missing or does not fit this model.
    """
    from edsr_lab.config import default_device

    config = dataclasses.replace(config or TrainConfig(), **overrides)
    config.validate()
    device = torch.device(device) if device is not None else default_device()
    ckpt_path = Path(config.checkpoint_path).expanduser() if config.checkpoint_path else None

    # Never clobber another run's checkpoint: only the run being resumed may write there.
    if ckpt_path is not None and ckpt_path.exists() and not config.overwrite:
        resuming_same = resume_from is not None and Path(resume_from).expanduser().resolve() == (
            ckpt_path.resolve()
        )
        if not resuming_same:
            raise CheckpointExistsError(
                f"checkpoint_path {str(ckpt_path)!r} already exists and belongs to another "
                "run; pass resume_from=checkpoint_path to continue that run, choose another "
                "path, or set overwrite=True to replace it"
            )

    amp_dtype = resolve_amp(config.amp, device)
    channels_last = (
        device.type == "cuda" if config.channels_last is None else bool(config.channels_last)
    )
    torch.manual_seed(config.seed)

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = make_optimizer(model, config, device)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_gamma
    )
    history = History(config=config.to_dict())

    start = 0
    if resume_from is not None:
        ckpt = load_training_checkpoint(resume_from)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {str(resume_from)!r} does not fit this model/optimizer: {exc}"
            ) from exc
        # The scheduler state carries the step count: restoring it (rather than building a
        # fresh scheduler) is what keeps the learning rate right after a resume.
        scheduler.load_state_dict(ckpt["scheduler"])
        start = int(ckpt["step"])
        history = History.from_dict(ckpt["history"])
        history.config = config.to_dict()
        if "sampler" in ckpt:
            _set_sampler_state(sampler, ckpt["sampler"])
        if "rng" in ckpt:
            _set_rng_state(ckpt["rng"])

    forward = torch.compile(model) if config.compile else model
    step_fn = make_train_step(
        forward,
        optimizer,
        loss=config.loss,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        grad_clip=config.grad_clip,
    )

    last_saved = start

    def save(step: int) -> None:
        nonlocal last_saved
        if ckpt_path is None:
            return
        last_saved = step
        obj: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "config": config.to_dict(),
            "history": history.to_dict(),
            "rng": _rng_state(),
        }
        sampler_state = _sampler_state(sampler)
        if sampler_state is not None:
            obj["sampler"] = sampler_state
        _atomic_torch_save(obj, ckpt_path)

    def run_eval(step: int) -> None:
        if eval_fn is None or (history.evals and history.evals[-1]["step"] == step):
            return
        model.eval()
        try:
            metrics = eval_fn(model)
        finally:
            model.train()
        history.evals.append({"step": step, **{k: float(v) for k, v in dict(metrics).items()}})

    # On a GPU, .item() waits for the queue to drain; read values back in chunks instead.
    # On the CPU there is no queue, so check every step (divergence stops immediately).
    flush_every = config.log_every if device.type == "cuda" else 1
    t0 = time.perf_counter() - (history.time[-1] if history.time else 0.0)
    pending: list[tuple[int, float, float, torch.Tensor, torch.Tensor | None]] = []
    last_print = (time.perf_counter(), start)

    def flush() -> bool:
        """Move pending values into the history; return False when training must stop."""
        if not pending:
            return True
        losses = torch.stack([p[3] for p in pending]).float().cpu().tolist()
        norms = [p[4] for p in pending]
        if norms[0] is not None:
            norms = torch.stack(norms).float().cpu().tolist()
        else:
            norms = [math.nan] * len(pending)
        ok = True
        for (step, lr_value, t, _, _), loss, norm in zip(pending, losses, norms, strict=True):
            history.step.append(step)
            history.loss.append(loss)
            history.lr.append(lr_value)
            history.time.append(t)
            history.grad_norm.append(norm)
            if not math.isfinite(loss):
                history.diverged, history.diverged_step = True, step
                ok = False
                break
            recent = history.loss[-101:-1]
            if len(recent) >= 3 and loss > config.spike_factor * statistics.median(recent):
                history.spikes.append((step, loss))
        pending.clear()
        if not ok and progress:
            print(
                f"step {history.diverged_step}: loss is {history.loss[-1]} -> training "
                "stopped (diverged). Try a lower lr, res_scale=0.1, or grad_clip."
            )
        return ok

    def report(step: int) -> None:
        nonlocal last_print
        now = time.perf_counter()
        rate = (step - last_print[1]) / max(now - last_print[0], 1e-9)
        last_print = (now, step)
        eta = (config.iters - step) / max(rate, 1e-9)
        print(
            f"step {step:>{len(str(config.iters))}}/{config.iters} | "
            f"loss {history.loss[-1]:.5f} | lr {history.lr[-1]:.2e} | "
            f"{rate:.1f} it/s | eta {_fmt_seconds(eta)}",
            flush=True,
        )

    checked_shapes = False
    step = start
    for step in range(start + 1, config.iters + 1):
        lr_batch, hr_batch = _batch_to(sampler.sample(), device)
        if not checked_shapes:
            _check_batch(model, lr_batch, hr_batch, amp_dtype, device)
            checked_shapes = True
        lr_now = optimizer.param_groups[0]["lr"]
        loss, norm = step_fn(lr_batch, hr_batch)
        scheduler.step()
        pending.append((step, float(lr_now), time.perf_counter() - t0, loss, norm))

        at_log = step % config.log_every == 0 or step == config.iters
        at_eval = bool(config.eval_every) and step % config.eval_every == 0
        at_save = bool(config.checkpoint_every) and step % config.checkpoint_every == 0
        # Check the losses before evaluating or saving: never checkpoint diverged weights.
        if (step % flush_every == 0 or at_log or at_eval or at_save) and not flush():
            return history
        if at_log:
            if progress:
                report(step)
            if callback is not None and callback(step, history) is True:
                history.stopped_early = True
                break
        if at_eval:
            run_eval(step)
        if at_save:
            save(step)

    if not flush():
        return history
    run_eval(history.last_step)
    if history.last_step > start and history.last_step != last_saved:
        save(history.last_step)
    return history


def _check_batch(
    forward: nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    amp_dtype: torch.dtype | None,
    device: torch.device,
) -> None:
    """Fail early, with a readable message, when the sampler and model do not fit."""
    if lr.dim() != 4 or hr.dim() != 4 or not lr.is_floating_point():
        raise ValueError(
            f"sampler.sample() gave lr {tuple(lr.shape)} {lr.dtype} and hr {tuple(hr.shape)}; "
            "expected float tensors (N, C, h, w) and (N, C, h*scale, w*scale)"
        )
    with torch.no_grad(), _autocast(device.type, amp_dtype):
        out_shape = tuple(forward(lr[:1]).shape)
    if out_shape[1:] != tuple(hr.shape[1:]):
        raise ValueError(
            f"the model maps an LR patch {tuple(lr.shape[1:])} to {out_shape[1:]} but the "
            f"sampler's HR patch is {tuple(hr.shape[1:])}: do the model's scale and the "
            "sampler's scale agree?"
        )


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


# ----------------------------------------------------------------------------------------
# Measuring: speed, memory, FLOPs
# ----------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    fn: Callable[[], Any], *, steps: int, warmup: int, device: torch.device
) -> list[float]:
    """Milliseconds of each of ``steps`` calls of ``fn()``, after ``warmup`` untimed calls.

    On CUDA each call is bracketed by CUDA events (GPU time, no per-step host sync);
    elsewhere by ``time.perf_counter``.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(steps)
        ]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) for start, end in events]
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def measure_step(
    model: nn.Module,
    batch: Any = None,
    *,
    scale: int | None = None,
    batch_size: int = 16,
    patch_size: int = 48,
    steps: int = 20,
    warmup: int = 3,
    loss: str = "l1",
    amp: str = "off",
    channels_last: bool = False,
    fused: bool | None = False,
    compile: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Time full training steps (forward, loss, backward, Adam) of a copy of ``model``.

    Args:
        model: the network; a deep copy is trained, so ``model`` is left untouched.
        batch: a sampler (``.sample() -> (lr, hr)``), a tuple ``(lr, hr)`` of tensors, or
            None for random data of ``batch_size`` x ``patch_size``^2 LR patches (HR
            ``patch_size * scale``; ``scale`` defaults to ``model.scale``). One batch is
            reused for every step so data loading is not timed.
        steps, warmup: timed steps and untimed warm-up steps (cuDNN autotuning, compile).
        amp, channels_last, fused, compile: the speed options (see :class:`TrainConfig`);
            the defaults are the official code's plain fp32 loop.

    Returns:
        ``{"it_per_s", "ms_per_step" (median), "ms_per_step_all" (list), "peak_mem_bytes",
        "activation_bytes", "device"}``. ``peak_mem_bytes`` is
        ``torch.cuda.max_memory_allocated`` during the timed steps (weights, Adam state and
        activations) on CUDA, and None on other devices: PyTorch's CPU allocator has no
        peak counter and ``tracemalloc`` does not see its allocations. Compare
        ``activation_bytes`` (from :func:`activation_memory`) instead; it is the same on
        every device, which is why notebook 03 asserts on it.
    """
    from edsr_lab.config import default_device

    device = torch.device(device) if device is not None else default_device()
    net = copy.deepcopy(model).to(device)
    net.train()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if batch is None:
        s = scale or model_scale(model)
        if s is None:
            raise ValueError("measure_step: pass scale= (the model has no .scale attribute)")
        c = input_channels(model) or 3
        g = torch.Generator().manual_seed(0)
        lr = torch.rand(batch_size, c, patch_size, patch_size, generator=g)
        hr = torch.rand(batch_size, c, patch_size * s, patch_size * s, generator=g)
    elif hasattr(batch, "sample"):
        lr, hr = batch.sample()
    else:
        lr, hr = batch
    lr, hr = lr.to(device), hr.to(device)

    activation_bytes = activation_memory(net, lr)
    cfg = TrainConfig()
    optimizer = make_optimizer(net, cfg, device, fused=fused)
    forward = torch.compile(net) if compile else net
    step = make_train_step(
        forward,
        optimizer,
        loss=loss,
        amp_dtype=resolve_amp(amp, device),
        channels_last=channels_last,
        track_grad_norm=False,
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(lambda: step(lr, hr), steps=steps, warmup=warmup, device=device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    ms = statistics.median(times)
    return {
        "it_per_s": 1e3 / ms,
        "ms_per_step": ms,
        "ms_per_step_all": times,
        "peak_mem_bytes": peak,
        "activation_bytes": activation_bytes,
        "device": str(device),
    }


def activation_memory(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of activations that one forward pass keeps for the backward pass.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd saves
    is recorded once (by storage), parameters excluded. This is the memory that grows with
    batch and patch size and that batch norm adds to (BN saves its input and its output
    feeds the next conv, which saves it too). It is exact and identical on every device,
    unlike allocator statistics. The model runs in its current mode (train mode for the
    training cost) and no gradient is kept.

    Args:
        model: the network.
        x: an input batch, e.g. (16, 3, 48, 48) float in [0, 1], on the model's device.
    """
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    param_ptrs |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.strided and t.device.type != "meta":
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in param_ptrs and ptr != 0:
                seen[ptr] = storage.nbytes()
        return t

    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = model(x)
    del out
    return int(sum(seen.values()))


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Floating-point operations of the convolutions in one forward pass on ``x``.

    Each ``nn.Conv2d`` costs 2 x MACs = 2 x out_elements x (in_channels / groups) x kh x kw;
    each ``nn.ConvTranspose2d`` (every input pixel scatters a kh x kw kernel to every output
    channel) 2 x in_elements x (out_channels / groups) x kh x kw. Bias and activations are
    negligible next to it. A training step costs about 3x this
    (forward, plus backward for inputs and for weights). Used for TFLOP/s estimates.
    """
    total = 0

    def hook(module: nn.Conv2d | nn.ConvTranspose2d, inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):
            total += 2 * inp[0].numel() * (module.out_channels // module.groups) * kh * kw
        else:
            total += 2 * out.numel() * (module.in_channels // module.groups) * kh * kw

    convs = (nn.Conv2d, nn.ConvTranspose2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, convs)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total
