"""The serving tests' model: the harness's logistic model, registered in an SQLite store."""

from __future__ import annotations

from pathlib import Path

from tests.support.models import FEATURES, LogisticModel, register_model, sqlite_tracking_uri

__all__ = ["FEATURES", "LogisticModel", "register_logistic_model"]


def register_logistic_model(
    root: Path, model_name: str = "logistic", model: LogisticModel | None = None
) -> tuple[str, str]:
    """Log and register the model in an SQLite MLflow store under ``root``; returns (tracking_uri, models:/ uri)."""
    tracking_uri = sqlite_tracking_uri(root)
    version = register_model(tracking_uri, root, model_name, model or LogisticModel())
    return tracking_uri, f"models:/{model_name}/{version}"
