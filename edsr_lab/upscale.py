"""Super-resolve your own files, keeping what they were: ``python -m edsr_lab upscale``.

The models take RGB (or grey, for ``n_colors=1`` models) floats in [0, 1]; files come as
grey or colour, with or without transparency, at 8 or 16 bits or as 32-bit floats. Each
output keeps what its input was:

* **grey in, grey out.** An RGB model runs on the grey image repeated to 3 channels; its
  3 output channels (nearly equal) are turned back into one with the ITU-R 601 luma
  weights (0.299 R + 0.587 G + 0.114 B, what ``load_image(channels=1)`` uses). A 1-channel
  model runs on grey directly, and on each channel of a colour image in turn.
* **bit depth:** 8-bit in, 8-bit PNG out; 16-bit (PNG or TIFF) in, 16-bit PNG out; a 32-bit
  float TIFF (Pillow mode ``F``, grey, values in [0, 1]) in, float TIFF out (not rounded).
* **alpha:** upscaled separately with the MATLAB-compatible bicubic
  (:func:`edsr_lab.inference.bicubic_upscale`), not by the model (which was never trained on
  transparency), and re-attached. The colour under fully transparent pixels is whatever
  the file stored there, super-resolved like the rest.
* ``mode=`` / ``bits=`` (``--mode`` / ``--bits``) ask for something else: ``L``, ``LA``,
  ``RGB``, ``RGBA``; 8, 16 or 32. Dropping alpha composites on white (as ``load_image``);
  adding it makes every pixel opaque.

Outputs are named ``<input stem>_x<scale>.png`` (``.tif`` for float) in one folder.
DICOM slices (:func:`upscale_dicom_files`, ``upscale-dicom``; and among the files given
to :func:`upscale_files`) become derived DICOM files ``<stem>_x<scale>.dcm`` (or windowed
16-bit PNGs); :mod:`edsr_lab.dicom` reads and writes them,
:func:`edsr_lab.inference.super_resolve_values` runs the model on their values.

Every kind of file goes through the same two steps, all the files of one command in one
plan:

1. :func:`plan_jobs` decides every output path before anything is written: two inputs
   that would give the same name (compared as resolved paths), an output that would
   replace an input (even with ``overwrite``, whatever the kinds), an image output over
   an existing DICOM file, or an existing output (without ``overwrite``) stop it with
   one line and nothing written. Bad options (scale, tile, window, an empty ``--out``)
   are refused before it.
2. :func:`run_jobs` processes each file on its own, prints one line per file
   (``FAILED <file>: <reason>`` for a failure, so one bad file does not stop the others)
   and a summary.

A new kind of file (e.g. NIfTI volumes) plugs in with a reader/writer module and one
function here: ``jobs = plan_jobs(sources, out_dir, [<output name of each>], ...)``, then
``run_jobs(jobs, process_one, noun="volume(s)", ...)`` where ``process_one(job)`` reads
``job.source``, super-resolves, writes ``job.target`` and returns the line to print.

Limits: 16-bit grey + alpha PNGs are read at 8-bit precision (Pillow has no decoder for
their low bytes), so they come out as 8-bit; colour float TIFFs cannot be read by Pillow.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from edsr_lab import dicom
from edsr_lab.errors import (
    BadArgumentError,
    DicomError,
    EdsrLabError,
    OutputExistsError,
    OutputPathError,
    one_line,
)
from edsr_lab.inference import (
    LUMA,
    bicubic_upscale,
    check_tile,
    input_channels,
    resolve_scale,
    super_resolve,
    super_resolve_values,
)
from edsr_lab.io import ImageInfo, read_image, save_image
from edsr_lab.paths import unreadable_reason, unwritable_reason

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_BITS",
    "OUTPUT_MODES",
    "Job",
    "collect_inputs",
    "output_name",
    "plan_jobs",
    "plan_outputs",
    "run_jobs",
    "upscale_array",
    "upscale_dicom",
    "upscale_dicom_files",
    "upscale_files",
]

#: Files taken from a folder given as input (others there are skipped, and said so).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
#: Output colour layouts (Pillow's names); "auto" keeps the input's.
OUTPUT_MODES = ("auto", "L", "LA", "RGB", "RGBA")
#: Output precisions; "auto" keeps the input's (8, 16 or 32 = float TIFF).
OUTPUT_BITS = ("auto", "8", "16", "32")


@dataclass(frozen=True)
class Job:
    """One file to process: read ``source``, write ``target``; ``info`` is what the
    planner learnt about the source (images: its :class:`~edsr_lab.io.ImageInfo`, None
    when the header cannot be read, so the job then fails on its own)."""

    source: Path
    target: Path
    info: Any = None


def collect_inputs(items: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files to process: each file as given, each folder's image files (sorted, not
    recursive). A folder without image files raises BadArgumentError."""
    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not found:
                raise BadArgumentError(
                    f"the folder {str(path)!r} holds no image files "
                    f"({', '.join(IMAGE_SUFFIXES)}); give image files or another folder"
                )
            files.extend(found)
        else:
            files.append(path)  # a missing or bad file fails on its own, later
    return files


def _peek(path: Path) -> ImageInfo | None:
    """The file's mode and precision from its header, without decoding; None if unreadable."""
    if unreadable_reason(path) is not None:  # never open a FIFO (it would block)
        return None
    try:
        with Image.open(path) as img:
            mode, fmt = img.mode, img.format
            args = img.tile[0][3] if len(img.tile) == 1 else ""
            rawmode = args if isinstance(args, str) else ""
            transparent = "transparency" in img.info
    except Exception:  # noqa: BLE001 - any failure is reported when the file is processed
        return None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        bits, channels, alpha = 16, 1, False
    elif mode == "F":
        bits, channels, alpha = 32, 1, False
    else:
        bits = 16 if rawmode in ("RGB;16B", "RGBA;16B") else 8
        grey = mode in ("1", "L", "LA", "La") or rawmode.startswith("LA;16")
        channels = 1 if grey else 3
        alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or transparent
    return ImageInfo(channels=channels, has_alpha=alpha, bits=bits, mode=mode, format=fmt)


def _resolve(info: ImageInfo, mode: str, bits: str) -> tuple[str, int]:
    """The output mode ("L", "LA", "RGB", "RGBA") and bits (8, 16, 32) for one input."""
    if mode == "auto":
        mode = ("L" if info.channels == 1 else "RGB") + ("A" if info.has_alpha else "")
    out_bits = info.bits if bits == "auto" else int(bits)
    if out_bits == 32 and mode != "L":
        if bits == "auto":  # float input asked for colour or alpha: keep 16 bits instead
            out_bits = 16
        else:
            raise BadArgumentError(
                f"--bits 32 writes a float TIFF of one grey channel, but the output mode is "
                f"{mode}; use --mode L, or --bits 16 for a 16-bit PNG"
            )
    return mode, out_bits


def output_name(source: Path, scale: int, bits: int) -> str:
    """``<stem>_x<scale>.png``, or ``.tif`` for a float (32-bit) output."""
    return f"{source.stem}_x{scale}{'.tif' if bits == 32 else '.png'}"


def plan_jobs(
    sources: Sequence[Path],
    out_dir: Path,
    names: Sequence[str],
    *,
    infos: Sequence[Any] | None = None,
    overwrite: bool = False,
) -> list[Job]:
    """Decide every output path (``out_dir / names[i]`` for ``sources[i]``), refusing what
    would lose work before anything is written. Serves every kind of file.

    Raises:
        OutputPathError: ``out_dir`` is a file, lies under a file, or is not writable.
        BadArgumentError: two inputs would write the same output, an output would
            replace one of the inputs (paths compared resolved: symlinks, ``..``), even
            with ``overwrite``, or an image (or PNG) output would replace a DICOM file
            (never an earlier output of ours, so ``overwrite`` does not cover it).
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    reason = unwritable_reason(out_dir)
    if reason is not None:
        raise OutputPathError(
            f"--out {str(out_dir)!r}: {reason}. Outputs go into a folder as "
            "<name>_x<scale>.<ext>; give a folder that can be created or written, e.g. "
            "--out upscaled"
        )
    inputs = {}
    for src in sources:
        try:
            inputs[src.resolve()] = src
        except (OSError, RuntimeError):  # a symlink loop: fails on its own when processed
            continue
    jobs: list[Job] = []
    by_target: dict[Path, Path] = {}
    for i, (src, name) in enumerate(zip(sources, names, strict=True)):
        target = out_dir / name
        key = target.resolve() if target.parent.exists() else target.absolute()
        if key in by_target:
            raise BadArgumentError(
                f"{str(by_target[key])!r} and {str(src)!r} would both be written to "
                f"{str(target)!r}; rename one, or upscale them into different --out folders"
            )
        by_target[key] = src
        if key in inputs:
            raise BadArgumentError(
                f"the output {str(target)!r} would replace the input {str(inputs[key])!r}; "
                "choose another --out folder"
            )
        jobs.append(Job(src, target, infos[i] if infos is not None else None))
    for job in jobs:  # --overwrite replaces earlier outputs, and only them
        if job.target.suffix.lower() not in dicom.DICOM_SUFFIXES and dicom.is_dicom_file(
            job.target
        ):
            raise BadArgumentError(
                f"the output {str(job.target)!r} would replace a DICOM file of that name, "
                f"which is not an earlier output of this command (it writes "
                f"{job.target.suffix} files there); move that file, or choose another "
                "--out folder"
            )
    if not overwrite:
        existing = [j.target for j in jobs if j.target.exists() or j.target.is_symlink()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise OutputExistsError(
                f"{str(existing[0])!r} already exists{more}; nothing was written. Pass "
                "--overwrite (overwrite=True from Python) to replace the outputs, or choose "
                "another --out folder"
            )
    return jobs


def run_jobs(
    jobs: Sequence[Job],
    process: Callable[[Job], str],
    *,
    out_dir: Path,
    noun: str = "image(s)",
    log: Callable[[str], None] = print,
) -> tuple[int, int]:
    """Run ``process`` on every job; one line per file, then a summary. Serves every kind.

    ``process(job)`` reads, super-resolves and writes one file and returns the line to
    log. An :class:`~edsr_lab.errors.EdsrLabError` or ``OSError`` it raises is logged as
    ``FAILED <source>: <reason>`` (one line) and the next file is tried; any other
    exception too, marked as unexpected (a bug to report), so one odd file never costs
    the files after it. Ctrl-C stops the batch.

    Returns:
        (written, failed) counts.
    """
    written = failed = 0
    for job in jobs:
        try:
            line = process(job)
        except (EdsrLabError, OSError) as err:
            failed += 1
            log(f"FAILED {job.source}: {one_line(err)}")
            continue
        # One file's surprise must not cost the files after it; said as what it is.
        except Exception as err:  # noqa: BLE001
            failed += 1
            log(
                f"FAILED {job.source}: unexpected {type(err).__name__}: {one_line(err)} "
                "(a bug in edsr-lab: please report it, with the file if you can share it)"
            )
            continue
        written += 1
        log(line)
    summary = f"{written} of {len(jobs)} {noun} written to {out_dir}"
    log(summary + (f"; {failed} failed (see the FAILED lines above)" if failed else ""))
    return written, failed


def _out_folder(out_dir: str | os.PathLike[str]) -> Path:
    """``--out`` as a Path; an empty text is refused (Path("") would be the working folder)."""
    if not str(out_dir).strip():
        raise OutputPathError(
            f"--out {str(out_dir)!r} is empty; give the folder to write into, e.g. --out upscaled"
        )
    return Path(out_dir).expanduser()


def _check_window(window_cw: Any) -> tuple[float, float] | None:
    """``(center, width)`` as floats: two finite numbers, width >= 1; or None."""
    if window_cw is None:
        return None
    ok = (
        isinstance(window_cw, (tuple, list))
        and len(window_cw) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in window_cw)
        and all(math.isfinite(v) for v in window_cw)
        and window_cw[1] >= 1
    )
    if not ok:
        raise BadArgumentError(
            f"window {window_cw!r}: give the display window as two numbers CENTER WIDTH "
            "with WIDTH >= 1, e.g. --window 40 400 (window_cw=(40, 400) from Python), "
            "a CT soft-tissue window in HU"
        )
    return float(window_cw[0]), float(window_cw[1])


def _image_names(
    sources: Sequence[Path], scale: int, mode: str, bits: str
) -> tuple[list[str], list[ImageInfo | None]]:
    """Each image's output name and header (None: unreadable, it fails on its own)."""
    if mode not in OUTPUT_MODES:
        raise BadArgumentError(f"--mode must be one of {', '.join(OUTPUT_MODES)}, not {mode!r}")
    if str(bits) not in OUTPUT_BITS:
        raise BadArgumentError(f"--bits must be one of {', '.join(OUTPUT_BITS)}, not {bits!r}")
    infos = [_peek(src) for src in sources]
    names = [
        output_name(src, scale, _resolve(info, mode, str(bits))[1] if info is not None else 8)
        for src, info in zip(sources, infos, strict=True)
    ]
    return names, infos


def plan_outputs(
    sources: Sequence[Path],
    out_dir: Path,
    scale: int,
    *,
    mode: str = "auto",
    bits: str = "auto",
    overwrite: bool = False,
) -> list[Job]:
    """:func:`plan_jobs` for image files: ``<stem>_x<scale>.png`` (``.tif`` for float).

    Raises:
        BadArgumentError: a ``mode``/``bits`` value or combination that cannot be written,
            and what :func:`plan_jobs` raises.
    """
    names, infos = _image_names(sources, scale, mode, bits)
    return plan_jobs(sources, out_dir, names, infos=infos, overwrite=overwrite)


def _to_grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = LUMA
    return (r * x[..., 0:1, :, :] + g * x[..., 1:2, :, :] + b * x[..., 2:3, :, :]).clamp(0, 1)


def upscale_array(
    image: torch.Tensor,
    info: ImageInfo,
    sr_fn: Callable[[torch.Tensor], torch.Tensor],
    scale: int,
    model_channels: int,
    mode: str,
) -> torch.Tensor:
    """Super-resolve one image as read by :func:`edsr_lab.io.read_image`.

    Args:
        image: float32 (C, H, W), alpha last when ``info.has_alpha``.
        info: what the file was.
        sr_fn: LR (model_channels, h, w) -> SR (model_channels, s*h, s*w), in [0, 1].
        scale: the upscaling factor (for the alpha channel).
        model_channels: 3 (RGB model) or 1.
        mode: output layout, "L", "LA", "RGB" or "RGBA".

    Returns:
        float32 (len(mode), s*H, s*W) in [0, 1].
    """
    colour = image[: info.channels]
    alpha = image[info.channels :] if info.has_alpha else None
    if model_channels == 3:
        rgb_in = colour.expand(3, -1, -1) if info.channels == 1 else colour
        sr = sr_fn(rgb_in.contiguous())
    else:  # a grey model: each channel on its own
        sr = torch.cat([sr_fn(colour[c : c + 1]) for c in range(colour.shape[0])])
    sr = sr.float().clamp(0, 1)
    grey_out = mode.startswith("L")
    if grey_out and sr.shape[0] == 3:
        sr = _to_grey(sr)
    elif not grey_out and sr.shape[0] == 1:
        sr = sr.expand(3, -1, -1)
    sr_alpha = None
    if alpha is not None:
        sr_alpha = bicubic_upscale(alpha.to(sr.device), scale).clamp(0, 1)
    if mode.endswith("A"):
        if sr_alpha is None:
            sr_alpha = torch.ones_like(sr[:1])
        return torch.cat([sr, sr_alpha])
    if sr_alpha is not None:  # alpha dropped: composite on white, as load_image does
        sr = sr * sr_alpha + (1 - sr_alpha)
    return sr.contiguous()


def upscale_files(
    model: nn.Module,
    sources: Sequence[Path],
    out_dir: str | os.PathLike[str],
    scale: int,
    *,
    mode: str = "auto",
    bits: str = "auto",
    overwrite: bool = False,
    tile: int | None = None,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[int, int]:
    """Super-resolve image files and DICOM slices into ``out_dir``; one line per file,
    then a summary.

    DICOM slices (:func:`edsr_lab.dicom.is_dicom_file`: a .dcm/.dicom name or the DICOM
    preamble, whatever the name) become derived DICOM files ``<stem>_x<scale>.dcm``
    (:func:`upscale_dicom`; ``mode``/``bits`` do not apply to them); the other files are
    images. Every output of every kind is planned at once first (:func:`plan_jobs`): no
    output may replace any input, and existing outputs are found before anything is
    written. Then each file is read, run and written on its own (:func:`run_jobs`), so one
    bad file does not stop the others.

    Returns:
        (written, failed) counts.

    Raises (before any file is read):
        BadArgumentError: a bad ``scale``, ``tile``, ``mode`` or ``bits``, and what
            :func:`plan_jobs` raises; OutputPathError: an empty or unusable ``out_dir``.
        MissingDependencyError: DICOM slices given but pydicom is not installed.
    """
    out_dir = _out_folder(out_dir)
    scale = resolve_scale(model, scale)
    tile, _ = check_tile(tile)
    sources = [Path(src) for src in sources]
    slices = {i for i, src in enumerate(sources) if dicom.is_dicom_file(src)}
    if slices:
        dicom.require_pydicom()  # one line with the install command, before any work
    images = [i for i in range(len(sources)) if i not in slices]
    names: list[str] = [f"{src.stem}_x{scale}.dcm" for src in sources]  # slices' names
    infos: list[Any] = [None] * len(sources)
    image_names, image_infos = _image_names([sources[i] for i in images], scale, mode, bits)
    for i, name, info in zip(images, image_names, image_infos, strict=True):
        names[i], infos[i] = name, info
    jobs = plan_jobs(sources, out_dir, names, infos=infos, overwrite=overwrite)
    model_channels = input_channels(model) or 3
    options = {"tile": tile, "self_ensemble": self_ensemble, "device": device}

    def sr_fn(x: torch.Tensor) -> torch.Tensor:
        return super_resolve(model, x, scale=scale, **options).cpu()

    slice_sources = {sources[i] for i in slices}

    def process(job: Job) -> str:
        if job.source in slice_sources:
            return _dicom_line(
                job, upscale_dicom(model, job.source, job.target, scale=scale,
                                   overwrite=overwrite, **options)
            )  # fmt: skip
        image, info = read_image(job.source)
        out_mode, out_bits = _resolve(info, mode, str(bits))
        sr = upscale_array(image, info, sr_fn, scale, model_channels, out_mode)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_image(sr, job.target, bits=out_bits, overwrite=overwrite)
        what = f"{out_mode}, {out_bits if out_bits != 32 else 'float32'}-bit"
        return (
            f"{job.source} {tuple(image.shape[-2:])} -> {job.target} "
            f"{tuple(sr.shape[-2:])} ({what})"
        )

    noun = "image(s)" if not slices else "file(s)"
    return run_jobs(jobs, process, out_dir=out_dir, noun=noun, log=log)


# --------------------------------------------------------------------------------------------
# DICOM slices: edsr_lab.dicom reads and writes them, the model runs on their values
# --------------------------------------------------------------------------------------------
DICOM_FORMATS = ("dcm", "png")


def upscale_dicom(
    model: nn.Module,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: int | None = None,
    window_cw: tuple[float, float] | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Super-resolve the DICOM slice ``src`` and write ``dst`` (.dcm, or .png for display).

    Args:
        model: an SR model (RGB or grey).
        src: the input slice (needs pydicom: ``pip install -e ".[dicom]"``).
        dst: the output file. ``.dcm``/``.dicom``: a derived DICOM (see
            :func:`edsr_lab.dicom.derived_dataset`). ``.png``: a 16-bit grey PNG of the
            *windowed* image (``window_cw`` or the file's window, else its full range), for
            viewing and reports; the DICOM keeps the values, the PNG does not.
        scale: default the model's (:func:`edsr_lab.inference.resolve_scale`).
        window_cw: (center, width) for the PNG; ignored for DICOM output (the file's own
            WindowCenter/WindowWidth are kept).
        overwrite: replace ``dst`` if it exists (never allowed when ``dst`` is ``src``).
        **kwargs: passed to :func:`edsr_lab.inference.super_resolve` (tile, device, ...).

    Returns:
        ``{"path", "lr_shape", "sr_shape", "scale", "window", "pixel_spacing", "notes"}`` of
        the output; ``notes``: what was noticed but did not stop it (a WindowCenter that is
        not a number: the slice's full range was used for display).

    Raises:
        DicomError: an output name that is neither .dcm nor .png, or ``dst`` is ``src``;
            and what :func:`edsr_lab.dicom.read_dicom` raises.
        OutputExistsError: ``dst`` exists and ``overwrite`` is False (a FileExistsError).
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    window_cw = _check_window(window_cw)
    suffix = dst.suffix.lower()
    if suffix not in (*dicom.DICOM_SUFFIXES, ".png"):
        raise DicomError(f"output {str(dst)!r}: use a .dcm (DICOM) or .png (16-bit) file name")
    if dst.exists() and dst.resolve() == src.resolve():
        raise DicomError(f"output {str(dst)!r} is the input file; choose another name or folder")
    if dst.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(dst)!r} already exists; pass --overwrite (overwrite=True from Python) to "
            "replace it, or choose another name"
        )
    values, ds = dicom.read_dicom(src)
    scale = resolve_scale(model, scale)
    notes: list[str] = []
    if suffix != ".png":
        dicom.check_derivable(ds)  # a geometry that cannot be written: before the work
    if window_cw is None:  # an unreadable window only affects display: a note, not a failure
        window_cw, note = dicom.display_window(ds, values)
        notes += [note] if note else []
    center, width = window_cw
    sr = super_resolve_values(model, values, scale=scale, **kwargs)
    info: dict[str, Any] = {
        "lr_shape": tuple(values.shape[-2:]),
        "sr_shape": tuple(sr.shape[-2:]),
        "scale": scale,
        "window": (center, width),
        "notes": notes,
    }
    if suffix == ".png":
        invert = str(ds.get("PhotometricInterpretation")) == "MONOCHROME1"
        shown = dicom.window(sr, center, width, invert=invert)
        info["path"] = save_image(shown, dst, bits=16, overwrite=overwrite)
        info["pixel_spacing"] = None
        return info
    out = dicom.derived_dataset(ds, sr, scale)
    info["path"] = dicom.write_dicom(out, dst, overwrite=overwrite)
    spacing = out.get("PixelSpacing")
    info["pixel_spacing"] = None if spacing is None else tuple(float(v) for v in spacing)
    return info


def upscale_dicom_files(
    model: nn.Module,
    files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "dcm",
    scale: int | None = None,
    window_cw: tuple[float, float] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    **kwargs: Any,
) -> tuple[int, int]:
    """Super-resolve DICOM slices into ``out_dir`` as ``<name>_x<s>.dcm`` (or ``.png``).

    Planned like images (:func:`plan_jobs`: clashing names, an output replacing an
    input, or existing outputs without ``overwrite`` stop it before anything is written),
    then each slice on its own (:func:`run_jobs`, ``FAILED`` lines). ``**kwargs`` go to
    :func:`upscale_dicom`.

    Returns:
        (written, failed) counts.
    """
    if fmt not in DICOM_FORMATS:
        raise BadArgumentError(f"--format must be dcm or png, got {fmt!r}")
    out_dir = _out_folder(out_dir)
    scale = resolve_scale(model, scale)
    window_cw = _check_window(window_cw)
    kwargs["tile"], kwargs["tile_overlap"] = check_tile(
        kwargs.get("tile"), kwargs.get("tile_overlap", 16)
    )
    sources = [Path(f).expanduser() for f in files]
    names = [f"{src.stem}_x{scale}.{fmt}" for src in sources]
    jobs = plan_jobs(sources, out_dir, names, overwrite=overwrite)

    def process(job: Job) -> str:
        info = upscale_dicom(
            model, job.source, job.target, scale=scale, window_cw=window_cw,
            overwrite=overwrite, **kwargs,
        )  # fmt: skip
        return _dicom_line(job, info)

    return run_jobs(jobs, process, out_dir=out_dir, noun="DICOM file(s)", log=log)


def _dicom_line(job: Job, info: dict[str, Any]) -> str:
    """The line :func:`run_jobs` prints for a slice written (and what was noticed)."""
    spacing = info["pixel_spacing"]
    extra = f", pixel spacing {spacing[0]:g} x {spacing[1]:g} mm" if spacing else ""
    notes = "".join(f"; note: {note}" for note in info.get("notes", ()))
    return f"{job.source} {info['lr_shape']} -> {info['path']} {info['sr_shape']}{extra}{notes}"
