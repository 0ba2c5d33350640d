"""The import structure: no circle among edgeprune's modules, and the runner stands alone (no torch, nothing of the
host). Read from the source with ast, so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "exporters", "runners")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, name: str, is_package: bool = False, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every dotted name a module's source imports (relative imports resolved against its package). `from pkg
    import sub` names pkg.sub where that is one of `modules`, else pkg (and pkg.sub, in case it is a module)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{alias.name}" for alias in node.names}
            found.update(subs & modules or {base, *subs})
    return found


def project_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    modules = frozenset(files)
    return {name: {n for n in imported_names(path.read_text(), name, path.name == "__init__.py", modules)
                   if n in files and n != name}
            for name, path in files.items()}


def test_no_import_circle():
    graph = project_graph()
    assert len(graph) > 40
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_runner_imports_neither_host_code_nor_torch():
    runner_files = list((ROOT / "runners").rglob("*.py"))
    assert runner_files
    for path in runner_files:
        names = imported_names(path.read_text(), module_name(path), path.name == "__init__.py")
        bad = sorted(n for n in names if n.split(".")[0] in ("harness", "exporters", "torch"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_checks_see_a_circle_and_a_forbidden_import():
    """The checks above can fail: a made-up circle, an import inside a function, relative imports."""
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).static_order())
    assert "torch" in imported_names("def f():\n    import torch\n", "runners.x")
    assert {"harness.report.sibling", "harness.report.sibling.thing", "harness.other"} <= \
        imported_names("from .sibling import thing\nfrom ..other import x\n", "harness.report.mod")
