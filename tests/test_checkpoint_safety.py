"""Weights files cannot make us allocate what they do not hold, nor load silently wrong
(issue 14, items 7 and 14).

The bombs are small files the tests make: a state dict of ``torch.zeros(1).expand(...)``
tensors (each stores one number but declares millions), in the official layout and in
our own format (with a valid checksum), and one of views sharing a single storage.
Loading refuses them with one line before any model is built; so does the command line.
"""

from __future__ import annotations

import math

import pytest
import torch

from edsr_lab import cli, weights
from edsr_lab.errors import BadArgumentTypeError, CheckpointError
from edsr_lab.models import (
    EDSR,
    SRResNet,
    load_checkpoint,
    load_official,
    save_checkpoint,
    state_dicts,
)
from edsr_lab.models.checkpoints import FORMAT, read_checkpoint, tensor_checksum


def _shapes(n_feats: int, n_resblocks: int = 2) -> dict[str, torch.Size]:
    with torch.device("meta"):
        model = EDSR(n_resblocks=n_resblocks, n_feats=n_feats, scale=2)
    return {k: v.shape for k, v in model.state_dict().items()}


def _expanded(n_feats: int, n_resblocks: int = 2) -> dict[str, torch.Tensor]:
    """Every tensor one stored zero, expanded (stride 0) to the shape of an EDSR."""
    return {k: torch.zeros(1).expand(s) for k, s in _shapes(n_feats, n_resblocks).items()}


def _declared(sd: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in sd.values())


@pytest.fixture
def official_bomb(tmp_path):
    sd = _expanded(4096)  # 1.4 billion parameters declared: 5.4 GB to build
    path = tmp_path / "bomb.pt"
    torch.save(sd, path)
    assert path.stat().st_size < 10_000 and _declared(sd) > 10**9
    return path


@pytest.fixture
def our_bomb(tmp_path):
    """Our format, checksum included: so only the tensors' storage gives it away. The
    checksum is computed on a small model's tensors (it would allocate the bomb), so a
    plain check of the checksum first would catch it too: the declared size comes first."""
    sd = _expanded(256, n_resblocks=4)
    payload = {
        "format": FORMAT,
        "version": 2,
        "arch": "EDSR",
        "config": {**EDSR(n_resblocks=1, n_feats=8, scale=2).config, "n_feats": 256,
                   "n_resblocks": 4},
        "state_dict": sd,
        "extra": None,
        "checksum": tensor_checksum({k: v.contiguous() for k, v in sd.items()}),
    }  # fmt: skip
    path = tmp_path / "ours.pt"
    torch.save(payload, path)
    assert path.stat().st_size < 10_000
    return path


def test_an_expanded_tensor_bomb_is_refused_before_building(official_bomb, monkeypatch):
    built: list[int] = []
    monkeypatch.setattr(EDSR, "__init__", _spy_init(built))
    for load in (load_official, load_checkpoint, read_checkpoint, weights.load_model):
        with pytest.raises(CheckpointError) as caught:
            load(official_bomb)
        message = str(caught.value)
        assert "bomb.pt" in message and "declares" in message and "\n" not in message
    assert built == []  # no model was built from it


def test_our_format_with_a_valid_checksum_is_refused_too(our_bomb, monkeypatch):
    built: list[int] = []
    monkeypatch.setattr(EDSR, "__init__", _spy_init(built))
    for load in (load_checkpoint, read_checkpoint, weights.load_model):
        with pytest.raises(CheckpointError, match="ours.pt.*declares"):
            load(our_bomb)
    assert built == []


def test_views_sharing_one_storage_are_refused(tmp_path):
    """Each tensor within its storage, but 35 of them on the same 2.4 MB of numbers."""
    shapes = _shapes(256, n_resblocks=16)
    biggest = max(math.prod(s) for s in shapes.values())
    pool = torch.zeros(biggest)
    sd = {k: pool[: math.prod(s)].view(s) for k, s in shapes.items()}
    path = tmp_path / "shared.pt"
    torch.save(sd, path)
    assert _declared(sd) > 5 * biggest
    with pytest.raises(CheckpointError, match="views of the same numbers"):
        load_official(path)


def test_a_file_declaring_more_values_than_the_cap_is_refused(tmp_path, monkeypatch):
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    ours = save_checkpoint(model, tmp_path / "ok.pt")
    official = tmp_path / "official.pt"
    torch.save(model.state_dict(), official)
    assert load_checkpoint(ours) is not None and load_official(official) is not None
    monkeypatch.setattr(state_dicts, "MAX_CHECKPOINT_VALUES", 1000)
    for path in (ours, official):
        with pytest.raises(CheckpointError, match="more than the 1,000"):
            load_checkpoint(path)


def test_a_safetensors_bomb_cannot_exist_but_its_size_is_capped(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    path = save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=2), tmp_path / "m.safetensors")
    monkeypatch.setattr(state_dicts, "MAX_CHECKPOINT_VALUES", 1000)
    with pytest.raises(CheckpointError, match="more than the 1,000"):
        load_checkpoint(path)


def test_cli_upscale_with_a_bomb_is_one_line(official_bomb, tmp_path, capsys):
    image = tmp_path / "in.png"
    from edsr_lab.io import save_image

    save_image(torch.rand(3, 8, 8), image)
    code = cli.main(["upscale", str(image), "--checkpoint", str(official_bomb),
                     "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "declares" in err[0], err
    assert not (tmp_path / "out").exists()


def _spy_init(built: list[int]):
    real = EDSR.__init__

    def init(self, *args, **kwargs):
        built.append(kwargs.get("n_feats", 0))
        real(self, *args, **kwargs)

    return init


# --------------------------------------------------------------- silently wrong weights


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_or_boolean_weights_are_refused_not_truncated(tmp_path, dtype):
    sd = {k: v.to(dtype) for k, v in EDSR(n_resblocks=1, n_feats=8, scale=2).state_dict().items()}
    path = tmp_path / "ints.pt"
    torch.save(sd, path)
    for load in (load_official, load_checkpoint, weights.load_model):
        with pytest.raises(CheckpointError, match=f"{str(dtype).removeprefix('torch.')} values"):
            load(path)


def test_complex_weights_are_refused(tmp_path):
    sd = EDSR(n_resblocks=1, n_feats=8, scale=2).state_dict()
    sd = {k: torch.complex(v, torch.ones_like(v)) for k, v in sd.items()}
    path = tmp_path / "complex.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="complex64 values"):
        load_official(path)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_float64_and_float16_weights_load_as_float32(tmp_path, dtype):
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    path = tmp_path / "w.pt"
    torch.save({k: v.to(dtype) for k, v in model.state_dict().items()}, path)
    loaded = load_official(path)
    for (name, a), b in zip(loaded.state_dict().items(), model.state_dict().values(), strict=True):
        assert a.dtype == torch.float32, name
        torch.testing.assert_close(a, b.to(dtype).float(), rtol=0, atol=0)


def test_batch_norm_counters_stay_integers(tmp_path):
    """BatchNorm's num_batches_tracked is an integer in every model: not refused."""
    model = SRResNet(n_resblocks=1, n_feats=8, scale=2)
    assert any(not t.is_floating_point() for t in model.state_dict().values())
    path = save_checkpoint(model, tmp_path / "bn.pt")
    assert load_checkpoint(path) is not None


def test_nan_weights_are_refused(tmp_path):
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    sd = model.state_dict()
    sd["body.0.body.0.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="body.0.body.0.weight.*NaN"):
        load_official(path)


# ------------------------------------------------------------------------ folders


@pytest.mark.parametrize("name", ["last.pt", "model.safetensors", "weights"])
def test_a_checkpoint_path_that_is_a_folder_says_so(tmp_path, name):
    pytest.importorskip("safetensors")
    folder = tmp_path / name
    folder.mkdir()
    for load in (load_checkpoint, load_official, read_checkpoint, weights.load_model):
        with pytest.raises(CheckpointError, match="is a folder") as caught:
            load(folder)
        assert "does not exist" not in str(caught.value)


def test_an_empty_or_non_path_checkpoint_is_one_clear_error():
    """'' was taken as the working folder ("checkpoint '.' is a folder"); None or 123 gave a
    raw TypeError from pathlib."""
    with pytest.raises(CheckpointError, match="give a checkpoint file or a weights name"):
        weights.load_model("")
    for wrong in (None, 123):
        with pytest.raises(BadArgumentTypeError, match="checkpoint path or a weights name"):
            weights.load_model(wrong)
