"""A run folder is a journal: settings first, steps appended, never rewritten or mixed."""

import csv
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from llm_optimizer import Run, make_dataset, optimize
from llm_optimizer.journal import FolderInUse, Journal, check_folder


class Scripted:
    """A stand-in proposer with fixed replies (the journal does not depend on the model)."""

    reply_tokens, prompt_style = 16, "completion"

    def __init__(self, replies=("[1, 2]",), name="scripted", during=None):
        self.replies, self.name, self.during, self.calls = list(replies), name, during, 0

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        self.calls += 1
        if self.during is not None:
            self.during(self.calls)
        return [self.replies[(self.calls - 1) % len(self.replies)] for _ in range(n)]


def strict_load(text: str):
    """json.loads that refuses NaN and Infinity, as strict readers (JavaScript, jq) do."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def saved(article, tmp_path):
    """A finished two-step run in a folder, and that folder's bytes."""
    out = tmp_path / "run"
    optimize(article, Scripted(), steps=2, temperature=0.3, out_dir=out)
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


def test_settings_that_define_the_run_are_saved_before_the_first_step(article, tmp_path):
    out, seen = tmp_path / "run", {}

    def during(call):
        if call == 1:
            seen.update(json.loads((out / "settings.json").read_text()))

    optimize(make_dataset("opro", seed=4), Scripted(during=during), steps=1, out_dir=out)
    assert seen["dataset"] == "opro" and seen["data_seed"] == 4 and len(seen["data_digest"]) == 16
    assert seen["model"] == "scripted" and seen["prompt_style"] == "completion"
    for key in ("temperature", "proposals_per_step", "max_new_tokens", "seed", "max_pairs",
                "decimals", "loss", "init", "stop"):
        assert key in seen, key
    assert seen["stop_reason"] == "running"


@pytest.mark.parametrize(("dataset", "model", "kwargs", "message"), [
    (make_dataset("opro"), Scripted(), {}, "dataset (saved 'article', given 'opro')"),
    (make_dataset("article", seed=1), Scripted(), {}, "data_seed (saved 0, given 1)"),
    (make_dataset("article", noise=0), Scripted(), {}, "data_digest"),
    (make_dataset("article"), Scripted(name="other"), {},
     "model (saved 'scripted', given 'other')"),
    (make_dataset("article"), Scripted(), {"temperature": 0.9},
     "temperature (saved 0.3, given 0.9)"),
    (make_dataset("article"), Scripted(), {"seed": 5}, "seed (saved 0, given 5)"),
])
def test_resume_refuses_other_data_model_or_settings_and_leaves_the_folder_alone(
        saved, dataset, model, kwargs, message):
    out, before = saved
    with pytest.raises(ValueError, match=f"these differ: .*{message}".replace("(", r"\(")
                       .replace(")", r"\)")):
        optimize(dataset, model, steps=4, resume=Run.load(out), out_dir=out, **kwargs)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert model.calls == 0


def test_the_same_settings_given_again_are_no_conflict(saved, article):
    out, _ = saved
    run = optimize(article, Scripted(), steps=3, temperature=0.3, seed=0,
                   resume=Run.load(out), out_dir=out)
    assert run.steps_done == 3 and Run.load(out).steps_done == 3


def test_a_resume_never_rewrites_the_steps_already_written(saved, article):
    out, before = saved
    written = (out / "steps.jsonl").stat().st_mtime_ns

    def during(call):  # the resumed run's first model call: the journal was not touched
        assert (out / "steps.jsonl").stat().st_mtime_ns == written  # not even rewritten as it was
        assert (out / "steps.jsonl").read_bytes() == before["steps.jsonl"]
        raise KeyboardInterrupt  # and a kill at this moment loses nothing

    run = optimize(article, Scripted(during=during), steps=5, resume=Run.load(out), out_dir=out)
    assert run.stop_reason == "interrupted"
    assert (out / "steps.jsonl").read_bytes() == before["steps.jsonl"]
    assert Run.load(out).steps_done == 2


def test_a_cut_off_last_line_is_dropped_and_replaced_on_resume(saved, article):
    out, before = saved
    with open(out / "steps.jsonl", "ab") as f:
        f.write(b'{"step": 3, "prom')
    assert Run.load(out).steps_done == 2
    optimize(article, Scripted(), steps=3, resume=Run.load(out), out_dir=out)
    text = (out / "steps.jsonl").read_text()
    assert text.startswith(before["steps.jsonl"].decode()) and text.endswith("\n")
    assert [strict_load(line)["step"] for line in text.splitlines()] == [0, 1, 2, 3]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda lines: [lines[0], lines[1][:40], lines[2]], r"steps.jsonl, line 2, is damaged"),
    (lambda lines: [lines[0], lines[2]], r"steps.jsonl, line 2: expected step 1, found 2"),
    (lambda lines: [lines[0], "[]", lines[2]], r"steps.jsonl, line 2: not a step record"),
    (lambda lines: [lines[0], lines[1].replace("null", "NaN"), lines[2]],
     r"line 2, is damaged"),
])
def test_damage_before_the_last_line_is_an_error_naming_file_and_line(article, tmp_path,
                                                                      damage, message):
    out = tmp_path / "run"
    optimize(article, Scripted(["junk"]), steps=2, out_dir=out)
    lines = (out / "steps.jsonl").read_text().splitlines()
    (out / "steps.jsonl").write_text("\n".join(damage(lines)) + "\n")
    with pytest.raises(ValueError, match=message):
        Run.load(out)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "settings.json is damaged"),
    ("[1, 2]", "settings.json is damaged: it holds list"),
    ('{"dataset": "article"}', "settings.json is damaged: it lacks steps, data_seed"),
    ('{"temperature": NaN}', "settings.json is damaged"),
])
def test_damaged_settings_are_an_error_naming_the_file(saved, text, message):
    out, _ = saved
    (out / "settings.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        Run.load(out)


def test_a_folder_holding_a_run_or_anything_else_is_refused_without_resume(saved, article,
                                                                          tmp_path):
    out, before = saved
    with pytest.raises(ValueError, match="already holds a run; continue it with resume="):
        optimize(article, Scripted(), steps=2, out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not empty and holds no run"):
        optimize(article, Scripted(), steps=2, out_dir=other)
    assert sorted(p.name for p in other.iterdir()) == ["mine.txt", "run.lock"]
    with pytest.raises(ValueError, match=r"holds another run \(it differs in temperature\)"):
        optimize(article, Scripted(), steps=2).save(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_one_folder_is_used_by_one_run_at_a_time(article, tmp_path):
    out, errors = tmp_path / "run", []

    def during(call):  # a second run on the same folder while the first one goes on
        try:
            optimize(article, Scripted(), steps=1, out_dir=out)
        except FolderInUse as error:
            errors.append(str(error))
        with pytest.raises(FolderInUse):
            check_folder(out, resume=True)

    optimize(article, Scripted(during=during), steps=2, out_dir=out)
    assert len(errors) == 2 and "is in use by another run" in errors[0]
    assert [r["step"] for r in Run.load(out).records] == [0, 1, 2]
    check_folder(out, resume=True)  # free again once the run ended


def test_the_lock_holds_across_processes_and_a_killed_holder_frees_it(article, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from llm_optimizer.journal import Journal
        journal = Journal({str(out)!r}, {{}}, [], resume=False, defining=())
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUse, match="in use by another run"):
            Journal(out, {}, [], resume=True, defining=())
    finally:
        holder.kill()
        holder.wait()
    check_folder(out, resume=True)  # kill -9 releases the lock


def test_the_journal_is_strict_json_with_null_for_non_finite_numbers(article, tmp_path):
    out = tmp_path / "run"
    optimize(article, Scripted(["[1e300, 2]", "no idea"]), steps=2, proposals_per_step=2,
             stop=[], out_dir=out)
    records = [strict_load(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    losses = [p["loss"] for r in records[1:] for p in r["proposals"]]
    assert losses == [None] * 4  # inf (1e300 overflowed) and NaN (no pair)
    strict_load((out / "settings.json").read_text())
    loaded = Run.load(out)
    assert loaded.n_nonfinite == 2 and loaded.n_failed == 2
    assert math.isnan(loaded.history["loss"].iloc[1])


def test_formula_looking_replies_are_neutralised_in_history_csv(article, tmp_path):
    replies = ["=HYPERLINK(\"http://x\", \"[1, 2]\")", "+1, 2", "-1, 2", "@SUM(1, 2)", "[1, 2]"]
    out = tmp_path / "run"
    run = optimize(article, Scripted(replies), steps=5, stop=[], out_dir=out)
    with open(out / "history.csv", newline="") as f:
        cells = [row["reply"] for row in csv.DictReader(f)][1:]
    assert cells == ["'" + r for r in replies[:4]] + ["[1, 2]"]
    assert run.history["reply"].tolist()[1:] == replies  # the journal keeps them verbatim
    assert Run.load(out).history["reply"].tolist()[1:] == replies


def test_summaries_are_renamed_into_place_not_rewritten(saved, article):
    out, _ = saved
    inodes = {name: (out / name).stat().st_ino for name in ("settings.json", "history.csv")}
    journal = (out / "steps.jsonl").stat().st_ino
    optimize(article, Scripted(), steps=3, resume=Run.load(out), out_dir=out)
    for name, inode in inodes.items():
        assert (out / name).stat().st_ino != inode, name
    assert (out / "steps.jsonl").stat().st_ino == journal  # appended to, in place
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
