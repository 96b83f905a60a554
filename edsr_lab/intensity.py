"""One intensity policy: stored values <-> the model's [0, 1] <-> stored values again.

Why this module exists. EDSR (Lim et al., CVPRW 2017) was trained on 8-bit photographs
read as ``value / 255``. Medical images store numbers with units: a CT slice holds
Hounsfield units (HU; air -1000, water 0, bone +1000 and more), often as 12-bit integers
(0..4095) inside 16-bit containers; an MR slice holds arbitrary scanner units. Dividing such
a file by its container's maximum (65535) gives the model a nearly black image; guessing a
scale per file makes two copies of one scan give different results. So every path of
``edsr_lab`` that reads medical values (PNG, TIFF, DICOM, NIfTI) goes through one record,
an :class:`IntensityMap`, and writes its results back through the same record.

The policy, in five rules:

1. **A linear map of a range [lo, hi] onto [0, 1].** ``unit = (value - lo) / (hi - lo)``;
   values below ``lo`` become 0 and values above ``hi`` become 1 (clipped, and counted).
   The range is *named* by a spec (see :func:`intensity_map`):

   * ``"auto"`` (the default): the data's own range. For ``uint8`` data it is [0, 255] (the
     course's photo convention; 8-bit files use their whole scale). For anything else
     (uint16 holding 12-bit content, int16 or float HU, DICOM after RescaleSlope/Intercept,
     NIfTI after scl_slope/scl_inter) it is [min, max] of the values: nothing is clipped, so
     the map is exactly invertible, and a 12-bit CT in a 16-bit PNG fills [0, 1] instead of
     [0.002, 0.033]. Since a shift of the stored values (HU + 1024 in a PNG) shifts min and
     max alike, the same slice stored as a PNG, an int16 TIFF or a DICOM gives the model the
     *same* [0, 1] image.
   * ``"robust"`` or ``"robust:P1,P2"``: the P1-th and P2-th percentiles (default 0.5 and
     99.5). One hot pixel (metal, a flow artefact) no longer squeezes the tissue into a few
     grey levels, at the price of clipping the outliers (counted and reported).
   * ``"LO,HI"``: a range in the data's units, e.g. ``"-1024,3071"``.
   * a preset (:data:`PRESETS`): ``"8bit"``, ``"12bit"``, ``"16bit"`` (stored integers),
     ``"ct"`` (the full 12-bit HU range -1024..3071), and CT windows ``"ct-brain"``,
     ``"ct-soft"``, ``"ct-lung"``, ``"ct-bone"`` (in HU). A window clips everything
     outside it: fine for a model trained on that window, lossy otherwise.

2. **One map per volume.** For a volume (NIfTI) or a series (DICOM), ``auto`` and
   ``robust`` are computed over *all* slices together, never slice by slice: with a map per
   slice the same tissue would reach the model at a different grey level in neighbouring
   slices (the model's behaviour, e.g. how much it sharpens or smooths, depends on contrast),
   which shows as slice-to-slice banding in the output volume, and a metric averaged over
   slices would weigh slices by their own contrast. Pass the whole volume to
   :func:`intensity_map`.

3. **Back to the input's units and dtype.** The model's output (in [0, 1]) is mapped back
   with the same record: ``value = lo + unit * (hi - lo)``. HU stay HU; then, if the source
   was stored with a rescale (DICOM ``RescaleSlope/Intercept``, NIfTI ``scl_slope/inter``),
   ``stored = (value - intercept) / slope``; integer dtypes are rounded (halves up) and
   clipped to the dtype's range (12-bit content in a uint16 stays within [lo, hi], so
   12-bit stays 12-bit); float dtypes are cast.

4. **Clipping is counted, never silent.** A model can push values below 0 or above 1
   (overshoot at edges, ringing). They are clipped to [lo, hi] and counted (for an integer
   dtype, only those beyond half a stored step, which rounding would not bring back) in a
   :class:`ClipCount`, which every command reports (``"37 of 65,536 values (0.06%) clipped
   to [-1024, 3071] HU: 12 below, 25 above, by 0.3% of the range on average, 1.2% at
   most"``). To count, the model's output must be mapped back *unclamped* (see
   :func:`edsr_lab.volume.model_sr`).

5. **The record travels with the data.** ``IntensityMap.to_dict()`` is a small JSON-able
   dict (``{"edsr_lab_intensity": 1, "kind": "auto", "lo": -896.0, "hi": 1167.0, "dtype":
   "int16", "units": "HU", "slope": 1.0, "intercept": -1024.0}``) stored in CSV columns,
   a PNG text chunk, the TIFF ImageDescription tag, a NIfTI header extension, DICOM's
   DerivationDescription; :meth:`IntensityMap.from_dict` reads it back.

Metrics on such data. A PSNR computed on the 0..65535 scale of a 12-bit image (55-62 dB)
means nothing; PSNR and SSIM here use the *data range* as the peak: ``peak = hi - lo`` in
the data's units (for CT: HU), ``PSNR = 10 log10(peak^2 / MSE)`` with the MSE in the same
units. :func:`edsr_lab.clinical.psnr_data_range` computes it and says which peak it used;
equivalently ``edsr_lab.metrics.psnr(m.to_unit(sr)[0], m.to_unit(hr)[0], 0, "rgb",
quantize=False)`` with ``m`` the map whose range is the HR's (PSNR is unchanged by one
linear map applied to both images).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edsr_lab.errors import BadArgumentError, ImageInputError

__all__ = [
    "PRESETS",
    "RECORD_KEY",
    "ClipCount",
    "IntensityMap",
    "intensity_map",
    "parse_range",
]

#: Key marking a dict (or JSON text) as an :class:`IntensityMap` record, with its version.
RECORD_KEY = "edsr_lab_intensity"

#: Named ranges: name -> (lo, hi, units, what it is). CT windows are (level - width/2,
#: level + width/2) with the usual width/level pairs (W80/L40 brain, W400/L40 soft tissue,
#: W1500/L-600 lung, W1800/L400 bone).
PRESETS: dict[str, tuple[float, float, str, str]] = {
    "8bit": (0.0, 255.0, "stored", "8-bit integers"),
    "12bit": (0.0, 4095.0, "stored", "12-bit integers (e.g. CT/MR in a 16-bit container)"),
    "16bit": (0.0, 65535.0, "stored", "16-bit integers (the whole container)"),
    "ct": (-1024.0, 3071.0, "HU", "the full 12-bit CT range in Hounsfield units"),
    "ct-brain": (0.0, 80.0, "HU", "CT brain window W80/L40 (clips the rest)"),
    "ct-soft": (-160.0, 240.0, "HU", "CT soft-tissue window W400/L40 (clips the rest)"),
    "ct-lung": (-1350.0, 150.0, "HU", "CT lung window W1500/L-600 (clips the rest)"),
    "ct-bone": (-500.0, 1300.0, "HU", "CT bone window W1800/L400 (clips the rest)"),
}

_ROBUST_DEFAULT = (0.5, 99.5)
_KINDS_HELP = (
    "'auto', 'robust', 'robust:P1,P2', 'LO,HI' (e.g. '-1024,3071') or a preset ("
    + ", ".join(PRESETS)
    + ")"
)
_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass
class ClipCount:
    """How many values were clipped to a range, and on which side.

    Attributes:
        below: values below ``lo`` (or below 0 in unit space).
        above: values above ``hi`` (or above 1 in unit space).
        total: all values seen.
        where: what was clipped to, for the message, e.g. ``"[-1024, 3071] HU"``.
        beyond: how far the farthest counted value lay outside, as a fraction of the
            range (0.004: 0.4 % of hi - lo); 0 where not measured. A large share clipped
            by a hair (a black background at -0.1 %) reads differently from ringing.
        excess: the sum of the counted values' distances outside (fractions of the range),
            for the mean distance in the message.
    """

    below: int = 0
    above: int = 0
    total: int = 0
    where: str = ""
    beyond: float = 0.0
    excess: float = 0.0

    @property
    def clipped(self) -> int:
        return self.below + self.above

    @property
    def fraction(self) -> float:
        return self.clipped / self.total if self.total else 0.0

    def add(self, other: ClipCount) -> ClipCount:
        """Add ``other``'s counts to this one (in place) and return self."""
        self.below += other.below
        self.above += other.above
        self.total += other.total
        self.where = self.where or other.where
        self.beyond = max(self.beyond, other.beyond)
        self.excess += other.excess
        return self

    def __str__(self) -> str:
        if not self.clipped:
            return f"0 of {self.total:,} values clipped{' to ' + self.where if self.where else ''}"
        return (
            f"{self.clipped:,} of {self.total:,} values ({100 * self.fraction:.2g}%) clipped"
            f"{' to ' + self.where if self.where else ''}: {self.below:,} below, "
            f"{self.above:,} above"
            + (
                f", by {_percent(self.excess / self.clipped)} of the range on average, "
                f"{_percent(self.beyond)} at most"
                if self.beyond
                else ""
            )
        )


def _percent(fraction: float) -> str:
    """0.0012 -> "0.12%", 0.5 -> "50%", 1.0 -> "100%" (two digits, never 1e+02)."""
    pct = 100 * fraction
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.2g}%"


def _number(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class IntensityMap:
    """The linear map between stored values and the model's [0, 1], as a small record.

    Attributes:
        lo, hi: the range mapped onto [0, 1], in ``units`` (hi > lo).
        kind: how the range was chosen: ``"auto"``, ``"robust"``, ``"range"`` (named by the
            user as LO,HI) or a preset name.
        dtype: numpy dtype name of the *stored* values (``"uint16"``, ``"int16"``,
            ``"float32"``...): what :meth:`to_stored` writes back.
        units: the units of ``lo``/``hi`` and of the values: ``"HU"``, ``"stored"`` (the
            file's numbers, meaning unknown), ``"a.u."`` (MR arbitrary units), ...
        slope, intercept: the storage rescale, ``value = stored * slope + intercept``
            (DICOM RescaleSlope/Intercept, NIfTI scl_slope/scl_inter); 1 and 0 if none.
    """

    lo: float
    hi: float
    kind: str = "auto"
    dtype: str = "float32"
    units: str = "stored"
    slope: float = 1.0
    intercept: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lo", "hi", "slope", "intercept"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise BadArgumentError(f"IntensityMap: {name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise BadArgumentError(f"IntensityMap: {name} must be finite, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not self.hi > self.lo:
            raise BadArgumentError(
                f"IntensityMap: hi ({self.hi:g}) must be greater than lo ({self.lo:g})"
            )
        if self.slope == 0:
            raise BadArgumentError("IntensityMap: slope must not be 0")
        if self.dtype not in _DTYPES:
            raise BadArgumentError(
                f"IntensityMap: dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}"
            )

    # ---------------------------------------------------------------- the map itself
    @property
    def peak(self) -> float:
        """``hi - lo``: the data range, the peak of PSNR in the data's units."""
        return self.hi - self.lo

    @property
    def where(self) -> str:
        """The range as text, e.g. ``"[-1024, 3071] HU"``."""
        return f"[{_number(self.lo)}, {_number(self.hi)}] {self.units}"

    def to_unit(self, values: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, ClipCount]:
        """Values in ``units`` (any shape) -> float32 tensor in [0, 1], and what was clipped.

        Values outside [lo, hi] (possible with ``robust``, a named range or a window) are
        clipped and counted. NaN values raise ImageInputError (NIfTI files may hold NaN
        outside the brain mask: fill them first, e.g. ``np.nan_to_num(v, nan=v_min)``).
        """
        x = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
        x = x.to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise ImageInputError(
                f"the values hold {int((~torch.isfinite(x)).sum()):,} NaN or infinite entries; "
                "fill them first, e.g. numpy.nan_to_num(values, nan=values[finite].min())"
            )
        unit = (x - self.lo) / self.peak
        count = _count(unit, self.where)
        return unit.clamp_(0.0, 1.0).to(torch.float32), count

    def to_values(self, unit: torch.Tensor | np.ndarray) -> tuple[np.ndarray, ClipCount]:
        """The model's output (any shape, ideally *unclamped*) -> float64 values in ``units``.

        Output values below 0 or above 1 are clipped (to lo / hi) and counted; for an
        integer dtype only those beyond half a stored step (rounding would not undo them).
        """
        u = torch.as_tensor(np.asarray(unit) if not isinstance(unit, torch.Tensor) else unit)
        u = u.detach().cpu().to(torch.float64)
        # An integer output within half a stored step of the range rounds onto its end
        # anyway (a background of 0 with outputs of -0.2): clipping changes nothing there.
        step = abs(self.slope) if np.dtype(self.dtype).kind in "iu" else 0.0
        count = _count(u, self.where, tol=0.5 * step / self.peak)
        u = u.clamp(0.0, 1.0)
        return (u * self.peak + self.lo).numpy(), count

    def to_stored(self, values: np.ndarray | torch.Tensor) -> tuple[np.ndarray, ClipCount]:
        """Values in ``units`` -> the stored dtype: inverse rescale, round, clip to the dtype.

        Integer dtypes: ``floor((value - intercept) / slope + 0.5)``, clipped to the dtype's
        range (counted: it happens only when the range lies outside what the dtype holds).
        Float dtypes: ``(value - intercept) / slope`` cast, not rounded.
        """
        v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
        stored = (v.astype(np.float64) - self.intercept) / self.slope
        dtype = np.dtype(self.dtype)
        if dtype.kind == "f":
            return stored.astype(dtype), ClipCount(total=int(stored.size))
        info = np.iinfo(dtype)
        rounded = np.floor(stored + 0.5)
        where = f"the {self.dtype} range [{info.min}, {info.max}]"
        count = ClipCount(
            below=int((rounded < info.min).sum()),
            above=int((rounded > info.max).sum()),
            total=int(rounded.size),
            where=where,
        )
        return np.clip(rounded, info.min, info.max).astype(dtype), count

    def decode(self, unit: torch.Tensor | np.ndarray) -> tuple[np.ndarray, ClipCount]:
        """The model's output -> stored dtype in one step (:meth:`to_values` then
        :meth:`to_stored`); the count is the model's clipping plus any dtype clipping."""
        values, count = self.to_values(unit)
        stored, dtype_count = self.to_stored(values)
        count.below += dtype_count.below
        count.above += dtype_count.above
        return stored, count

    def with_storage(
        self,
        *,
        dtype: str | None = None,
        slope: float | None = None,
        intercept: float | None = None,
    ) -> IntensityMap:
        """A copy with another stored dtype or rescale (e.g. to write HU as float32)."""
        return IntensityMap(
            self.lo,
            self.hi,
            self.kind,
            dtype if dtype is not None else self.dtype,
            self.units,
            slope if slope is not None else self.slope,
            intercept if intercept is not None else self.intercept,
        )

    # ---------------------------------------------------------------- the record
    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record (see the module docstring, rule 5)."""
        return {
            RECORD_KEY: 1,
            "kind": self.kind,
            "lo": self.lo,
            "hi": self.hi,
            "dtype": self.dtype,
            "units": self.units,
            "slope": self.slope,
            "intercept": self.intercept,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as one line of JSON (for text chunks, tags, CSV cells)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> IntensityMap:
        """Read back a :meth:`to_dict` record. Raises BadArgumentError if it is not one."""
        if not isinstance(record, Mapping) or record.get(RECORD_KEY) != 1:
            raise BadArgumentError(
                f"not an intensity record (a dict with {RECORD_KEY!r}: 1 as written by "
                f"IntensityMap.to_dict): {str(record)[:120]!r}"
            )
        try:
            return cls(
                record["lo"],
                record["hi"],
                str(record.get("kind", "range")),
                str(record.get("dtype", "float32")),
                str(record.get("units", "stored")),
                record.get("slope", 1.0),
                record.get("intercept", 0.0),
            )
        except KeyError as err:
            raise BadArgumentError(f"the intensity record lacks {err}: {dict(record)!r}") from None

    @classmethod
    def from_json(cls, text: str) -> IntensityMap | None:
        """Parse :meth:`to_json` text; None if the text is not such a record (e.g. another
        program's TIFF description), so readers can try it on any free-text field."""
        try:
            record = json.loads(text)
        except (ValueError, TypeError):
            return None
        if not isinstance(record, dict) or record.get(RECORD_KEY) != 1:
            return None
        return cls.from_dict(record)


def _count(unit: torch.Tensor, where: str, tol: float = 0.0) -> ClipCount:
    """Values of ``unit`` below ``-tol`` or above ``1 + tol`` (``tol`` in [0, 1] units)."""
    below, above = int((unit < -tol).sum()), int((unit > 1 + tol).sum())
    beyond = excess = 0.0
    if below or above:
        out = torch.cat([-unit[unit < -tol], unit[unit > 1 + tol] - 1.0])
        beyond, excess = float(out.max()), float(out.sum())
    return ClipCount(below, above, unit.numel(), where, beyond, excess)


def parse_range(spec: str | tuple[float, float]) -> tuple[str, tuple[float, float] | None]:
    """Check a range spec; return ``(kind, numbers)``.

    ``"auto"`` -> ("auto", None); ``"robust"`` -> ("robust", (0.5, 99.5));
    ``"robust:1,99"`` -> ("robust", (1.0, 99.0)); ``"-1024,3071"`` or (-1024, 3071) ->
    ("range", (-1024.0, 3071.0)); a preset name -> (name, (lo, hi)).

    Raises:
        BadArgumentError: anything else, with the accepted forms.
    """
    if isinstance(spec, tuple | list) and len(spec) == 2:
        lo, hi = _two_numbers(spec, spec)
        return "range", (lo, hi)
    if not isinstance(spec, str):
        raise BadArgumentError(f"range must be {_KINDS_HELP}, got {spec!r}")
    text = spec.strip().lower()
    if text == "auto":
        return "auto", None
    if text in PRESETS:
        lo, hi = PRESETS[text][:2]
        return text, (lo, hi)
    if text == "robust":
        return "robust", _ROBUST_DEFAULT
    if text.startswith("robust:"):
        p1, p2 = _two_numbers(text[len("robust:") :].split(","), spec)
        if not 0 <= p1 < p2 <= 100:
            raise BadArgumentError(
                f"range {spec!r}: percentiles must satisfy 0 <= P1 < P2 <= 100, e.g. robust:1,99"
            )
        return "robust", (p1, p2)
    if "," in text:
        return "range", _two_numbers(text.split(","), spec)
    raise BadArgumentError(f"unknown range {spec!r}; use {_KINDS_HELP}")


def _two_numbers(parts: Any, spec: Any) -> tuple[float, float]:
    parts = list(parts)
    bad = BadArgumentError(
        f"range {spec!r}: expected two numbers LO,HI (e.g. -1024,3071); use {_KINDS_HELP}"
    )
    if len(parts) != 2:
        raise bad
    try:
        lo, hi = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise bad from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        raise BadArgumentError(f"range {spec!r}: need finite LO < HI, e.g. -1024,3071")
    return lo, hi


def intensity_map(
    values: np.ndarray | torch.Tensor,
    spec: str | tuple[float, float] = "auto",
    *,
    units: str = "stored",
    dtype: str | np.dtype | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
) -> IntensityMap:
    """Choose the map for ``values`` (one image, or a whole volume/series: rule 2).

    Args:
        values: the data in ``units`` (after any rescale), any shape; for a volume pass all
            of it. NaN/inf are ignored for ``auto``/``robust`` (and refused by ``to_unit``).
        spec: ``"auto"``, ``"robust"``, ``"robust:P1,P2"``, ``"LO,HI"``, ``(lo, hi)`` or a
            preset name (see the module docstring).
        units: units of ``values`` (``"HU"``, ``"stored"``, ``"a.u."``). An HU preset on
            data whose units are not HU is refused (it would be silently off by the
            file's offset, e.g. 1024 for CT saved as HU + 1024).
        dtype: the stored dtype to write back; default ``values.dtype`` (float64 -> float32).
        slope, intercept: the storage rescale (``value = stored * slope + intercept``).

    Returns:
        An :class:`IntensityMap`. A constant image (min == max) gets [min, min + 1], so it
        maps to 0 and back exactly.

    Raises:
        BadArgumentError: a bad spec, an HU preset on non-HU data, no finite values.
    """
    kind, numbers = parse_range(spec)
    array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if dtype is None:
        dtype = "float32" if array.dtype == np.float64 else array.dtype.name
    dtype = np.dtype(dtype).name
    if kind in PRESETS:
        preset_units = PRESETS[kind][2]
        if preset_units == "HU" and units != "HU":
            raise BadArgumentError(
                f"range {kind!r} is in Hounsfield units, but these values are in units "
                f"{units!r}; pass --units HU (units='HU' from Python) if they are HU (e.g. an "
                "int16 TIFF in HU), or use "
                "'auto' / 'LO,HI' in the file's own numbers"
            )
    if kind in ("auto", "robust"):
        finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.ravel()
        if finite.size == 0:
            raise BadArgumentError(
                "cannot choose an intensity range: the data holds no finite values"
            )
        if kind == "auto" and array.dtype == np.uint8:
            lo, hi = 0.0, 255.0
        elif kind == "auto":
            lo, hi = float(finite.min()), float(finite.max())
        else:
            assert numbers is not None
            lo, hi = (float(v) for v in np.percentile(finite, numbers))
        if not hi > lo:
            hi = lo + 1.0  # constant data: any value maps to 0 and back exactly
    else:
        assert numbers is not None
        lo, hi = numbers
    return IntensityMap(lo, hi, kind, dtype, units, slope, intercept)
