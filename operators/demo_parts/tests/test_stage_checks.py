"""The stages' checks over status dicts: done, not yet, or failed with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from operators.demo_parts.context import StageFailed
from operators.demo_parts.stages import _backfilled, _drift_detected, _registered, _serves


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
