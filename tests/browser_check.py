"""Notebook 03's live panel in a real browser: *Run all*, then Run, then Stop.

    python tests/browser_check.py lab --out shots/            # JupyterLab, ipywidgets 8
    python tests/browser_check.py classic --python .colab-venv/bin/python --out shots/
                                        # Notebook 6.5.7 with ipywidgets 7.7.1 (Colab's)

Serves a copy of the notebook with the given environment's Jupyter (quick mode), opens
it in headless Chromium (Debian's ``chromium`` package; driven by ``pip install
playwright``), runs every cell, presses the panel's Run button, waits for two steps,
presses Stop, and prints what the status line said, with screenshots in ``--out``.
Exits 1 if the panel did not update or did not stop.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_llm_as_optimizer.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(front_end: str, python: str, folder: Path, port: int, token: str) -> subprocess.Popen:
    """Start Jupyter (``lab`` or the classic ``notebook``) on ``folder``."""
    app = ["-m", "jupyterlab"] if front_end == "lab" else ["-m", "notebook"]
    command = [python, *app, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--NotebookApp.token={token}", f"--ServerApp.token={token}",
               f"--IdentityProvider.token={token}", f"--notebook-dir={folder}",
               "--allow-root"]
    env = {**os.environ, "LLM_OPTIMIZER_QUICK": "1"}
    server = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("Jupyter did not start")


def run_all(page, front_end: str) -> None:
    if front_end == "lab":
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
    else:
        page.click("#celllink")
        page.click("#run_all_cells")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("front_end", choices=["lab", "classic"])
    parser.add_argument("--python", default=sys.executable,
                        help="Python of the environment to serve from")
    parser.add_argument("--out", type=Path, default=Path("browser-check"))
    parser.add_argument("--timeout", type=float, default=900, help="seconds for Run all")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp())
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    # Absolute, not resolved: a venv's python is a link that must stay inside the venv.
    server = serve(args.front_end, os.path.abspath(args.python), folder, port, token)
    path = "lab/tree" if args.front_end == "lab" else "notebooks"
    seen: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/{path}/{NOTEBOOK.name}?token={token}")
            page.wait_for_timeout(8000)  # the page and its kernel start
            run_all(page, args.front_end)
            run = page.locator("button:has-text('Run')").filter(has_text=re.compile("^Run$"))
            status = page.get_by_text("Set the sliders and press Run.")
            try:
                status.wait_for(timeout=args.timeout * 1000)
            finally:  # what the page showed, also when the panel never appeared
                page.screenshot(path=str(args.out / f"{args.front_end}-0-ready.png"),
                                full_page=True)
            # Found from its Stop button, which stays while the status line changes.
            stop = page.locator("button:has-text('Stop')").last
            panel = stop.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
            panel.scroll_into_view_if_needed()
            pictures = panel.locator("img")
            assert pictures.count() == 0 or not pictures.first.is_visible(), "empty picture"
            run.last.click()
            line = panel.locator(".widget-html").first
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                text = line.inner_text()
                if not seen or text != seen[-1]:
                    seen.append(text)
                if text.startswith("step 2 of"):
                    break
                page.wait_for_timeout(200)
            page.screenshot(path=str(args.out / f"{args.front_end}-1-running.png"))
            stop.click()
            while time.monotonic() < deadline:
                text = line.inner_text()
                if text != seen[-1]:
                    seen.append(text)
                if text.startswith(("stopped", "finished")):
                    break
                page.wait_for_timeout(200)
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(args.out / f"{args.front_end}-2-stopped.png"))
            shown = pictures.first.evaluate("img => img.naturalWidth") if pictures.count() else 0
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for text in seen:
        print("status:", text)
    print(f"picture width in the page: {shown} px; screenshots in {args.out}/")
    ok = any(t.startswith("step 1 of") for t in seen) and seen[-1].startswith("stopped after")
    return 0 if ok and shown > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
