"""A real OpenAI-compatible server on 127.0.0.1: ``transformers serve`` with the bundled
SmolLM2, for the server tests and the load test.

``transformers serve`` does not serve the GGUF file itself (its config names no
architecture), so :func:`export_for_serving` saves the loaded weights as safetensors with
the tokenizer (through ``llm_optimizer.models.converted.savable``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from llm_optimizer import LLM
from llm_optimizer.models.converted import savable


def export_for_serving(llm: LLM, path: Path) -> Path:
    """Save ``llm``'s weights and tokenizer in ``path`` as a folder a server can load.

    Its generation config samples (pure temperature, no top-k) as ``LLM.generate``
    does; ``transformers serve`` takes ``do_sample`` from it. The weights are those of
    the prompt's pass, which must be fp32 (decoding may run on int8 copies of them).
    """
    if llm.precision.prefill != "fp32":
        raise ValueError(f"export_for_serving saves fp32 weights; this model's prompt runs "
                         f"in {llm.precision.prefill}: load it with precision='fp32'")
    model = savable(llm.prefill_model)
    model.generation_config.update(do_sample=True, top_k=0, top_p=1.0)
    model.save_pretrained(path)
    llm.tokenizer.save_pretrained(path)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """``transformers serve MODEL_DIR`` on 127.0.0.1; use as a context manager.

    ``threads`` sets the server's torch threads: one by default, since several
    intra-op threads on a busy two-core machine slow every request many times over.
    """

    def __init__(self, model_dir: Path, *, port: int | None = None, threads: int = 1,
                 log: Path | None = None):
        self.model_dir = Path(model_dir)
        self.port = port or free_port()
        self.threads = threads
        self.log = log or self.model_dir.with_name(f"serve-{self.port}.log")
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        """The name the server lists the model under (its folder)."""
        return str(self.model_dir)

    def start(self, *, ready_within: float = 180.0) -> LocalServer:
        """Start the server and wait until it answers ``/health`` (at most ``ready_within`` s)."""
        command = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model,
                   "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
                   "--log-level", "warning"]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited ({self.process.returncode}): "
                                   + self.log.read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"transformers serve was not ready within {ready_within:g} s: "
                           + self.log.read_text()[-2000:])

    def stop(self) -> None:
        """Stop the server (and anything it started); kill it if it does not stop in 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
