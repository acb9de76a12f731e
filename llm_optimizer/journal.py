"""A run folder: a journal that is only ever appended to.

``settings.json`` holds what defines the run (data set, model, every sampling
setting); ``steps.jsonl`` gets one line per step as it ends and is never rewritten,
its first line holding a digest of the defining settings, so a ``settings.json``
edited afterwards is found out. ``history.csv`` and the final ``settings.json``
(with the stop reason) are summaries, written to a temporary name and renamed.
A lock file keeps a folder to one run at a time. Files are written as
:mod:`llm_optimizer.files` writes them: never through a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .files import TEMP_SUFFIX, dumps, link_error, loads, open_for_append, safe_cell, write_atomic

SETTINGS_FILE, STEPS_FILE, HISTORY_FILE = "settings.json", "steps.jsonl", "history.csv"
PLOT_FILE, LOCK_FILE = "run.png", "run.lock"
DIGEST_FIELD = "settings_digest"
# What a new folder may hold: what a run killed before its first step leaves behind.
_LEFT_BY_A_KILL = {LOCK_FILE, *(name + TEMP_SUFFIX for name in (
    SETTINGS_FILE, HISTORY_FILE, PLOT_FILE))}
_WHAT_TO_DO = "fix the line, or delete it and the lines after it to redo those steps"


class FolderInUse(OSError):
    """Another run holds the folder's lock."""


def settings_digest(settings: dict[str, Any], defining: tuple[str, ...]) -> dict[str, Any]:
    """What the journal keeps of the ``defining`` settings: their names and a SHA-256."""
    plain = loads(dumps({k: settings.get(k) for k in defining}, sort_keys=True))
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return {"keys": list(defining), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def read_settings(folder: Path) -> dict[str, Any]:
    """The settings saved in ``folder``: ``ValueError`` saying what to do if the file is
    damaged or was edited after the run began (its digest in the journal differs; a
    file that lacks settings is left to the caller to name)."""
    path = folder / SETTINGS_FILE
    if path.is_symlink():
        raise link_error(path)
    if not path.is_file():
        left = ("; a run killed before its first step leaves only " + LOCK_FILE
                if (folder / LOCK_FILE).exists() else "")
        raise FileNotFoundError(f"no {SETTINGS_FILE} in {folder}: not a run folder, so there "
                                f"is nothing to resume{left}; start the run without --resume "
                                "(resume=)")
    try:
        settings = loads(path.read_bytes())
    except ValueError as error:  # invalid JSON or UTF-8
        raise ValueError(f"{path} is damaged ({error}): the run cannot be resumed; restore "
                         "the file, or start again in a new or empty folder") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path} is damaged: it holds {type(settings).__name__}, not an "
                         "object; restore the file, or start again in a new or empty folder")
    digest = _journal_digest(folder)
    keys = tuple(digest["keys"]) if digest else ()
    if digest and set(keys) <= set(settings) and settings_digest(settings, keys) != digest:
        raise ValueError(f"{path} was edited after the run began: what defines the run no "
                         f"longer matches the digest in {STEPS_FILE}; restore the file (a "
                         "changed setting is a new run: start it in a new or empty folder)")
    return settings


def _journal_digest(folder: Path) -> dict[str, Any] | None:
    """The settings digest on the journal's first line, if it has one."""
    path = folder / STEPS_FILE
    if not path.is_file() or path.is_symlink():
        return None
    with open(path, "rb") as f:
        first = f.readline()
    try:
        digest = loads(first).get(DIGEST_FIELD)
    except (ValueError, AttributeError):
        return None  # a damaged first line: read_steps names it
    if not (isinstance(digest, dict) and isinstance(digest.get("keys"), list)
            and all(isinstance(k, str) for k in digest["keys"])):
        return None
    return digest


def read_steps(folder: Path) -> tuple[list[dict[str, Any]], int]:
    """The records in ``folder``'s journal and the length in bytes of its complete lines.

    A last line that does not parse (cut off by a kill) is left out; a last line that
    parses is kept, with or without its line break. Any other line that is not a record
    of the next step, with every field of the right type, is an error naming the file,
    the line and the field.
    """
    path = folder / STEPS_FILE
    if path.is_symlink():
        raise link_error(path)
    if not path.is_file():
        if (folder / SETTINGS_FILE).exists():
            raise ValueError(f"{folder} holds {SETTINGS_FILE} but no {STEPS_FILE}: the run's "
                             "steps are lost; restore the file, or start again in a new or "
                             "empty folder")
        return [], 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    records, complete = [], 0
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if last and not line.strip():
            break
        try:
            record = loads(line)
        except ValueError as error:  # invalid JSON or UTF-8
            if last:
                break  # cut off by a kill: the step is redone
            raise ValueError(f"{path}, line {number}, is damaged ({error}); only a cut-off "
                             f"last line can be dropped, so {_WHAT_TO_DO}") from None
        if isinstance(record, dict) and number == 1:
            record.pop(DIGEST_FIELD, None)
        problem = _record_problem(record, expected_step=len(records))
        if problem:
            raise ValueError(f"{path}, line {number}: {problem}; {_WHAT_TO_DO}")
        for proposal in record["proposals"]:
            for key in ("w", "b", "loss"):
                if proposal[key] is None:
                    proposal[key] = math.nan
        records.append(record)
        complete += len(line) + (0 if last else 1)
    return records, complete


def _number(value: object, *, null: bool = True) -> bool:
    if value is None:
        return null
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _record_problem(record: object, *, expected_step: int) -> str | None:
    """What is wrong with a journal line, or None if it is the record of that step."""
    if not isinstance(record, dict) or not isinstance(record.get("proposals"), list):
        return "not a step record (a JSON object with a list of proposals)"
    step = record.get("step")
    if type(step) is not int:
        return f"field step: expected a whole number, found {step!r}"
    if step != expected_step:
        return f"expected step {expected_step}, found {step}"
    if not isinstance(record.get("prompt"), str | None):
        return f"field prompt: expected text or null, found {record['prompt']!r}"
    if "seconds" in record and not _number(record["seconds"], null=False):
        return f"field seconds: expected a finite number, found {record['seconds']!r}"
    for i, proposal in enumerate(record["proposals"]):
        if not isinstance(proposal, dict) or not {"w", "b", "loss", "parsed", "reply"} <= set(
                proposal):
            return f"proposal {i} lacks w, b, loss, parsed or reply"
        where = f"field proposals[{i}]"
        if not isinstance(proposal["parsed"], bool):
            return f"{where}.parsed: expected true or false, found {proposal['parsed']!r}"
        if not isinstance(proposal["reply"], str):
            return f"{where}.reply: expected text, found {proposal['reply']!r}"
        for key in ("w", "b", "loss"):
            if not _number(proposal[key], null=key == "loss" or not proposal["parsed"]):
                return (f"{where}.{key}: expected a finite number"
                        f"{' or null' if key == 'loss' or not proposal['parsed'] else ''}, "
                        f"found {proposal[key]!r}")
        if "cut" in proposal and not (type(proposal["cut"]) is int and proposal["cut"] > 0):
            return f"{where}.cut: expected a whole number above 0, found {proposal['cut']!r}"
    return None


def _new_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` (without settings) cannot take a new run, or None if it can."""
    stray = sorted(p.name for p in folder.iterdir()
                   if p.is_symlink() or not (p.name in _LEFT_BY_A_KILL or (
                       p.name == STEPS_FILE and p.stat().st_size == 0)))
    if not stray:
        return None
    shown = ", ".join(stray[:3]) + (f" and {len(stray) - 3} more" if len(stray) > 3 else "")
    return (f"{folder} is not empty and holds no run ({shown}); pick a new or empty "
            "folder")


def _lock(folder: Path) -> FileLock:
    path = folder / LOCK_FILE
    if path.is_symlink():
        raise link_error(path)
    return FileLock(path, timeout=0)


def check_folder(folder: str | Path, *, resume: bool) -> None:
    """Fail now, not after a model has loaded, if ``folder`` cannot take a run: it cannot
    be written, another run holds it, it holds a link, or (without ``resume``) it is not
    empty."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock(folder)
        lock.acquire()
    except Timeout:
        raise FolderInUse(_in_use(folder)) from None
    except OSError as error:  # read-only, no permission, a file in the way, a link
        raise OSError(f"{folder} cannot hold a run: {error.strerror or error}") from None
    try:
        links = [p for p in folder.iterdir() if p.is_symlink()]
        if links:
            raise link_error(links[0])
        if resume:
            return
        if (folder / SETTINGS_FILE).exists():
            read_settings(folder)  # a damaged one says so, rather than suggest resuming
            raise ValueError(f"{folder} already holds a run; continue a run with --resume "
                             "(resume=Run.load(folder) in Python) or pick a new or empty "
                             "folder")
        problem = _new_folder_problem(folder)
        if problem:
            raise ValueError(problem)
    finally:
        lock.release()


def _in_use(folder: Path) -> str:
    return (f"{folder} is in use by another run (it holds the lock {folder / LOCK_FILE}); "
            "wait for that run to end or pick another folder")


class Journal:
    """An open run folder: locked, with its steps appended as they end.

    ``settings`` are those of the run; ``records`` the steps it already has. A new or
    empty folder gets the settings and those records; a folder that holds a run is
    refused unless ``resume`` is set and it holds this run (the same ``defining``
    settings) with exactly these records.
    """

    def __init__(self, folder: str | Path, settings: dict[str, Any],
                 records: list[dict[str, Any]], *, resume: bool, defining: tuple[str, ...]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._digest = settings_digest(settings, defining)  # before any file: it checks them
        self._lock = _lock(self.folder)
        try:
            self._lock.acquire()
        except Timeout:
            raise FolderInUse(_in_use(self.folder)) from None
        try:
            self._file = self._open(settings, records, resume, defining)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, settings, records, resume, defining):
        folder, steps = self.folder, self.folder / STEPS_FILE
        links = [p for p in folder.iterdir() if p.is_symlink()]
        if links:
            raise link_error(links[0])
        if (folder / SETTINGS_FILE).exists():
            saved = read_settings(folder)
            if not resume:
                raise ValueError(f"{folder} already holds a run; continue it with "
                                 "resume=Run.load(folder) (--resume on the command line) or "
                                 "pick a new or empty folder")
            ours = loads(dumps(settings))
            differ = [k for k in defining if saved.get(k) != ours.get(k)]
            if differ:
                raise ValueError(f"{folder} holds another run (it differs in "
                                 f"{', '.join(differ)}); pick a new or empty folder")
            on_disk, complete = read_steps(folder)
            if len(on_disk) != len(records):
                raise ValueError(f"{steps} holds {len(on_disk)} steps and the run being "
                                 f"resumed {len(records)}: they are not the same run")
            if steps.stat().st_size > complete:
                os.truncate(steps, complete)  # a line cut off by a kill; it is redone
            return open_for_append(steps)
        problem = _new_folder_problem(folder)
        if problem:
            raise ValueError(problem)
        text = dumps({**settings, "stop_reason": "running"}, indent=2)
        file = open_for_append(steps)  # first, so settings.json never stands without it
        try:
            write_atomic(folder / SETTINGS_FILE, text)
            for record in records:
                self._write(file, record)
        except BaseException:
            file.close()
            raise
        return file

    def _write(self, file, record: dict[str, Any]) -> None:
        line = {**record, DIGEST_FIELD: self._digest} if record.get("step") == 0 else record
        file.write((dumps(line) + "\n").encode())
        file.flush()

    def append(self, record: dict[str, Any]) -> None:
        """Add one step's record as a line of its own."""
        self._write(self._file, record)

    def close(self, settings: dict[str, Any], history) -> None:
        """Write the summaries (settings with the stop reason, history.csv); unlock."""
        try:
            self._file.close()
            write_atomic(self.folder / SETTINGS_FILE, dumps(settings, indent=2))
            table = history.assign(reply=history["reply"].map(safe_cell))
            write_atomic(self.folder / HISTORY_FILE, table.to_csv(index=False))
        finally:
            self._lock.release()
