"""``python -m edsr_lab reproduce table2|table3`` on a CPU: tiny budgets and models on a
generated DIV2K layout, fixture weights and a benchmark archive served on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from _http import Server

from edsr_lab import paper, weights
from edsr_lab.cli import build_parser, main
from edsr_lab.cli.reproduce import command_line
from edsr_lab.data import make_div2k_layout
from edsr_lab.evaluate import evaluate_sets
from edsr_lab.io import load_image, save_image
from edsr_lab.models import EDSR, MDSR
from edsr_lab.reproduce.ablation import plan_table2
from edsr_lab.reproduce.report import marker, pair
from edsr_lab.reproduce.rows import SETS
from edsr_lab.resize import degrade, modcrop
from edsr_lab.train import load_training_checkpoint, run

ROOT = Path(__file__).resolve().parents[1]


def _smooth(g: torch.Generator, h: int, w: int) -> torch.Tensor:
    x = torch.rand(1, 3, h // 4 + 2, w // 4 + 2, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear")[0].clamp(0, 1)


def _layout(base: Path, n_valid: int) -> Path:
    """A DIV2K layout: 3 train images (48x60), ``n_valid`` valid ones from 0801 (36x36),
    LR at x2/x3/x4 made with the MATLAB bicubic (make_div2k_layout)."""
    g = torch.Generator().manual_seed(0)
    for split, n, size in (("train", 3, (48, 60)), ("valid", n_valid, (36, 36))):
        src = base / f"src_{split}"
        src.mkdir(parents=True)
        for i in range(n):
            save_image(_smooth(g, *size), src / f"{i}.png")
        first = 1 if split == "train" else 801
        make_div2k_layout(src, base / "DIV2K", (2, 3, 4), split=split, first_index=first)
    return base / "DIV2K"


@pytest.fixture(scope="module")
def div2k(tmp_path_factory) -> Path:
    return _layout(tmp_path_factory.mktemp("div2k"), 10)


def _table2(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["reproduce", "table2", "--device", "cpu", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(md: str) -> dict[tuple[str, str], list[str]]:
    """Table lines by (model, scale) -> their cells."""
    out = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 2 and re.fullmatch(r"x\d", cells[1]):
            out[(cells[0], cells[1])] = cells
    return out


def _head() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_training_checkpoint(path)["model"]


# --------------------------------------------------------------------------- table2


def test_table2_trains_scores_writes_then_skips_and_extends(capsys, tmp_path, div2k):
    out = tmp_path / "t2"
    base = ["--tiny", "--rows", "edsr", "--data", str(div2k), "--out", str(out)]
    code, stdout, err = _table2(capsys, *base, "--updates", "3", "--no-progress")
    assert code == 0, err
    assert "evaluate" not in err  # --no-progress: no bars while scoring
    md = (out / "table2.md").read_text()
    assert md.splitlines()[0] == marker("table2") and md in stdout
    rows = _rows(md)
    assert list(rows) == [("Bicubic", "x2"), ("EDSR", "x2"), ("EDSR+", "x2")]
    # The paper's Table 2 beside each measured value, and the difference between them.
    assert rows[("EDSR", "x2")][4] == "35.03/0.9695"
    assert rows[("EDSR+", "x2")][4] == "35.12/0.9699" and rows[("Bicubic", "x2")][4] == "31.01"
    # The measured value is evaluate_sets' on the run's final weights, DIV2K protocol.
    model = weights.load_model(out / "edsr_x2" / "last.pt")
    ref = evaluate_sets(
        model, ["div2k-valid"], 2, protocol="div2k", root=div2k, limit=10, progress=False
    ).sets[0]
    assert [r.name for r in ref.model.rows] == [f"{i:04d}" for i in range(801, 811)]
    cells = rows[("EDSR", "x2")]
    assert cells[2] == "3" and cells[3] == pair(ref.model.mean_psnr, ref.model.mean_ssim)
    assert cells[5] == f"{ref.model.mean_psnr - 35.03:+.2f}"
    assert rows[("Bicubic", "x2")][3] == pair(ref.bicubic.mean_psnr, ref.bicubic.mean_ssim)
    assert rows[("EDSR+", "x2")][3] != rows[("EDSR", "x2")][3]  # self-ensemble: other outputs
    assert "--tiny" in md and "say nothing about the paper" in md
    # Provenance: the exact command, commit, device, software, date, data, budget.
    assert (
        "- command: `python -m edsr_lab reproduce table2 --out " + str(out) + " --scale 2 "
        "--rows edsr --updates 3 --data " + str(div2k) + " --device cpu --tiny`"
    ) in md
    assert f"- git commit: {_head()}" in md
    assert "- device: CPU" in md and f"torch {torch.__version__}" in md
    assert re.search(r"- date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d .* to \d{4}-", md)
    assert "- budget: 3 updates per run (the paper: 300,000)" in md
    assert "3 training images; scored on valid 0801-0810" in md
    cfg = json.loads((out / "edsr_x2" / "config.json").read_text())["run"]
    assert (cfg["model"], cfg["loss"], cfg["iters"], cfg["n_feats"]) == ("edsr", "l1", 3, 8)
    assert cfg["lr_decay_every"] == 200_000 and cfg["init"] is None  # the paper's schedule

    # Rerun: finished rows are not trained again, their files untouched.
    before = (out / "edsr_x2" / "last.pt").read_bytes()
    code, stdout, _ = _table2(capsys, *base, "--updates", "3", "--no-progress")
    assert code == 0 and stdout.count("not trained again") == 1
    assert "edsr_x2: finished at 3 updates" in stdout
    assert (out / "edsr_x2" / "last.pt").read_bytes() == before
    assert _rows((out / "table2.md").read_text()) == rows

    # A larger budget extends the finished rows from where they stopped.
    code, stdout, _ = _table2(capsys, *base, "--updates", "5")
    assert code == 0 and "edsr_x2: resuming from 3 to 5 updates" in stdout
    assert load_training_checkpoint(out / "edsr_x2" / "last.pt")["step"] == 5
    assert _rows((out / "table2.md").read_text())[("EDSR", "x2")][2] == "5"


def test_interrupted_row_resumes_to_the_weights_of_an_uninterrupted_run(
    capsys, tmp_path, div2k, monkeypatch
):
    import edsr_lab.train

    calls = []  # (resume, iters) of each training run the command starts

    def spy(cfg, **kw):
        calls.append((cfg.resume, cfg.iters))
        return run(cfg, **kw)

    monkeypatch.setattr(edsr_lab.train, "run", spy)
    args = ["--tiny", "--rows", "edsr-baseline", "--data", str(div2k), "--no-progress"]
    # An uninterrupted row of 4 updates.
    code, _, _ = _table2(capsys, *args, "--updates", "4", "--out", str(tmp_path / "a"))
    assert code == 0
    # The same row stopped after 2 updates (as Ctrl-C after a checkpoint leaves it) ...
    (plan,) = plan_table2(
        tmp_path / "b", rows=["edsr-baseline"], updates=4, data=div2k, tiny=True, device="cpu"
    )
    run(dataclasses.replace(plan.config, iters=2), given=plan.given)
    capsys.readouterr()
    folder = tmp_path / "b" / "edsr-baseline_x2"
    assert load_training_checkpoint(folder / "last.pt")["step"] == 2
    # ... is resumed by the rerun and ends with exactly the uninterrupted weights.
    calls.clear()
    code, stdout, _ = _table2(capsys, *args, "--updates", "4", "--out", str(tmp_path / "b"))
    assert code == 0 and "edsr-baseline_x2: resuming from 2 to 4 updates" in stdout
    assert calls == [(True, 4)]  # continued from last.pt, not trained again from scratch
    a, b = _state(tmp_path / "a" / "edsr-baseline_x2" / "last.pt"), _state(folder / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Stopped before its first checkpoint (no last.pt): nothing to resume, it starts again.
    (folder / "last.pt").unlink()
    code, stdout, _ = _table2(capsys, *args, "--updates", "4", "--out", str(tmp_path / "b"))
    assert code == 0 and "edsr-baseline_x2: training from 0 to 4 updates" in stdout
    assert calls[-1] == (False, 4)
    assert load_training_checkpoint(folder / "last.pt")["step"] == 4


def test_x3_starts_from_the_x2_run_unless_scratch(capsys, tmp_path, div2k):
    out = tmp_path / "t2"
    args = ["--tiny", "--rows", "edsr-baseline", "--data", str(div2k), "--out", str(out)]
    code, stdout, err = _table2(capsys, *args, "--scale", "2", "3", "--updates", "2")
    assert code == 0, err
    assert "evaluate" in err  # without --no-progress: a bar while scoring
    x2_last = (out / "edsr-baseline_x2" / "last.pt").absolute()
    run3 = json.loads((out / "edsr-baseline_x3" / "config.json").read_text())["run"]
    assert run3["init"] == str(x2_last) and run3["scales"] == [3]
    assert "x2 -> x3" in stdout  # the run copied all but the upsampler from x2
    rows = _rows((out / "table2.md").read_text())
    assert rows[("EDSR baseline", "x3")][4] == "30.90/0.9298"
    assert [k for k in rows if k[1] == "x3"] == [("Bicubic", "x3"), ("EDSR baseline", "x3")]
    # --scratch: x3 trains from scratch; so does x3 without x2 in the same command.
    plans = plan_table2(out, scales=(2, 3), rows=["edsr-baseline"], scratch=True)
    assert [p.config.init for p in plans] == [None, None]
    (plan,) = plan_table2(out, scales=(3,), rows=["edsr-baseline"])
    assert plan.config.init is None
    # A folder trained from x2 is never continued as a scratch run (or the other way).
    code, _, err = _table2(capsys, *args, "--scale", "3", "--updates", "2", "--scratch")
    assert code == 2 and err.count("\n") == 1 and "holds a run with other settings (init" in err


def test_table2_options_change_the_plan(monkeypatch, tmp_path):
    monkeypatch.setenv("EDSR_LAB_DATA", str(tmp_path / "data"))
    plans = plan_table2()  # the defaults: every row at x2, the paper's recipe
    assert [p.name for p in plans] == [
        "srresnet-l2_x2", "srresnet-l1_x2", "edsr-baseline_x2", "mdsr-baseline", "edsr_x2",
        "mdsr",
    ]  # fmt: skip
    assert [(p.config.model, p.config.loss) for p in plans] == [
        ("srresnet", "l2"), ("srresnet", "l1"), ("edsr_baseline", "l1"),
        ("mdsr_baseline", "l1"), ("edsr", "l1"), ("mdsr", "l1"),
    ]  # fmt: skip
    for p in plans:
        c = p.config
        assert (c.iters, c.batch_size, c.patch_size, c.lr, c.lr_decay_every) == (
            300_000, 16, 48, 1e-4, 200_000
        )  # fmt: skip
        assert c.n_resblocks is None and c.n_feats is None and c.device is None
        assert c.data == str((tmp_path / "data" / "DIV2K").absolute())
        assert Path(c.out).parent == Path("runs/reproduce/table2")
        assert c.scales == ((2, 3, 4) if p.row.multiscale else (2,)) and p.eval_scales == (2,)
    # Each option, given: the plan follows it.
    plans = plan_table2(
        tmp_path / "o", scales=(4, 2), rows=["mdsr", "srresnet-l1"], updates=7,
        data=tmp_path / "mine", tiny=True, device="cpu",
    )  # fmt: skip
    assert [p.name for p in plans] == ["srresnet-l1_x2", "srresnet-l1_x4", "mdsr"]
    assert plans[2].eval_scales == (2, 4) and plans[2].config.scales == (2, 3, 4)
    for p in plans:
        c = p.config
        assert (c.iters, c.n_resblocks, c.n_feats, c.batch_size, c.patch_size) == (7, 1, 8, 4, 8)
        assert c.device == "cpu" and c.data == str((tmp_path / "mine").absolute())
        assert Path(c.out).parent == tmp_path / "o"
    assert plans[1].config.init == str(tmp_path / "o" / "srresnet-l1_x2" / "last.pt")
    # The command shown in the table spells out every option, defaults included.
    args = build_parser().parse_args(["reproduce", "table2"])
    assert command_line(args) == (
        "python -m edsr_lab reproduce table2 --out runs/reproduce/table2 --scale 2 --rows "
        "srresnet-l2 srresnet-l1 edsr-baseline mdsr-baseline edsr mdsr --updates 300000"
    )


def test_table2_refuses_foreign_files_other_runs_and_missing_div2k(capsys, tmp_path, div2k):
    out = tmp_path / "t2"
    out.mkdir()
    (out / "table2.md").write_text("my notes\n")
    args = ["--rows", "edsr-baseline", "--data", str(div2k), "--updates", "2", "--out", str(out)]
    code, _, err = _table2(capsys, "--tiny", *args)
    assert code == 2 and err.count("\n") == 1 and "was not written by `reproduce table2`" in err
    assert (out / "table2.md").read_text() == "my notes\n" and sorted(out.iterdir()) == [
        out / "table2.md"
    ]  # nothing trained
    (out / "table2.md").unlink()
    assert _table2(capsys, "--tiny", *args, "--no-progress")[0] == 0
    before = (out / "edsr-baseline_x2" / "last.pt").read_bytes()
    code, _, err = _table2(capsys, *args)  # the same folder, without --tiny
    assert code == 2 and err.count("\n") == 1
    assert "holds a run with other settings (n_resblocks 1 there, None asked" in err
    assert (out / "edsr-baseline_x2" / "last.pt").read_bytes() == before

    code, _, err = _table2(capsys, "--data", str(tmp_path / "nowhere"), "--out", str(out / "n"))
    assert code == 2 and err.count("\n") == 1
    assert "DIV2K training images not found" in err and "download-div2k" in err
    few = _layout(tmp_path / "few", 2)  # valid holds 0801-0802 only
    code, _, err = _table2(capsys, "--data", str(few), "--out", str(out / "f"), "--tiny")
    assert code == 2 and err.count("\n") == 1 and "0801-0810 at x2" in err
    assert "download-div2k" in err
    for bad, message in (
        (["--rows", "vdsr"], "invalid choice: 'vdsr'"),
        (["--scale", "8"], "invalid choice: 8"),
        (["--updates", "-1"], "must be >= 1"),
        (["--device", "cdua"], "device 'cdua' is not a device name"),
    ):
        code, _, err = _table2(capsys, *bad)
        assert code == 2 and err.count("\n") == 1 and message in err, err


# --------------------------------------------------------------------------- table3

SIZE = (34, 38)  # not a multiple of 2, 3 or 4, like the real benchmark images


def _bench_tree(base: Path) -> Path:
    """data/benchmark/<Set>/HR (one image each: seconds on a CPU); Set5 has LR_bicubic/X2
    like the archive, the other LR images are made with the MATLAB bicubic when scoring."""
    g = torch.Generator().manual_seed(1)
    for folder in ("Set5", "Set14", "B100", "Urban100"):
        hr_path = base / "benchmark" / folder / "HR" / "img0.png"
        save_image(_smooth(g, *SIZE), hr_path)
        if folder == "Set5":
            lr = degrade(modcrop(load_image(hr_path), 2), 2)
            save_image(lr, base / "benchmark/Set5/LR_bicubic/X2" / "img0x2.png")
    return base


def _pt(model: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, tuple[bytes, str, tuple[int, ...], str]]:
    """Fixture 'official' files (tiny models) and a benchmark archive, by server path."""
    torch.manual_seed(0)
    files = {}
    for name, arch, scales, row in (
        *((f"edsr_x{s}", "EDSR", (s,), "EDSR") for s in (2, 3, 4)),
        *((f"edsr_baseline_x{s}", "EDSR", (s,), "EDSR baseline") for s in (2, 3, 4)),
        ("mdsr", "MDSR", (2, 3, 4), "MDSR"),
        ("mdsr_baseline", "MDSR", (2, 3, 4), "MDSR baseline"),
    ):
        if arch == "EDSR":
            model = EDSR(n_resblocks=1, n_feats=8, scale=scales[0])
        else:
            model = MDSR(n_resblocks=1, n_feats=8, scales=scales)
        files[name] = (_pt(model), arch, scales, row)
    src = _bench_tree(tmp_path_factory.mktemp("bench"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src / "benchmark", arcname="benchmark")
    files["benchmark.tar"] = (buf.getvalue(), "", (), "")
    return files


@pytest.fixture
def registry(served, monkeypatch, tmp_path) -> dict[str, bytes]:
    """The official names point at the fixture files (url path -> bytes to serve)."""
    monkeypatch.setenv("EDSR_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDSR_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    paths = {"benchmark.tar": served["benchmark.tar"][0]}
    for name, (data, arch, scales, row) in served.items():
        if name == "benchmark.tar":
            continue
        sha8 = hashlib.sha256(data).hexdigest()[:8]
        monkeypatch.setitem(
            weights.OFFICIAL, name, weights._official(name, sha8, arch, scales, row)
        )
        paths[f"models/{name}-{sha8}.pt"] = data
    return paths


def _table3(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["reproduce", "table3", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_table3_downloads_what_is_missing_and_writes_the_table(capsys, tmp_path, registry):
    root, out = tmp_path / "d", tmp_path / "t3"
    with Server(registry) as server:
        args = ["--root", str(root), "--out", str(out), "--device", "cpu", "--no-progress"]
        code, stdout, err = _table3(
            capsys, *args, "--base-url", server.url + "models/",
            "--benchmark-url", server.url + "benchmark.tar",
        )  # fmt: skip
    assert code == 0, err
    assert "downloading the benchmark sets" in stdout
    assert sorted(p for p, _ in server.requests) == sorted("/" + k for k in registry)
    md = (out / "table3.md").read_text()
    assert md.splitlines()[0] == marker("table3") and md in stdout
    rows = _rows(md)
    labels = ["Bicubic", "EDSR", "MDSR", "EDSR baseline", "MDSR baseline", "EDSR+", "MDSR+"]
    assert list(rows) == [(m, f"x{s}") for s in (2, 3, 4) for m in labels]
    assert "| model | scale | Set5 | Set14 | B100 | Urban100 |" in md
    # Measured cells are evaluate_sets' (benchmark protocol), the paper's in brackets.
    model = weights.load_pretrained("edsr_x2")
    ref = evaluate_sets(model, ["set5", "urban100"], 2, root=root, progress=False)
    set5, urban = ref.sets
    assert (
        rows[("EDSR", "x2")][2]
        == f"{pair(set5.model.mean_psnr, set5.model.mean_ssim)} [38.11/0.9601]"
    )
    assert rows[("EDSR", "x2")][5].startswith(pair(urban.model.mean_psnr, urban.model.mean_ssim))
    assert rows[("Bicubic", "x2")][2] == (
        f"{pair(set5.bicubic.mean_psnr, set5.bicubic.mean_ssim)} [33.66/0.9299]"
    )
    assert rows[("EDSR baseline", "x4")][3].endswith("[-]")  # the paper has no baseline row
    for label in ("EDSR", "EDSR+", "MDSR", "MDSR+"):  # each row: the paper's value or [?]
        for s in (2, 3, 4):
            for cell, key in zip(rows[(label, f"x{s}")][2:], SETS, strict=True):
                value = paper.TABLE3.get(label, {}).get(s, {}).get(key)
                pending = s in paper.TABLE3_PENDING.get(label, ())
                assert cell.endswith(f"[{pair(*value)}]" if value else "[?]"), (label, s, key)
                assert (value is None) == pending
    measured = {k: [c.split(" [")[0] for c in v[2:]] for k, v in rows.items()}
    assert measured[("EDSR+", "x2")] != measured[("EDSR", "x2")]  # 8 flips averaged: other outputs
    # Provenance: command, commit, device, software, date, data, weights + SHA-256 + source.
    assert f"- git commit: {_head()}" in md and "- device: CPU" in md
    assert "- command: `python -m edsr_lab reproduce table3 --out " + str(out) in md
    assert "--base-url " + server.url + "models/" in md
    assert "(images: Set5 1, Set14 1, B100 1, Urban100 1)" in md
    info = weights.get("mdsr")
    sha = hashlib.sha256(registry["models/" + info.file]).hexdigest()
    assert (
        f"- weights: mdsr: {info.file}, SHA-256 {sha} (mirror {server.url}models/{info.file})" in md
    )

    # Offline rerun: the cached weights and the extracted sets are used, nothing fetched;
    # without --base-url the weights are credited to the official server.
    code, stdout, _ = _table3(
        capsys, "--root", str(root), "--out", str(out), "--device", "cpu", "--no-progress",
        "--benchmark-url", _dead_url() + "benchmark.tar", "--models", "mdsr", "--scale", "2",
    )  # fmt: skip
    assert code == 0 and "downloading" not in stdout
    again = (out / "table3.md").read_text()
    assert _rows(again) == {
        k: v for k, v in rows.items() if k[1] == "x2" and k[0] in ("MDSR", "MDSR+")
    } | {("Bicubic", "x2"): rows[("Bicubic", "x2")]}
    official = f"https://cv.snu.ac.kr/research/EDSR/models/{info.file}"
    assert f"SHA-256 {sha} (the official file {official})" in again


def test_table3_options_pick_models_scales_sets_and_the_ensemble(capsys, tmp_path, registry):
    root = _bench_tree(tmp_path / "d")  # the sets are there: nothing to download
    with Server(registry) as server:
        code, _, err = _table3(
            capsys, "--root", str(root), "--out", "o", "--device", "cpu", "--no-progress",
            "--base-url", server.url + "models", "--models", "edsr", "--scale", "4",
            "--sets", "set5", "--no-self-ensemble",
        )  # fmt: skip
    assert code == 0, err
    assert [p for p, _ in server.requests] == ["/models/" + weights.get("edsr_x4").file]
    md = (tmp_path / "o" / "table3.md").read_text()
    assert list(_rows(md)) == [("Bicubic", "x4"), ("EDSR", "x4")]
    assert "| model | scale | Set5 |" in md and "Set14" not in md.split("## Provenance")[0]
    assert _rows(md)[("EDSR", "x4")][2].endswith("[32.46/0.8968]")
    assert "--scale 4 --models edsr --sets set5 --root" in md and "--no-self-ensemble`" in md


def test_table3_defaults_root_out_and_progress(capsys, tmp_path, registry):
    _bench_tree(tmp_path / "data")  # $EDSR_LAB_DATA (the default --root)
    with Server(registry) as server:
        code, _, err = _table3(
            capsys, "--models", "mdsr-baseline", "--scale", "3", "--sets", "b100",
            "--base-url", server.url + "models/",
        )  # fmt: skip
    assert code == 0 and "evaluate" in err  # progress bars without --no-progress
    md = (tmp_path / "runs" / "reproduce" / "table3" / "table3.md").read_text()
    assert list(_rows(md)) == [("Bicubic", "x3"), ("MDSR baseline", "x3")]
    assert "- benchmark sets: data/benchmark (images: B100 1)" in md and "- device: CPU" in md


def test_table3_refuses_a_foreign_table_before_downloading_and_bad_options(
    capsys, tmp_path, registry
):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "table3.md").write_text("# mine\n")
    with Server(registry) as server:
        code, _, err = _table3(
            capsys, "--out", "o", "--base-url", server.url + "models/",
            "--benchmark-url", server.url + "benchmark.tar",
        )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "was not written by `reproduce table3`" in err
    assert server.requests == [] and (tmp_path / "o" / "table3.md").read_text() == "# mine\n"
    for bad, message in (
        (["--models", "vdsr"], "invalid choice: 'vdsr'"),
        (["--sets", "manga109"], "invalid choice: 'manga109'"),
        (["--device", "cdua"], "device 'cdua' is not a device name"),
        (["--base-url", "ftp://x/"], "--base-url"),
    ):
        code, _, err = _table3(capsys, "--out", "p", "--models", "edsr", "--scale", "2", *bad)
        assert code == 2 and err.count("\n") == 1 and message in err, err


def test_paper_table3_rows_are_values_or_marked_pending():
    """Every row the paper's Table 3 has for EDSR/MDSR(+) is in TABLE3 or TABLE3_PENDING,
    never both, and TABLE3's shape is model -> scale -> set -> (PSNR, SSIM)."""
    for model in ("EDSR", "EDSR+", "MDSR", "MDSR+"):
        for s in (2, 3, 4):
            have = s in paper.TABLE3.get(model, {})
            assert have != (s in paper.TABLE3_PENDING.get(model, ())), (model, s)
            if have:
                assert set(paper.TABLE3[model][s]) == set(SETS)
    assert paper.paper_value("MDSR", 4, "set5") is None  # pending rows give no number


def test_reproduce_help_lists_both_tables(capsys):
    assert main(["reproduce", "--help"]) == 0
    out = capsys.readouterr().out
    assert "table2" in out and "table3" in out
    assert main(["reproduce"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


_PROBE = """
import json, runpy, sys
sys.argv = ["edsr_lab"] + json.loads(sys.argv[1])
code = 0
try:
    runpy.run_module("edsr_lab", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize(
    "args, code",
    [
        (["reproduce", "table2", "--help"], 0),
        (["reproduce", "table3", "--help"], 0),
        (["reproduce", "table3", "--models", "vdsr"], 2),
    ],
)
def test_help_and_mistakes_answer_without_importing_torch(args, code):
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)], capture_output=True, text=True,
        cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {"code": code, "torch": False}
