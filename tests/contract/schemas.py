"""The JSON schemas in ``schemas/`` (written for kubeloop from the upstream API references each
one names in ``x-reference``), loaded for the contract tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(name: str, document: Any) -> list[str]:
    """Each violation as ``<path>: <message>``; empty when the document fits."""
    found = validator(name).iter_errors(document)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)
