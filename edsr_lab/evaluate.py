"""Scoring super-resolution the way the EDSR paper does, and reporting it beside its tables.

Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution" (CVPR
Workshops 2017) report PSNR/SSIM of outputs that are clamped and rounded to 8 bits, on the
Y channel with ``scale`` border pixels cropped (benchmarks, Table 3) or on RGB with
``6 + scale`` cropped (DIV2K validation, Table 2); see :mod:`edsr_lab.metrics`.

- :func:`evaluate` scores a model (or any function LR -> SR) on (HR, LR) pairs and returns
  an :class:`EvalResult` with per-image rows, means and a printable table.
- :func:`evaluate_sets` scores whole data sets (Set5 ... DIV2K valid, or your folders)
  beside bicubic and the paper's values: an :class:`EvalReport`.

Running the model (tiles, self-ensemble, scale, the bicubic baseline) is
:mod:`edsr_lab.inference`.
Tensors are float32 (C, H, W) or (N, C, H, W) with values in [0, 1].
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from edsr_lab.data.benchmarks import eval_pairs, load_eval_pair
from edsr_lab.data.patches import center_crop_pair
from edsr_lab.errors import (
    BadArgumentError,
    BadArgumentTypeError,
    DatasetExistsError,
    SizeMismatchError,
)
from edsr_lab.files import atomic_write
from edsr_lab.inference import (
    bicubic_upscale,
    check_tile,
    input_channels,
    super_resolve,
)
from edsr_lab.io import load_image
from edsr_lab.metrics import PROTOCOLS, psnr, quantize, ssim
from edsr_lab.paper import DATASETS, paper_model_name, paper_value
from edsr_lab.validate import check_scale

__all__ = [
    "EvalReport",
    "EvalResult",
    "EvalRow",
    "SetResult",
    "evaluate",
    "evaluate_sets",
    "write_csv_rows",
]


# ----------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------


@dataclass
class EvalRow:
    """Scores of one image (PSNR in dB, SSIM in [0, 1]; nan if not computed)."""

    name: str
    psnr: float
    ssim: float


@dataclass
class EvalResult:
    """Per-image scores and their means (means of per-image values, as the paper does)."""

    rows: list[EvalRow] = field(default_factory=list)
    scale: int = 0
    protocol: str = "benchmark"
    label: str = ""

    @property
    def mean_psnr(self) -> float:
        return _mean([r.psnr for r in self.rows])

    @property
    def mean_ssim(self) -> float:
        return _mean([r.ssim for r in self.rows])

    @property
    def psnrs(self) -> list[float]:
        return [r.psnr for r in self.rows]

    def table(self, *, digits: int = 2) -> str:
        """A plain-text table: one row per image, then the mean."""
        width = max([len("mean")] + [len(r.name) for r in self.rows])
        title = f"{self.label + ' ' if self.label else ''}x{self.scale}, {self.protocol} protocol"
        lines = [title, f"{'image':<{width}}  {'PSNR (dB)':>9}  {'SSIM':>6}"]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {r.psnr:>9.{digits}f}  {r.ssim:>6.4f}")
        lines.append(f"{'mean':<{width}}  {self.mean_psnr:>9.{digits}f}  {self.mean_ssim:>6.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "protocol": self.protocol,
            "label": self.label,
            "rows": [{"name": r.name, "psnr": r.psnr, "ssim": r.ssim} for r in self.rows],
            "mean_psnr": self.mean_psnr,
            "mean_ssim": self.mean_ssim,
        }

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"EvalResult({len(self.rows)} images, x{self.scale}, {self.protocol}: "
            f"PSNR {self.mean_psnr:.2f} dB, SSIM {self.mean_ssim:.4f})"
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _as_image(item: Any, what: str) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        if item.dim() == 4 and item.shape[0] == 1:
            item = item[0]
        if item.dim() != 3:
            raise SizeMismatchError(f"{what}: expected a (C, H, W) tensor, got {tuple(item.shape)}")
        return item.float()
    if isinstance(item, (str, Path)):
        return load_image(item)
    raise BadArgumentTypeError(
        f"{what}: expected a tensor (C, H, W) or an image path, got {type(item)}"
    )


def _normalise_pairs(data: Any, names: Sequence[str] | None) -> list[tuple[str, Any, Any]]:
    """-> [(name, hr, lr)] from the accepted input forms (see :func:`evaluate`)."""
    if isinstance(data, Mapping):
        items = [(str(k), *v) for k, v in data.items()]
    elif (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in data)
    ):
        hr, lr = data
        if hr.shape[0] != lr.shape[0]:
            raise SizeMismatchError(
                f"evaluate: HR batch has {hr.shape[0]} images but LR batch {lr.shape[0]}"
            )
        items = [(f"img{i}", hr[i], lr[i]) for i in range(hr.shape[0])]
    elif isinstance(data, Iterable):
        items = []
        for i, pair in enumerate(data):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise BadArgumentTypeError(
                    f"evaluate: item {i} is {type(pair).__name__}; expected an (hr, lr) pair "
                    "of tensors or paths (as returned by edsr_lab.data.div2k.find_pairs)"
                )
            hr, lr = pair
            name = Path(hr).stem if isinstance(hr, (str, Path)) else f"img{i}"
            items.append((name, hr, lr))
    else:
        raise BadArgumentTypeError(f"evaluate: cannot read pairs from {type(data).__name__}")
    if names is not None:
        names = list(names)
        if len(names) != len(items):
            raise BadArgumentError(f"evaluate: {len(names)} names for {len(items)} images")
        items = [(n, hr, lr) for n, (_, hr, lr) in zip(names, items, strict=True)]
    return items


def evaluate(
    model_or_fn: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    pairs: Any,
    scale: int,
    *,
    protocol: str = "benchmark",
    self_ensemble: bool = False,
    tile: int | None = None,
    tile_overlap: int = 16,
    names: Sequence[str] | None = None,
    compute_ssim: bool = True,
    device: str | torch.device | None = None,
    amp: bool = False,
    label: str = "",
) -> EvalResult:
    """Score super-resolution on (HR, LR) image pairs with the paper's protocol.

    Args:
        model_or_fn: an ``nn.Module`` (run through :func:`super_resolve`) or any callable
            LR (C, h, w) -> SR (C, h*s, w*s), e.g. ``lambda lr: bicubic_upscale(lr, 2)``,
            so baselines are scored by exactly the same code.
        pairs: a list of ``(hr, lr)`` pairs of tensors (C, H, W) in [0, 1] or image paths
            (e.g. ``edsr_lab.data.div2k.find_pairs(...)``); or a dict ``{name: (hr, lr)}``;
            or a tuple of two batches ``(hr (N,C,H,W), lr (N,C,h,w))``.
        scale: the upscaling factor (also sets the border crop of the protocol).
        protocol: "benchmark" (Y channel, crop ``scale``; Table 3), "div2k" (RGB, crop
            ``6 + scale``; Table 2) or "rgb"; see :func:`edsr_lab.metrics.psnr`.
        self_ensemble, tile, tile_overlap, device, amp: passed to :func:`super_resolve`
            (models only).
        names: image names for the table (default: file stems, or img0, img1, ...).
        compute_ssim: SSIM is slower than PSNR; False records nan.
        label: shown in the table title, e.g. "EDSR baseline".

    The SR output is clamped and rounded to 8-bit levels before scoring, as in the paper.
    HR must be exactly ``scale`` times the LR size: crop it with
    ``edsr_lab.resize.modcrop(hr, scale)`` first (the paper's benchmarks are modcropped).
    """
    is_model = isinstance(model_or_fn, nn.Module)
    if not is_model and not callable(model_or_fn):
        raise BadArgumentTypeError(
            "evaluate: model_or_fn must be an nn.Module or a callable lr -> sr"
        )
    # Before any image is read or run: a mistake here would surface after the first SR.
    if protocol not in PROTOCOLS:
        raise BadArgumentError(
            f"evaluate: unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}"
        )
    scale = check_scale(scale)
    tile, tile_overlap = check_tile(tile, tile_overlap)
    result = EvalResult(scale=scale, protocol=protocol, label=label)
    for name, hr_item, lr_item in _normalise_pairs(pairs, names):
        hr = _as_image(hr_item, f"evaluate: HR of {name!r}")
        lr = _as_image(lr_item, f"evaluate: LR of {name!r}")
        if is_model:
            sr = super_resolve(
                model_or_fn,
                lr,
                scale=scale,
                self_ensemble=self_ensemble,
                tile=tile,
                tile_overlap=tile_overlap,
                device=device,
                amp=amp,
            )
        else:
            with torch.inference_mode():
                sr = model_or_fn(lr)
            if not isinstance(sr, torch.Tensor):
                raise BadArgumentTypeError(
                    f"evaluate: the function returned {type(sr).__name__} for {name!r}; "
                    "expected a tensor (C, H, W)"
                )
            sr = sr.clone()
        if sr.dim() == 4 and sr.shape[0] == 1:
            sr = sr[0]
        sr = sr.to(hr.device)
        if tuple(sr.shape) != tuple(hr.shape):
            raise SizeMismatchError(
                f"evaluate: SR of {name!r} is {tuple(sr.shape)} but its HR is "
                f"{tuple(hr.shape)} (LR {tuple(lr.shape)}, scale {scale}); crop the HR to a "
                f"multiple of the scale with edsr_lab.resize.modcrop(hr, {scale}) and make "
                "the LR from that"
            )
        sr = quantize(sr)  # the paper scores 8-bit outputs
        p = float(psnr(sr, hr, scale, protocol=protocol))
        s = float(ssim(sr, hr, scale, protocol=protocol)) if compute_ssim else math.nan
        result.rows.append(EvalRow(name=name, psnr=p, ssim=s))
    if not result.rows:
        raise BadArgumentError("evaluate: no image pairs were given")
    return result


# ----------------------------------------------------------------------------------------
# evaluate_sets: the paper's tables
# ----------------------------------------------------------------------------------------


@dataclass
class SetResult:
    """One data set's scores: the model's, bicubic's, and the paper's for both."""

    dataset: str
    name: str
    model: EvalResult
    bicubic: EvalResult | None
    paper: tuple[float, float | None, str] | None
    paper_bicubic: tuple[float, float | None, str] | None


@dataclass
class EvalReport:
    """What :func:`evaluate_sets` measured, printable as a table beside the paper's numbers."""

    label: str
    paper_model: str | None
    scale: int
    self_ensemble: bool
    sets: list[SetResult] = field(default_factory=list)

    def table(self) -> str:
        """Mean PSNR (dB) / SSIM per set: model, bicubic, and the paper's values for both."""

        def pair(p: float | None, s: float | None) -> str:
            if p is None or (isinstance(p, float) and math.isnan(p)):
                return "-"
            return f"{p:.2f}" + (f"/{s:.4f}" if s is not None and not math.isnan(s) else "")

        head = (
            f"{self.label} x{self.scale}"
            + (" with self-ensemble" if self.self_ensemble else "")
            + (f" (paper row: {self.paper_model})" if self.paper_model else " (no paper row)")
        )
        cols = ["data set", "images", "protocol", "model", "bicubic", "paper", "paper bicubic"]
        rows = []
        sources = set()
        for r in self.sets:
            b = r.bicubic
            rows.append(
                [
                    r.name,
                    str(len(r.model.rows)),
                    r.model.protocol,
                    pair(r.model.mean_psnr, r.model.mean_ssim),
                    pair(b.mean_psnr, b.mean_ssim) if b else "-",
                    pair(*r.paper[:2]) if r.paper else "-",
                    pair(*r.paper_bicubic[:2]) if r.paper_bicubic else "-",
                ]
            )
            sources |= {v[2] for v in (r.paper, r.paper_bicubic) if v}
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
        lines = [head, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
        lines.append(
            "PSNR (dB)/SSIM, means over images."
            + (f" Paper values: {'; '.join(sorted(sources))}." if sources else "")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def csv_rows(self) -> list[dict[str, Any]]:
        """One dict per image: data set, image, scale, protocol, PSNR/SSIM, bicubic's."""
        out = []
        for r in self.sets:
            bic = r.bicubic.rows if r.bicubic else [None] * len(r.model.rows)
            for m, b in zip(r.model.rows, bic, strict=True):
                out.append(
                    {
                        "dataset": r.dataset,
                        "image": m.name,
                        "scale": self.scale,
                        "protocol": r.model.protocol,
                        "psnr": m.psnr,
                        "ssim": m.ssim,
                        "bicubic_psnr": b.psnr if b else math.nan,
                        "bicubic_ssim": b.ssim if b else math.nan,
                    }
                )
        return out

    def write_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`csv_rows` to ``path`` (temporary file + rename, so never half-written).

        An existing file is kept (DatasetExistsError) unless ``overwrite``.
        """
        return write_csv_rows(
            self.csv_rows(), path, overwrite=overwrite, how_to_overwrite="pass overwrite=True"
        )


def write_csv_rows(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    overwrite: bool = False,
    how_to_overwrite: str = "pass overwrite=True",
) -> Path:
    """Write dicts (e.g. :meth:`EvalReport.csv_rows`) as one CSV, never half-written.

    Temporary file + rename (:func:`edsr_lab.files.atomic_write`). The columns are the
    first row's keys. An existing file is kept (DatasetExistsError, whose message ends
    "<how_to_overwrite> to replace it") unless ``overwrite``.
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise DatasetExistsError(f"{str(path)!r} exists; {how_to_overwrite} to replace it")

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["dataset"])
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)


def paper_model_of(model: nn.Module, self_ensemble: bool = False) -> str | None:
    """The paper's row for a model: its weights registry entry's, else from its config.

    With ``self_ensemble`` the "+" row (EDSR+, MDSR+); the baselines have none (None).
    """
    info = getattr(model, "weights_info", None)
    cfg = getattr(model, "config", None)
    if info is not None:
        name = info.paper
    elif isinstance(cfg, Mapping):
        arch = type(model).__name__
        name = paper_model_name(arch, int(cfg.get("n_resblocks", 0)), int(cfg.get("n_feats", 0)))
    else:
        name = None
    if name is None or not self_ensemble:
        return name
    return None if "baseline" in name else name + "+"


def _paper_columns(
    paper_model: str | None, scale: int, key: str, protocol: str, *, whole: bool
) -> tuple[Any, Any]:
    """The paper's (model, bicubic) values for a set, or None where the scores are not
    comparable with its tables (another protocol, a crop, a subset, not one of its sets)."""
    if not (whole and key in DATASETS and (protocol == "div2k") == (key == "div2k-valid")):
        return None, None
    model = paper_value(paper_model, scale, key) if paper_model else None
    return model, paper_value("Bicubic", scale, key)


def evaluate_sets(
    model: nn.Module,
    data: Sequence[str | Path],
    scale: int,
    *,
    protocol: str | None = None,
    self_ensemble: bool = False,
    tile: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    root: str | Path | None = None,
    limit: int | None = None,
    crop: int | None = None,
    bicubic: bool = True,
    compute_ssim: bool = True,
    label: str = "",
    progress: bool = True,
) -> EvalReport:
    """Score a model on whole data sets, beside bicubic and the paper's Table 2/3 values.

    Args:
        model: an SR model (EDSR, MDSR with ``scale``, a loaded checkpoint or
            :func:`edsr_lab.weights.load_pretrained` model).
        data: keys ``"set5"``, ``"set14"``, ``"b100"``, ``"urban100"``, ``"div2k-valid"``
            and/or folders of HR images (see :func:`edsr_lab.data.benchmarks.eval_pairs`).
        scale: the upscaling factor.
        protocol: ``"benchmark"`` (Y channel, crop ``scale``; Table 3) or ``"div2k"`` (RGB,
            crop ``6 + scale``; Table 2). Default: ``"div2k"`` for div2k-valid, else
            ``"benchmark"``. The paper's value is shown only where the protocol is the
            one its table used.
        self_ensemble, tile, device, amp: passed to :func:`super_resolve`.
        root: where the data lives (default ``config.data_dir()``).
        limit: score only the first ``limit`` images of each set (quick checks).
        crop: score only the central ``crop`` x ``crop`` LR pixels of each image (and the HR
            region they come from; :func:`edsr_lab.data.center_crop_pair`), for quick
            checks on a CPU. Such numbers are not comparable with the paper's, so the paper
            columns are left empty.
        bicubic: also score the bicubic baseline on the same images.
        label: the model's name in the table (default: the paper row, else the class name).
        progress: a tqdm bar over images (stderr).

    Returns:
        An :class:`EvalReport`; ``print(report)`` shows the table, ``report.write_csv(path)``
        the per-image scores.
    """
    if protocol not in (None, "benchmark", "div2k"):
        raise BadArgumentError(f"protocol must be 'benchmark' or 'div2k', got {protocol!r}")
    scale = check_scale(scale)
    tile, _ = check_tile(tile)
    paper_model = paper_model_of(model, self_ensemble)
    info = getattr(model, "weights_info", None)
    label = label or (info.name if info is not None else paper_model or type(model).__name__)
    report = EvalReport(label, paper_model, int(scale), self_ensemble)
    plans = []
    for d in data:
        items = eval_pairs(d, int(scale), root=root)
        plans.append((str(d), items[:limit] if limit else items))
    total = sum(len(items) for _, items in plans)
    bar = None
    if progress:
        bar = tqdm(total=total, desc="evaluate", unit="img")
    channels = input_channels(model) or 3
    try:
        for d, items in plans:
            key = d.lower()
            proto = protocol or ("div2k" if key == "div2k-valid" else "benchmark")
            name = DATASETS.get(key, Path(d).name)
            res = EvalResult(scale=int(scale), protocol=proto, label=label)
            bic = EvalResult(scale=int(scale), protocol=proto, label="Bicubic") if bicubic else None
            for img, hr_path, lr_path in items:
                hr, lr = load_eval_pair(hr_path, lr_path, int(scale), channels)
                if crop is not None:
                    hr, lr = center_crop_pair(hr, lr, crop, int(scale))
                one = {img: (hr, lr)}
                res.rows += evaluate(
                    model, one, scale, protocol=proto, self_ensemble=self_ensemble, tile=tile,
                    device=device, amp=amp, compute_ssim=compute_ssim,
                ).rows  # fmt: skip
                if bic is not None:
                    bic.rows += evaluate(
                        lambda x: bicubic_upscale(x, scale), one, scale, protocol=proto,
                        compute_ssim=compute_ssim,
                    ).rows  # fmt: skip
                if bar is not None:
                    bar.update(1)
            paper, paper_bic = _paper_columns(
                paper_model, int(scale), key, proto, whole=crop is None and not limit
            )
            dataset = key if key in DATASETS else str(d)
            report.sets.append(SetResult(dataset, name, res, bic, paper, paper_bic))
    finally:
        if bar is not None:
            bar.close()
    return report
