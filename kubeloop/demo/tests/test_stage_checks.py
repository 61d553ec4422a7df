"""The stages' checks over status dicts: done, not yet, or failed with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kubeloop.demo import stages
from kubeloop.demo.config import DemoConfig
from kubeloop.demo.context import StageFailed
from kubeloop.demo.stages import _backfilled, _drift_detected, _registered, _serves
from kubeloop.sampledata.sample import sample_config


def _obj(kind: str, **status: Any) -> dict[str, Any]:
    return {"kind": kind, "status": status}


def _cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_backfilled_waits_then_passes_then_fails_with_the_message() -> None:
    running = _obj("FeatureView", conditions=[_cond("Backfilled", "Unknown", "BackfillRunning")])
    assert _backfilled((running, None, None)) is False
    done = _obj("FeatureView", conditions=[_cond("Backfilled", "True"), _cond("Ready", "True")])
    assert _backfilled((done, None, None)) is True
    failed = _obj(
        "FeatureView", conditions=[_cond("Backfilled", "False", "BackfillFailed", "SQL error")]
    )
    with pytest.raises(StageFailed, match="backfill failed: SQL error"):
        _backfilled((failed, None, None))


def test_registered_names_an_objective_not_met() -> None:
    assert _registered((None, _obj("Experiment", phase="Running"), None)) is False
    assert _registered((None, _obj("Experiment", registeredVersion="1"), None)) is True
    unmet = _obj(
        "Experiment",
        phase="Succeeded",
        conditions=[_cond("Registered", "False", "ObjectiveNotMet", "auc 0.59 < baseline 0.61")],
    )
    with pytest.raises(StageFailed, match="ObjectiveNotMet: auc 0.59 < baseline 0.61"):
        _registered((None, unmet, None))
    with pytest.raises(StageFailed, match="Experiment failed"):
        _registered((None, _obj("Experiment", phase="Failed", message="boom"), None))


def test_serves_needs_version_full_traffic_and_url() -> None:
    check = _serves("1")
    partial = _obj("MLModel", stableVersion="1", traffic={"stable": 100})
    assert check((None, None, partial)) is False
    serving = _obj("MLModel", stableVersion="1", traffic={"stable": 100}, url="http://r")
    assert check((None, None, serving)) is True
    assert _serves("2")((None, None, serving)) is False
    rolled_back = _obj("MLModel", phase="RolledBack", message="error rate 0.2")
    with pytest.raises(StageFailed, match="RolledBack: error rate 0.2"):
        check((None, None, rolled_back))


def test_drift_detected_reads_is_drift() -> None:
    assert _drift_detected((None, None, _obj("MLModel"))) is False
    assert _drift_detected((None, None, _obj("MLModel", drift={"isDrift": True}))) is True


def test_unshifted_traffic_must_be_checked_and_not_drift() -> None:
    check = stages._checked_without_drift
    assert check((None, None, _obj("MLModel"))) is False  # no check yet
    skipped = {"checkedAt": "2026-11-21T19:00:00Z", "pValues": {}}  # window still too small
    assert check((None, None, _obj("MLModel", drift=skipped))) is False
    calm = {"checkedAt": "2026-11-21T19:00:05Z", "pValues": {"price": 0.4}, "isDrift": False}
    assert check((None, None, _obj("MLModel", drift=calm))) is True
    alarm = {**calm, "pValues": {"price": 1e-9}, "isDrift": True}
    with pytest.raises(StageFailed, match="false alarm.*price=1e-09"):
        check((None, None, _obj("MLModel", drift=alarm)))


def test_missing_lineage_names_each_absent_link() -> None:
    complete = {
        "modelVersion": "2",
        "featureViewVersions": {"user-activity": "0ea9c0aee9bf"},
        "dataWindow": '{"train": {"end": "2026-11-21T00:00:00+00:00"}}',
        "mlflowRunId": "abc123",
        "driftReport": "http://127.0.0.1:1/v1/reports/7",
    }
    assert stages.missing_lineage(complete, "2") == []
    partial = {**complete, "driftReport": None, "featureViewVersions": {}}
    assert stages.missing_lineage(partial, "2") == ["featureViewVersions", "driftReport"]
    assert stages.missing_lineage(complete, "3")[0] == "modelVersion=3 (is 2)"


class _Traffic:
    def __init__(self, **stats: Any) -> None:
        from kubeloop.sampledata.traffic import TrafficStats

        self.stats = TrafficStats(**stats)

    def snapshot(self) -> Any:
        return self.stats


def test_labels_joined_waits_for_v1_labeled_rows_and_names_a_dead_feedback_path() -> None:
    quality = [{"version": "2", "labeled": 9}, {"version": "1", "labeled": 0}]
    traffic = _Traffic(feedback_accepted=40)
    check = stages._labels_joined(traffic, "1")  # type: ignore[arg-type]
    assert check((None, None, _obj("MLModel", quality=quality))) is False
    quality[1]["labeled"] = 120
    assert check((None, None, _obj("MLModel", quality=quality))) is True
    assert stages.labeled_rows(None, "1") == 0
    dead = _Traffic(feedback_failed=200, feedback_last_error="ConnectionError: refused")
    with pytest.raises(StageFailed, match="takes no labels: 200 failed.*ConnectionError"):
        stages._labels_joined(dead, "1")((None, None, None))  # type: ignore[arg-type]


def test_only_a_label_gate_rollback_of_v2_as_significantly_worse_counts_as_a_verdict() -> None:
    analysis = {"metric": "auc", "estimate": -0.06, "low": -0.12, "high": -0.002}
    rejected = {
        "phase": "RolledBack",
        "candidateVersion": "2",
        "message": "rolled back version 2: auc significantly worse",
        "analysis": analysis,
    }
    assert stages.label_gate_rejected(rejected, "2") == rejected["message"]
    # Another version, an interval reaching 0, or a rollback for errors: not the label gate's
    # verdict on v2, so the demo fails as before.
    assert stages.label_gate_rejected(rejected, "3") is None
    reaching_zero = {**rejected, "analysis": {**analysis, "high": 0.001}}
    assert stages.label_gate_rejected(reaching_zero, "2") is None
    for_errors = {**rejected, "analysis": {"errors": 7, "errorRate": 0.2}}
    assert stages.label_gate_rejected(for_errors, "2") is None
    promoted = {**rejected, "phase": "Promoted"}
    assert stages.label_gate_rejected(promoted, "2") is None


def test_retrain_decided_waits_registers_keeps_the_champion_or_fails() -> None:
    decide = stages.retrain_decided
    running = _obj("Experiment", round=2, phase="Running", registeredVersion="1")
    assert decide(running, "1", 1) is None
    v2 = _obj("Experiment", round=2, phase="Succeeded", registeredVersion="2", lastRetrain={})
    assert decide(v2, "1", 1) is None  # no retrain record: not the drift's round
    v2["status"]["lastRetrain"] = {"reason": "drift"}
    assert decide(v2, "1", 1) == {"registered": "2"}
    champion = {"version": "1", "passed": False, "improvement": -0.01}
    kept = _obj(
        "Experiment",
        round=2,
        phase="Succeeded",
        registeredVersion="1",
        best={"trial": "t-2-1", "metric": "auc", "value": 0.7, "vsChampion": champion},
        conditions=[_cond("Registered", "False", "ChampionNotBeaten", "not better than v1")],
    )
    refused = decide(kept, "1", 1)
    assert refused is not None and refused["refused"]["vsChampion"] == champion
    assert refused["refused"]["message"] == "not better than v1"
    # Round 1's refusal is not the retrain's; another reason fails the stage by name.
    assert decide(kept, "1", 2) is None
    kept["status"]["conditions"] = [_cond("Registered", "False", "BaselineNotBeaten", "b")]
    with pytest.raises(StageFailed, match="BaselineNotBeaten"):
        decide(kept, "1", 1)


def test_approval_waits_until_the_windows_after_the_shift_fit_before_a_minute() -> None:
    config = DemoConfig(state_dir=Path("/tmp/x"))  # 10s + 10s + 20s before the window end
    needed = 40
    for shift in (1_000_000_000.0, 1_000_000_017.5, 1_000_000_059.9):
        due = stages.approval_due(config, shift)
        window_end = due // 60 * 60  # the round's window end: the approval's minute
        assert window_end - needed >= shift
        assert due - shift < needed + 60 + 2 * stages.APPROVAL_MARGIN_S


def test_recent_production_lies_in_the_span_with_labels_of_its_events(tmp_path: Path) -> None:
    now = datetime(2026, 12, 6, 0, 30, tzinfo=UTC)
    world = sample_config(now, rows=2000)
    counts = stages.write_recent_production(world, tmp_path, now, 1000, timedelta(minutes=5))
    events = pd.read_parquet(tmp_path / "events")
    labels = pd.read_parquet(tmp_path / "labels")
    assert counts == {"events": 1000, "labels": len(labels)} and 0 < len(labels) < 1000
    stamps = events["event_timestamp"]
    assert stamps.min() >= pd.Timestamp(now - timedelta(minutes=5)) and stamps.max() < now
    assert (events["created_timestamp"] > stamps).all()
    assert set(labels["event_timestamp"]) <= set(stamps)


def test_the_feast_transformer_args_are_read_off_the_inference_service() -> None:
    from contracts.feature_serving import TRANSFORMER_MODULE
    from kubeloop.demo.feast import transformer_args

    assert transformer_args({"spec": {"predictor": {}}}) is None
    isvc = {
        "spec": {
            "transformer": {
                "containers": [{"command": ["python", "-m", TRANSFORMER_MODULE], "args": ["--x=1"]}]
            }
        }
    }
    assert transformer_args(isvc) == ["--x=1"]
    other = {"spec": {"transformer": {"containers": [{"command": ["other"], "args": ["a"]}]}}}
    assert transformer_args(other) is None
