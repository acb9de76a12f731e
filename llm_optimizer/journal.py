"""A run folder: a journal that is only ever appended to.

``settings.json`` holds what defines the run (data set, model, every sampling
setting), written before the first step; ``steps.jsonl`` gets one line per step as
it ends and is never rewritten; ``history.csv`` and the final ``settings.json``
(with the stop reason) are summaries, written to a temporary name and renamed.
A lock file keeps a folder to one run at a time. All JSON is strict: numbers that
are not finite are written as ``null``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

SETTINGS_FILE, STEPS_FILE, HISTORY_FILE = "settings.json", "steps.jsonl", "history.csv"
LOCK_FILE = "run.lock"
TEMP_SUFFIX = ".partial"
# What a spreadsheet would run as a formula when a cell starts with it (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class FolderInUse(OSError):
    """Another run holds the folder's lock."""


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON: NaN and infinities become ``null``."""
    return json.dumps(_strict(value), allow_nan=False, **kwargs)


def _strict(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not strict JSON")


def loads(text: str) -> Any:
    """Parse strict JSON (``NaN`` and ``Infinity`` are errors)."""
    return json.loads(text, parse_constant=_reject_constant)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path``."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    with open(temp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def safe_cell(text: object) -> object:
    """``text`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    if isinstance(text, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def read_settings(folder: Path) -> dict[str, Any]:
    """The settings saved in ``folder``; ``ValueError`` naming the file if damaged."""
    path = folder / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SETTINGS_FILE} in {folder}: not a run folder")
    try:
        settings = loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged ({error}); it cannot be resumed") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path} is damaged: it holds {type(settings).__name__}, not an object")
    return settings


def read_steps(folder: Path) -> tuple[list[dict[str, Any]], int]:
    """The records in ``folder``'s journal and the length in bytes of its complete lines.

    A last line without its line break (cut off by a kill) is left out; any other
    line that is not a record of the next step is an error naming file and line.
    """
    path = folder / STEPS_FILE
    if not path.is_file():
        return [], 0
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1  # the bytes after it are a line cut off by a kill
    records = []
    for number, line in enumerate(data[:complete].split(b"\n")[:-1], start=1):
        try:
            record = loads(line.decode())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}, line {number}, is damaged ({error}); only a cut-off "
                             "last line can be dropped, so fix or remove the file") from None
        problem = _record_problem(record, expected_step=len(records))
        if problem:
            raise ValueError(f"{path}, line {number}: {problem}")
        for proposal in record["proposals"]:
            for key in ("w", "b", "loss"):
                if proposal[key] is None:
                    proposal[key] = math.nan
        records.append(record)
    return records, complete


def _record_problem(record: object, *, expected_step: int) -> str | None:
    if not isinstance(record, dict) or not isinstance(record.get("proposals"), list):
        return "not a step record (a JSON object with a list of proposals)"
    if record.get("step") != expected_step:
        return f"expected step {expected_step}, found {record.get('step')!r}"
    for proposal in record["proposals"]:
        if not isinstance(proposal, dict) or not {"w", "b", "loss", "parsed", "reply"} <= set(
            proposal
        ):
            return "a proposal lacks w, b, loss, parsed or reply"
    return None


def _ours(name: str) -> bool:
    return name == LOCK_FILE or name.endswith(TEMP_SUFFIX)


def check_folder(folder: str | Path, *, resume: bool) -> None:
    """Fail now, not after a model has loaded, if ``folder`` cannot take a run: it cannot
    be written, another run holds it, or (without ``resume``) it is not empty."""
    folder = Path(folder)
    lock = FileLock(folder / LOCK_FILE, timeout=0)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise FolderInUse(_in_use(folder)) from None
    except OSError as error:  # read-only, no permission, a file in the way
        raise OSError(f"{folder} cannot hold a run: {error.strerror or error}") from None
    try:
        if not resume and any(not _ours(p.name) for p in folder.iterdir()):
            what = "already holds a run" if (folder / SETTINGS_FILE).exists() else (
                "is not empty")
            raise ValueError(f"{folder} {what}; continue a run with --resume (resume=Run.load"
                             "(folder) in Python) or pick a new or empty folder")
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
        self._lock = FileLock(self.folder / LOCK_FILE, timeout=0)
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
            if steps.exists() and steps.stat().st_size > complete:
                os.truncate(steps, complete)  # a line cut off by a kill; it is redone
            return open(steps, "a", encoding="utf-8")
        if any(not _ours(p.name) for p in folder.iterdir()):
            raise ValueError(f"{folder} is not empty and holds no run; pick an empty or new "
                             "folder")
        write_atomic(folder / SETTINGS_FILE, dumps({**settings, "stop_reason": "running"},
                                                   indent=2))
        file = open(steps, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        for record in records:
            file.write(dumps(record) + "\n")
        file.flush()
        return file

    def append(self, record: dict[str, Any]) -> None:
        """Add one step's record as a line of its own."""
        self._file.write(dumps(record) + "\n")
        self._file.flush()

    def close(self, settings: dict[str, Any], history) -> None:
        """Write the summaries (settings with the stop reason, history.csv); unlock."""
        try:
            self._file.close()
            write_atomic(self.folder / SETTINGS_FILE, dumps(settings, indent=2))
            table = history.assign(reply=history["reply"].map(safe_cell))
            write_atomic(self.folder / HISTORY_FILE, table.to_csv(index=False))
        finally:
            self._lock.release()
