"""Train the course weights: the small trained models quick-mode notebooks start from.

A few dozen CPU steps from scratch cannot show what a notebook teaches (an SRResNet after
30 steps is 13 dB *below* bicubic). So the quick-mode notebooks load small models trained
here, on the bundled CC0 sample images, and every one of them beats bicubic on images it
never saw. The script is the provenance: it writes each model (half-precision weights, our
checkpoint format) and ``manifest.json`` with the command, steps, seed, date, device,
training time, the held-out PSNR next to bicubic's, and the held-out PSNR curve.

Data (fixed, also written into the manifest): the mini-DIV2K made from the samples
(``edsr_lab.data.mini_div2k``, MATLAB-bicubic LR as in the paper). Trained on
TRAIN_IMAGES, scored on HELDOUT_IMAGES (the mini-DIV2K valid split) with the benchmark
protocol (PSNR on Y, ``scale`` border pixels cropped, 8-bit outputs). The medical, gray and
RGBA samples are not used: ``medical_cell`` is so smooth that bicubic scores over 50 dB on
it, and ``rgba_coffee`` is the held-out coffee photo again.

Models (MODELS below): EDSR baseline x2 (L1; the start of x3 and x4, as in the paper,
Sec. 3.2, through ``edsr_lab.models.init_from``), the same x2 with L2 (notebook 05), with
batch norm (notebook 03), SRResNet with L2 (notebook 02), the MDSR baseline (x2/x3/x4,
one random scale per batch as the official code trains it), and the L1 x2 model again for as
many steps as the L2 one (``course_edsr_baseline_l1_x2``: the L1 row of the course's ablation
table, ``edsr_lab.ledger``, at equal steps). Each is trained with
``edsr_lab.train.train`` and ``edsr_lab.data.PatchSampler`` (``MultiScaleSampler`` for MDSR):
batch 16 of 48x48 LR patches, Adam as the paper, lr 1e-4 halved after two thirds of the steps.

    # the course weights (one GPU, about 4 minutes):
    PYTHONPATH=. python3 scripts/train_course_weights.py --device cuda --out data/course_weights
    # no GPU: smaller batches, steps chosen to fit the time (models that do not beat
    # bicubic in that time are refused, see below):
    PYTHONPATH=. python3 scripts/train_course_weights.py --device cpu --budget-minutes 15
    # one model on a CPU with the GPU recipe (batch 16 of 48x48, whole-image curves; about
    # 1.7 s per step on 2 free cores), for as many steps as its partner in data/course_weights:
    PYTHONPATH=. python3 scripts/train_course_weights.py --device cpu --gpu-recipe \
        --only course_edsr_baseline_l1_x2 --out /tmp/cw_l1
    # a smoke test in seconds (weights NOT usable; the manifest says "tiny": true):
    PYTHONPATH=. python3 scripts/train_course_weights.py --tiny --out /tmp/cw

The committed weights were made by this script as of commit 581eb13 (on an NVIDIA H200). That
version's time budget re-planned the remaining models after the first one without keeping
comparison partners equal, so the L2 and BN variants there had fewer steps than
``course_edsr_baseline_x2`` (the manifest records each run's steps and curve; notebooks 03
and 05 compare them at equal steps). Comparison partners now always get equal steps
(``Spec.same_steps_as``; a partner that is not trained in the same run gives its steps from
``data/course_weights/manifest.json``), and the manifest records this script's SHA-256.

A model that does not beat bicubic on the held-out images is not written (the script says
which and exits with status 1 after writing the others). ``--out`` must not hold a
manifest already unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    import edsr_lab  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edsr_lab.data import (
    MultiScaleSampler,
    PatchSampler,
    center_crop_pair,
    find_pairs,
    load_pairs,
    mini_div2k,
)
from edsr_lab.data.div2k import MINI_KINDS, MINI_VALID
from edsr_lab.data.samples import sample_names
from edsr_lab.evaluate import evaluate
from edsr_lab.inference import bicubic_upscale
from edsr_lab.models import (
    EDSR,
    count_parameters,
    edsr_baseline,
    init_from,
    load_checkpoint,
    mdsr_baseline,
    save_checkpoint,
    srresnet,
)
from edsr_lab.train import TrainConfig, make_optimizer, make_train_step, resolve_amp, train

FORMAT = 1
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "course_weights"

#: The fixed split (the mini-DIV2K's: train 0001-0006, valid 0801-0802).
TRAIN_IMAGES = (
    "natural_astronaut",
    "natural_chelsea",
    "natural_hubble",
    "natural_rocket",
    "texture_brick",
    "texture_grass",
)
HELDOUT_IMAGES = ("natural_coffee", "texture_gravel")
PROTOCOL = "benchmark"  # PSNR on Y, `scale` border pixels cropped (the paper's Table 3/4)
SEED = 0


@dataclasses.dataclass
class Spec:
    """One course model: how to build it, what it is trained with, for how long."""

    name: str
    arch: str  # class name, as in our checkpoints
    preset: str  # the edsr_lab.models factory it equals (or a description)
    build: Callable[[dict[str, nn.Module]], nn.Module]  # gets the models trained so far
    scales: tuple[int, ...]
    loss: str
    steps: int  # at the full setting (GPU); scaled by --steps-scale / the budget
    init: str | None = None  # the course model it starts from
    same_steps_as: str | None = None  # a comparison partner: always as many steps as it
    purpose: str = ""


def _from_x2(scale: int) -> Callable[[dict[str, nn.Module]], nn.Module]:
    def build(done: dict[str, nn.Module]) -> nn.Module:
        return init_from(done["course_edsr_baseline_x2"], scale)

    return build


MODELS: tuple[Spec, ...] = (
    Spec("course_edsr_baseline_x2", "EDSR", "edsr_baseline", lambda d: edsr_baseline(2), (2,),
         "l1", 6000, purpose="the EDSR baseline (notebooks 03, 05, 08; start of x3/x4)"),
    Spec("course_edsr_baseline_x3", "EDSR", "edsr_baseline", _from_x2(3), (3,), "l1", 2000,
         init="course_edsr_baseline_x2", purpose="x3 from x2 (paper Sec. 3.2)"),
    Spec("course_edsr_baseline_x4", "EDSR", "edsr_baseline", _from_x2(4), (4,), "l1", 2000,
         init="course_edsr_baseline_x2", purpose="x4 from x2 (paper Sec. 3.2)"),
    Spec("course_edsr_baseline_l2_x2", "EDSR", "edsr_baseline", lambda d: edsr_baseline(2),
         (2,), "l2", 6000, same_steps_as="course_edsr_baseline_x2",
         purpose="same as course_edsr_baseline_x2 but L2 (notebook 05)"),
    Spec("course_edsr_baseline_l1_x2", "EDSR", "edsr_baseline", lambda d: edsr_baseline(2),
         (2,), "l1", 6000, same_steps_as="course_edsr_baseline_l2_x2",
         purpose="the L1 partner of course_edsr_baseline_l2_x2 at its steps (the ledger's "
         "L1 row)"),
    Spec("course_srresnet_l2_x2", "SRResNet", "srresnet", lambda d: srresnet(2), (2,), "l2",
         6000, purpose="SRResNet with its L2 loss (notebook 02)"),
    Spec("course_edsr_baseline_bn_x2", "EDSR", "edsr_baseline + batch_norm=True",
         lambda d: EDSR(16, 64, 2, batch_norm=True), (2,), "l1", 6000,
         same_steps_as="course_edsr_baseline_x2",
         purpose="course_edsr_baseline_x2 with BN in every block (notebook 03)"),
    Spec("course_mdsr_baseline", "MDSR", "mdsr_baseline", lambda d: mdsr_baseline((2, 3, 4)),
         (2, 3, 4), "l1", 6000, purpose="the MDSR baseline: one model for x2/x3/x4"),
)  # fmt: skip


@dataclasses.dataclass
class Settings:
    """Batch shape, evaluation and length of the run (chosen from the options)."""

    batch_size: int = 16  # the paper's batch
    patch_size: int = 48  # the paper's LR patch
    n_evals: int = 12  # points on each held-out PSNR curve (plus step 0)
    eval_crop: int | None = None  # LR centre crop for the curve (None: whole images)
    final_crop: int | None = None  # LR centre crop for the final score (None: whole images)
    steps_scale: float = 1.0
    min_steps: int = 20
    tiny: bool = False


# ----------------------------------------------------------------------------- data


def check_split() -> None:
    """The split written here must be the one mini_div2k builds (it numbers its files)."""
    natural_texture = [n for kind in MINI_KINDS for n in sample_names(kind)]
    train = tuple(sorted(n for n in natural_texture if n not in MINI_VALID))
    if train != TRAIN_IMAGES or tuple(MINI_VALID) != HELDOUT_IMAGES:
        raise SystemExit(
            f"error: the samples changed: mini_div2k now trains on {train} and holds out "
            f"{tuple(MINI_VALID)}; update TRAIN_IMAGES / HELDOUT_IMAGES in this script"
        )


class Data:
    """Training images and held-out pairs at each scale, loaded once."""

    def __init__(self, scales: tuple[int, ...], device: torch.device, st: Settings):
        self.root = mini_div2k()
        self.device = device
        self.final_crop = st.final_crop
        self.train: dict[int, tuple[list, list]] = {}
        self.heldout: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.curve_set: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.bicubic: dict[int, float] = {}
        self.bicubic_curve: dict[int, float] = {}
        for s in scales:
            self.train[s] = load_pairs(find_pairs(self.root, "train", s), scale=s)
            hr, lr = load_pairs(find_pairs(self.root, "valid", s), scale=s)
            pairs = [(h.float() / 255, x.float() / 255) for h, x in zip(hr, lr, strict=True)]
            self.heldout[s] = [center_crop_pair(h, x, st.final_crop, s) for h, x in pairs]
            self.curve_set[s] = [center_crop_pair(h, x, st.eval_crop, s) for h, x in pairs]
            self.bicubic[s] = self._bicubic(self.heldout[s], s)
            self.bicubic_curve[s] = self._bicubic(self.curve_set[s], s)

    @staticmethod
    def _bicubic(pairs: list, s: int) -> float:
        result = evaluate(lambda x: bicubic_upscale(x, s), pairs, s, protocol=PROTOCOL,
                          compute_ssim=False)  # fmt: skip
        return result.mean_psnr

    def sampler(self, scale: int, st: Settings, seed: int) -> PatchSampler:
        hr, lr = self.train[scale]
        return PatchSampler(hr, lr, scale, patch_size=st.patch_size, batch_size=st.batch_size,
                            device=self.device, seed=seed)  # fmt: skip

    def psnr(self, model: nn.Module, scale: int, *, curve: bool) -> float:
        pairs = self.curve_set[scale] if curve else self.heldout[scale]
        result = evaluate(model, pairs, scale, protocol=PROTOCOL, compute_ssim=False,
                          device=self.device)  # fmt: skip
        return result.mean_psnr


# ------------------------------------------------------------------------- training


def _sampler(spec: Spec, data: Data, st: Settings) -> Any:
    """Patches at the model's scale; for MDSR one random scale per batch (``(lr, hr, scale)``
    batches, which ``train`` feeds to ``model(lr, scale)``), as the official code trains it."""
    if spec.arch == "MDSR":
        samplers = [data.sampler(s, st, SEED + s) for s in spec.scales]
        return MultiScaleSampler(samplers, seed=SEED)
    return data.sampler(spec.scales[0], st, SEED)


def measure_rate(spec: Spec, data: Data, st: Settings, device: torch.device) -> float:
    """Training steps per second of this model on this device (a few timed steps)."""
    scale = spec.scales[-1]  # the most expensive scale (for MDSR, x4)
    if spec.arch == "SRResNet":
        model = srresnet(scale)
    elif spec.arch == "MDSR":
        model = mdsr_baseline(spec.scales)
    else:
        bn = "batch_norm" in spec.preset
        model = EDSR(16, 64, scale, batch_norm=bn)
    model.to(device).train()
    channels_last = device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    cfg = TrainConfig()
    step = make_train_step(model, make_optimizer(model, cfg, device), loss=spec.loss,
                           amp_dtype=resolve_amp("auto", device), channels_last=channels_last,
                           track_grad_norm=False)  # fmt: skip
    lr, hr = data.sampler(scale, st, SEED).sample()
    batch = (lr, hr, scale) if spec.arch == "MDSR" else (lr, hr)
    n_warm, n_timed = (1, 2) if st.tiny else (3, 10) if device.type == "cpu" else (10, 30)
    for _ in range(n_warm):
        step(*batch)
    _sync(device)
    t = time.perf_counter()
    for _ in range(n_timed):
        loss, _ = step(*batch)
    float(loss)
    _sync(device)
    return n_timed / (time.perf_counter() - t)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_eval(data: Data, device: torch.device) -> float:
    """Seconds of one curve point (the held-out images at x2) of the EDSR baseline."""
    model = edsr_baseline(2).to(device)
    data.psnr(model, 2, curve=True)  # warm-up
    t = time.perf_counter()
    data.psnr(model, 2, curve=True)
    return time.perf_counter() - t


#: Measured steps are timed on one fixed batch; train() also samples patches and keeps its
#: history, so plan with this much more time per step.
SLOWDOWN = 1.25


def fit(
    steps: dict[str, int],
    names: list[str],
    seconds: float | None,
    estimate: Callable[[dict[str, int], list[str]], float],
    min_steps: int,
    pinned: set[str] = frozenset(),
) -> dict[str, int]:
    """Shorten the step counts of ``names`` (except ``pinned``) by one factor to fit ``seconds``."""
    total = estimate(steps, names)
    if seconds is None or total <= seconds:
        return steps
    fixed = estimate({k: v if k in pinned else 0 for k, v in steps.items()}, names)
    factor = max(0.0, (seconds - fixed) / max(total - fixed, 1e-9))
    print(f"time budget: step counts of {len(set(names) - pinned)} model(s) x {factor:.3f} "
          f"({seconds:.0f} s left)")  # fmt: skip
    return {
        k: max(min_steps, int(v * factor)) if k in names and k not in pinned else v
        for k, v in steps.items()
    }


def pair_steps(steps: dict[str, int], specs: list[Spec]) -> dict[str, int]:
    """Give each comparison partner exactly its partner's steps (L1 vs L2, BN vs no BN)."""
    return {
        k: steps.get(spec.same_steps_as, v) if (spec := _spec(specs, k)).same_steps_as else v
        for k, v in steps.items()
    }


def committed_partner_steps(specs: list[Spec], manifest: Path) -> dict[str, int]:
    """Steps of comparison partners that are not trained in this run, from ``manifest``
    (the committed weights): ``--only course_edsr_baseline_l1_x2`` trains the L1 model for
    exactly as many steps as the committed L2 model had."""
    names = {s.name for s in specs}
    missing = {s.same_steps_as for s in specs if s.same_steps_as and s.same_steps_as not in names}
    if not missing:
        return {}
    weights = json.loads(manifest.read_text())["weights"] if manifest.exists() else {}
    absent = sorted(missing - set(weights))
    if absent:
        raise SystemExit(f"error: comparison partner(s) {absent} are neither trained in this run "
                         f"nor in {manifest}; add them to --only")  # fmt: skip
    return {name: weights[name]["steps"] for name in missing}


def _spec(specs: list[Spec], name: str) -> Spec:
    return next(s for s in specs if s.name == name)


def train_one(
    spec: Spec, steps: int, done: dict[str, nn.Module], data: Data, st: Settings,
    device: torch.device,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """Train one model; returns it (on the CPU) and its history and timing."""
    torch.manual_seed(SEED)
    model = spec.build(done)
    sampler = _sampler(spec, data, st)
    every = max(1, steps // st.n_evals)

    def curve_psnr(m: nn.Module) -> dict[str, float]:
        return {"psnr": sum(data.psnr(m, s, curve=True) for s in spec.scales) / len(spec.scales)}

    cfg = TrainConfig(
        iters=steps,
        batch_size=st.batch_size,
        patch_size=st.patch_size,
        loss=spec.loss,
        lr_decay_every=max(1, (2 * steps) // 3),  # halved once, at 2/3 (as 2e5 of 3e5)
        log_every=max(1, min(every, 500)),
        eval_every=every,
        seed=SEED,
    )
    model.to(device)
    start = curve_psnr(model)["psnr"]
    t0 = time.perf_counter()
    history = train(model, sampler, cfg, device=device, eval_fn=curve_psnr, progress=False)
    seconds = time.perf_counter() - t0
    if history.diverged:
        raise FloatingPointError(f"{spec.name} diverged at step {history.diverged_step}")
    steps_done, psnrs = history.eval_series("psnr")
    record = {
        "steps": history.last_step,
        "train_seconds": round(seconds, 1),
        "history": {
            "step": [0, *steps_done],
            "psnr": [round(v, 3) for v in (start, *psnrs)],
            "protocol": PROTOCOL,
            "eval_crop": st.eval_crop,
            "bicubic_psnr": round(
                sum(data.bicubic_curve[s] for s in spec.scales) / len(spec.scales), 3
            ),
        },
        "final_loss": round(sum(history.loss[-50:]) / len(history.loss[-50:]), 5),
    }
    if spec.init is not None:
        report = model.transfer_report
        record["init_report"] = {"copied": len(report.copied), "skipped": sorted(report.skipped)}
    model.eval().cpu().to(memory_format=torch.contiguous_format)
    return model, record


# ------------------------------------------------------------------------ shipping


def half_copy(model: nn.Module) -> nn.Module:
    """A copy with trainable weights in fp16; the frozen mean shift and BN statistics stay
    fp32 (their constants, e.g. 255 x mean, would lose 1/16 of a level in fp16)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            if p.requires_grad:
                p.data = p.data.half()
    return out


def as_shipped(model: nn.Module) -> nn.Module:
    """The fp32 model a user gets back from the fp16 file (to score what is shipped)."""
    out = copy.deepcopy(model)
    half = half_copy(model).state_dict()
    out.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    return out


def heldout_scores(model: nn.Module, spec: Spec, data: Data) -> dict[str, Any]:
    """Held-out PSNR (whole images) of the shipped model vs bicubic, per scale and mean."""
    per_scale = {}
    for s in spec.scales:
        per_scale[str(s)] = {
            "psnr": round(data.psnr(model, s, curve=False), 3),
            "bicubic_psnr": round(data.bicubic[s], 3),
        }
    n = len(per_scale)
    scores = {
        "psnr": round(sum(v["psnr"] for v in per_scale.values()) / n, 3),
        "bicubic_psnr": round(sum(v["bicubic_psnr"] for v in per_scale.values()) / n, 3),
        "protocol": PROTOCOL,
        "images": list(HELDOUT_IMAGES),
        "crop": data.final_crop,
    }
    if n > 1:
        scores["per_scale"] = per_scale
    return scores


def beats_bicubic(heldout: dict[str, Any]) -> bool:
    """True when the model beats bicubic on the held-out images (at every scale it has)."""
    rows = list(heldout.get("per_scale", {}).values()) or [heldout]
    return all(r["psnr"] > r["bicubic_psnr"] for r in rows)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / "manifest.json")


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        amp = "bf16 autocast" if resolve_amp("auto", device) else "fp32"
        return f"cuda ({torch.cuda.get_device_name(device)}, {amp}), torch {torch.__version__}"
    return (
        f"cpu ({platform.machine()}, {torch.get_num_threads()} threads, fp32), "
        f"torch {torch.__version__}"
    )


# -------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train the course weights on the bundled samples (see the docstring).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: PYTHONPATH=. python3 scripts/train_course_weights.py --device cuda",
    )
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every model's step count (e.g. 0.5)")  # fmt: skip
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="shorten all step counts (same factor) so training fits this time; "
                   "default 3.75 on a GPU, none on a CPU")  # fmt: skip
    p.add_argument("--cpu-budget-minutes", type=float, default=None,
                   help="all-CPU fallback: --device cpu, batch 8 of 32x32, and steps that fit "
                   "this many minutes")  # fmt: skip
    p.add_argument("--gpu-recipe", action="store_true",
                   help="with --device cpu: keep the GPU's batch 16 of 48x48 and whole-image "
                   "held-out curves (about 1.7 s per step on 2 cores)")  # fmt: skip
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="train only these models (and what they start from)")  # fmt: skip
    p.add_argument("--tiny", action="store_true",
                   help="a smoke test in seconds: a few steps, tiny batches; the weights are "
                   "not usable and are written even though they lose to bicubic")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    return p.parse_args(argv)


def settings(args: argparse.Namespace, device: torch.device) -> Settings:
    """Batch shape and evaluation for this run: the GPU recipe, a smaller CPU one, or tiny."""
    if args.tiny:
        return Settings(batch_size=2, patch_size=16, n_evals=2, eval_crop=24, final_crop=24,
                        steps_scale=1.0, min_steps=2, tiny=True)  # fmt: skip
    if device.type == "cpu" and not args.gpu_recipe:
        # 1.7 s per step at batch 16 x 48^2 on 2 cores: a CPU run uses the quick-mode batch.
        return Settings(batch_size=8, patch_size=32, n_evals=6, eval_crop=64,
                        steps_scale=args.steps_scale)  # fmt: skip
    return Settings(steps_scale=args.steps_scale)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python3 scripts/train_course_weights.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    if args.cpu_budget_minutes is not None:
        args.device, args.budget_minutes = "cpu", args.cpu_budget_minutes
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible; use --device cpu", file=sys.stderr)
        return 2
    if args.budget_minutes is None and device.type == "cuda" and not args.tiny:
        args.budget_minutes = 3.75  # + ~30 s of data, timing and scoring: under 4.5 min
    st = settings(args, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch shapes: let cuDNN pick kernels

    specs = list(MODELS)
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in specs})
        if unknown:
            print(f"error: unknown model(s) {unknown}; known: {[s.name for s in specs]}",
                  file=sys.stderr)  # fmt: skip
            return 2
        wanted = set(args.only) | {s.init for s in specs if s.name in args.only and s.init}
        specs = [s for s in specs if s.name in wanted]

    out = args.out
    if (out / "manifest.json").exists() and not args.overwrite:
        print(f"error: {out / 'manifest.json'} exists; pass --overwrite to replace it or "
              "choose another --out", file=sys.stderr)  # fmt: skip
        return 2
    out.mkdir(parents=True, exist_ok=True)

    check_split()
    t_start = time.perf_counter()
    scales = tuple(sorted({s for spec in specs for s in spec.scales}))
    data = Data(scales, device, st)
    print(
        f"data: mini-DIV2K {data.root.name}: train {', '.join(TRAIN_IMAGES)}; held out "
        f"{', '.join(HELDOUT_IMAGES)}; bicubic {PROTOCOL} PSNR "
        + ", ".join(f"x{s} {data.bicubic[s]:.2f} dB" for s in scales)
    )

    # Plan: default steps x steps_scale, then shortened (same factor for all) to the budget.
    steps = {s.name: max(st.min_steps, round(s.steps * st.steps_scale)) for s in specs}
    if st.tiny:
        steps = {s.name: st.min_steps for s in specs}
    if st.tiny:  # timing a smoke test is not worth its seconds
        rates, eval_s = {s.name: 1.0 for s in specs}, 0.0
    else:
        rates = {s.name: measure_rate(s, data, st, device) for s in specs}
        eval_s = measure_eval(data, device)

    correction = {"factor": SLOWDOWN}  # grows when models take longer than planned

    def estimate(plan: dict[str, int], names: list[str]) -> float:
        return sum(correction["factor"] * plan[s.name] / rates[s.name]
                   + (st.n_evals + 2) * eval_s * len(s.scales) for s in specs
                   if s.name in names)  # fmt: skip

    budget_s = None if args.budget_minutes is None else 60 * args.budget_minutes
    steps = pair_steps(fit(steps, [s.name for s in specs], budget_s, estimate, st.min_steps), specs)
    committed = committed_partner_steps(specs, DEFAULT_OUT / "manifest.json")
    for s in specs:
        if s.same_steps_as in committed and not st.tiny:
            steps[s.name] = committed[s.same_steps_as]
            print(f"{s.name}: {steps[s.name]} steps, as {s.same_steps_as} in "
                  f"{(DEFAULT_OUT / 'manifest.json').relative_to(ROOT)}")  # fmt: skip
    total = estimate(steps, list(steps))
    print(
        f"device: {device_description(device)}; batch {st.batch_size} x "
        f"{st.patch_size}x{st.patch_size}"
    )
    print(f"{'model':<28}{'steps':>7}{'it/s':>8}{'est. s':>8}")
    for s in specs:
        print(
            f"{s.name:<28}{steps[s.name]:>7}{rates[s.name]:>8.1f}"
            f"{SLOWDOWN * steps[s.name] / rates[s.name]:>8.0f}"
        )
    print(
        f"estimated time: {total / 60:.1f} min (training + held-out curves)"
        + (f", budget {args.budget_minutes:g} min" if budget_s else ""),
        flush=True,
    )

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "description": "Course weights for the quick-mode notebooks, trained by "
        "scripts/train_course_weights.py on the bundled CC0 samples; "
        "see that script's docstring.",
        "split": {"train": list(TRAIN_IMAGES), "heldout": list(HELDOUT_IMAGES),
                  "data": "mini-DIV2K (edsr_lab.data.mini_div2k), MATLAB-bicubic LR"},
        "tiny": st.tiny,
        "script_sha256": sha256(Path(__file__)),
        "weights": {},
    }  # fmt: skip
    done: dict[str, nn.Module] = {}
    refused: list[str] = []
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    t_train = time.perf_counter()
    for spec in specs:
        if spec.init is not None and spec.init not in done:
            print(f"{spec.name}: skipped, {spec.init} was not trained")
            refused.append(spec.name)
            continue
        if budget_s is not None:  # the estimate was off: shorten what is left to fit
            left = [s.name for s in specs[specs.index(spec) :]]
            # partners of models already trained keep their steps: comparisons stay fair
            pinned = {s.name for s in specs if s.same_steps_as in done | set(committed)}
            steps = fit(steps, left, budget_s - (time.perf_counter() - t_train), estimate,
                        st.min_steps, pinned)  # fmt: skip
            steps = pair_steps(steps, specs)
        t_model = time.perf_counter()
        planned = estimate(steps, [spec.name])
        try:
            model, record = train_one(spec, steps[spec.name], done, data, st, device)
        except Exception:  # noqa: BLE001 (one failure must not cost the others a GPU slot)
            traceback.print_exc()
            print(f"{spec.name}: FAILED (traceback above); going on with the others")
            refused.append(spec.name)
            continue
        if planned > 0:
            took = time.perf_counter() - t_model
            correction["factor"] = max(correction["factor"], correction["factor"] * took / planned)
        shipped = as_shipped(model)
        heldout = heldout_scores(shipped, spec, data)
        ok = beats_bicubic(heldout)
        print(f"{spec.name:<28} {record['steps']:>6} steps {record['train_seconds']:>7.1f} s | "
              f"held-out {heldout['psnr']:.2f} dB vs bicubic {heldout['bicubic_psnr']:.2f} dB "
              f"({heldout['psnr'] - heldout['bicubic_psnr']:+.2f}) {'' if ok else 'LOSES'}",
              flush=True)  # fmt: skip
        done[spec.name] = model
        if not ok and not st.tiny:
            refused.append(spec.name)
            continue
        path = out / f"{spec.name}.pt"
        extra = {"course_weights": spec.name, "heldout_psnr": heldout["psnr"]}
        save_checkpoint(half_copy(model), path, extra=extra, overwrite=True)
        # What was written must load back as the model that was scored.
        back = load_checkpoint(path)
        x = data.heldout[spec.scales[0]][0][1][:, :16, :16][None].cpu()
        with torch.no_grad():
            # allclose, not equal: a GPU-trained model may keep channels_last weights,
            # which the CPU convolves by another algorithm (rounding differences)
            same = torch.allclose(
                back(x, spec.scales[0]), shipped.cpu().eval()(x, spec.scales[0]), atol=1e-4
            )
        if not same:
            raise RuntimeError(f"{path} does not load back as the scored model")
        manifest["weights"][spec.name] = {
            "file": path.name,
            "sha256": sha256(path),
            "arch": spec.arch.lower(),
            "preset": spec.preset,
            "scale": spec.scales[0] if len(spec.scales) == 1 else list(spec.scales),
            "loss": spec.loss,
            "init": spec.init,
            "same_steps_as": spec.same_steps_as,
            "purpose": spec.purpose,
            "parameters": count_parameters(model),
            "steps": record["steps"],
            "batch_size": st.batch_size,
            "patch_size": st.patch_size,
            "lr": TrainConfig().lr,
            "lr_schedule": "halved once, after 2/3 of the steps",
            "seed": SEED,
            "device": device_description(device),
            "date": date,
            "command": command,
            "train_seconds": record["train_seconds"],
            "heldout": heldout,
            "history": record["history"],
            "final_train_loss": record["final_loss"],
            **({"init_report": record["init_report"]} if "init_report" in record else {}),
        }
        write_manifest(out, manifest)  # after every model: a cut-off run keeps what it did

    write_manifest(out, manifest)
    total_s = time.perf_counter() - t_start
    size = sum((out / w["file"]).stat().st_size for w in manifest["weights"].values())
    print(
        f"\nwrote {len(manifest['weights'])} models to {out} in {total_s / 60:.1f} min "
        f"({size / 2**20:.1f} MB)"
    )
    print(json.dumps({k: {"steps": w["steps"], "heldout_psnr": w["heldout"]["psnr"],
                          "bicubic_psnr": w["heldout"]["bicubic_psnr"]}
                      for k, w in manifest["weights"].items()}, indent=1))  # fmt: skip
    if refused:
        print(f"NOT written (lost to bicubic on the held-out images, failed, or their start "
              f"model did): {', '.join(refused)}", file=sys.stderr)  # fmt: skip
        return 1
    if st.tiny:
        print("--tiny: these weights are a smoke test, not course weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
