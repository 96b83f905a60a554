"""The command line: each command does its job, and bad input gives one clear line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edsr_lab import cli
from edsr_lab.data import find_pairs
from edsr_lab.io import load_image
from edsr_lab.models import EDSR, save_checkpoint


def test_info_reports_environment_and_missing_div2k(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDSR_LAB_DATA", str(tmp_path))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "quick mode" in out
    assert "DIV2K train: not found" in out


def test_make_dataset_builds_div2k_layout_and_refuses_to_overwrite(capsys, tmp_path):
    src = tmp_path / "hr"
    src.mkdir()
    from edsr_lab.data import sample_path

    for name in ("natural_chelsea", "gray_camera"):
        (src / f"{name}.png").write_bytes(sample_path(name).read_bytes())
    dst = tmp_path / "set"
    assert cli.main(["make-dataset", str(src), str(dst), "--scales", "2", "4"]) == 0
    assert len(find_pairs(dst, split="train", scale=4)) == 2
    assert cli.main(["make-dataset", str(src), str(dst), "--scales", "2"]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_upscale_writes_sr_images_and_never_overwrites(capsys, tmp_path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(EDSR(n_resblocks=1, n_feats=8, scale=3), tmp_path / "tiny.pt")
    from edsr_lab.data import sample_path

    image = sample_path("rgba_coffee")
    out = tmp_path / "out"
    args = ["upscale", str(image), "--checkpoint", str(ckpt), "--out", str(out), "--tile", "64"]
    assert cli.main(args) == 0
    sr = load_image(out / "rgba_coffee_x3.png")
    lr = load_image(image)
    assert sr.shape == (3, 3 * lr.shape[1], 3 * lr.shape[2])
    before = (out / "rgba_coffee_x3.png").read_bytes()
    assert cli.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "rgba_coffee_x3.png").read_bytes() == before


def test_bad_inputs_give_one_line_and_exit_2(capsys, tmp_path):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    ckpt = tmp_path / "page.pt"
    ckpt.write_text("<html>404</html>")
    assert cli.main(["upscale", str(not_image), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "page.pt" in err and "Traceback" not in err


def test_course_lists_notebooks_in_order(tmp_path):
    for name in ("10_x.ipynb", "02_b.ipynb", "00_a.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in cli.notebooks_in_order(tmp_path)] == [
        "00_a.ipynb",
        "02_b.ipynb",
        "10_x.ipynb",
    ]


# Runs ``python -m edsr_lab ARGS`` in a fresh interpreter exactly as the shell would (via
# runpy), then reports which heavy libraries ended up imported. Checks imports, not time:
# timing tests are flaky on a shared CI machine.
_IMPORT_PROBE = """
import json, runpy, sys
sys.argv = ["edsr_lab"] + json.loads(sys.argv[1])
code = 0
try:
    runpy.run_module("edsr_lab", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "numpy", "PIL") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(args: list[str]) -> dict:
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo))
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=60,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], 0),
        ([], 2),  # no command: usage error
        (["no-such-command"], 2),
        (["upscale"], 2),  # missing required arguments
        (["upscale", "x.png", "--checkpoint", "c.pt", "--tile", "many"], 2),
    ],
)
def test_help_and_argument_errors_do_not_import_torch(args, code):
    result = _probe(args)
    assert result == {"code": code, "heavy": []}


def test_every_subcommand_help_is_torch_free():
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert {"info", "course", "download-div2k", "make-dataset", "upscale"} <= set(commands)
    for name in commands:
        assert _probe([name, "--help"]) == {"code": 0, "heavy": []}, name


def test_download_div2k_rejects_unknown_part_in_one_line(capsys, tmp_path):
    assert cli.main(["download-div2k", "--root", str(tmp_path / "d"), "--parts", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bogus" in err and "train_HR" in err
    assert not (tmp_path / "d").exists()


def test_upscale_writes_the_models_output_not_bicubic(tmp_path):
    """The saved file is the model's output rounded to 8 bits, checked pixel for pixel."""
    from edsr_lab.inference import bicubic_upscale, super_resolve
    from edsr_lab.io import save_image, to_uint8

    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2).eval()
    ckpt = save_checkpoint(model, tmp_path / "tiny.pt")
    lr = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(3))
    image = save_image(lr, tmp_path / "in.png")
    lr = load_image(image)  # the 8-bit input as the CLI reads it
    out = tmp_path / "out"
    assert cli.main(["upscale", str(image), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    written = load_image(out / "in_x2.png")
    expected = to_uint8(super_resolve(model, lr))
    bicubic = to_uint8(bicubic_upscale(lr, 2))
    assert (expected != bicubic).mean() > 0.5  # the two are told apart by this check
    assert np.array_equal(to_uint8(written), expected)
