"""The shape of the code: no import circle among the project's modules, and no package folder of more than
12 modules (issue 23).

The graph is read from the source with ``ast``, nothing is imported. Its nodes are the project's modules
(``data.config``, ``training.train``, ``demo`` ...; a package is its ``__init__``); the tests and the
virtual environment are not part of it. An edge ``a -> b`` is an ``import`` or ``from ... import`` in
``a`` of a project module ``b``, wherever it sits: at the top, inside a function or a class (it runs
whenever that code does), or under ``if TYPE_CHECKING:`` (an import for annotations only still makes ``a``
depend on what ``b`` is: the two circles issue 23 removed were of that kind). One block is left out:
``if __name__ == "__main__":``, which never runs on import (the module run as a script is ``__main__``,
another module object than the one its importers get).
``from package import name`` points at ``package.name`` when that is a module, else at ``package``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOT_PROJECT = {".venv", "tests", ".git", "results", "checkpoints"}
MAX_MODULES = 12


def project_files() -> dict[str, Path]:
    """``{dotted module name: file}`` of every project module."""
    modules = {}
    for path in sorted(REPO.rglob("*.py")):
        parts = path.relative_to(REPO).parts
        if parts[0] in NOT_PROJECT or any(part.startswith(".") for part in parts):
            continue
        name = ".".join(parts)[: -len(".py")]
        modules[name.removesuffix(".__init__")] = path
    return modules


def _skipped(test: ast.expr) -> bool:
    """``__name__ == "__main__"``."""
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _imports(node: ast.AST):
    """The import statements under ``node``, at any depth, but those of a ``__main__`` block."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _skipped(child.test):
            for branch in child.orelse:  # the else branch runs on import
                yield from _imports_of(branch)
            continue
        yield from _imports_of(child)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _imports(node)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def import_graph() -> dict[str, set[str]]:
    """``{module: project modules it imports}``."""
    modules = project_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for statement in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(statement, ast.Import):
                targets = [alias.name for alias in statement.names]
            else:
                base = statement.module or ""
                if statement.level:  # relative: from the module's own package up
                    package = _package_of(name, path).split(".")
                    package = package[: len(package) - statement.level + 1]
                    base = ".".join([*package, base] if base else package)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in statement.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_reads_the_projects_imports():
    graph = import_graph()
    assert "evaluation.pipeline" in graph and "training.train" in graph and "demo" in graph
    assert "evaluation.trained_runs" in graph["evaluation.pipeline"]
    assert "torch" not in graph["evaluation.pipeline"]  # outside the project
    assert "training.cli" in graph["training.train"] and "training.train" not in graph["training.cli"]
    assert "evaluation.judges.cache" in graph["evaluation.disentanglement"]  # `from package import module`


def test_imports_in_functions_and_type_checking_count_but_not_a_main_block():
    source = """
import a
if TYPE_CHECKING:
    import b
def f():
    import c
if __name__ == "__main__":
    import d
"""
    assert [statement.names[0].name for statement in _imports(ast.parse(source))] == ["a", "b", "c"]


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_among_the_projects_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_package_folder_holds_more_than_12_modules():
    packages = {path.parent for path in project_files().values() if path.name == "__init__.py"}
    crowded = {str(folder.relative_to(REPO)): count for folder in packages
               if (count := sum(1 for path in folder.glob("*.py") if path.name != "__init__.py")) > MAX_MODULES}
    assert not crowded, f"folders with more than {MAX_MODULES} modules: {crowded}"
