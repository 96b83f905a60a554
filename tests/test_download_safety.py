"""Issue 14, defect 9: downloads that hang or fill the disk, redirects to other schemes,
and resumes that would splice two files. Servers run on 127.0.0.1 (tests/_hostile_http.py);
the waits are shortened through the module constants, so no test waits for real time-outs."""

from __future__ import annotations

import hashlib
import random
import socket
import time

import pytest
from _hostile_http import (
    LIFETIME,
    HostileServer,
    endless,
    garbage,
    redirect,
    serve,
    silent,
    trickle_body,
    trickle_headers,
    wrong_range,
)
from _http import Server

from edsr_lab import download, weights
from edsr_lab.cli import main
from edsr_lab.errors import DownloadError


def _noise(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def _error_line(capsys) -> str:
    """The CLI's one error line (stderr also holds the progress bar)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ============================================================ defect 9: hangs and floods


@pytest.fixture
def quick_stall(monkeypatch):
    monkeypatch.setattr(download, "STALL_SECONDS", 0.4)


def _fetch(url, dest, **kw):
    kw.setdefault("progress", None)
    return download.fetch(url, dest, **kw)


def test_a_trickling_body_is_stopped_as_a_stall(tmp_path, quick_stall):
    with HostileServer({"w.pt": trickle_body(every=0.05)}) as server:
        t = time.monotonic()
        with pytest.raises(DownloadError, match="stalled.*run the same command again") as info:
            _fetch(server.url + "w.pt", tmp_path / "w.pt")
        assert time.monotonic() - t < LIFETIME - 1
    assert "\n" not in str(info.value)
    assert (tmp_path / "w.pt.part").exists()  # what came is kept for a resume


def test_trickling_headers_are_stopped_as_a_stall(tmp_path, quick_stall):
    with HostileServer({"w.pt": trickle_headers(every=0.05)}) as server:
        t = time.monotonic()
        with pytest.raises(DownloadError, match="no answer .*within 0.4 s"):
            _fetch(server.url + "w.pt", tmp_path / "w.pt")
        assert time.monotonic() - t < LIFETIME - 1


def test_a_silent_server_hits_the_read_timeout(tmp_path):
    with HostileServer({"w.pt": silent()}) as server:
        t = time.monotonic()
        with pytest.raises(DownloadError, match="sent nothing for 0.3 s"):
            _fetch(server.url + "w.pt", tmp_path / "w.pt", timeout=0.3)
        assert time.monotonic() - t < LIFETIME - 1


def test_connect_timeout_is_shorter_than_the_read_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CONNECT_TIMEOUT", 0.3)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fill = []
    try:
        for _ in range(8):  # fill the accept queue: further connections hang in SYN
            s = socket.socket()
            s.settimeout(0.3)
            fill.append(s)
            try:
                s.connect(listener.getsockname())
            except TimeoutError:
                break
        else:
            pytest.fail("could not fill the listen queue of the test socket")
        port = listener.getsockname()[1]
        t = time.monotonic()
        with pytest.raises(DownloadError, match="could not connect .*within 0.3 s"):
            _fetch(f"http://127.0.0.1:{port}/w.pt", tmp_path / "w.pt", timeout=LIFETIME)
        assert time.monotonic() - t < LIFETIME - 1
    finally:
        for s in fill:
            s.close()
        listener.close()


def test_an_endless_body_is_capped_and_the_part_deleted(tmp_path):
    dest = tmp_path / "w.pt"
    with HostileServer({"w.pt": endless()}) as server:
        for _ in range(2):  # the rerun refuses it the same way; it never fills the disk
            with pytest.raises(DownloadError, match="more than 300,000 bytes") as info:
                _fetch(server.url + "w.pt", dest, max_size=300_000)
            assert "resume" not in str(info.value)
            assert not list(tmp_path.iterdir())  # no .part to "resume"
        # Known size: the cap is that size (and no raw FileNotFoundError afterwards).
        with pytest.raises(DownloadError, match="more than 1,000 bytes"):
            _fetch(server.url + "w.pt", dest, size=1000)
        assert not list(tmp_path.iterdir())


def test_the_default_cap_applies_when_nothing_is_known(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_DOWNLOAD", 200_000)
    with HostileServer({"w.pt": endless()}) as server:
        with pytest.raises(DownloadError, match="more than 200,000 bytes"):
            _fetch(server.url + "w.pt", tmp_path / "w.pt")
    assert not list(tmp_path.iterdir())


def test_an_announced_length_over_the_cap_is_refused_before_downloading(tmp_path):
    (tmp_path / "w.pt.part").write_bytes(b"x" * 10)  # a .part from before: not resumable
    with HostileServer({"w.pt": endless(announce=10**12)}) as server:
        with pytest.raises(DownloadError, match="announces 1,000,000,000,000 bytes"):
            _fetch(server.url + "w.pt", tmp_path / "w.pt", max_size=10**6)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["ftp://127.0.0.1/w.pt", "file:///etc/passwd", "gopher://x/"])
def test_redirects_to_other_schemes_are_refused(tmp_path, code, target):
    with HostileServer({"w.pt": redirect(target, code)}) as server:
        with pytest.raises(DownloadError, match=f"refusing the redirect .* to {target}") as info:
            _fetch(server.url + "w.pt", tmp_path / "w.pt")
        assert len(server.requests) == 1
    assert "\n" not in str(info.value) and not list(tmp_path.iterdir())


def test_an_answer_that_is_not_http_is_one_clear_line(tmp_path):
    with HostileServer({"w.pt": garbage()}) as server:
        with pytest.raises(DownloadError, match="not an HTTP answer .*SSH-2.0") as info:
            _fetch(server.url + "w.pt", tmp_path / "w.pt")
    assert "\n" not in str(info.value)


def test_redirects_to_http_are_followed(tmp_path):
    data = _noise(5000)
    with HostileServer({"a": redirect("/b", 301), "b": serve(data)}) as server:
        _fetch(server.url + "a", tmp_path / "w.pt")
    assert (tmp_path / "w.pt").read_bytes() == data


def _official(monkeypatch, tmp_path, data=b"weights"):
    info = weights._official("tiny_x2", hashlib.sha256(data).hexdigest()[:8], "EDSR", (2,), None)
    monkeypatch.setitem(weights.OFFICIAL, "tiny_x2", info)
    monkeypatch.setenv("EDSR_LAB_CACHE", str(tmp_path / "cache"))
    return info


def test_download_weights_never_hangs_or_fills_the_cache(tmp_path, monkeypatch, capsys):
    info = _official(monkeypatch, tmp_path)
    monkeypatch.setattr(download, "STALL_SECONDS", 0.4)
    monkeypatch.setattr(weights, "MAX_WEIGHTS_BYTES", 500_000)
    routes = {"slow/" + info.file: trickle_body(announce=1000), "flood/" + info.file: endless()}
    cache = tmp_path / "cache/weights"
    with HostileServer(routes) as server:
        argv = ["download-weights", "tiny_x2", "--base-url", server.url + "slow/"]
        assert main(argv) == 2
        assert "stalled" in _error_line(capsys)
        argv[-1] = server.url + "flood/"
        for _ in range(2):
            assert main(argv) == 2
            err = _error_line(capsys)
            assert "more than 500,000 bytes" in err and "resume" not in err
            assert not list(cache.glob("*.part"))


# ============================================================ neighbours: resume integrity


def test_a_part_from_another_url_is_resumed_only_from_the_same_file(tmp_path, capsys):
    a, b = _noise(10_000, 5), _noise(12_000, 6)
    with Server({"a.bin": a}, truncate=4000) as server:
        with pytest.raises(DownloadError, match="incomplete"):
            _fetch(server.url + "a.bin", tmp_path / "w.bin")
    assert (tmp_path / "w.bin.part").stat().st_size == 6000
    # Another URL serving another file: started over, never spliced.
    with Server({"b.bin": b}) as server:
        _fetch(server.url + "b.bin", tmp_path / "w.bin")
        assert server.requests == [("/b.bin", "bytes=6000-"), ("/b.bin", None)]
    assert (tmp_path / "w.bin").read_bytes() == b
    assert "not the same file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]
    # A mirror serving the same file (same length): resumed.
    with Server({"a.bin": a}, truncate=4000) as server:
        with pytest.raises(DownloadError, match="incomplete"):
            _fetch(server.url + "a.bin", tmp_path / "v.bin")
    with Server({"mirror/a.bin": a}) as server:
        _fetch(server.url + "mirror/a.bin", tmp_path / "v.bin")
        assert server.requests == [("/mirror/a.bin", "bytes=6000-")]
    assert (tmp_path / "v.bin").read_bytes() == a


def test_a_206_for_the_wrong_range_is_not_appended(tmp_path):
    data = _noise(10_000, 7)
    (tmp_path / "w.bin.part").write_bytes(data[:3000])
    with HostileServer({"w.bin": wrong_range(data)}) as server:
        _fetch(server.url + "w.bin", tmp_path / "w.bin")
        assert server.requests == [("/w.bin", "bytes=3000-")]
    assert (tmp_path / "w.bin").read_bytes() == data


def test_a_folder_at_the_destination_is_a_clear_error(tmp_path):
    (tmp_path / "w.bin").mkdir()
    (tmp_path / "w.bin/mine.txt").write_bytes(b"mine")
    with pytest.raises(DownloadError, match="w.bin' is a folder"):
        _fetch("http://127.0.0.1:9/w.bin", tmp_path / "w.bin", sha256="ab")
    assert (tmp_path / "w.bin/mine.txt").read_bytes() == b"mine"


def test_download_benchmarks_caps_an_endless_archive(tmp_path, monkeypatch, capsys):
    from edsr_lab.data import benchmarks

    monkeypatch.setattr(benchmarks, "MAX_ARCHIVE_BYTES", 300_000)
    root = tmp_path / "new" / "data"
    with HostileServer({"benchmark.tar": endless()}) as server:
        argv = ["download-benchmarks", "--root", str(root), "--url", server.url + "benchmark.tar"]
        assert main(argv) == 2
    assert "more than 300,000 bytes" in _error_line(capsys)
    assert not (tmp_path / "new").exists()  # no .part, and no empty folder left behind
