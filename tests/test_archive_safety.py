"""Issue 14, defects 2 and 6: archives that would write outside their tree, unsafe
members, and damaged archives (nothing half-extracted, one clear line, a rerun that
honours --url/--sha256). Every archive is made here, small; servers run on 127.0.0.1."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from _http import Server

from edsr_lab import download
from edsr_lab.cli import main
from edsr_lab.data import benchmarks, div2k
from edsr_lab.errors import ArchiveError

SETS = list(benchmarks.BENCHMARK_SETS.values())


def _noise(n: int, seed: int = 0) -> bytes:
    """Incompressible bytes: gzip stores them as they are, so a flipped byte stays one
    flipped byte of the output (only the CRC notices), like a damaged PNG."""
    return random.Random(seed).randbytes(n)


def _tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _bench_members(extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    members = {}
    for k, folder in enumerate(SETS):
        members[f"benchmark/{folder}/HR/img0.png"] = _noise(3000, k)
        members[f"benchmark/{folder}/LR_bicubic/X2/img0x2.png"] = _noise(800, 10 + k)
    return {**members, **(extra or {})}


def _flip(data: bytes, at: int) -> bytes:
    raw = bytearray(data)
    raw[at] ^= 0xFF
    return bytes(raw)


def _error_line(capsys) -> str:
    """The CLI's one error line (stderr also holds the progress bar)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ================================================================ defect 2: the expected tree

HOSTILE = {
    "course_weights/manifest.json": b'{"evil": true}',
    "DIV2K/DIV2K_train_HR/0001.png": b"evil",
    "samples/natural_coffee.png": b"evil",
    "benchmark/.done": b"evil marker",
}


def _user_files(root: Path) -> dict[Path, bytes]:
    files = {
        root / "course_weights/manifest.json": b'{"format": 1}',
        root / "DIV2K/DIV2K_train_HR/0001.png": b"the user's image",
        root / "samples/natural_coffee.png": b"the user's sample",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_benchmark_archive_writes_only_the_sets(tmp_path, capsys):
    root = tmp_path / "data"
    mine = _user_files(root)
    archive = _tar_bytes(_bench_members(HOSTILE))
    with Server({"benchmark.tar": archive}) as server:
        argv = ["download-benchmarks", "--root", str(root), "--url", server.url + "benchmark.tar"]
        assert main(argv) == 0
    for path, data in mine.items():
        assert path.read_bytes() == data, f"{path} was replaced by the archive"
    err = capsys.readouterr().err
    assert "skipped 4 member(s)" in err and "course_weights/manifest.json" in err
    assert (root / "benchmark/Set5/HR/img0.png").read_bytes() == _noise(3000, 0)
    assert (root / "benchmark/.done").read_text() == "extracted\n"  # ours, not the archive's


def test_div2k_zip_writes_only_its_part(tmp_path, capsys):
    root = tmp_path / "DIV2K"
    (root / "DIV2K_valid_HR").mkdir(parents=True)
    (root / "DIV2K_valid_HR/0801.png").write_bytes(b"the user's image")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("DIV2K_train_HR/0001.png", b"train image")
        zf.writestr("DIV2K_valid_HR/0801.png", b"evil")
        zf.writestr(".DIV2K_valid_HR.done", b"evil marker")
    with Server({"DIV2K_train_HR.zip": buf.getvalue()}) as server:
        div2k.download_div2k(root, parts=("train_HR",), base_url=server.url, progress=None)
    assert (root / "DIV2K_valid_HR/0801.png").read_bytes() == b"the user's image"
    assert not (root / ".DIV2K_valid_HR.done").exists()
    assert (root / "DIV2K_train_HR/0001.png").read_bytes() == b"train image"
    assert "skipped 2 member(s)" in capsys.readouterr().err


def test_only_keeps_the_named_folders(tmp_path, capsys):
    t = tmp_path / "a.tar"
    t.write_bytes(_tar_bytes({"keep/a.png": b"a", "keep/sub/b.png": b"b", "keepx/c.png": b"c"}))
    written = download.safe_extract(t, tmp_path / "out", only=["keep"])
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "keep/a.png",
        "keep/sub/b.png",
    ]
    assert not (tmp_path / "out/keepx").exists()
    assert "skipped 1 member(s) outside keep/: 'keepx/c.png'" in capsys.readouterr().err
    # Without ``only`` everything safe is extracted.
    download.safe_extract(t, tmp_path / "all")
    assert (tmp_path / "all/keepx/c.png").read_bytes() == b"c"


def test_member_written_through_a_symlinked_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "data"
    (dest / "benchmark").mkdir(parents=True)
    (dest / "benchmark/Set5").symlink_to(outside, target_is_directory=True)
    t = tmp_path / "b.tar"
    t.write_bytes(_tar_bytes({"benchmark/Set5/HR/a.png": b"evil"}))
    with pytest.raises(ArchiveError, match="through .*Set5.*symbolic link .*outside") as info:
        download.safe_extract(t, dest, only=["benchmark/Set5"])
    assert "\n" not in str(info.value)
    assert not list(outside.iterdir())
    # A link that stays inside the destination is fine.
    (dest / "benchmark/Set5").unlink()
    (dest / "real").mkdir()
    (dest / "benchmark/Set5").symlink_to(dest / "real", target_is_directory=True)
    download.safe_extract(t, dest, only=["benchmark/Set5"])
    assert (dest / "real/HR/a.png").read_bytes() == b"evil"


@pytest.mark.parametrize(
    "mode, reason",
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFCHR | 0o644, "device"),
        (stat.S_IFBLK | 0o644, "device"),
        (stat.S_IFIFO | 0o644, "device, FIFO"),
        (stat.S_IFSOCK | 0o644, "device, FIFO"),
    ],
)
def test_zip_link_and_device_members_are_refused(tmp_path, mode, reason):
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/0001.png", b"fine")
        info = zipfile.ZipInfo("a/special")
        info.external_attr = mode << 16
        zf.writestr(info, b"/etc/passwd")
    with pytest.raises(ArchiveError, match=f"'a/special' .*{reason}"):
        download.safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out/a").exists()


@pytest.mark.parametrize("name", ["..\\evil.txt", "a\\..\\..\\evil.txt", "\\evil.txt", "D:evil"])
def test_zip_windows_style_escapes_are_refused(tmp_path, name):
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/0001.png", b"fine")
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    with pytest.raises(ArchiveError, match="absolute|'\\.\\.'"):
        download.safe_extract(z, tmp_path / "out")
    assert not list(tmp_path.rglob("evil*"))


@pytest.mark.parametrize("name", [".", "./", "a/.."])
def test_member_with_an_empty_name_is_refused(tmp_path, name):
    t = tmp_path / "x.tar"
    t.write_bytes(_tar_bytes({"a/0001.png": b"fine", name: b"evil"}))
    with pytest.raises(ArchiveError, match="empty name|'\\.\\.'") as info:
        download.safe_extract(t, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("out/**/*.png"))


def test_file_and_folder_of_the_same_name_are_refused(tmp_path):
    t = tmp_path / "x.tar"
    t.write_bytes(_tar_bytes({"a/b": b"a file", "a/b/c.png": b"under it"}))
    with pytest.raises(ArchiveError, match="'a/b' is both a file and a folder"):
        download.safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "out/a").exists()


def test_member_never_replaces_a_folder_or_writes_under_a_file(tmp_path):
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    (out / "x/keep.png").write_bytes(b"mine")
    (out / "f").write_bytes(b"my file")
    t = tmp_path / "x.tar"
    t.write_bytes(_tar_bytes({"x": b"evil"}))
    with pytest.raises(ArchiveError, match="'x' would replace the folder"):
        download.safe_extract(t, out)
    t.write_bytes(_tar_bytes({"f/y.png": b"evil"}))
    with pytest.raises(ArchiveError, match="'f/y.png' needs .*/f' to be a folder"):
        download.safe_extract(t, out)
    assert (out / "x/keep.png").read_bytes() == b"mine" and (out / "f").read_bytes() == b"my file"


def test_stale_staging_folders_of_dead_extractions_are_removed(tmp_path):
    out = tmp_path / "out"
    dead = out / ".extracting-999999999-deadbeef"  # no such process id
    (dead / "a").mkdir(parents=True)
    (dead / "a/half.png").write_bytes(b"half")
    mine = out / ".extracting-notapid"  # not ours: a name we never make
    mine.mkdir()
    t = tmp_path / "x.tar"
    t.write_bytes(_tar_bytes({"a/0001.png": b"fine"}))
    download.safe_extract(t, out)
    assert not dead.exists() and mine.exists()
    assert sorted(p.name for p in out.iterdir()) == [".extracting-notapid", "a"]


# ============================================================ defect 6: damaged archives


def _gz_with_flipped_byte(tmp_path: Path) -> Path:
    members = {"b/HR/0001.png": _noise(40_000, 1), "b/HR/0002.png": _noise(40_000, 2)}
    data = gzip.compress(_tar_bytes(members), mtime=0)
    bad = _flip(data, len(data) // 4)  # inside the first PNG's stored deflate block
    # Make sure the fixture is what the defect needs: the tar still reads, one byte differs.
    with pytest.raises(gzip.BadGzipFile, match="CRC"):
        gzip.decompress(bad)
    t = tmp_path / "bench.tar.gz"
    t.write_bytes(bad)
    return t


def test_gzip_crc_damage_is_refused_and_nothing_is_extracted(tmp_path):
    t = _gz_with_flipped_byte(tmp_path)
    with pytest.raises(ArchiveError, match="bench.tar.gz.* is damaged .*CRC") as info:
        download.safe_extract(t, tmp_path / "out", fix="fetch it again with: make it")
    assert "\n" not in str(info.value) and str(info.value).endswith("fetch it again with: make it")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


def test_xz_damage_is_one_clear_line(tmp_path):
    data = lzma.compress(_tar_bytes({"b/HR/0001.png": _noise(40_000, 3)}))
    t = tmp_path / "bench.tar.xz"
    t.write_bytes(_flip(data, len(data) // 2))
    with pytest.raises(ArchiveError, match="bench.tar.xz.* is damaged") as info:
        download.safe_extract(t, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))
    # The names of a damaged archive: the same clear error, not a raw LZMAError.
    with pytest.raises(ArchiveError, match="damaged"):
        download.archive_names(t)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
def test_damaged_zip_member_leaves_nothing_half_extracted(tmp_path, method):
    z = tmp_path / "x.zip"
    second = _noise(20_000, 4) if method == zipfile.ZIP_STORED else b"abc" * 20_000
    with zipfile.ZipFile(z, "w", method) as zf:
        zf.writestr("a/0001.png", b"good")
        zf.writestr("a/0002.png", second)
    raw = z.read_bytes()
    z.write_bytes(_flip(raw, raw.find(b"a/0002.png") + 10 + 20))  # inside its data
    with pytest.raises(ArchiveError, match="'?x.zip'? is damaged") as info:
        download.safe_extract(z, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out/a/0001.png").exists()  # the good member is not left alone
    assert not list((tmp_path / "out").rglob("*"))


@pytest.mark.parametrize("how", ["damaged header", "truncated"])
def test_a_damaged_or_truncated_plain_tar_is_not_half_accepted(tmp_path, how):
    """tarfile stops quietly at a damaged header (or a tar cut at a header boundary), so
    without a check the members after it would just be missing."""
    raw = _tar_bytes({f"b/HR/{i:04}.png": _noise(1000, i) for i in range(3)})
    second = raw.find(b"b/HR/0001.png")  # its header starts here
    bad = _flip(raw, second + 200) if how == "damaged header" else raw[:second]
    t = tmp_path / "b.tar"
    t.write_bytes(bad)
    with pytest.raises(ArchiveError, match="b.tar' is damaged .*(header|truncated)"):
        download.safe_extract(t, tmp_path / "out")
    assert not list(tmp_path.glob("out/**/*.png"))


def test_bz2_damage_is_one_clear_line(tmp_path):
    data = bz2.compress(_tar_bytes({"b/HR/0001.png": _noise(40_000, 8)}))
    t = tmp_path / "b.tar.bz2"
    t.write_bytes(_flip(data, len(data) // 2))
    with pytest.raises(ArchiveError, match="b.tar.bz2' is .*damaged"):
        download.safe_extract(t, tmp_path / "out")
    assert not list(tmp_path.glob("out/**/*.png"))


def test_dot_slash_names_and_repeated_members(tmp_path):
    """GNU tar's ``./`` prefix and root entry are fine; a name stored twice keeps its last
    copy (as tar does), with no error from moving it into place twice."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        root = tarfile.TarInfo("./")
        root.type = tarfile.DIRTYPE
        tf.addfile(root)
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("./benchmark/Set5/HR/a.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    t = tmp_path / "b.tar"
    t.write_bytes(buf.getvalue())
    written = download.safe_extract(
        t, tmp_path / "out", only=["benchmark/Set5"], expect=["benchmark/Set5/HR/*.png"]
    )
    assert written == [tmp_path / "out/benchmark/Set5/HR/a.png"]
    assert written[0].read_bytes() == b"second"
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("./", b"")
        zf.writestr("./a/x.png", b"x")
    assert download.safe_extract(z, tmp_path / "zout") == [tmp_path / "zout/a/x.png"]


def test_damaged_benchmark_archive_then_a_rerun_honours_url(tmp_path, capsys):
    root = tmp_path / "data"
    good = _tar_bytes(_bench_members())
    bad = gzip.compress(_tar_bytes(_bench_members()), mtime=0)
    bad = _flip(bad, len(bad) // 3)
    with Server({"bad/benchmark.tar": bad, "good/benchmark.tar": good}) as server:
        argv = [
            "download-benchmarks",
            "--root",
            str(root),
            "--url",
            server.url + "bad/benchmark.tar",
        ]
        assert main(argv) == 2
        err = _error_line(capsys)
        assert "benchmark.tar is damaged" in err
        assert f"python -m edsr_lab download-benchmarks --root {root}" in err
        assert "benchmark.tar.corrupt" in err
        # Nothing half-extracted is left, the damaged file is out of the way.
        assert not list(root.glob("benchmark/**/*.png"))
        assert not (root / "benchmark.tar").exists() and (root / "benchmark.tar.corrupt").exists()
        argv[-1] = server.url + "good/benchmark.tar"
        assert main(argv) == 0
        assert server.requests[-1] == ("/good/benchmark.tar", None)
    assert (root / "benchmark/Urban100/HR/img0.png").read_bytes() == _noise(3000, 3)


def test_existing_archive_is_checked_against_sha256(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    good = _tar_bytes(_bench_members())
    (root / "benchmark.tar").write_bytes(_tar_bytes({"hello.txt": b"hi"}))  # a stale file
    with Server({"benchmark.tar": good}) as server:
        benchmarks.download_benchmarks(
            root, url=server.url + "benchmark.tar", sha256=hashlib.sha256(good).hexdigest(),
            progress=None,
        )  # fmt: skip
        assert len(server.requests) == 1  # the stale one failed its check: fetched again
    assert (root / "benchmark.tar.corrupt").read_bytes() == _tar_bytes({"hello.txt": b"hi"})
    assert (root / "benchmark/Set14/HR/img0.png").is_file()
