"""The monitor's built-in drift checks for every MLModel version, driven by its pushed config.

Three evaluators per version (``ModelConfig.drift`` set):

* ``feature``: the detector named in ``drift.detector`` on the feature window against the
  version's training reference (``references[version]``). Only this one decides whether
  the version drifts.
* ``prediction``: KS on the model's scores against the version's *score baseline*: its
  scores on the validation window, saved at training time (``components/evaluate`` logs them
  to the run, the operator names them in ``scoreReferences``). Only when a version has none
  (registered before they were saved, or unreadable) is the baseline its first full window of
  served scores (``windowSize`` scores inside ``maxAgeSeconds``), captured once and persisted;
  the result says which (``baseline``), since a first window served after a shift hides it.
* ``nullRate``: per feature, the fraction of logged rows where it was NaN/inf/null (those
  rows are dropped from the feature window at ingest but counted per feature) against the
  reference's null fraction plus a tolerance.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from contracts.drift import SCORE_BASELINE_FIRST_WINDOW, SCORE_BASELINE_VALIDATION
from contracts.mlflow_tags import SCORE_REFERENCE_COLUMN
from contracts.monitor_config import DriftConfig
from services.monitor.drift.alarm import AlarmRule
from services.monitor.drift.evaluator import (
    DetectorEvaluator,
    DriftSetup,
    next_alarm_state,
    unchanged_outcome,
)
from services.monitor.drift.references import ReferenceCache, ReferenceLoadError
from services.monitor.drift.result import NullRateResult
from services.monitor.drift.skew import OfflineCache, SkewEvaluator
from services.monitor.hooks import (
    FEATURE,
    NULL_RATE,
    PREDICTION,
    DriftEvaluator,
    DriftOutcome,
    WindowSnapshot,
)

BUILTIN = (FEATURE, PREDICTION, NULL_RATE)
NULL_RATE_TOLERANCE = 0.05

VersionKey = tuple[str, str, str]  # (namespace, model, version)


@dataclass(frozen=True)
class ScoreBaseline:
    captured_at: float
    scores: np.ndarray


def reference_uri(snapshot: WindowSnapshot) -> str | None:
    return snapshot.config.references.get(snapshot.version)


def feature_setup(
    config: DriftConfig, reference: pd.DataFrame, uri: str, interval_s: float = 30.0
) -> DriftSetup:
    return DriftSetup(
        detector=config.detector,
        reference=reference,
        reference_id=uri,
        p_value=config.p_value,
        feature_names=tuple(config.features) or None,  # None: every reference column
        min_window=config.min_window,
        alarm=AlarmRule.of(config.alarm, interval_s),
    )


def checked_features(config: DriftConfig, reference: pd.DataFrame) -> list[str]:
    return list(config.features) or [str(c) for c in reference.columns]


class ModelDriftSuite:
    """Owns the reference cache and the score baselines the built-in evaluators share."""

    def __init__(self, references: ReferenceCache, interval_s: float = 30.0) -> None:
        self.references = references
        # The monitor's drift interval: an alarm's budget in time becomes one in windows.
        self.interval_s = interval_s
        self.baselines: dict[VersionKey, ScoreBaseline] = {}
        self._captured: list[tuple[VersionKey, ScoreBaseline]] = []
        self._lock = threading.Lock()
        self.evaluators: list[DriftEvaluator] = [
            FeatureDriftEvaluator(self),
            PredictionDriftEvaluator(self),
            NullRateEvaluator(self),
        ]
        # Runs for models whose config has ``skew`` (with or without ``drift``).
        self.skew = SkewEvaluator(OfflineCache(references.tracking_uri))

    def reference(self, snapshot: WindowSnapshot) -> tuple[pd.DataFrame | None, str | None]:
        """(reference, None) or (None, why there is none) for the snapshot's version."""
        uri = reference_uri(snapshot)
        if uri is None:
            return None, f"no reference for version {snapshot.version!r} in config.references"
        try:
            return self.references.load(uri), None
        except ReferenceLoadError as error:
            return None, str(error)

    def capture(self, key: VersionKey, baseline: ScoreBaseline) -> None:
        with self._lock:
            self.baselines[key] = baseline
            self._captured.append((key, baseline))

    def drain_captured(self) -> list[tuple[VersionKey, ScoreBaseline]]:
        """Baselines captured since the last call (the service persists them)."""
        with self._lock:
            captured, self._captured = self._captured, []
        return captured


def _message_outcome(
    detector: str, message: str, alarm_state: Mapping[str, Any], key: str = "skipped"
) -> DriftOutcome:
    return unchanged_outcome({"detector": detector, key: message}, alarm_state)


class FeatureDriftEvaluator:
    """The configured detector on the feature window vs the version's training reference."""

    name = FEATURE

    def __init__(self, suite: ModelDriftSuite) -> None:
        self._suite = suite
        self._setup: DriftSetup | None = None
        # Fits once per version and reference; the provider hands over the setup resolved
        # just before (evaluations run on the single drift thread).
        self._detectors = DetectorEvaluator(lambda *_: self._setup, name=FEATURE)

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        config = snapshot.config.drift
        if config is None:
            return _message_outcome("", "no drift configured", alarm_state)
        reference, problem = self._suite.reference(snapshot)
        if reference is None:
            return _message_outcome(config.detector, problem or "", alarm_state, key="error")
        uri = reference_uri(snapshot) or ""
        self._setup = feature_setup(config, reference, uri, self._suite.interval_s)
        return self._detectors.evaluate(snapshot, alarm_state)


class PredictionDriftEvaluator:
    """KS on served scores against the version's validation scores (else its first window)."""

    name = PREDICTION

    def __init__(self, suite: ModelDriftSuite) -> None:
        self._suite = suite
        self._setup: DriftSetup | None = None
        self._detectors = DetectorEvaluator(
            lambda *_: self._setup, name=PREDICTION, source="scores"
        )

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        config = snapshot.config.drift
        if config is None:
            return _message_outcome(PREDICTION, "no drift configured", alarm_state)
        key = (snapshot.namespace, snapshot.model, snapshot.version)
        scores, reference_id, problem = self._validation_scores(snapshot)
        origin = SCORE_BASELINE_VALIDATION
        if scores is None:
            origin = SCORE_BASELINE_FIRST_WINDOW
            baseline = self._suite.baselines.get(key)
            if baseline is None:
                return self._maybe_capture(key, snapshot, alarm_state, problem)
            scores, reference_id = baseline.scores, f"baseline@{baseline.captured_at}"
        self._setup = DriftSetup(
            detector=PREDICTION,
            reference=scores,
            reference_id=reference_id,
            p_value=config.p_value,
            feature_names=("score",),
            min_window=config.min_window,
            alarm=AlarmRule.of(config.alarm, self._suite.interval_s),
        )
        outcome = self._detectors.evaluate(snapshot, alarm_state)
        outcome.result = {**outcome.result, "baseline": origin, "baselineNote": problem}
        return outcome

    def _validation_scores(
        self, snapshot: WindowSnapshot
    ) -> tuple[np.ndarray | None, str, str | None]:
        """(scores, their URI, None), or (None, "", why the first served window is used)."""
        uri = snapshot.config.score_references.get(snapshot.version)
        if uri is None:
            return None, "", "no validation scores saved with this version"
        try:
            frame = self._suite.references.load(uri)
        except ReferenceLoadError as error:
            return None, "", f"validation scores unavailable: {error}"
        if SCORE_REFERENCE_COLUMN not in frame:
            return None, "", f"validation scores {uri!r} have no {SCORE_REFERENCE_COLUMN!r}"
        column = pd.to_numeric(frame[SCORE_REFERENCE_COLUMN], errors="coerce")
        scores = column.to_numpy(dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if scores.size == 0:
            return None, "", f"validation scores {uri!r} hold no finite score"
        return scores, uri, None

    def _maybe_capture(
        self,
        key: VersionKey,
        snapshot: WindowSnapshot,
        alarm_state: Mapping[str, Any],
        why: str | None,
    ) -> DriftOutcome:
        have, full = int(snapshot.scores.size), snapshot.config.window_size
        flag = {"baseline": SCORE_BASELINE_FIRST_WINDOW, "baselineNote": why}
        if have < full:
            message = f"waiting for the first full window of scores ({have}/{full})"
            outcome = _message_outcome(PREDICTION, message, alarm_state)
        else:
            self._suite.capture(key, ScoreBaseline(snapshot.taken_at, snapshot.scores.copy()))
            message = f"score baseline captured ({have} scores); compared from the next check"
            outcome = _message_outcome(PREDICTION, message, alarm_state)
        outcome.result = {**outcome.result, **flag}
        return outcome


class NullRateEvaluator:
    """Per-feature null fraction of the logged rows vs the reference's, plus a tolerance."""

    name = NULL_RATE

    def __init__(self, suite: ModelDriftSuite, tolerance: float = NULL_RATE_TOLERANCE) -> None:
        self._suite = suite
        self.tolerance = tolerance

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        config = snapshot.config.drift
        if config is None:
            return _message_outcome(NULL_RATE, "no drift configured", alarm_state)
        if snapshot.null_counts is None or snapshot.null_rows < config.min_window:
            message = f"window has {snapshot.null_rows} rows; minWindow is {config.min_window}"
            return _message_outcome(NULL_RATE, message, alarm_state)
        reference, problem = self._suite.reference(snapshot)
        if reference is None:
            return _message_outcome(NULL_RATE, problem or "", alarm_state, key="error")
        window_names = snapshot.feature_names or []
        if len(window_names) != snapshot.null_counts.size:
            message = "the window's features have no names to match the reference"
            return _message_outcome(NULL_RATE, message, alarm_state)
        counts = dict(zip(window_names, snapshot.null_counts.tolist(), strict=True))
        names = [n for n in checked_features(config, reference) if n in counts]
        reference_rates = {
            n: float(reference[n].isna().mean()) if n in reference else 0.0 for n in names
        }
        window_rates = {n: counts[n] / snapshot.null_rows for n in names}
        exceeded = [n for n in names if window_rates[n] > reference_rates[n] + self.tolerance]
        result = NullRateResult(
            reference_rates=reference_rates,
            window_rates=window_rates,
            tolerance=self.tolerance,
            exceeded=exceeded,
            is_alarm=bool(exceeded),
            window_size=snapshot.null_rows,
        )
        state = next_alarm_state(alarm_state, result.is_alarm, snapshot.taken_at)
        return DriftOutcome(
            result={"detector": NULL_RATE, **result.model_dump(mode="json")},
            alarm_state=state,
            is_drift=result.is_alarm,
        )
