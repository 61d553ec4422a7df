"""Where drift detection plugs into the monitor (the detectors live in ``services/monitor/drift``).

The monitor owns the windows and the persistence; a detector only sees an immutable snapshot
of one version's window and the alarm state it returned last time, and returns a JSON-able
result plus its new alarm state. The monitor calls every registered evaluator for every
version with data every ``drift_interval_s`` (in a worker thread, so detectors may be slow),
persists the alarm state in SQLite (it comes back after a restart) and serves the results at
``GET /v1/models/{ns}/{name}/drift``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from services.monitor.config import ModelConfig
from services.monitor.served import ServedRow

# Names of the built-in checks: their slots in results and history, and metric labels. They
# live here, not in the drift package, so that the service and the metrics can name them
# without importing pandas and SciPy before any model asks for drift.
FEATURE = "feature"
PREDICTION = "prediction"
NULL_RATE = "nullRate"
SKEW = "skew"


@dataclass(frozen=True)
class WindowSnapshot:
    """One version's live window, oldest row first; arrays are copies the detector may keep."""

    namespace: str
    model: str
    version: str
    role: str
    taken_at: float
    config: ModelConfig
    feature_names: list[str] | None
    feature_ts: np.ndarray  # (n,) receive times of the feature rows
    features: np.ndarray  # (n, d) finite float64 rows; (0, 0) when none yet
    score_ts: np.ndarray  # (m,)
    scores: np.ndarray  # (m,) float64
    #: Rows logged in the window (dropped ones included) and, per feature, how many of them
    #: held NaN/inf/null there; ``null_counts`` is None before any feature row arrived.
    null_rows: int = 0
    null_counts: np.ndarray | None = None
    #: Served rows with an entity inside the window's age (models with ``skew``).
    served: tuple[ServedRow, ...] = ()


@dataclass
class DriftOutcome:
    """What one evaluation produced: ``result`` is served as JSON, ``alarm_state`` persisted."""

    result: dict[str, Any]
    alarm_state: dict[str, Any] = field(default_factory=dict)
    is_drift: bool = False


@runtime_checkable
class DriftEvaluator(Protocol):
    """A drift detector family (Alibi Detect, the Apache-2.0 set, skew checks...)."""

    #: Stable identifier, used as the key of the persisted alarm state.
    name: str

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        """Assess one window. Raise only for bugs: the monitor logs and counts exceptions."""
        ...
