"""Training data from a plain folder of HR images: held-out split and on-the-fly LR."""

from __future__ import annotations

import pytest
import torch

from edsr_lab.data.folder import heldout_split, list_images, load_folder_pairs
from edsr_lab.errors import DatasetError
from edsr_lab.io import save_image
from edsr_lab.resize import degrade


def _folder(tmp_path, n, size=(26, 31)):
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        save_image(torch.rand(3, *size, generator=g), tmp_path / f"img_{i:02d}.png")
    return tmp_path


def test_heldout_split_is_deterministic_and_stable(tmp_path):
    files = list_images(_folder(tmp_path, 12))
    train, held = heldout_split(files)
    assert len(held) == 1 and len(train) == 11 and not set(train) & set(held)
    assert heldout_split(list(reversed(files))) == (train, held)  # order does not matter
    train2, held2 = heldout_split(files, 0.3)
    assert len(held2) == 4 and set(held) <= set(held2)  # a larger split keeps the old one
    assert len(heldout_split(files * 10, 0.5)[1]) <= 10  # capped
    with pytest.raises(DatasetError, match="at least 2 images"):
        heldout_split(files[:1])
    with pytest.raises(ValueError, match="between 0 and 1"):
        heldout_split(files, 1.0)


def test_load_folder_pairs_makes_matlab_bicubic_lr(tmp_path):
    files = list_images(_folder(tmp_path, 2))
    hrs, lrs = load_folder_pairs(files, 3)
    assert hrs[0].dtype == torch.uint8 and hrs[0].shape == (3, 24, 30)  # modcropped
    assert lrs[0].shape == (3, 8, 10)
    expected = torch.round(degrade(hrs[1].float() / 255, 3) * 255).to(torch.uint8)
    assert torch.equal(lrs[1], expected)
    with pytest.raises(DatasetError, match=r"img_00.png.*at least 96x96"):
        load_folder_pairs(files, 2, min_lr_size=48)


def test_list_images_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(tmp_path / "nope")
    with pytest.raises(DatasetError, match="holds no images"):
        list_images(tmp_path)
