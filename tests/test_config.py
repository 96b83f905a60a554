"""edsr_lab.config: the one device resolver and the one cache folder (torch-free import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edsr_lab import config
from edsr_lab.errors import DeviceError


def test_resolve_device_defaults_and_names():
    assert config.resolve_device() == config.default_device()
    assert config.resolve_device("cpu") == torch.device("cpu")
    assert config.resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_errors_are_one_line_for_cli_and_python(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, reason in [("cuda", "no CUDA GPU is visible"), ("gpu0", "is not a device name")]:
        with pytest.raises(DeviceError) as info:
            config.resolve_device(name)
        text = str(info.value)
        assert f"device {name!r}" in text and reason in text and "\n" not in text
        # one message serves both: the CLI option and the Python argument
        assert text.endswith("use --device cpu (device='cpu' from Python)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(DeviceError, match=r"'cuda:5' does not exist.*cuda:0 to cuda:1"):
        config.resolve_device("cuda:5")


def test_the_meta_device_is_refused_in_one_line():
    """'meta' is a device name torch accepts, but it computes nothing: every command
    (train, evaluate, upscale) failed deep inside torch with a raw traceback."""
    for name in ("meta", torch.device("meta")):
        with pytest.raises(DeviceError) as info:
            config.resolve_device(name)
        text = str(info.value)
        assert "device 'meta' holds shapes but no data" in text and "\n" not in text
        assert text.endswith("use --device cpu (device='cpu' from Python)")


def test_importing_config_does_not_import_torch():
    code = "import sys, edsr_lab.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("EDSR_LAB_CACHE", raising=False)
    monkeypatch.setenv("EDSR_LAB_DATA", str(tmp_path / "d"))
    assert config.cache_dir() == tmp_path / "d" / "cache"
    monkeypatch.setenv("EDSR_LAB_CACHE", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c"
    # the weights download folder is under the same cache, not a second one
    from edsr_lab import weights

    assert weights.weights_dir() == tmp_path / "c" / "weights"
    assert not hasattr(weights, "cache_dir")  # one cache function: config.cache_dir
    assert not hasattr(config, "checkpoint_dir")


def test_no_module_mentions_the_removed_checkpoint_setting():
    root = Path(config.__file__).parent
    for path in root.rglob("*.py"):
        assert "EDSR_LAB_CHECKPOINTS" not in path.read_text(), path
