"""``train`` never traps a student (issue 13, item 3): each trap a new user fell into, as a
test that fails on the old behaviour.

- Ctrl-C or SIGTERM saves a resumable ``last.pt`` before stopping;
- ``--resume`` of a run killed before its first save starts it again from step 0;
- quick mode gets quick defaults (printed), and the run's duration is printed at the start;
- the progress bar shows the running loss from the first steps, without a GPU sync per step;
- a failed start leaves ``--out`` as it found it;
- the summary says "dB below bicubic", not "-5.00 over bicubic".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from edsr_lab.cli import main
from edsr_lab.data import make_div2k_layout
from edsr_lab.io import save_image
from edsr_lab.train import RunConfig, TrainConfig, load_training_checkpoint, run
from edsr_lab.train.log import History, StepLog
from edsr_lab.train.report import report_lines

ROOT = Path(__file__).resolve().parents[1]

# A tiny model and tiny batches: each step takes milliseconds on a CPU.
TINY = ["--n-resblocks", "1", "--n-feats", "8", "--batch-size", "4", "--patch-size", "8"]


@pytest.fixture(scope="module")
def div2k(tmp_path_factory) -> Path:
    """DIV2K layout: 3 train images (48x60), 2 valid (48x48), LR at x2."""
    base = tmp_path_factory.mktemp("traps")
    g = torch.Generator().manual_seed(0)
    for split, n, size in (("train", 3, (48, 60)), ("valid", 2, (48, 48))):
        src = base / f"src_{split}"
        src.mkdir()
        for i in range(n):
            save_image(torch.rand(3, *size, generator=g), src / f"{i}.png")
        first = 1 if split == "train" else 801
        make_div2k_layout(src, base / "DIV2K", (2,), split=split, first_index=first)
    return base / "DIV2K"


def _train(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["train", "--device", "cpu", *TINY, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- the summary's wording


def test_summary_says_how_many_db_below_or_above():
    summary = {
        "scales": [2],
        "validation_images": ["a", "b"],
        "bicubic": {"psnr_x2": 30.0},
        "init": {"psnr_x2": 20.0},
        "final": {"psnr_x2": 25.0},
    }
    text = "\n".join(report_lines(summary))
    assert "5.00 dB below bicubic" in text and "5.00 dB above the start" in text
    assert "-5.00" not in text and "over bicubic" not in text
    summary["final"]["psnr_x2"] = 31.5
    assert "1.50 dB above bicubic" in "\n".join(report_lines(summary))


# ------------------------------------------------------------------- the progress bar


def _log(device: str, *, log_every: int, iters: int = 1000) -> StepLog:
    config = TrainConfig(iters=iters, log_every=log_every)
    return StepLog(History(config=config.to_dict()), config, torch.device(device), 0, True)


def test_bar_shows_the_running_loss_before_the_first_log_point():
    log = _log("cpu", log_every=1000)
    try:
        for step, loss in enumerate([0.5, 0.3, 0.1], start=1):
            log.record(step, 1e-4, torch.tensor(loss), None)
        # the mean of the steps so far, long before step 1000
        assert "loss 0.30000" in log.bar.postfix and "on 0..255" in log.bar.postfix
    finally:
        log.close()


def test_gpu_losses_are_read_back_every_few_dozen_steps_not_every_step():
    # Only the device's type matters to the step log: no GPU is needed to check the cadence.
    log = _log("cuda", log_every=1000)
    try:
        for step in range(1, 25):
            log.record(step, 1e-4, torch.tensor(0.5), None)
        assert len(log.history) == 0  # nothing read back (no sync) for 24 steps
        log.record(25, 1e-4, torch.tensor(0.5), None)
        assert len(log.history) == 25 and "loss 0.50000" in log.bar.postfix
    finally:
        log.close()


# --------------------------------------------------------- quick defaults and the ETA


def test_quick_mode_gets_short_defaults_and_says_which(capsys, tmp_path, monkeypatch):
    from edsr_lab.cli import build_parser
    from edsr_lab.cli.train import config_from_args

    monkeypatch.setenv("EDSR_LAB_QUICK", "1")
    quick = RunConfig.quick()
    assert quick.iters < 1000 and quick.batch_size < 16 and quick.eval_every < 1000
    cfg, given = config_from_args(build_parser().parse_args(["train"]))
    assert cfg == quick and given == set()
    out = tmp_path / "q"
    # quick mode's data too (the mini-DIV2K); --iters given, the other lengths left out
    args = ["--device", "cpu", "--n-resblocks", "1", "--n-feats", "8", "--iters", "8"]
    assert main(["train", *args, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    said = f"--batch-size {quick.batch_size} --patch-size {quick.patch_size}"
    assert "quick mode (EDSR_LAB_QUICK=1): a short run by default" in stdout and said in stdout
    assert "--iters" not in stdout.split("by default")[1].split("\n")[0]  # it was given
    settings = json.loads((out / "config.json").read_text())["run"]
    assert (settings["batch_size"], settings["patch_size"]) == (quick.batch_size, quick.patch_size)
    assert load_training_checkpoint(out / "last.pt")["step"] == 8
    assert "the 2 updates to go take about" in stdout  # the duration, after the first steps
    # full mode: the paper's recipe
    monkeypatch.setenv("EDSR_LAB_QUICK", "0")
    assert config_from_args(build_parser().parse_args(["train"]))[0] == RunConfig()
    assert RunConfig.defaults().iters == 300_000


def test_given_options_win_over_quick_defaults_and_are_not_listed(
    capsys, tmp_path, div2k, monkeypatch
):
    monkeypatch.setenv("EDSR_LAB_QUICK", "1")
    code, stdout, _ = _train(
        capsys, "--data", str(div2k), "--iters", "2", "--eval-every", "2", "--save-every", "2",
        "--out", str(tmp_path / "g"),
    )  # fmt: skip
    assert code == 0 and "a short run by default" not in stdout
    assert load_training_checkpoint(tmp_path / "g" / "last.pt")["step"] == 2


# --------------------------------------------------------------- a failed start


def test_a_failed_start_leaves_no_folder_behind(capsys, tmp_path, div2k):
    out = tmp_path / "new" / "run"
    code, _, err = _train(capsys, "--data", str(div2k), "--patch-size", "40", "--out", str(out))
    assert code == 2 and "smaller than --patch-size 40" in err
    assert not (tmp_path / "new").exists()


def test_a_start_failing_in_the_loop_removes_only_what_it_wrote(tmp_path, div2k, monkeypatch):
    from edsr_lab.train import runner

    def boom(*args, **kwargs):
        raise RuntimeError("the first step failed")

    monkeypatch.setattr(runner, "train", boom)
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's")
    for out in (tmp_path / "fresh", kept):
        with pytest.raises(RuntimeError, match="first step"):
            run(out=str(out), data=str(div2k), iters=2, device="cpu", n_resblocks=1, n_feats=8,
                batch_size=4, patch_size=8)  # fmt: skip
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


# ------------------------------------------------- resuming a run with no checkpoint yet


def test_resume_of_a_run_killed_before_its_first_save_starts_it_from_step_0(
    capsys, tmp_path, div2k
):
    out = tmp_path / "run"
    args = ["--data", str(div2k), "--eval-every", "3", "--save-every", "3"]
    assert _train(capsys, *args, "--iters", "3", "--out", str(out))[0] == 0
    # What a kill -9 before the first save leaves: the settings and the bicubic summary.
    for name in ("last.pt", "best.pt", "history.csv", "curves.png"):
        (out / name).unlink()
    code, _, err = _train(capsys, "--out", str(out))
    assert code == 2 and "--resume" in err  # the folder is taken: resume it ...
    code, stdout, _ = _train(capsys, "--out", str(out), "--resume")
    assert code == 0, stdout  # ... and resuming works
    assert "no last.pt yet" in stdout and "from step 0" in stdout
    assert load_training_checkpoint(out / "last.pt")["step"] == 3


# --------------------------------------------------------------- Ctrl-C and SIGTERM


def test_the_first_signal_asks_to_stop_and_a_second_one_stops_at_once():
    from edsr_lab.train.loop import _Signals, _TrainingInterrupted

    before = signal.getsignal(signal.SIGINT)
    with _Signals() as signals:
        os.kill(os.getpid(), signal.SIGINT)  # handled: no KeyboardInterrupt here
        time.sleep(0.01)
        assert signals.received == signal.SIGINT and signals.stop_due(at_log_point=False)
        assert signal.getsignal(signal.SIGINT) is before  # the next Ctrl-C acts at once
    assert signal.getsignal(signal.SIGINT) is before
    assert issubclass(_TrainingInterrupted, KeyboardInterrupt)


class _Reader(threading.Thread):
    """Collects a pipe's output while the process runs (the progress bar never ends a line)."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.text = pipe, ""

    def run(self) -> None:
        for chunk in iter(lambda: self.pipe.read1(4096), b""):
            self.text += chunk.decode(errors="replace")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_last_pt_first_and_resume_continues_exactly(
    capsys, tmp_path, div2k, signum, code
):
    """Stopped mid-run with no save due, the run saves last.pt; resumed, it ends with the
    weights of an uninterrupted run."""
    out = tmp_path / "stopped"
    never = ["--eval-every", "100000", "--save-every", "100000"]
    args = ["--data", str(div2k), "--device", "cpu", *TINY, *never]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edsr_lab", "train", *args, "--iters", "100000", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    said, err = _Reader(proc.stdout), _Reader(proc.stderr)
    said.start()
    err.start()
    deadline = time.monotonic() + 120
    while "updates to go" not in said.text:  # printed once the first steps ran
        assert proc.poll() is None, err.text[-2000:]
        assert time.monotonic() < deadline, "no training steps after 120 s"
        time.sleep(0.05)
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == code, err.text[-2000:]
    said.join(timeout=10)
    err.join(timeout=10)
    assert "--resume" in err.text and "saved" in said.text + err.text
    step = load_training_checkpoint(out / "last.pt")["step"]
    assert 6 <= step < 100000

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as the stopped process
    try:
        end = ["--iters", str(step + 3)]
        assert main(["train", "--out", str(out), "--resume", *end]) == 0
        assert main(["train", *args, *end, "--out", str(tmp_path / "straight")]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    a = load_training_checkpoint(out / "last.pt")
    b = load_training_checkpoint(tmp_path / "straight" / "last.pt")
    assert a["step"] == b["step"] == step + 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
