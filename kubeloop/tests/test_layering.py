"""The product sits on top: the operators, services, components and the control plane never
import `kubeloop` (the CLI, the launcher, the demo)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BELOW_THE_PRODUCT = ("operators", "services", "components", "pipelines", "localcluster")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_nothing_below_the_product_imports_it() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in BELOW_THE_PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if "tests" not in path.relative_to(ROOT).parts
        for name in sorted(_imports(path))
        if name == "kubeloop" or name.startswith("kubeloop.")
    ]
    assert offenders == []
