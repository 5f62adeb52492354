"""The three floors (docs/internals.md, "Layout"): imports only point down.

``shared/`` imports neither ``services`` nor ``lighter_stack``; a service imports neither the
application shell nor another service. Every import statement counts, including the lazy ones
inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Dotted names of every module ``path`` imports (absolute imports; relative ones stay inside
    their package and are left out)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def _files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_the_floors_exist() -> None:
    assert _files("shared") and _files("services") and _files("lighter_stack")


@pytest.mark.parametrize("path", _files("shared"), ids=lambda p: str(p.relative_to(REPO)))
def test_shared_imports_no_service_and_no_shell(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] in {"services", "lighter_stack"}}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("services"), ids=lambda p: str(p.relative_to(REPO)))
def test_a_service_imports_neither_the_shell_nor_another_service(path: Path) -> None:
    rel = path.relative_to(REPO / "services").parts
    own = rel[0] if len(rel) > 1 else None
    bad = set()
    for m in imported_modules(path):
        parts = m.split(".")
        if parts[0] == "lighter_stack":
            bad.add(m)
        elif parts[0] == "services" and len(parts) > 1 and parts[1] != own:
            bad.add(m)
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from services.ledger.report import x\n    import lighter_stack.cli\n")
    assert imported_modules(f) == {"services.ledger.report", "lighter_stack.cli"}
