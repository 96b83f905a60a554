"""Benchmark sets (download, layout, LR made when missing), evaluate_sets and the
evaluate / download-benchmarks / download-weights commands, against 127.0.0.1."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch
from _http import Server

from edsr_lab import weights
from edsr_lab.cli import main
from edsr_lab.data import benchmarks
from edsr_lab.errors import ArchiveError, DatasetError, DownloadError
from edsr_lab.evaluate import evaluate, evaluate_sets
from edsr_lab.inference import bicubic_upscale
from edsr_lab.io import load_image, save_image
from edsr_lab.models import EDSR, MDSR, save_checkpoint
from edsr_lab.resize import degrade, modcrop

SIZES = [(34, 38), (41, 32)]  # (H, W): not multiples of 2, 3 or 4, like real benchmarks


def _smooth(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 4 + 2, w // 4 + 2, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")[0]


def _tree(base: Path) -> Path:
    """benchmark/<Set>/HR/*.png for the four sets; Set5 also has LR_bicubic/X2."""
    for k, folder in enumerate(benchmarks.BENCHMARK_SETS.values()):
        for i, (h, w) in enumerate(SIZES):
            hr = _smooth(h, w, 10 * k + i)
            save_image(hr, base / "benchmark" / folder / "HR" / f"img{i}.png")
            if folder == "Set5":
                lr = degrade(modcrop(load_image(base / "benchmark/Set5/HR" / f"img{i}.png"), 2), 2)
                save_image(lr, base / "benchmark/Set5/LR_bicubic/X2" / f"img{i}x2.png")
    return base / "benchmark"


def _tar_bytes(base: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(base / "benchmark", arcname="benchmark")
    return buf.getvalue()


@pytest.fixture
def archive(tmp_path):
    _tree(tmp_path / "src")
    return _tar_bytes(tmp_path / "src")


def test_download_benchmarks_extracts_checks_and_skips_when_done(tmp_path, archive):
    root = tmp_path / "data"
    with Server({"benchmark.tar": archive}) as server:
        bench = benchmarks.download_benchmarks(
            root, url=server.url + "benchmark.tar", progress=None
        )
        assert bench == root / "benchmark" and not (root / "benchmark.tar").exists()
        n = len(server.requests)
        benchmarks.download_benchmarks(root, url=server.url + "benchmark.tar", progress=None)
        assert len(server.requests) == n  # done: nothing fetched
    for folder in benchmarks.BENCHMARK_SETS.values():
        assert len(list((bench / folder / "HR").glob("*.png"))) == 2


def test_download_benchmarks_resumes_and_refuses_a_wrong_archive(tmp_path, archive):
    root = tmp_path / "data"
    with Server({"benchmark.tar": archive}, truncate=500) as server:
        with pytest.raises(DownloadError, match="run the same command again"):
            benchmarks.download_benchmarks(root, url=server.url + "benchmark.tar", progress=None)
    with Server({"benchmark.tar": archive}) as server:
        benchmarks.download_benchmarks(root, url=server.url + "benchmark.tar", progress=None)
    assert server.requests == [("/benchmark.tar", f"bytes={len(archive) - 500}-")]
    # An archive without the sets is refused, kept aside, not marked done.
    wrong = io.BytesIO()
    with tarfile.open(fileobj=wrong, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    other = tmp_path / "other"
    with Server({"benchmark.tar": wrong.getvalue()}) as server:
        with pytest.raises(ArchiveError, match=r"benchmark/Set5/HR/\*\.png.*hello\.txt"):
            benchmarks.download_benchmarks(other, url=server.url + "benchmark.tar", progress=None)
    assert (other / "benchmark.tar.corrupt").exists() and not (other / "hello.txt").exists()
    assert not (other / "benchmark" / ".done").exists()


def test_failed_download_leaves_no_empty_folder(tmp_path):
    with Server({}) as server:
        with pytest.raises(DownloadError, match="404"):
            benchmarks.download_benchmarks(
                tmp_path / "new" / "data", url=server.url + "benchmark.tar", progress=None
            )
    assert not (tmp_path / "new").exists()


def test_layout_checks_and_lr_made_when_missing(tmp_path):
    bench = _tree(tmp_path)
    set5 = benchmarks.eval_pairs("set5", 2, root=tmp_path)
    assert [(n, lr.name) for n, _, lr in set5] == [("img0", "img0x2.png"), ("img1", "img1x2.png")]
    hr, lr = benchmarks.load_eval_pair(set5[1][1], set5[1][2], 2)
    assert hr.shape[-2:] == (40, 32) and lr.shape[-2:] == (20, 16)  # HR cropped to 2 x LR
    set14 = benchmarks.eval_pairs("set14", 3, root=tmp_path)
    assert all(lr is None for _, _, lr in set14)
    hr, lr = benchmarks.load_eval_pair(set14[0][1], None, 3)
    assert hr.shape[-2:] == (33, 36) and torch.equal(lr, degrade(hr, 3))
    with pytest.raises(DatasetError, match="X3.*|x3") as info:
        (bench / "Set5/LR_bicubic/X3").mkdir()
        benchmarks.eval_pairs("set5", 3, root=tmp_path)
    assert "img0x3.png" in str(info.value)
    with pytest.raises(DatasetError, match="(?s)Urban100 not found.*download-benchmarks --root"):
        benchmarks.eval_pairs("urban100", 2, root=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="neither a known data set"):
        benchmarks.eval_pairs("set6", 2, root=tmp_path)
    folder = benchmarks.eval_pairs(bench / "B100" / "HR", 4)
    assert [n for n, _, lr in folder if lr is None] == ["img0", "img1"]


class _Named(EDSR):
    """A tiny EDSR that presents itself as the paper's EDSR (to check the paper columns)."""


def _tiny(scale=2):
    torch.manual_seed(0)
    return EDSR(n_resblocks=1, n_feats=8, scale=scale).eval()


def test_evaluate_sets_table_bicubic_and_paper_columns(tmp_path):
    _tree(tmp_path)
    model = _tiny()
    model.weights_info = weights.OFFICIAL["edsr_x2"]  # pretend: the paper's EDSR x2
    report = evaluate_sets(model, ["set5", "set14"], 2, root=tmp_path, progress=False)
    text = report.table()
    assert "38.11/0.9601" in text and "33.66/0.9299" in text  # Table 3 EDSR x2 / bicubic
    assert "33.92/0.9195" in text and "Lim et al. 2017, Table 3" in text
    # The bicubic column is evaluate() of bicubic on the same pairs.
    pairs = [benchmarks.load_eval_pair(h, lr, 2) for _, h, lr in benchmarks.eval_pairs(
        "set5", 2, root=tmp_path)]  # fmt: skip
    bic = evaluate(lambda x: bicubic_upscale(x, 2), pairs, 2)
    assert report.sets[0].bicubic.mean_psnr == pytest.approx(bic.mean_psnr)
    assert len(report.csv_rows()) == 4
    # Under the other protocol the paper's numbers do not apply and are not shown.
    rgb = evaluate_sets(model, ["set5"], 2, protocol="div2k", root=tmp_path, progress=False)
    assert rgb.sets[0].paper is None and "38.11" not in rgb.table()
    plus = evaluate_sets(model, ["set5"], 2, root=tmp_path, self_ensemble=True, progress=False)
    assert plus.paper_model == "EDSR+" and "38.20/0.9606" in plus.table()
    # Central crops are scored as such; the paper's numbers do not apply to them.
    crop = evaluate_sets(model, ["set5"], 2, root=tmp_path, crop=8, progress=False)
    assert crop.sets[0].paper is None and crop.sets[0].paper_bicubic is None
    hr, lr = pairs[0]
    from edsr_lab.data import center_crop_pair

    one = evaluate(lambda x: bicubic_upscale(x, 2), [center_crop_pair(hr, lr, 8, 2)], 2)
    assert crop.sets[0].bicubic.rows[0].psnr == pytest.approx(one.rows[0].psnr)


def test_cli_evaluate_checkpoint_folder_and_csv(tmp_path, capsys):
    _tree(tmp_path)
    save_checkpoint(_tiny(), tmp_path / "m.pt")
    out_csv = tmp_path / "scores.csv"
    argv = ["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data", "set5",
            str(tmp_path / "benchmark/B100/HR"), "--root", str(tmp_path), "--csv", str(out_csv),
            "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Set5" in text and "HR" in text and "33.66/0.9299" in text  # paper bicubic
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 4 and {r["dataset"] for r in rows} == {
        "set5",
        str(tmp_path / "benchmark/B100/HR"),
    }
    assert main(argv) == 2  # the CSV exists: not overwritten without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--scale", "3"]) == 2
    err = capsys.readouterr().err
    assert "upscales by x2 only" in err and err.count("\n") == 1


def test_cli_evaluate_mdsr_per_scale(tmp_path, capsys):
    _tree(tmp_path)
    torch.manual_seed(0)
    save_checkpoint(MDSR(n_resblocks=1, n_feats=8, scales=(2, 3)).eval(), tmp_path / "mdsr.pt")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "mdsr.pt"), "--data", "set14",
            "--root", str(tmp_path), "--no-progress", "--scale", "2", "3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "x2" in out and "x3" in out and "30.24/0.8688" in out and "27.55/0.7742" in out
    assert main(argv[:-2] + ["4"]) == 2


def test_cli_device_and_missing_data_are_one_line(tmp_path, capsys, monkeypatch):
    save_checkpoint(_tiny(), tmp_path / "m.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--no-progress"]
    assert main(base + ["--device", "cuda", "--data", "set5"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert main(base + ["--data", "set5", "--root", str(tmp_path)]) == 2
    assert "download-benchmarks" in capsys.readouterr().err
    assert main(["evaluate", "--data", "set5"]) == 2
    assert "--weights NAME" in capsys.readouterr().err


def test_cli_download_benchmarks_and_weights(tmp_path, archive, capsys, monkeypatch):
    with Server({"benchmark.tar": archive}) as server:
        argv = ["download-benchmarks", "--root", str(tmp_path / "d"),
                "--url", server.url + "benchmark.tar"]  # fmt: skip
        assert main(argv) == 0
    assert "Set5 2, Set14 2, B100 2, Urban100 2" in capsys.readouterr().out
    buf = io.BytesIO()
    torch.save(_tiny().state_dict(), buf)
    data = buf.getvalue()
    info = weights._official("tiny_x2", hashlib.sha256(data).hexdigest()[:8], "EDSR", (2,), None)
    monkeypatch.setitem(weights.OFFICIAL, "tiny_x2", info)
    monkeypatch.setenv("EDSR_LAB_CACHE", str(tmp_path / "cache"))
    with Server({"mirror/" + info.file: data}) as server:
        assert main(["download-weights", "tiny_x2", "--base-url", server.url + "mirror/"]) == 0
    assert (tmp_path / "cache" / "weights" / info.file).read_bytes() == data
    assert main(["download-weights", "nope"]) == 2
    assert "no pretrained weights named 'nope'" in capsys.readouterr().err


def test_cli_evaluate_limit_drops_the_papers_full_set_values(tmp_path, capsys):
    """The paper's number is a mean over the whole set: beside a mean over the first N
    images it would compare different things, so --limit leaves the paper columns empty."""
    _tree(tmp_path)
    save_checkpoint(_tiny(), tmp_path / "m.pt")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data", "set5",
            "--root", str(tmp_path), "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    full = capsys.readouterr().out
    assert main([*argv, "--limit", "1"]) == 0
    limited = capsys.readouterr().out
    assert "33.66/0.9299" in full  # Table 3, bicubic x2 on Set5
    assert "33.66" not in limited and "Lim et al." not in limited
    row = next(line for line in limited.splitlines() if line.startswith("Set5"))
    assert row.split()[1] == "1"  # images scored


def test_hr_is_cropped_to_the_lr_from_the_top_left(tmp_path, capsys):
    """HR sizes that are not multiples of 3 (41 x 34 at x3): the HR kept beside an LR file
    is its top-left 39 x 33, the part the LR was made from. Scored with the LR file or with
    the LR made from the HR, the same numbers."""
    hr = _smooth(41, 34, 7)
    for i in range(2):
        save_image(hr.roll(5 * i, dims=1), tmp_path / "benchmark/Set14/HR" / f"img{i}.png")
    torch.manual_seed(0)
    save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=3).eval(), tmp_path / "x3.pt")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "x3.pt"), "--data", "set14",
            "--root", str(tmp_path), "--no-progress", "--device", "cpu", "--csv"]  # fmt: skip
    assert main([*argv, str(tmp_path / "made.csv")]) == 0
    lr_dir = tmp_path / "benchmark/Set14/LR_bicubic/X3"
    for i in range(2):
        path = tmp_path / "benchmark/Set14/HR" / f"img{i}.png"
        save_image(degrade(modcrop(load_image(path), 3), 3), lr_dir / f"img{i}x3.png")
    assert main([*argv, str(tmp_path / "files.csv")]) == 0
    capsys.readouterr()
    made = list(csv.DictReader((tmp_path / "made.csv").open()))
    files = list(csv.DictReader((tmp_path / "files.csv").open()))
    for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
        assert [float(r[key]) for r in files] == pytest.approx([float(r[key]) for r in made])
