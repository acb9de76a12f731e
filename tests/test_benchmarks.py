"""The benchmark suite's smoke run and the GPU script's CPU dry run."""

import json

import pytest

from benchmarks import capable, gpu_mistral_random, reply_formats, run
from benchmarks.generation import paper_prompt

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert run.main(["--quick", "--out", str(out)]) == 0
    return out


def test_paper_prompt_has_twenty_integer_pairs():
    prompt = paper_prompt()
    assert prompt.count("input:") == 20 and ".0" not in prompt


@pytest.mark.xdist_group("benchmarks-quick")  # one worker makes quick_out for both
def test_quick_suite_writes_its_json_report_and_plot(quick_out):
    results = json.loads((quick_out / "latest.json").read_text())
    methods = results["generation"]["methods"]
    assert set(methods) == {"a: one call per proposal", "b: num_return_sequences",
                            "c: shared prefill"}
    assert all(m["seconds_per_step"] > 0 for m in methods.values())
    c = methods["c: shared prefill"]["seconds_per_step"]
    assert results["generation"]["a_over_c"] == pytest.approx(
        methods["a: one call per proposal"]["seconds_per_step"] / c)
    assert 0 <= results["outside"]["outside_share"] < 1
    assert set(results["prompt_styles"]) == {"chat", "completion"}
    assert {r["method"] for r in results["efficiency"]} == {
        "LLM", "random search", "hill climbing", "gradient descent"}
    report = (quick_out / "benchmarks.md").read_text()
    assert results["machine"]["torch"] in report and "(a)/(c) =" in report
    assert (quick_out / "images" / "benchmarks.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.xdist_group("benchmarks-quick")
def test_report_is_rebuilt_from_saved_json(quick_out, tmp_path):
    assert run.main(["--from-json", str(quick_out / "latest.json"), "--out", str(tmp_path)]) == 0
    assert "(b)/(c) =" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "images" / "benchmarks.png").is_file()


def test_quick_needs_an_output_folder():
    with pytest.raises(SystemExit):
        run.main(["--quick"])


def test_gpu_script_dry_run_on_a_tiny_mistral(tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu_mistral_random.main(["--dry-run", "--repeats", "1", "--out", str(out),
                                    "--capable", "--capable-out", str(tmp_path)]) == 0
    record = json.loads(next(tmp_path.glob("capable-mistral-7b-architecture*.json")).read_text())
    assert record["note"].startswith("Timing only") and record["seconds_per_model_step"]["opro"]
    assert "**Timing only" in (tmp_path / "benchmarks.md").read_text()
    results = json.loads(out.read_text())
    assert results["layers"] == 2 and results["quantized"] is False
    assert results["shared_prefix_attention"] is True
    assert results["methods"]["c: shared prefill"]["tokens_per_proposal"] > 0
    path = results["notebook_path"]  # what notebook 03 runs, on the same model
    assert path["steps"] == 3 and path["replies"] == 24 and path["panel_steps"] == 3
    assert path["panel_status"].startswith("finished: 3 steps done") and path["plot_axes"] >= 3
    paragraph = run.gpu_result(out)
    assert f"{results['methods']['c: shared prefill']['seconds_per_step']:.3f} s" in paragraph
    assert "shared-prefix attention in use" in paragraph
    assert "No GPU run" in run.gpu_result(tmp_path / "missing.json")


def test_reply_formats_quick_run_measures_every_format_on_both_presets(tmp_path):
    assert reply_formats.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "reply_formats.json").read_text())
    rows = {(r["preset"], r["reply_format"]): r for r in results["formats"]}
    assert set(rows) == {(p, f) for p in ("article", "opro")
                         for f in ("free", "pair", "reason+pair")}
    assert all(rows[p, f]["parse_rate"] == 1.0 for p in ("article", "opro")
               for f in ("pair", "reason+pair"))
    assert all(0 <= r["mask_share"] < 0.5 for r in results["overhead"])
    assert {r["temperature"] for r in results["sweep"]} == {0.4, 1.6}
    report = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- section:reply-formats -->" in report and "rank correlation" in report
    assert (tmp_path / "images" / "reply_formats.png").read_bytes()[:4] == b"\x89PNG"
    again = tmp_path / "again"
    assert reply_formats.main(["--from-json", str(tmp_path / "reply_formats.json"),
                               "--out", str(again)]) == 0
    assert (again / "benchmarks.md").read_text() == report


def test_capable_quick_record_of_the_bundled_model(tmp_path, capsys):
    assert capable.main(["--model", "smollm2", "--quick", "--out", str(tmp_path)]) == 0
    saved = tmp_path / "capable-smollm2-135m-instruct.json"
    results = json.loads(saved.read_text())
    rows = {(r["preset"], r["method"]) for r in results["rows"]}
    assert rows == {(p, m) for p in ("article", "opro") for m in (
        "LLM", "mimic", "hill climbing", "gradient descent", "random search")}
    assert all(r["evaluations"] == 16 and r["seed"] == 0 for r in results["rows"])
    assert results["model"] == "SmolLM2-135M-Instruct" and results["machine"]["cpu"]
    assert all(v > 0 for v in results["seconds_per_model_step"].values())
    report = (tmp_path / "benchmarks.md").read_text()
    section = report[report.index("<!-- section:capable-smollm2-135m-instruct -->"):]
    assert f"on {results['date']}" in section and results["machine"]["cpu"] in section
    assert "`python -m benchmarks.capable --model smollm2 --quick --out" in section
    assert section.count("this ranks nothing") == 2  # one seed ranks nothing, and says so
    assert "SmolLM2-135M-Instruct reached the target in" in capsys.readouterr().out
    (tmp_path / "benchmarks.md").unlink()
    assert capable.main(["--from-json", str(saved), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "benchmarks.md").read_text() == report


def _rows(mine: list[float], mimic: list[float], target: float = 1.0) -> list[dict]:
    return [{"preset": "article", "method": method, "seed": seed, "best_loss": loss,
             "evaluations_to_target": 10.0 if loss <= target else float("nan")}
            for method, losses in (("LLM", mine), ("mimic", mimic))
            for seed, loss in enumerate(losses)]


@pytest.mark.parametrize(("mine", "mimic", "word"), [
    ([0.5, 0.6, 2.0], [3.0, 0.9, 4.0], "better than"),
    ([3.0, 4.0, 5.0], [0.5, 2.0, 3.0], "worse than"),
    ([2.0, 3.0, 4.0], [2.0, 3.0, 4.0], "the same as"),
    ([2.0, 3.0, 4.0], [5.0, 6.0, 7.0], "better than"),  # no run reached it: the loss decides
])
def test_the_verdict_is_read_off_the_numbers(mine, mimic, word):
    text = capable.verdict({"model": "M", "rows": _rows(mine, mimic)}, "article")
    assert f": {word} copying" in text and "ranks nothing" not in text


def test_capable_names_a_model_it_cannot_load(tmp_path, capsys):
    assert capable.main(["--model", "no such model", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: model name must be one of")
    with pytest.raises(SystemExit):
        capable.main(["--model", "mimic", "--quick"])  # no --out


def test_speed_quick_run_times_each_way_at_rest_and_busy(tmp_path):
    from benchmarks import speed
    from llm_optimizer.models.cpu import usable_cores

    assert speed.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "speed.json").read_text())
    quiet, busy = results["phases"]["quiet"], results["phases"]["busy"]
    assert quiet["busy_loops"] == 0 and busy["busy_loops"] == usable_cores()
    for phase in (quiet, busy):
        assert {"now: step", "before: step", "before: prefill"} <= set(phase["rounds"])
        assert all(r["seconds"] > 0 for rounds in phase["rounds"].values() for r in rounds)
        assert all(len(r["replies"]) == 8 for r in phase["rounds"]["now: step"])
    assert all(r["threads"] >= 1 for r in busy["rounds"]["now: step"])
    # Hugging Face's own ways run at rest only, each with its 8 proposals.
    for way in ("article", "sequences"):
        assert len(quiet["rounds"][f"before: {way}"][0]["replies"]) == 8
        assert f"before: {way}" not in busy["rounds"]
    assert results["workers"]["before"]["precision"] == "fp32"
    missing = speed.llama_cpp_missing()
    assert (results["llama_cpp_skipped"] is None) == (missing is None)
    if missing is not None:
        assert "llama-cpp-python is not installed" in results["llama_cpp_skipped"]
        assert "llama.cpp: step" not in quiet["rounds"]
    report = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- section:speed -->" in report and "times one plain fp32 prefill" in report
    assert (f"{speed.medians(results)['busy']['now: step']:.2f} s" in report)
    assert "faster than Hugging Face's one call per proposal on fp32" in report
    again = tmp_path / "again"
    assert speed.main(["--from-json", str(tmp_path / "speed.json"), "--out", str(again)]) == 0
    assert (again / "benchmarks.md").read_text() == report
