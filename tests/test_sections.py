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
