"""No import cycle among the core modules (function-level imports count too), so that each
can be understood, tested and changed on its own; ``store`` and ``backup`` in particular."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "hitl_desktop" / "core"


def core_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE.parent.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        deps = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hitl_desktop.core"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)  # "from core import store"
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("hitl_desktop.core"))
    return {m: {d for d in deps if d in graph and d != m and d != "hitl_desktop.core"} for m, deps in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_in_core():
    assert find_cycle(core_imports()) is None


def test_store_and_backup_do_not_import_each_other_both_ways():
    graph = core_imports()
    assert "hitl_desktop.core.store" not in graph["hitl_desktop.core.backup"]


def test_the_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
