"""Files that hold numbers, not pictures, through ``upscale``: the intensity policy applied.

A 16-bit PNG of a CT slice (HU + 1024 = 128..2191), an int16 or float32 TIFF in Hounsfield
units, a TIFF stack of slices, a NIfTI volume: dividing such a file by its container's
maximum (the photo convention, :func:`edsr_lab.io.load_image`) shows the model a nearly
black image, and a signed or float file has no such maximum at all. ``upscale`` sends them
here instead (:func:`is_values_image`, :func:`edsr_lab.nifti.is_nifti_file`):

* :func:`upscale_values_image`: every page read as stored
  (:func:`edsr_lab.stored.read_values`), **one** intensity map over all of them
  (``--range``: the data's own range by default; ``--units``), every page super-resolved
  with it (:func:`edsr_lab.volume.super_resolve_stack`), mapped back to the file's dtype and
  units, clipped values counted, the map recorded in the output
  (:func:`edsr_lab.stored.save_values`). Output: the input's dtype (uint16 -> 16-bit PNG;
  int16/int32/float32 or several pages -> TIFF), or ``--bits`` 8/16 (PNG, the range spread
  over the integers, the step recorded) or 32 (float32 TIFF in the data's units);
  ``--mode L`` / ``RGB`` convert the channels (alpha modes are for 8-bit pictures).
* :func:`upscale_nifti_file`: :func:`edsr_lab.nifti.upscale_nifti` (slices along ``--axis``).

8-bit pictures keep the photo path of :mod:`edsr_lab.upscale` (their ``auto`` map is the
same ``value / 255``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from edsr_lab.errors import BadArgumentError
from edsr_lab.inference import LUMA
from edsr_lab.io import ImageInfo
from edsr_lab.volume import SR, super_resolve_stack

__all__ = [
    "check_values_mode",
    "is_values_image",
    "nifti_output_name",
    "upscale_nifti_file",
    "upscale_values_image",
    "values_output_name",
]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_values_image(info: ImageInfo | None) -> bool:
    """True for a file read as values: more than 8 bits (16-bit, integer, float) or several
    pages, without transparency (alpha belongs to pictures, which keep the photo path)."""
    return info is not None and not info.has_alpha and (info.dtype != "uint8" or info.pages > 1)


def _out_dtype(info: ImageInfo, bits: str) -> str:
    return {"8": "uint8", "16": "uint16", "32": "float32"}.get(str(bits), info.dtype)


def values_output_name(source: Path, scale: int, info: ImageInfo, bits: str = "auto") -> str:
    """``<stem>_x<s>.png`` for one page of uint8/uint16, else ``<stem>_x<s>.tif``."""
    png = _out_dtype(info, bits) in ("uint8", "uint16") and info.pages == 1
    return f"{source.stem}_x{scale}{'.png' if png else '.tif'}"


def check_values_mode(info: ImageInfo, mode: str, bits: str, source: Path) -> None:
    """Refuse, before anything runs, what a values file cannot be written as."""
    if mode in ("LA", "RGBA"):
        raise BadArgumentError(
            f"--mode {mode}: {str(source)!r} is a {info.dtype} file read as values (the "
            "intensity policy); alpha is added to 8-bit pictures only. Use --mode auto, L "
            "or RGB"
        )
    channels = {"L": 1, "RGB": 3}.get(mode, info.channels)
    if channels == 3 and _out_dtype(info, bits) not in ("uint8", "uint16"):
        raise BadArgumentError(
            f"{str(source)!r}: colour values are stored as 8- or 16-bit integers; pass "
            "--bits 8 or 16, or --mode L"
        )


def _channels(sr: SR, channels: int) -> SR:
    """``sr`` with its output turned into ``channels`` channels (luma or repeated grey)."""

    def convert(x: torch.Tensor) -> torch.Tensor:
        y = sr(x)
        if y.shape[1] == channels:
            return y
        if channels == 1:
            weights = torch.tensor(LUMA, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
            return (y * weights).sum(dim=1, keepdim=True)
        return y.expand(-1, 3, -1, -1)

    return convert


def upscale_values_image(
    source: Path,
    target: Path,
    sr: SR,
    scale: int,
    *,
    value_range: str | tuple[float, float] = "auto",
    units: str | None = None,
    mode: str = "auto",
    bits: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
) -> str:
    """Super-resolve one values file (every page, one map) and write ``target``.

    Args:
        source: a PNG/TIFF (or other Pillow format) with more than 8 bits, or a stack.
        target: ``.png`` or ``.tif`` (as :func:`values_output_name` chose).
        sr: the inference callable (:func:`edsr_lab.volume.model_sr`), unclamped.
        scale: what ``sr`` does.
        value_range: the intensity spec (:func:`edsr_lab.intensity.intensity_map`).
        units: the values' units (``"HU"`` enables the CT presets); default the file's
            recorded units, else ``"stored"``.
        mode: ``"auto"``, ``"L"`` or ``"RGB"``.
        bits: ``"auto"`` (the input's dtype), ``"8"``, ``"16"`` or ``"32"``.
        overwrite: replace ``target``.
        progress: a progress bar over the pages.

    Returns:
        The line to print: sizes, pages, dtype, the range used and what was clipped.
    """
    from edsr_lab.stored import read_values, save_values, storage_for

    image = read_values(source)
    mapping = image.intensity_map(value_range, units=units)
    channels = {"L": 1, "RGB": 3}.get(mode, image.channels)
    storage = mapping  # the input's dtype and rescale (values_output_name chose the format)
    if str(bits) != "auto":
        storage = storage_for(mapping, target.suffix, channels=channels, bits=int(bits))
    out, clipped = super_resolve_stack(
        image.physical, _channels(sr, channels), scale, storage, progress=progress,
        desc=source.name,
    )  # fmt: skip
    path = save_values(out, target, mapping=storage, overwrite=overwrite)
    pages = f"{image.pages} pages, " if image.pages > 1 else ""
    colour = "grey" if channels == 1 else "RGB"
    return (
        f"{source} {tuple(image.values.shape[-2:])} -> {path} {tuple(out.shape[-2:])} "
        f"({pages}{colour}, {storage.dtype}; range {mapping.where} ({mapping.kind}); {clipped})"
    )


def nifti_output_name(source: Path, scale: int) -> str:
    """``<name>_x<s>.nii.gz`` (or ``.nii`` for an uncompressed input)."""
    name = source.name
    for suffix in _NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return f"{name[: -len(suffix)]}_x{scale}{name[-len(suffix) :]}"
    return f"{name}_x{scale}.nii.gz"  # a NIfTI recognised by its magic bytes


def upscale_nifti_file(
    source: Path,
    target: Path,
    sr: SR,
    scale: int,
    *,
    axis: int = 2,
    value_range: str | tuple[float, float] = "auto",
    units: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> str:
    """:func:`edsr_lab.nifti.upscale_nifti` for one file; returns the line to print."""
    from edsr_lab.nifti import upscale_nifti

    result = upscale_nifti(
        source, target, sr, scale, axis=axis, value_range=value_range,
        units=units or "a.u.", progress=progress, overwrite=overwrite,
    )  # fmt: skip
    return f"{source} -> {result}"
