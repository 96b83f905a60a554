"""The course's ledger: one held-out set, one protocol, one ablation table.

The paper's ablation (Lim et al., CVPRW 2017, Table 2) changes one thing at a time, from
SRResNet to the EDSR baseline to MDSR, and scores every model the same way. The course
repeats it with its own small models, the course weights (``data/course_weights``, trained
by ``scripts/train_course_weights.py``), and scores all of them one way, here:

* **held-out set** (:func:`heldout_pairs`): the two mini-DIV2K validation images
  ``natural_coffee`` and ``texture_gravel`` (files 0801, 0802 of
  :func:`edsr_lab.data.mini_div2k`), which no course weights were trained on; whole images;
* **protocol** (:func:`score`): the DIV2K protocol of Table 2 (``protocol="div2k"``): PSNR
  and SSIM on RGB, ``6 + scale`` border pixels cropped, outputs clamped and rounded to 8 bits,
  the mean of the per-image values.

The table is data, ``edsr_lab/ledger.json``, written by :func:`write` from :func:`compute`,
which scores the course weights again; a test recomputes it, so it cannot drift from the
weights. Notebooks show it as far as the course has got::

    >>> from edsr_lab import ledger
    >>> table = ledger.load()
    >>> print(table.table(upto="03"))          # the rows of notebooks 02 and 03, x2
    >>> table.cell("baseline_l1", 2).psnr      # one number, with its provenance
    >>> table.paper("baseline_l1", 2)          # the paper's Table 2 value beside it

Rebuild the stored table after the course weights change::

    python -m edsr_lab.ledger --write

Each row names the notebook that adds it (02 SRResNet and bicubic, 03 batch norm, 05 the
loss, 06 the paper's EDSR, 09 MDSR) and its nearest column of the paper's Table 2
(:data:`edsr_lab.paper.TABLE2`). Absolute PSNRs are not comparable with the paper's (six
training images and thousands of updates, not 800 images and 3x10^5 updates; two held-out
images, not ten), so the table also shows each row's gain over bicubic on its own images.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.errors import BadArgumentError, CheckpointError

__all__ = [
    "HELDOUT_IMAGES",
    "LEDGER_PATH",
    "NOTEBOOKS",
    "PROTOCOL",
    "ROWS",
    "SCALES",
    "Cell",
    "Ledger",
    "Row",
    "compute",
    "heldout_pairs",
    "load",
    "score",
    "write",
]

#: The course's held-out images (the mini-DIV2K validation split, in its file order).
HELDOUT_IMAGES: tuple[str, ...] = ("natural_coffee", "texture_gravel")
#: The course's protocol: the DIV2K protocol of the paper's Table 2.
PROTOCOL = "div2k"
#: The scales the ledger can hold.
SCALES: tuple[int, ...] = (2, 3, 4)
#: Where the table is stored (beside this module, so it ships with the package).
LEDGER_PATH = Path(__file__).with_name("ledger.json")
FORMAT = 1


@dataclass(frozen=True)
class Row:
    """One row of the ablation: what it changes, its course weights, the paper's column.

    Attributes:
        key: the row's name in the ledger (``"baseline_l1"``).
        label: what the table shows (``"EDSR baseline, L1"``).
        notebook: the notebook that adds the row (``"03"``).
        change: one line: what this row changes against the row before it.
        weights: scale -> course weights name (``data/course_weights``); empty for a row
            the course has no weights for (scored from the paper only), ``{s: "bicubic"}``
            for bicubic interpolation.
        paper: the nearest column of the paper's Table 2 (a key of
            :data:`edsr_lab.paper.TABLE2`), or None.
        paper_note: how that column relates to the row, when it is not the same model.
        notes: scale -> what else to know about the course's cell at that scale (e.g.
            MDSR's updates per branch), shown under the table.
    """

    key: str
    label: str
    notebook: str
    change: str
    weights: dict[int, str] = field(default_factory=dict)
    paper: str | None = None
    paper_note: str = ""
    notes: dict[int, str] = field(default_factory=dict)


#: The rows, in the order the course adds them.
ROWS: tuple[Row, ...] = (
    Row(
        "bicubic", "Bicubic", "02", "no learning: the bar every network has to clear",
        weights={2: "bicubic", 3: "bicubic", 4: "bicubic"}, paper="Bicubic",
    ),
    Row(
        "srresnet_l2", "SRResNet, L2", "02",
        "Ledig et al.'s network: blocks conv-BN-PReLU-conv-BN, 9x9 head and tail, L2 loss",
        weights={2: "course_srresnet_l2_x2"}, paper="SRResNet L2",
    ),
    Row(
        "baseline_bn", "EDSR baseline + BN, L1", "03",
        "EDSR's layout (3x3 head and tail, ReLU) with BN kept in every block, L1 loss",
        weights={2: "course_edsr_baseline_bn_x2"}, paper="SRResNet L1",
        paper_note="the paper's network with BN at L1 is SRResNet (also PReLU, 9x9 head/tail)",
    ),
    Row(
        "baseline_l1", "EDSR baseline, L1", "03",
        "the same without BN: the EDSR baseline (16 blocks, 64 features)",
        weights={2: "course_edsr_baseline_x2", 3: "course_edsr_baseline_x3",
                 4: "course_edsr_baseline_x4"},
        paper="EDSR baseline",
        notes={2: "more updates than the other x2 rows: the GPU run that made the course "
                  "weights gave its first model more of its time budget; the equal-step twin "
                  "course_edsr_baseline_l1_x2 (scripts/train_course_weights.py) is not among "
                  "the course weights yet"},
    ),
    Row(
        "baseline_l2", "EDSR baseline, L2", "05", "the EDSR baseline trained with L2, not L1",
        weights={2: "course_edsr_baseline_l2_x2"}, paper=None,
        paper_note="no such column: the paper's L1-vs-L2 pair is SRResNet L2 vs SRResNet L1",
    ),
    Row(
        "edsr", "EDSR (32x256, res_scale 0.1)", "06",
        "2x deeper, 4x wider, residual scaling 0.1: 43M parameters",
        weights={}, paper="EDSR",
        paper_note="the course has no EDSR-size weights (GPU days to train): paper only",
    ),
    Row(
        "mdsr_baseline", "MDSR baseline", "09",
        "one network for x2/x3/x4: per-scale pre-processing and upsamplers, shared body",
        weights={2: "course_mdsr_baseline", 3: "course_mdsr_baseline",
                 4: "course_mdsr_baseline"},
        paper="MDSR baseline", paper_note="the paper's 'baseline (multi-scale)' column",
        notes=dict.fromkeys(
            (2, 3, 4), "its updates are the shared body's; each scale's branch had about a third"
        ),
    ),
)  # fmt: skip

#: The notebooks of the course, in order (a ledger shown "up to" one of them).
NOTEBOOKS: tuple[str, ...] = tuple(f"{i:02d}" for i in range(11))


def _row(key: str) -> Row:
    for row in ROWS:
        if row.key == key:
            return row
    raise BadArgumentError(
        f"the ledger has no row {key!r}; its rows are {', '.join(r.key for r in ROWS)}"
    )


# ----------------------------------------------------------------------- held-out set


@functools.lru_cache(maxsize=len(SCALES))
def _heldout(scale: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    from edsr_lab.data import find_pairs, load_pairs, mini_div2k

    files = find_pairs(mini_div2k(), "valid", scale)
    hr, lr = load_pairs(files, scale=scale)
    return tuple((h.float() / 255, x.float() / 255) for h, x in zip(hr, lr, strict=True))


def _check_scale(scale: Any) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise BadArgumentError(f"scale must be one of {SCALES} (the paper's), got {scale!r}")
    return scale


def heldout_pairs(scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The course's held-out (HR, LR) pairs at ``scale``, whole images.

    Returns:
        ``[(hr, lr), ...]`` in the order of :data:`HELDOUT_IMAGES`: float32 tensors
        (3, H, W) and (3, H/scale, W/scale) with values in [0, 1] (8-bit levels / 255); the
        LR is the HR shrunk with MATLAB's bicubic, as in DIV2K. Loaded once per process and
        shared: copy a tensor before changing it in place.
    """
    return list(_heldout(_check_scale(scale)))


def score(
    model_or_bicubic: nn.Module | Callable[[torch.Tensor], torch.Tensor] | str,
    scale: int,
    *,
    compute_ssim: bool = True,
    label: str = "",
    device: str | torch.device | None = None,
) -> Any:
    """Score a model (or ``"bicubic"``) on the held-out images with the course's protocol.

    Args:
        model_or_bicubic: an SR model (an MDSR is run at ``scale``), any callable LR
            (3, h, w) -> SR (3, h*s, w*s) in [0, 1], or the string ``"bicubic"``.
        scale: 2, 3 or 4.
        compute_ssim: SSIM takes longer than PSNR; False records nan.
        label: a title for the result's table.
        device: where to run a model (default: where its weights are).

    Returns:
        an :class:`edsr_lab.evaluate.EvalResult` (``mean_psnr`` in dB, ``mean_ssim``,
        ``rows`` per image, named as :data:`HELDOUT_IMAGES`), DIV2K protocol.
    """
    from edsr_lab.evaluate import evaluate
    from edsr_lab.inference import bicubic_upscale

    scale = _check_scale(scale)
    fn = model_or_bicubic
    if isinstance(fn, str):
        if fn != "bicubic":
            raise BadArgumentError(
                f"score: the only name it knows is 'bicubic', got {fn!r}; pass a model instead"
            )
        fn = functools.partial(bicubic_upscale, scale=scale)
        label = label or "Bicubic"
    return evaluate(
        fn,
        heldout_pairs(scale),
        scale,
        protocol=PROTOCOL,
        names=list(HELDOUT_IMAGES),
        compute_ssim=compute_ssim,
        device=device,
        label=label,
    )


# ------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Cell:
    """One measured entry of the ledger: a row at one scale.

    Attributes:
        psnr: mean PSNR over the held-out images, dB (DIV2K protocol).
        ssim: mean SSIM, in [0, 1].
        per_image: image name -> (PSNR dB, SSIM).
        weights: the course weights scored (``"bicubic"`` for bicubic).
        steps: training updates of these weights (0 for bicubic).
        updates_behind: ``steps`` plus those of the weights they started from.
        init: the weights they started from, or None.
        loss: "l1" or "l2" (None for bicubic).
        device: where they were trained (from the manifest).
        sha256: the first 16 hex digits of the weight file's SHA-256.
    """

    psnr: float
    ssim: float
    per_image: dict[str, tuple[float, float]]
    weights: str
    steps: int = 0
    updates_behind: int = 0
    init: str | None = None
    loss: str | None = None
    device: str | None = None
    sha256: str | None = None


class Ledger:
    """The stored ablation table (from :func:`load`): cells, the paper's values, renderers."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.cells: dict[tuple[str, int], Cell] = {}
        for key, by_scale in data["cells"].items():
            for s, c in by_scale.items():
                per_image = {k: (float(v[0]), float(v[1])) for k, v in c["per_image"].items()}
                self.cells[key, int(s)] = Cell(**{**c, "per_image": per_image})

    def __repr__(self) -> str:
        images = ", ".join(self.data["images"])
        return f"Ledger({len(self.cells)} cells; {self.data['protocol']} protocol on {images})"

    @staticmethod
    def rows(upto: str | int | None = None) -> list[Row]:
        """The rows added by notebook ``upto`` and the ones before it (all: None)."""
        if upto is None:
            return list(ROWS)
        nb = f"{upto:02d}" if isinstance(upto, int) and not isinstance(upto, bool) else upto
        if nb not in NOTEBOOKS:
            raise BadArgumentError(
                f"upto must name a notebook, e.g. '03' (one of {NOTEBOOKS[0]}-{NOTEBOOKS[-1]}),"
                f" got {upto!r}"
            )
        return [r for r in ROWS if r.notebook <= nb]

    def cell(self, key: str, scale: int = 2) -> Cell | None:
        """The measured cell of row ``key`` at ``scale``, or None where the course has none."""
        row = _row(key)
        return self.cells.get((row.key, _check_scale(scale)))

    @staticmethod
    def paper(key: str, scale: int = 2) -> tuple[float, float | None] | None:
        """The paper's Table 2 (PSNR dB, SSIM or None) for the row's column, or None."""
        from edsr_lab.paper import TABLE2

        row = _row(key)
        if row.paper is None:
            return None
        return TABLE2[row.paper][_check_scale(scale)]

    def gain(self, key: str, scale: int = 2) -> float | None:
        """The row's PSNR minus bicubic's on the held-out images (dB), or None."""
        c, b = self.cell(key, scale), self.cell("bicubic", scale)
        return None if c is None or b is None else c.psnr - b.psnr

    def paper_gain(self, key: str, scale: int = 2) -> float | None:
        """The paper's PSNR for the row minus its bicubic PSNR (Table 2, dB), or None."""
        p, b = self.paper(key, scale), self.paper("bicubic", scale)
        return None if p is None or b is None else p[0] - b[0]

    def equal_steps(self, scale: int = 2) -> dict[str, int]:
        """Updates of each trained row at ``scale`` (``{row: updates_behind}``)."""
        return {
            r.key: c.updates_behind
            for r in ROWS
            if (c := self.cell(r.key, scale)) is not None and c.weights != "bicubic"
        }

    def table(
        self, upto: str | int | None = None, scale: int = 2, *, markdown: bool = False
    ) -> str:
        """The table as far as notebook ``upto`` (None: all rows), at ``scale``.

        Columns: the notebook adding the row, the row, the course's PSNR / SSIM on the
        held-out images and its gain over bicubic, the updates behind the weights, and the
        paper's Table 2 column beside it (PSNR / SSIM, gain over the paper's bicubic).
        Plain text (fixed-width) or, with ``markdown=True``, a Markdown table.
        """
        scale = _check_scale(scale)
        head = [
            "nb",
            "row",
            "course PSNR / SSIM",
            "vs bicubic",
            "updates",
            "paper PSNR / SSIM",
            "vs bicubic",
            "paper's column",
        ]
        lines = []
        notes = []
        for r in self.rows(upto):
            c, p = self.cell(r.key, scale), self.paper(r.key, scale)
            g, pg = self.gain(r.key, scale), self.paper_gain(r.key, scale)
            course = f"{c.psnr:.2f} / {c.ssim:.4f}" if c else "-"
            updates = "-" if c is None or c.weights == "bicubic" else f"{c.updates_behind:,}"
            if c is not None and c.init:
                updates += "*"
            paper = "-" if p is None else f"{p[0]:.2f} / " + (f"{p[1]:.4f}" if p[1] else "-")
            lines.append(
                [
                    r.notebook,
                    r.label,
                    course,
                    "" if g is None or r.key == "bicubic" else f"{g:+.2f}",
                    updates,
                    paper,
                    "" if pg is None or r.key == "bicubic" else f"{pg:+.2f}",
                    r.paper or "-",
                ]
            )
            if scale in r.notes and c is not None:
                notes.append(f"{r.label}: {r.notes[scale]}")
            if r.paper_note:
                notes.append(f"{r.label} (paper): {r.paper_note}")
            if c is not None and c.init:
                notes.append(
                    f"{r.label} x{scale}*: {c.steps:,} updates started from "
                    f"{c.init} ({c.updates_behind - c.steps:,} updates)"
                )
        shown = {r.key for r in self.rows(upto)}
        trained = {k: v for k, v in self.equal_steps(scale).items() if k in shown}
        if len(set(trained.values())) > 1:
            notes.append(
                "UNEQUAL updates: "
                + ", ".join(f"{_row(k).label} {v:,}" for k, v in trained.items())
            )
        images = " + ".join(self.data["images"])
        title = (
            f"x{scale}, held-out {images} (whole images), DIV2K protocol: RGB, "
            f"{6 + scale} border pixels cropped, 8-bit outputs. Paper: Lim et al. 2017, "
            "Table 2 (DIV2K 0801-0810, 3x10^5 updates)."
        )
        if markdown:
            out = [
                title,
                "",
                "| " + " | ".join(head) + " |",
                "|" + "|".join("---" for _ in head) + "|",
            ]
            out += ["| " + " | ".join(x.replace("|", "/") for x in line) + " |" for line in lines]
            out += [""] + [f"- {n}" for n in notes]
            return "\n".join(out).rstrip() + "\n"
        widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
        right = {2, 3, 4, 5, 6}

        def fmt(cols: Sequence[str]) -> str:
            return "  ".join(
                x.rjust(w) if i in right else x.ljust(w)
                for i, (x, w) in enumerate(zip(cols, widths, strict=True))
            ).rstrip()

        out = [title, fmt(head), *(fmt(line) for line in lines)]
        out += [textwrap.fill(n, 100, initial_indent="  ", subsequent_indent="    ") for n in notes]
        return "\n".join(out)

    def plot(self, upto: str | int | None = None, scale: int = 2) -> Any:
        """Bars: each row's PSNR gain over bicubic (dB), the course's beside the paper's.

        Returns an :class:`edsr_lab.viz.Figure` (Jupyter shows it as the last value of a
        cell). A row without a value shows "none" and no bar.
        """
        from edsr_lab.viz import Figure

        rows = [r for r in self.rows(upto) if r.key != "bicubic"]
        fig = Figure(figsize=(1.6 + 1.4 * len(rows), 3.4))
        ax = fig.add_subplot(1, 1, 1)
        xs = list(range(len(rows)))
        for offset, label, colour, values in (
            (-0.2, "course, held-out images", "C0", [self.gain(r.key, scale) for r in rows]),
            (0.2, "paper, Table 2 column", "C7", [self.paper_gain(r.key, scale) for r in rows]),
        ):
            ax.bar(
                [x + offset for x in xs], [v or 0 for v in values], 0.4, label=label, color=colour
            )
            for x, v in zip(xs, values, strict=True):
                ax.text(
                    x + offset,
                    (v or 0) + 0.03,
                    "none" if v is None else f"{v:+.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(xs, [r.label.replace(", ", "\n", 1) for r in rows], fontsize=7)
        ax.set_ylabel("PSNR gain over bicubic (dB)")
        ax.set_title(f"The ablation so far, x{scale}, DIV2K protocol", fontsize=9)
        ax.axhline(0, color="k", lw=0.6)
        top = max(
            [
                v
                for r in rows
                for v in (self.gain(r.key, scale), self.paper_gain(r.key, scale))
                if v is not None
            ]
            + [0.5]
        )
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.3 * top)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        return fig


# ------------------------------------------------------------------ compute and store


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _updates_behind(name: str, infos: dict[str, Any]) -> int:
    e = infos[name].info
    return int(e["steps"]) + (_updates_behind(e["init"], infos) if e.get("init") else 0)


def compute(rows: Sequence[str] | None = None, folder: str | Path | None = None) -> dict[str, Any]:
    """Score the course weights of ``rows`` (default: all) again; the ledger as a dict.

    Args:
        rows: row keys to compute (a test recomputes one row at a time).
        folder: the course weights folder (default: ``edsr_lab.weights.course_dir()``).

    Raises:
        CheckpointError: a row's weights are not in the manifest, or a file does not match
            the SHA-256 the manifest records.
    """
    from edsr_lab.models import load_checkpoint
    from edsr_lab.weights import course_dir, course_weights

    folder = Path(folder) if folder is not None else course_dir()
    infos = course_weights(folder)
    wanted = [_row(k) for k in rows] if rows is not None else list(ROWS)
    cells: dict[str, dict[str, Any]] = {}
    for row in wanted:
        for s, name in row.weights.items():
            if name == "bicubic":
                result = score("bicubic", s)
                extra: dict[str, Any] = {"weights": "bicubic"}
            else:
                if name not in infos:
                    raise CheckpointError(
                        f"the ledger row {row.key!r} needs the course weights {name!r}, which "
                        f"{str(folder / 'manifest.json')!r} does not list; restore them with "
                        "git checkout -- data/course_weights"
                    )
                info = infos[name]
                digest = _sha256(Path(info.file))
                if digest != info.sha256:
                    raise CheckpointError(
                        f"{info.file!r} does not match the SHA-256 in its manifest; restore "
                        "it with git checkout -- data/course_weights"
                    )
                model = load_checkpoint(info.file).float().eval()
                result = score(model, s)
                e = info.info
                extra = {
                    "weights": name,
                    "steps": int(e["steps"]),
                    "updates_behind": _updates_behind(name, infos),
                    "init": e.get("init"),
                    "loss": e.get("loss"),
                    "device": e.get("device"),
                    "sha256": digest[:16],
                }
            cells.setdefault(row.key, {})[str(s)] = {
                "psnr": round(result.mean_psnr, 4),
                "ssim": round(result.mean_ssim, 5),
                "per_image": {r.name: [round(r.psnr, 4), round(r.ssim, 5)] for r in result.rows},
                **extra,
            }
    return {
        "format": FORMAT,
        "description": "The course's ablation table: the course weights scored on the "
        "held-out images; written by edsr_lab.ledger.write(), checked by tests/test_ledger.py.",
        "protocol": PROTOCOL,
        "images": list(HELDOUT_IMAGES),
        "torch": torch.__version__,
        "cells": cells,
    }


def write(path: str | Path = LEDGER_PATH, folder: str | Path | None = None) -> Path:
    """Compute the whole ledger and store it as JSON at ``path`` (atomically)."""
    from edsr_lab.files import atomic_write

    data = compute(folder=folder)
    text = json.dumps(data, indent=1) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def load(path: str | Path = LEDGER_PATH) -> Ledger:
    """The stored ledger (``edsr_lab/ledger.json``)."""
    path = Path(path)
    fix = "rebuild it with: python -m edsr_lab.ledger --write"
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(
                f"the course ledger {str(path)!r} has format {got!r}, expected {FORMAT}; {fix}"
            )
        return Ledger(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(
            f"the course ledger {str(path)!r} cannot be read ({type(err).__name__}: {err}); {fix}"
        ) from err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m edsr_lab.ledger",
        description="Show the course's ablation table, or recompute and store it.",
    )
    p.add_argument("--write", action="store_true", help=f"recompute and store {LEDGER_PATH.name}")
    p.add_argument("--upto", default=None, help="show the rows up to this notebook, e.g. 05")
    p.add_argument("--scale", type=int, default=2, choices=SCALES)
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args(argv)
    if args.write:
        print(f"wrote {write()}")
    print(load().table(args.upto, args.scale, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
