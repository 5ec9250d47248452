"""Browser tests: a throw-away JupyterLab (free port, token, its own settings, workspaces and config, autosave off)
serving a small test notebook written to a temporary folder, and a headless Chromium page driving it.

No Playwright or no Chromium: every test here skips with the reason and how to get it (MMCOURSE_REQUIRE_BROWSER=1,
which `.ci/run` sets once it has a Chromium, turns those skips into failures). Nothing is written into the
repository except the screenshots under `.browser-shots/` (git-ignored), for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".browser-shots"
SERVER_START_S = 60  # a cold start of JupyterLab on a busy 2-core machine takes ~5 s


def find_chromium() -> str | None:
    """The system Chromium (or Chrome): $MMCOURSE_CHROMIUM, /usr/bin/chromium, then the usual names on PATH."""
    candidates = [os.environ.get("MMCOURSE_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome")]
    return next((p for p in candidates if p and os.path.isfile(p) and os.access(p, os.X_OK)), None)


def skip_or_fail(reason: str):
    """Skip with `reason`, or fail where a browser is required (CI, once it has installed one)."""
    if os.environ.get("MMCOURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (and MMCOURSE_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


class Lab:
    """A running `jupyter lab`: its base URL, token and notebook folder; `stop()` ends it and its kernels."""

    def __init__(self, home: Path, config: Path | None = None):
        self.home, self.root, self.token, self.config = home, home / "notebooks", uuid.uuid4().hex, config
        self.root.mkdir()
        settings = home / "settings"
        # Autosave off: the test never writes the notebook back, even into its temporary folder. No news, no
        # update check: nothing is fetched from the internet, no toast covers the page.
        _write_json(settings / "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings", {"autosave": False})
        _write_json(settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
                    {"fetchNews": "false", "checkForUpdates": False})
        self.env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
                    "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
                    "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
                    "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
                    "JUPYTER_PLATFORM_DIRS": "1", "OMP_NUM_THREADS": "1"}
        self.env.pop("MPLBACKEND", None)  # the kernel's own inline backend, whatever the tests' process uses
        self.proc: subprocess.Popen | None = None
        self.log = home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
               f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        if self.config is not None:
            cmd.append(f"--config={self.config}")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_S} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM is jupyter's clean shutdown (its kernels included); SIGKILL if that takes over 10 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            proc.send_signal(sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("browser tests need Playwright: pip install -e '.[dev]' (or pip install playwright)")
    path = find_chromium()
    if path is None:
        skip_or_fail("browser tests need a system Chromium, none found at /usr/bin/chromium or on PATH "
                     "(Debian/Ubuntu: sudo apt-get install chromium; or set MMCOURSE_CHROMIUM=/path/to/chrome)")
    return path


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    """A JupyterLab server of its own (one per xdist worker: `--dist loadscope` keeps a module on one worker).
    A start that fails (e.g. another process took the free port first) is tried once more."""
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        try:
            server.start()
        except RuntimeError:
            server.stop()
            server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def course_lab(tmp_path_factory):
    """A JupyterLab (no browser needed) serving a copy of the course's notebooks, with their .py twins and the
    jupytext pairing, as a learner's checkout has them, and JupyterLab's settings as `make lab` passes them."""
    server = Lab(tmp_path_factory.mktemp("course-lab"), config=ROOT / "jupyter_lab_config.py")
    shutil.copy(ROOT / "jupytext.toml", server.root)
    for folder in ("notebooks", "solutions", "exercises"):
        shutil.copytree(ROOT / folder, server.root / folder, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium, headless=True)
        except Error as e:
            skip_or_fail(f"Chromium at {chromium} did not start: {str(e).splitlines()[0]}")
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(request) -> Path:
    """Where this module's screenshots go: .browser-shots/<module>/, emptied first."""
    folder = SHOTS / request.module.__name__.rsplit(".", 1)[-1]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
