"""The package's shape (issue 13): no import circle, the CLI on top, few private imports.

The graph is read from the source (``ast``), not by importing: an edge A -> B for every
``import edsr_lab.B`` / ``from edsr_lab.B import ...`` / ``from edsr_lab import B`` that A
runs when it is imported (its module level, not inside functions and not under
``TYPE_CHECKING``). Imports inside functions are the CLI's and a few modules' way of
starting fast; they run later and cannot make an import circle.

Run as a script for the facts behind the closing note of issue 13:
``python tests/test_import_graph.py`` prints the circles, the imports of the CLI and every
cross-module import of a private name (module-level or not).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edsr_lab"

#: Cross-module imports of private names that are allowed, each with its reason (also said
#: in a comment at the import). Anything else fails the test: give the name a public one.
ALLOWED_PRIVATE: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, *, top_only: bool):
    """(imported module, [(name, local name)] imported from it, line) for each import."""
    package = module if is_package else module.rpartition(".")[0]

    def walk(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, [], node.lineno
                    if alias.asname:  # import edsr_lab.x.y as z: z names the module
                        parent, _, last = alias.name.rpartition(".")
                        yield parent, [(last, alias.asname)], node.lineno
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                yield target, [(a.name, a.asname or a.name) for a in node.names], node.lineno
            elif top_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            else:
                yield from walk(ast.iter_child_nodes(node))

    yield from walk(ast.iter_child_nodes(tree))


def graph(*, top_only: bool = True) -> dict[str, set[str]]:
    """Module -> the edsr_lab modules it imports (module level only, by default).

    ``from edsr_lab.x import y`` counts as an import of ``edsr_lab.x.y`` when that is a
    module, else of ``edsr_lab.x``; importing a submodule imports its packages too, but
    those edges are left out (a package importing its own submodules is no circle).
    """
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, names, _ in _imports(tree, mod, path.name == "__init__.py", top_only=top_only):
            if not target.startswith("edsr_lab"):
                continue
            found = [f"{target}.{n}" for n, _ in names if f"{target}.{n}" in mods]
            for t in found or [target]:
                if t != mod and t in mods:
                    edges[mod].add(t)
    return edges


def _strip_packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges from a package's __init__ to its own submodules (they are how a package
    is built, and a submodule importing its package's other parts is ordinary)."""
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_imports() -> list[tuple[str, str, int]]:
    """(importing module, ``module.name``, line) for each import of another module's
    private (``_x``) name, anywhere in the module (functions included)."""
    mods = modules()
    out = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, names, line in _imports(tree, mod, path.name == "__init__.py", top_only=False):
            if not target.startswith("edsr_lab") or target == mod:
                continue
            for n, _ in names:
                if n.startswith("_") and not n.startswith("__") and f"{target}.{n}" not in mods:
                    out.append((mod, f"{target}.{n}", line))
        # ``module._name`` attribute reads of an imported edsr_lab module
        aliases = {}
        for target, names, _ in _imports(tree, mod, path.name == "__init__.py", top_only=False):
            for n, alias in names:
                if f"{target}.{n}" in mods:
                    aliases[alias] = f"{target}.{n}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != mod
            ):
                out.append((mod, f"{aliases[node.value.id]}.{node.attr}", node.lineno))
    return sorted(set(out))


def test_the_graph_sees_imports():
    # the reader itself: a known edge and a known lazy import
    edges = graph()
    assert "edsr_lab.errors" in edges["edsr_lab.config"]
    assert "edsr_lab.cli.train" in edges["edsr_lab.cli"]
    everything = graph(top_only=False)
    assert "edsr_lab.train" in everything["edsr_lab.cli.train"] or any(
        t.startswith("edsr_lab.train.") for t in everything["edsr_lab.cli.train"]
    )
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    found = cycles(_strip_packages(graph()))
    assert not found, f"import circles (module level): {found}"


def test_nothing_outside_the_cli_imports_it():
    offenders = sorted(
        f"{m} -> {t}"
        for m, ts in graph(top_only=False).items()
        for t in ts
        if (t == "edsr_lab.cli" or t.startswith("edsr_lab.cli."))
        and not (m == "edsr_lab.cli" or m.startswith("edsr_lab.cli.") or m == "edsr_lab.__main__")
    )
    assert not offenders, f"library modules import the CLI: {offenders}"


def test_private_names_stay_private():
    found = {f"{m} -> {name}" for m, name, _ in private_imports()}
    unexplained = sorted(f for f in found if f not in ALLOWED_PRIVATE)
    assert not unexplained, (
        f"cross-module imports of private names: {unexplained}; give the name a public one "
        "(or, if it must stay, add it with its reason to ALLOWED_PRIVATE)"
    )
    assert len(ALLOWED_PRIVATE) <= 5, "a few at most (issue 13)"


def test_the_package_docstring_lists_every_module():
    """edsr_lab/__init__.py's docstring is the map of the package: one line per module."""
    import re

    doc = (PACKAGE / "__init__.py").read_text().split('"""')[1]
    listed = re.findall(r"^    ``([a-z_]+)/?``", doc, re.M)
    have = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")}
    have |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert sorted(listed) == sorted(set(listed)), "a module is listed twice"
    assert set(listed) == have, (
        f"not listed: {sorted(have - set(listed))}; no such module: {sorted(set(listed) - have)}"
    )


if __name__ == "__main__":
    edges = graph()
    print("module-level import circles:", cycles(_strip_packages(edges)) or "none")
    cli_users = sorted(
        f"{m} -> {t}"
        for m, ts in graph(top_only=False).items()
        for t in ts
        if t.startswith("edsr_lab.cli") and not m.startswith("edsr_lab.cli")
    )
    print("imports of edsr_lab.cli from outside it:", cli_users or "none")
    private = private_imports()
    print(f"cross-module imports of private names: {len(private)}")
    for m, name, line in private:
        print(f"  {m}:{line} -> {name}")
