"""Test-session settings.

The rule for tests (tests/README.md): every option gets a test that runs with and without it
and asserts a difference; every safety feature gets a test that triggers it; and each such
test is checked by planting the bug it guards against, seeing it fail, and reverting.

Under pytest-xdist each worker (and each notebook kernel it starts) would use as many
torch threads as there are cores; two workers on two cores then oversubscribe the CPU
and run several times slower. One thread per worker keeps the run fast and results
(losses printed in ignored cells, but also asserted margins) as on a 1-thread laptop.

Fixtures shared by the data tests: ``data_dir`` (a fresh ``$EDSR_LAB_DATA``) and
``few_samples`` (a sample folder of three images, so mini-DIV2K builds stay fast).
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # before torch is imported by any test, and inherited by notebook kernels
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import shutil  # noqa: E402  (after the thread settings above)

import pytest  # noqa: E402

from edsr_lab import config  # noqa: E402  (imports no torch)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDSR_LAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def few_samples(tmp_path, monkeypatch):
    """The two mini-DIV2K valid images and one train image: the mini build stays fast."""
    folder = tmp_path / "samples"
    folder.mkdir()
    for name in ("natural_coffee", "texture_gravel", "natural_chelsea"):
        shutil.copy(config.samples_dir() / f"{name}.png", folder)
    monkeypatch.setattr(config, "samples_dir", lambda: folder)
    return folder
