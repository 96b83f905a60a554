"""``train`` loses nothing, trusts no file and refuses what cannot fit (issue 14, items 1, 4,
5, 8, 10, 12 and 14's training messages): each defect of the adversarial probe as a test
that failed on the old code.

- ``--overwrite`` checks every option first, and replaces only the run's own files;
- a folder is locked while a run writes into it; a killed run's lock is taken over;
- a failed start (or a failed ``--resume``) leaves the folder as it found it; a diverged
  run keeps its record and says which command starts it again;
- sizes that cannot fit in memory are refused before anything is built; ``--device meta``;
- a full disk at a save is one line naming the folder and the space needed;
- a forged ``last.pt`` (valid checksum, wrong structure) is refused as damaged;
- a ``last.pt`` folder, a damaged ``summary.json``, an empty ``DIV2K_valid_HR``, a 2**70 seed.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edsr_lab.cli import main
from edsr_lab.data import make_div2k_layout
from edsr_lab.errors import CheckpointError
from edsr_lab.io import save_image
from edsr_lab.models.checkpoints import tensor_checksum
from edsr_lab.train import load_training_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# A tiny model and tiny batches: each step takes milliseconds on a CPU.
TINY = ["--n-resblocks", "1", "--n-feats", "8", "--batch-size", "4", "--patch-size", "8"]
GiB = 2**30
LOCK_NAME = ".edsr_lab-train.lock"  # edsr_lab.train.outdir.LOCK_NAME


@pytest.fixture(scope="module")
def div2k(tmp_path_factory) -> Path:
    """DIV2K layout: 3 train images (48x60), 2 valid (48x48), LR at x2."""
    base = tmp_path_factory.mktemp("safety")
    g = torch.Generator().manual_seed(0)
    for split, n, size in (("train", 3, (48, 60)), ("valid", 2, (48, 48))):
        src = base / f"src_{split}"
        src.mkdir()
        for i in range(n):
            x = torch.rand(1, 3, size[0] // 4, size[1] // 4, generator=g)
            img = torch.nn.functional.interpolate(x, size=size, mode="bilinear")[0]
            save_image(img.clamp(0, 1), src / f"{i}.png")
        first = 1 if split == "train" else 801
        make_div2k_layout(src, base / "DIV2K", (2,), split=split, first_index=first)
    return base / "DIV2K"


@pytest.fixture(scope="module")
def finished(div2k, tmp_path_factory) -> Path:
    """A finished 4-step run (last.pt, best.pt, ...), copied by each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code = main(
        ["train", "--device", "cpu", *TINY, *_SHORT, "--data", str(div2k), "--out", str(out)]
    )
    assert code == 0
    return out


_SHORT = ["--iters", "4", "--eval-every", "2", "--save-every", "2"]


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


@pytest.fixture(autouse=True)
def eight_gib(monkeypatch):
    """The memory check sees a machine with 8 GiB free, whatever this one has."""
    try:
        from edsr_lab.train import budget
    except ImportError:  # the code before the memory check
        return
    monkeypatch.setattr(budget, "available_bytes", lambda device: (8 * GiB, "this machine"))


def _train(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["train", "--device", "cpu", *TINY, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (hidden ones too) and folder under ``folder``, with the files' bytes."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def _one_line(err: str) -> None:
    """The error is one line (after the progress bar, if training had started)."""
    lines = [line for line in err.splitlines() if line and not line.startswith("train:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err


# ------------------------------------------------------------- item 1: --overwrite


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "typo"], "--data typo: no such folder"),
        (["--amp", "bf16"], "--amp bf16 needs a CUDA GPU"),
        (["--device", "meta"], "device 'meta' holds shapes but no data"),
        (["--n-feats", "100000"], "--n-feats 100000: training would need at least"),
        (["--init", "missing.pt"], "--init missing.pt: no such file"),
        (["--seed", str(2**70)], "--seed 1180591620717411303424: must be a whole number"),
        (["--patch-size", "40"], "smaller than --patch-size 40"),
    ],
    ids=["data-typo", "amp-bf16-on-cpu", "device-meta", "n-feats", "init-missing", "seed", "patch"],
)
def test_overwrite_checks_every_option_before_replacing_the_run(
    capsys, run_copy, div2k, args, message
):
    before = _snapshot(run_copy)
    code, _, err = _train(
        capsys, "--data", str(div2k), "--out", str(run_copy), "--overwrite", *args
    )
    assert code == 2 and message in err, err
    _one_line(err)
    assert _snapshot(run_copy) == before


def test_overwrite_refuses_init_weights_of_another_model_before_replacing(capsys, run_copy, div2k):
    before = _snapshot(run_copy)
    best = str(run_copy / "best.pt")
    code, _, err = _train(
        capsys, "--data", str(div2k), "--out", str(run_copy), "--overwrite", "--init", best,
        "--model", "edsr",
    )  # fmt: skip
    assert code == 2 and "does not match --model" in err
    assert _snapshot(run_copy) == before


def test_overwrite_from_its_own_best_pt_replaces_only_the_runs_files(capsys, run_copy, div2k):
    (run_copy / "notes.txt").write_text("the user's")
    best = str(run_copy / "best.pt")
    code, _, _ = _train(
        capsys, "--data", str(div2k), "--out", str(run_copy), "--overwrite", "--init", best,
        *_SHORT,
    )  # fmt: skip
    assert code == 0
    assert (run_copy / "notes.txt").read_text() == "the user's"
    assert json.loads((run_copy / "summary.json").read_text())["init"]["psnr"] > 0
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]  # no lock, no aside


def test_an_overwrite_failing_before_its_first_save_puts_the_old_run_back(
    run_copy, div2k, monkeypatch
):
    from edsr_lab.train import run, runner

    def boom(*args, **kwargs):
        raise RuntimeError("the first step failed")

    before = _snapshot(run_copy)
    monkeypatch.setattr(runner, "train", boom)
    with pytest.raises(RuntimeError, match="first step"):
        run(out=str(run_copy), data=str(div2k), overwrite=True, device="cpu", n_resblocks=1,
            n_feats=8, batch_size=4, patch_size=8, iters=2)  # fmt: skip
    assert _snapshot(run_copy) == before


# --------------------------------------------------------------- item 4: one run at a time


def test_a_run_into_a_folder_another_run_holds_is_refused_naming_it(capsys, run_copy, div2k):
    from edsr_lab.files import FolderLock
    from edsr_lab.train.outdir import LOCK_NAME as lock_name

    assert lock_name == LOCK_NAME
    before = _snapshot(run_copy)
    lock = FolderLock(run_copy, LOCK_NAME, what="the other run").acquire()
    try:
        held = _snapshot(run_copy)
        for extra in (["--resume", "--iters", "6"], ["--overwrite", "--data", str(div2k)]):
            code, _, err = _train(capsys, "--out", str(run_copy), *extra)
            assert code == 2 and "is in use by another training run" in err, err
            assert f"process {os.getpid()}" in err and "the other run" in err
            _one_line(err)
            assert _snapshot(run_copy) == held
    finally:
        lock.release()
    assert _snapshot(run_copy) == before
    assert _train(capsys, "--out", str(run_copy), "--resume", "--iters", "6")[0] == 0


def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_message(capsys, run_copy):
    code = (
        "import os, sys; from edsr_lab.files import FolderLock; "
        f"FolderLock(sys.argv[1], {LOCK_NAME!r}, what='killed').acquire(); os._exit(0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(run_copy)], env=env, check=True)
    stale = json.loads((run_copy / LOCK_NAME).read_text())
    code, out, _ = _train(capsys, "--out", str(run_copy), "--resume", "--iters", "6")
    assert code == 0
    assert f"taking over the lock of process {stale['pid']}" in out and "no longer running" in out
    assert not (run_copy / LOCK_NAME).exists()


def test_two_runs_started_at_once_the_second_is_refused(capsys, tmp_path, div2k):
    """The real race: a run in another process holds the folder; a second one is refused
    instead of both exiting 0 with one silently replacing the other's files."""
    out = tmp_path / "busy"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    never = ["--eval-every", "100000", "--save-every", "100000", "--iters", "100000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edsr_lab", "train", "--device", "cpu", *TINY, *never,
         "--data", str(div2k), "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.json").exists():  # written once the run holds the folder
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        code, _, err = _train(capsys, "--data", str(div2k), "--out", str(out), "--overwrite")
        assert code == 2 and f"in use by another training run (process {proc.pid}" in err, err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert (out / "last.pt").is_file()  # the first run saved before stopping: nothing lost


# ------------------------------------------------------- item 5: failed starts leave no trace


@pytest.mark.parametrize(
    "args",
    [["--amp", "bf16"], ["--device", "meta"], ["--batch-size", "200000", "--patch-size", "48"]],
    ids=["amp-bf16-on-cpu", "device-meta", "batch-size"],
)
def test_a_failed_start_leaves_no_folder_and_an_existing_one_as_it_was(
    capsys, tmp_path, div2k, args
):
    new = tmp_path / "new" / "run"
    code, _, err = _train(capsys, "--data", str(div2k), "--out", str(new), *args)
    assert code == 2
    _one_line(err)
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train(capsys, "--data", str(div2k), "--out", str(empty), *args)[0] == 2
    assert list(empty.iterdir()) == []


def test_a_failed_resume_changes_no_setting(capsys, run_copy):
    before = _snapshot(run_copy)
    code, _, err = _train(
        capsys, "--out", str(run_copy), "--resume", "--amp", "bf16", "--iters", "6"
    )
    assert code == 2 and "needs a CUDA GPU" in err
    assert _snapshot(run_copy) == before  # config.json still says amp auto
    assert _train(capsys, "--out", str(run_copy), "--resume", "--iters", "6")[0] == 0


def test_a_resume_failing_before_its_first_save_puts_config_and_summary_back(run_copy, monkeypatch):
    from edsr_lab.train import run, runner

    def boom(*args, **kwargs):
        raise RuntimeError("the first step failed")

    before = _snapshot(run_copy)
    monkeypatch.setattr(runner, "train", boom)
    with pytest.raises(RuntimeError, match="first step"):
        run(out=str(run_copy), resume=True, iters=8, device="cpu")
    assert _snapshot(run_copy) == before


def test_a_diverged_run_keeps_its_record_and_the_suggested_command_works(capsys, tmp_path, div2k):
    out = tmp_path / "diverged"
    code, _, err = _train(capsys, "--data", str(div2k), "--out", str(out), "--lr", "1e6", *_SHORT)
    assert code == 1 and "diverged at step 2" in err, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] is True and summary["steps"] == 2
    assert {p.name for p in out.iterdir()} == {
        "config.json", "summary.json", "history.csv", "curves.png",
    }  # fmt: skip
    # --resume would repeat the same steps: refused, pointing to --overwrite
    code, _, resume_err = _train(capsys, "--out", str(out), "--resume")
    assert code == 2 and "diverged" in resume_err and "--overwrite" in resume_err
    # the command the message suggests runs (with 10x lower lr): not refused
    suggested = err.split("Start again with a lower learning rate: ")[1].strip()
    words = shlex.split(suggested)
    assert words[:4] == ["python", "-m", "edsr_lab", "train"] and "--overwrite" in words
    assert words[words.index("--lr") + 1] == "100000"
    assert main([*words[3:], "--device", "cpu"]) in (0, 1)
    assert "already holds a run" not in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["run"]["lr"] == 1e5


def test_the_suggested_command_knows_every_train_option():
    """command_line (the command a diverged run prints) writes OPTIONS: an option added to
    the parser but not there would silently drop out of the suggested command."""
    import argparse

    from edsr_lab.cli.train import OPTIONS, add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    (train,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    dests = {a.dest for a in train.choices["train"]._actions} - {"help", "func"}
    assert dests - {"resume", "overwrite"} == set(OPTIONS)


# ---------------------------------------------------------------- item 8: what cannot fit


@pytest.mark.parametrize(
    "args, option",
    [
        (["--n-feats", "100000"], "--n-feats 100000"),
        (["--n-feats", "64", "--n-resblocks", "200000"], "--n-resblocks 200000"),
        (["--batch-size", "200000", "--patch-size", "48"], "--batch-size 200000"),
    ],
    ids=["n-feats", "n-resblocks", "batch-size"],
)
def test_sizes_that_cannot_fit_are_refused_before_the_model_is_built(
    capsys, tmp_path, div2k, monkeypatch, args, option
):
    from edsr_lab import models

    built = []  # the keyword arguments of every models.build_model call (sizes: resized)
    real = models.build_model
    monkeypatch.setattr(models, "build_model", lambda *a, **k: built.append(k) or real(*a, **k))
    code, _, err = _train(capsys, "--data", str(div2k), "--out", str(tmp_path / "o"), *args)
    assert code == 2 and err.startswith(f"error: {option}: training would need at least"), err
    assert "8.0 GiB free" in err
    fix = "--batch-size/--patch-size" if option.startswith("--batch") else "--n-feats/--n-resblocks"
    assert f"use a smaller {fix}" in err, err  # the fix names the option that was too big
    _one_line(err)
    assert built and not any(built)  # only the preset's shapes (on meta), never resized
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate"),
        MemoryError(),
    ],
    ids=["torch-allocator", "MemoryError"],
)
def test_running_out_of_memory_past_the_estimate_is_one_line(
    capsys, tmp_path, div2k, monkeypatch, failure
):
    """The estimate is a lower bound: a step that still runs out of memory is one line
    naming the options to shrink, and the failed start leaves nothing behind."""
    from edsr_lab.train import runner

    def oom(*args, **kwargs):
        raise failure

    monkeypatch.setattr(runner, "train", oom)
    code, _, err = _train(capsys, "--data", str(div2k), "--out", str(tmp_path / "o"))
    assert code == 2 and err.startswith("error: out of memory") and "--batch-size" in err, err
    _one_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "name, scales", [("edsr_baseline", (2,)), ("edsr", (4,)), ("mdsr_baseline", (2, 3, 4)),
                     ("srresnet", (4,))]
)  # fmt: skip
def test_the_memory_estimate_counts_parameters_and_activations_exactly(name, scales):
    from edsr_lab import models
    from edsr_lab.models import build_model
    from edsr_lab.profile import activation_memory
    from edsr_lab.train.budget import estimate_training_memory

    preset = build_model(name, scales)
    kind, base = type(preset), dict(preset.config)
    est = estimate_training_memory(
        lambda b, f: kind(**{**base, "n_resblocks": b, "n_feats": f}),
        n_resblocks=base["n_resblocks"], n_feats=base["n_feats"], scales=scales,
        batch_size=2, patch_size=8,
    )  # fmt: skip
    assert est.parameters == models.count_parameters(preset)
    assert est.weights_bytes == 16 * est.parameters
    small = kind(**{**base, "n_resblocks": 2, "n_feats": 16}).train()
    small_est = estimate_training_memory(
        lambda b, f: kind(**{**base, "n_resblocks": b, "n_feats": f}),
        n_resblocks=2, n_feats=16, scales=scales, batch_size=2, patch_size=8,
    )  # fmt: skip
    x = torch.rand(2, 3, 8, 8)
    if len(scales) == 1:
        measured = activation_memory(small, x)
    else:
        measured = max(
            activation_memory(_AtScale(small, s), x) for s in scales
        )  # MDSR: a step trains one scale
    # exact for convolutions; batch norm's per-channel statistics do not scale with batch
    assert small_est.activation_bytes == pytest.approx(measured, rel=0.02)


class _AtScale(torch.nn.Module):
    def __init__(self, model, scale):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x, self.scale)


# ------------------------------------------------------------ item 10: a full disk at a save


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
    ],
    ids=["ENOSPC", "torch-zip-writer"],
)
def test_a_full_disk_at_a_save_names_the_folder_and_the_space_needed(
    capsys, run_copy, monkeypatch, failure
):
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        if "last.pt" in str(f):
            raise failure
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    before = (run_copy / "last.pt").read_bytes()
    code, _, err = _train(capsys, "--out", str(run_copy), "--resume", "--iters", "6")
    assert code == 2, err
    _one_line(err)
    assert f"cannot save last.pt in {run_copy}" in err and "needed" in err and "free" in err
    assert "--resume" in err
    assert (run_copy / "last.pt").read_bytes() == before
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_at_a_best_pt_save_names_it_and_keeps_last_pt(
    capsys, tmp_path, div2k, monkeypatch
):
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        if "best.pt" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    code, _, err = _train(
        capsys, "--data", str(div2k), "--out", str(out), "--iters", "4", "--save-every", "2",
        "--eval-every", "4",
    )  # fmt: skip
    assert code == 2, err
    _one_line(err)
    assert f"cannot save best.pt in {out}" in err and "needed" in err and "--resume" in err
    assert (out / "last.pt").is_file() and not (out / "best.pt").exists()
    assert load_training_checkpoint(out / "last.pt")["step"] == 2


# ------------------------------------------------------------ item 12: a forged last.pt


def _forge(path: Path, change) -> None:
    """Change the training state of ``path`` and store a valid checksum again."""
    payload = torch.load(path, weights_only=True)
    change(payload["training"])
    payload["checksum"] = tensor_checksum(payload["state_dict"], payload["training"])
    torch.save(payload, path)


FORGERIES = {
    "history-text": lambda t: t.update(history={"loss": "abc"}),
    "history-list": lambda t: t.update(history=[1, 2]),
    "history-word-in-losses": lambda t: t["history"]["loss"].append("x"),
    "rng-3-bytes": lambda t: t.update(rng={"cpu": torch.zeros(3, dtype=torch.uint8)}),
    "sampler-empty": lambda t: t.update(sampler={}),
    "sampler-state-empty": lambda t: t.update(sampler={"state_dict": {}}),
    "sampler-count": lambda t: t["sampler"]["state_dict"].update(count=99),
    "step-negative": lambda t: t.update(step=-5),
    "step-text": lambda t: t.update(step="x"),
    "scheduler-empty": lambda t: t.update(scheduler={}),
    "optimizer-empty": lambda t: t.update(optimizer={"state": {}, "param_groups": []}),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_training_state_is_refused_as_damaged(capsys, run_copy, forgery):
    _forge(run_copy / "last.pt", FORGERIES[forgery])
    before = _snapshot(run_copy)
    code, _, err = _train(capsys, "--out", str(run_copy), "--resume", "--iters", "8")
    assert code == 2 and "is damaged" in err and "--overwrite" in err, err
    assert f"--init {run_copy / 'best.pt'}" in err
    _one_line(err)
    assert _snapshot(run_copy) == before


def test_the_python_api_refuses_a_forged_state_with_a_checkpoint_error(run_copy):
    _forge(run_copy / "last.pt", FORGERIES["rng-3-bytes"])
    with pytest.raises(CheckpointError, match="random-number state is 3 bytes"):
        load_training_checkpoint(run_copy / "last.pt")


# -------------------------------------------------------------------- item 14: messages


def test_a_last_pt_that_is_a_folder_is_named_as_such(capsys, run_copy):
    (run_copy / "last.pt").unlink()
    (run_copy / "last.pt").mkdir()
    before = _snapshot(run_copy)
    messages = {  # --resume must refuse (not restart at step 0 "with no last.pt yet")
        "--resume": f"--resume: {run_copy / 'last.pt'} is a folder, not the run's training",
        "--overwrite": f"--out {run_copy}: last.pt there is a folder, not the run's file",
    }
    for extra, message in messages.items():
        code, _, err = _train(capsys, "--out", str(run_copy), extra)
        assert code == 2 and message in err, err
        _one_line(err)
    assert _snapshot(run_copy) == before


def test_a_damaged_summary_is_named_and_a_missing_one_rebuilt(capsys, run_copy):
    (run_copy / "summary.json").write_text("{bad")
    before = _snapshot(run_copy)
    code, _, err = _train(capsys, "--out", str(run_copy), "--resume", "--iters", "6")
    assert code == 2 and f"{run_copy / 'summary.json'} is damaged" in err, err
    assert "JSONDecodeError" in err and "move it away" in err
    _one_line(err)
    assert _snapshot(run_copy) == before
    best = load_training_checkpoint(run_copy / "last.pt")["history"]["evals"]
    (run_copy / "summary.json").unlink()  # what the message says: --resume rebuilds it
    code, out, _ = _train(capsys, "--out", str(run_copy), "--resume", "--iters", "6")
    assert code == 0 and "rebuilding it" in out
    summary = json.loads((run_copy / "summary.json").read_text())
    assert summary["scales"] == [2] and summary["steps"] == 6 and "bicubic" in summary
    assert summary["best"]["psnr"] >= max(e["psnr"] for e in best)


def test_an_empty_validation_folder_is_named(capsys, tmp_path, div2k):
    data = tmp_path / "DIV2K"
    shutil.copytree(div2k, data)
    for p in (data / "DIV2K_valid_HR").iterdir():
        p.unlink()
    code, _, err = _train(capsys, "--data", str(data), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{data / 'DIV2K_valid_HR'} holds no PNG images" in err, err
    assert "--holdout" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------- --init: read and checked before the data


@pytest.mark.parametrize("folder", ["run", "last.pt"], ids=["the-run-folder", "a-last.pt-folder"])
def test_an_init_folder_is_named_as_a_folder(capsys, run_copy, div2k, tmp_path, folder):
    init = run_copy if folder == "run" else tmp_path / "other" / "last.pt"
    init.mkdir(parents=True, exist_ok=True)
    before = _snapshot(run_copy)
    code, _, err = _train(
        capsys, "--data", str(div2k), "--out", str(run_copy), "--overwrite", "--init",
        str(init),
    )  # fmt: skip
    assert code == 2 and f"--init {init} is a folder, not a weights file" in err, err
    assert "no such file" not in err
    _one_line(err)
    assert _snapshot(run_copy) == before


@pytest.mark.parametrize(
    "init, extra, message",
    [
        ("missing.pt", [], "--init missing.pt: no such file"),
        ("best.pt", ["--model", "edsr"], "does not match --model"),
    ],
    ids=["missing", "another-model"],
)
def test_init_is_checked_before_the_training_data_is_loaded(
    capsys, run_copy, div2k, monkeypatch, tmp_path, init, extra, message
):
    from edsr_lab.train import runner

    loaded = []
    real = runner.load_training_data
    monkeypatch.setattr(
        runner, "load_training_data", lambda *a, **k: loaded.append(a) or real(*a, **k)
    )
    spec = str(run_copy / init) if init == "best.pt" else init
    out = tmp_path / "new"
    code, _, err = _train(capsys, "--data", str(div2k), "--out", str(out), "--init", spec, *extra)
    assert code == 2 and message in err, err
    _one_line(err)
    assert loaded == [] and not out.exists()


def test_init_at_another_scale_starts_from_the_same_weights_as_ever(run_copy, div2k, monkeypatch):
    """--init is checked early but still read after the model is built: reading draws from
    the seeded generator, and the upsampler init_from adds at x4 comes after those draws."""
    from edsr_lab import models
    from edsr_lab.train import run, runner
    from edsr_lab.weights import load_model

    started = {}

    def stop(cfg, model, *args):
        started.update({k: v.clone() for k, v in model.state_dict().items()})
        raise RuntimeError("stopped before the first step")

    monkeypatch.setattr(runner, "_train", stop)
    best = run_copy / "best.pt"
    with pytest.raises(RuntimeError, match="stopped before"):
        run(out=str(run_copy.parent / "x4"), data=str(div2k / "DIV2K_train_HR"), scales=(4,),
            init=str(best), seed=5, device="cpu", n_resblocks=1, n_feats=8, batch_size=4,
            patch_size=8, iters=2, holdout=0.34)  # fmt: skip
    torch.manual_seed(5)
    models.build_model("edsr_baseline", (4,), n_resblocks=1, n_feats=8)
    expected = models.init_from(load_model(best), 4).state_dict()
    assert started.keys() == expected.keys()
    assert all(torch.equal(started[k], expected[k]) for k in expected)
