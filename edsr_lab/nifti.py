"""Super-resolve NIfTI volumes (.nii, .nii.gz) slice by slice, keeping dtype, scaling, geometry.

Needs the optional extra: ``pip install -e ".[nifti]"`` (nibabel). Without it every function
here that touches a file raises :class:`edsr_lab.errors.MissingDependencyError` with that
command.

The path of one volume::

    stored numbers (int16, uint8, float32...) --(scl_slope, scl_inter)--> values
    --(ONE intensity map for the whole volume, edsr_lab.intensity)--> slices in [0, 1]
    --(sr callable, slices batched, along --axis)--> SR slices, unclamped
    --(the same map back, clipped values counted)--> values
    --(inverse scl, rounded, clipped to the dtype)--> stored numbers, same dtype

* :func:`read_nifti` -> :class:`NiftiVolume` (stored array, scaling, affine, header, and the
  intensity record if the file was written here).
* :func:`write_nifti` writes an upscaled volume: same image class (NIfTI-1 or -2), dtype and
  scl_slope/scl_inter; the in-plane voxel size divided by ``s``; the affine (both sform and
  qform, with their codes) moved by the pixel-centre shift of :mod:`edsr_lab.geometry`
  (voxel 0 at old index ``-(s - 1) / (2 s)`` along each upscaled axis: a quarter of the old
  voxel at x2); ``descrip`` saying it is a super-resolved image; the intensity record as JSON
  in a header extension (code 6, "comment": the NIfTI-1 place for free text; the 80-byte
  ``descrip`` is too short for it).
* :func:`upscale_nifti` does the whole path for one file.

4-D files (fMRI, diffusion, several echoes) are done volume by volume along the 4th axis,
all with one map; 5-D and more are refused. Complex and RGB NIfTI are refused. NaN voxels
are refused (fill them first): the model cannot take them and a silent fill would invent
tissue.

Super-resolution invents plausible detail: a super-resolved volume is not a measurement and
must not be used for diagnosis without a clinical validation of the whole pipeline.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edsr_lab.errors import (
    BadArgumentError,
    ImageReadError,
    MissingDependencyError,
    OutputExistsError,
)
from edsr_lab.files import atomic_write, check_target
from edsr_lab.geometry import nifti_upscaled_affine
from edsr_lab.intensity import ClipCount, IntensityMap, intensity_map
from edsr_lab.volume import SR, super_resolve_volume

__all__ = [
    "INSTALL_HINT",
    "NiftiResult",
    "NiftiVolume",
    "is_nifti_file",
    "read_nifti",
    "require_nibabel",
    "upscale_nifti",
    "write_nifti",
]

#: The command that installs what this module needs.
INSTALL_HINT = 'pip install -e ".[nifti]"  (or: pip install nibabel)'

_COMMENT_CODE = 6  # NIFTI_ECODE_COMMENT
# What nibabel raises for damaged files (besides its ImageFileError).
_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError, zlib.error)


def require_nibabel() -> Any:
    """Import nibabel, or raise one clear line saying how to install it (a command calls it
    first, so a missing extra is said before a model is loaded)."""
    try:
        import nibabel
    except ImportError as err:
        raise MissingDependencyError(
            f"reading and writing NIfTI needs nibabel, which is not installed ({err}); "
            f"install the extra with: {INSTALL_HINT}"
        ) from None
    return nibabel


def is_nifti_file(path: str | os.PathLike[str]) -> bool:
    """True for ``.nii`` / ``.nii.gz`` names, or a file with the NIfTI-1/2 magic bytes.

    Needs no nibabel, so a command can route files before importing anything.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return True
    if not path.is_file():  # never open a FIFO or a folder
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(348)
    except OSError:
        return False
    return head[344:348] in (b"n+1\0", b"ni1\0") or head[4:8] == b"n+2\0"


@dataclass
class NiftiVolume:
    """A NIfTI image as stored.

    Attributes:
        stored: numpy array (X, Y, Z[, T]) of the stored numbers (dtype as in the file).
        slope, inter: scl_slope / scl_inter (1 and 0 when the file has none).
        affine: (4, 4) voxel-to-world matrix (nibabel's best affine: sform, else qform).
        image: the nibabel image (header, extensions, class NIfTI-1 or -2).
        path: the file read.
        recorded: the intensity record of a file written by :func:`write_nifti`, or None.
    """

    stored: np.ndarray
    slope: float
    inter: float
    affine: np.ndarray
    image: Any
    path: Path
    recorded: IntensityMap | None = None

    @property
    def values(self) -> np.ndarray:
        """The values ``stored * slope + inter`` (float64 if scaled, else the stored array)."""
        if self.slope == 1.0 and self.inter == 0.0:
            return self.stored
        return self.stored.astype(np.float64) * self.slope + self.inter

    @property
    def zooms(self) -> tuple[float, ...]:
        return tuple(float(z) for z in self.image.header.get_zooms())

    def intensity_map(
        self, spec: str | tuple[float, float] = "auto", *, units: str = "a.u."
    ) -> IntensityMap:
        """The one map of the whole volume (``auto``: its min..max), storing back as read."""
        return intensity_map(
            self.values,
            spec,
            units=units,
            dtype=self.stored.dtype.name,
            slope=self.slope,
            intercept=self.inter,
        )


def read_nifti(path: str | os.PathLike[str]) -> NiftiVolume:
    """Read a .nii / .nii.gz file as stored (see :class:`NiftiVolume`).

    Raises:
        MissingDependencyError: nibabel is not installed.
        ImageReadError: missing or unreadable file, not NIfTI, fewer than 3 or more than 4
            dimensions, a complex or RGB dtype, NaN or infinite voxels.
    """
    nib = require_nibabel()
    path = Path(path).expanduser()
    if not path.is_file():
        raise ImageReadError(path, "there is no such file (expected a .nii or .nii.gz volume)")
    try:
        image = nib.load(str(path))
    except _READ_ERRORS + (nib.filebasedimages.ImageFileError,) as err:
        raise ImageReadError(
            path, f"nibabel cannot read it as NIfTI ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageReadError(path, f"it is a {type(image).__name__}, not a NIfTI-1/2 image")
    shape = tuple(image.shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) not in (3, 4):
        raise ImageReadError(
            path,
            f"it has {len(shape)} dimensions {shape}; only 3-D volumes and 4-D series "
            "(X, Y, Z, T) are super-resolved. Split it first, e.g. with "
            "nibabel.funcs.four_to_three",
        )
    try:
        stored = np.asarray(image.dataobj.get_unscaled()).reshape(shape)
    except _READ_ERRORS as err:  # truncated .gz, offsets past the end...
        raise ImageReadError(
            path, f"its voxel data cannot be read ({type(err).__name__}: {err})"
        ) from None
    if stored.dtype.kind not in "uif" or stored.dtype.fields is not None:
        raise ImageReadError(
            path,
            f"its voxels are {stored.dtype} (complex or RGB); only real grey volumes are "
            "super-resolved",
        )
    stored = stored.astype(stored.dtype.newbyteorder("="), copy=False)
    if stored.dtype.kind == "f" and not np.isfinite(stored).all():
        bad = int((~np.isfinite(stored)).sum())
        raise ImageReadError(
            path,
            f"{bad:,} of its {stored.size:,} voxels are NaN or infinite; fill them first "
            "(e.g. v = img.get_fdata(); v[~numpy.isfinite(v)] = numpy.nanmin(v); save it again)",
        )
    slope, inter = image.dataobj.slope, image.dataobj.inter
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    recorded = None
    for ext in image.header.extensions:
        if ext.get_code() == _COMMENT_CODE:
            content = ext.get_content()
            text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
            recorded = IntensityMap.from_json(text.rstrip("\0")) or recorded
    return NiftiVolume(stored, slope, inter, np.asarray(image.affine), image, path, recorded)


def write_nifti(
    stored: np.ndarray,
    like: NiftiVolume,
    path: str | os.PathLike[str],
    *,
    scale: int,
    axis: int,
    mapping: IntensityMap | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an upscaled volume with ``like``'s class, dtype, scaling and moved geometry.

    Args:
        stored: numpy (X', Y', Z'[, T]) in ``like``'s stored dtype (e.g. from
            :func:`edsr_lab.volume.super_resolve_volume`), the two axes other than ``axis``
            ``scale`` times longer than ``like``'s.
        like: the source volume.
        path: ``.nii`` or ``.nii.gz`` (gzip-compressed); parent folders are created.
        scale: the in-plane factor.
        axis: the slicing axis (not upscaled).
        mapping: the intensity record to store (header extension), or None.
        description: the header's ``descrip`` (at most 80 ASCII characters); default
            ``"edsr_lab xS SR along axis A - not for diagnosis"``.
        overwrite: replace an existing file; default False.

    Returns:
        The path written (atomically).

    Raises:
        BadArgumentError: a shape that is not ``like``'s upscaled, or a bad suffix.
        OutputExistsError / OutputPathError: the file exists / the path is a folder.
    """
    nib = require_nibabel()
    path = Path(path).expanduser()
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise BadArgumentError(f"write_nifti: {str(path)!r} must end in .nii or .nii.gz")
    axes = [a for a in (0, 1, 2) if a != axis]
    expected = list(like.stored.shape)
    for a in axes:
        expected[a] *= scale
    if list(stored.shape) != expected:
        raise BadArgumentError(
            f"write_nifti: the volume is {tuple(stored.shape)} but the source "
            f"{tuple(like.stored.shape)} upscaled x{scale} along axes {axes} is {tuple(expected)}"
        )
    check_target(path, overwrite=overwrite)
    header = like.image.header.copy()
    header.set_data_dtype(like.stored.dtype)
    image = type(like.image)(np.asarray(stored, dtype=like.stored.dtype), None, header)
    new_header = image.header
    for getter, setter in (
        (like.image.header.get_sform, new_header.set_sform),
        (like.image.header.get_qform, new_header.set_qform),
    ):
        old, code = getter(coded=True)
        if old is None:
            old = like.affine  # a form with code 0: still move it, keep code 0
        setter(nifti_upscaled_affine(old, scale, axes), code=int(code))
    if like.slope != 1.0 or like.inter != 0.0:
        new_header.set_slope_inter(like.slope, like.inter)
    text = description or f"edsr_lab x{scale} SR along axis {axis} - not for diagnosis"
    new_header["descrip"] = text.encode("ascii", "replace")[:80]
    extensions = new_header.extensions
    for ext in list(extensions):
        if ext.get_code() == _COMMENT_CODE and IntensityMap.from_json(_ext_text(ext.get_content())):
            extensions.remove(ext)  # a previous pass's record: replaced by this one
    if mapping is not None:
        extensions.append(nib.nifti1.Nifti1Extension(_COMMENT_CODE, mapping.to_json().encode()))
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    atomic_write(path, lambda tmp: _save_as(nib, image, tmp, suffix))
    return path


def _ext_text(content: Any) -> str:
    return (
        content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    ).rstrip("\0")


def _save_as(nib: Any, image: Any, tmp: str, suffix: str) -> None:
    # nibabel picks compression from the file name: write under the right suffix, then move.
    named = tmp + suffix
    try:
        nib.save(image, named)
        os.replace(named, tmp)
    finally:
        if os.path.exists(named):
            os.unlink(named)


@dataclass
class NiftiResult:
    """What :func:`upscale_nifti` did.

    Attributes:
        path: the file written.
        mapping: the volume's intensity map (also stored in the file).
        clipped: values the model pushed outside the map's range (clipped, counted).
        shape_in, shape_out: the stored shapes.
        zooms_out: the new voxel sizes (mm, and the 4th axis' unit).
    """

    path: Path
    mapping: IntensityMap
    clipped: ClipCount
    shape_in: tuple[int, ...]
    shape_out: tuple[int, ...]
    zooms_out: tuple[float, ...]

    def __str__(self) -> str:
        return (
            f"{self.path.name}: {self.shape_in} -> {self.shape_out}, voxels "
            f"{' x '.join(f'{z:g}' for z in self.zooms_out[:3])} mm, range "
            f"{self.mapping.where} ({self.mapping.kind}); {self.clipped}"
        )


def upscale_nifti(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    sr: SR,
    scale: int,
    *,
    axis: int = 2,
    value_range: str | tuple[float, float] = "auto",
    units: str = "a.u.",
    batch_size: int = 8,
    progress: bool = True,
    overwrite: bool = False,
) -> NiftiResult:
    """Super-resolve every slice of a NIfTI volume in-plane and write the result.

    Args:
        source: a .nii / .nii.gz file (3-D, or 4-D done volume by volume).
        output: the .nii / .nii.gz to write.
        sr: the inference callable (e.g. ``edsr_lab.volume.model_sr(model)``): grey
            (N, 1, h, w) in [0, 1] -> (N, 1, s*h, s*w), unclamped.
        scale: what ``sr`` does.
        axis: the slicing axis (0, 1 or 2); the other two are upscaled.
        value_range: the intensity spec for the whole volume (:mod:`edsr_lab.intensity`).
        units: the values' units (``"HU"`` for a CT in Hounsfield units enables CT presets).
        batch_size: slices per call of ``sr``.
        progress: show a progress bar.
        overwrite: replace ``output`` if it exists.

    Returns:
        A :class:`NiftiResult` (print it for a one-line summary).
    """
    volume = read_nifti(source)
    if not overwrite and Path(output).expanduser().exists():
        raise OutputExistsError(
            f"{str(output)!r} already exists; choose another name or pass overwrite=True"
        )
    mapping = volume.intensity_map(value_range, units=units)
    result = super_resolve_volume(
        volume.values, sr, scale, mapping, axis=axis, batch_size=batch_size, progress=progress,
        desc=volume.path.name,
    )  # fmt: skip
    out = result.values.reshape(_upscaled(volume.stored.shape, scale, axis))
    path = write_nifti(
        out, volume, output, scale=scale, axis=axis, mapping=mapping, overwrite=overwrite
    )
    zooms = list(volume.zooms)
    for a in (0, 1, 2):
        if a != axis:
            zooms[a] /= scale
    return NiftiResult(
        path, mapping, result.clipped, tuple(volume.stored.shape), tuple(out.shape), tuple(zooms)
    )


def _upscaled(shape: tuple[int, ...], scale: int, axis: int) -> tuple[int, ...]:
    return tuple(n * scale if a != axis and a < 3 else n for a, n in enumerate(shape))
