"""`python -m edsr_lab upscale` (edsr_lab.upscale) and `make-dataset`, `download-div2k`:
outputs keep what the input was, and no mistake loses work or ends in a traceback.

Round trips: grey/RGB/grey+alpha/RGBA at 8 bits, grey and RGB(A) at 16 bits (PNG), 16-bit
grey TIFF, float32 grey TIFF; --mode/--bits conversions. Bad inputs: one line on stderr,
a non-zero exit, and nothing written that should not be.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edsr_lab import cli
from edsr_lab.inference import bicubic_upscale, super_resolve
from edsr_lab.io import read_image, save_image
from edsr_lab.models import EDSR, MDSR, save_checkpoint

RNG = np.random.default_rng(0)
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EDSR(n_resblocks=1, n_feats=8, scale=2).eval()


@pytest.fixture
def ckpt(tmp_path, model):
    return save_checkpoint(model, tmp_path / "tiny.pt")


def _run(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, expected_code=2):
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------- round trips


def _sr(model, x):
    return super_resolve(model, x, scale=2).clamp(0, 1)


def test_grey_8bit_stays_grey(tmp_path, ckpt, model, capsys):
    grey = torch.from_numpy(RNG.integers(0, 256, (1, 10, 12)).astype(np.float32) / 255)
    src = save_image(grey, tmp_path / "g.png")
    code, out, _ = _run(["upscale", src, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys)
    assert code == 0 and "(L, 8-bit)" in out
    with Image.open(tmp_path / "o" / "g_x2.png") as im:
        assert im.mode == "L" and im.size == (24, 20)
        written = torch.from_numpy(np.asarray(im).astype(np.float32) / 255)
    # the RGB model on the grey image repeated to 3 channels, back to grey by luma
    expected = (_sr(model, grey.expand(3, -1, -1)) * LUMA).sum(0)
    assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6


def _policy(model, stored: np.ndarray) -> np.ndarray:
    """What the intensity policy gives for a values file (issue 15), computed here from
    its definition: the data's own min..max -> [0, 1], the model unclamped (grey through
    the RGB model and back by luma), clipped to [0, 1], back to min..max."""
    lo, hi = float(stored.min()), float(stored.max())
    unit = torch.from_numpy((stored.astype(np.float64) - lo) / (hi - lo)).float()
    rgb = unit.expand(3, -1, -1) if unit.shape[0] == 1 else unit
    y = super_resolve(model, rgb, scale=2, clamp=False)
    y = (y * LUMA).sum(0, keepdim=True) if unit.shape[0] == 1 else y
    return y.clamp(0, 1).double().numpy() * (hi - lo) + lo


def test_16bit_grey_png_and_tiff_stay_16bit(tmp_path, ckpt, model, capsys):
    """16-bit files hold values: read with their own range (not / 65535), written back as
    16-bit with the map recorded; the same values as a PNG or a TIFF give the same output."""
    from edsr_lab.stored import read_values

    stored = RNG.integers(128, 2192, (1, 10, 12)).astype(np.uint16)  # 12-bit CT-like
    png = save_image(torch.from_numpy(stored / 65535).float(), tmp_path / "a.png", bits=16)
    tif = tmp_path / "b.tif"
    Image.fromarray(stored[0]).save(tif)
    code, out, _ = _run(
        ["upscale", png, tif, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys
    )
    assert code == 0 and "range [" in out and "clipped" in out
    expected = _policy(model, stored)
    for name in ("a_x2.png", "b_x2.png"):
        _, info = read_image(tmp_path / "o" / name)
        assert (info.channels, info.bits, info.has_alpha) == (1, 16, False), name
        written = read_values(tmp_path / "o" / name)
        assert written.recorded is not None and written.recorded.lo == stored.min()
        assert np.abs(written.values[0].astype(np.float64) - expected).max() <= 0.5 + 1e-6
    # the old reading (value / 65535) would have shown the model a nearly black image
    assert stored.max() / 65535 < 0.034


def test_16bit_rgb_and_rgba_stay_16bit(tmp_path, ckpt, model, capsys):
    from edsr_lab.stored import read_values

    rgba = torch.rand(4, 10, 12, generator=torch.Generator().manual_seed(1))
    a = save_image(rgba[:3], tmp_path / "rgb16.png", bits=16)
    b = save_image(rgba, tmp_path / "rgba16.png", bits=16)
    code, _, _ = _run(["upscale", a, b, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys)
    assert code == 0
    out, info = read_image(tmp_path / "o" / "rgb16_x2.png")
    assert (info.channels, info.bits, info.has_alpha) == (3, 16, False)
    rgb_stored = read_values(a).values[0]
    written = read_values(tmp_path / "o" / "rgb16_x2.png").values[0].astype(np.float64)
    assert np.abs(written - _policy(model, rgb_stored)).max() <= 0.5 + 1e-6
    # with alpha: a picture (alpha by bicubic, colour / 65535 as before)
    rgba_in, _ = read_image(b)
    out, info = read_image(tmp_path / "o" / "rgba16_x2.png")
    assert (info.channels, info.bits, info.has_alpha) == (3, 16, True)
    assert (out[:3] - _sr(model, rgba_in[:3])).abs().max() <= 0.5 / 65535 + 1e-6
    # alpha: bicubic, not the model
    alpha = bicubic_upscale(rgba_in[3:], 2).clamp(0, 1)
    assert (out[3:] - alpha).abs().max() <= 0.5 / 65535 + 1e-6


def test_float_tiff_stays_float(tmp_path, ckpt, model, capsys):
    grey = torch.rand(1, 10, 12, generator=torch.Generator().manual_seed(2))
    src = save_image(grey, tmp_path / "f.tif", bits=32)
    code, out, _ = _run(["upscale", src, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys)
    assert code == 0 and "float32" in out
    result, info = read_image(tmp_path / "o" / "f_x2.tif")
    assert (info.channels, info.bits, info.mode) == (1, 32, "F")
    expected = torch.from_numpy(_policy(model, grey.numpy())).float()
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=0)  # not rounded


def test_8bit_alpha_is_upscaled_by_bicubic_and_kept(tmp_path, ckpt, model, capsys):
    la = torch.from_numpy(RNG.integers(0, 256, (2, 10, 12)).astype(np.float32) / 255)
    rgba = torch.from_numpy(RNG.integers(0, 256, (4, 10, 12)).astype(np.float32) / 255)
    a, b = save_image(la, tmp_path / "la.png"), save_image(rgba, tmp_path / "rgba.png")
    code, _, _ = _run(["upscale", a, b, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys)
    assert code == 0
    with Image.open(tmp_path / "o" / "la_x2.png") as im:
        assert im.mode == "LA"
    with Image.open(tmp_path / "o" / "rgba_x2.png") as im:
        assert im.mode == "RGBA"
    out, _ = read_image(tmp_path / "o" / "rgba_x2.png")
    assert (out[:3] - _sr(model, rgba[:3])).abs().max() <= 0.5 / 255 + 1e-6
    assert (out[3:] - bicubic_upscale(rgba[3:], 2).clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6


def test_mode_and_bits_ask_for_something_else(tmp_path, ckpt, model, capsys):
    rgba = torch.from_numpy(RNG.integers(0, 256, (4, 10, 12)).astype(np.float32) / 255)
    src = save_image(rgba, tmp_path / "in.png")
    base = ["upscale", src, "--checkpoint", ckpt, "--overwrite"]
    assert _run([*base, "--out", tmp_path / "rgb", "--mode", "RGB"], capsys)[0] == 0
    out, info = read_image(tmp_path / "rgb" / "in_x2.png")
    assert (info.channels, info.has_alpha, info.bits) == (3, False, 8)
    alpha = bicubic_upscale(rgba[3:], 2).clamp(0, 1)
    white = _sr(model, rgba[:3]) * alpha + (1 - alpha)  # composited on white
    assert (out - white).abs().max() <= 0.5 / 255 + 1e-6
    assert _run([*base, "--out", tmp_path / "g16", "--mode", "L", "--bits", "16"], capsys)[0] == 0
    _, info = read_image(tmp_path / "g16" / "in_x2.png")
    assert (info.channels, info.has_alpha, info.bits) == (1, False, 16)
    code, _, err = _run([*base, "--out", tmp_path / "f", "--bits", "32"], capsys)
    assert "float TIFF of one grey channel" in _one_line_error(code, err)
    assert not (tmp_path / "f").exists()


# ----------------------------------------------------------- many files, never lose work


def test_a_folder_with_a_bad_file_processes_every_file(tmp_path, ckpt, capsys):
    folder = tmp_path / "in"
    for name in ("a.png", "c.png"):
        save_image(torch.rand(3, 8, 8), folder / name)
    (folder / "b.png").write_text("not an image")
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    code, out, err = _run(
        ["upscale", folder, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys
    )
    assert code == 1  # some failed
    assert _files(tmp_path / "o") == ["a_x2.png", "c_x2.png"]
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "b.png" in failed[0] and "not an image" in failed[0]
    assert out.strip().splitlines()[-1].startswith("2 of 3 image(s) written")
    assert "Traceback" not in out + err


def test_two_inputs_with_the_same_output_name_write_nothing(tmp_path, ckpt, capsys):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "x" / "photo.png")
    b = save_image(torch.rand(3, 8, 8), tmp_path / "y" / "photo.jpg")
    code, _, err = _run(["upscale", a, b, "--checkpoint", ckpt, "--out", tmp_path / "o"], capsys)
    assert "would both be written" in _one_line_error(code, err)
    assert not (tmp_path / "o").exists()


def test_an_output_never_replaces_an_input(tmp_path, ckpt, capsys):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    b = save_image(torch.rand(3, 8, 8), tmp_path / "a_x2.png")
    before = b.read_bytes()
    args = ["upscale", a, b, "--checkpoint", ckpt, "--out", tmp_path, "--overwrite"]
    code, _, err = _run(args, capsys)
    assert "would replace the input" in _one_line_error(code, err)
    assert b.read_bytes() == before and not (tmp_path / "a_x2_x2.png").exists()


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, ckpt, capsys):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    b = save_image(torch.rand(3, 8, 8), tmp_path / "b.png")
    old = save_image(torch.rand(3, 16, 16), tmp_path / "o" / "b_x2.png").read_bytes()
    args = ["upscale", a, b, "--checkpoint", ckpt, "--out", tmp_path / "o"]
    code, _, err = _run(args, capsys)
    line = _one_line_error(code, err)
    assert "already exists" in line and "--overwrite" in line and "nothing was written" in line
    assert _files(tmp_path / "o") == ["b_x2.png"] and (tmp_path / "o/b_x2.png").read_bytes() == old
    assert _run([*args, "--overwrite"], capsys)[0] == 0
    assert (tmp_path / "o/b_x2.png").read_bytes() != old


@pytest.mark.parametrize("scale", ["3", "0", "-1", "two"])
def test_a_scale_the_model_does_not_have(tmp_path, ckpt, capsys, scale):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    args = ["upscale", a, "--checkpoint", ckpt, "--out", tmp_path / "o", "--scale", scale]
    line = _one_line_error(*_run(args, capsys)[::2])
    assert ("x2 only" in line) if scale == "3" else ("--scale" in line)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("tile", ["0", "-4"])
def test_tile_below_one(tmp_path, ckpt, capsys, tile):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    args = ["upscale", a, "--checkpoint", ckpt, "--out", tmp_path / "o", "--tile", tile]
    assert "--tile" in _one_line_error(*_run(args, capsys)[::2])


def test_output_folder_that_cannot_be_written(tmp_path, ckpt, capsys):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file")
    # --out naming an existing file: a message that says what --out is
    code, _, err = _run(["upscale", a, "--checkpoint", ckpt, "--out", blocker], capsys)
    assert "is an existing file, not a folder" in _one_line_error(code, err)
    # a folder that would have to be created under a regular file
    code, _, err = _run(["upscale", a, "--checkpoint", ckpt, "--out", blocker / "sub"], capsys)
    assert "is a file, not a folder" in _one_line_error(code, err)
    assert blocker.read_text() == "a regular file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_output_folder(tmp_path, ckpt, capsys):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, _, err = _run(["upscale", a, "--checkpoint", ckpt, "--out", ro], capsys)
        assert "not writable" in _one_line_error(code, err)
    finally:
        ro.chmod(stat.S_IRWXU)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_blames_the_device_not_the_file(tmp_path, ckpt, capsys):
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    args = ["upscale", a, "--checkpoint", ckpt, "--out", tmp_path / "o", "--device", "cuda"]
    line = _one_line_error(*_run(args, capsys)[::2])
    assert "no CUDA GPU" in line and "--device cpu" in line and "truncated" not in line


def test_mdsr_needs_a_scale_it_has(tmp_path, capsys):
    torch.manual_seed(0)
    mdsr = MDSR(n_resblocks=1, n_feats=8, scales=(2, 3))
    ck = save_checkpoint(mdsr, tmp_path / "mdsr.pt")
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    base = ["upscale", a, "--checkpoint", ck, "--out", tmp_path / "o"]
    assert "--scale 2" in _one_line_error(*_run(base, capsys)[::2])
    line = _one_line_error(*_run([*base, "--scale", "4"], capsys)[::2])
    assert "x2, x3 only" in line
    assert not (tmp_path / "o").exists()
    assert _run([*base, "--scale", "3"], capsys)[0] == 0
    with Image.open(tmp_path / "o" / "a_x3.png") as im:
        assert im.size == (24, 24)


def test_symlink_loop_and_fifo_inputs_are_named_as_such(tmp_path, ckpt, capsys):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = save_image(torch.rand(3, 8, 8), tmp_path / "good.png")
    args = ["upscale", loop, fifo, good, "--checkpoint", ckpt, "--out", tmp_path / "o"]
    code, out, _ = _run(args, capsys)
    assert code == 1 and _files(tmp_path / "o") == ["good_x2.png"]
    failed = {line.split(":")[0]: line for line in out.splitlines() if line.startswith("FAILED")}
    assert "leads back to itself" in failed[f"FAILED {loop}"]
    assert "did you mean" not in failed[f"FAILED {loop}"]
    assert "named pipe" in failed[f"FAILED {fifo}"]
    assert "empty" not in failed[f"FAILED {fifo}"]
    # the same for the checkpoint
    for bad, words in ((loop, "leads back to itself"), (fifo, "named pipe")):
        code, _, err = _run(["upscale", good, "--checkpoint", bad, "--out", tmp_path / "p"], capsys)
        assert words in _one_line_error(code, err)


@pytest.mark.parametrize("field, value", [("n_resblocks", 10**7), ("n_feats", 10**6)])
def test_absurd_checkpoint_config_is_one_line(tmp_path, field, value):
    """A small file whose stored config asks for 10**7 blocks (or 10**6 features) must be
    refused before anything is built (in a memory-capped child, in case it is not)."""
    torch.manual_seed(0)
    small = EDSR(n_resblocks=1, n_feats=8, scale=2)
    ck = save_checkpoint(small, tmp_path / "bomb.pt")
    data = torch.load(ck, weights_only=True)
    data["config"][field] = value
    torch.save(data, ck)
    a = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    probe = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))\n"
        "from edsr_lab import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    run = subprocess.run(
        [sys.executable, "-c", probe, "upscale", str(a), "--checkpoint", str(ck),
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": repo},
    )  # fmt: skip
    line = _one_line_error(run.returncode, run.stderr)
    assert "bomb.pt" in line and f"{field}={value}" in line
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------- make-dataset


def _sources(folder: Path, n: int = 2, size=(24, 30)) -> Path:
    for i in range(n):
        save_image(torch.rand(3, *size), folder / f"img{i}.png")
    return folder


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--scales", "1"], "--scales"),
        (["--scales", "0", "-3"], "--scales"),
        (["--first-index", "-1"], "--first-index"),
    ],
)
def test_make_dataset_bad_arguments(tmp_path, capsys, extra, words):
    src = _sources(tmp_path / "src")
    code, _, err = _run(["make-dataset", src, tmp_path / "dst", *extra], capsys)
    assert words in _one_line_error(code, err)
    assert not (tmp_path / "dst").exists()


def test_make_dataset_destination_is_a_file_or_under_one(tmp_path, capsys):
    src = _sources(tmp_path / "src")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for dst in (blocker, blocker / "set"):
        code, _, err = _run(["make-dataset", src, dst], capsys)
        assert "file" in _one_line_error(code, err)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_make_dataset_read_only_destination(tmp_path, capsys):
    src = _sources(tmp_path / "src")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, _, err = _run(["make-dataset", src, ro / "set"], capsys)
        assert "not writable" in _one_line_error(code, err)
    finally:
        ro.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("bad", ["not an image", "small"])
def test_make_dataset_checks_every_input_before_writing(tmp_path, capsys, bad):
    src = _sources(tmp_path / "src", n=3)
    if bad == "small":
        save_image(torch.rand(3, 5, 5), src / "img9.png")
    else:
        (src / "img9.png").write_text("hello")
    code, _, err = _run(["make-dataset", src, tmp_path / "dst"], capsys)
    assert "img9.png" in _one_line_error(code, err)
    assert not (tmp_path / "dst").exists()


def test_make_dataset_failing_midway_leaves_nothing(tmp_path, capsys, monkeypatch):
    src = _sources(tmp_path / "src", n=3)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "mine.txt").write_text("keep me")
    import edsr_lab.io

    real = edsr_lab.io.load_image
    calls = []

    def flaky(path, *args, **kwargs):  # the third source fails while being decoded
        calls.append(path)
        if Path(path).name == "img2.png":
            raise edsr_lab.errors.ImageReadError(path, "damaged (simulated)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(edsr_lab.io, "load_image", flaky)
    code, _, err = _run(["make-dataset", src, dst], capsys)
    assert "img2.png" in _one_line_error(code, err)
    assert _files(dst) == ["mine.txt"]  # no half-written dataset, the user's file kept


def test_make_dataset_writes_a_name_to_source_mapping_and_says_what_it_converts(tmp_path, capsys):
    src = tmp_path / "src"
    save_image(torch.rand(3, 24, 24), src / "b_photo.png")
    save_image(torch.rand(1, 24, 36), src / "a_scan16.png", bits=16)
    dst = tmp_path / "dst"
    code, out, _ = _run(["make-dataset", src, dst, "--scales", "2", "3"], capsys)
    assert code == 0
    mapping = (dst / "DIV2K_train_sources.csv").read_text().splitlines()
    assert mapping[0] == "name,source"
    assert mapping[1:] == [
        f"0001.png,{(src / 'a_scan16.png').resolve()}",
        f"0002.png,{(src / 'b_photo.png').resolve()}",
    ]
    assert "1 of 2 source(s) had more than 8 bits" in out
    assert not list(dst.glob(".make-dataset-*"))


# -------------------------------------------------------------------- download-div2k


def test_download_div2k_valid_hr_only_succeeds(tmp_path, capsys):
    import zipfile

    from _http import Server

    from edsr_lab.data import make_div2k_layout

    tree = make_div2k_layout(
        _sources(tmp_path / "src"), tmp_path / "tree", scales=(2,), split="valid", first_index=801
    )
    zpath = tmp_path / "v.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted((tree / "DIV2K_valid_HR").rglob("*")):
            zf.write(p, p.relative_to(tree).as_posix())
    root = tmp_path / "DIV2K"
    with Server({"DIV2K_valid_HR.zip": zpath.read_bytes()}) as server:
        args = ["download-div2k", "--root", root, "--parts", "valid_HR", "--base-url", server.url]
        code, out, err = _run(args, capsys)
    assert code == 0, err
    assert "valid_HR" in out and "2 images" in out
    assert sorted(p.name for p in (root / "DIV2K_valid_HR").iterdir()) == ["0801.png", "0802.png"]


def test_download_div2k_rejects_other_url_schemes(tmp_path, capsys):
    args = ["download-div2k", "--root", tmp_path / "d", "--base-url", "ftp://example.org/div2k/"]
    assert "http" in _one_line_error(*_run(args, capsys)[::2])
    assert not (tmp_path / "d").exists()


def test_a_grey_model_runs_on_each_colour_channel():
    """A 1-channel model on an RGB image: each channel in turn, colour kept."""
    from edsr_lab.io import ImageInfo
    from edsr_lab.upscale import upscale_array

    torch.manual_seed(0)
    grey_model = EDSR(n_resblocks=1, n_feats=8, scale=2, n_colors=1).eval()
    rgb = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(3))
    info = ImageInfo(channels=3, has_alpha=False, bits=8, mode="RGB", format="PNG")
    out = upscale_array(rgb, info, lambda x: _sr(grey_model, x), 2, 1, "RGB")
    assert out.shape == (3, 12, 14)
    for c in range(3):
        torch.testing.assert_close(out[c : c + 1], _sr(grey_model, rgb[c : c + 1]))


def test_make_dataset_source_that_is_a_fifo_or_a_loop(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for src, words in ((loop, "leads back to itself"), (fifo, "named pipe")):
        code, _, err = _run(["make-dataset", src, tmp_path / "dst"], capsys)
        assert words in _one_line_error(code, err)
    assert not (tmp_path / "dst").exists()
