"""Notebook hygiene: what nbval would otherwise let slip through silently.

nbval compares a cell's fresh output with its *stored* output. A cell that was never run,
a checked cell whose output was never stored, or a marker with a typo (nbval ignores it
silently) all weaken the test without anybody noticing. These checks fail instead; the
last tests feed them deliberately broken notebooks to show that they do.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
MARKERS = {
    "# NBVAL_IGNORE_OUTPUT",
    "# NBVAL_CHECK_OUTPUT",
    "# NBVAL_SKIP",
    "# NBVAL_RAISES_EXCEPTION",
}
#: Names whose call shows something in the notebook.
DISPLAY_CALLS = {"print", "display", "show"}


def code_cells(nb: dict) -> list[tuple[int, dict, str]]:
    return [
        (i, c, "".join(c.get("source", "")))
        for i, c in enumerate(nb["cells"])
        if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()
    ]


def marker(source: str) -> str | None:
    lines = source.strip().splitlines()
    return lines[0].strip() if lines and lines[0].strip() in MARKERS else None


def can_print(source: str) -> bool:
    """True when running the cell shows output: a print/display call or a bare last expression."""
    # IPython magics and shell escapes are not Python; they never matter for this check.
    python = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
    tree = ast.parse(python)
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not python.rstrip().endswith(";"):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            if name in DISPLAY_CALLS:
                return True
    return False


def hygiene_problems(nb: dict) -> list[str]:
    """Every reason this notebook would make nbval's verdict untrustworthy (empty = fine)."""
    problems = []
    cells = code_cells(nb)
    counts = [c.get("execution_count") for _, c, _ in cells]
    for i, c, src in cells:
        mark = marker(src)
        if c.get("execution_count") is None:
            problems.append(f"cell {i}: never executed (run the notebook top to bottom, save)")
        for n, line in enumerate(src.splitlines()):
            if "NBVAL" in line and not (n == 0 and line.strip() in MARKERS):
                problems.append(
                    f"cell {i} line {n + 1}: malformed or misplaced marker {line.strip()!r}; "
                    f"it must be the whole first line, one of {sorted(MARKERS)}"
                )
        errors = [o for o in c.get("outputs", []) if o.get("output_type") == "error"]
        if errors and mark != "# NBVAL_RAISES_EXCEPTION":
            problems.append(f"cell {i}: stored an error output")
        if mark not in {"# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP"} and can_print(src):
            if not c.get("outputs"):
                problems.append(
                    f"cell {i}: checked cell prints but has no stored output, so nbval "
                    "would compare nothing"
                )
    if None not in counts and counts != list(range(1, len(counts) + 1)):
        problems.append(f"execution counts {counts} are not 1..n: restart the kernel, run all")
    return problems


def test_notebooks_exist_in_course_order():
    names = [p.name for p in NOTEBOOKS]
    assert names, f"no notebooks found in {NOTEBOOK_DIR}"
    assert all(n[:2].isdigit() and n[2] == "_" for n in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(path):
    problems = hygiene_problems(json.loads(path.read_text(encoding="utf-8")))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_goals_and_uses_the_package(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = nb["cells"][0]
    text = "".join(first.get("source", "")).lower()
    assert first["cell_type"] == "markdown", f"{path.name}: must open with a markdown cell"
    for word in ("learn", "need"):
        assert word in text, f"{path.name}: the intro should say what you {word}"
    assert any("edsr_lab" in src for _, _, src in code_cells(nb)), (
        f"{path.name}: notebooks build on the edsr_lab package, not on copies of its code"
    )


def _nb(*cells):
    return {"cells": [{"cell_type": "code", "metadata": {}, **c} for c in cells]}


def _cell(source, count, outputs=()):
    return {"source": source, "execution_count": count, "outputs": list(outputs)}


STREAM = {"output_type": "stream", "name": "stdout", "text": "3\n"}


def test_checker_accepts_a_clean_notebook():
    nb = _nb(
        _cell("import math", 1),
        _cell("print(1 + 2)", 2, [STREAM]),
        _cell("# NBVAL_IGNORE_OUTPUT\nprint(loss)", 3),
        _cell("x = 1;", 4),
    )
    assert hygiene_problems(nb) == []


@pytest.mark.parametrize(
    "cells, expected",
    [
        ((_cell("print(3)", None),), "never executed"),
        ((_cell("print(3)", 1),), "no stored output"),
        ((_cell("len([1, 2])", 1),), "no stored output"),
        ((_cell("# NBVAL_IGNORE_OUTPUT please\nprint(3)", 1, [STREAM]),), "malformed"),
        ((_cell("x = 1\n# NBVAL_IGNORE_OUTPUT", 1),), "misplaced"),
        ((_cell("1/0", 1, [{"output_type": "error", "ename": "E"}]),), "error output"),
        ((_cell("x = 1", 2), _cell("y = 2", 1)), "not 1..n"),
    ],
)
def test_checker_flags_broken_notebooks(cells, expected):
    problems = hygiene_problems(_nb(*cells))
    assert any(expected in p for p in problems), problems
