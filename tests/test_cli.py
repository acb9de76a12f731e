"""The command line: every mistake is one line on stderr and exit status 2, found before the
model loads where it can be.

Most cases run ``main`` in this process with ``load_model`` replaced by a stand-in that
fails if called: the point is that the error comes first. The real model runs the command
end to end in tests/test_end_to_end.py.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from llm_optimizer import Run, make_dataset, optimize
from llm_optimizer import cli as cli_module
from llm_optimizer.cli import main
from llm_optimizer.journal import Journal


class Scripted:
    """Stands in for the bundled model: same name and prompt style, fixed replies."""

    name, reply_tokens, prompt_style = "SmolLM2-135M-Instruct", 16, "completion"
    precision = "fp32"

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        return ["[2.5, 0.5]"] * n


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command gets as far as loading a model."""
    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the error was found")

    monkeypatch.setattr(cli_module, "load_model", load)


@pytest.fixture(scope="module")
def saved_once(tmp_path_factory):
    """A two-step run saved by the command on the article's data (made once)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
        assert main(["run", "--model", "smollm2", "--steps", "2", "--temperature", "0.5",
                     "--out", str(out)]) == 0
    return out


@pytest.fixture
def saved(saved_once, tmp_path):
    """A copy of that run, for the test to resume, damage or lock."""
    return shutil.copytree(saved_once, tmp_path / "run")


def _error(capsys, argv) -> str:
    """Run the command; return its one error line (after checking there is exactly one)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(("flags", "message"), [
    (["--preset", "opro"], "--preset (saved 'article', given 'opro')"),
    (["--data-seed", "3"], "--data-seed (saved 0, given 3)"),
    (["--model", "org/other"], "--model (saved 'SmolLM2-135M-Instruct', given 'org/other')"),
    (["--temperature", "0.9"], "--temperature (saved 0.5, given 0.9)"),
    (["--proposals", "3"], "--proposals (saved 1, given 3)"),
    (["--seed", "1"], "--seed (saved 0, given 1)"),
    (["--prompt-style", "chat"], "--prompt-style (saved 'completion', given 'chat')"),
    (["--precision", "bf16/int8"], "--precision (saved 'fp32', given 'bf16/int8')"),
    (["--stop", "none"], "--stop (saved [{'rule': 'last_k_below'"),
])
def test_resume_with_a_conflicting_flag_names_saved_and_given(saved, capsys, no_model, flags,
                                                              message):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    line = _error(capsys, ["run", "--out", str(saved), "--resume", "--steps", "4", *flags])
    assert "--resume continues the run saved in" in line and message in line
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before


def test_resume_with_matching_or_no_flags_continues(saved, capsys, monkeypatch):
    monkeypatch.setattr(cli_module, "load_model", lambda *a, **k: Scripted())
    assert main(["run", "--out", str(saved), "--resume", "--steps", "3",
                 "--temperature", "0.5", "--preset", "article", "--model", "smollm2"]) == 0
    assert main(["run", "--out", str(saved), "--resume", "--steps", "4"]) == 0
    run = Run.load(saved)
    assert run.steps_done == 4 and run.settings["temperature"] == 0.5
    assert [r["step"] for r in run.records] == [0, 1, 2, 3, 4]


def test_a_plain_rerun_does_not_overwrite_a_run(saved, capsys, no_model):
    before = (saved / "steps.jsonl").read_bytes()
    line = _error(capsys, ["run", "--out", str(saved), "--steps", "2"])
    assert "already holds a run; continue a run with --resume" in line
    assert (saved / "steps.jsonl").read_bytes() == before


def test_a_folder_in_use_is_refused_with_a_clear_message(saved, capsys, no_model):
    holder = Journal(saved, Run.load(saved).settings, Run.load(saved).records, resume=True,
                     defining=())
    try:
        line = _error(capsys, ["run", "--out", str(saved), "--resume", "--steps", "3"])
    finally:
        holder.close(Run.load(saved).settings, Run.load(saved).history)
    assert "is in use by another run" in line and "run.lock" in line


@pytest.mark.parametrize(("text", "message"), [
    ("{", "settings.json is damaged"),
    ('{"dataset": "article"}', "settings.json is damaged: it lacks"),
    ('"a string"', "settings.json is damaged: it holds str"),
])
def test_damaged_settings_are_one_line(saved, capsys, no_model, text, message):
    (saved / "settings.json").write_text(text)
    assert message in _error(capsys, ["run", "--out", str(saved), "--resume"])


def test_damaged_settings_values_are_one_line_before_loading(saved, capsys, no_model):
    settings = json.loads((saved / "settings.json").read_text())
    (saved / "settings.json").write_text(json.dumps({**settings, "temperature": "hot"}))
    assert "settings.json was edited after the run began" in _error(
        capsys, ["run", "--out", str(saved), "--resume"])
    lines = (saved / "steps.jsonl").read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    del first["settings_digest"]  # as a run saved before the journal kept a digest
    (saved / "steps.jsonl").write_text(json.dumps(first) + "\n" + "".join(lines[1:]))
    assert "temperature must be a number" in _error(capsys, ["run", "--out", str(saved),
                                                             "--resume"])


def test_a_damaged_journal_line_is_one_line(saved, capsys, no_model):
    lines = (saved / "steps.jsonl").read_text().splitlines()
    (saved / "steps.jsonl").write_text(lines[0] + "\n" + lines[1][:30] + "\n" + lines[2] + "\n")
    assert "steps.jsonl, line 2, is damaged" in _error(capsys, ["run", "--out", str(saved),
                                                                "--resume"])


@pytest.mark.parametrize(("flags", "message"), [
    (["--max-new-tokens", "0"], "max_new_tokens must be a whole number >= 1"),
    (["--temperature", "0"], "temperature must be between 0.001 and 100"),
    (["--temperature", "1e-300"], "temperature must be between 0.001 and 100"),
    (["--temperature", "nan"], "temperature must be a finite number"),
    (["--steps", "0"], "steps must be a whole number >= 1"),
    (["--proposals", "-1"], "proposals_per_step must be a whole number >= 1"),
    (["--decimals", "-2"], "decimals must be a whole number >= 0"),
    (["--seed", "-1"], "seed must be a whole number >= 0"),
    (["--data-seed", "-1"], "seed must be a whole number >= 0"),
    (["--stop", "sometimes"], "stop must be"),
    (["--stop", "target:nan"], "got 'target:nan'"),
    (["--model", "gpt-17"], "model name must be one of"),
    (["--model", "./missing.gguf"], "does not exist"),
    (["--model", "mistral"], "needs a CUDA GPU"),
    (["--steps", "many"], "argument --steps: invalid int value"),
    (["--precision", "int4"], "precision must be 'auto', 'fp32', 'bf16' or 'PREFILL/DECODE'"),
    (["--precision", "int8"], "got 'int8'"),
    (["--precision", "fp32", "--base-url", "http://127.0.0.1:9/v1"], "--precision is for a model"),
    (["--preset", "paper"], "argument --preset: invalid choice"),
])
def test_bad_flags_are_one_line_before_the_model_loads(tmp_path, capsys, no_model, flags,
                                                       message):
    assert message in _error(capsys, ["run", "--out", str(tmp_path / "x"), *flags])


def test_an_out_folder_that_cannot_be_written_is_one_line_before_the_model_loads(
        tmp_path, capsys, no_model):
    (tmp_path / "file").write_text("")
    assert "cannot hold a run: Not a directory" in _error(
        capsys, ["run", "--out", str(tmp_path / "file" / "run")])
    # /sys refuses new entries even to root, as a read-only file system does.
    assert "/sys/llm-optimizer-run cannot hold a run" in _error(
        capsys, ["run", "--out", "/sys/llm-optimizer-run"])


def test_resume_of_a_missing_run_is_one_line(tmp_path, capsys, no_model):
    assert "not a run folder" in _error(capsys, ["run", "--out", str(tmp_path), "--resume"])


def test_resume_of_a_run_on_custom_data_says_to_use_python(tmp_path, capsys, no_model):
    data = make_dataset("article")
    custom = type(data)(x=data.x, y=data.y + 1)
    optimize(custom, Scripted(), steps=1, out_dir=tmp_path / "c")
    assert "custom data" in _error(capsys, ["run", "--out", str(tmp_path / "c"), "--resume"])


def test_an_unknown_or_unreachable_hugging_face_id_is_one_line(tmp_path):
    """The real command in a subprocess; HF_HUB_OFFLINE makes 'unreachable' immediate."""
    done = subprocess.run(
        [sys.executable, "-m", "llm_optimizer", "run", "--model", "no-such-org/no-such-model",
         "--steps", "1", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: Could not load 'no-such-org/no-such-model'")
    assert "Offline, use model='smollm2'" in lines[0]
