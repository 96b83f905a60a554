"""A complete training run: ``python -m edsr_lab train`` and its Python twin :func:`run`.

:func:`edsr_lab.train.train` is the loop; this module is everything around it that a real
run needs, with the paper's recipe (Lim et al. 2017, Section 4.2) as the defaults:

* **data**: a DIV2K-layout root (train on ``DIV2K_train_*``, validate on 0801-0810 as the
  official code does during training), the mini-DIV2K in quick mode when DIV2K is absent,
  or any folder of HR images (LR made with the MATLAB bicubic, a fixed held-out split, see
  :mod:`edsr_lab.data.folder`);
* **the model**: one of the paper's presets, optionally started from ``--init`` weights
  (official or ours; another scale goes through :func:`edsr_lab.models.init_from`, as the
  paper starts x3/x4 from x2);
* **the output folder**: ``last.pt`` (training checkpoint, atomic, every ``save_every``
  steps), ``best.pt`` (model checkpoint with the best validation PSNR), ``history.csv``,
  ``config.json`` (the resolved settings), ``curves.png`` and ``summary.json`` (validation
  PSNR next to bicubic and, with ``--init``, next to the starting weights). A folder that
  holds another run is never overwritten without ``resume=True`` or ``overwrite=True``;
* **several GPUs** with ``torchrun`` (PyTorch DDP): the global batch stays the recipe's
  16 (each of N ranks draws 16/N patches from its own random stream), only rank 0 writes.

Random patches are drawn from a generator re-seeded at every step from (seed, rank, step),
so a resumed run -- on any number of ranks -- sees exactly the batches an uninterrupted
run would have seen, and a killed run resumed from ``last.pt`` ends with the same weights.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.errors import EdsrLabError, RunExistsError, TrainOptionError

__all__ = ["MODELS", "RunConfig", "RunResult", "run"]

#: ``--model`` choices: the paper's presets (Table 1) and SRResNet (Ledig et al.).
MODELS = ("srresnet", "edsr_baseline", "edsr", "mdsr_baseline", "mdsr")
MULTI_SCALE = ("mdsr_baseline", "mdsr")

#: The files a run writes into its output folder (``--overwrite`` removes only these).
RUN_FILES = (
    "last.pt",
    "best.pt",
    "history.csv",
    "config.json",
    "curves.png",
    "summary.json",
)

# Options that define a run: on --resume they must be left out or equal the stored ones.
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
    "n_resblocks",
    "n_feats",
    "init",
)


@dataclass
class RunConfig:
    """Settings of one run (the ``train`` command's options). Defaults: the paper's recipe.

    ``None`` means "the default" (or, on resume, "what the run used"); see :func:`run`.
    """

    model: str = "edsr_baseline"  # one of MODELS
    scales: tuple[int, ...] = (2,)  # one scale; several (2, 3, 4) only for MDSR
    data: str | None = None  # DIV2K root or folder of HR images; None: data/DIV2K (or mini)
    iters: int = 300_000  # paper: 3e5 updates for the ablations, 1e6 for the final models
    batch_size: int = 16  # paper: 16 LR patches per update (the global batch with DDP)
    patch_size: int = 48  # paper: 48x48 LR patches
    loss: str = "l1"  # paper: L1
    lr: float = 1e-4  # paper: 1e-4, halved every 2e5 updates
    init: str | None = None  # start from these weights (file, or a registry name)
    out: str = "runs/train"
    resume: bool = False  # continue the run in `out` from last.pt
    overwrite: bool = False  # replace the run in `out` (only its own files are removed)
    eval_every: int = 1000  # validation PSNR every this many updates (official: 1000)
    save_every: int = 1000  # last.pt every this many updates
    device: str | None = None  # default: CUDA if available, else CPU
    amp: str = "auto"  # bf16 autocast on CUDA ("auto"/"bf16") or fp32 ("off")
    compile: bool = False  # torch.compile (faster on a GPU after minutes of compiling)
    seed: int = 0
    holdout: float = 0.1  # share of a plain image folder held out for validation
    storage: str = "auto"  # where training images live: auto, device, pinned, cpu
    n_resblocks: int | None = None  # shrink/grow the preset (quick experiments)
    n_feats: int | None = None
    log_every: int = 100  # progress line / loss read-back interval

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scales"] = list(self.scales)
        return d


@dataclass
class RunResult:
    """What :func:`run` returns: the trained model, its history and the validation report."""

    model: nn.Module
    history: Any
    summary: dict[str, Any]
    out: Path


# ----------------------------------------------------------------------------- helpers


def _say(msg: str) -> None:
    if _rank() == 0:
        print(msg, flush=True)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def check_config(cfg: RunConfig) -> RunConfig:
    """Check every option; raise :class:`TrainOptionError` naming the option and the fix."""
    if cfg.model not in MODELS:
        raise TrainOptionError(f"--model {cfg.model}: choose one of {', '.join(MODELS)}")
    scales = tuple(cfg.scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in scales):
        raise TrainOptionError(
            f"--scale {' '.join(map(str, scales))}: scales are whole numbers >= 2"
        )
    if len(set(scales)) != len(scales):
        raise TrainOptionError(f"--scale {' '.join(map(str, scales))}: a scale is repeated")
    if len(scales) > 1 and cfg.model not in MULTI_SCALE:
        raise TrainOptionError(
            f"--model {cfg.model} has one upsampler; several scales ({' '.join(map(str, scales))}) "
            "need --model mdsr_baseline or mdsr, or train one scale per run"
        )
    if cfg.model == "srresnet" and scales[0] not in (2, 3, 4, 8):
        raise TrainOptionError(f"--model srresnet supports --scale 2, 3, 4 or 8, not {scales[0]}")
    for name in ("iters", "batch_size", "patch_size", "eval_every", "save_every", "log_every"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TrainOptionError(f"--{name.replace('_', '-')} {v}: must be a whole number >= 1")
    for name in ("n_resblocks", "n_feats"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < (0 if name == "n_resblocks" else 1)):
            raise TrainOptionError(f"--{name.replace('_', '-')} {v}: must be a whole number >= 1")
    if cfg.loss not in ("l1", "l2"):
        raise TrainOptionError(f"--loss {cfg.loss}: use l1 (the paper) or l2")
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise TrainOptionError(f"--lr {cfg.lr}: must be a number > 0 (the paper: 1e-4)")
    if cfg.amp not in ("auto", "bf16", "off"):
        raise TrainOptionError(f"--amp {cfg.amp}: use auto, bf16 or off")
    if cfg.storage not in ("auto", "device", "pinned", "cpu"):
        raise TrainOptionError(f"--storage {cfg.storage}: use auto, device, pinned or cpu")
    if not 0.0 < cfg.holdout < 1.0:
        raise TrainOptionError(f"--holdout {cfg.holdout}: a fraction between 0 and 1, e.g. 0.1")
    if cfg.resume and cfg.overwrite:
        raise TrainOptionError("--resume and --overwrite contradict each other; pick one")
    if cfg.batch_size % _world():
        raise TrainOptionError(
            f"--batch-size {cfg.batch_size} is the global batch and must split evenly over "
            f"{_world()} processes; use a multiple of {_world()}"
        )
    return dataclasses.replace(cfg, scales=scales)


# ------------------------------------------------------------------------------- model


def build_model(name: str, scales: tuple[int, ...], n_resblocks=None, n_feats=None) -> nn.Module:
    """The preset ``name`` at ``scales`` (several only for MDSR), optionally resized."""
    from edsr_lab import models

    factory = getattr(models, name)
    model = factory(scales) if name in MULTI_SCALE else factory(scales[0])
    if n_resblocks is not None or n_feats is not None:
        cfg = dict(model.config)
        if n_resblocks is not None:
            cfg["n_resblocks"] = n_resblocks
        if n_feats is not None:
            cfg["n_feats"] = n_feats
        model = type(model)(**cfg)
    return model


def _read_init(spec: str) -> nn.Module:
    """The model behind ``--init``: a checkpoint file (ours, official or BasicSR), or a
    registry name (course weights, official models: :mod:`edsr_lab.weights`)."""
    from edsr_lab.weights import load_model, load_pretrained

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
    from edsr_lab.models import init_from

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
    new = init_from(source, tcfg["scale"])
    report = new.transfer_report
    return new, (
        f"started from {spec} (x{scfg['scale']} -> x{tcfg['scale']}: {len(report.copied)} tensors "
        f"copied, {len(report.skipped)} new: {', '.join(sorted(report.skipped))})"
    )


# -------------------------------------------------------------------------- validation


def validate(model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
    """Validation PSNR (benchmark protocol: Y channel, ``scale`` border) per scale and mean.

    Returns ``{"psnr_x2": ..., "psnr_x3": ..., "psnr": mean over scales}``.
    """
    from edsr_lab.evaluate import evaluate
    from edsr_lab.models.checkpoints import _unwrap_model

    model = _unwrap_model(model)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    try:
        for s, pairs in data.valid.items():
            res = evaluate(
                model,
                [(h, x) for _, h, x in pairs],
                s,
                names=[n for n, _, _ in pairs],
                compute_ssim=False,
                device=device,
            )
            out[f"psnr_x{s}"] = res.mean_psnr
    finally:
        model.train(was_training)
    out["psnr"] = sum(out.values()) / len(out)
    return out


def bicubic_psnr(data: Any) -> dict[str, float]:
    """The same validation with MATLAB-bicubic upscaling instead of a model."""
    from edsr_lab.evaluate import bicubic_upscale, evaluate

    out = {}
    for s, pairs in data.valid.items():
        res = evaluate(
            lambda lr, s=s: bicubic_upscale(lr, s),
            [(h, x) for _, h, x in pairs],
            s,
            compute_ssim=False,
        )
        out[f"psnr_x{s}"] = res.mean_psnr
    out["psnr"] = sum(out.values()) / len(out)
    return out


# --------------------------------------------------------------------------- out folder


def prepare_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to touch another run's folder unless asked; with overwrite, remove our files."""
    ours = [out / f for f in RUN_FILES if (out / f).exists()]
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--out {out} is a file; give a folder for the run's outputs")
    if resume:
        if not (out / "last.pt").is_file():
            raise TrainOptionError(
                f"--resume: {out / 'last.pt'} does not exist, so there is no run to continue; "
                "drop --resume to start one"
            )
        return
    if ours and not overwrite:
        raise RunExistsError(
            f"--out {out} already holds a run ({', '.join(p.name for p in ours)}); pass "
            "--resume to continue it, --overwrite to start over, or choose another --out"
        )
    if _rank() == 0:
        for p in ours:
            p.unlink()
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RunExistsError(f"--out {out} cannot be written ({e.strerror})") from None


def merge_resume(cfg: RunConfig, given: set[str]) -> RunConfig:
    """On --resume: options not given take the stored run's values; given ones must match."""
    stored_path = Path(cfg.out).expanduser() / "config.json"
    try:
        stored = json.loads(stored_path.read_text())["run"]
    except (OSError, ValueError, KeyError) as e:
        raise TrainOptionError(
            f"--resume: cannot read the run's settings from {stored_path} ({e})"
        ) from None
    merged = cfg.to_dict()
    for key in RunConfig.__dataclass_fields__:
        if key in ("resume", "overwrite", "out"):
            continue
        if key not in given and key in stored:
            merged[key] = stored[key]
        elif key in _FIXED_ON_RESUME and key in given and merged[key] != stored.get(key):
            raise TrainOptionError(
                f"--resume: --{key.replace('_', '-')} {merged[key]} differs from the run's "
                f"{stored.get(key)}; a resumed run keeps its settings (only --iters, "
                "--eval-every, --save-every, --device, --amp and --compile may change): drop the "
                "option or start a new run in another --out"
            )
    merged["scales"] = tuple(merged["scales"])
    return RunConfig(**merged)


def write_history_csv(history: Any, path: Path) -> None:
    """One row per step: step, loss, lr, time, grad_norm, then each validation metric."""
    from edsr_lab.files import atomic_write

    keys = sorted({k for e in history.evals for k in e if k != "step"})
    evals = {int(e["step"]): e for e in history.evals}

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "loss", "lr", "time", "grad_norm", *keys])
            for i, step in enumerate(history.step):
                e = evals.get(int(step), {})
                w.writerow(
                    [
                        step,
                        f"{history.loss[i]:.6g}",
                        f"{history.lr[i]:.6g}",
                        f"{history.time[i]:.3f}",
                        f"{history.grad_norm[i]:.6g}",
                    ]
                    + [f"{e[k]:.4f}" if k in e else "" for k in keys]
                )

    atomic_write(path, write)


def write_curves(history: Any, path: Path, bicubic: dict[str, float] | None) -> None:
    """curves.png: training loss and validation PSNR (with the bicubic line)."""
    from matplotlib.figure import Figure

    from edsr_lab.files import atomic_write
    from edsr_lab.viz import plot_history

    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    plot_history(history, "loss", ax=ax1, title="training loss")
    keys = sorted({k for e in history.evals for k in e if k.startswith("psnr_x")}) or ["psnr"]
    for k in keys:
        steps, values = history.eval_series(k)
        (line,) = ax2.plot(steps, values, "o-", label=k.replace("psnr_", ""))
        if bicubic and k in bicubic:
            ax2.axhline(bicubic[k], ls=":", color=line.get_color(), label=f"bicubic {k[5:]}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation PSNR (dB)")
    ax2.set_title("validation PSNR")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def _write_json(path: Path, obj: Any) -> None:
    from edsr_lab.files import atomic_write

    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")

    atomic_write(path, write)


# ---------------------------------------------------------------------------------- DDP


def setup_distributed(device: str | None) -> torch.device:
    """Join the torchrun process group when launched by torchrun; return this rank's device.

    torchrun sets WORLD_SIZE, RANK and LOCAL_RANK. CUDA ranks use NCCL and GPU LOCAL_RANK;
    CPU ranks use gloo (how the tests run it).
    """
    import torch.distributed as dist

    from edsr_lab.cli import _check_device  # one line naming --device if it is not here

    dev = _check_device(device or None)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise TrainOptionError(
                f"torchrun started rank {local} but only {torch.cuda.device_count()} GPU(s) are "
                "visible; use --nproc_per_node <= the number of GPUs"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    return dev


class _DDP(nn.parallel.DistributedDataParallel):
    """DDP whose state_dict is the wrapped model's (no ``module.`` prefix), so checkpoints
    from 1 and from N processes are the same files and resume on any number of ranks."""

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def _average_losses_across_ranks(history: Any, start: int) -> None:
    """Replace this rank's losses from index ``start`` by the mean over ranks (in place).

    Each rank's loss is the mean over its 16/N patches; the mean over ranks is the loss of
    the global batch of 16, the number a single-process run would log.
    """
    import torch.distributed as dist

    n = len(history.loss) - start
    if n <= 0:
        return
    t = torch.tensor(history.loss[start:], dtype=torch.float64)
    dist.all_reduce(t)
    history.loss[start:] = (t / _world()).tolist()


# ---------------------------------------------------------------------------------- run


def run(
    cfg: RunConfig | None = None, *, given: set[str] | None = None, **options: Any
) -> RunResult:
    """Train a model as ``python -m edsr_lab train`` does; returns a :class:`RunResult`.

    ``run(model="edsr_baseline", scales=(2,), iters=300_000, out="runs/x2")`` or
    ``run(RunConfig(...))``. With ``resume=True``, options not given are read from the run
    in ``out`` (``given`` names the options set explicitly; by default those in
    ``options``). Under ``torchrun`` each process runs this and rank 0 writes the files.
    """
    from edsr_lab.train import TrainConfig, train

    cfg = dataclasses.replace(cfg or RunConfig(), **options)
    given = set(options) if given is None else set(given)
    device = setup_distributed(cfg.device)
    rank, world = _rank(), _world()
    out = Path(cfg.out).expanduser()
    if cfg.resume:
        prepare_out(out, resume=True, overwrite=False)
        cfg = merge_resume(cfg, given)
    cfg = check_config(cfg)
    if not cfg.resume:
        prepare_out(out, resume=False, overwrite=cfg.overwrite)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 has cleaned/created the folder

    from edsr_lab.data.samplers import StepSeededSampler
    from edsr_lab.data.sources import choose_training_data, load_training_data

    choice = choose_training_data(cfg.data, scales=cfg.scales, fallback=False)
    _say(f"data: {_data_note(choice, named=cfg.data is not None)}")
    data = load_training_data(choice, cfg.scales, patch_size=cfg.patch_size, holdout=cfg.holdout)
    _say(f"data: {data.description}")

    per_rank = cfg.batch_size // world
    sampler = StepSeededSampler.from_images(
        data.train,
        patch_size=cfg.patch_size,
        batch_size=per_rank,
        device=device,
        storage=cfg.storage,
        seed=cfg.seed,
        rank=rank,
    )
    _say(f"patches: {sampler.storage_reason}")
    if world > 1:
        _say(f"distributed: {world} processes x {per_rank} patches = global batch {cfg.batch_size}")

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
    model = build_model(cfg.model, cfg.scales, cfg.n_resblocks, cfg.n_feats)
    summary_path = out / "summary.json"
    if cfg.resume:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    else:
        summary = {
            "scales": list(cfg.scales),
            "validation_images": data.valid_names,
            "protocol": "benchmark (Y channel, scale-pixel border, 8-bit)",
        }
        if cfg.init:
            model, init_note = init_model(model, cfg.init)
            _say(f"model: {init_note}")
        if rank == 0:
            summary["bicubic"] = bicubic_psnr(data)
            if cfg.init:
                summary["init"] = validate(model, data, device)

    from edsr_lab.models import count_parameters

    resized = ""
    if cfg.n_resblocks is not None or cfg.n_feats is not None:
        mc = model.config
        resized = f" resized to {mc['n_resblocks']} blocks x {mc['n_feats']} features"
    _say(
        f"model: {cfg.model}{resized} x{'/'.join(map(str, cfg.scales))}, "
        f"{count_parameters(model):,} parameters, on {device}"
    )
    if rank == 0:
        resolved = {
            "run": cfg.to_dict(),
            "data": {"kind": data.kind, "root": str(data.root), "description": data.description},
            "patch_storage": sampler.storage_reason,
            "world_size": world,
            "per_rank_batch": per_rank,
            "torch": torch.__version__,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        _write_json(out / "config.json", resolved)
        _write_json(summary_path, summary)

    tc = TrainConfig(
        iters=cfg.iters,
        batch_size=cfg.batch_size,
        patch_size=cfg.patch_size,
        loss=cfg.loss,
        lr=cfg.lr,
        amp=cfg.amp,
        compile=cfg.compile,
        log_every=math.gcd(cfg.log_every, cfg.save_every, cfg.eval_every),
        eval_every=cfg.eval_every,
        seed=cfg.seed,
        checkpoint_every=cfg.save_every if rank == 0 else 0,
        checkpoint_path=str(out / "last.pt") if rank == 0 else None,
    )

    train_model: nn.Module = model
    if world > 1:
        model.to(device)
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        train_model = _DDP(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=len(cfg.scales) > 1,  # MDSR: other scales' heads idle
        )

    best = {"psnr": summary.get("best", {}).get("psnr", -math.inf)}

    def eval_fn(m: nn.Module) -> dict[str, float]:
        metrics = validate(m, data, device)
        if metrics["psnr"] > best["psnr"]:
            from edsr_lab.models import save_checkpoint

            best.update(metrics)
            best["step"] = sampler.count
            save_checkpoint(
                m, out / "best.pt", extra={"step": sampler.count, **metrics}, overwrite=True
            )
            summary["best"] = dict(best)
            _write_json(summary_path, summary)
        return metrics

    synced = [0]

    def callback(step: int, history: Any) -> None:
        if world > 1:
            _average_losses_across_ranks(history, synced[0])
            synced[0] = len(history.loss)
        return None

    resume_from = out / "last.pt" if cfg.resume else None
    if resume_from is not None:
        synced[0] = _resumed_length(resume_from)
    history = train(
        train_model,
        sampler,
        tc,
        device=device,
        eval_fn=eval_fn if rank == 0 else None,
        callback=callback,
        resume_from=resume_from,
        progress=rank == 0,
        is_main=rank == 0,
    )

    if rank == 0:
        if history.evals:
            summary["final"] = {k: v for k, v in history.evals[-1].items()}
        summary["steps"] = history.last_step
        summary["diverged"] = bool(history.diverged)
        _add_gains(summary)
        _write_json(summary_path, summary)
        write_history_csv(history, out / "history.csv")
        write_curves(history, out / "curves.png", summary.get("bicubic"))
        for line in report_lines(summary):
            print(line)
        print(f"outputs in {out}: {', '.join(f for f in RUN_FILES if (out / f).exists())}")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return RunResult(model=model, history=history, summary=summary, out=out)


def _data_note(choice: Any, *, named: bool) -> str:
    """One line saying which data the run uses, and why (see edsr_lab.data.sources)."""
    if choice.kind == "mini":
        return (
            f"{choice.reason}: training on the mini-DIV2K made from the bundled sample "
            f"images ({choice.root})"
        )
    if choice.kind == "folder":
        return f"folder of HR images {choice.root}"
    return f"DIV2K layout in {choice.root}" if named else f"DIV2K in {choice.root}"


def _resumed_length(path: Path) -> int:
    from edsr_lab.train import load_training_checkpoint

    return len(load_training_checkpoint(path)["history"]["loss"])


def _add_gains(summary: dict[str, Any]) -> None:
    final = summary.get("final")
    if not final:
        return
    for ref in ("bicubic", "init"):
        if ref in summary:
            summary[f"gain_over_{ref}_db"] = {
                k: final[k] - summary[ref][k] for k in summary[ref] if k in final
            }


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The closing report: validation PSNR per scale vs bicubic (and the --init weights)."""
    final = summary.get("final")
    if not final:
        return ["no validation result (the run stopped before its first evaluation)"]
    n = len(summary.get("validation_images", []))
    lines = [f"validation PSNR ({n} held-out images, {summary.get('protocol', 'benchmark')}):"]
    for s in summary["scales"]:
        k = f"psnr_x{s}"
        parts = [f"  x{s}: bicubic {summary['bicubic'][k]:.2f} dB"]
        if "init" in summary:
            parts.append(f"start (--init) {summary['init'][k]:.2f} dB")
        parts.append(f"final {final[k]:.2f} dB")
        gains = [f"{final[k] - summary['bicubic'][k]:+.2f} over bicubic"]
        if "init" in summary:
            gains.insert(0, f"{final[k] - summary['init'][k]:+.2f} over the start")
        lines.append(" | ".join(parts) + f" ({', '.join(gains)})")
    if "best" in summary:
        lines.append(
            f"  best mean {summary['best']['psnr']:.2f} dB at step "
            f"{summary['best']['step']} (best.pt)"
        )
    return lines


# -------------------------------------------------------------------------------- CLI


def args_to_config(args: Any) -> tuple[RunConfig, set[str]]:
    """argparse Namespace -> (RunConfig, names of the options given on the command line)."""
    values = {
        k: getattr(args, k)
        for k in RunConfig.__dataclass_fields__
        # "is", not "in": 0 == False, and --iters 0 must reach the check, not vanish
        if hasattr(args, k) and getattr(args, k) is not None and getattr(args, k) is not False
    }
    if "scales" in values:
        values["scales"] = tuple(values["scales"])
    cfg = RunConfig(**values)
    return cfg, set(values)


def main(args: Any) -> int:
    """The ``train`` command: ``python -m edsr_lab train ...`` (see ``--help``)."""
    cfg, given = args_to_config(args)
    try:
        result = run(cfg, given=given)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; continue with: python -m edsr_lab train --out {cfg.out} --resume",
            file=sys.stderr,
        )
        return 130
    except EdsrLabError:
        raise
    except ValueError as e:  # e.g. torch refusing a value we did not foresee: one line too
        raise TrainOptionError(f"{type(e).__name__}: {str(e).splitlines()[0]}") from e
    return 1 if result.history.diverged else 0
