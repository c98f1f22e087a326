"""docs/benchmarks.md is written in sections, one per benchmark script."""

from neurocodec.bench.report import update_section


def test_sections_are_replaced_in_place_and_others_kept(tmp_path):
    md = tmp_path / "b.md"
    update_section(md, "a", "first A")
    update_section(md, "b", "first B")
    update_section(md, "a", "second A\nwith two lines")
    text = md.read_text()
    assert text.startswith("# Benchmarks")
    assert "first A" not in text
    assert text.index("second A") < text.index("first B")      # kept its place
    assert text.count("<!-- BEGIN a -->") == 1 and text.count("<!-- END b -->") == 1
    assert not (tmp_path / "b.md.tmp").exists()
