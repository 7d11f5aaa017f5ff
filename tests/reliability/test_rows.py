"""Every row of docs/reliability.md has a test here named ``test_<ROW>_...`` (so ``-k A16_`` runs it)."""

from __future__ import annotations

import ast
from pathlib import Path

ROWS = ([f"A{i}" for i in range(1, 21)] + [f"B{i}" for i in range(1, 15)] + [f"C{i}" for i in range(1, 7)]
        + [f"D{i}" for i in range(1, 7)] + [f"E{i}" for i in range(1, 11)] + [f"F{i}" for i in range(1, 7)])


def test_every_row_has_a_test():
    names = set()
    for module in Path(__file__).parent.glob("test_*.py"):
        tree = ast.parse(module.read_text())
        names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    missing = [row for row in ROWS if not any(name.startswith(f"test_{row}_") for name in names)]
    assert not missing, f"rows without a test: {missing}"
