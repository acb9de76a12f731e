"""A minimal Jupyter front end for driving widgets in a real kernel, as a browser would.

It executes code, clicks buttons and moves sliders by sending the same comm messages a
browser sends, and records the widget updates the kernel publishes. An update counts as
*delivered* only if it arrived while the request it answers was still running (between
the kernel's "busy" and "idle" for that request): Colab's front end shows nothing else
(googlecolab/colabtools#3373), so a panel that passes here does not rely on updates sent
when the kernel is idle, from a background thread or a later callback.

Links made with ``jslink``/``jsdlink`` live in the page; this front end plays their part
as ipywidgets' own ``LinkModel`` does: when a delivered update changes a link's source,
it sets the target to the same value and sends that change back to the kernel.
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field

from jupyter_client.manager import KernelManager


@dataclass
class Update:
    """One widget state update published by the kernel."""

    model_id: str
    state: dict
    delivered: bool
    at: float = field(default_factory=time.monotonic)


class Frontend:
    """A kernel started from ``kernel_name`` and driven through its channels."""

    def __init__(self, kernel_name: str = "python3", *, env: dict | None = None):
        self.manager = KernelManager(kernel_name=kernel_name)
        self.manager.start_kernel(env={**os.environ, **(env or {})})
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.busy: set[str] = set()  # requests the kernel is working on now
        self.updates: list[Update] = []
        self.links: list[tuple[str, str, str, str]] = []  # source id, attr, target id, attr

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

    def _drain(self, timeout: float) -> dict | None:
        """Handle one IOPub message (or none within ``timeout``); return it."""
        try:
            msg = self.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        parent = msg["parent_header"].get("msg_id")
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status":
            if content["execution_state"] == "busy":
                self.busy.add(parent)
            elif content["execution_state"] == "idle":
                self.busy.discard(parent)
        elif kind == "comm_open":
            state = content["data"].get("state", {})
            if state.get("_model_name") in ("LinkModel", "DirectionalLinkModel"):
                (source, source_attr), (target, target_attr) = state["source"], state["target"]
                self.links.append((source.removeprefix("IPY_MODEL_"), source_attr,
                                   target.removeprefix("IPY_MODEL_"), target_attr))
        elif kind == "comm_msg" and content["data"].get("method") in ("update", "echo_update"):
            state = dict(content["data"].get("state", {}))
            for path, buffer in zip(content["data"].get("buffer_paths", []),
                                    msg.get("buffers", []), strict=False):
                state[path[0]] = bytes(buffer)
            update = Update(content["comm_id"], state, parent in self.busy)
            self.updates.append(update)
            if update.delivered:
                for source, attr, target, target_attr in self.links:
                    if source == update.model_id and attr in state:
                        self.send(target, {"method": "update", "buffer_paths": [],
                                           "state": {target_attr: state[attr]}})
        return msg

    def pump(self, seconds: float) -> None:
        """Read IOPub for ``seconds``."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._drain(min(left, 0.1))

    def _await_idle(self, msg_id: str, timeout: float) -> list[dict]:
        seen, end = [], time.monotonic() + timeout
        while True:
            msg = self._drain(min(1.0, max(end - time.monotonic(), 0.01)))
            if msg is not None:
                seen.append(msg)
                if (msg["msg_type"] == "status" and msg["parent_header"].get("msg_id") == msg_id
                        and msg["content"]["execution_state"] == "idle"):
                    return seen
            if time.monotonic() > end:
                raise TimeoutError(f"no reply to {msg_id} within {timeout} s")

    def execute(self, code: str, timeout: float = 300) -> str:
        """Run ``code`` and wait for it; return its text output; raise on an error."""
        msg_id = self.client.execute(code)
        seen = self._await_idle(msg_id, timeout)
        ours = [m for m in seen if m["parent_header"].get("msg_id") == msg_id]
        errors = [m["content"] for m in ours if m["msg_type"] == "error"]
        if errors:
            raise RuntimeError("\n".join(errors[0]["traceback"]))
        return "".join(m["content"].get("text", "") for m in ours if m["msg_type"] == "stream")

    def send(self, model_id: str, data: dict) -> str:
        """Send a comm message to widget ``model_id`` as the browser does; return its id."""
        msg = self.client.session.msg("comm_msg", {"comm_id": model_id, "data": data})
        self.client.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def click(self, model_id: str) -> str:
        return self.send(model_id, {"method": "custom", "content": {"event": "click"}})

    def set_value(self, model_id: str, value) -> str:
        """Change a widget's value as a user moving it would."""
        return self.send(model_id, {"method": "update", "state": {"value": value},
                                    "buffer_paths": []})

    def wait_until(self, condition, timeout: float = 300) -> None:
        """Read IOPub until ``condition()`` holds."""
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("condition not met in time")
            self._drain(0.1)

    def delivered(self, model_id: str, key: str) -> list:
        """Every value of ``key`` that reached the front end for ``model_id``, in order."""
        return [u.state[key] for u in self.updates
                if u.model_id == model_id and u.delivered and key in u.state]
