"""The audit's hostile part: a stand-in server that answers badly on purpose, damaged
run folders and links planted in them (``python -m benchmarks.audit`` runs it).

- every bad answer of tests/hostile_server.py, to the API (``ServerModel.generate``, a
  deadline of 1 s with one retry) and to the command (a run against that server): is it
  one line naming the URL, within the deadline, with the key nowhere (messages, printable
  exception chains, stdout, stderr, the run's files)?
- damaged run folders resumed by the command: refused with one line and nothing changed,
  or recovered with every complete step kept;
- links to a file outside, planted under each name the package writes, in a new and in a
  saved folder: is the outside file ever written?
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# The answers a server may give that are not a bad answer to handle.
USABLE = ("good", "100 KB reply", "reply echoing the key", "one choice, slowly")
PLANTED = ("settings.json.partial", "history.csv.partial", "run.png.partial", "steps.jsonl",
           "run.lock")


def _leaks(secret: str, *texts: str | bytes) -> int:
    """How many of ``texts`` hold six or more characters of ``secret`` in a row."""
    parts = [secret[i:i + 6] for i in range(len(secret) - 5)]
    return sum(any((p.encode() if isinstance(t, bytes) else p) in t for p in parts)
               for t in texts)


@contextlib.contextmanager
def _stand_in(model_factory: Callable[[], object]):
    """The command loads ``model_factory()`` for the bundled model's names."""
    import llm_optimizer.models as models
    from llm_optimizer import cli

    real = models.load_model

    def load(name=None, **kwargs):
        return model_factory() if name in (None, "auto", "smollm2") else real(name, **kwargs)

    models.load_model = cli.load_model = load
    try:
        yield
    finally:
        models.load_model = cli.load_model = real


def _command(argv: list[str]) -> tuple[object, list[str], str]:
    from llm_optimizer import cli

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = cli.main(argv)
        except Exception as error:  # noqa: BLE001 (a traceback is what is counted)
            code = f"traceback: {type(error).__name__}"
    lines = [line for line in err.getvalue().splitlines()
             if line.strip() and not line.startswith("optimizing")]
    return code, lines, err.getvalue() + out.getvalue()


def audit_server() -> dict:
    from hostile_server import KINDS, SECRET, HostileServer

    from llm_optimizer.models import ServerError, ServerModel

    cases, leaks = [], 0
    bad = [k for k in KINDS if k not in USABLE]
    os.environ["OPENAI_API_KEY"] = SECRET
    try:
        for kind in bad:
            with HostileServer("good") as elsewhere, HostileServer(
                    kind, drip_seconds=0.2, elsewhere=elsewhere.url[:-3]) as server, \
                    tempfile.TemporaryDirectory() as tmp:
                started = time.monotonic()
                try:
                    model = ServerModel(server.url, prompt_style="completion", timeout=1,
                                        max_retries=1)
                    model.generate("META", n=2)
                    message, chain = "accepted", ""
                except ServerError as error:
                    message = str(error)
                    chain = "".join(traceback.format_exception(error))
                except Exception as error:  # noqa: BLE001 (what is counted)
                    message = f"{type(error).__name__}: {error}"
                    chain = "".join(traceback.format_exception(error))
                seconds = time.monotonic() - started
                code, lines, printed = _command(
                    ["run", "--base-url", server.url, "--prompt-style", "completion",
                     "--steps", "1", "--out", str(Path(tmp) / "run")])
                files = [p.read_bytes() for p in (Path(tmp) / "run").glob("*") if p.is_file()]
                followed = bool(elsewhere.seen)
            found = _leaks(SECRET, message, chain, printed, *files)
            leaks += found
            one_line = (message.startswith(server.url.rsplit("/", 1)[0])
                        and "\n" not in message and seconds < 3.0 and not followed)
            cases.append({"answer": kind, "one_line": one_line, "seconds": round(seconds, 2),
                          "message": message[:200], "cli_exit": code,
                          "cli_lines": len(lines), "key_leaks": found})
    finally:
        os.environ.pop("OPENAI_API_KEY", None)
    cli_clear = sum(c["cli_exit"] in (1, 2) and c["cli_lines"] <= 2 for c in cases)
    return {"tried": len(cases), "one_line": sum(c["one_line"] for c in cases),
            "cli_clear": cli_clear, "key_leaks": leaks, "cases": cases}


def _damages(lines: list[str]) -> dict[str, tuple[str, Callable[[Path], None]]]:
    """label: (what is expected, how the saved folder is damaged)."""
    def rewrite(name, text):
        return lambda out: (out / name).write_text(text)

    def edited_line(**fields):
        record = json.loads(lines[1])
        if "proposal" in fields:
            record["proposals"][0].update(fields.pop("proposal"))
        record.update(fields)
        return rewrite("steps.jsonl", "\n".join([lines[0], json.dumps(record), *lines[2:]])
                       + "\n")

    settings = "settings.json"
    return {
        "last line cut by a kill": ("recovered", rewrite(
            "steps.jsonl", "\n".join([*lines[:-1], lines[-1][:25]]))),
        "last line without its line break": ("recovered", rewrite(
            "steps.jsonl", "\n".join(lines))),
        "a line damaged before the last": ("refused", rewrite(
            "steps.jsonl", "\n".join([lines[0], lines[1][:30], *lines[2:]]) + "\n")),
        '"step": true': ("refused", edited_line(step=True)),
        '"step": 1.0': ("refused", edited_line(step=1.0)),
        '"parsed": "yes"': ("refused", edited_line(proposal={"parsed": "yes"})),
        '"b": "x"': ("refused", edited_line(proposal={"b": "x"})),
        "loss 1e999": ("refused", rewrite("steps.jsonl", _loss_1e999(lines))),
        "temperature edited in settings.json": ("refused", lambda out: (out / settings)
                                                .write_text((out / settings).read_text()
                                                            .replace('"temperature": 0.5',
                                                                     '"temperature": 0.9'))),
        "steps.jsonl deleted": ("refused", lambda out: (out / "steps.jsonl").unlink()),
        "only run.lock left (killed while loading)": ("refused", _only_lock),
        "settings.json not JSON": ("refused", rewrite(settings, "{")),
        "settings.json without its keys": ("refused", rewrite(settings, '{"dataset": "x"}')),
    }


def _loss_1e999(lines: list[str]) -> str:
    record = json.loads(lines[1])
    record["proposals"][0]["loss"] = 12345.5
    return "\n".join([lines[0], json.dumps(record).replace("12345.5", "1e999"),
                      *lines[2:]]) + "\n"


def _only_lock(out: Path) -> None:
    for path in out.iterdir():
        if path.name != "run.lock":
            path.unlink()
    (out / "run.lock").touch()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and not p.is_symlink() and p.name != "run.lock"}


def audit_folders(stand_in: Callable[[], object]) -> dict:
    cases, written_outside = [], 0
    with tempfile.TemporaryDirectory() as tmp, _stand_in(stand_in):
        root = Path(tmp)
        code, _, _ = _command(["run", "--model", "smollm2", "--steps", "3", "--temperature",
                               "0.5", "--out", str(root / "saved")])
        assert code == 0, code
        lines = (root / "saved" / "steps.jsonl").read_text().splitlines()
        for label, (expected, damage) in _damages(lines).items():
            out = root / f"case{len(cases)}"
            shutil.copytree(root / "saved", out)
            damage(out)
            before = _snapshot(out)
            code, err, _ = _command(["run", "--out", str(out), "--resume", "--steps", "4"])
            after = _snapshot(out)
            if expected == "recovered":
                kept = Path(out / "steps.jsonl").read_text().splitlines()
                complete = [ln for ln in lines if ln in before.get("steps.jsonl", b"").decode()]
                ok = code == 0 and kept[:len(complete)] == complete and len(kept) == 5
            else:
                ok = code == 2 and len(err) == 1 and after == before
            cases.append({"folder": label, "expected": expected, "handled": ok,
                          "exit": code, "stderr": " | ".join(err)[:200]})
        for name in PLANTED:
            for fresh in (True, False):
                victim = root / f"outside-{name}-{fresh}.txt"
                victim.write_text("untouched")
                out = root / f"link-{name}-{fresh}"
                if fresh:
                    out.mkdir()
                else:
                    shutil.copytree(root / "saved", out)
                    (out / name).unlink(missing_ok=True)
                (out / name).symlink_to(victim)
                argv = (["run", "--model", "smollm2", "--steps", "2", "--out", str(out)]
                        if fresh else ["run", "--out", str(out), "--resume", "--steps", "4"])
                code, err, _ = _command(argv)
                changed = victim.read_text() != "untouched"
                written_outside += changed
                cases.append({"folder": f"link as {name} ({'new' if fresh else 'saved'} "
                                        "folder)", "expected": "refused",
                              "handled": code == 2 and len(err) == 1 and not changed,
                              "exit": code, "stderr": " | ".join(err)[:200]})
    return {"tried": len(cases), "handled": sum(c["handled"] for c in cases),
            "written_outside": written_outside, "cases": cases}
