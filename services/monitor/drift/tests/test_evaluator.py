"""The adapter the monitor calls: fit once per version, count rejected windows, track alarms."""

from __future__ import annotations

import numpy as np
import pytest

from services.monitor.config import ModelConfig
from services.monitor.drift.evaluator import DetectorEvaluator, DriftSetup, next_alarm_state
from services.monitor.hooks import DriftEvaluator, WindowSnapshot

RNG = np.random.default_rng(0)
REFERENCE = RNG.standard_normal((2000, 3))


def snapshot(
    features: np.ndarray, taken_at: float = 100.0, names: list[str] | None = None
) -> WindowSnapshot:
    rows = features.shape[0]
    return WindowSnapshot(
        namespace="ns",
        model="churn",
        version="1",
        role="stable",
        taken_at=taken_at,
        config=ModelConfig(),
        feature_names=names,
        feature_ts=np.arange(rows, dtype=float),
        features=features,
        score_ts=np.arange(rows, dtype=float),
        scores=1 / (1 + np.exp(-features[:, 0])),
    )


def setups(detector: str = "ks", **extra: object):  # type: ignore[no-untyped-def]
    setup = DriftSetup(
        detector=detector,
        reference=REFERENCE,
        reference_id="runs:/abc/snapshot",
        feature_names=("a", "b", "c"),
        **extra,  # type: ignore[arg-type]
    )
    calls: list[tuple[str, str, str]] = []

    def provide(namespace: str, model: str, version: str) -> DriftSetup | None:
        calls.append((namespace, model, version))
        return setup if version == "1" else None

    return provide, calls


def test_is_a_monitor_drift_evaluator_and_tracks_alarm_transitions() -> None:
    provide, _ = setups()
    evaluator = DetectorEvaluator(provide, name="drift-ks")
    assert isinstance(evaluator, DriftEvaluator)

    quiet = evaluator.evaluate(snapshot(REFERENCE[:500]), {})
    shifted = REFERENCE[:500] + np.array([0.0, 1.0, 0.0])
    raised = evaluator.evaluate(snapshot(shifted, 200.0), quiet.alarm_state)
    still = evaluator.evaluate(snapshot(shifted, 300.0), raised.alarm_state)

    assert not quiet.is_drift and quiet.result["detector"] == "ks"
    assert raised.is_drift and raised.result["drifted_features"] == ["b"]
    assert raised.alarm_state["changed"] and raised.alarm_state["since"] == 200.0
    assert still.alarm_state == {**raised.alarm_state, "consecutive": 2, "changed": False}


def test_rejected_window_is_counted_and_leaves_the_alarm_alone() -> None:
    provide, _ = setups()
    evaluator = DetectorEvaluator(provide)
    bad = REFERENCE[:500].copy()
    bad[3, 2] = np.nan
    state = {"isDrift": True, "since": 50.0, "consecutive": 4, "transitions": 1}

    outcome = evaluator.evaluate(snapshot(bad), state)
    again = evaluator.evaluate(snapshot(bad), outcome.alarm_state)

    assert outcome.is_drift and outcome.result["rejected"] == "non-finite"
    assert again.alarm_state["rejected"] == {"non-finite": 2}
    assert again.alarm_state["consecutive"] == 4


def test_small_windows_and_unknown_versions_are_skipped() -> None:
    provide, _ = setups(min_window=100)
    evaluator = DetectorEvaluator(provide)

    small = evaluator.evaluate(snapshot(REFERENCE[:20]), {})
    other = evaluator.evaluate(
        WindowSnapshot(**{**snapshot(REFERENCE[:200]).__dict__, "version": "2"}), {}
    )

    assert "minWindow is 100" in small.result["skipped"] and not small.is_drift
    assert "no reference" in other.result["skipped"]


def test_features_are_matched_by_name_and_detector_fitted_once() -> None:
    provide, calls = setups()
    evaluator = DetectorEvaluator(provide)
    reordered = REFERENCE[:400, ::-1].copy()

    first = evaluator.evaluate(snapshot(reordered, names=["c", "b", "a"]), {})
    second = evaluator.evaluate(snapshot(reordered, names=["c", "b", "a"]), {})

    assert not first.is_drift and first.result == second.result
    assert len(evaluator._fitted) == 1 and len(calls) == 2


def test_bad_setup_is_reported_not_raised() -> None:
    provide, _ = setups(detector="nope")

    outcome = DetectorEvaluator(provide).evaluate(snapshot(REFERENCE[:400]), {})

    assert "unknown drift detector 'nope'" in outcome.result["error"]
    assert not outcome.is_drift


def test_prediction_drift_on_scores() -> None:
    scores = 1 / (1 + np.exp(-REFERENCE[:, 0]))
    setup = DriftSetup(
        detector="prediction", reference=scores, reference_id="s", feature_names=("score",)
    )
    evaluator = DetectorEvaluator(lambda *_: setup, name="prediction", source="scores")

    same = evaluator.evaluate(snapshot(REFERENCE[:500]), {})
    moved = evaluator.evaluate(snapshot(REFERENCE[:500] + 1.0), {})

    assert not same.is_drift and moved.is_drift


@pytest.mark.parametrize(
    ("previous", "is_drift", "expected"),
    [
        ({}, False, {"isDrift": False, "since": 5.0, "consecutive": 0, "transitions": 0}),
        ({}, True, {"isDrift": True, "since": 5.0, "consecutive": 1, "transitions": 1}),
        (
            {"isDrift": True, "since": 1.0, "consecutive": 3, "transitions": 1},
            False,
            {"isDrift": False, "since": 5.0, "consecutive": 0, "transitions": 2},
        ),
    ],
)
def test_next_alarm_state(previous: dict, is_drift: bool, expected: dict) -> None:
    state = next_alarm_state(previous, is_drift, 5.0)

    assert {k: state[k] for k in expected} == expected
