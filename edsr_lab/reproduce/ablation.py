"""Table 2 of Lim et al. 2017 by training: ``python -m edsr_lab reproduce table2``.

Each row of the paper's ablation (Sec. 4.4: SRResNet with L2, then L1; the EDSR and MDSR
baselines; EDSR; MDSR) is one training run of :func:`edsr_lab.train.run` with the paper's
recipe, in its own folder under ``out`` (``srresnet-l2_x2/``, ``mdsr/`` ...). A rerun
skips finished rows and resumes unfinished ones from their ``last.pt`` (exactly: the
batches and weights are those of an uninterrupted run); a larger ``updates`` extends
finished rows. Each trained model is then scored with
:func:`edsr_lab.evaluate.evaluate_sets` on DIV2K 0801-0810 with the DIV2K protocol (RGB,
``6 + scale`` border pixels cropped, 8-bit outputs), EDSR and MDSR also with the
self-ensemble (EDSR+, MDSR+), and ``out/table2.md`` gets the table beside the paper's.

As the paper (Sec. 4.2): single-scale x3/x4 rows start from the same row's x2 model when
x2 is trained too (``scratch=True`` trains them from scratch); MDSR rows train x2, x3 and
x4 in one run and are scored at each scale asked for.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edsr_lab import config
from edsr_lab.data import div2k
from edsr_lab.data.sources import DIV2K_ABLATION_VALID
from edsr_lab.errors import BadArgumentError, DatasetError, TrainOptionError
from edsr_lab.paper import SOURCE, TABLE2
from edsr_lab.reproduce.report import (
    CITATION,
    Provenance,
    check_replaceable,
    device_name,
    pair,
    shown,
    write_markdown,
)
from edsr_lab.reproduce.rows import TABLE2_ROWS, Table2Row
from edsr_lab.train.config import RunConfig

__all__ = ["PAPER_UPDATES", "TINY", "RowPlan", "Table2Result", "plan_table2", "table2"]

#: The paper's budget for every row of Table 2 (Sec. 4.4).
PAPER_UPDATES = 300_000

#: ``tiny=True``: every model shrunk to 1 block of 8 features, batches of 4 patches of 8x8
#: LR pixels: a smoke test of the whole command in seconds on a CPU. Its numbers say
#: nothing about the paper.
TINY = {"n_resblocks": 1, "n_feats": 8, "batch_size": 4, "patch_size": 8}

# Settings that make a row what it is: a folder holding a run with other values was made
# by another command (e.g. with tiny=True) and is never mixed into this table.
_DEFINING = ("model", "scales", "loss", "data", "init", *TINY)

_VALID_NAMES = [f"{i:04d}" for i in DIV2K_ABLATION_VALID]


@dataclass
class RowPlan:
    """One training run of the table: which row, which scales, where, and its settings."""

    row: Table2Row
    eval_scales: tuple[int, ...]
    folder: Path
    config: RunConfig
    given: set[str]

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass
class Score:
    """One cell of the table: a row at a scale, measured (None until run) and the paper's."""

    label: str
    scale: int
    updates: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    run: str = ""
    note: str = ""

    @property
    def paper(self) -> tuple[float, float | None] | None:
        return TABLE2.get(self.label, {}).get(self.scale)


@dataclass
class Table2Result:
    """What :func:`table2` did: the scores (table order), the markdown file, the plans."""

    scores: list[Score]
    path: Path
    plans: list[RowPlan]
    provenance: Provenance
    trained: list[str] = field(default_factory=list)  # run folders trained or resumed now
    skipped: list[str] = field(default_factory=list)  # run folders already finished


def _check_args(scales: Sequence[int], rows: Sequence[str], updates: int) -> None:
    known = [r.key for r in TABLE2_ROWS]
    bad = [r for r in rows if r not in known]
    if bad:
        raise BadArgumentError(f"unknown row {bad[0]!r}; choose from {', '.join(known)}")
    if not rows:
        raise BadArgumentError(f"no rows asked for; choose from {', '.join(known)}")
    wrong = [s for s in scales if s not in (2, 3, 4)]
    if wrong or not scales:
        raise BadArgumentError(
            f"scale {wrong[0] if wrong else 'none'}: Table 2 has x2, x3 and x4; pass --scale "
            "with some of 2 3 4"
        )
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 1:
        raise BadArgumentError(f"--updates {updates}: a whole number >= 1 (the paper: 300000)")


def default_data() -> Path:
    """Where Table 2 reads DIV2K by default: ``config.data_dir()/DIV2K``. Always DIV2K,
    also in quick mode: the paper's table is about DIV2K, never the mini copy."""
    return config.data_dir() / "DIV2K"


def plan_table2(
    out: str | Path = "runs/reproduce/table2",
    *,
    scales: Sequence[int] = (2,),
    rows: Sequence[str] | None = None,
    updates: int = PAPER_UPDATES,
    data: str | Path | None = None,
    scratch: bool = False,
    tiny: bool = False,
    device: str | None = None,
) -> list[RowPlan]:
    """The training runs :func:`table2` makes, in order (x2 before the x3/x4 it starts).

    Single-scale rows get one run per scale (``<row>_x<s>``); MDSR rows one run on x2, x3
    and x4 together (``<row>``), scored at ``scales``. Arguments as :func:`table2`.
    """
    rows = [r.key for r in TABLE2_ROWS] if rows is None else list(rows)
    scales = tuple(sorted(set(scales)))
    _check_args(scales, rows, updates)
    out = Path(out).expanduser()
    root = str(Path(data if data is not None else default_data()).expanduser().absolute())
    extra = dict(TINY) if tiny else {}
    plans: list[RowPlan] = []
    for row in (r for r in TABLE2_ROWS if r.key in rows):
        runs = [((2, 3, 4), scales, row.key)] if row.multiscale else [
            ((s,), (s,), f"{row.key}_x{s}") for s in scales
        ]  # fmt: skip
        for trained, scored, name in runs:
            folder = out / name
            init = None
            if not row.multiscale and trained[0] != 2 and 2 in scales and not scratch:
                init = str((out / f"{row.key}_x2" / "last.pt").absolute())
            fields = dict(
                model=row.model, scales=trained, loss=row.loss, iters=updates, data=root,
                out=str(folder), device=device, init=init, **extra,
            )  # fmt: skip
            given = {k for k, v in fields.items() if v is not None}
            cfg = RunConfig(**{k: v for k, v in fields.items() if v is not None})
            plans.append(RowPlan(row, scored, folder, cfg, given))
    return plans


def _check_data(root: Path, scales: Sequence[int]) -> None:
    """One clear line before hours of training: DIV2K's train split and 0801-0810."""
    fetch = (
        f"python -m edsr_lab download-div2k --root {shown(root)} (about 7 GB), or pass --data "
        "DIR (a DIV2K-layout root)"
    )
    if div2k.find_root(root, "train") is None:
        raise DatasetError(f"DIV2K training images not found in {shown(root)}: {fetch}")
    for s in scales:
        try:
            div2k.find_pairs(root, "valid", s, indices=DIV2K_ABLATION_VALID)
        except DatasetError as err:
            first = str(err).splitlines()[0]
            raise DatasetError(
                f"Table 2 scores DIV2K valid 0801-0810 at x{s}, but: {first} Get them with: {fetch}"
            ) from None


def _stored_run(folder: Path) -> dict | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["run"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TrainOptionError(
            f"{shown(path)} cannot be read ({err}); delete the folder {shown(folder)} to "
            "train that row again"
        ) from None


def _check_same_row(plan: RowPlan, stored: dict) -> None:
    asked = plan.config.to_dict()
    for key in _DEFINING:
        have, want = stored.get(key), asked.get(key)
        if isinstance(have, list):
            have = tuple(have)
        if isinstance(want, list):
            want = tuple(want)
        if have != want:
            raise TrainOptionError(
                f"{shown(plan.folder)} holds a run with other settings ({key} {have!r} there, "
                f"{want!r} asked; another `reproduce table2` command, e.g. with --tiny, made "
                "it): use another --out, or delete that folder to train the row again"
            )


def _run_state(plan: RowPlan, updates: int) -> tuple[str, int]:
    """("new" | "resume" | "done" | "diverged", the step last.pt holds)."""
    from edsr_lab.train import load_training_checkpoint

    last = plan.folder / "last.pt"
    if not last.is_file():
        return "new", 0
    step = int(load_training_checkpoint(last)["step"])
    summary_path = plan.folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if summary.get("diverged"):
        return "diverged", step
    return ("done" if step >= updates else "resume"), step


def _train_row(plan: RowPlan, state: str, updates: int) -> None:
    from edsr_lab.train import run

    if state == "resume":
        cfg = RunConfig(out=str(plan.folder), resume=True, iters=updates)
        given = {"iters"}
        if plan.config.device is not None:
            cfg = dataclasses.replace(cfg, device=plan.config.device)
            given.add("device")
        run(cfg, given=given)
        return
    init = plan.config.init
    if init is not None and not Path(init).is_file():
        raise TrainOptionError(
            f"{shown(plan.folder)} starts from the x2 run's {shown(init)}, which does not "
            "exist; train x2 first (add --scale 2) or pass --scratch"
        )
    # A folder without last.pt holds no training to lose (it stopped before the first
    # checkpoint): start it again.
    cfg = dataclasses.replace(plan.config, overwrite=plan.folder.exists())
    run(cfg, given=plan.given | {"overwrite"})


def _score(plan: RowPlan, root: Path, device: torch.device, scores: list[Score], progress):
    """Evaluate the row's final weights (last.pt) at each scale, also with self-ensemble."""
    from edsr_lab.evaluate import evaluate_sets
    from edsr_lab.train import load_training_checkpoint
    from edsr_lab.weights import load_model

    step = int(load_training_checkpoint(plan.folder / "last.pt")["step"])
    model = load_model(plan.folder / "last.pt", map_location=device)
    variants = [(plan.row.paper, False)] + ([(plan.row.plus, True)] if plan.row.plus else [])
    for s in plan.eval_scales:
        for label, ensemble in variants:
            report = evaluate_sets(
                model, ["div2k-valid"], s, protocol="div2k", self_ensemble=ensemble,
                device=device, root=root, limit=len(_VALID_NAMES), bicubic=_wants_bicubic(
                    scores, s), label=label, progress=progress,
            )  # fmt: skip
            result = report.sets[0]
            names = [r.name for r in result.model.rows]
            if names != _VALID_NAMES:
                raise DatasetError(
                    f"DIV2K valid in {shown(root)} starts with {', '.join(names[:3])} ..., "
                    "not 0801-0810 (the images of Table 2); use the DIV2K validation set"
                )
            cell = _cell(scores, label, s)
            cell.updates = step
            cell.psnr, cell.ssim = result.model.mean_psnr, result.model.mean_ssim
            cell.run = shown(plan.folder)
            if ensemble:
                cell.note = f"{plan.row.paper}'s run, 8 flips/rotations averaged"
            if result.bicubic is not None:
                bic = _cell(scores, "Bicubic", s)
                bic.psnr, bic.ssim = result.bicubic.mean_psnr, result.bicubic.mean_ssim
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _wants_bicubic(scores: list[Score], scale: int) -> bool:
    return _cell(scores, "Bicubic", scale).psnr is None


def _cell(scores: list[Score], label: str, scale: int) -> Score:
    return next(c for c in scores if c.label == label and c.scale == scale)


def _empty_scores(plans: list[RowPlan], scales: Sequence[int]) -> list[Score]:
    """The table's cells in order: per scale, bicubic then the rows as in the paper."""
    out = []
    for s in sorted(set(scales)):
        out.append(Score("Bicubic", s))
        for p in plans:
            if s in p.eval_scales:
                out.append(Score(p.row.paper, s, run=shown(p.folder)))
        for p in plans:
            if s in p.eval_scales and p.row.plus:
                out.append(Score(p.row.plus, s, run=shown(p.folder)))
    return out


def _markdown(scores: list[Score], prov: Provenance, *, tiny: bool, updates: int) -> list[str]:
    lines = [
        "# Table 2 of Lim et al. 2017, reproduced by training",
        "",
        "DIV2K protocol, as the paper's Table 2: PSNR (dB) / SSIM on RGB with `6 + scale` "
        "border pixels cropped, outputs rounded to 8 bits, means over the DIV2K validation "
        "images 0801-0810. Each model was trained here on the DIV2K training images with the "
        "paper's recipe (Sec. 4.2: 16 LR patches of 48x48, Adam with learning rate 1e-4 "
        "halved every 2x10^5 updates, L1 unless the row says L2); the paper trained 3x10^5 "
        "updates. Scored: each run's final weights (`last.pt`), not its best-on-validation "
        "checkpoint, which was chosen on these same images. Single-scale x3/x4 rows start "
        "from their x2 run when it is trained too (Sec. 4.2); MDSR trains x2, x3 and x4 in "
        "one run. EDSR+/MDSR+: the same weights with the geometric self-ensemble. The paper's "
        "Table 2 has no bicubic column: its bicubic value is the DIV2K validation row of the "
        "paper's Table 3.",
        "",
    ]
    if tiny:
        lines += [
            "**`--tiny`: every model shrunk to 1 block of 8 features and trained on 4 patches "
            "of 8x8 per update. A smoke test of the command: these numbers say nothing about "
            "the paper.**",
            "",
        ]
    if updates < PAPER_UPDATES:
        lines += [
            f"Budget: {updates:,} updates per row, below the paper's 300,000: expect lower "
            "PSNR than the paper's.",
            "",
        ]
    lines += [
        "| model | scale | updates | measured | paper | measured - paper (dB) | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in scores:
        paper = c.paper
        diff = "-"
        if c.psnr is not None and paper is not None:
            diff = f"{c.psnr - paper[0]:+.2f}"
        measured = pair(c.psnr, c.ssim) if c.psnr is not None else "not run yet"
        if c.label == "Bicubic":
            updates_cell, run = "-", "-"
        else:
            updates_cell = f"{c.updates:,}" if c.updates is not None else "-"
            run = c.run + (f" ({c.note})" if c.note else "")
        lines.append(
            f"| {c.label} | x{c.scale} | {updates_cell} | {measured} | "
            f"{pair(*paper) if paper else '-'} | {diff} | {run} |"
        )
    lines += ["", f"Paper values: {SOURCE['div2k']} ({CITATION}).", ""]
    lines += ["## Provenance", "", *prov.lines()]
    return lines


def table2(
    out: str | Path = "runs/reproduce/table2",
    *,
    scales: Sequence[int] = (2,),
    rows: Sequence[str] | None = None,
    updates: int = PAPER_UPDATES,
    data: str | Path | None = None,
    scratch: bool = False,
    tiny: bool = False,
    device: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> Table2Result:
    """Train the rows of Table 2, score them on DIV2K 0801-0810, write ``out/table2.md``.

    Args:
        out: the folder holding one run folder per row and ``table2.md``.
        scales: the scales to reproduce (2, 3, 4).
        rows: keys of :data:`~edsr_lab.reproduce.rows.TABLE2_ROWS` (default: all).
        updates: the budget of each run (the paper: 3x10^5). Finished rows are skipped;
            runs with fewer updates (interrupted, or a smaller earlier budget) resume.
        data: a DIV2K-layout root (default ``data/DIV2K``): train split and valid 0801-0810.
        scratch: train single-scale x3/x4 rows from scratch, not from their x2 run.
        tiny: shrink everything (:data:`TINY`): a smoke test, not the paper.
        device: ``"cuda"``, ``"cpu"`` ... (default: CUDA if available).
        command: the command line shown in the provenance (default: the Python call).
        progress: progress bars while scoring.

    Raises:
        DatasetError: DIV2K (or 0801-0810) is missing (the message says how to get it).
        TrainOptionError: a run folder holds a run with other settings.
        OutputExistsError: ``out/table2.md`` exists and was not written by this command.
    """
    plans = plan_table2(
        out, scales=scales, rows=rows, updates=updates, data=data, scratch=scratch,
        tiny=tiny, device=device,
    )  # fmt: skip
    out = Path(out).expanduser()
    root = Path(plans[0].config.data)
    dev = config.resolve_device(device)
    path = out / "table2.md"
    prov = Provenance(
        command=command or _python_call(out, scales, rows, updates, data, scratch, tiny, device),
        device=device_name(dev),
    )
    check_replaceable(path, "table2")  # a foreign table2.md: refused now, not after hours
    _check_data(root, sorted(set(scales)))
    n_train = len(list((div2k.find_root(root, "train") / div2k.hr_dirname("train")).glob("*.png")))
    prov.extra += [
        ("data", f"DIV2K in {shown(root)}: {n_train} training images; scored on valid 0801-0810"),
        ("budget", f"{updates:,} updates per run (the paper: 300,000)"),
        ("runs", f"{shown(out)}/<row>: config.json, history.csv, curves.png, last.pt"),
    ]
    for plan in plans:  # a folder of another command's run: refused before any training
        stored = _stored_run(plan.folder)
        if stored is not None:
            _check_same_row(plan, stored)
    scores = _empty_scores(plans, scales)
    result = Table2Result(scores, path, plans, prov)
    write = _writer(path, prov, tiny, updates)
    write(scores)  # every row "not run yet": the table fills in as rows finish
    for plan in plans:
        state, step = _run_state(plan, updates)
        if state in ("done", "diverged"):
            why = "finished" if state == "done" else "stopped: the loss diverged (see history.csv)"
            print(f"table2: {plan.name}: {why} at {step:,} updates; not trained again")
            result.skipped.append(plan.name)
        else:
            verb = "resuming from" if state == "resume" else "training from"
            print(f"table2: {plan.name}: {verb} {step:,} to {updates:,} updates", flush=True)
            started = time.monotonic()
            _train_row(plan, state, updates)
            took = time.monotonic() - started
            print(f"table2: {plan.name}: trained in {took / 60:.1f} min")
            result.trained.append(plan.name)
        _score(plan, root, dev, scores, progress)
        write(scores)
    print(f"table2: written to {shown(path)}")
    return result


def _writer(path: Path, prov: Provenance, tiny: bool, updates: int):
    def write(scores: list[Score]) -> None:
        write_markdown(path, _markdown(scores, prov, tiny=tiny, updates=updates), "table2")

    return write


def _python_call(out, scales, rows, updates, data, scratch, tiny, device) -> str:
    args = [f"{out!r}", f"scales={tuple(scales)}", f"updates={updates}"]
    for name, value in (("rows", rows), ("data", data), ("device", device)):
        if value is not None:
            args.append(f"{name}={value!r}")
    args += [f"{n}=True" for n, v in (("scratch", scratch), ("tiny", tiny)) if v]
    return f"edsr_lab.reproduce.ablation.table2({', '.join(args)})"
