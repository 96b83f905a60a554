"""Multi-process training with torchrun (PyTorch DDP, gloo on the CPU, 2 processes).

The global batch stays the same: each of the 2 ranks draws half of it from its own stream.
DDP averages the ranks' gradients, which is the gradient of the loss over the whole
global batch, so the run must follow a single process fed with both ranks' patches at
once -- up to float summation order (tolerance below).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edsr_lab.data import StepSeededSampler, make_div2k_layout
from edsr_lab.data.sources import DataChoice, load_training_data
from edsr_lab.io import save_image
from edsr_lab.models import build_model, load_checkpoint
from edsr_lab.train import TrainConfig, load_training_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
ITERS, GLOBAL_BATCH, PATCH = 6, 4, 8
# Float summation order differs (2 half-batch gradients averaged vs one batch): after a few
# Adam steps losses agree to ~1e-6 relative and weights to ~1e-7; we allow 100x that.
LOSS_RTOL, WEIGHT_ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def div2k(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ddp")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 3), ("valid", 1)):
        src = base / f"src_{split}"
        src.mkdir()
        for i in range(n):
            save_image(torch.rand(3, 40, 48, generator=g), src / f"{i}.png")
        first = 1 if split == "train" else 801
        make_div2k_layout(src, base / "DIV2K", (2,), split=split, first_index=first)
    return base / "DIV2K"


class _BothRanks:
    """Single-process reference: rank 0's and rank 1's patches as one batch."""

    def __init__(self, samplers):
        self.samplers = samplers

    def sample(self):
        parts = [s.sample() for s in self.samplers]
        return tuple(torch.cat(t) for t in zip(*parts, strict=True))


def _reference(div2k: Path):
    data = load_training_data(DataChoice("div2k", div2k), (2,), patch_size=PATCH, holdout=0.1)
    per_rank = GLOBAL_BATCH // 2
    samplers = [
        StepSeededSampler.from_images(
            data.train, patch_size=PATCH, batch_size=per_rank, device=torch.device("cpu"), rank=r
        )
        for r in range(2)
    ]
    torch.manual_seed(0)
    model = build_model("edsr_baseline", 2, n_resblocks=1, n_feats=8)
    history = train(
        model,
        _BothRanks(samplers),
        TrainConfig(iters=ITERS, log_every=1),
        device="cpu",
        progress=False,
    )
    return model, history


def test_torchrun_two_processes_match_one_process_and_resume(tmp_path, div2k):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "edsr_lab",
        "train",
        "--device",
        "cpu",
        "--data",
        str(div2k),
        "--out",
        str(out),
        "--n-resblocks",
        "1",
        "--n-feats",
        "8",
        "--batch-size",
        str(GLOBAL_BATCH),
        "--patch-size",
        str(PATCH),
        "--eval-every",
        "100",
        "--save-every",
        "2",
    ]
    # Half the run, then --resume to the end: resuming on N ranks must continue each
    # rank's stream where it stopped.
    for extra in (["--iters", str(ITERS // 2)], ["--iters", str(ITERS), "--resume"]):
        proc = subprocess.run(base + extra, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "2 processes x 2 patches = global batch 4" in proc.stdout
    assert proc.stdout.count("validation PSNR") == 1  # only rank 0 reports and writes

    ckpt = load_training_checkpoint(out / "last.pt")
    assert ckpt["step"] == ITERS
    load_checkpoint(out / "last.pt")  # loads as a plain model (no "module." prefixes)
    with open(out / "history.csv") as f:
        ddp_losses = [float(row["loss"]) for row in csv.DictReader(f)]

    model, history = _reference(div2k)
    assert len(ddp_losses) == ITERS
    assert ddp_losses == pytest.approx(history.loss, rel=LOSS_RTOL)
    ref = model.state_dict()
    assert all(torch.allclose(ckpt["model"][k], ref[k], atol=WEIGHT_ATOL) for k in ref)
