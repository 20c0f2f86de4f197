"""The core never imports Qt: checked on the source, and by importing it with Qt blocked."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "hitl_desktop" / "core"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "hitl_desktop.qt", "hitl_desktop.app")


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module


def test_no_core_module_imports_qt():
    offenders = [
        f"{path.relative_to(CORE.parent.parent)}:{line}: {name}"
        for path in CORE.rglob("*.py")
        for line, name in imported_modules(path)
        if name.startswith(FORBIDDEN)
    ]
    assert offenders == []


def test_core_imports_with_qt_unavailable():
    code = (
        "import sys, importlib, pkgutil\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6'):\n"
        "            raise ImportError('Qt is blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import hitl_desktop.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'hitl_desktop.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import hitl_desktop.cli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
