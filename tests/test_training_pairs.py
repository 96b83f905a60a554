"""training_pairs: the notebooks' one data entry point (DIV2K if present, else mini-DIV2K)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edsr_lab.data import make_div2k_layout, training_pairs
from edsr_lab.errors import DatasetError


def _fake_div2k(root: Path, n_train: int = 3, n_valid: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for split, n, first in (("train", n_train, 1), ("valid", n_valid, 801)):
        src = root.parent / f"src_{split}"
        src.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(
                src / f"{i:02d}.png"
            )
        make_div2k_layout(src, root, scales=(2,), split=split, first_index=first)
    return root


def test_quick_mode_uses_mini_div2k_and_says_so(data_dir, few_samples, monkeypatch, capsys):
    monkeypatch.setenv("EDSR_LAB_QUICK", "1")
    train = training_pairs(2)
    valid = training_pairs(2, "valid")
    out = capsys.readouterr().out
    assert [h.name for h, _ in valid] == ["0801.png", "0802.png"]
    assert len(train) == 1 and train[0][1].name == "0001x2.png"
    assert "mini-DIV2K x2 train, 1 images" in out and "mini-DIV2K x2 valid, 2 images" in out
    assert "DIV2K is found" not in out


def test_full_mode_prefers_div2k_and_validates_on_0801_0810(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("EDSR_LAB_QUICK", "0")
    _fake_div2k(data_dir / "DIV2K")
    train = training_pairs(2)
    valid = training_pairs(2, "valid")
    out = capsys.readouterr().out
    assert [h.name for h, _ in train] == ["0001.png", "0002.png", "0003.png"]
    # the paper's ablation images only, though 12 valid images exist
    assert [h.stem for h, _ in valid] == [f"{i:04d}" for i in range(801, 811)]
    assert out.count("data: DIV2K x2") == 2
    assert len(training_pairs(2, "valid", indices=range(801, 813), verbose=False)) == 12


def test_quick_mode_skips_div2k_but_mentions_it(data_dir, few_samples, monkeypatch, capsys):
    monkeypatch.setenv("EDSR_LAB_QUICK", "1")
    _fake_div2k(data_dir / "DIV2K")
    pairs = training_pairs(2)
    assert "mini_div2k" in str(pairs[0][0])
    assert "quick mode; DIV2K is found" in capsys.readouterr().out


def test_full_mode_without_div2k_falls_back_with_the_fetch_command(
    data_dir, few_samples, monkeypatch, capsys
):
    monkeypatch.setenv("EDSR_LAB_QUICK", "0")
    pairs = training_pairs(2, verbose=True)
    out = capsys.readouterr().out
    assert "mini_div2k" in str(pairs[0][0])
    assert "not found" in out and "download-div2k" in out


def test_explicit_div2k_missing_is_one_clear_error(data_dir):
    with pytest.raises(DatasetError, match="DIV2K train images not found"):
        training_pairs(2, source="div2k")


@pytest.mark.parametrize("kwargs", [{"source": "web"}, {"split": "test"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        training_pairs(2, **kwargs)
