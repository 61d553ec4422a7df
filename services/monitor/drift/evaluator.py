"""Adapter from the detectors to the monitor's ``DriftEvaluator`` hook (services/monitor/hooks.py).

The monitor hands over a snapshot of one version's window and the alarm state this evaluator
returned last time; the evaluator fits (once per version and setup) the detector named by the
MLModel, checks the window and returns the result plus the new alarm state. Windows the
detector rejects (NaN, wrong shape) are counted per reason in the alarm state and leave the
alarm as it was: a bad window never raises or clears an alarm.

Without an alarm rule each checked window decides (``next_alarm_state``); with one
(``DriftConfig.alarm``) the window is evidence for the rule in ``alarm.py``, and the outcome's
``is_drift`` is the alarm's verdict while the result keeps the window's own (``is_drift``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from contracts.drift import DEFAULT_MIN_WINDOW
from services.monitor.drift import alarm as alarms
from services.monitor.drift.base import DriftDetector
from services.monitor.drift.errors import DriftError, InvalidWindowError
from services.monitor.drift.registry import create_detector
from services.monitor.drift.schema import TableLike
from services.monitor.hooks import DriftOutcome, WindowSnapshot


@dataclass(frozen=True)
class DriftSetup:
    """What one model version is compared against, and how (from the MLModel and the
    training snapshot saved with the version)."""

    detector: str
    reference: TableLike = field(compare=False)
    reference_id: str  # changes when the reference does (e.g. the snapshot's URI or hash)
    p_value: float = 0.05
    feature_names: tuple[str, ...] | None = None
    categorical: frozenset[str] = frozenset()
    min_window: int = DEFAULT_MIN_WINDOW
    options: tuple[tuple[str, Any], ...] = ()
    # The alarm rule does not change the fitted detector, so it does not force a refit.
    alarm: alarms.AlarmRule | None = field(default=None, compare=False)


#: (namespace, model, version) -> the setup, or None while no reference is known.
SetupProvider = Callable[[str, str, str], DriftSetup | None]


def next_alarm_state(previous: Mapping[str, Any], is_drift: bool, at: float) -> dict[str, Any]:
    """Alarm bookkeeping: current state, since when, consecutive drifting windows, flips."""
    was = bool(previous.get("isDrift", False))
    changed = was != is_drift
    return {
        **previous,
        "isDrift": is_drift,
        "since": at if changed or "since" not in previous else previous["since"],
        "consecutive": (int(previous.get("consecutive", 0)) + 1)
        if is_drift and not changed
        else int(is_drift),
        "transitions": int(previous.get("transitions", 0)) + int(changed),
        "changed": changed,
    }


def count_rejection(previous: Mapping[str, Any], reason: str) -> dict[str, Any]:
    rejected = dict(previous.get("rejected", {}))
    rejected[reason] = int(rejected.get(reason, 0)) + 1
    return {**previous, "rejected": rejected, "changed": False}


class DetectorEvaluator:
    """A ``DriftEvaluator`` running one registry detector on features or on model scores."""

    def __init__(
        self,
        setups: SetupProvider,
        name: str = "drift",
        source: Literal["features", "scores"] = "features",
    ) -> None:
        self.name = name
        self.source = source
        self._setups = setups
        self._fitted: dict[tuple[str, str, str], tuple[DriftSetup, DriftDetector]] = {}

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        was_drift = bool(alarm_state.get("isDrift", False))
        setup = self._setups(snapshot.namespace, snapshot.model, snapshot.version)
        if setup is None:
            return unchanged_outcome(
                {"skipped": "no reference data for this version yet"}, alarm_state
            )
        window = self._window(snapshot)
        if len(window) < setup.min_window:
            message = f"window has {len(window)} rows; minWindow is {setup.min_window}"
            return unchanged_outcome({"skipped": message}, alarm_state)
        try:
            detector = self._detector(snapshot, setup)
        except DriftError as error:  # a bad setup is reported where people look, not raised
            return unchanged_outcome({"detector": setup.detector, "error": str(error)}, alarm_state)
        try:
            result = detector.check(window)
        except InvalidWindowError as error:
            state = count_rejection(alarm_state, error.reason)
            body = {"detector": setup.detector, "rejected": error.reason, "message": str(error)}
            return DriftOutcome(result=body, alarm_state=state, is_drift=was_drift)
        body = result.model_dump(mode="json")
        if setup.alarm is None:
            state = next_alarm_state(alarm_state, result.is_drift, snapshot.taken_at)
            return DriftOutcome(result=body, alarm_state=state, is_drift=result.is_drift)
        times = snapshot.score_ts if self.source == "scores" else snapshot.feature_ts
        window = alarms.WindowEvidence(
            p_value=alarms.window_p_value(body),
            failed=result.is_drift,
            first_row_at=float(times.min()) if times.size else None,
            last_row_at=float(times.max()) if times.size else None,
        )
        state = alarms.next_state(setup.alarm, alarm_state, window, snapshot.taken_at)
        return DriftOutcome(result=body, alarm_state=state, is_drift=bool(state.get("isDrift")))

    def _window(self, snapshot: WindowSnapshot) -> TableLike:
        if self.source == "scores":
            return snapshot.scores
        if snapshot.feature_names and len(snapshot.feature_names) == snapshot.features.shape[1]:
            return pd.DataFrame(snapshot.features, columns=list(snapshot.feature_names))
        return np.asarray(snapshot.features)

    def _detector(self, snapshot: WindowSnapshot, setup: DriftSetup) -> DriftDetector:
        key = (snapshot.namespace, snapshot.model, snapshot.version)
        cached = self._fitted.get(key)
        if cached is not None and cached[0] == setup:
            return cached[1]
        detector = create_detector(setup.detector, p_value=setup.p_value, **dict(setup.options))
        detector.fit(setup.reference, setup.feature_names, setup.categorical)
        self._fitted[key] = (setup, detector)
        return detector


def unchanged_outcome(result: dict[str, Any], alarm_state: Mapping[str, Any]) -> DriftOutcome:
    """An outcome that leaves the alarm as it was (skipped, misconfigured, not evaluable)."""
    return DriftOutcome(
        result=result,
        alarm_state={**alarm_state, "changed": False},
        is_drift=bool(alarm_state.get("isDrift", False)),
    )
