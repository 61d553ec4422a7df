"""Process-wide Kopf setup shared by the three operator modules.

Importing this module registers one startup handler, however many operator modules are loaded
into the same Kopf process (`kopf run -m operators.mlmodel` or `kubeloop operator` with all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from operators.api.common import FINALIZER, GROUP
from operators.config import OperatorConfig


@dataclass
class OperatorContext:
    """Everything a handler needs beyond the object itself; built once at startup."""

    config: OperatorConfig
    backends: dict[str, Any] = field(default_factory=dict)


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Kopf's bookkeeping goes to annotations under our prefix, never into our status, which
    # belongs to the schema the CRD declares (structural schemas would prune it anyway).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = 30  # WARNING and above become Kubernetes Events
    settings.watching.server_timeout = 300
    settings.peering.name = "kubeloop"


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    if getattr(memo, "context", None) is None:
        memo.context = OperatorContext(config=OperatorConfig.from_env())


PIPELINES = "pipelines"


def shared_backend(context: OperatorContext, key: str, build: Callable[[], Any]) -> Any:
    """One instance per process of a backend several operators use (built on first need)."""
    if key not in context.backends:
        context.backends[key] = build()
    return context.backends[key]


def context_of(memo: kopf.Memo) -> OperatorContext:
    context: OperatorContext = memo.context
    return context
