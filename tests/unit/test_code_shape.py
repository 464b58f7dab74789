"""Code stays in readable pieces: no module over 400 lines, no function or method over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import mlops_provider

PACKAGE = Path(mlops_provider.__file__).resolve().parent
ROOT = PACKAGE.parents[1]  # the repository: names read provider/mlops_provider/...
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # from the ``def`` line to the last line of the body; decorators excluded


def _modules() -> list[Path]:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no modules under {PACKAGE}"
    return modules


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method (nested ones too), with its qualified name."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def test_no_module_over_400_lines() -> None:
    offenders = []
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{_name(path)}: {lines} lines")
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_over_60_lines() -> None:
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for qualname, node in _functions(tree):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1  # node.lineno is the def line, after decorators
            if length > MAX_FUNCTION_LINES:
                offenders.append(f"{_name(path)}:{node.lineno} {qualname}: {length} lines")
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)
