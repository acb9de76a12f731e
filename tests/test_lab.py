"""``make lab`` opens JupyterLab on the notebooks from the project's environment."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read(1_000_000))


def test_make_lab_serves_the_notebooks_on_a_local_port(tmp_path):
    venv = Path(sys.executable).parent.parent  # the environment these tests run in
    port, token = _free_port(), secrets.token_hex(16)
    flags = (f"--no-browser --ServerApp.ip=127.0.0.1 --port={port} --port-retries=0 "
             f"--IdentityProvider.token={token}")
    if os.geteuid() == 0:  # a container's root: Jupyter asks for this to be said
        flags += " --allow-root"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    env.pop("JUPYTER_PORT", None)
    lab = subprocess.Popen(["make", "-s", "lab", f"VENV={venv}", "-o", f"{venv}/.installed",
                            f"LAB_FLAGS={flags}"], cwd=ROOT, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, version = time.monotonic() + 180, None
        while version is None and time.monotonic() < deadline and lab.poll() is None:
            try:
                version = _get(f"http://127.0.0.1:{port}/api")["version"]
            except OSError:
                time.sleep(1)
        if version is None and lab.poll() is not None:
            raise AssertionError(f"make lab ended: {lab.stderr.read(4000).decode()}")
        assert version, f"no JupyterLab answered on port {port} within 180 s"
        listing = _get(f"http://127.0.0.1:{port}/api/contents?token={token}")
        names = {item["name"] for item in listing["content"]}
        assert "01_linear_regression.ipynb" in names  # the server's root is notebooks/
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait(timeout=10)
