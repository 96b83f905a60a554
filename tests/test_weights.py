"""edsr_lab.weights (registry, cache, hash checks, offline) and BasicSR conversion."""

from __future__ import annotations

import hashlib
import io
import json
import socket

import pytest
import torch
from _http import Server

from edsr_lab import weights
from edsr_lab.errors import CheckpointError, DownloadError
from edsr_lab.models import EDSR, load_official, save_checkpoint


def _tiny(scale=2, seed=0) -> EDSR:
    torch.manual_seed(seed)
    return EDSR(n_resblocks=2, n_feats=8, scale=scale).eval()


def _pt_bytes(state_dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


@pytest.fixture
def official_fixture(monkeypatch, tmp_path):
    """A tiny 'official' file named with its real SHA-256 prefix, registered as tiny_x2."""
    model = _tiny()
    data = _pt_bytes(model.state_dict())
    sha8 = hashlib.sha256(data).hexdigest()[:8]
    info = weights._official("tiny_x2", sha8, "EDSR", (2,), "EDSR baseline")
    monkeypatch.setitem(weights.OFFICIAL, "tiny_x2", info)
    monkeypatch.setenv("EDSR_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "COURSE_DIR", tmp_path / "no_course")
    monkeypatch.delenv("EDSR_LAB_COURSE_WEIGHTS", raising=False)
    return model, data, info


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/models/"


def test_official_registry_names_urls_and_hash_prefixes():
    assert set(weights.OFFICIAL) == {
        "edsr_baseline_x2", "edsr_baseline_x3", "edsr_baseline_x4", "edsr_x2", "edsr_x3",
        "edsr_x4", "mdsr_baseline", "mdsr",
    }  # fmt: skip
    for name, w in weights.OFFICIAL.items():
        assert w.file == f"{name}-{w.sha256}.pt" and len(w.sha256) == 8
        assert w.url == "https://cv.snu.ac.kr/research/EDSR/models/" + w.file
    assert weights.OFFICIAL["edsr_x4"].file == "edsr_x4-4f62e9ef.pt"
    assert weights.OFFICIAL["mdsr"].scales == (2, 3, 4)
    with pytest.raises(CheckpointError, match="no pretrained weights named 'edsr_x9'.*edsr_x4"):
        weights.get("edsr_x9")


def test_download_from_mirror_load_and_offline_cache_hit(official_fixture, tmp_path):
    model, data, info = official_fixture
    with Server({"models/" + info.file: data}) as server:
        path = weights.download_weights("tiny_x2", base_url=server.url + "models", progress=None)
    assert path == tmp_path / "cache" / "weights" / info.file and path.read_bytes() == data
    assert server.requests == [("/models/" + info.file, None)]
    # Offline: the mirror is gone, the cached, verified file is used.
    loaded = weights.load_pretrained("tiny_x2", base_url=_dead_url(), progress=None)
    x = torch.rand(1, 3, 6, 5)
    assert torch.equal(loaded(x), model(x)) and not loaded.training
    assert loaded.weights_info.paper == "EDSR baseline"


def test_tampered_download_is_moved_aside_and_never_loaded(official_fixture, tmp_path):
    _, data, info = official_fixture
    bad = bytearray(data)
    bad[-100] ^= 0xFF
    with Server({info.file: bytes(bad)}) as server:
        with pytest.raises(DownloadError, match=f"expected {info.sha256}.*moved aside"):
            weights.load_pretrained("tiny_x2", base_url=server.url, progress=None)
    folder = tmp_path / "cache" / "weights"
    assert not (folder / info.file).exists()
    assert (folder / (info.file + ".part.corrupt")).read_bytes() == bytes(bad)


def test_tampered_cache_file_is_not_loaded_offline(official_fixture, tmp_path):
    _, data, info = official_fixture
    folder = tmp_path / "cache" / "weights"
    folder.mkdir(parents=True)
    bad = bytearray(data)
    bad[-100] ^= 0xFF  # one flipped byte
    (folder / info.file).write_bytes(bytes(bad))
    with pytest.raises(DownloadError, match="cannot download"):
        weights.load_pretrained("tiny_x2", base_url=_dead_url(), progress=None)
    assert (folder / (info.file + ".corrupt")).exists() and not (folder / info.file).exists()


def test_truncated_download_resumes(official_fixture, tmp_path):
    _, data, info = official_fixture
    with Server({info.file: data}, truncate=300) as server:
        with pytest.raises(DownloadError, match="run the same command again"):
            weights.download_weights("tiny_x2", base_url=server.url, progress=None)
    with Server({info.file: data}) as server:
        path = weights.download_weights("tiny_x2", base_url=server.url, progress=None)
    assert server.requests == [("/" + info.file, f"bytes={len(data) - 300}-")]
    assert path.read_bytes() == data


def test_failed_first_download_leaves_no_empty_cache_folder(official_fixture, tmp_path):
    with Server({}) as server:
        with pytest.raises(DownloadError, match="404"):
            weights.download_weights("tiny_x2", base_url=server.url, progress=None)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(DownloadError, match="http"):
        weights.download_weights("tiny_x2", base_url="ftp://mirror/", progress=None)


def test_course_weights_from_manifest(monkeypatch, tmp_path):
    folder = tmp_path / "course_weights"
    model = _tiny(scale=3, seed=1)
    save_checkpoint(model, folder / "course_tiny_x3.pt")
    sha = hashlib.sha256((folder / "course_tiny_x3.pt").read_bytes()).hexdigest()
    entry = {"file": "course_tiny_x3.pt", "sha256": sha, "arch": "edsr",
             "preset": "edsr_baseline", "scale": 3, "loss": "l1", "steps": 10}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "weights": {"c3": entry}}))
    monkeypatch.setenv("EDSR_LAB_COURSE_WEIGHTS", str(folder))
    assert weights.registry()["c3"].scales == (3,)
    loaded = weights.load_pretrained("c3")
    x = torch.rand(1, 3, 5, 4)
    assert torch.equal(loaded(x), model(x)) and loaded.weights_info.info["steps"] == 10
    assert next(loaded.parameters()).dtype == torch.float32
    entry["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "weights": {"c3": entry}}))
    with pytest.raises(CheckpointError, match="does not match its manifest.*git checkout"):
        weights.load_pretrained("c3")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.*not valid"):
        weights.registry()


# ------------------------------------------------------------------------ BasicSR layout


def _to_basicsr(sd: dict, n_blocks: int) -> dict:
    """Official keys -> BasicSR's EDSR keys (by hand, the inverse of the converter)."""
    out = {}
    for k, v in sd.items():
        if k.startswith(("sub_mean", "add_mean")):
            continue  # BasicSR keeps the mean in forward(), not in the state dict
        if k.startswith("head.0."):
            k = "conv_first." + k.split(".")[-1]
        elif k.startswith(f"body.{n_blocks}."):
            k = "conv_after_body." + k.split(".")[-1]
        elif k.startswith("body."):
            i, _, j, p = k.split(".")[1:]
            k = f"body.{i}.conv{1 if j == '0' else 2}.{p}"
        elif k.startswith("tail.0."):
            k = "upsample." + k[len("tail.0.") :]
        elif k.startswith("tail.1."):
            k = "conv_last." + k.split(".")[-1]
        out[k] = v
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("wrapper", ["params", "params_ema"])
def test_basicsr_checkpoint_gives_the_same_output(tmp_path, scale, wrapper):
    model = _tiny(scale, seed=scale)
    basicsr = _to_basicsr(model.state_dict(), 2)
    assert "conv_first.weight" in basicsr and "upsample.0.weight" in basicsr
    torch.save({wrapper: basicsr}, tmp_path / "basicsr.pth")
    loaded = load_official(tmp_path / "basicsr.pth", scale=scale)
    x = torch.rand(1, 3, 7, 6)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-6)
    basicsr["body.0.conv3.weight"] = basicsr["body.0.conv1.weight"]
    with pytest.raises(CheckpointError, match="BasicSR.*body.0.conv3.weight"):
        load_official(basicsr)


def test_load_model_reads_basicsr_files_and_prefers_a_file_to_a_registry_name(
    tmp_path, monkeypatch
):
    """What --checkpoint (upscale, evaluate) and --init (train) accept, via load_model."""
    model = _tiny(2, seed=5)
    torch.save({"params": _to_basicsr(model.state_dict(), 2)}, tmp_path / "basicsr.pth")
    x = torch.rand(1, 3, 7, 6)
    loaded = weights.load_model(str(tmp_path / "basicsr.pth"))
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-6)
    # A file spelled like a registry name is that file, not the registry's weights.
    monkeypatch.chdir(tmp_path)
    save_checkpoint(model, tmp_path / "course_edsr_baseline_x2")
    assert weights.load_model("course_edsr_baseline_x2").config["n_resblocks"] == 2
