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
from edsr_lab.errors import (
    CheckpointError,
    DeviceError,
    FileWriteError,
    RunExistsError,
    TrainOptionError,
    did_you_mean,
)
from edsr_lab.train import budget, ddp
from edsr_lab.train.config import RunConfig, option_name
from edsr_lab.train.log import History
from edsr_lab.train.loop import train
from edsr_lab.train.outdir import RUN_FILES, RunFolder, check_out
from edsr_lab.train.report import (
    add_gains,
    bicubic_psnr,
    protocol_of,
    report_lines,
    validate,
    write_curves,
    write_history_csv,
    write_json,
)
from edsr_lab.train.state import load_training_checkpoint, no_space_error
from edsr_lab.train.step import resolve_amp
from edsr_lab.weights import load_model, load_pretrained

__all__ = ["RUN_FILES", "RunResult", "check_out", "init_model", "run"]

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
    config: RunConfig | None = None  # the settings the run used (a resumed run's stored ones)


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
    main = ddp.rank() == 0
    out = Path(cfg.out).expanduser()
    # Every check first (settings, device, amp, memory, the folder), so that a refused run
    # changes nothing; the folder then is locked and owned by RunFolder (train.outdir).
    cfg, restart = _settings(out, cfg, given)
    cfg.validate()
    _check_start(cfg, given, device)
    _check_init(cfg)  # read and matched to the model before any data is loaded
    own = cfg.resume or restart
    check_out(out, overwrite=cfg.overwrite, own=own, check_writable=main)
    if ddp.is_distributed():
        dist.barrier()  # every rank has looked at the folder before rank 0 writes to it
    with RunFolder(out, main=main, say=_say) as folder:
        check_out(out, overwrite=cfg.overwrite, own=own, check_writable=False)  # locked now
        data, sampler = _data(cfg, device)
        model, summary = _model(cfg, data, device, out, restart)
        if main:
            folder.replace(cfg.overwrite)  # the old run's files go aside only now
            _write_settings(out, cfg, data, sampler)
            write_json(out / "summary.json", summary)
        if ddp.is_distributed():
            dist.barrier()  # the folder is ready
        history = _train(cfg, model, sampler, data, device, out, summary, folder)
        if main:
            _finish(out, history, summary)
    if ddp.is_distributed():
        dist.barrier()
        dist.destroy_process_group()
    return RunResult(model=model, history=history, summary=summary, out=out, config=cfg)


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
    last = out / "last.pt"
    if last.is_dir():
        raise RunExistsError(
            f"--resume: {last} is a folder, not the run's training checkpoint; move it away "
            "(then --resume starts the run again from step 0), or start over with --overwrite"
        )
    summary = read_summary(out)  # damaged: refused here, before anything is loaded
    if last.is_file():
        _check_last(out)
        if summary.get("diverged"):
            _say(
                f"note: the run in {out} diverged at step {summary.get('steps')}; continuing "
                "from last.pt, its last good state (the same settings may diverge again)"
            )
        return merge_resume(cfg, given), False
    if (out / "config.json").is_file():
        if summary.get("diverged"):
            raise TrainOptionError(
                f"--resume: the run in {out} diverged at step {summary.get('steps')} before "
                "its first save, so resuming would repeat it; start it again with --overwrite "
                "and a lower --lr"
            )
        _say(
            f"--resume: {out} holds no last.pt yet (the run stopped before its first save): "
            "starting it again from step 0, with its settings"
        )
        return dataclasses.replace(merge_resume(cfg, given), resume=False), True
    raise TrainOptionError(
        f"--resume: {out} holds no run to continue (no last.pt, no config.json); "
        "drop --resume to start one"
    )


def read_summary(out: Path) -> dict[str, Any]:
    """The run's summary.json ({} when there is none); RunExistsError when it is damaged."""
    path = out / "summary.json"
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunExistsError(
            f"{path} is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}); "
            "move it away (--resume then rebuilds it from the run's data and best.pt) or "
            "start over with --overwrite"
        ) from None
    if not isinstance(summary, dict):
        raise RunExistsError(
            f"{path} is damaged (it holds a JSON {type(summary).__name__}, not the run's "
            "summary); move it away (--resume then rebuilds it) or start over with --overwrite"
        )
    return summary


def _check_last(out: Path) -> None:
    """Read last.pt now (checksum, structure): a damaged one is refused before any data is
    loaded, with what to do."""
    try:
        load_training_checkpoint(out / "last.pt")
    except CheckpointError as e:
        best = out / "best.pt"
        init = (
            f", or start a new run from its best weights with --init {best} and another --out"
            if best.is_file()
            else ""
        )
        raise CheckpointError(
            f"--resume: {e}; the run cannot continue from it: start it again with the same "
            f"options and --overwrite{init}"
        ) from None


def _check_start(cfg: RunConfig, given: set[str], device: torch.device) -> None:
    """What the settings, the device and the machine's memory allow, checked before any
    data is loaded or file written: the batch splits over the processes, --amp works on
    the device (config.resolve_device checked the device itself), and one training step
    fits in memory."""
    if cfg.batch_size % ddp.world_size():
        raise TrainOptionError(
            f"--batch-size {cfg.batch_size} is the global batch and must split evenly over "
            f"{ddp.world_size()} processes; use a multiple of {ddp.world_size()}"
        )
    try:
        resolve_amp(cfg.amp, device)
    except DeviceError:
        raise DeviceError(
            f"--amp {cfg.amp} needs a CUDA GPU but the run is on {device}; leave --amp out "
            "(auto: bf16 where it helps) or use --amp off"
        ) from None
    _check_memory(cfg, given, device)


def _check_memory(cfg: RunConfig, given: set[str], device: torch.device) -> None:
    """Refuse, in one line, a model or batch that cannot fit (estimated without building
    it: :mod:`edsr_lab.train.budget`)."""
    with torch.device("meta"):  # the preset's class and sizes, no memory
        preset = models.build_model(cfg.model, cfg.scales)
    kind, base = type(preset), dict(getattr(preset, "config", None) or {})
    if not {"n_resblocks", "n_feats"} <= set(base):
        return  # a registered model not sized by blocks and features: no estimate

    def build(n_resblocks: int, n_feats: int) -> nn.Module:
        return kind(**{**base, "n_resblocks": n_resblocks, "n_feats": n_feats})

    estimate = budget.estimate_training_memory(
        build,
        n_resblocks=base["n_resblocks"] if cfg.n_resblocks is None else cfg.n_resblocks,
        n_feats=base["n_feats"] if cfg.n_feats is None else cfg.n_feats,
        scales=cfg.scales,
        batch_size=cfg.batch_size // ddp.world_size(),
        patch_size=cfg.patch_size,
    )
    available = budget.available_bytes(device)
    if available is None or estimate.total <= available[0]:
        return
    # Blame the options given that grow the run beyond the preset / the paper's recipe.
    usual = {**base, "batch_size": RunConfig.batch_size, "patch_size": RunConfig.patch_size}
    size, batch = (
        [f for f in names if f in given and getattr(cfg, f) > usual[f]]
        or [f for f in names if f in given]
        for names in (("n_feats", "n_resblocks"), ("batch_size", "patch_size"))
    )
    if estimate.weights_bytes * 2 >= estimate.total:
        blamed = size or ["model"]
        fix = "use a smaller --n-feats/--n-resblocks (or a smaller --model)"
    elif batch or not size:
        blamed = batch or ["batch_size"]
        fix = "use a smaller --batch-size/--patch-size"
    else:  # activations grow with the model's size too: name what was given
        blamed = size
        fix = "use a smaller --n-feats/--n-resblocks (or --batch-size/--patch-size)"
    raise TrainOptionError(
        f"{' '.join(cfg.describe(f) for f in blamed)}: "
        f"{budget.describe_shortfall(estimate, available)}; {fix}"
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
    found = read_summary(out) if (cfg.resume or restart) else {}
    if cfg.resume and {"scales", "bicubic"} <= set(found):
        summary = found
    else:
        summary = {
            "scales": list(cfg.scales),
            "validation_images": data.valid_names,
            "protocol": protocol_of(data),
        }
        if cfg.resume:  # summary.json was moved away: rebuilt (best.pt keeps the best result)
            _say(f"--resume: {out / 'summary.json'} is missing: rebuilding it")
            summary.update(_best_from(out / "best.pt"))
        if restart and "best" in found and (out / "best.pt").is_file():
            summary["best"] = found["best"]
        if cfg.init and not cfg.resume:
            # Read again (checked by _check_init before the data): reading builds a model,
            # which draws from the seeded generator, and the weights init_from adds at a
            # new scale come after it: the same draws as ever, so the same start.
            model, init_note = init_model(model, cfg.init)
            _say(f"model: {init_note}")
        if ddp.rank() == 0:
            summary["bicubic"] = bicubic_psnr(data)
            if cfg.init and not cfg.resume:
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


def _best_from(path: Path) -> dict[str, Any]:
    """``{"best": {...}}`` from the result best.pt stores with its weights, or {}."""
    if not path.is_file():
        return {}
    try:
        extra = models.read_checkpoint(path).get("extra")
    except CheckpointError:
        return {}
    ok = isinstance(extra, dict) and isinstance(extra.get("psnr"), (int, float))
    return {"best": dict(extra)} if ok else {}


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
    folder: RunFolder,
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
            try:
                models.save_checkpoint(
                    m, out / "best.pt", extra={"step": sampler.count, **metrics}, overwrite=True
                )
            except FileWriteError as e:
                raise no_space_error(e, out / "best.pt", m.state_dict()) from e
            folder.commit_if_saved()
            summary["best"] = dict(best)
            write_json(out / "summary.json", summary)
        return metrics

    resume_from = out / "last.pt" if cfg.resume else None
    synced = [len(load_training_checkpoint(resume_from)["history"]["loss"]) if cfg.resume else 0]

    def callback(step: int, history: History) -> None:
        folder.commit_if_saved()  # the first last.pt: a failed run is no failed start now
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


def _check_init(cfg: RunConfig) -> None:
    """Read ``--init`` and check it against ``--model`` (built on the meta device: no
    memory) before the training data is loaded or the folder touched, so a wrong
    ``--init`` costs no time and replaces nothing. Nothing to do without ``--init`` or on
    ``--resume`` (which continues from last.pt)."""
    if not cfg.init or cfg.resume:
        return
    with torch.device("meta"):
        target = models.build_model(
            cfg.model, cfg.scales, n_resblocks=cfg.n_resblocks, n_feats=cfg.n_feats
        )
    _check_init_fits(_read_init(cfg.init), target, cfg.init)


def _read_init(spec: str) -> nn.Module:
    """The model behind ``--init``: a checkpoint file (ours, official or BasicSR), or a
    registry name (course weights, official models: :mod:`edsr_lab.weights`)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return load_model(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".safetensors"))
        hint = f" (it holds {', '.join(inside[:4])})" if inside else ""
        raise TrainOptionError(
            f"--init {spec} is a folder, not a weights file{hint}; give the file, e.g. "
            f"--init {path / (inside[0] if inside else 'best.pt')}"
        )
    looks_like_name = os.sep not in spec and "/" not in spec and not path.suffix
    if not looks_like_name:
        raise TrainOptionError(f"--init {spec}: no such file")
    return load_pretrained(spec)


def init_model(
    target: nn.Module, spec: str, source: nn.Module | None = None
) -> tuple[nn.Module, str]:
    """``target`` started from the weights ``spec`` (see ``--init``); returns (model, note).

    Same architecture and scale: the weights are loaded as they are. Another scale (EDSR
    and SRResNet): :func:`edsr_lab.models.init_from` copies everything but the upsampler's
    new parts, as the paper starts x3/x4 from x2. Any other difference is refused.
    ``source``: the model ``spec`` names, when already read (else it is read here).
    """
    source = _read_init(spec) if source is None else source
    _check_init_fits(source, target, spec)
    tcfg, scfg = dict(target.config), dict(getattr(source, "config", {}))
    if "scales" in tcfg:
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


def _check_init_fits(source: nn.Module, target: nn.Module, spec: str) -> None:
    """TrainOptionError unless ``source``'s weights can start ``target`` (see init_model)."""
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
    if scale_key == "scales" and tuple(scfg["scales"]) != tuple(tcfg["scales"]):
        raise TrainOptionError(
            f"--init {spec} is an MDSR for scales {tuple(scfg['scales'])}; "
            f"use --scale {' '.join(map(str, scfg['scales']))}"
        )


# ------------------------------------------------------------------------------- resume


def merge_resume(cfg: RunConfig, given: set[str]) -> RunConfig:
    """On resume: options not given take the stored run's values; given ones must match."""
    stored_path = Path(cfg.out).expanduser() / "config.json"
    damaged = (
        f"--resume: cannot read the run's settings from {stored_path} ({{}}); restore that "
        "file, or start over with --overwrite"
    )
    try:
        stored = json.loads(stored_path.read_text(encoding="utf-8"))["run"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise TrainOptionError(damaged.format(f"{type(e).__name__}: {e}")) from None
    if not isinstance(stored, dict):
        raise TrainOptionError(damaged.format("its 'run' entry is not a table of settings"))
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
    try:
        merged["scales"] = tuple(merged["scales"])
        merged["betas"] = tuple(merged["betas"])
    except TypeError:
        raise TrainOptionError(damaged.format("scales or betas is not a list")) from None
    return RunConfig(**merged)
