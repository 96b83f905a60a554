"""``train``: train SRResNet/EDSR/MDSR into an output folder (:func:`edsr_lab.train.run`).

Each option is a field of :class:`~edsr_lab.train.config.RunConfig` and its default is read
from there (``RunConfig.defaults()``: the paper's recipe, or a short run in quick mode).
Options left out are None here, so the run knows which were given (a resumed run takes
the others from its folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

# torch-free: the edsr_lab.train package loads its torch-using modules on first use
from edsr_lab.losses import loss_names
from edsr_lab.train.config import (
    AMP_MODES,
    BUILTIN_MODELS,
    SPLIT_KEYS,
    STORAGES,
    RunConfig,
    TrainConfig,
    option_name,
)

__all__ = ["OPTIONS", "add_parsers", "command_line", "config_from_args"]

#: The RunConfig fields that are options of ``train`` (besides --resume, --overwrite), in
#: the order :func:`command_line` writes them.
OPTIONS = (
    "model",
    "scales",
    "data",
    "init",
    "iters",
    "batch_size",
    "patch_size",
    "loss",
    "lr",
    "eval_every",
    "checkpoint_every",
    "device",
    "amp",
    "compile",
    "seed",
    "holdout",
    "degradation",
    "split_by",
    "storage",
    "n_resblocks",
    "n_feats",
    "out",
)

EPILOG = """\
examples:
  the paper's EDSR baseline x2 (Section 4.2: 16 x 48x48 patches, L1, Adam 1e-4 halved every
  2e5 updates, 3e5 updates):
    python -m edsr_lab train --model edsr_baseline --scale 2 --out runs/baseline_x2
  x4 started from that x2 model (as the paper trains x3/x4):
    python -m edsr_lab train --model edsr_baseline --scale 4 \\
        --init runs/baseline_x2/best.pt --out runs/baseline_x4
  MDSR on x2, x3 and x4 at once:
    python -m edsr_lab train --model mdsr_baseline --scale 2 3 4 --out runs/mdsr
  fine-tune on your own images (a folder of HR images; 10 % held out):
    python -m edsr_lab train --init runs/baseline_x2/best.pt --data my_images \\
        --iters 2000 --out runs/mine
  continue after an interruption:      python -m edsr_lab train --out runs/baseline_x2 --resume
  4 GPUs (global batch stays 16):      torchrun --nproc_per_node 4 -m edsr_lab train --out runs/x2
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    d, q = RunConfig(), RunConfig.quick()  # the defaults: the paper's recipe, quick mode's
    p = sub.add_parser(
        "train",
        help="train a model (the paper's recipe by default) into an output folder",
        description="Train SRResNet/EDSR/MDSR. Everything goes into --out: last.pt, best.pt, "
        "history.csv, config.json, curves.png, summary.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    # no choices: the registry (which needs torch) checks the name when the run starts, so a
    # model registered in Python (edsr_lab.models.register_model) trains too
    add(
        "--model",
        metavar="NAME",
        help=f"model preset: {', '.join(BUILTIN_MODELS)} (paper Table 1) or one you registered "
        f"(default {d.model})",
    )
    add(
        "--scale",
        dest="scales",
        type=int,
        nargs="+",
        metavar="S",
        help=f"upscaling factor (default {d.scales[0]}); MDSR takes several: --scale 2 3 4",
    )
    add(
        "--data",
        metavar="DIR",
        help="a DIV2K-layout root (default data/DIV2K; in quick mode the mini-DIV2K), a "
        "folder of medical files (NIfTI, DICOM series, 16-bit/integer/float images; whole "
        "--split-by groups held out) or any folder of HR images (LR made with --degradation, "
        "a fixed --holdout share kept for validation)",
    )
    final = TrainConfig.paper_recipe(final=True).iters
    add(
        "--iters",
        type=int,
        help=f"updates (default {d.iters}, the paper's ablations; {final} for final models; "
        f"quick mode {q.iters})",
    )
    add(
        "--batch-size",
        type=int,
        help="patches per update, the global batch over all GPUs "
        f"(default {d.batch_size}; quick mode {q.batch_size})",
    )
    add(
        "--patch-size",
        type=int,
        help=f"LR patch side (default {d.patch_size}; quick mode {q.patch_size})",
    )
    # read now, not at import: a loss registered before the parser is built is offered
    add("--loss", choices=loss_names(), help=f"default {d.loss} (the paper); see edsr_lab.losses")
    add(
        "--lr",
        type=float,
        help=f"initial learning rate (default {d.lr:g}, halved every {d.lr_decay_every} updates)",
    )
    add(
        "--init",
        metavar="CHECKPOINT",
        help="start from these weights: our checkpoint, an official EDSR-PyTorch or BasicSR "
        "file (or a weights-registry name); another scale copies all but the "
        "upsampler, as the paper starts x3/x4 from x2",
    )
    add("--out", help=f"output folder (default {d.out})")
    add("--resume", action="store_true", help="continue the run in --out from last.pt")
    add(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (removes only the files a run writes)",
    )
    add(
        "--eval-every",
        type=int,
        help="validation PSNR every N updates; best.pt keeps the best "
        f"(default {d.eval_every}; quick mode {q.eval_every}; 0: at the end)",
    )
    add(
        "--save-every",
        dest="checkpoint_every",
        type=int,
        metavar="N",
        help="write last.pt every N updates "
        f"(default {d.checkpoint_every}; quick mode {q.checkpoint_every}; 0: at the end)",
    )
    add("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    add(
        "--amp",
        nargs="?",
        const="bf16",
        choices=AMP_MODES,
        help=f"bf16 autocast: auto (default {d.amp}: on for CUDA GPUs with bf16), bf16, off",
    )
    add(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the model (faster on a GPU after minutes of compiling)",
    )
    add("--seed", type=int, help=f"random seed (default {d.seed})")
    add(
        "--holdout",
        type=float,
        help=f"share of a plain image folder held out for validation (default {d.holdout})",
    )
    add(
        "--degradation",
        metavar="NAME[:k=v,...]",
        help=f"how LR is made from a folder's HR (default {d.degradation}: MATLAB imresize, "
        "the paper's): kspace (MRI k-space truncation, e.g. kspace:window=hann,"
        "noise_sigma=0.01) or ct (blur + noise); seeded by --seed, per file; a DIV2K root "
        "reads DIV2K_train_LR_<name> (make-dataset --degradation) if it has one",
    )
    add(
        "--split-by",
        choices=SPLIT_KEYS,
        help=f"a folder of medical volumes: what is held out whole (default {d.split_by}: "
        "DICOM PatientID, else the patient subfolder, else the file)",
    )
    add(
        "--storage",
        choices=STORAGES,
        help=f"where training images live (default {d.storage}: on the GPU if they fit, "
        "else pinned CPU memory)",
    )
    add("--n-resblocks", type=int, help="resize the preset: blocks")
    add("--n-feats", type=int, help="resize the preset: features")
    p.set_defaults(func=cmd_train)


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig, set[str]]:
    """argparse Namespace -> (RunConfig, names of the options given on the command line)."""
    values = {
        k: getattr(args, k)
        for k in RunConfig.__dataclass_fields__
        # "is", not "in": 0 == False, and --iters 0 must reach the check, not vanish
        if hasattr(args, k) and getattr(args, k) is not None and getattr(args, k) is not False
    }
    if "scales" in values:
        values["scales"] = tuple(values["scales"])
    return dataclasses.replace(RunConfig.defaults(), **values), set(values)


def command_line(cfg: RunConfig, given: set[str], **changes: Any) -> str:
    """The ``train`` command that runs ``cfg`` again (with ``changes``): every option
    given or different from the defaults, so it also reproduces a resumed run's settings."""
    defaults = RunConfig.defaults()
    cfg = dataclasses.replace(cfg, **changes)
    words = ["python", "-m", "edsr_lab", "train"]
    for f in OPTIONS:
        value = getattr(cfg, f)
        if value is None or value is False:
            continue
        if f not in given and f not in changes and f != "out" and value == getattr(defaults, f):
            continue
        words.append(option_name(f))
        if isinstance(value, (tuple, list)):
            words += [str(v) for v in value]
        elif value is not True:
            words.append(f"{value:g}" if isinstance(value, float) else str(value))
    if cfg.overwrite:
        words.append("--overwrite")
    return shlex.join(words)


def cmd_train(args: argparse.Namespace) -> int:
    from edsr_lab.errors import EdsrLabError, FileWriteError, TrainOptionError
    from edsr_lab.train import run

    cfg, given = config_from_args(args)
    out = Path(cfg.out).expanduser()
    try:
        result = run(cfg, given=given)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (train() saves last.pt first)
        print(f"\n{_interrupted(stop, out)}", file=sys.stderr)
        return 128 + getattr(stop, "signal", signal.SIGINT)
    except FileWriteError as e:  # e.g. a full disk at a save: say how to go on
        if (out / "last.pt").is_file():
            resume = f"python -m edsr_lab train --out {shlex.quote(str(out))} --resume"
            raise FileWriteError(f"{e}; then continue with: {resume}") from e
        raise
    except EdsrLabError:
        raise
    except ValueError as e:  # e.g. torch refusing a value we did not foresee: one line too
        raise TrainOptionError(f"{type(e).__name__}: {str(e).splitlines()[0]}") from e
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "alloc" not in str(e) and "memory" not in str(e):
            raise
        raise TrainOptionError(
            f"out of memory ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}); "
            "use a smaller --batch-size, --patch-size, --n-feats or --n-resblocks"
        ) from e
    if result.history.diverged:
        print(_diverged(result, cfg, given), file=sys.stderr)
        return 1
    return 0


def _diverged(result: Any, cfg: RunConfig, given: set[str]) -> str:
    """What a diverged run left, and the command that starts it again (a lower lr)."""
    h, out = result.history, result.out
    cfg = result.config or cfg
    kept = ["summary.json", "history.csv", "curves.png"]
    if (out / "last.pt").is_file():
        kept.append("last.pt (the last good state)")
    if (out / "best.pt").is_file():
        kept.append("best.pt")
    again = command_line(cfg, given | {"lr"}, overwrite=True, resume=False, lr=cfg.lr / 10)
    return (
        f"training diverged at step {h.diverged_step} (the loss became nan or inf); {out} "
        f"keeps the record ({', '.join(kept)}). Start again with a lower learning rate: {again}"
    )


def _interrupted(stop: KeyboardInterrupt, out: Path) -> str:
    """What an interrupted run kept, and the command that continues it."""
    resume = f"python -m edsr_lab train --out {out} --resume"
    saved = getattr(stop, "saved", None)
    if saved is not None:
        return f"interrupted after step {stop.step}, saved in {saved}; continue with: {resume}"
    if (out / "last.pt").is_file():
        return f"interrupted; continue from the last save with: {resume}"
    if (out / "config.json").is_file():
        return f"interrupted before the first save; start the run again with: {resume}"
    return "interrupted before the run started; nothing was written"
