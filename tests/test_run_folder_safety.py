"""A run folder is written only inside itself and read strictly: links planted in it,
stray files, edited settings, retyped journal fields and lost files are refused with a
line saying what to do; nothing outside the folder is ever written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from test_journal import Scripted

from llm_optimizer import LastKBelow, Run, TargetLoss, optimize
from llm_optimizer import cli as cli_module
from llm_optimizer.cli import main
from llm_optimizer.files import safe_cell
from llm_optimizer.models.base import MAX_REPLY_CHARS
from llm_optimizer.settings import resolve_settings

PLANTED = ["settings.json.partial", "history.csv.partial", "run.png.partial", "steps.jsonl",
           "run.lock"]


@pytest.fixture
def saved(article, tmp_path):
    out = tmp_path / "run"
    optimize(article, Scripted(), steps=2, temperature=0.3, out_dir=out)
    return out


@pytest.fixture
def victim(tmp_path):
    """A file outside every run folder, which nothing may write."""
    path = tmp_path / "outside.txt"
    path.write_text("untouched")
    return path


@pytest.mark.parametrize("name", PLANTED)
def test_a_link_planted_in_a_new_folder_is_refused_and_its_target_untouched(
        name, article, tmp_path, victim, capsys, monkeypatch):
    out = tmp_path / "new"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(OSError, match=f"{name} is a symbolic link: .* never through a link"):
        optimize(article, Scripted(), steps=1, out_dir=out)
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--model", "smollm2", "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "symbolic link" in err
    assert victim.read_text() == "untouched"


@pytest.mark.parametrize("name", PLANTED)
def test_a_link_planted_in_a_run_folder_is_refused_on_resume(name, saved, article, victim):
    path = saved / name
    if path.exists():
        path.unlink()
    path.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):  # from Run.load or the journal
        optimize(article, Scripted(), steps=3, resume=Run.load(saved), out_dir=saved)
    assert victim.read_text() == "untouched"


def test_a_cli_plot_is_never_written_through_a_link(saved, victim, monkeypatch):
    (saved / "run.png.partial").symlink_to(victim)
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--out", str(saved), "--resume", "--steps", "3"]) == 2
    assert victim.read_text() == "untouched"


def test_stray_files_in_a_new_folder_are_refused_whatever_their_name(article, tmp_path):
    out = tmp_path / "new"
    out.mkdir()
    (out / "notes.partial").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and holds no run \(notes.partial\)"):
        optimize(article, Scripted(), steps=1, out_dir=out)
    assert (out / "notes.partial").read_text() == "mine"


def test_a_complete_last_line_without_its_line_break_is_kept(saved, article):
    data = (saved / "steps.jsonl").read_bytes()
    (saved / "steps.jsonl").write_bytes(data.rstrip(b"\n"))  # as an editor may save it
    loaded = Run.load(saved)
    assert loaded.steps_done == 2
    optimize(article, Scripted(), steps=3, resume=loaded, out_dir=saved)
    lines = (saved / "steps.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3]
    assert (saved / "steps.jsonl").read_bytes().startswith(data)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda r: {**r, "step": True}, "field step: expected a whole number, found True"),
    (lambda r: {**r, "step": 1.0}, "field step: expected a whole number, found 1.0"),
    (lambda r: _proposal(r, parsed="yes"), "proposals[0].parsed: expected true or false"),
    (lambda r: _proposal(r, b="x"), "proposals[0].b: expected a finite number"),
    (lambda r: _proposal(r, reply=5), "proposals[0].reply: expected text"),
    (lambda r: {**r, "prompt": 3}, "field prompt: expected text or null"),
    (lambda r: _proposal(r, cut=-1), "proposals[0].cut: expected a whole number above 0"),
])
def test_a_field_of_the_wrong_type_names_file_line_and_field(saved, edit, field, capsys,
                                                             monkeypatch):
    lines = (saved / "steps.jsonl").read_text().splitlines()
    lines[1] = json.dumps(edit(json.loads(lines[1])))
    (saved / "steps.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="steps.jsonl, line 2") as caught:
        Run.load(saved)
    assert field in str(caught.value) and "delete it and the lines after it" in str(
        caught.value)
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--out", str(saved), "--resume", "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err


def _proposal(record, **fields):
    return {**record, "proposals": [{**record["proposals"][0], **fields},
                                     *record["proposals"][1:]]}


def test_a_loss_written_as_1e999_is_refused_not_read_as_infinity(saved):
    text = (saved / "steps.jsonl").read_text()
    first, second, *rest = text.splitlines()
    record = json.loads(second)
    record["proposals"][0]["loss"] = 12345.5
    second = json.dumps(record).replace("12345.5", "1e999")
    (saved / "steps.jsonl").write_text("\n".join([first, second, *rest]) + "\n")
    with pytest.raises(ValueError, match=r"line 2: field proposals\[0\].loss: expected a "
                                         r"finite number or null, found inf"):
        Run.load(saved)


def test_a_setting_edited_in_settings_json_is_not_adopted(saved, article):
    settings = json.loads((saved / "settings.json").read_text())
    (saved / "settings.json").write_text(json.dumps({**settings, "temperature": 0.9}))
    with pytest.raises(ValueError, match="settings.json was edited after the run began"):
        Run.load(saved)
    (saved / "settings.json").write_text(json.dumps({**settings, "stop_reason": "x",
                                                     "steps": 7}))
    assert Run.load(saved).settings["temperature"] == 0.3  # what does not define it may change


def test_a_deleted_journal_is_an_error_not_a_fresh_start(saved, capsys, monkeypatch):
    (saved / "steps.jsonl").unlink()
    with pytest.raises(ValueError, match="holds settings.json but no steps.jsonl"):
        Run.load(saved)
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--out", str(saved), "--resume", "--steps", "3"]) == 2
    assert not (saved / "steps.jsonl").exists()
    assert "start again in a new or empty folder" in capsys.readouterr().err


def test_a_folder_left_by_a_kill_during_model_load_says_what_to_do(tmp_path, capsys,
                                                                   monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.lock").write_text("")
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--out", str(out), "--resume"]) == 2
    assert "leaves only run.lock; start the run without --resume" in capsys.readouterr().err
    assert main(["run", "--model", "smollm2", "--steps", "1", "--out", str(out)]) == 0


def test_a_damaged_settings_json_does_not_send_a_fresh_run_to_resume(saved, capsys,
                                                                      monkeypatch):
    (saved / "settings.json").write_text("{")
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--model", "smollm2", "--out", str(saved)]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "new or empty folder" in err and "--resume" not in err


def test_numpy_numbers_in_stop_rules_are_saved_as_plain_numbers(article, tmp_path):
    out = tmp_path / "run"
    rules = [LastKBelow(np.int64(3), np.float64(1.0)), TargetLoss(np.float32(0.5))]
    optimize(article, Scripted(), steps=2, stop=rules, out_dir=out,
             temperature=np.float32(0.5), seed=np.int64(3))
    saved = json.loads((out / "settings.json").read_text())
    assert saved["stop"][0] == {"rule": "last_k_below", "k": 3, "threshold": 1.0}
    assert saved["seed"] == 3 and Run.load(out).steps_done == 2


@pytest.mark.parametrize("prefix", [
    "=", "+", "-", "@", "\t", "\r", "\n", " =", "  +", "\u00a0=", "\u3000=", "\ufeff=",
    "\x00=", "\u200b=", "\t=", "\n@", "\uff1d", "\uff0b", "\uff0d", "\uff20", " \uff1d",
    "\u2028-", "\x0b=",
])
def test_every_formula_prefix_is_escaped_also_after_blanks_and_invisible_characters(prefix):
    text = prefix + 'HYPERLINK("http://x", "[1, 2]")'
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["[1, 2]", " 1.5, 2", "w = 1, b = 2", "'=quoted", "", "x=1"])
def test_text_that_starts_no_formula_is_left_alone(text):
    assert safe_cell(text) == text


def test_history_csv_escapes_a_formula_behind_a_leading_space(article, tmp_path):
    out = tmp_path / "run"
    optimize(article, Scripted([' =HYPERLINK("http://x")']), steps=1, stop=[], out_dir=out)
    with open(out / "history.csv", newline="") as f:
        cells = [row["reply"] for row in csv.DictReader(f)]
    assert cells[-1] == "' =HYPERLINK(\"http://x\")"


def test_long_replies_are_cut_and_the_cut_is_recorded(article, tmp_path):
    out = tmp_path / "run"
    optimize(article, Scripted(["[1, 2] " + "x" * 10_000_000]), steps=2, stop=[],
             proposals_per_step=3, out_dir=out)
    assert (out / "steps.jsonl").stat().st_size < 100_000
    assert (out / "history.csv").stat().st_size < 100_000
    proposal = Run.load(out).records[1]["proposals"][0]
    assert len(proposal["reply"]) == MAX_REPLY_CHARS and proposal["parsed"]
    assert proposal["cut"] == 10_000_007 - MAX_REPLY_CHARS


@pytest.mark.parametrize(("setting", "value"), [
    ("steps", 10**9), ("proposals_per_step", 10**6), ("max_pairs", 10**7),
    ("decimals", 10**8), ("max_new_tokens", 10**12), ("seed", 2**64)])
def test_every_numeric_setting_has_an_upper_bound_named_in_the_error(article, setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be a whole number from"):
        resolve_settings(article, **{setting: value})
