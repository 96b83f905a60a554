"""Downloading, shared by DIV2K, the benchmark sets and the pretrained weights.

* :func:`fetch` streams a URL to a file through ``<file>.part``, resumes a broken
  download with an HTTP ``Range`` request (only a range that starts where the ``.part``
  ends, and from another URL only if it serves a file of the same length), shows a tqdm
  progress bar, and checks the result (length announced by the server, a known size, a
  full SHA-256 or the 8-hex-digit prefix that torch.hub-style file names carry) *before*
  the file gets its final name. A file that fails the check is moved aside
  (``<file>.corrupt``), never used. It never waits forever (connect and read time-outs,
  a stall detector) and never fills the disk (a body longer than the expected size, or
  ``MAX_DOWNLOAD``, is refused and its ``.part`` deleted). Only ``http://`` and
  ``https://`` URLs are fetched, redirects included.
* :func:`safe_extract` (from :mod:`edsr_lab.archives`, re-exported here) unpacks a zip or
  tar archive after checking every member.
* :func:`removing_new_dirs` undoes the folders a failed command created, so a download
  that fails leaves no empty folder behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from edsr_lab.archives import MAX_RATIO, archive_names, safe_extract
from edsr_lab.errors import DownloadError, FileWriteError

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_DOWNLOAD",
    "MAX_RATIO",
    "STALL_BYTES",
    "STALL_SECONDS",
    "archive_names",
    "check_url",
    "fetch",
    "move_aside",
    "removing_new_dirs",
    "safe_extract",
    "sha256_file",
    "verify",
]

#: ``progress(label, bytes_done, bytes_total_or_None)``; or True for a tqdm bar, None/False
#: for silence.
Progress = Callable[[str, int, "int | None"], None] | bool | None

_CHUNK = 1 << 20
#: The most bytes :func:`fetch` accepts when the expected size is not known: the largest
#: DIV2K zip is about 3.5 GB; a longer body is an endless or wrong one.
MAX_DOWNLOAD = 8 * 2**30
#: Seconds to wait for a connection to open (each read waits ``fetch(timeout=...)``).
CONNECT_TIMEOUT = 30.0
#: A transfer that brings fewer than ``STALL_BYTES`` bytes in ``STALL_SECONDS`` seconds (or
#: no answer at all in that time) has stalled: it is stopped, so nothing waits forever.
STALL_SECONDS = 120.0
STALL_BYTES = 64 * 1024


def check_url(url: str, what: str = "URL") -> str:
    """Return ``url`` if it is http(s); else DownloadError naming what to pass."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DownloadError(
            f"{what} must start with http:// or https://, got {url!r} "
            "(for files on disk, copy them into place instead)"
        )
    return url


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file as 64 hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path, *, size: int | None = None, sha256: str | None = None) -> str | None:
    """Why ``path`` is not the expected file, or None when it is.

    Args:
        size: the exact size in bytes, if known.
        sha256: the full hex digest, or a prefix of it (torch.hub file names carry 8 hex
            digits, e.g. ``edsr_baseline_x2-1bc95232.pt``).
    """
    path = Path(path)
    have = path.stat().st_size
    if size is not None and have != size:
        return f"it is {have:,} bytes, expected {size:,}"
    if sha256:
        got = sha256_file(path)
        if not got.startswith(sha256.lower()):
            return f"its SHA-256 starts with {got[: len(sha256)]}, expected {sha256.lower()}"
    return None


def move_aside(path: Path, reason: str, *, quiet: bool = False) -> Path:
    """Rename a bad file to ``<name>.corrupt`` (replacing an older one) and say so on stderr
    (unless ``quiet``: the caller's error message says it)."""
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    if not quiet:
        print(f"{path.name}: {reason}; moved aside to {aside}", file=sys.stderr)
    return aside


class _Bar:
    """Adapts ``progress`` (True, None/False or a callable) to update(done, total)."""

    def __init__(self, progress: Progress, label: str):
        self.label, self.bar = label, None
        self.fn = progress if callable(progress) else None
        self.enabled = bool(progress)

    def update(self, done: int, total: int | None) -> None:
        if self.fn is not None:
            self.fn(self.label, done, total)
        elif self.enabled:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=self.label, leave=True,
                )  # fmt: skip
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    max_size: int | None = None,
    progress: Progress = True,
    label: str | None = None,
    timeout: float = 60.0,
    fix: str = "",
) -> Path:
    """Download ``url`` to ``dest``, resumably, and check it before giving it its name.

    If ``dest`` exists and passes the checks, nothing is fetched (offline use once
    downloaded). If it exists but fails them, it is moved aside (``.corrupt``) and fetched
    again. The download streams to ``dest.part``; a rerun after a broken connection
    continues from where it stopped (HTTP Range; a server that ignores Range restarts it,
    and a ``.part`` that came from another URL is resumed only if that URL serves a file
    of the same length, a mirror: two different files are never spliced).

    Nothing waits forever and nothing fills the disk: connecting may take
    ``CONNECT_TIMEOUT`` s, each read ``timeout`` s, the answer to a request
    ``STALL_SECONDS`` s, and a transfer that brings fewer than ``STALL_BYTES`` in
    ``STALL_SECONDS`` s is stopped as stalled (the ``.part`` is kept: a rerun resumes).
    A body longer than ``size`` (when known), else ``max_size``, is refused and its
    ``.part`` deleted; so is a server that announces more. Redirects are followed to
    http(s) URLs only.

    Args:
        url: an http(s) URL.
        dest: the file to create (its folder is created).
        size, sha256: expected size / SHA-256 (full or prefix); see :func:`verify`. The
            length the server announces is always checked.
        max_size: the most bytes accepted when ``size`` is not known (default
            ``MAX_DOWNLOAD``).
        progress: True for a tqdm bar, a callable ``progress(label, done, total)``, or None.
        label: the name shown by the progress bar (default: the file name).
        timeout: seconds one read may wait for the server (connecting: at most
            ``CONNECT_TIMEOUT``).
        fix: a sentence appended to error messages (e.g. how to fetch the file by hand).

    Returns:
        ``Path(dest)``.

    Raises:
        DownloadError: HTTP error, no connection, a time-out or a stall, broken-off
            transfer (rerun to resume), a body over the size limit, a redirect to a
            non-http(s) URL, or a file that fails the checks (moved aside to
            ``dest.corrupt``).
        FileWriteError: the ``.part`` cannot be written (e.g. the disk is full).
    """
    check_url(url)
    dest = Path(dest)
    fix = f" {fix}" if fix else ""
    if dest.is_dir():
        raise DownloadError(
            f"{str(dest)!r} is a folder, not the file to download; move it away and run the "
            "command again"
        )
    if dest.exists():
        problem = verify(dest, size=size, sha256=sha256)
        if problem is None:
            return dest
        move_aside(dest, problem)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    cap = size if size is not None else (max_size if max_size is not None else MAX_DOWNLOAD)
    bar = _Bar(progress, label or dest.name)
    try:
        _Transfer(url, partial, bar, timeout, cap, fix).run()
    finally:
        bar.close()
    _source_file(partial).unlink(missing_ok=True)  # the .part is complete: no resume now
    problem = verify(partial, size=size, sha256=sha256)
    if problem is not None:
        aside = move_aside(partial, problem)
        raise DownloadError(
            f"the file downloaded from {url} is not the expected one: {problem}. It was moved "
            f"aside to {str(aside)!r} and will not be used; run the command again, or use "
            f"another mirror.{fix}"
        )
    os.replace(partial, dest)
    return dest


def _source_file(partial: Path) -> Path:
    """Where the URL a ``.part`` comes from is kept (so a rerun never splices two files)."""
    return partial.with_name(partial.name + ".url")


def _read_source(partial: Path) -> tuple[str | None, int | None]:
    """``(url, full length or None)`` recorded for a ``.part``; (None, None) if unknown."""
    try:
        lines = _source_file(partial).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None, None  # a .part from an older version or made by hand: no record
    url = lines[0].strip() if lines else None
    length = lines[1].strip() if len(lines) > 1 else ""
    return url or None, int(length) if length.isdigit() else None


def _discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    _source_file(partial).unlink(missing_ok=True)


class _Watchdog:
    """Shuts the connection down if the server has not answered within ``seconds``.

    A socket time-out bounds each read, but a server that sends its headers one byte at a
    time never trips it; this bounds the whole wait for the answer.
    """

    def __init__(self, seconds: float):
        self.seconds, self.socks, self.fired = seconds, [], False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def add(self, sock: socket.socket) -> None:
        self.socks.append(sock)

    def _fire(self) -> None:
        self.fired = True
        for sock in self.socks:
            with contextlib.suppress(OSError):  # already closed: nothing left to stop
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _TimedConnection:
    """Mixin: connect within the connection's ``timeout``, then read with ``read_timeout``."""

    def __init__(self, *args, read_timeout: float, watch: _Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timeout, self._watch = read_timeout, watch

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self._read_timeout)
        self._watch.add(self.sock)


class _Http(_TimedConnection, http.client.HTTPConnection):
    pass


class _Https(_TimedConnection, http.client.HTTPSConnection):
    pass


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, **conn_args):
        super().__init__()
        self._conn_args = conn_args

    def http_open(self, req):
        return self.do_open(_Http, req, **self._conn_args)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, **conn_args):
        super().__init__()
        self._conn_args = conn_args

    def https_open(self, req):
        return self.do_open(_Https, req, **self._conn_args)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only (urllib also follows ftp://)."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = headers.get("location") or headers.get("uri")
        if target:
            new = urllib.parse.urljoin(req.full_url, target)
            if urllib.parse.urlsplit(new).scheme.lower() not in ("http", "https"):
                fp.close()
                raise DownloadError(
                    f"refusing the redirect from {req.full_url} to {new} (HTTP {code}): only "
                    "http:// and https:// URLs are downloaded; check the URL or use another mirror"
                )
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


class _Transfer:
    """One attempt at appending ``url`` to ``partial`` from its current size."""

    def __init__(self, url: str, partial: Path, bar: _Bar, timeout: float, cap: int, fix: str):
        self.url, self.partial, self.bar, self.timeout = url, partial, bar, timeout
        self.cap, self.fix = cap, fix

    def _error(self, text: str) -> DownloadError:
        return DownloadError(f"{text}{self.fix}")

    def run(self, resume: bool = True) -> None:
        partial, url = self.partial, self.url
        done = partial.stat().st_size if resume and partial.is_file() else 0
        if done > self.cap:
            done = 0  # longer than the whole file may be: it cannot be resumed into it
        # A .part from another URL is resumed only if that server confirms it serves a file
        # of the same length (a mirror); otherwise two different files would be spliced.
        came_from, length = _read_source(partial) if done else (None, None)
        other = came_from is not None and came_from != url
        response = self._open(done)
        if response is None:  # 416: the .part is already full length (or bogus)
            _discard(partial)
            return self.run(resume=False)
        with response:
            start, total = _range(response, done)
            if start is None or (other and start and (length is None or total != length)):
                if not resume:  # a 206 for a range nobody asked for
                    raise self._error(f"{url} answers with a range that was not asked for.")
                if other:
                    print(
                        f"{partial.name} came from {came_from}, which is not the same file as "
                        f"{url}: starting over",
                        file=sys.stderr,
                    )
                _discard(partial)
                response.close()
                return self.run(resume=False)
            if total is not None and total > self.cap:
                _discard(partial)
                raise self._error(
                    f"{url} announces {total:,} bytes, more than the {self.cap:,} expected; "
                    "refusing to download it. Check the URL or use another mirror."
                )
            try:
                _source_file(partial).write_text(f"{url}\n{'' if total is None else total}\n")
            except OSError as err:
                raise FileWriteError(
                    f"cannot write next to {str(partial)!r}: {err.strerror}; free some space "
                    "(or fix the folder's permissions) and run the command again"
                ) from err
            self._copy(response, start, total)
        return None

    def _open(self, done: int):
        """The response to a request for the bytes from ``done`` on (None for HTTP 416)."""
        request = urllib.request.Request(self.url, headers={"User-Agent": "edsr-lab"})
        if done:
            request.add_header("Range", f"bytes={done}-")
        connect = min(self.timeout, CONNECT_TIMEOUT)
        watch = _Watchdog(STALL_SECONDS)
        args = {"read_timeout": self.timeout, "watch": watch}
        opener = urllib.request.build_opener(
            _HttpHandler(**args), _HttpsHandler(**args), _HttpOnlyRedirects
        )
        stalled = self._error(
            f"no answer from {self.url} within {STALL_SECONDS:g} s (the server stalled); check "
            "the URL or try again later."
        )
        try:
            with watch:
                response = opener.open(request, timeout=connect)
            if watch.fired:  # headers cut short by the watchdog can still parse
                response.close()
                raise stalled
            return response
        except DownloadError:
            raise
        except urllib.error.HTTPError as err:
            if err.fp is not None:
                err.close()
            if err.code == 416 and done:
                return None
            raise self._error(
                f"downloading {self.url} failed: HTTP {err.code} {err.reason}."
            ) from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            host = urllib.parse.urlsplit(self.url).netloc
            if watch.fired:
                raise stalled from err
            if isinstance(reason, TimeoutError) and not watch.socks:
                raise self._error(
                    f"could not connect to {host} within {connect:g} s; check your internet "
                    "connection or the URL."
                ) from err
            if isinstance(reason, TimeoutError):
                raise self._error(
                    f"{host} sent no answer to the request for {self.url} within "
                    f"{self.timeout:g} s; try again later."
                ) from err
            if isinstance(reason, http.client.HTTPException) and not isinstance(reason, OSError):
                text = " ".join(str(reason).split())[:80]  # one line, however it came
                reason = f"not an HTTP answer ({type(reason).__name__}: {text!r})"
            raise self._error(
                f"cannot download {self.url}: {reason}. Check your internet connection or the URL."
            ) from err

    def _copy(self, response, done: int, total: int | None) -> None:
        """Write the body to the ``.part`` (appending at ``done``), bounded in size and time."""
        url, partial = self.url, self.partial
        self.bar.update(done, total)
        over = False
        window_start, window_bytes = time.monotonic(), 0
        try:
            f = open(partial, "ab" if done else "wb")  # noqa: SIM115 (closed below)
        except OSError as err:
            raise FileWriteError(f"cannot write {str(partial)!r}: {err.strerror}") from err
        with f:
            while True:
                try:
                    chunk = response.read1(_CHUNK)
                except TimeoutError as err:
                    raise self._error(
                        f"the server of {url} sent nothing for {self.timeout:g} s (after "
                        f"{done:,} bytes); run the same command again to resume it."
                    ) from err
                except (OSError, http.client.HTTPException) as err:
                    raise self._error(
                        f"the download of {url} broke off after {done:,} bytes ({err}); run "
                        "the same command again to resume it."
                    ) from err
                if not chunk:
                    break
                if done + len(chunk) > self.cap:
                    over = True
                    break
                try:
                    f.write(chunk)
                except OSError as err:
                    raise FileWriteError(
                        f"cannot write {str(partial)!r}: {err.strerror}; free some space and run "
                        "the same command again to resume the download"
                    ) from err
                done += len(chunk)
                self.bar.update(done, total)
                window_bytes += len(chunk)
                now = time.monotonic()
                if now - window_start >= STALL_SECONDS:
                    if window_bytes < STALL_BYTES:
                        raise self._error(
                            f"the download of {url} stalled: {window_bytes:,} bytes came in "
                            f"{now - window_start:.1f} s (at least {STALL_BYTES:,} bytes every "
                            f"{STALL_SECONDS:g} s are needed); run the same command again to "
                            "resume it, maybe later."
                        )
                    window_start, window_bytes = now, 0
        if over:
            _discard(partial)
            raise self._error(
                f"the server sent more than {self.cap:,} bytes for {url} (at most {self.cap:,} "
                "expected); the partial file was deleted. Check the URL or use another mirror."
            )
        if total is not None and done != total:
            raise self._error(
                f"the download of {url} is incomplete ({done:,} of {total:,} bytes); run the "
                "same command again to resume it."
            )


def _range(response, done: int) -> tuple[int | None, int | None]:
    """``(offset the body starts at, full length or None)``; offset None for a 206 that
    starts neither at ``done`` nor at 0 (a fragment we cannot place)."""
    length = response.headers.get("Content-Length")
    length = int(length) if length is not None and length.isdigit() else None
    if response.status != 206:  # the whole file (a server may ignore Range)
        return 0, length
    match = re.fullmatch(
        r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range", "")
    )
    if match is None:
        return None, None
    start = int(match.group(1))
    if start not in (done, 0):
        return None, None
    total = int(match.group(3)) if match.group(3) != "*" else None
    if total is None and length is not None:
        total = start + length
    return start, total


# ------------------------------------------------------------------------------ folders


@contextlib.contextmanager
def removing_new_dirs(path: str | Path) -> Iterator[Path]:
    """Create ``path`` (and parents); if the block fails, remove those that are still empty.

    A folder that holds something (e.g. a ``.part`` file to resume from) is kept.
    """
    path = Path(path).expanduser()
    new = []
    p = path
    while not p.exists() and p != p.parent:
        new.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in new:  # deepest first
            try:
                d.rmdir()  # only succeeds when empty
            except OSError:
                break
        raise
