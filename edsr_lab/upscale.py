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
)
from edsr_lab.io import ImageInfo, read_image, save_image
from edsr_lab.paths import unreadable_reason, unwritable_reason
from edsr_lab.upscale_stored import (
    check_values_mode,
    is_values_image,
    nifti_output_name,
    upscale_nifti_file,
    upscale_values_image,
    values_output_name,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_BITS",
    "OUTPUT_MODES",
    "Job",
    "collect_inputs",
    "inspect_image",
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
_DICOMDIR = "a DICOMDIR (the index of DICOM media, not an image)"
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


def collect_inputs(
    items: Sequence[str | os.PathLike[str]], *, log: Callable[[str], None] | None = print
) -> list[Path]:
    """Files to process: each file as given; from each folder (not recursive, sorted by
    name) its image files, its DICOM files (by suffix, or by the DICOM preamble whatever
    the name: the extension-less slices of a series too) and its NIfTI volumes.

    Nothing in a folder is skipped silently: every other entry is listed on ``log`` as
    ``skipped <path>: <why>`` (a subfolder, a file of another kind).

    Raises:
        BadArgumentError: a folder holding nothing to process (the message says what it
            holds).
    """
    from edsr_lab.nifti import is_nifti_file

    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if not path.is_dir():
            files.append(path)  # a missing or bad file fails on its own, later
            continue
        found, skipped = [], []
        for entry in sorted(path.iterdir()):
            if entry.is_dir():
                skipped.append((entry, "a folder (folders are not searched; give it too)"))
            elif not entry.is_file():
                skipped.append((entry, "not a regular file (a pipe, a device or a broken link)"))
            elif dicom.is_dicomdir(entry):
                skipped.append((entry, _DICOMDIR))
            elif (
                entry.suffix.lower() in IMAGE_SUFFIXES
                or is_nifti_file(entry)
                or dicom.is_dicom_file(entry)
            ):
                found.append(entry)
            else:
                skipped.append(
                    (entry, f"not an image ({', '.join(IMAGE_SUFFIXES)}), DICOM or NIfTI file")
                )
        if not found:
            held = f"it holds {len(skipped)} other entries" if skipped else "it is empty"
            raise BadArgumentError(
                f"the folder {str(path)!r} holds no image, DICOM or NIfTI files ({held}); "
                "give such files or another folder"
            )
        for entry, why in skipped:
            if log is not None:
                log(f"skipped {entry}: {why}")
        files.extend(found)
    return files


def inspect_image(path: Path) -> ImageInfo | None:
    """The file's mode and precision from its header, without decoding; None if unreadable."""
    if unreadable_reason(path) is not None:  # never open a FIFO (it would block)
        return None
    try:
        with Image.open(path) as img:
            mode, fmt = img.mode, img.format
            args = img.tile[0][3] if len(img.tile) == 1 else ""
            if isinstance(args, tuple) and args:  # TIFF: (rawmode, stride, orientation)
                args = args[0]
            rawmode = args if isinstance(args, str) else ""
            transparent = "transparency" in img.info
            pages = int(getattr(img, "n_frames", 1)) if fmt == "TIFF" else 1
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
    if mode == "F":
        dtype = "float32"
    elif rawmode.startswith("I;") and rawmode.endswith("S"):  # I;16S, I;32S, I;16BS
        dtype = "int16" if "16" in rawmode else "int32"
    elif rawmode.startswith("I;32"):
        dtype = "uint32"
    else:
        dtype = "uint16" if bits == 16 else "uint8"
    return ImageInfo(
        channels=channels, has_alpha=alpha, bits=bits, mode=mode, format=fmt, pages=pages,
        dtype=dtype,
    )  # fmt: skip


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
            kind = " (a DICOM file)" if dicom.is_dicom_file(inputs[key]) else ""
            raise BadArgumentError(
                f"the output {str(target)!r} would replace the input {str(inputs[key])!r}"
                f"{kind}; choose another --out folder"
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
    infos = [inspect_image(src) for src in sources]
    names = []
    for src, info in zip(sources, infos, strict=True):
        if is_values_image(info):  # more than 8 bits, or a stack: the intensity policy
            check_values_mode(info, mode, str(bits), src)
            names.append(values_output_name(src, scale, info, str(bits)))
        else:
            out_bits = _resolve(info, mode, str(bits))[1] if info is not None else 8
            names.append(output_name(src, scale, out_bits))
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


def _check_axis(axis: Any) -> int:
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise BadArgumentError(
            f"--axis {axis!r}: the slicing axis of a volume is 0, 1 or 2 (2: axial slices of "
            "an RAS-oriented NIfTI)"
        )
    return int(axis)


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
    value_range: str | tuple[float, float] = "auto",
    units: str | None = None,
    axis: int = 2,
    fmt: str = "dcm",
    window_cw: tuple[float, float] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[int, int]:
    """Super-resolve image files, DICOM files and NIfTI volumes into ``out_dir``; one line
    per file, then a summary.

    Each file goes to its reader:

    * DICOM (:func:`edsr_lab.dicom.is_dicom_file`: a .dcm/.dicom name or the DICOM
      preamble, whatever the name): grouped by series, one intensity map per series, a
      derived DICOM ``<stem>_x<scale>.dcm`` in one new series per source series, multi-frame
      and colour included (:class:`edsr_lab.dicom_series.SeriesUpscaler`); ``fmt`` png/tiff
      writes the values with their map instead, ``window_cw`` a windowed PNG for viewing.
    * NIfTI (:func:`edsr_lab.nifti.is_nifti_file`): every slice along ``axis``, one map
      per volume, ``<name>_x<scale>.nii.gz`` with the geometry moved.
    * images with more than 8 bits (16-bit, integer, float) or several pages (a TIFF
      stack): read as values with one map (``value_range``, ``units``), written back in
      their dtype with the map recorded (:mod:`edsr_lab.upscale_stored`).
    * 8-bit pictures: as photos (``mode``/``bits`` conversions, alpha by bicubic).

    Every output of every kind is planned at once first (:func:`plan_jobs`): no output may
    replace any input, and existing outputs are found before anything is written. Then each
    file is read, run and written on its own (:func:`run_jobs`), so one bad file is one
    ``FAILED`` line and the others go on. The model runs through
    :func:`edsr_lab.inference.super_resolve` (tiles, self-ensemble), unclamped for values
    so that what it pushes outside the range is counted.

    Returns:
        (written, failed) counts.

    Raises (before any file is read):
        BadArgumentError: a bad ``scale``, ``tile``, ``mode``, ``bits``, ``value_range``,
            ``axis``, ``fmt`` or ``window_cw``, and what :func:`plan_jobs` raises;
            OutputPathError: an empty or unusable ``out_dir``.
        MissingDependencyError: DICOM files given without pydicom, NIfTI without nibabel.
    """
    from edsr_lab.dicom_series import SeriesUpscaler, output_suffix
    from edsr_lab.intensity import parse_range
    from edsr_lab.nifti import is_nifti_file
    from edsr_lab.volume import model_sr

    out_dir = _out_folder(out_dir)
    scale = resolve_scale(model, scale)
    tile, _ = check_tile(tile)
    parse_range(value_range)
    axis, window_cw = _check_axis(axis), _check_window(window_cw)
    suffix = output_suffix(fmt)
    sources = [Path(src) for src in sources]
    kinds = [
        "dicom" if dicom.is_dicom_file(s) else "nifti" if is_nifti_file(s) else "image"
        for s in sources
    ]
    if "dicom" in kinds:
        dicom.require_pydicom()  # one line with the install command, before any work
    if "nifti" in kinds:
        from edsr_lab.nifti import require_nibabel

        require_nibabel()
    images = [i for i, kind in enumerate(kinds) if kind == "image"]
    names: list[str] = [
        f"{src.stem}_x{scale}{suffix}" if kind == "dicom" else nifti_output_name(src, scale)
        for src, kind in zip(sources, kinds, strict=True)
    ]
    infos: list[Any] = [None] * len(sources)
    image_names, image_infos = _image_names([sources[i] for i in images], scale, mode, bits)
    for i, name, info in zip(images, image_names, image_infos, strict=True):
        names[i], infos[i] = name, info
    jobs = plan_jobs(sources, out_dir, names, infos=infos, overwrite=overwrite)
    model_channels = input_channels(model) or 3
    options = {"tile": tile, "self_ensemble": self_ensemble, "device": device}
    sr = model_sr(model, scale=scale, **options)
    kind_of = dict(zip(sources, kinds, strict=True))
    series = SeriesUpscaler(
        [s for s in sources if kind_of[s] == "dicom"], sr, scale, value_range=value_range,
        units=units, fmt=fmt, window_cw=window_cw, overwrite=overwrite,
    )  # fmt: skip
    values = {"value_range": value_range, "units": units, "overwrite": overwrite}

    def sr_fn(x: torch.Tensor) -> torch.Tensor:
        return super_resolve(model, x, scale=scale, **options).cpu()

    def process(job: Job) -> str:
        out_dir.mkdir(parents=True, exist_ok=True)
        kind = kind_of[job.source]
        if kind == "dicom":
            return series.process(job.source, job.target)
        if kind == "nifti":
            return upscale_nifti_file(job.source, job.target, sr, scale, axis=axis, **values)
        if is_values_image(job.info):
            return upscale_values_image(
                job.source, job.target, sr, scale, mode=mode, bits=str(bits), **values
            )
        image, info = read_image(job.source)
        out_mode, out_bits = _resolve(info, mode, str(bits))
        out = upscale_array(image, info, sr_fn, scale, model_channels, out_mode)
        save_image(out, job.target, bits=out_bits, overwrite=overwrite)
        what = f"{out_mode}, {out_bits if out_bits != 32 else 'float32'}-bit"
        return (
            f"{job.source} {tuple(image.shape[-2:])} -> {job.target} "
            f"{tuple(out.shape[-2:])} ({what})"
        )

    noun = "image(s)" if set(kinds) == {"image"} else "file(s)"
    return run_jobs(jobs, process, out_dir=out_dir, noun=noun, log=log)


# --------------------------------------------------------------------------------------------
# DICOM: edsr_lab.dicom reads and writes files, edsr_lab.dicom_series does series
# --------------------------------------------------------------------------------------------
#: What ``upscale-dicom --format`` writes: derived DICOM, or values in a PNG / TIFF.
DICOM_FORMATS = ("dcm", "png", "tiff")
_DICOM_OUTPUT_SUFFIXES = {".dcm": "dcm", ".dicom": "dcm", ".png": "png", ".tif": "tiff"}


def upscale_dicom(
    model: nn.Module,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: int | None = None,
    window_cw: tuple[float, float] | None = None,
    value_range: str | tuple[float, float] = "auto",
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Super-resolve one DICOM file (a slice, a multi-frame volume, a colour image) into
    ``dst``: a derived DICOM (.dcm/.dicom), or its values in a PNG or TIFF (.png/.tif)
    with the intensity map recorded, or with ``window_cw`` a windowed 16-bit PNG for
    viewing. It is a series of one: :class:`edsr_lab.dicom_series.SeriesUpscaler`.

    Args:
        model: an SR model (RGB or grey).
        src: the input (needs pydicom: ``pip install -e ".[dicom]"``).
        dst: the output file.
        scale: default the model's (:func:`edsr_lab.inference.resolve_scale`).
        window_cw: (center, width): a windowed PNG (``dst`` .png only).
        value_range: the intensity spec (``"auto"``: the file's own range).
        overwrite: replace ``dst`` if it exists (never allowed when ``dst`` is ``src``).
        **kwargs: ``tile``, ``tile_overlap``, ``self_ensemble``, ``device`` (see
            :func:`edsr_lab.volume.model_sr`).

    Returns:
        ``{"path", "lr_shape", "sr_shape", "scale", "line"}``: the output, the in-plane
        sizes, the scale and the line the commands print.

    Raises:
        DicomError: an output name that is not .dcm/.png/.tif, ``dst`` is ``src``, or what
            :func:`edsr_lab.dicom.read_dicom_image` raises.
        OutputExistsError: ``dst`` exists and ``overwrite`` is False (a FileExistsError).
    """
    from edsr_lab.dicom_series import SeriesUpscaler
    from edsr_lab.volume import model_sr

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    window_cw = _check_window(window_cw)
    fmt = _DICOM_OUTPUT_SUFFIXES.get(dst.suffix.lower())
    if fmt is None:
        raise DicomError(
            f"output {str(dst)!r}: use a .dcm (DICOM), .png or .tif (values) file name"
        )
    if dst.exists() and dst.resolve() == src.resolve():
        raise DicomError(f"output {str(dst)!r} is the input file; choose another name or folder")
    if dst.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(dst)!r} already exists; pass --overwrite (overwrite=True from Python) to "
            "replace it, or choose another name"
        )
    dicom.require_pydicom()
    scale = resolve_scale(model, scale)
    upscaler = SeriesUpscaler(
        [src], model_sr(model, scale=scale, **kwargs), scale, value_range=value_range,
        fmt=fmt, window_cw=window_cw, overwrite=overwrite,
    )  # fmt: skip
    line = upscaler.process(src, dst)
    return {**upscaler.last, "scale": scale, "line": line}


def upscale_dicom_files(
    model: nn.Module,
    files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "dcm",
    scale: int | None = None,
    window_cw: tuple[float, float] | None = None,
    value_range: str | tuple[float, float] = "auto",
    units: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    **kwargs: Any,
) -> tuple[int, int]:
    """Super-resolve DICOM files and folders (a series: its files, with or without
    extensions) into ``out_dir`` as ``<name>_x<s>.dcm`` (or ``.png`` / ``.tif``).

    Series by series (:class:`edsr_lab.dicom_series.SeriesUpscaler`: one map and one new
    series per source series). Planned like images (:func:`plan_jobs`: clashing names, an
    output replacing an input, or existing outputs without ``overwrite`` stop it before
    anything is written), then each file on its own (:func:`run_jobs`, ``FAILED`` lines).
    A folder's other files are listed as skipped. ``**kwargs``: ``tile``, ``tile_overlap``,
    ``self_ensemble``, ``device``.

    Returns:
        (written, failed) counts.
    """
    from edsr_lab.dicom_series import SeriesUpscaler, output_suffix
    from edsr_lab.intensity import parse_range
    from edsr_lab.volume import model_sr

    suffix = output_suffix(fmt)
    out_dir = _out_folder(out_dir)
    scale = resolve_scale(model, scale)
    window_cw = _check_window(window_cw)
    parse_range(value_range)
    kwargs["tile"], kwargs["tile_overlap"] = check_tile(
        kwargs.get("tile"), kwargs.get("tile_overlap", 16)
    )
    sources = _dicom_inputs(files, log)
    names = [f"{src.stem}_x{scale}{suffix}" for src in sources]
    jobs = plan_jobs(sources, out_dir, names, overwrite=overwrite)
    upscaler = SeriesUpscaler(
        sources, model_sr(model, scale=scale, **kwargs), scale, value_range=value_range,
        units=units, fmt=fmt, window_cw=window_cw, overwrite=overwrite,
    )  # fmt: skip

    def process(job: Job) -> str:
        return upscaler.process(job.source, job.target)

    return run_jobs(jobs, process, out_dir=out_dir, noun="DICOM file(s)", log=log)


def _dicom_inputs(
    items: Sequence[str | os.PathLike[str]], log: Callable[[str], None] | None
) -> list[Path]:
    """Files as given; from a folder its DICOM files (by suffix or preamble), the others
    listed as skipped. A folder without DICOM files raises BadArgumentError."""
    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if not path.is_dir():
            files.append(path)
            continue
        found = [p for p in sorted(path.iterdir()) if p.is_file() and dicom.is_dicom_file(p)]
        if not found:
            raise BadArgumentError(
                f"the folder {str(path)!r} holds no DICOM files (named .dcm/.dicom or "
                "starting with the DICOM preamble); give DICOM files or another folder"
            )
        for entry in sorted(path.iterdir()):
            if entry not in found and log is not None:
                why = "a folder" if entry.is_dir() else "not a DICOM file"
                log(f"skipped {entry}: {_DICOMDIR if dicom.is_dicomdir(entry) else why}")
        files.extend(found)
    return files
