"""Report sections: each benchmark script rewrites its own part of docs/benchmarks.md."""

from benchmarks.sections import sections, write_main, write_section


def test_a_section_is_added_then_replaced_and_survives_the_main_report(tmp_path):
    doc = tmp_path / "benchmarks.md"
    write_main(doc, "# Benchmarks\n\nmain v1\n")
    write_section(doc, "server", "## Server\n\nfirst")
    write_section(doc, "formats", "## Formats\n\nA")
    write_section(doc, "server", "## Server\n\nsecond")
    write_main(doc, "# Benchmarks\n\nmain v2\n")
    text = doc.read_text()
    assert "main v2" in text and "main v1" not in text
    assert "second" in text and "first" not in text
    assert list(sections(text)) == ["server", "formats"]
    assert text.count("<!-- section:server -->") == 1


def test_notebook_timings_mark_a_busy_machine_and_keep_both_runs_side_by_side():
    from benchmarks.time_notebooks import BUSY, report, state

    quiet = {"mode": "full", "date": "d", "machine": {"cpu": "cpu"}, "cpus": 2,
             "seconds": {"01.ipynb": 4.0, "03.ipynb": 90.0}, "load_average": [0.2, 0.9]}
    busy = {**quiet, "seconds": {"01.ipynb": 12.0, "03.ipynb": 300.0},
            "load_average": [2 * BUSY * 2, 0.5]}
    assert (state(quiet), state(busy)) == ("quiet", "busy")
    text = report([busy, quiet])
    assert "| full mode, busy, s | full mode, quiet, s |" in text
    assert "| 03.ipynb | 300 | 90 |" in text and "| all | 312 | 94 |" in text
