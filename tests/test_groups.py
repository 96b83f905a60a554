"""Patient/series/volume splits (edsr_lab.data.groups): no group on both sides."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edsr_lab.data.groups import (
    check_disjoint,
    dicom_patient,
    dicom_series,
    group_split,
    parent_folder,
    volume_file,
)
from edsr_lab.errors import BadArgumentError, DatasetError


def _slices(n_volumes: int = 10, n_slices: int = 6) -> list[tuple[str, int]]:
    return [(f"vol{v:02d}", z) for v in range(n_volumes) for z in range(n_slices)]


def _volume(item: tuple[str, int]) -> str:
    return item[0]


def test_no_volume_has_slices_on_both_sides():
    items = _slices()
    split = group_split(items, _volume, fraction=0.3)
    assert len(split.heldout_groups) == 3 and len(split.train_groups) == 7
    assert {v for v, _ in split.train}.isdisjoint({v for v, _ in split.heldout})
    assert len(split.train) + len(split.heldout) == len(items)
    check_disjoint(split.train, split.heldout, _volume)  # does not raise
    # A random slice split of the same items leaks: the safety net catches it.
    shuffled = random.Random(0).sample(items, len(items))
    with pytest.raises(DatasetError, match="both the training and the held-out set"):
        check_disjoint(shuffled[:40], shuffled[40:], _volume)


def test_split_depends_only_on_the_keys():
    items = _slices()
    a = group_split(items, _volume)
    b = group_split(random.Random(1).sample(items, len(items)), _volume)
    assert a.heldout_groups == b.heldout_groups
    assert a.train == [i for i in items if i[0] in a.train_groups]  # input order kept
    # Adding volumes never moves an old training volume into the held-out set at a fixed
    # held-out count.
    more = group_split(_slices(12), _volume, fraction=0.2, max_heldout=2)
    fewer = group_split(_slices(10), _volume, fraction=0.2, max_heldout=2)
    assert set(more.heldout_groups) - set(fewer.heldout_groups) <= {"vol10", "vol11"}


def test_sizes_and_bad_arguments():
    assert len(group_split(_slices(2), _volume, fraction=0.9).heldout_groups) == 1  # G - 1
    assert len(group_split(_slices(10), _volume, fraction=0.5, max_heldout=2).heldout_groups) == 2
    with pytest.raises(DatasetError, match="at least 2 groups.*vol00"):
        group_split(_slices(1), _volume)
    with pytest.raises(BadArgumentError, match="fraction"):
        group_split(_slices(), _volume, fraction=1.0)
    with pytest.raises(BadArgumentError, match="max_heldout"):
        group_split(_slices(), _volume, max_heldout=0)


def test_path_keys():
    assert volume_file("/data/sub-01_T1w.nii.gz") == "sub-01_T1w"
    assert volume_file("scan.NII") == "scan" and volume_file("noext") == "noext"
    assert parent_folder("patient_017/slice_003.png") == "patient_017"


def test_real_dicom_files_group_by_patient_and_series(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    root = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name[:2] in ("CT", "MR"))
    assert len(files) >= 20  # extension-less files of two patients, several series
    by_patient = group_split(files, dicom_patient, fraction=0.5)
    assert by_patient.train_groups and by_patient.heldout_groups
    assert {dicom_patient(f) for f in by_patient.train}.isdisjoint(
        {dicom_patient(f) for f in by_patient.heldout}
    )
    by_series = group_split(files, dicom_series, fraction=0.3)
    assert len(by_series.train_groups) + len(by_series.heldout_groups) >= 6
    check_disjoint(by_series.train, by_series.heldout, dicom_series)
    # A file without PatientID is an error naming the file, never a group of its own.
    src = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(src)
    del ds.PatientID
    anonymous = tmp_path / "anon.dcm"
    ds.save_as(anonymous)
    with pytest.raises(DatasetError, match="anon.dcm.*no PatientID"):
        dicom_patient(anonymous)
    (tmp_path / "junk.dcm").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="junk.dcm"):
        dicom_series(tmp_path / "junk.dcm")
