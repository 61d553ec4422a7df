"""Each wire contract string is defined once, in contracts/: the rest of the source imports it.

Issue 10's acceptance check made permanent: every public string constant of a contracts
module (minus the plain words in ``GENERIC``, which occur legitimately everywhere) must not
appear as a quoted literal in any non-test Python file outside ``contracts/``, and at most once
inside it (values built from others, e.g. ``ce-`` + attribute, appear zero times).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import (
    auth,
    cloudevents,
    drift,
    feature_serving,
    headers,
    kube,
    mlflow_tags,
    monitor_config,
    quality,
    storage,
)

ROOT = Path(__file__).resolve().parents[2]
MODULES = (
    cloudevents,
    headers,
    kube,
    mlflow_tags,
    drift,
    monitor_config,
    quality,
    auth,
    feature_serving,
    storage,
)
#: Values too plain to grep for: CloudEvents core attribute names, roles, logger modes,
#: versions, and words like "passed" that are also ordinary identifiers.
GENERIC = frozenset(
    {
        "1.0",
        "id",
        "type",
        "source",
        "specversion",
        "time",
        "namespace",
        "component",
        "endpoint",
        "metadata",
        "annotations",
        "ce-",
        "all",
        "request",
        "response",
        "stable",
        "candidate",
        "shadow",
        "v1alpha1",
        "v1beta1",
        "kubeloop",
        "passed",
        "reference",
        "ks",
        "status",
        "feedback",
        "get",
        "create",
        "mlmodels",
        # CLI flags of the Feast transformer that other programs' CLIs also have.
        "--features",
        "--mlmodel",
    }
)
SKIPPED_DIRS = {".venv", ".git", "build", "node_modules", "tests", "contracts", "__pycache__"}


def contract_values() -> dict[str, str]:
    """value -> where it is defined (module.NAME), for every public str constant."""
    values: dict[str, str] = {}
    for module in MODULES:
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and value not in GENERIC:
                values.setdefault(value, f"{module.__name__}.{name}")
    return values


def source_files(root: Path) -> Iterator[Path]:
    """Non-test Python files outside contracts/."""
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in parts[:-1]):
            continue
        # testing.py: test support still shipped in packages (issue 10 moves it to tests/).
        if path.name.startswith("test_") or path.name in ("conftest.py", "testing.py"):
            continue
        yield path


def literal(value: str) -> re.Pattern[str]:
    """The value quoted, in any case (header names are case-insensitive: X-Request-Id)."""
    return re.compile(r"""(?<![\w.])(["'])""" + re.escape(value) + r"\1", re.IGNORECASE)


def literal_uses(root: Path, values: dict[str, str]) -> list[str]:
    """``path:line: value (defined as module.NAME)`` for each literal spelling of a value."""
    patterns = {value: literal(value) for value in values}
    found = []
    for path in sorted(source_files(root)):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for value, pattern in patterns.items():
                if pattern.search(line):
                    where = path.relative_to(root)
                    found.append(f"{where}:{number}: {value!r} (import {values[value]})")
    return found


def test_contract_strings_are_not_spelled_outside_contracts() -> None:
    uses = literal_uses(ROOT, contract_values())
    assert not uses, "wire strings spelled outside contracts/:\n" + "\n".join(uses)


def test_each_contract_string_is_defined_once_in_contracts() -> None:
    values = contract_values()
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "contracts").glob("*.py"))
    twice = [v for v in values if len(literal(v).findall(text)) > 1]
    assert not twice, f"defined more than once in contracts/: {twice}"


@pytest.mark.parametrize(
    "line",
    [
        'MODEL_VERSION_LABEL = "kubeloop.io/model-version"',
        "headers = {'X-Kubeloop-Role': role}",
        'if ce_type == "org.kubeflow.serving.inference.request":',
        'tags["kubeloop.io/drift-report"] = url',
    ],
)
def test_the_check_catches_a_reintroduced_literal(tmp_path: Path, line: str) -> None:
    module = tmp_path / "operators" / "backends" / "sneaky.py"
    module.parent.mkdir(parents=True)
    module.write_text(f"{line}\n", encoding="utf-8")
    (tmp_path / "operators" / "tests").mkdir()
    (tmp_path / "operators" / "tests" / "test_sneaky.py").write_text(f"{line}\n")
    uses = literal_uses(tmp_path, contract_values())
    assert len(uses) == 1 and uses[0].startswith("operators/backends/sneaky.py:1:")


def test_detector_names_match_the_registry_and_the_api() -> None:
    from operators.api.mlmodel import DetectorName
    from services.monitor.drift.registry import detector_names

    assert tuple(detector_names()) == drift.DETECTOR_NAMES
    assert sorted(d.value for d in DetectorName) == list(drift.DETECTOR_NAMES)
