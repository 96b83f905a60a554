"""The course's learning-by-doing shape: every notebook 01-11 has "Your turn" cells and
questions with answers, and the reference solutions are what the notebooks run.

The format these tests read:

* a "Your turn" cell is a markdown cell with a heading that contains "Your turn"
  (``### Your turn: write the block``), followed by the student's code cell and a check;
* the questions section is a markdown heading containing "Questions" (``## Questions``),
  followed by 3 to 5 questions, each answered in a collapsed ``<details>`` element;
* ``edsr_lab/solutions/nbNN.py`` holds the reference solutions of notebook NN; every public
  function or class in it must be used by that notebook's code (so nbval runs it in CI).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOLUTIONS = ROOT / "edsr_lab" / "solutions"
#: Notebooks of the other course branch: strict xfails until they land (the lead removes them).
#: Empty: course-protocol's notebooks 01, 04, 07, 08, 10 have landed beside these.
OTHER_BRANCH: set[str] = set()


def _notebook(number: str) -> dict:
    paths = sorted(NOTEBOOK_DIR.glob(f"{number}_*.ipynb"))
    assert len(paths) == 1, f"expected one notebooks/{number}_*.ipynb, found {paths}"
    return json.loads(paths[0].read_text())


def _source(cell: dict) -> str:
    return "".join(cell.get("source", ""))


def _headings(cell: dict) -> list[str]:
    return [ln for ln in _source(cell).splitlines() if ln.lstrip().startswith("#")]


def your_turn_count(nb: dict) -> int:
    """Markdown cells with a "Your turn" heading, each followed by a code cell."""
    cells = nb["cells"]
    count = 0
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        if any("your turn" in h.lower() for h in _headings(cell)):
            follows = cells[i + 1] if i + 1 < len(cells) else None
            count += bool(follows and follows["cell_type"] == "code")
    return count


def question_count(nb: dict) -> int | None:
    """Answered questions (``<details>``) after the "Questions" heading; None: no heading."""
    cells = nb["cells"]
    start = next(
        (
            i
            for i, c in enumerate(cells)
            if c["cell_type"] == "markdown" and any("questions" in h.lower() for h in _headings(c))
        ),
        None,
    )
    if start is None:
        return None
    text = "".join(_source(c) for c in cells[start:] if c["cell_type"] == "markdown")
    text = text[text.lower().index("questions") :]
    opened, closed = text.count("<details>"), text.count("</details>")
    return opened if opened == closed else -1


def _param(number: str):
    if number in OTHER_BRANCH:
        reason = f"notebook {number} belongs to course-protocol; it lands with that branch"
        return pytest.param(number, marks=pytest.mark.xfail(strict=True, reason=reason))
    return number


COURSE = [_param(f"{i:02d}") for i in range(1, 12)]


@pytest.mark.parametrize("number", COURSE)
def test_notebook_has_two_your_turn_cells_and_questions(number):
    nb = _notebook(number)
    assert your_turn_count(nb) >= 2, f"notebook {number}: fewer than 2 'Your turn' cells"
    n = question_count(nb)
    assert n is not None, f"notebook {number}: no 'Questions' heading"
    assert 3 <= n <= 5, f"notebook {number}: {n} answered questions (want 3-5)"


def _public_names(module: Path) -> list[str]:
    tree = ast.parse(module.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
    ]


SOLUTION_MODULES = sorted(SOLUTIONS.glob("nb[0-9][0-9].py"))


@pytest.mark.parametrize("module", SOLUTION_MODULES, ids=lambda p: p.stem)
def test_every_solution_is_used_by_its_notebook(module):
    number = module.stem[2:]
    code = "\n".join(_source(c) for c in _notebook(number)["cells"] if c["cell_type"] == "code")
    names = _public_names(module)
    assert names, f"{module.name} defines no solutions"
    imported = re.search(rf"from edsr_lab\.solutions import [^\n]*\b{module.stem}\b", code)
    assert imported, f"notebook {number} does not import edsr_lab.solutions.{module.stem}"
    unused = [n for n in names if f"{module.stem}.{n}" not in code]
    assert not unused, f"notebook {number} never runs {module.stem}.{', '.join(unused)}"


def test_solutions_package_docstring_is_the_agreed_one():
    text = (SOLUTIONS / "__init__.py").read_text()
    assert text == (
        '"""Reference solutions of the notebooks\' "Your turn" cells: '
        '``edsr_lab.solutions.nbNN``."""\n'
    )


def test_the_checks_see_a_missing_section():
    """The counters above on tiny notebooks: they must be able to fail."""

    def nb(*cells):
        return {"cells": [{"cell_type": t, "source": s} for t, s in cells]}

    good = nb(
        ("markdown", "### Your turn: a"), ("code", "x = 1"),
        ("markdown", "### Your turn: b"), ("code", "y = 2"),
        ("markdown", "## Questions\n1. a?\n<details>A</details>\n2. b?\n<details>B</details>\n"
                     "3. c?\n<details>C</details>"),
    )  # fmt: skip
    assert your_turn_count(good) == 2 and question_count(good) == 3
    no_code = nb(("markdown", "### Your turn: a"), ("markdown", "text"))
    assert your_turn_count(no_code) == 0
    assert question_count(nb(("markdown", "## Exercises"))) is None
    assert question_count(nb(("markdown", "## Questions\n<details>A"))) == -1
