"""The intensity policy (edsr_lab.intensity): each rule checked against its definition."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edsr_lab.errors import BadArgumentError, ImageInputError
from edsr_lab.intensity import PRESETS, ClipCount, IntensityMap, intensity_map, parse_range


def _ct_like(seed: int = 0) -> np.ndarray:
    """12-bit CT content in HU: -896..1167, like pydicom's CT_small.dcm."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-896, 1168, size=(2, 12, 10)).astype(np.int16)
    hu[0, 0, 0], hu[1, 5, 5] = -896, 1167
    return hu


def test_auto_uses_the_data_range_and_round_trips_integers_exactly():
    stored = (_ct_like() + 1024).astype(np.uint16)  # 128..2191 in a 16-bit container
    m = intensity_map(stored)
    assert (m.lo, m.hi, m.kind, m.dtype) == (128.0, 2191.0, "auto", "uint16")
    unit, clipped = m.to_unit(stored)
    assert unit.dtype == torch.float32 and float(unit.min()) == 0.0 and float(unit.max()) == 1.0
    assert clipped.clipped == 0 and clipped.total == stored.size
    back, count = m.decode(unit)
    assert back.dtype == np.uint16 and np.array_equal(back, stored) and count.clipped == 0
    # The container's scale (what load_image does today) would give a nearly black image.
    assert float((stored / 65535).max()) < 0.034


def test_auto_for_uint8_is_the_photo_convention():
    m = intensity_map(np.array([[10, 20]], dtype=np.uint8))
    assert (m.lo, m.hi) == (0.0, 255.0)
    unit, _ = m.to_unit(np.array([51], dtype=np.uint8))
    assert float(unit[0]) == pytest.approx(0.2)


def test_a_shift_of_the_stored_values_gives_the_model_the_same_image():
    hu = _ct_like()
    as_png = (hu + 1024).astype(np.uint16)
    m_hu, m_png = intensity_map(hu, units="HU"), intensity_map(as_png)
    assert torch.equal(m_hu.to_unit(hu)[0], m_png.to_unit(as_png)[0])
    assert m_hu.peak == m_png.peak == 2063.0


def test_one_map_for_a_volume_covers_every_slice():
    vol = _ct_like()
    m = intensity_map(vol)
    per_slice = [intensity_map(s) for s in vol]
    assert m.lo == min(p.lo for p in per_slice) and m.hi == max(p.hi for p in per_slice)
    assert m.to_unit(vol)[1].clipped == 0


def test_storage_rescale_goes_back_to_the_stored_integers():
    stored = np.array([[0, 1, 4095]], dtype=np.int16)
    hu = stored * 1.0 - 1024.0  # DICOM RescaleSlope 1, RescaleIntercept -1024
    m = intensity_map(hu, units="HU", dtype="int16", slope=1.0, intercept=-1024.0)
    back, _ = m.decode(m.to_unit(hu)[0])
    assert np.array_equal(back, stored)
    half = IntensityMap(0.0, 10.0, dtype="uint16", slope=0.5, intercept=2.0)
    assert half.to_stored(np.array([2.0, 3.0, 7.25]))[0].tolist() == [0, 2, 11]  # 10.5 -> 11


def test_integers_round_halves_up_and_clip_to_the_dtype_counting_it():
    m = IntensityMap(-10.0, 300.0, kind="range", dtype="uint8")
    stored, count = m.to_stored(np.array([-10.0, 0.5, 1.49, 254.5, 300.0]))
    assert stored.tolist() == [0, 1, 1, 255, 255]
    assert (count.below, count.above) == (1, 1)
    floats, count = m.with_storage(dtype="float32").to_stored(np.array([0.25, -3.0]))
    assert floats.dtype == np.float32 and floats.tolist() == [0.25, -3.0] and count.clipped == 0


def test_model_outputs_outside_the_range_are_clipped_and_counted():
    m = intensity_map(np.array([0.0, 100.0]), "0,100", units="HU")
    values, count = m.to_values(torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.25, 2.0]))
    assert values.tolist() == [0.0, 0.0, 50.0, 100.0, 100.0, 100.0]
    assert (count.below, count.above, count.total) == (1, 2, 6)
    assert str(count) == (
        "3 of 6 values (50%) clipped to [0, 100] HU: 1 below, 2 above, "
        "by 58% of the range on average, 100% at most"
    )
    assert count.beyond == 1.0  # the farthest value: 2.0, one range above hi
    hair = m.to_values(torch.tensor([-0.001, 0.5]))[1]  # a background a hair below lo
    assert str(hair).endswith("1 below, 0 above, by 0.1% of the range on average, 0.1% at most")
    both = ClipCount(below=1, beyond=0.2, excess=0.2).add(hair)
    assert both.beyond == 0.2 and str(both).endswith("by 10% of the range on average, 20% at most")
    _, none = m.to_values(torch.tensor([0.0, 1.0]))
    assert none.clipped == 0 and str(none).startswith("0 of 2 values clipped")


def test_a_named_range_or_window_clips_the_input_and_counts_it():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])
    m = intensity_map(hu, "ct-brain", units="HU")
    unit, count = m.to_unit(hu)
    assert unit.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert (count.below, count.above) == (1, 1)
    total = ClipCount(where=m.where).add(count).add(count)
    assert (total.below, total.above, total.total) == (2, 2, 10)


def test_robust_range_clips_outliers_auto_does_not():
    values = np.concatenate([np.linspace(0.0, 100.0, 1000), [50_000.0]])
    auto, robust = intensity_map(values), intensity_map(values, "robust:1,99")
    assert auto.hi == 50_000.0 and auto.to_unit(values)[1].clipped == 0
    assert robust.hi < 101.0
    assert robust.to_unit(values)[1].above >= 1


def test_hu_presets_are_refused_on_values_of_unknown_units():
    stored = (_ct_like() + 1024).astype(np.uint16)
    with pytest.raises(BadArgumentError, match="Hounsfield.*units='HU'"):
        intensity_map(stored, "ct")
    m = intensity_map(_ct_like(), "ct", units="HU")
    assert (m.lo, m.hi, m.kind) == (*PRESETS["ct"][:2], "ct")
    assert intensity_map(stored, "12bit").hi == 4095.0  # stored-units presets are fine


def test_a_constant_image_maps_to_zero_and_back():
    flat = np.full((3, 4), 700, dtype=np.int16)
    m = intensity_map(flat)
    assert (m.lo, m.hi) == (700.0, 701.0)
    unit, _ = m.to_unit(flat)
    assert float(unit.abs().max()) == 0.0
    assert np.array_equal(m.decode(unit)[0], flat)


def test_the_record_is_json_and_reads_back():
    m = IntensityMap(-896.0, 1167.0, "auto", "int16", "HU", 1.0, -1024.0)
    record = json.loads(m.to_json())
    assert record == m.to_dict() and record["edsr_lab_intensity"] == 1
    assert IntensityMap.from_dict(record) == m
    assert IntensityMap.from_json(m.to_json()) == m
    assert IntensityMap.from_json("ImageJ=1.54f\nimages=3") is None
    assert IntensityMap.from_json('{"lo": 1}') is None
    with pytest.raises(BadArgumentError, match="not an intensity record"):
        IntensityMap.from_dict({"lo": 0, "hi": 1})
    with pytest.raises(BadArgumentError, match="lacks"):
        IntensityMap.from_dict({"edsr_lab_intensity": 1, "lo": 0})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("auto", ("auto", None)),
        (" AUTO ", ("auto", None)),
        ("robust", ("robust", (0.5, 99.5))),
        ("robust:2,98", ("robust", (2.0, 98.0))),
        ("-1024,3071", ("range", (-1024.0, 3071.0))),
        ((0, 4095), ("range", (0.0, 4095.0))),
        ("12bit", ("12bit", (0.0, 4095.0))),
        ("ct-lung", ("ct-lung", (-1350.0, 150.0))),
    ],
)
def test_parse_range_accepts_the_documented_forms(spec, expected):
    assert parse_range(spec) == expected


@pytest.mark.parametrize(
    "spec", ["", "full", "5,1", "1,2,3", "a,b", "robust:99,1", "robust:-1,50", "nan,1", 7]
)
def test_parse_range_refuses_anything_else_with_the_forms(spec):
    with pytest.raises(BadArgumentError, match="auto|LO,HI|LO < HI|P1 < P2"):
        parse_range(spec)


def test_bad_maps_and_values_are_refused():
    with pytest.raises(BadArgumentError, match="greater than lo"):
        IntensityMap(5.0, 5.0)
    with pytest.raises(BadArgumentError, match="dtype"):
        IntensityMap(0.0, 1.0, dtype="complex64")
    with pytest.raises(BadArgumentError, match="slope"):
        IntensityMap(0.0, 1.0, slope=0)
    with pytest.raises(ImageInputError, match="NaN"):
        IntensityMap(0.0, 1.0).to_unit(np.array([0.5, np.nan]))
    with pytest.raises(BadArgumentError, match="no finite"):
        intensity_map(np.array([np.nan, np.nan]))


def test_outputs_that_rounding_puts_back_in_range_are_not_counted_as_clipped():
    # A background of 0 comes out of a model as -0.2 or so: as integers it is 0 either way,
    # so a volume with a large background must not read "57 % clipped".
    m = IntensityMap(0.0, 1000.0, dtype="int16", units="a.u.")
    step = 1 / m.peak  # one stored integer in [0, 1] units
    out = torch.tensor([-0.4 * step, -0.6 * step, 1 + 0.4 * step, 1 + 0.6 * step, 0.5])
    stored, count = m.decode(out)
    assert (count.below, count.above) == (1, 1)
    assert stored.tolist() == [0, 0, 1000, 1000, 500]
    # with a slope of 2, one stored step is two units: the tolerance follows it
    wide = IntensityMap(0.0, 1000.0, dtype="int16", units="a.u.", slope=2.0)
    assert wide.decode(torch.tensor([-0.8 * step]))[1].below == 0
    # float outputs are not rounded: every value outside the range is clipped and counted
    f = IntensityMap(0.0, 1000.0, dtype="float32", units="a.u.")
    assert f.decode(out)[1].below == 2
