"""How the components word an invalid input (pydantic's errors, one line)."""

from __future__ import annotations

from pydantic import ValidationError


def problems(error: ValidationError, prefix: str = "", whole: str = "") -> str:
    """``<prefix><field.path>: <message>`` per problem, joined by "; "; an error about the
    whole object (no field path) is named ``whole``."""
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in item['loc']) or whole}: {item['msg']}"
        for item in error.errors()
    )
