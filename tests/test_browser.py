"""The comparison viewer in a real browser: JupyterLab on 127.0.0.1 and headless Chromium.

Unit tests (test_viewer.py) check the widget's values; this checks what a student sees:
JupyterLab, started from the repository root, opens a notebook in headless Chromium, runs
all its cells through Lab's own "run all" command, and the viewer's images must appear in
the page, decoded and non-empty. The notebook is a small one written here (the viewer
cells of notebook 10 on a sample image) so the test takes well under a minute; notebook 10
itself runs under nbval.

Chromium is driven through its DevTools protocol over a websocket (websocket-client, a
dependency of jupyter_server): nothing is downloaded at run time. A screenshot is saved to
``runs/browser-test/viewer_in_jupyterlab.png`` (path printed). The test is skipped only
where no Chromium is installed (CI installs Debian's ``chromium`` package in ``.ci/run``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on this machine (CI installs it: apt-get install -y chromium)",
)
ARTEFACT = ROOT / "runs" / "browser-test" / "viewer_in_jupyterlab.png"
TIMEOUT = 60  # seconds for each wait; the test takes ~10 s on an idle 2-core machine, ~50 s loaded

VIEWER_CELLS = [
    "from edsr_lab.data import load_sample\n"
    "from edsr_lab.viewer import compare\n"
    "from edsr_lab.weights import load_pretrained\n"
    'model = load_pretrained("course_edsr_baseline_x2", progress=False)\n'
    'hr = load_sample("medical_retina")[:, 128:256, 128:256]\n'
    'viewer = compare(model, hr=hr, name="EDSR")',
    "viewer",
    'print("viewer ready:", len(viewer.full), "panels")',
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float = TIMEOUT, every: float = 0.25):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class DevTools:
    """The few Chrome DevTools Protocol calls this test needs, over one websocket."""

    def __init__(self, ws_url: str):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=TIMEOUT, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # skip events until our answer arrives
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            return None
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving the repository root on a free port with a random token."""
    port, token = _free_port(), secrets.token_hex(16)
    # no "get Jupyter news?" toast over the page (and no request to the internet)
    news = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "EDSR_LAB_QUICK": "1",
        # the student's own Lab settings and workspaces must not change what the test sees
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run Lab's own commands
        "--KernelManager.transport_encryption=auto",  # no plain-TCP warning from the kernel
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait("JupyterLab to start", up)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def chromium(tmp_path):
    """Headless Chromium with the DevTools protocol on a free port; yields a DevTools page."""
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--remote-allow-origins=*",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1700,1100",
        "about:blank",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    page = None
    try:
        lines = []

        def devtools_port() -> int | None:
            line = proc.stderr.readline()
            lines.append(line)
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if not line and proc.poll() is not None:
                raise AssertionError(f"Chromium exited: {''.join(lines)[-2000:]}")
            return int(match.group(1)) if match else None

        port = _wait("Chromium's DevTools port", devtools_port, every=0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        target = next(t for t in targets if t["type"] == "page")
        page = DevTools(target["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def notebook():
    """A small notebook with the viewer cells, inside the repository root (Lab's root)."""
    folder = ROOT / "runs" / f"browser-test-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in VIEWER_CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "viewer.ipynb"
    nbformat.write(nb, path)
    try:
        yield path.relative_to(ROOT).as_posix()
    finally:
        shutil.rmtree(folder)


VIEWER_IMAGES = """(() => {
  const viewer = document.querySelector('.edsr-lab-viewer');
  if (!viewer) return null;
  const imgs = [...viewer.querySelectorAll('img')];
  return imgs.map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                         src: i.src.slice(0, 5)}));
})()"""


LAB_STATE = """(() => {
  const app = window.jupyterapp;
  const w = app && Array.from(app.shell.widgets('main')).find(w => w.sessionContext);
  const ctx = w && w.sessionContext, k = ctx && ctx.session && ctx.session.kernel;
  return {url: location.href, app: !!app, widget: w ? w.constructor.name : null,
          title: document.title, cells: document.querySelectorAll('.jp-Cell').length,
          kernel: k ? k.status : null, dialogs: document.querySelectorAll('.jp-Dialog').length,
          text: document.body.innerText.slice(0, 500)};
})()"""


def _save_screenshot(page: DevTools) -> Path:
    shot = page.call("Page.captureScreenshot", format="png")
    ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTEFACT.write_bytes(base64.b64decode(shot["data"]))
    return ARTEFACT


def test_viewer_renders_in_jupyterlab(lab, chromium, notebook):
    base, token = lab
    page = chromium
    start = time.monotonic()
    page.call("Page.enable")
    page.call("Page.navigate", url=f"{base}/lab/tree/{notebook}?token={token}")
    # The notebook panel (headless Chromium has no focus, so activate it ourselves).
    panel = (
        "(() => { const app = window.jupyterapp; if (!app) return null;"
        " const p = Array.from(app.shell.widgets('main')).find(w => w.sessionContext);"
        " if (p) app.shell.activateById(p.id); return p || null; })()"
    )
    ready = f"(() => {{ const p = {panel}; const k = p && p.sessionContext.session &&"
    ready += " p.sessionContext.session.kernel; return !!(k && k.status === 'idle'); })()"
    try:
        _wait("the notebook to open with an idle kernel", lambda: page.js(ready))
    except AssertionError:
        _save_screenshot(page)
        raise AssertionError(f"Lab state: {page.js(LAB_STATE)}") from None
    page.js("window.jupyterapp.commands.execute('notebook:run-all-cells'), true")

    def images():
        imgs = page.js(VIEWER_IMAGES) or []
        done = len(imgs) == 6 and all(i["complete"] and i["w"] > 0 for i in imgs)
        return imgs if done else None

    imgs = _wait("the viewer's 6 images (3 panels + 3 zooms) to render", images)
    text = _wait(
        "the cell after the viewer to print",
        lambda: page.js(
            "(() => { const t = document.body.innerText; "
            "return t.includes('viewer ready: 3 panels') ? t : null; })()"
        ),
    )
    elapsed = time.monotonic() - start
    page.js("document.querySelector('.edsr-lab-viewer').scrollIntoView(), true")
    _save_screenshot(page)
    print(f"\nscreenshot: {ARTEFACT} (viewer rendered {elapsed:.1f} s after opening Lab)")

    # three full images at the HR size (the retina crop, 128x128) and three enlarged regions
    sizes = sorted((i["w"], i["h"]) for i in imgs)
    assert sizes.count((128, 128)) == 3, sizes
    assert all(i["src"] == "blob:" or i["src"] == "data:" for i in imgs), imgs
    assert "PSNR (dB)" in text and "SSIM" in text  # the region scores table
    assert ARTEFACT.stat().st_size > 10_000
