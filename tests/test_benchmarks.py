"""The benchmark suite's smoke run and the GPU script's CPU dry run."""

import json

import pytest

from benchmarks import gpu_mistral_random, reply_formats, run
from benchmarks.generation import paper_prompt

pytestmark = pytest.mark.model


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
    assert gpu_mistral_random.main(["--dry-run", "--repeats", "1", "--out", str(out)]) == 0
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
