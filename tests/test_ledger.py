"""The course's ledger: the stored table is what the course weights score, row by row."""

from __future__ import annotations

import copy
import json

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from edsr_lab import ledger  # noqa: E402
from edsr_lab.data.div2k import MINI_VALID  # noqa: E402
from edsr_lab.errors import BadArgumentError, CheckpointError  # noqa: E402
from edsr_lab.evaluate import evaluate  # noqa: E402
from edsr_lab.inference import bicubic_upscale
from edsr_lab.paper import TABLE2  # noqa: E402
from edsr_lab.weights import COURSE_DIR, course_weights  # noqa: E402

STORED = ledger.load()
TRAINED = [r.key for r in ledger.ROWS if r.weights]


@pytest.mark.parametrize("key", TRAINED)
def test_stored_row_is_what_the_course_weights_score(key):
    """Recompute one row from the weights: a retrained or edited file, a changed protocol
    or held-out set, or a hand-edited ledger.json makes this fail."""
    fresh = ledger.compute(rows=[key], folder=COURSE_DIR)["cells"][key]
    stored = STORED.data["cells"][key]
    assert set(fresh) == set(stored)
    for s, cell in fresh.items():
        old = stored[s]
        # float rounding differs a little between thread counts; drift is far larger
        assert abs(cell["psnr"] - old["psnr"]) < 0.005, (key, s, cell["psnr"], old["psnr"])
        assert abs(cell["ssim"] - old["ssim"]) < 5e-5, (key, s, cell["ssim"], old["ssim"])
        assert list(cell["per_image"]) == list(ledger.HELDOUT_IMAGES)
        for k in ("weights", "steps", "updates_behind", "init", "loss", "device", "sha256"):
            assert cell.get(k) == old.get(k), (key, s, k)


def test_the_held_out_set_is_the_course_weights_split():
    manifest = json.loads((COURSE_DIR / "manifest.json").read_text())
    assert tuple(manifest["split"]["heldout"]) == ledger.HELDOUT_IMAGES == tuple(MINI_VALID)
    assert not set(manifest["split"]["train"]) & set(ledger.HELDOUT_IMAGES)
    for s in ledger.SCALES:
        pairs = ledger.heldout_pairs(s)
        assert len(pairs) == 2
        for hr, lr in pairs:
            assert hr.dtype == lr.dtype and hr.dtype.is_floating_point
            assert 0 <= float(hr.min()) and float(hr.max()) <= 1
            assert tuple(hr.shape[-2:]) == (s * lr.shape[-2], s * lr.shape[-1])
    # whole images, the same HR at every scale
    assert ledger.heldout_pairs(2)[0][0].shape == ledger.heldout_pairs(4)[0][0].shape


def test_score_uses_the_div2k_protocol_on_whole_images():
    result = ledger.score("bicubic", 2)
    assert result.protocol == "div2k" and [r.name for r in result.rows] == list(MINI_VALID)
    pairs = ledger.heldout_pairs(2)
    same = evaluate(lambda x: bicubic_upscale(x, 2), pairs, 2, protocol="div2k")
    other = evaluate(lambda x: bicubic_upscale(x, 2), pairs, 2, protocol="benchmark")
    assert result.mean_psnr == pytest.approx(same.mean_psnr)
    assert abs(other.mean_psnr - result.mean_psnr) > 0.5  # the protocol matters
    assert result.mean_psnr == pytest.approx(STORED.cell("bicubic", 2).psnr, abs=1e-3)
    quick = ledger.score("bicubic", 2, compute_ssim=False)
    assert quick.mean_psnr == pytest.approx(result.mean_psnr) and quick.mean_ssim != quick.mean_ssim


def test_the_table_grows_notebook_by_notebook():
    sizes = {nb: len(STORED.rows(nb)) for nb in ("01", "02", "03", "05", "06", "09", "10")}
    assert sizes == {"01": 0, "02": 2, "03": 4, "05": 5, "06": 6, "09": 7, "10": 7}
    assert STORED.rows(3) == STORED.rows("03")
    t02, t05 = STORED.table(upto="02"), STORED.table(upto="05")
    assert "SRResNet, L2" in t02 and "EDSR baseline + BN" not in t02
    assert "EDSR baseline, L2" in t05 and "MDSR" not in t05
    assert "MDSR baseline" in STORED.table(upto="09")
    md = STORED.table(upto="09", markdown=True)
    assert md.count("\n| ") == 1 + len(ledger.ROWS) and "|---|" in md


def test_the_paper_column_is_table2():
    for row in ledger.ROWS:
        for s in ledger.SCALES:
            want = TABLE2[row.paper][s] if row.paper else None
            assert STORED.paper(row.key, s) == want
    assert STORED.paper_gain("baseline_l1", 2) == pytest.approx(34.55 - 31.01)
    b = STORED.cell("bicubic", 2).psnr
    assert STORED.gain("baseline_l2", 2) == pytest.approx(STORED.cell("baseline_l2", 2).psnr - b)
    # a row without course weights shows the paper's value and no course value
    assert STORED.cell("edsr", 2) is None and STORED.gain("edsr", 2) is None
    assert "35.03" in STORED.table(upto="06")


def test_every_trained_row_beats_bicubic_and_steps_are_recorded():
    for key in TRAINED:
        for s in ledger.SCALES:
            cell = STORED.cell(key, s)
            if cell is None or key == "bicubic":
                continue
            assert cell.psnr > STORED.cell("bicubic", s).psnr, (key, s)
            assert cell.updates_behind >= cell.steps >= 500


def test_unequal_updates_are_said_and_equal_ones_are_not():
    data = copy.deepcopy(STORED.data)
    for cells in data["cells"].values():
        if "2" in cells and cells["2"]["weights"] != "bicubic":
            cells["2"]["steps"] = cells["2"]["updates_behind"] = 1000
    equal = ledger.Ledger(data)
    assert "UNEQUAL" not in equal.table(upto="09")
    data["cells"]["baseline_bn"]["2"]["updates_behind"] = 1234
    unequal = ledger.Ledger(data).table(upto="09")
    assert "UNEQUAL updates" in unequal and "1,234" in unequal
    # rows not shown yet do not count
    assert "UNEQUAL" not in ledger.Ledger(data).table(upto="02")


def test_x3_and_x4_cells_say_where_their_weights_started():
    cell = STORED.cell("baseline_l1", 3)
    assert cell.init == "course_edsr_baseline_x2"
    infos = course_weights(COURSE_DIR)
    assert cell.updates_behind == cell.steps + infos[cell.init].info["steps"]
    assert "started from course_edsr_baseline_x2" in STORED.table(upto="09", scale=3)


def test_plot_draws_bars_for_the_rows_shown():
    fig = STORED.plot(upto="05")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 4 and "SRResNet\nL2" in labels
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"{STORED.gain('srresnet_l2'):+.2f}" in texts and "none" in texts  # baseline L2: paper


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: STORED.rows("11"), "upto must name a notebook"),
        (lambda: STORED.cell("edsr_l1"), "has no row 'edsr_l1'"),
        (lambda: STORED.table(scale=8), "scale must be one of"),
        (lambda: ledger.heldout_pairs(5), "scale must be one of"),
        (lambda: ledger.score("nearest", 2), "only name it knows is 'bicubic'"),
    ],
)
def test_bad_arguments_get_one_clear_line(call, words):
    with pytest.raises(BadArgumentError, match=words) as err:
        call()
    assert "\n" not in str(err.value)


def test_a_broken_ledger_file_or_missing_weights_say_how_to_fix_it(tmp_path):
    bad = tmp_path / "ledger.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="python -m edsr_lab.ledger --write"):
        ledger.load(bad)
    bad.write_text(json.dumps({"format": 99, "cells": {}}))
    with pytest.raises(CheckpointError, match="has format 99, expected 1"):
        ledger.load(bad)
    empty = tmp_path / "weights"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"format": 1, "weights": {}}))
    with pytest.raises(CheckpointError, match="git checkout -- data/course_weights"):
        ledger.compute(rows=["srresnet_l2"], folder=empty)


def test_write_stores_what_compute_returns(tmp_path, monkeypatch):
    fake = {"format": 1, "protocol": "div2k", "images": list(MINI_VALID), "cells": {}}
    monkeypatch.setattr(ledger, "compute", lambda folder=None: fake)
    path = ledger.write(tmp_path / "l.json")
    assert json.loads(path.read_text()) == fake
    assert ledger.load(path).cells == {}


def test_the_l1_row_uses_the_equal_step_weights_when_they_are_shipped():
    """The L1 row's x2 cell is course_edsr_baseline_l1_x2 (as many updates as the L2 row)
    once data/course_weights holds it; until then course_edsr_baseline_x2, with a note."""
    row = next(r for r in ledger.ROWS if r.key == "baseline_l1")
    shipped = "course_edsr_baseline_l1_x2" in course_weights(COURSE_DIR)
    assert row.weights[2] == (
        "course_edsr_baseline_l1_x2" if shipped else "course_edsr_baseline_x2"
    )
    assert (2 in row.notes) is not shipped
    equal = STORED.cell("baseline_l1").updates_behind == STORED.cell("baseline_l2").updates_behind
    assert equal is shipped
    assert ("UNEQUAL" in STORED.table(upto="05")) is not shipped
