"""Docs that must not drift (issue 20): docs/cli.md's --help blocks are the parser's, the
architecture page's examples run as written, scale-out's snippet carries its own
``__main__`` guard, and no page cites a design file the repository does not have."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from neurocodec.cli import reference

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"


def test_cli_reference_is_in_sync():
    text = (DOCS / "cli.md").read_text()
    assert text.count("<!-- generated: neurocodec") >= 10  # the top level and every command
    assert reference.render(text) == text, ("docs/cli.md is out of date with the parser: "
                                            "run python -m neurocodec.cli.reference docs/cli.md")


def test_reference_check_mode_fails_on_a_stale_page(tmp_path):
    page = tmp_path / "cli.md"
    page.write_text("<!-- generated: neurocodec info --help -->\nold\n<!-- end generated -->\n")
    assert reference.main([str(page), "--check"]) == 1
    assert reference.main([str(page)]) == 0
    assert "--weights W" in page.read_text() and reference.main([str(page), "--check"]) == 0


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.DOTALL)


def test_architecture_examples_run_as_written():
    pytest.importorskip("torch")
    blocks = _python_blocks(DOCS / "architecture.md")
    assert len(blocks) >= 3
    for code in blocks:
        exec(compile(code, "docs/architecture.md", "exec"), {"__name__": "architecture_example"})


def test_scale_out_snippet_has_its_main_guard():
    for code in _python_blocks(DOCS / "scale-out.md"):
        tree = ast.parse(code)
        calls = {node.func.id for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        if calls & {"encode_dir", "decode_dir"}:
            guarded = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
            assert guarded, f"a scale-out.md snippet calls the collection outside `if __name__ == '__main__':`\n{code}"
            top_level = {n.func.id for stmt in tree.body if not isinstance(stmt, ast.If)
                         for n in ast.walk(stmt) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            assert not top_level & {"encode_dir", "decode_dir"}


def test_docs_cite_no_design_file_outside_the_repository():
    for path in [README, *DOCS.rglob("*.md")]:
        if "DESIGN.md" in path.read_text():
            assert (DOCS.parent / "DESIGN.md").exists(), f"{path.name} cites DESIGN.md, which is not in the repository"
