"""A complete training run: :func:`run`, the Python twin of ``python -m edsr_lab train``.

:func:`edsr_lab.train.train` is the loop; this module is everything around it that a real
run needs, with the paper's recipe (Lim et al. 2017, Section 4.2) as the defaults:

* **data**: chosen by the one rule of :mod:`edsr_lab.data.sources` (DIV2K, the mini-DIV2K
  in quick mode, or a folder you name);
* **the model**: a preset of the registry (:func:`edsr_lab.models.build_model`: the
  paper's, or one you registered), optionally started from ``--init`` weights
  (official or ours; another scale goes through :func:`edsr_lab.models.init_from`, as the
  paper starts x3/x4 from x2);
* **the output folder**: ``last.pt`` (training checkpoint, atomic, every
  ``checkpoint_every`` steps), ``best.pt`` (model checkpoint with the best validation
  PSNR), ``history.csv``, ``config.json`` (the resolved settings), ``curves.png`` and
  ``summary.json`` (validation PSNR next to bicubic and, with ``--init``, next to the
  starting weights). A folder that holds another run is never overwritten without
  ``resume=True`` or ``overwrite=True``;
* **several GPUs** with ``torchrun`` (:mod:`edsr_lab.train.ddp`).

Batches come from a :class:`~edsr_lab.data.samplers.StepSeededSampler`, so a resumed run
-- on any number of ranks -- sees exactly the batches an uninterrupted run would have
seen, and a killed run resumed from ``last.pt`` ends with the same weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from edsr_lab import config, models
from edsr_lab.data.samplers import StepSeededSampler
from edsr_lab.data.sources import DataChoice, TrainData, choose_training_data, load_training_data
from edsr_lab.errors import OutputPathError, RunExistsError, TrainOptionError, did_you_mean
from edsr_lab.paths import unwritable_reason
from edsr_lab.train import ddp
from edsr_lab.train.config import RunConfig, option_name
from edsr_lab.train.log import History
from edsr_lab.train.loop import train
from edsr_lab.train.report import (
    PROTOCOL,
    add_gains,
    bicubic_psnr,
    report_lines,
    validate,
    write_curves,
    write_history_csv,
    write_json,
)
from edsr_lab.train.state import load_training_checkpoint
from edsr_lab.weights import load_model, load_pretrained

__all__ = ["RUN_FILES", "RunResult", "init_model", "run"]

#: The files a run writes into its output folder (``overwrite`` removes only these).
RUN_FILES = (
    "last.pt",
    "best.pt",
    "history.csv",
    "config.json",
    "curves.png",
    "summary.json",
)

# Options that define a run: on resume they must be left out or equal the stored ones.
_FIXED_ON_RESUME = (
    "model",
    "scales",
    "data",
    "batch_size",
    "patch_size",
    "loss",
    "lr",
    "seed",
    "holdout",
    "degradation",
    "split_by",
    "n_resblocks",
    "n_feats",
    "init",
)

# Old names of RunConfig fields (in config.json of older runs).
_RENAMED = {"save_every": "checkpoint_every"}


@dataclass
class RunResult:
    """What :func:`run` returns: the trained model, its history and the validation report."""

    model: nn.Module
    history: History
    summary: dict[str, Any]
    out: Path


def _say(msg: str) -> None:
    if ddp.rank() == 0:
        print(msg, flush=True)


def run(
    cfg: RunConfig | None = None, *, given: set[str] | None = None, **options: Any
) -> RunResult:
    """Train a model as ``python -m edsr_lab train`` does; returns a :class:`RunResult`.

    ``run(model="edsr_baseline", scales=(2,), iters=300_000, out="runs/x2")`` or
    ``run(RunConfig(...))``. Options left out take :meth:`RunConfig.defaults` (in quick
    mode a short run, said in one line). With ``resume=True``, options not given are read
    from the run in ``out`` (``given`` names the options set explicitly; by default those
    in ``options``). Under ``torchrun`` each process runs this and rank 0 writes the files.
    """
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    for key in options:
        if key not in fields:
            raise TrainOptionError(
                f"run({key}=...): no such option; {did_you_mean(key, fields)}"
                "the options are RunConfig's fields (--save-every is checkpoint_every)"
            )
    cfg = dataclasses.replace(cfg or RunConfig.defaults(), **options)
    cfg = dataclasses.replace(cfg, scales=tuple(cfg.scales))
    given = set(options) if given is None else set(given)
    device = ddp.setup_distributed(cfg.device)
    out = Path(cfg.out).expanduser()
    cfg, restart = _settings(out, cfg, given)
    cfg.validate()
    if cfg.batch_size % ddp.world_size():
        raise TrainOptionError(
            f"--batch-size {cfg.batch_size} is the global batch and must split evenly over "
            f"{ddp.world_size()} processes; use a multiple of {ddp.world_size()}"
        )
    check_out(out, overwrite=cfg.overwrite, own=cfg.resume or restart)
    if ddp.is_distributed():
        dist.barrier()  # every rank has looked at the folder before rank 0 writes to it
    with _LeaveAsFound(out) as found:
        data, sampler = _data(cfg, device)
        model, summary = _model(cfg, data, device, out, restart)
        if ddp.rank() == 0:
            found.forget(make_out(out, overwrite=cfg.overwrite))
            _write_settings(out, cfg, data, sampler)
            write_json(out / "summary.json", summary)
        if ddp.is_distributed():
            dist.barrier()  # the folder is ready
        history = _train(cfg, model, sampler, data, device, out, summary)
    if ddp.rank() == 0:
        _finish(out, history, summary)
    if ddp.is_distributed():
        dist.barrier()
        dist.destroy_process_group()
    return RunResult(model=model, history=history, summary=summary, out=out)


def _settings(out: Path, cfg: RunConfig, given: set[str]) -> tuple[RunConfig, bool]:
    """The run's settings, and whether it restarts from step 0 in its own folder.

    A new run: ``cfg`` (saying which quick-mode defaults it took). On resume: the stored
    settings with the options given (:func:`merge_resume`); a run that stopped before its
    first save (a folder with its config.json but no last.pt) starts again from step 0.
    """
    if not cfg.resume:
        _say_quick_defaults(cfg, given)
        return cfg, False
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--out {out} is a file; give a folder for the run's outputs")
    if (out / "last.pt").is_file():
        return merge_resume(cfg, given), False
    if (out / "config.json").is_file():
        _say(
            f"--resume: {out} holds no last.pt yet (the run stopped before its first save): "
            "starting it again from step 0, with its settings"
        )
        return dataclasses.replace(merge_resume(cfg, given), resume=False), True
    raise TrainOptionError(
        f"--resume: {out} holds no run to continue (no last.pt, no config.json); "
        "drop --resume to start one"
    )


def _say_quick_defaults(cfg: RunConfig, given: set[str]) -> None:
    """In quick mode, say which options took quick mode's defaults (not the paper's)."""
    quick, paper = RunConfig.quick(), RunConfig()
    short = [
        f"{option_name(f)} {getattr(cfg, f)}"
        for f in ("iters", "batch_size", "patch_size", "eval_every", "checkpoint_every")
        if f not in given and getattr(cfg, f) == getattr(quick, f) != getattr(paper, f)
    ]
    if short and config.is_quick():
        _say(
            f"quick mode (EDSR_LAB_QUICK=1): a short run by default ({' '.join(short)}); "
            "give an option to change it, or leave quick mode for the paper's recipe"
        )


def _data(cfg: RunConfig, device: torch.device) -> tuple[TrainData, StepSeededSampler]:
    """The run's data (printed) and its step-seeded sampler (this rank's share)."""
    choice = choose_training_data(cfg.data, scales=cfg.scales, fallback=False)
    _say(f"data: {_data_note(choice, named=cfg.data is not None)}")
    data = load_training_data(
        choice, cfg.scales, patch_size=cfg.patch_size, holdout=cfg.holdout,
        degradation=cfg.degradation, split_by=cfg.split_by, seed=cfg.seed,
    )  # fmt: skip
    _say(f"data: {data.description}")
    world = ddp.world_size()
    per_rank = cfg.batch_size // world
    sampler = StepSeededSampler.from_images(
        data.train,
        patch_size=cfg.patch_size,
        batch_size=per_rank,
        device=device,
        storage=cfg.storage,
        seed=cfg.seed,
        rank=ddp.rank(),
    )
    _say(f"patches: {sampler.storage_reason}")
    if world > 1:
        _say(f"distributed: {world} processes x {per_rank} patches = global batch {cfg.batch_size}")
    return data, sampler


def _data_note(choice: DataChoice, *, named: bool) -> str:
    """One line saying which data the run uses, and why."""
    if choice.kind == "mini":
        return (
            f"{choice.reason}: training on the mini-DIV2K made from the bundled sample "
            f"images ({choice.root})"
        )
    if choice.kind == "folder":
        return f"folder of HR images {choice.root}"
    if choice.kind == "medical":
        return f"folder of medical volumes {choice.root} (one intensity map per volume)"
    return f"DIV2K layout in {choice.root}" if named else f"DIV2K in {choice.root}"


def _model(
    cfg: RunConfig, data: TrainData, device: torch.device, out: Path, restart: bool
) -> tuple[nn.Module, dict[str, Any]]:
    """The model (started from ``--init``) and the summary so far (bicubic, the start).

    A restarted run keeps the best validation result of its first attempt (and best.pt).
    """
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
    model = models.build_model(
        cfg.model, cfg.scales, n_resblocks=cfg.n_resblocks, n_feats=cfg.n_feats
    )  # the registry (None keeps the preset's size)
    summary_path = out / "summary.json"
    found = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if cfg.resume:
        summary = found
    else:
        summary = {
            "scales": list(cfg.scales),
            "validation_images": data.valid_names,
            "protocol": PROTOCOL,
        }
        if restart and "best" in found and (out / "best.pt").is_file():
            summary["best"] = found["best"]
        if cfg.init:
            model, init_note = init_model(model, cfg.init)
            _say(f"model: {init_note}")
        if ddp.rank() == 0:
            summary["bicubic"] = bicubic_psnr(data)
            if cfg.init:
                summary["init"] = validate(model, data, device)
    resized = ""
    if cfg.n_resblocks is not None or cfg.n_feats is not None:
        mc = model.config
        resized = f" resized to {mc['n_resblocks']} blocks x {mc['n_feats']} features"
    _say(
        f"model: {cfg.model}{resized} x{'/'.join(map(str, cfg.scales))}, "
        f"{models.count_parameters(model):,} parameters, on {device}"
    )
    return model, summary


def _write_settings(out: Path, cfg: RunConfig, data: TrainData, sampler: StepSeededSampler):
    """config.json: the resolved settings, where the data and patches came from, versions."""
    world = ddp.world_size()
    resolved = {
        "run": cfg.to_dict(),
        "data": {"kind": data.kind, "root": str(data.root), "description": data.description},
        "patch_storage": sampler.storage_reason,
        "world_size": world,
        "per_rank_batch": cfg.batch_size // world,
        "torch": torch.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(out / "config.json", resolved)


def _train(
    cfg: RunConfig,
    model: nn.Module,
    sampler: StepSeededSampler,
    data: TrainData,
    device: torch.device,
    out: Path,
    summary: dict[str, Any],
) -> History:
    """The loop, with validation (best.pt), DDP loss averaging and last.pt on rank 0."""
    main = ddp.rank() == 0
    tc = cfg.train_config(
        log_every=math.gcd(cfg.log_every, cfg.checkpoint_every, cfg.eval_every),
        checkpoint_every=cfg.checkpoint_every if main else 0,
        checkpoint_path=str(out / "last.pt") if main else None,
        overwrite=False,
    )
    train_model: nn.Module = model
    if ddp.is_distributed():
        model.to(device)
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        train_model = ddp.DDP(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=len(cfg.scales) > 1,  # MDSR: other scales' heads idle
        )
    best = {"psnr": summary.get("best", {}).get("psnr", -math.inf)}

    def eval_fn(m: nn.Module) -> dict[str, float]:
        metrics = validate(m, data, device)
        if metrics["psnr"] > best["psnr"]:
            best.update(metrics)
            best["step"] = sampler.count
            models.save_checkpoint(
                m, out / "best.pt", extra={"step": sampler.count, **metrics}, overwrite=True
            )
            summary["best"] = dict(best)
            write_json(out / "summary.json", summary)
        return metrics

    resume_from = out / "last.pt" if cfg.resume else None
    synced = [len(load_training_checkpoint(resume_from)["history"]["loss"]) if cfg.resume else 0]

    def callback(step: int, history: History) -> None:
        if ddp.is_distributed():
            ddp.average_losses_across_ranks(history, synced[0])
            synced[0] = len(history.loss)

    return train(
        train_model,
        sampler,
        tc,
        device=device,
        eval_fn=eval_fn if main else None,
        callback=callback,
        resume_from=resume_from,
        progress=main,
        is_main=main,
    )


def _finish(out: Path, history: History, summary: dict[str, Any]) -> None:
    """summary.json, history.csv, curves.png, and the closing report."""
    if history.evals:
        summary["final"] = {k: v for k, v in history.evals[-1].items()}
    summary["steps"] = history.last_step
    summary["diverged"] = bool(history.diverged)
    add_gains(summary)
    write_json(out / "summary.json", summary)
    write_history_csv(history, out / "history.csv")
    write_curves(history, out / "curves.png", summary.get("bicubic"))
    for line in report_lines(summary):
        print(line)
    print(f"outputs in {out}: {', '.join(f for f in RUN_FILES if (out / f).exists())}")


# ------------------------------------------------------------------------------- model


def _read_init(spec: str) -> nn.Module:
    """The model behind ``--init``: a checkpoint file (ours, official or BasicSR), or a
    registry name (course weights, official models: :mod:`edsr_lab.weights`)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return load_model(path)
    looks_like_name = os.sep not in spec and "/" not in spec and not path.suffix
    if not looks_like_name:
        raise TrainOptionError(f"--init {spec}: no such file")
    return load_pretrained(spec)


def init_model(target: nn.Module, spec: str) -> tuple[nn.Module, str]:
    """``target`` started from the weights ``spec`` (see ``--init``); returns (model, note).

    Same architecture and scale: the weights are loaded as they are. Another scale (EDSR
    and SRResNet): :func:`edsr_lab.models.init_from` copies everything but the upsampler's
    new parts, as the paper starts x3/x4 from x2. Any other difference is refused.
    """
    source = _read_init(spec)
    tcfg, scfg = dict(target.config), dict(getattr(source, "config", {}))
    if type(source) is not type(target):
        raise TrainOptionError(
            f"--init {spec} holds a {type(source).__name__}, but --model asks for a "
            f"{type(target).__name__}; pick the matching --model"
        )
    scale_key = "scales" if "scales" in tcfg else "scale"
    differ = sorted(
        k for k in set(tcfg) | set(scfg) if k != scale_key and tcfg.get(k) != scfg.get(k)
    )
    if differ:
        shown = ", ".join(f"{k} {scfg.get(k)!r} vs {tcfg.get(k)!r}" for k in differ)
        raise TrainOptionError(
            f"--init {spec} does not match --model ({shown}); pick the preset it was "
            "trained as (or --n-resblocks/--n-feats)"
        )
    if scale_key == "scales":
        if tuple(scfg["scales"]) != tuple(tcfg["scales"]):
            raise TrainOptionError(
                f"--init {spec} is an MDSR for scales {tuple(scfg['scales'])}; "
                f"use --scale {' '.join(map(str, scfg['scales']))}"
            )
        target.load_state_dict(source.state_dict())
        return target, f"started from {spec}"
    if scfg["scale"] == tcfg["scale"]:
        target.load_state_dict(source.state_dict())
        return target, f"started from {spec}"
    new = models.init_from(source, tcfg["scale"])
    report = new.transfer_report
    return new, (
        f"started from {spec} (x{scfg['scale']} -> x{tcfg['scale']}: {len(report.copied)} tensors "
        f"copied, {len(report.skipped)} new: {', '.join(sorted(report.skipped))})"
    )


# --------------------------------------------------------------------------- out folder


def check_out(out: Path, *, overwrite: bool, own: bool) -> None:
    """Refuse a folder that holds another run (unless ``overwrite``; ``own``: it holds this
    run) or that cannot be written. Changes nothing: :func:`make_out` does, later."""
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--out {out} is a file; give a folder for the run's outputs")
    ours = [f for f in RUN_FILES if (out / f).exists()]
    if ours and not (overwrite or own):
        raise RunExistsError(
            f"--out {out} already holds a run ({', '.join(ours)}); pass --resume to continue "
            "it, --overwrite to start over, or choose another --out"
        )
    reason = unwritable_reason(out) if ddp.rank() == 0 else None
    if reason is not None:
        raise OutputPathError(f"--out {out}: {reason}")


def make_out(out: Path, *, overwrite: bool) -> set[str]:
    """Create the run's folder; with ``overwrite``, remove the files an earlier run wrote
    there (only those). Returns the names removed."""
    removed = {f for f in RUN_FILES if overwrite and (out / f).exists()}
    for f in removed:
        (out / f).unlink()
    out.mkdir(parents=True, exist_ok=True)
    return removed


class _LeaveAsFound:
    """A failed start leaves ``--out`` as it found it.

    If the run fails (or is interrupted) before it has saved a checkpoint (``last.pt`` or
    ``best.pt``), the files it wrote there and the folders it created are removed again;
    files that were there before stay. Once a checkpoint is written, everything is kept
    (``--resume`` continues from it).
    """

    def __init__(self, out: Path):
        self.out = out
        self.found = {f for f in RUN_FILES if (out / f).exists()}
        self.new_folders = []  # innermost first
        folder = out
        while not folder.exists() and folder != folder.parent:
            self.new_folders.append(folder)
            folder = folder.parent

    def forget(self, removed: set[str]) -> None:
        """Files the run removed on purpose (``overwrite``) were not there to keep."""
        self.found -= removed

    def __enter__(self) -> _LeaveAsFound:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None or ddp.rank() != 0:
            return
        written = [f for f in RUN_FILES if f not in self.found and (self.out / f).exists()]
        if "last.pt" in written or "best.pt" in written:
            return
        for f in written:
            (self.out / f).unlink()
        for folder in self.new_folders:
            try:
                folder.rmdir()
            except OSError:  # not empty: someone else's files are in it
                break


def merge_resume(cfg: RunConfig, given: set[str]) -> RunConfig:
    """On resume: options not given take the stored run's values; given ones must match."""
    stored_path = Path(cfg.out).expanduser() / "config.json"
    try:
        stored = json.loads(stored_path.read_text())["run"]
    except (OSError, ValueError, KeyError) as e:
        raise TrainOptionError(
            f"--resume: cannot read the run's settings from {stored_path} ({e})"
        ) from None
    stored = {_RENAMED.get(k, k): v for k, v in stored.items()}
    merged = cfg.to_dict()
    for f in dataclasses.fields(RunConfig):
        key = f.name
        if key in ("resume", "overwrite", "out", "checkpoint_path"):
            continue
        if key not in given and key in stored:
            merged[key] = stored[key]
        elif key in _FIXED_ON_RESUME and key in given and merged[key] != stored.get(key):
            raise TrainOptionError(
                f"--resume: {option_name(key)} {merged[key]} differs from the run's "
                f"{stored.get(key)}; a resumed run keeps its settings (only --iters, "
                "--eval-every, --save-every, --device, --amp and --compile may change): drop the "
                "option or start a new run in another --out"
            )
    merged["scales"] = tuple(merged["scales"])
    merged["betas"] = tuple(merged["betas"])
    return RunConfig(**merged)
