"""edsr_lab.download: resumable checked fetch, safe zip/tar extraction, no leftover folders."""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
from _http import Server

from edsr_lab import archives, download
from edsr_lab.errors import ArchiveError, DownloadError

DATA = bytes(range(256)) * 40  # 10 KiB
SHA = hashlib.sha256(DATA).hexdigest()


def test_fetch_checks_hash_prefix_and_size_and_reports_progress(tmp_path):
    seen = []
    with Server({"f.bin": DATA}) as server:
        out = download.fetch(
            server.url + "f.bin", tmp_path / "f.bin", size=len(DATA), sha256=SHA[:8],
            progress=lambda label, done, total: seen.append((label, done, total)),
        )  # fmt: skip
        assert out.read_bytes() == DATA and seen[-1] == ("f.bin", len(DATA), len(DATA))
        n = len(server.requests)
        download.fetch(server.url + "f.bin", out, sha256=SHA, progress=None)
        assert len(server.requests) == n  # present and verified: nothing fetched (offline)
    assert not list(tmp_path.glob("*.part"))


def test_fetch_tampered_file_is_moved_aside_never_kept(tmp_path):
    tampered = DATA[:-1] + b"X"
    with Server({"f.bin": tampered}) as server:
        with pytest.raises(DownloadError, match=f"SHA-256 starts with .*expected {SHA[:8]}"):
            download.fetch(server.url + "f.bin", tmp_path / "f.bin", sha256=SHA[:8], progress=None)
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part.corrupt").read_bytes() == tampered
    # A bad file already at the destination is moved aside and fetched again.
    (tmp_path / "f.bin").write_bytes(b"junk")
    with Server({"f.bin": DATA}) as server:
        download.fetch(server.url + "f.bin", tmp_path / "f.bin", sha256=SHA[:8], progress=None)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert (tmp_path / "f.bin.corrupt").read_bytes() == b"junk"


def test_fetch_truncated_then_resumed(tmp_path):
    with Server({"f.bin": DATA}, truncate=1000) as server:
        with pytest.raises(DownloadError, match="incomplete.*run the same command again"):
            download.fetch(server.url + "f.bin", tmp_path / "f.bin", sha256=SHA, progress=None)
    assert (tmp_path / "f.bin.part").stat().st_size == len(DATA) - 1000
    with Server({"f.bin": DATA}) as server:
        download.fetch(server.url + "f.bin", tmp_path / "f.bin", sha256=SHA, progress=None)
    assert server.requests == [("/f.bin", f"bytes={len(DATA) - 1000}-")]
    assert (tmp_path / "f.bin").read_bytes() == DATA


def test_fetch_tqdm_bar_and_bad_urls(tmp_path, capsys):
    with Server({"f.bin": DATA}) as server:
        download.fetch(server.url + "f.bin", tmp_path / "f.bin", progress=True)
    assert "f.bin" in capsys.readouterr().err  # the tqdm bar, on stderr
    for url in ("ftp://example.org/x", "file:///etc/passwd", "example.org/x"):
        with pytest.raises(DownloadError, match="http:// or https://"):
            download.fetch(url, tmp_path / "x", progress=None)


def test_removing_new_dirs_only_removes_empty_new_folders(tmp_path):
    with pytest.raises(RuntimeError):
        with download.removing_new_dirs(tmp_path / "a" / "b"):
            raise RuntimeError("boom")
    assert not (tmp_path / "a").exists() and tmp_path.exists()
    with pytest.raises(RuntimeError):
        with download.removing_new_dirs(tmp_path / "c" / "d") as d:
            (d / "x.part").write_bytes(b"resume me")
            raise RuntimeError("boom")
    assert (tmp_path / "c" / "d" / "x.part").exists()


# ------------------------------------------------------------------------------ archives


def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _patch_central(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of every central-directory header (and the method in local ones)."""
    raw = bytearray(path.read_bytes())
    i = raw.find(b"PK\x01\x02")
    while i >= 0:
        struct.pack_into(fmt, raw, i + offset, value)
        i = raw.find(b"PK\x01\x02", i + 4)
    path.write_bytes(bytes(raw))


def test_zip_bomb_by_declared_size_is_refused_before_writing(tmp_path):
    z = _zip(tmp_path / "bomb.zip", {"a/0001.png": b"\0" * 1000})
    _patch_central(z, 24, "<I", 2**31)  # uncompressed size: 2 GiB in a tiny zip
    with pytest.raises(ArchiveError, match="archive bomb"):
        download.safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out" / "a" / "0001.png").exists()


def test_member_expanding_beyond_its_declared_size_is_stopped(tmp_path):
    class Lying(archives._Member):
        pass

    m = Lying("x.png", False, 10, lambda: io.BytesIO(b"\0" * (3 << 20)))
    with pytest.raises(ArchiveError, match="beyond its declared 10 bytes"):
        archives._write_members([m], tmp_path / "out", budget=1 << 30, label="t.zip")
    assert not list((tmp_path / "out").iterdir())  # the partial file was removed


@pytest.mark.parametrize(
    "patch, message",
    [
        ((10, "<H", 9), "Deflate64 compression.*7-Zip"),  # method 9 in the central header
        ((8, "<H", 1), "encrypted"),  # general-purpose flag bit 0
    ],
)
def test_unsupported_zip_members_are_reported_in_one_line(tmp_path, patch, message):
    z = _zip(tmp_path / "x.zip", {"a/0001.png": b"data"}, zipfile.ZIP_STORED)
    _patch_central(z, *patch)
    with pytest.raises(ArchiveError, match=message) as info:
        download.safe_extract(z, tmp_path / "out")
    assert "\n" not in str(info.value) and "'a/0001.png'" in str(info.value)


def test_over_long_names_and_expected_files(tmp_path):
    z = _zip(tmp_path / "long.zip", {"a/" + "n" * 300 + ".png": b"x"})
    with pytest.raises(ArchiveError, match="too long for the file system"):
        download.safe_extract(z, tmp_path / "out")
    z = _zip(tmp_path / "hello.zip", {"hello.txt": b"hi"})
    with pytest.raises(ArchiveError, match=r"no member matches 'b/\*\.png'.*hello\.txt"):
        download.safe_extract(z, tmp_path / "out", expect=["b/*.png"])
    assert not (tmp_path / "out" / "hello.txt").exists()


def _tar(path: Path, members: list[tarfile.TarInfo], mode="w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info in members:
            tf.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _info(name, size=1, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        (_info("../evil.txt"), r"'\.\.'"),
        (_info("/tmp/edsr_lab_evil.txt"), "absolute"),
        (_info("b/link.png", 0, tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_info("b/hard.png", 0, tarfile.LNKTYPE, "/etc/passwd"), "link"),
        (_info("b/dev", 0, tarfile.CHRTYPE), "device"),
    ],
)
def test_tar_refuses_unsafe_members(tmp_path, member, reason):
    t = _tar(tmp_path / "evil.tar", [_info("b/0001.png"), member])
    with pytest.raises(ArchiveError, match=reason):
        download.safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "out" / "b" / "0001.png").exists()  # checked before writing


def test_tar_gz_extracts_and_bomb_is_refused(tmp_path):
    t = _tar(tmp_path / "ok.tar.gz", [_info("b/HR/0001.png", 5)], "w:gz")
    written = download.safe_extract(t, tmp_path / "out", expect=["b/HR/*.png"])
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["b/HR/0001.png"]
    assert (tmp_path / "out/b/HR/0001.png").read_bytes() == b"xxxxx"
    with pytest.raises(ArchiveError, match="archive bomb"):
        download.safe_extract(t, tmp_path / "out2", max_bytes=4)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_member_written_through_a_symlinked_folder_is_refused(tmp_path, kind):
    """The destination already holds a link ``data -> somewhere outside``: the member
    ``data/evil.png`` has a harmless name but would land outside, so it is refused and
    nothing is written there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "data").symlink_to(outside, target_is_directory=True)
    if kind == "zip":
        archive = _zip(tmp_path / "a.zip", {"ok/0001.png": b"x", "data/evil.png": b"x"})
    else:
        archive = _tar(tmp_path / "a.tar", [_info("ok/0001.png"), _info("data/evil.png")])
    with pytest.raises(ArchiveError, match=r"'data/evil\.png' would be written through .*outside"):
        download.safe_extract(archive, dest)
    assert list(outside.iterdir()) == [] and not (dest / "ok").exists()
