"""The shape issue 10 gave the operators, kept: thin handler modules that alone use the Kopf
shell, and no function longer than a screen."""

from __future__ import annotations

import ast
from pathlib import Path

OPERATORS = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60
MAX_HANDLERS_LINES = 40


def _sources() -> list[Path]:
    return [p for p in sorted(OPERATORS.rglob("*.py")) if "tests" not in p.parts]


def _imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_handler_modules_use_the_kopf_shell() -> None:
    users = [
        path.relative_to(OPERATORS.parent).as_posix()
        for path in _sources()
        if "operators.controller" in _imported_modules(ast.parse(path.read_text()))
    ]
    assert users and all(user.endswith("/handlers.py") for user in users), users


def test_handler_modules_only_register() -> None:
    handlers = sorted(OPERATORS.glob("*/handlers.py"))
    assert len(handlers) == 3
    for path in handlers:
        assert len(path.read_text().splitlines()) <= MAX_HANDLERS_LINES, path


def test_no_function_is_longer_than_a_screen() -> None:
    long = [
        f"{path.relative_to(OPERATORS.parent)}:{node.lineno} {node.name}"
        for path in _sources()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
