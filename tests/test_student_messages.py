"""A student is never trapped (issue 13, item 3; the library's half): misspelt weights names
list close names, a scale the weights lack suggests weights at hand, an existing output
says how to overwrite from the CLI and from Python, and a folder in the official
benchmark layout is evaluated with its own LR images."""

from __future__ import annotations

import math

import pytest
import torch

from edsr_lab import cli, upscale, weights
from edsr_lab.data.benchmarks import eval_pairs
from edsr_lab.errors import BadArgumentError, CheckpointError, OutputExistsError
from edsr_lab.evaluate import evaluate_sets
from edsr_lab.inference import resolve_scale
from edsr_lab.io import load_image, save_image
from edsr_lab.models import EDSR, save_checkpoint
from edsr_lab.resize import degrade


def test_upscale_with_a_misspelt_weights_name_lists_close_names(tmp_path, capsys):
    image = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    args = ["upscale", str(image), "--checkpoint", "course_edsr_baselin_x2"]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'course_edsr_baseline_x2'" in err and "download-weights --list" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    # a path-like text is a missing file, named as such
    with pytest.raises(CheckpointError, match="missing.pt' does not exist"):
        weights.load_model(str(tmp_path / "missing.pt"))
    # the registry's own lookup suggests too
    with pytest.raises(CheckpointError, match="did you mean 'edsr_baseline_x2'"):
        weights.get("edsr_basline_x2")


def test_a_scale_the_weights_lack_suggests_the_weights_at_hand():
    model = weights.load_pretrained("course_edsr_baseline_x2")
    fix = weights.suggest_for_scale(model, 4)
    # the course x4 weights are here: suggested first, without a download
    assert fix.startswith("use --weights course_edsr_baseline_x4 (course weights for x4, already")
    assert "edsr_baseline_x4 (the official x4 weights" in fix
    with pytest.raises(BadArgumentError) as info:
        resolve_scale(model, 4, source="--weights course_edsr_baseline_x2", fix=fix)
    text = str(info.value)
    assert "upscales by x2 only; use --weights course_edsr_baseline_x4" in text
    # official weights: the official file first; an L2 model has no x4 twin
    model.weights_info = weights.OFFICIAL["edsr_baseline_x2"]
    assert weights.suggest_for_scale(model, 3).startswith("use --weights edsr_baseline_x3")
    l2 = weights.load_pretrained("course_edsr_baseline_l2_x2")
    assert "--weights" not in weights.suggest_for_scale(l2, 4)


def test_existing_outputs_name_the_option_and_the_argument(tmp_path):
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2)
    image = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    save_image(torch.rand(3, 16, 16), tmp_path / "o" / "a_x2.png")
    with pytest.raises(OutputExistsError) as info:
        upscale.upscale_files(model, [image], tmp_path / "o", 2)
    assert "--overwrite (overwrite=True from Python)" in str(info.value)
    assert "pass overwrite=True" not in str(info.value)


def test_an_output_named_like_another_input_is_refused(tmp_path):
    """The planner compares every output with every input (resolved), for every file kind."""
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    a_x2 = save_image(torch.rand(3, 16, 16), tmp_path / "a_x2.png")  # a's output name
    before = a_x2.read_bytes()
    via_link = tmp_path / "link"
    via_link.symlink_to(tmp_path, target_is_directory=True)
    names = ["a_x2.png", "a_x2_x2.png"]
    with pytest.raises(BadArgumentError, match="would replace the input"):
        upscale.plan_jobs([a, a_x2], via_link, names, overwrite=True)
    assert a_x2.read_bytes() == before


def _official_layout(folder, scale=2):
    """<folder>/HR/baby.png and <folder>/LR_bicubic/X2/babyx2.png, the LR a constant grey
    (not the bicubic of the HR, so scores show which LR was used)."""
    torch.manual_seed(0)
    hr = save_image(torch.rand(3, 32, 32), folder / "HR" / "baby.png")
    lr = save_image(
        torch.full((3, 16, 16), 0.5), folder / "LR_bicubic" / f"X{scale}" / "babyx2.png"
    )
    return hr, lr


def test_a_folder_in_the_official_benchmark_layout_uses_its_lr_images(tmp_path, capsys):
    hr, lr = _official_layout(tmp_path / "Set5")
    assert eval_pairs(tmp_path / "Set5", 2) == [("baby", hr, lr)]
    torch.manual_seed(0)
    model = EDSR(n_resblocks=1, n_feats=8, scale=2).eval()
    report = evaluate_sets(model, [tmp_path / "Set5"], 2, progress=False, compute_ssim=False)
    bicubic = report.sets[0].bicubic.rows[0].psnr
    made = degrade(load_image(hr), 2)  # what the LR would have been without the LR folder
    assert not torch.equal(made, load_image(lr))
    own = evaluate_sets(model, [tmp_path / "Set5" / "HR"], 2, progress=False, compute_ssim=False)
    assert not math.isclose(bicubic, own.sets[0].bicubic.rows[0].psnr)  # another LR was used
    # the command
    path = save_checkpoint(model, tmp_path / "m.pt")
    argv = ["evaluate", "--checkpoint", str(path), "--data", str(tmp_path / "Set5"),
            "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "holds no images" not in capsys.readouterr().err
    # an empty folder says which layouts are accepted
    (tmp_path / "empty").mkdir()
    assert cli.main([*argv[:3], "--data", str(tmp_path / "empty"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds no images" in err and "empty/HR/<name>.png" in err


def test_evaluate_with_a_scale_the_weights_lack_names_the_weights_at_hand(capsys):
    """Through the command line: x2 course weights asked for x4 point to the course x4
    weights (here already), before any data is read."""
    code = cli.main(["evaluate", "--weights", "course_edsr_baseline_x2", "--scale", "4",
                     "--device", "cpu", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--weights course_edsr_baseline_x2 (EDSR) upscales by x2 only" in err
    assert "use --weights course_edsr_baseline_x4 (course weights for x4, already" in err
