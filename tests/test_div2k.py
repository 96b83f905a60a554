"""DIV2K layout: building, checking, loading, the cached mini copy, download and extraction."""

from __future__ import annotations

import shutil
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _http import Server as _Server
from PIL import Image

from edsr_lab import config
from edsr_lab.data import div2k
from edsr_lab.data.div2k import (
    download_div2k,
    find_pairs,
    load_pairs,
    make_div2k_layout,
    mini_div2k,
)
from edsr_lab.download import safe_extract
from edsr_lab.errors import ArchiveError, DatasetError, DatasetExistsError, DownloadError
from edsr_lab.io import load_image
from edsr_lab.resize import degrade


def _write_images(folder: Path, sizes, seed=0):
    """Random-texture PNGs (smoothish, so bicubic has something to do) of the given (W, H)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (w, h) in enumerate(sizes):
        small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        img.save(folder / f"img_{i}.png")
    return folder


@pytest.fixture
def layout(tmp_path):
    src = _write_images(tmp_path / "src", [(50, 37), (61, 40), (36, 36)])
    return make_div2k_layout(src, tmp_path / "DIV2K", scales=(2, 3, 4))


# ------------------------------------------------------------------ make_div2k_layout


def test_layout_names_sizes_and_lr_is_degraded_hr(layout):
    hr_dir = layout / "DIV2K_train_HR"
    assert sorted(p.name for p in hr_dir.iterdir()) == ["0001.png", "0002.png", "0003.png"]
    # HR cropped to multiples of lcm(2, 3, 4) = 12, top-left kept
    assert Image.open(hr_dir / "0001.png").size == (48, 36)
    assert Image.open(hr_dir / "0002.png").size == (60, 36)
    for s in (2, 3, 4):
        lr_dir = layout / "DIV2K_train_LR_bicubic" / f"X{s}"
        assert sorted(p.name for p in lr_dir.iterdir()) == [f"000{i}x{s}.png" for i in (1, 2, 3)]
        for i in (1, 2, 3):
            hr = load_image(hr_dir / f"000{i}.png")
            lr = load_image(lr_dir / f"000{i}x{s}.png")
            assert lr.shape[-2:] == (hr.shape[-2] // s, hr.shape[-1] // s)
            assert torch.equal(lr, degrade(hr, s)), f"LR x{s} of image {i} is not degrade(HR)"


def test_layout_hr_keeps_top_left_of_source(tmp_path):
    src = _write_images(tmp_path / "src", [(50, 37)])
    root = make_div2k_layout(src, tmp_path / "D", scales=(2, 3))
    original = np.asarray(Image.open(src / "img_0.png"))
    hr = np.asarray(Image.open(root / "DIV2K_train_HR" / "0001.png"))
    assert np.array_equal(hr, original[:36, :48])


def test_layout_split_first_index_and_file_list(tmp_path):
    src = _write_images(tmp_path / "src", [(24, 24), (24, 36)])
    files = [src / "img_1.png", src / "img_0.png"]  # a list keeps its order
    root = make_div2k_layout(files, tmp_path / "D", scales=2, split="valid", first_index=801)
    assert Image.open(root / "DIV2K_valid_HR" / "0801.png").size == (24, 36)
    assert (root / "DIV2K_valid_LR_bicubic" / "X2" / "0802x2.png").is_file()


def test_layout_refuses_to_overwrite(tmp_path, layout):
    src = tmp_path / "src"
    before = (layout / "DIV2K_train_HR" / "0001.png").read_bytes()
    with pytest.raises(DatasetExistsError, match="overwrite=True"):
        make_div2k_layout(src, layout, scales=(2, 3, 4))
    with pytest.raises(FileExistsError):  # it is also the built-in type
        make_div2k_layout(src, layout, scales=(2,))
    assert (layout / "DIV2K_train_HR" / "0001.png").read_bytes() == before
    make_div2k_layout(src, layout, scales=(2, 3, 4), overwrite=True)


def test_layout_bad_sources(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        make_div2k_layout(tmp_path / "nope", tmp_path / "D")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="holds no images"):
        make_div2k_layout(tmp_path / "empty", tmp_path / "D")
    with pytest.raises(DatasetError, match="empty"):
        make_div2k_layout([], tmp_path / "D")
    src = _write_images(tmp_path / "small", [(20, 11)])
    with pytest.raises(DatasetError, match=r"20.*at least 12x12"):
        make_div2k_layout(src, tmp_path / "D")
    with pytest.raises(ValueError, match="scales"):
        make_div2k_layout(src, tmp_path / "D", scales=(1, 2))


# ------------------------------------------------------------------------ find_pairs


def test_find_pairs_ok_and_root_variants(layout):
    pairs = find_pairs(layout, "train", 3)
    assert [(h.name, lr.name) for h, lr in pairs] == [
        ("0001.png", "0001x3.png"),
        ("0002.png", "0002x3.png"),
        ("0003.png", "0003x3.png"),
    ]
    assert pairs[0][1].parent == layout / "DIV2K_train_LR_bicubic" / "X3"
    # data/ instead of data/DIV2K, or the HR folder itself, find the same files
    assert find_pairs(layout.parent, "train", 3) == pairs
    assert find_pairs(layout / "DIV2K_train_HR", "train", 3) == pairs
    assert find_pairs(layout, "train", 2, indices=[2]) == [
        (layout / "DIV2K_train_HR" / "0002.png", layout / "DIV2K_train_LR_bicubic/X2/0002x2.png")
    ]


def test_find_pairs_missing_root(tmp_path):
    with pytest.raises(DatasetError) as err:
        find_pairs(tmp_path / "DIV2K", "train", 2)
    msg = str(err.value)
    assert str(tmp_path / "DIV2K") in msg and "does not exist" in msg
    assert "python -m edsr_lab download-div2k --root" in msg
    assert "DIV2K_train_LR_bicubic/X2/0001x2.png" in msg  # the expected tree


def test_find_pairs_missing_split_folder(layout):
    with pytest.raises(DatasetError) as err:
        find_pairs(layout, "valid", 2)
    msg = str(err.value)
    assert str(layout / "DIV2K_valid_HR") in msg
    assert "0801.png" in msg and "make_div2k_layout" in msg


def test_find_pairs_missing_lr_file(layout):
    (layout / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png").unlink()
    with pytest.raises(DatasetError) as err:
        find_pairs(layout, "train", 4)
    msg = str(err.value)
    assert str(layout / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png") in msg
    assert "1 of 3" in msg and "download-div2k" in msg
    assert len(find_pairs(layout, "train", 2)) == 3  # other scales unaffected


def test_find_pairs_missing_scale_folder(layout):
    shutil.rmtree(layout / "DIV2K_train_LR_bicubic" / "X3")
    with pytest.raises(DatasetError, match=r"x3 .*DIV2K_train_LR_bicubic.X3"):
        find_pairs(layout, "train", 3)
    with pytest.raises(DatasetError, match="DIV2K_train_LR_unknown"):
        find_pairs(layout, "train", 2, track="unknown")


def test_find_pairs_empty_hr_folder(tmp_path):
    (tmp_path / "DIV2K_train_HR" / "DIV2K_train_HR").mkdir(parents=True)  # zip nested twice
    with pytest.raises(DatasetError, match=r"no PNG images \(it holds: DIV2K_train_HR"):
        find_pairs(tmp_path, "train", 2)
    assert isinstance(DatasetError("x"), FileNotFoundError)


def test_find_pairs_missing_index(layout):
    with pytest.raises(DatasetError, match="0009.png"):
        find_pairs(layout, "train", 2, indices=[1, 9])


def test_load_pairs_uint8_and_size_check(layout, tmp_path):
    pairs = find_pairs(layout, "train", 4)
    hrs, lrs = load_pairs(pairs)
    assert [h.dtype for h in hrs] == [torch.uint8] * 3
    assert hrs[0].shape == (3, 36, 48) and lrs[0].shape == (3, 9, 12)
    assert torch.equal(hrs[0], torch.from_numpy(np.array(Image.open(pairs[0][0]))).permute(2, 0, 1))
    gray, _ = load_pairs(pairs[:1], channels=1)
    assert gray[0].shape == (1, 36, 48)
    with pytest.raises(DatasetError, match=r"0001\.png.*36x48.*0002x4\.png.*9x15"):
        load_pairs([(pairs[0][0], pairs[1][1])])
    with pytest.raises(DatasetError, match="x3"):
        load_pairs(pairs[:1], scale=3)
    with pytest.raises(DatasetError, match="empty"):
        load_pairs([])


# ------------------------------------------------------------------------- mini_div2k


def test_mini_div2k_builds_once(data_dir):
    root = mini_div2k(scales=3)  # the real sample set, one scale (keeps the test fast)
    assert root.parent == config.cache_dir() / "mini_div2k"
    train, valid = find_pairs(root, "train", 3), find_pairs(root, "valid", 3)
    assert len(train) >= 4 and [h.name for h, _ in valid] == ["0801.png", "0802.png"]
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert mini_div2k(scales=(3,)) == root  # cached: same folder, not rebuilt
    assert (root / "manifest.json").stat().st_mtime_ns == stamp


def test_mini_div2k_concurrent_calls_share_one_folder(data_dir, few_samples, monkeypatch):
    # Both threads build before either renames: the loser must adopt the winner's folder.
    barrier = threading.Barrier(2, timeout=60)
    real = div2k.make_div2k_layout

    def slow_layout(*args, **kwargs):
        out = real(*args, **kwargs)
        if kwargs.get("split") == "valid":
            barrier.wait()
        return out

    monkeypatch.setattr(div2k, "make_div2k_layout", slow_layout)
    results, errors = [], []

    def call():
        try:
            results.append(mini_div2k(scales=(2,)))
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    parent = results[0].parent
    assert [p.name for p in parent.iterdir()] == [results[0].name]  # no temp folders left
    assert len(find_pairs(results[0], "train", 2)) == 1


def test_mini_div2k_rebuilds_when_samples_change(data_dir, few_samples):
    first = mini_div2k(scales=(2,))
    assert len(find_pairs(first, "train", 2)) == 1
    shutil.copy(config.PROJECT_ROOT / "data/samples/natural_rocket.png", few_samples)
    second = mini_div2k(scales=(2,))
    assert second != first and len(find_pairs(second, "train", 2)) == 2
    assert not first.exists()  # the stale build is cleaned up
    # a damaged cache (a file deleted by hand) is rebuilt in place
    lost = second / "DIV2K_valid_LR_bicubic" / "X2" / "0802x2.png"
    lost.unlink()
    assert mini_div2k(scales=(2,)) == second and lost.is_file()


# -------------------------------------------------------------- download and extract


def _zip_folder(folder: Path, base: Path, zip_path: Path):
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(base).as_posix())
    return zip_path.read_bytes()


@pytest.fixture
def fixture_zips(tmp_path):
    """The zips the server offers: {'DIV2K_train_HR.zip': bytes, ...} + their source tree."""
    src = _write_images(tmp_path / "src", [(24, 24), (36, 24)])
    tree = make_div2k_layout(src, tmp_path / "tree", scales=(2,))
    zips = {
        "DIV2K_train_HR.zip": _zip_folder(
            tree / "DIV2K_train_HR", tree, tmp_path / "DIV2K_train_HR.zip"
        ),
        "DIV2K_train_LR_bicubic_X2.zip": _zip_folder(
            tree / "DIV2K_train_LR_bicubic", tree, tmp_path / "lr.zip"
        ),
    }
    return zips, tree


def test_download_and_extract(tmp_path, fixture_zips):
    zips, tree = fixture_zips
    root = tmp_path / "data" / "DIV2K"
    seen = []
    with _Server(zips) as server:
        out = download_div2k(
            root,
            parts=("train_HR", "train_LR_bicubic_X2"),
            base_url=server.url,
            progress=lambda part, done, total: seen.append((part, done, total)),
        )
        assert out == root
        pairs = find_pairs(root, "train", 2)
        assert len(pairs) == 2
        for hr, lr in pairs:
            assert hr.read_bytes() == (tree / "DIV2K_train_HR" / hr.name).read_bytes()
            assert lr.read_bytes() == (tree / "DIV2K_train_LR_bicubic/X2" / lr.name).read_bytes()
        assert not list(root.glob("*.zip*"))  # zips deleted after extraction
        size = len(zips["DIV2K_train_LR_bicubic_X2.zip"])
        assert seen[-1] == ("train_LR_bicubic_X2", size, size)
        n = len(server.requests)
        download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
        assert len(server.requests) == n  # already extracted: nothing fetched


def test_download_resumes_a_partial_file(tmp_path, fixture_zips):
    zips, _ = fixture_zips
    data = zips["DIV2K_train_HR.zip"]
    root = tmp_path / "DIV2K"
    root.mkdir()
    (root / "DIV2K_train_HR.zip.part").write_bytes(data[:100])
    with _Server(zips) as server:
        download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    assert server.requests == [("/DIV2K_train_HR.zip", "bytes=100-")]
    assert len(list((root / "DIV2K_train_HR").glob("*.png"))) == 2


def test_download_broken_off_then_resumed(tmp_path, fixture_zips):
    zips, _ = fixture_zips
    root = tmp_path / "DIV2K"
    with _Server(zips, truncate=50) as server:
        with pytest.raises(DownloadError, match="run the same command again"):
            download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    partial = root / "DIV2K_train_HR.zip.part"
    assert partial.stat().st_size == len(zips["DIV2K_train_HR.zip"]) - 50
    with _Server(zips) as server:
        download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    assert len(list((root / "DIV2K_train_HR").glob("*.png"))) == 2


def test_download_errors(tmp_path):
    with _Server({}) as server:
        with pytest.raises(
            DownloadError, match="HTTP 404.*DIV2K_valid_HR.zip|DIV2K_valid_HR.zip.*404"
        ):
            download_div2k(tmp_path, parts=("valid_HR",), base_url=server.url, progress=None)
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot download"):
        download_div2k(
            tmp_path, parts=("valid_HR",), base_url=f"http://127.0.0.1:{port}", progress=None
        )
    with pytest.raises(ValueError, match="unknown DIV2K part"):
        download_div2k(tmp_path, parts=("train_HR_X9",), progress=None)
    with pytest.raises(DownloadError, match="http"):
        download_div2k(tmp_path, parts=("train_HR",), base_url="file:///etc/", progress=None)


def _evil_zip(path: Path, name: str, *, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("DIV2K_train_HR/0001.png", b"fine")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
        zf.writestr(info, b"/etc/passwd" if symlink else b"evil")
    return path


@pytest.mark.parametrize(
    "name, symlink, reason",
    [
        ("../evil.txt", False, r"'\.\.'"),
        ("DIV2K_train_HR/../../evil.txt", False, r"'\.\.'"),
        ("/tmp/edsr_lab_evil.txt", False, "absolute"),
        ("C:/evil.txt", False, "absolute"),
        ("DIV2K_train_HR/link.png", True, "symbolic link"),
    ],
)
def test_safe_extract_refuses_escaping_members(tmp_path, name, symlink, reason):
    dest = tmp_path / "dest"
    z = _evil_zip(tmp_path / "evil.zip", name, symlink=symlink)
    with pytest.raises(ArchiveError, match=reason):
        safe_extract(z, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert not list(dest.rglob("*.*"))  # nothing at all was written


def test_safe_extract_good_and_damaged(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("DIV2K_valid_HR/", b"")
        zf.writestr("DIV2K_valid_HR/0801.png", b"a")
        zf.writestr("DIV2K_valid_LR_bicubic/X2/0801x2.png", b"b")
    written = safe_extract(good, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "DIV2K_valid_HR/0801.png",
        "DIV2K_valid_LR_bicubic/X2/0801x2.png",
    ]
    assert (tmp_path / "out/DIV2K_valid_HR/0801.png").read_bytes() == b"a"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        safe_extract(bad, tmp_path / "out")
    with pytest.raises(ArchiveError, match="not found"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "out")


def test_wrong_zip_content_is_not_marked_done(tmp_path, fixture_zips):
    """A DIV2K_train_HR.zip holding only hello.txt: refused, kept aside, nothing extracted."""
    zips, _ = fixture_zips
    with zipfile.ZipFile(tmp_path / "wrong.zip", "w") as zf:
        zf.writestr("hello.txt", b"hello")
    root = tmp_path / "DIV2K"
    with _Server({"DIV2K_train_HR.zip": (tmp_path / "wrong.zip").read_bytes()}) as server:
        with pytest.raises(ArchiveError, match=r"DIV2K_train_HR/\*\.png.*hello\.txt"):
            download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    assert not (root / ".DIV2K_train_HR.done").exists()
    assert not (root / "hello.txt").exists() and not (root / "DIV2K_train_HR").exists()
    assert (root / "DIV2K_train_HR.zip.corrupt").is_file()
    # The rerun fetches the zip again (the bad one is not reused) and succeeds.
    with _Server(zips) as server:
        download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    assert (root / ".DIV2K_train_HR.done").exists()
    assert len(list((root / "DIV2K_train_HR").glob("*.png"))) == 2


def test_done_marker_without_images_is_redone(tmp_path, fixture_zips):
    zips, _ = fixture_zips
    root = tmp_path / "DIV2K"
    with _Server(zips) as server:
        download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
        shutil.rmtree(root / "DIV2K_train_HR")  # deleted by hand; the marker stays
        download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    assert len(list((root / "DIV2K_train_HR").glob("*.png"))) == 2


def test_failed_download_leaves_no_empty_folder(tmp_path):
    root = tmp_path / "new" / "data" / "DIV2K"
    with _Server({}) as server:
        with pytest.raises(DownloadError, match="404"):
            download_div2k(root, parts=("valid_HR",), base_url=server.url, progress=None)
    assert not (tmp_path / "new").exists()
