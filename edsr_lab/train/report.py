"""What a run measures and writes: validation PSNR, the summary, history.csv, curves.png.

Validation uses the benchmark protocol (Y channel, ``scale`` border pixels cropped, output
rounded to 8 bits), per scale, next to the same images upscaled with MATLAB bicubic; a
folder of medical volumes is validated on the data range instead (grey, unrounded:
:data:`DATA_RANGE_PROTOCOL`).
Every file is written atomically (:func:`edsr_lab.files.atomic_write`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from edsr_lab.evaluate import evaluate
from edsr_lab.files import atomic_write
from edsr_lab.inference import bicubic_upscale
from edsr_lab.models.common import unwrap_model
from edsr_lab.train.log import History
from edsr_lab.viz import plot_history

__all__ = [
    "DATA_RANGE_PROTOCOL",
    "PROTOCOL",
    "add_gains",
    "bicubic_psnr",
    "protocol_of",
    "report_lines",
    "validate",
    "write_curves",
    "write_history_csv",
    "write_json",
]

#: How the summary names its validation protocol.
PROTOCOL = "benchmark (Y channel, scale-pixel border, 8-bit)"

#: ... and for a folder of medical volumes (:mod:`edsr_lab.data.medical`): grey slices, each
#: volume's range as the peak, not rounded (a mean over the validation slices).
DATA_RANGE_PROTOCOL = "data range (grey, each volume's range as peak, scale-pixel border, float)"


def protocol_of(data: Any) -> str:
    """The validation protocol of a run's data: :data:`DATA_RANGE_PROTOCOL` for medical
    volumes, else :data:`PROTOCOL`."""
    return DATA_RANGE_PROTOCOL if getattr(data, "kind", "") == "medical" else PROTOCOL


def _data_range_psnr(sr_fn: Any, pairs: list, s: int) -> float:
    """Mean PSNR over (name, hr, lr) pairs in [0, 1] (each volume's map, so the peak 1 is
    the volume's range), on grey (luma of the RGB output, whose three channels the grey
    slice filled alike), ``s`` border pixels cropped, outputs clipped to the range."""
    from edsr_lab.clinical import psnr_data_range
    from edsr_lab.inference import LUMA

    weights = torch.tensor(LUMA).view(3, 1, 1)
    scores = []
    for _, hr, lr in pairs:
        out = sr_fn(lr).float().cpu().clamp(0.0, 1.0)
        grey = (out * weights).sum(0) if out.shape[0] == 3 else out[0]
        target = (hr.float().cpu() * weights).sum(0) if hr.shape[0] == 3 else hr[0]
        scores.append(psnr_data_range(grey, target, value_range=(0.0, 1.0), crop=s))
    return sum(scores) / len(scores)


def validate(model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
    """Validation PSNR of ``model`` on ``data.valid`` (a :class:`~edsr_lab.data.sources.TrainData`),
    benchmark protocol, per scale and their mean.

    Returns ``{"psnr_x2": ..., "psnr_x3": ..., "psnr": mean over scales}`` in dB.
    """
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    try:
        for s, pairs in data.valid.items():
            if protocol_of(data) == DATA_RANGE_PROTOCOL:
                from edsr_lab.inference import super_resolve

                def run(lr, s=s):
                    return super_resolve(
                        model, lr, scale=s, device=device
                    )  # clipped, as evaluate's map

                out[f"psnr_x{s}"] = _data_range_psnr(run, pairs, s)
                continue
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
    out = {}
    for s, pairs in data.valid.items():
        if protocol_of(data) == DATA_RANGE_PROTOCOL:
            out[f"psnr_x{s}"] = _data_range_psnr(lambda lr, s=s: bicubic_upscale(lr, s), pairs, s)
            continue
        res = evaluate(
            lambda lr, s=s: bicubic_upscale(lr, s),
            [(h, x) for _, h, x in pairs],
            s,
            compute_ssim=False,
        )
        out[f"psnr_x{s}"] = res.mean_psnr
    out["psnr"] = sum(out.values()) / len(out)
    return out


def add_gains(summary: dict[str, Any]) -> None:
    """``gain_over_bicubic_db`` (and ``gain_over_init_db``): final minus reference, in dB."""
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
        gains = [_versus(final[k] - summary["bicubic"][k], "bicubic")]
        if "init" in summary:
            gains.insert(0, _versus(final[k] - summary["init"][k], "the start"))
        lines.append(" | ".join(parts) + f" ({', '.join(gains)})")
    if "best" in summary:
        lines.append(
            f"  best mean {summary['best']['psnr']:.2f} dB at step "
            f"{summary['best']['step']} (best.pt)"
        )
    return lines


def _versus(gain_db: float, reference: str) -> str:
    """``-5.0, "bicubic"`` -> ``"5.00 dB below bicubic"``."""
    return f"{abs(gain_db):.2f} dB {'below' if gain_db < 0 else 'above'} {reference}"


def write_history_csv(history: History, path: Path) -> None:
    """One row per step: step, loss, lr, time, grad_norm, then each validation metric."""
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


def write_curves(history: History, path: Path, bicubic: dict[str, float] | None) -> None:
    """curves.png: training loss and validation PSNR (with the bicubic line)."""
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


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, atomically."""

    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")

    atomic_write(path, write)
