"""The whole loop and the command line on the real bundled SmolLM2-135M-Instruct."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from llm_optimizer import Run, make_dataset, optimize
from llm_optimizer.files import safe_cell

pytestmark = pytest.mark.model


def test_a_short_run_on_the_real_model(smollm2, article, tmp_path):
    run = optimize(article, smollm2, steps=3, proposals_per_step=8, seed=0, out_dir=tmp_path)
    h = run.history
    assert run.stop_reason in ("step limit", "last 3 losses below 1")
    assert list(h.columns) == ["step", "proposal", "w", "b", "loss", "parsed", "reply"]
    assert len(h) == 1 + 8 * run.steps_done
    assert h["parsed"].iloc[1:].sum() > 0, "the bundled model should parse some replies"
    scored = h[h["parsed"]]
    assert np.allclose(scored["loss"], [((article.y - (w * article.x + b)) ** 2).mean()
                                        for w, b in zip(scored["w"], scored["b"], strict=True)])
    assert run.best.loss == scored["loss"].min()
    assert run.n_failed == int((~h["parsed"]).sum())
    records = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(run.steps_done + 1))
    assert records[1]["prompt"].count("input:") == 1
    assert pd.read_csv(tmp_path / "history.csv")["reply"].fillna("").tolist() == (
        h["reply"].map(safe_cell).tolist()
    )


def test_the_same_seed_repeats_a_run(smollm2, article):
    a, b = (optimize(article, smollm2, steps=2, proposals_per_step=4, seed=7) for _ in range(2))
    assert a.history.equals(b.history)
    c = optimize(article, smollm2, steps=2, proposals_per_step=4, seed=8)
    assert not c.history["reply"].equals(a.history["reply"])


def test_resume_from_disk_equals_an_unbroken_run(smollm2, article, tmp_path):
    whole = optimize(article, smollm2, steps=3, proposals_per_step=4, seed=3)
    optimize(article, smollm2, steps=1, proposals_per_step=4, seed=3, out_dir=tmp_path)
    resumed = optimize(article, smollm2, steps=3, resume=Run.load(tmp_path), out_dir=tmp_path)
    assert resumed.history.equals(whole.history)


def test_paper_preset_runs_with_integers(smollm2):
    run = optimize(make_dataset("opro"), smollm2, steps=2, seed=0)
    scored = run.scored
    assert (scored["w"] == scored["w"].round()).all() and len(run.history) == 5 + 16
    assert "value:\n" in run.records[1]["prompt"] and ".0" not in run.records[1]["prompt"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_optimizer", *args],
                          capture_output=True, text=True, timeout=600)


def test_cli_run_writes_the_record_and_the_plot(tmp_path):
    out = tmp_path / "demo"
    done = _cli("run", "--preset", "article", "--model", "smollm2", "--steps", "2",
                "--proposals", "4", "--temperature", "0.8", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "optimizing" in done.stderr and "best=" in done.stderr  # the progress bar
    assert "stopped:" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv", "run.gif", "run.lock", "run.png", "settings.json", "steps.jsonl"]
    assert (out / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "run.gif").read_bytes()[:6] == b"GIF89a"  # the run, a frame per step
    assert "run.png, run.gif" in done.stdout and "best possible loss=0.6804" in done.stdout
    settings = json.loads((out / "settings.json").read_text())
    assert settings["proposals_per_step"] == 4 and settings["temperature"] == 0.8
    assert settings["dataset"] == "article" and settings["data_seed"] == 0
    assert settings["model"] == "SmolLM2-135M-Instruct"
    resumed = _cli("run", "--steps", "3", "--out", str(out), "--resume")  # the saved model
    assert resumed.returncode == 0, resumed.stderr
    assert Run.load(out).steps_done == 3
    conflict = _cli("run", "--preset", "opro", "--steps", "4", "--out", str(out), "--resume")
    assert conflict.returncode == 2 and conflict.stderr.count("\n") == 1
    assert "--preset (saved 'article', given 'opro')" in conflict.stderr
    assert Run.load(out).steps_done == 3


def test_cli_help_documents_every_flag():
    done = _cli("run", "--help")
    assert done.returncode == 0
    for flag in ["--preset", "--model", "--steps", "--temperature", "--proposals", "--max-pairs",
                 "--decimals", "--stop", "--prompt-style", "--max-new-tokens", "--seed",
                 "--data-seed", "--out", "--resume", "--base-url"]:
        assert flag in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "0"], "temperature must be between 0.001 and 100"),
        (["--steps", "0"], "steps must be a whole number >= 1"),
        (["--stop", "sometimes"], "stop must be"),
        (["--model", "gpt-17"], "model name must be one of"),
    ],
)
def test_cli_reports_bad_flags_without_a_traceback(tmp_path, args, message):
    done = _cli("run", "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_rejects_a_zero_reply_length(tmp_path):
    done = _cli("run", "--out", str(tmp_path / "x"), "--max-new-tokens", "0")
    assert done.returncode == 2 and "max_new_tokens must be a whole number >= 1" in done.stderr
