"""The package's layout, read from its source: imports run one way, modules stay short,
the upkeep lives outside the package, and docs/architecture.md names every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llm_optimizer"
MODULES = sorted(PACKAGE.rglob("*.py"))
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules that ``path`` imports, at its top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported(ast.parse(path.read_text(), str(path)), package, known)


def imported(tree: ast.Module, package: str, known: set[str]) -> set[str]:
    """The ``known`` modules that ``tree``, a module of ``package``, imports anywhere.

    ``from . import x`` names the submodule ``x`` if there is one, else the package.
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level else ""
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = ".".join(p for p in (base, node.module) if p)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found & known


def import_graph() -> dict[str, set[str]]:
    known = {module_name(p) for p in MODULES}
    return {module_name(p): imports(p, known) - {module_name(p)} for p in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph`` as a list of modules, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    return next((c for c in (visit(n, []) for n in sorted(graph)) if c), None)


def test_the_cycle_finder_finds_a_circle_and_a_lazy_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None
    # the circle this layout removed: an import inside a function counts as one at the top
    known = {"pkg.notebook", "pkg.models", "pkg.models.loading", "pkg._checks", "pkg"}
    loading = ast.parse("from .. import _checks\n"
                        "def load():\n    from ..notebook import on_colab\n")
    notebook = ast.parse("def setup():\n    from .models.loading import NO_GPU\n")
    graph = {"pkg.models.loading": imported(loading, "pkg.models", known),
             "pkg.notebook": imported(notebook, "pkg", known)}
    assert graph["pkg.models.loading"] == {"pkg._checks", "pkg.notebook"}
    assert find_cycle(graph) == ["pkg.models.loading", "pkg.notebook", "pkg.models.loading"]


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert graph["llm_optimizer.loop"] >= {"llm_optimizer.run", "llm_optimizer.settings"}
    assert "llm_optimizer.runtime" in graph["llm_optimizer.models.loading"]
    assert "llm_optimizer.runtime" in graph["llm_optimizer.notebook"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_at_most_350_lines(path):
    assert len(path.read_text().splitlines()) <= 350


def test_the_loop_reads_in_one_screen():
    source = (PACKAGE / "loop.py").read_text()
    assert len(source.splitlines()) < 200
    optimize = next(node for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef) and node.name == "optimize")
    assert optimize.end_lineno - optimize.lineno + 1 < 60  # signature and docstring included


def _strings_outside_docstrings(tree: ast.Module) -> list[str]:
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_package_does_not_rewrite_the_repository(path):
    """README, colab_badge.md and the notebooks are kept by tools/sync_notebooks.py."""
    tree = ast.parse(path.read_text())
    named = [s for s in _strings_outside_docstrings(tree)
             if re.search(r"README|colab_badge|\.ipynb", s)]
    assert named == []
    defined = {node.name for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    assert not defined & {"sync_badges", "badge_table", "readme_section", "badge"}


def test_the_upkeep_script_lies_outside_the_package():
    from tools import sync_notebooks

    assert Path(sync_notebooks.__file__).resolve().parent == ROOT / "tools"
    assert sync_notebooks.ROOT == ROOT


def test_the_architecture_map_names_every_module_and_only_real_ones():
    text = ARCHITECTURE.read_text()
    named = set(re.findall(r"`((?:llm_optimizer|tools|tests)/[\w/]*\.py)`", text))
    assert {p for p in named if not (ROOT / p).is_file()} == set()
    package = {str(p.relative_to(ROOT)) for p in MODULES}
    assert package - named == set(), "docs/architecture.md does not name these modules"
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
