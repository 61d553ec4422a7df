"""Pure core of the Experiment operator: rounds, retrain requests, trial metrics, lineage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from components.build_training_set.split import parse_split, resolve_windows, split_by_time
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset
from operators.api.experiment import ExperimentPhase, ExperimentSpec, ExperimentStatus, TrialState
from operators.experiment import reconcile as exp

NOW = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)


def exp_spec(**split: str) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "features": [{"featureView": "fv"}],
            "labels": {
                "source": "l",
                "timestampField": "t",
                "labelField": "y",
                "entityKeys": ["k"],
            },
            "split": split or {"validation": "1d", "test": "1d"},
            "search": {"parameters": [{"name": "lr", "values": [0.1, 0.2]}], "maxTrials": 2},
            "register": {"model": "m"},
        }
    )


def test_retrain_request_json_or_text_and_once_per_value() -> None:
    value = json.dumps(
        {"reason": "drift", "reportUrl": "http://r/1", "requestedAt": "2026-03-01T10:00:00Z"}
    )
    request = exp.parse_retrain_request(value)
    assert request is not None and request.reason == "drift" and request.report_url == "http://r/1"
    assert request.requested_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    text = exp.parse_retrain_request("labels shifted")
    assert text is not None and text.reason == "labels shifted" and text.report_url is None
    assert exp.parse_retrain_request("  ") is None

    spec = exp_spec()
    status = exp.start_round("e", spec, ExperimentStatus(), 1, NOW)
    assert status.round == 1 and [t.name for t in status.trials] == ["e-r1-t0", "e-r1-t1"]
    assert exp.is_new_request(status, request)
    status = exp.start_round("e", spec, status, 1, NOW, request)
    assert status.round == 2 and status.last_retrain is not None
    assert status.last_retrain.round == 2 and status.data_window is not None
    assert status.data_window.end == datetime(2026, 3, 1, 12, 34, tzinfo=UTC)
    assert not exp.is_new_request(status, exp.parse_retrain_request(value))
    assert exp.is_new_request(status, text)
    failed = exp.fail_unlaunched(status, "labels: bad")
    assert {t.state for t in failed.trials} == {TrialState.FAILED}


def test_trial_metrics_from_the_evaluation_report() -> None:
    report = {
        "windows": {"validation": {"auc": 0.8, "rows": 10}, "test": {"auc": 0.75}},
        "objective": {"value": 0.8, "baseline_value": 0.6},
        "feature_columns": ["v__x"],
    }
    metrics, columns = exp.trial_metrics({"metrics_json": json.dumps(report)}, "auc")
    assert metrics == {
        "validation_auc": 0.8,
        "validation_rows": 10.0,
        "test_auc": 0.75,
        "auc": 0.8,
        "baseline_auc": 0.6,
    }
    assert columns == ["v__x"]


def finished(status: ExperimentStatus) -> ExperimentStatus:
    return status.model_copy(update={"phase": ExperimentPhase.SUCCEEDED})


def test_spec_edit_after_a_finished_round_starts_one_new_round() -> None:
    spec = exp_spec()
    assert exp.needs_new_round(ExperimentStatus(), 1, None)
    status = exp.start_round("e", spec, ExperimentStatus(), 1, NOW)
    assert status.round == 1 and status.round_generation == 1
    # A running round is not interrupted by an edit; it finishes first.
    assert not exp.needs_new_round(status, 2, None)
    done = finished(status)
    # Status-only changes do not bump metadata.generation: nothing new.
    assert not exp.needs_new_round(done, 1, None)
    assert exp.needs_new_round(done, 2, None)
    edited = exp_spec(validation="2d", test="1d")
    status = exp.start_round("e", edited, done, 2, NOW)
    assert status.round == 2 and status.round_generation == 2
    assert [t.name for t in status.trials] == ["e-r2-t0", "e-r2-t1"]
    assert status.data_window is None and status.phase == ExperimentPhase.PENDING
    assert not exp.needs_new_round(finished(status), 2, None)
    # Written before roundGeneration existed: an upgrade does not retrain by itself.
    legacy = done.model_copy(update={"round_generation": None})
    assert not exp.needs_new_round(legacy, 5, None)


def test_retrain_lineage_only_for_the_retrain_round_and_window_from_outputs() -> None:
    value = json.dumps(
        {"reason": "drift", "reportUrl": "http://r/1", "requestedAt": "2026-03-01T10:00:00Z"}
    )
    spec = exp_spec()
    first = exp.start_round("e", spec, ExperimentStatus(), 1, NOW)
    assert exp.retrain_lineage(first) == {}
    retrain = exp.start_round("e", spec, finished(first), 1, NOW, exp.parse_retrain_request(value))
    assert exp.retrain_lineage(retrain) == {
        "retrain_reason": "drift",
        "drift_report": "http://r/1",
        "retrain_requested_at": "2026-03-01T10:00:00+00:00",
    }
    assert exp.trial_split(spec, retrain)["end"] == "2026-03-01T12:34:00+00:00"
    # A later spec-edit round is not the retrain's round.
    edited = exp.start_round("e", spec, finished(retrain), 2, NOW)
    assert exp.retrain_lineage(edited) == {} and "end" not in exp.trial_split(spec, edited)

    window = {"start": None, "end": "2026-03-01T12:34:00+00:00", "test": {"end": "x"}}
    assert exp.lineage_window({"data_window": window}, retrain) == window
    assert exp.lineage_window({"data_window": json.dumps(window)}, retrain) == window
    # No outputs (a backend that reports none): the round's own window, or nothing.
    assert exp.lineage_window({}, retrain) == {"end": "2026-03-01T12:34:00Z"}
    assert exp.lineage_window({}, first) == {}


def test_retrain_round_ending_now_finds_labels_in_every_split(tmp_path: Path) -> None:
    """The demo's data (history ending at the current hour) split as the training pipeline
    splits a retrain round's window: train, validation and test all hold labels."""
    now = datetime.now(UTC)
    days = 8
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    write_dataset(GeneratorConfig(rows=4000, seed=3, start=start, days=days), tmp_path)
    labels = pd.read_parquet(tmp_path / "labels")
    spec = exp_spec(validation="2d", test="2d")
    request = exp.parse_retrain_request(json.dumps({"reason": "drift"}))
    status = exp.start_round(
        "e", spec, finished(exp.start_round("e", spec, ExperimentStatus(), 1, now)), 1, now, request
    )
    assert status.data_window is not None and status.data_window.end <= now
    windows = resolve_windows(
        parse_split(exp.trial_split(spec, status)), labels["event_timestamp"].max()
    )
    assert windows.end == status.data_window.end
    parts = split_by_time(labels, "event_timestamp", windows)
    rows = {name: len(part) for name, part in parts.items()}
    assert all(count > 0 for count in rows.values()), rows
    assert set(parts["test"]["label"]) == {0, 1}, "the test window needs both classes for AUC"


def test_freshness_gate_only_for_windowed_rounds_before_any_launch() -> None:
    spec = exp_spec()
    first = exp.start_round("e", spec, ExperimentStatus(), 1, NOW)
    lag = exp.ViewFreshness("fv", True, NOW - timedelta(hours=1), None, False)
    assert exp.lagging_views(first, [lag]) == []  # round 1: no window end to be fresh up to
    request = exp.parse_retrain_request("drift")
    retrain = exp.start_round("e", spec, first, 1, NOW, request)
    (why,) = exp.lagging_views(retrain, [lag])
    assert why.startswith("FeatureView fv is fresh up to 2026-03-01T11:34:56+00:00")
    assert "waiting for its scheduled backfill" in why
    failed = exp.ViewFreshness("fv", True, None, None, True)
    assert "fresh up to nowhere yet" in exp.lagging_views(retrain, [failed])[0]
    assert "its last backfill failed" in exp.lagging_views(retrain, [failed])[0]
    caught_up = exp.ViewFreshness("fv", True, NOW.replace(second=0), None, False)
    snapshot = exp.ViewFreshness("fv", False, NOW - timedelta(days=9), None, False)
    assert exp.lagging_views(retrain, [caught_up, snapshot]) == []
    launched = exp.replace_trial(
        retrain, retrain.trials[0].model_copy(update={"state": TrialState.RUNNING})
    )
    assert exp.lagging_views(launched, [lag]) == []
    waiting = exp.waiting_for_features(retrain, [why], 3)
    assert waiting.phase == ExperimentPhase.PENDING
    trained = next(c for c in waiting.conditions if c.type == "Trained")
    assert (trained.status, trained.reason, trained.observed_generation) == (
        "False",
        "WaitingForFeatures",
        3,
    )
    assert trained.message == f"round 2: {why}"


def test_trial_split_carries_the_sliding_window_and_weighting() -> None:
    spec = exp_spec(validation="1d", test="1d", trainWindow="7d", recencyHalfLife="2d")
    split = exp.trial_split(spec, ExperimentStatus())
    assert split == {"validation": "1d", "test": "1d", "trainWindow": "7d", "recencyHalfLife": "2d"}
    assert parse_split(split).train_window == timedelta(days=7)
