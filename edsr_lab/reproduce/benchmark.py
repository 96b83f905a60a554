"""Table 3 of Lim et al. 2017 with the official weights: ``python -m edsr_lab reproduce table3``.

The authors' released models (EDSR x2/x3/x4, MDSR, and the EDSR and MDSR baselines;
:data:`edsr_lab.weights.OFFICIAL`) are scored with :func:`edsr_lab.evaluate.evaluate_sets`
on Set5, Set14, B100 and Urban100 with the benchmark protocol (Y channel, ``scale``
border pixels cropped, 8-bit outputs), EDSR and MDSR also with the geometric
self-ensemble (EDSR+, MDSR+), and ``out/table3.md`` gets the table beside the paper's.
What is missing is downloaded first: the weights into ``data/cache/weights``
(:func:`edsr_lab.weights.download_weights`, SHA-256 checked) and the benchmark sets into
``data/benchmark`` (:func:`edsr_lab.data.benchmarks.download_benchmarks`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edsr_lab import download
from edsr_lab.config import resolve_device
from edsr_lab.data import benchmarks
from edsr_lab.errors import BadArgumentError, DatasetError
from edsr_lab.paper import DATASETS, SOURCE, TABLE3_PENDING, paper_value
from edsr_lab.reproduce.report import (
    CITATION,
    Provenance,
    check_replaceable,
    device_name,
    pair,
    shown,
    write_markdown,
)
from edsr_lab.reproduce.rows import SETS, TABLE3_MODELS, Table3Model

__all__ = ["Table3Result", "Table3Row", "table3"]


@dataclass
class Table3Row:
    """One row of the table: a model (or bicubic) at a scale, per data set (PSNR, SSIM)."""

    label: str
    scale: int
    weights: str | None = None
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)

    def paper(self, dataset: str) -> tuple[float, float | None] | None:
        value = paper_value(self.label, self.scale, dataset)
        return value[:2] if value else None

    def paper_cell(self, dataset: str) -> str:
        """``[38.11/0.9601]``; ``[?]`` for a row of the paper not transcribed yet
        (``paper.TABLE3_PENDING``); ``[-]`` where the paper has no such row."""
        value = self.paper(dataset)
        if value is not None:
            return f"[{pair(*value)}]"
        return "[?]" if self.scale in TABLE3_PENDING.get(self.label, ()) else "[-]"


@dataclass
class Table3Result:
    """What :func:`table3` did: the rows (table order), the markdown file, the weights used
    (registry name -> (file, full SHA-256)) and the image count of each set."""

    rows: list[Table3Row]
    path: Path
    provenance: Provenance
    weights: dict[str, tuple[Path, str]] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    downloaded_benchmarks: bool = False


def _check_args(scales: Sequence[int], models: Sequence[str], sets: Sequence[str]) -> None:
    known = [m.key for m in TABLE3_MODELS]
    for what, asked, choices in (("model", models, known), ("data set", sets, SETS)):
        bad = [x for x in asked if x not in choices]
        if bad or not asked:
            raise BadArgumentError(
                f"{what} {bad[0] if bad else 'none'!r}: choose from {', '.join(choices)}"
            )
    wrong = [s for s in scales if s not in (2, 3, 4)]
    if wrong or not scales:
        raise BadArgumentError(
            f"scale {wrong[0] if wrong else 'none'}: the official weights are x2, x3 and x4; "
            "pass --scale with some of 2 3 4"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ensure_sets(sets: Sequence[str], root, url: str, progress: bool) -> bool:
    """Download the benchmark archive when a set asked for is missing; True if it did."""
    missing = []
    for key in sets:
        try:
            benchmarks.eval_pairs(key, 2, root=root)
        except DatasetError:
            missing.append(DATASETS[key])
    if not missing:
        return False
    where = shown(benchmarks.benchmark_dir(root))
    print(
        f"table3: {', '.join(missing)} not in {where}: downloading the benchmark sets "
        f"(about 250 MB) from {url}",
        flush=True,
    )
    benchmarks.download_benchmarks(root, url=url, progress=progress)
    for key in sets:  # the archive must hold what was missing (a clear error otherwise)
        benchmarks.eval_pairs(key, 2, root=root)
    return True


def _plan(scales, models) -> list[tuple[int, Table3Model]]:
    chosen = [m for m in TABLE3_MODELS if m.key in models]
    return [(s, m) for s in sorted(set(scales)) for m in chosen]


def _empty_rows(plan: list[tuple[int, Table3Model]], self_ensemble: bool) -> list[Table3Row]:
    rows: list[Table3Row] = []
    for s in sorted({s for s, _ in plan}):
        rows.append(Table3Row("Bicubic", s))
        models = [m for t, m in plan if t == s]
        for m in models:
            rows.append(Table3Row(m.paper, s, m.weights_name(s)))
        if self_ensemble:
            rows += [Table3Row(m.plus, s, m.weights_name(s)) for m in models if m.plus]
    return rows


def _row(rows: list[Table3Row], label: str, scale: int) -> Table3Row:
    return next(r for r in rows if r.label == label and r.scale == scale)


def _markdown(rows: list[Table3Row], sets: Sequence[str], prov: Provenance) -> list[str]:
    names = [DATASETS[k] for k in sets]
    lines = [
        "# Table 3 of Lim et al. 2017, reproduced with the official weights",
        "",
        "Benchmark protocol, as the paper's Table 3: PSNR (dB) / SSIM on the Y channel "
        "(ITU-R BT.601 as MATLAB's `rgb2ycbcr`) with `scale` border pixels cropped, outputs "
        "rounded to 8 bits, means over each set's images. Each cell: measured, then the "
        "paper's value in brackets ([-]: the paper has no such row, the baselines appear in "
        "its Table 2 only; [?]: the paper has the row but `edsr_lab.paper` does not hold its "
        "values yet, see `paper.TABLE3_PENDING`). EDSR+/MDSR+: the same weights with the "
        "geometric self-ensemble "
        "(the 8 flips/rotations of the input, undone and averaged). The paper's SSIM comes "
        "from MATLAB; ours follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5).",
        "",
        "| model | scale | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for r in rows:
        cells = []
        for k in sets:
            measured = pair(*r.scores[k]) if k in r.scores else "not run yet"
            cells.append(f"{measured} {r.paper_cell(k)}")
        lines.append(f"| {r.label} | x{r.scale} | " + " | ".join(cells) + " |")
    lines += ["", f"Paper values: {SOURCE['benchmark']} ({CITATION}).", ""]
    lines += ["## Provenance", "", *prov.lines()]
    return lines


def table3(
    out: str | Path = "runs/reproduce/table3",
    *,
    scales: Sequence[int] = (2, 3, 4),
    models: Sequence[str] | None = None,
    sets: Sequence[str] = SETS,
    self_ensemble: bool = True,
    root: str | Path | None = None,
    base_url: str | None = None,
    benchmark_url: str = benchmarks.BENCHMARK_URL,
    device: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> Table3Result:
    """Score the official weights on the benchmark sets; write ``out/table3.md``.

    Args:
        out: the folder for ``table3.md``.
        scales: 2, 3 and/or 4.
        models: keys of :data:`~edsr_lab.reproduce.rows.TABLE3_MODELS` (default: all:
            EDSR, MDSR and the two baselines).
        sets: ``set5``, ``set14``, ``b100``, ``urban100``.
        self_ensemble: also score EDSR+ and MDSR+ (8 forward passes per image).
        root: the data folder holding ``benchmark/`` (default ``data/``).
        base_url: a mirror folder serving the official weights files (default: the
            authors' server).
        benchmark_url: where the benchmark archive is fetched from when a set is missing.
        device: ``"cuda"``, ``"cpu"`` ... (default: CUDA if available).
        command: the command line shown in the provenance (default: the Python call).
        progress: download and evaluation progress bars.

    Raises:
        DownloadError: a weights file or the archive could not be fetched, or failed its
            checks (rerunning resumes the download).
        OutputExistsError: ``out/table3.md`` exists and was not written by this command.
    """
    from edsr_lab import weights
    from edsr_lab.evaluate import evaluate_sets

    models = [m.key for m in TABLE3_MODELS] if models is None else list(models)
    _check_args(scales, models, sets)
    if base_url is not None:  # a bad URL: one line now, not after the benchmark download
        download.check_url(base_url, "--base-url")
    download.check_url(benchmark_url, "--benchmark-url")
    dev = resolve_device(device)
    out = Path(out).expanduser()
    path = out / "table3.md"
    check_replaceable(path, "table3")  # before any download
    prov = Provenance(command=command or _python_call(locals()), device=device_name(dev))
    plan = _plan(scales, models)
    rows = _empty_rows(plan, self_ensemble)
    result = Table3Result(rows, path, prov)
    result.downloaded_benchmarks = _ensure_sets(sets, root, benchmark_url, progress)

    def write() -> None:
        write_markdown(path, _markdown(rows, sets, prov), "table3")

    loaded: dict[str, torch.nn.Module] = {}
    for s, m in plan:
        name = m.weights_name(s)
        if name not in loaded:
            loaded.clear()  # one model in memory at a time (MDSR serves x2, x3 and x4)
            file = weights.download_weights(name, base_url=base_url, progress=progress)
            result.weights[name] = (file, _sha256(file))
            loaded[name] = weights.load_pretrained(
                name, base_url=base_url, map_location=dev, progress=progress
            )
        model = loaded[name]
        variants = [(m.paper, False)] + ([(m.plus, True)] if self_ensemble and m.plus else [])
        for label, ensemble in variants:
            started = time.monotonic()
            bicubic = not _row(rows, "Bicubic", s).scores
            report = evaluate_sets(
                model, list(sets), s, protocol="benchmark", self_ensemble=ensemble,
                device=dev, root=root, bicubic=bicubic, label=label, progress=progress,
            )  # fmt: skip
            for r in report.sets:
                _row(rows, label, s).scores[r.dataset] = (r.model.mean_psnr, r.model.mean_ssim)
                result.images[r.dataset] = len(r.model.rows)
                if r.bicubic is not None:
                    _row(rows, "Bicubic", s).scores[r.dataset] = (
                        r.bicubic.mean_psnr,
                        r.bicubic.mean_ssim,
                    )
            took = time.monotonic() - started
            print(f"table3: {label} x{s} scored in {took:.0f} s", flush=True)
            _set_extra(result, sets, root, base_url)
            write()
    _set_extra(result, sets, root, base_url)
    write()
    print(f"table3: written to {shown(path)}")
    return result


def _set_extra(result: Table3Result, sets, root, base_url) -> None:
    """The provenance lines of the data and the weights used so far."""
    from edsr_lab import weights

    bench = shown(benchmarks.benchmark_dir(root))
    counts = ", ".join(f"{DATASETS[k]} {result.images.get(k, '?')}" for k in sets)
    lines = [("benchmark sets", f"{bench} (images: {counts})")]
    for name, (file, sha) in result.weights.items():
        info = weights.get(name)
        if base_url is None:
            source = f"the official file {info.url}"
        else:
            source = f"mirror {base_url.rstrip('/')}/{info.file}"
        lines.append(("weights", f"{name}: {file.name}, SHA-256 {sha} ({source})"))
    result.provenance.extra = lines


def _python_call(given: dict) -> str:
    keys = ("scales", "models", "sets", "self_ensemble", "root", "base_url", "device")
    args = [repr(str(given["out"]))] + [f"{k}={given[k]!r}" for k in keys]
    return f"edsr_lab.reproduce.benchmark.table3({', '.join(args)})"
