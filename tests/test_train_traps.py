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

from pathlib import Path

import pytest
import torch

from edsr_lab.cli import main
from edsr_lab.data import make_div2k_layout
from edsr_lab.io import save_image
from edsr_lab.train import TrainConfig
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
