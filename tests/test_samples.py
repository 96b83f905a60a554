"""The bundled sample images: present, licensed, of the promised kinds, loadable."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from edsr_lab import config
from edsr_lab.data import samples
from edsr_lab.errors import DatasetError

SAMPLES = config.samples_dir()
ROW = re.compile(r"^\|\s*`([^`/]+\.(?:png|jpe?g|tiff?|bmp))`\s*\|(.*)\|\s*$")


def _table(readme):
    """{file name: row text} of the markdown table rows that start with an image file."""
    rows = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _files():
    return sorted(p.name for p in SAMPLES.iterdir() if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("readme", [SAMPLES / "README.md", SAMPLES.parent / "README.md"])
def test_every_sample_has_a_licence_row(readme):
    rows = _table(readme)
    files = _files()
    assert set(rows) == set(files), (
        f"{readme}: no row for {set(files) - set(rows)}, row without file {set(rows) - set(files)}"
    )
    for name, text in rows.items():
        assert re.search(r"CC0|public domain", text, re.IGNORECASE), f"{name}: no licence"


def test_sample_count_sizes_and_total():
    files = samples.list_samples()
    assert 12 <= len(files) <= 16
    total = sum(p.stat().st_size for p in files)
    assert total < 6 * 2**20, f"samples take {total / 2**20:.1f} MB"
    for p in files:
        w, h = Image.open(p).size
        assert 200 <= min(w, h) and max(w, h) <= 512, f"{p.name} is {w}x{h}"


def test_kinds_cover_the_course_needs():
    kinds = {samples.sample_kind(p) for p in samples.list_samples()}
    assert {"natural", "texture", "medical", "gray", "gray16", "rgba"} <= kinds
    assert len(samples.list_samples("natural")) >= 4


def test_modes_match_the_kind():
    for p in samples.list_samples():
        mode = Image.open(p).mode
        kind = samples.sample_kind(p)
        if kind == "rgba":
            assert mode == "RGBA", p.name
            alpha = np.asarray(Image.open(p))[..., 3]
            assert alpha.min() == 0 and alpha.max() == 255, "alpha should be partly transparent"
        elif kind in ("gray", "texture"):
            assert mode == "L", p.name
        elif kind == "gray16":
            assert mode.startswith("I;16"), p.name
            data = np.asarray(Image.open(p))
            assert data.max() > 255 and len(np.unique(data)) > 20, "not really 16-bit"
        elif kind == "natural":
            assert mode == "RGB", p.name


def test_list_samples_by_kind():
    gray = samples.list_samples("gray")
    assert [p.name for p in gray] == ["gray_camera.png"]  # gray16_* is another kind
    assert all(p.name.startswith("natural_") for p in samples.list_samples("natural"))
    with pytest.raises(DatasetError, match="kinds are: .*natural"):
        samples.list_samples("xray")


def test_sample_path_with_or_without_suffix():
    assert samples.sample_path("natural_chelsea") == SAMPLES / "natural_chelsea.png"
    assert samples.sample_path("natural_chelsea.png") == SAMPLES / "natural_chelsea.png"
    with pytest.raises(DatasetError, match="available: .*natural_astronaut"):
        samples.sample_path("lena")
    assert "natural_chelsea" in samples.sample_names()


def test_load_sample_shapes_and_range():
    x = samples.load_sample("natural_chelsea")
    assert x.dtype == torch.float32 and x.shape == (3, 300, 451)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    g = samples.load_sample("gray_camera", channels=1)
    assert g.shape == (1, 512, 512)
    p16 = samples.load_sample("gray16_phantom", channels=1)
    # 16-bit precision survives loading: more levels than 8 bits could hold in [0.45, 0.55]
    brain = p16[(p16 > 0.45) & (p16 < 0.55)]
    assert len(torch.unique(brain)) > 0 and float(p16.max()) == 1.0
    assert len(torch.unique(torch.round(brain * 65535))) > len(
        torch.unique(torch.round(brain * 255))
    )
