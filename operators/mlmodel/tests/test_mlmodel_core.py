"""Pure parts of the MLModel service: serving objects, monitor figures, what a tick needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.monitor_config import DriftConfig, ModelConfig
from operators.api.mlmodel import (
    AnalysisFigures,
    MLModelSpec,
    MLModelStatus,
    RetrainStatus,
    Rollout,
    RolloutPhase,
    Serving,
    Traffic,
)
from operators.backends.monitor import (
    VersionDrift,
    parse_drift,
    parse_figures,
)
from operators.backends.serving import (
    Owner,
    TrafficTarget,
    inference_service,
    isvc_ready,
    virtual_service,
)
from operators.mlmodel import drift as drifting
from operators.mlmodel import reconcile as core
from operators.mlmodel.rollout import Inputs, RolloutState, tick
from operators.status import merge_patch

OWNER = Owner(namespace="team", name="churn", uid="u-1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(interval: str = "1m") -> MLModelSpec:
    return MLModelSpec.model_validate(
        {
            "model": {"name": "churn", "version": "2"},
            "rollout": {"analysis": {"interval": interval}},
        }
    )


def test_inference_service_is_per_version_with_logger_and_owner() -> None:
    isvc = inference_service(OWNER, "3", "file:///a/model", Serving(), "http://monitor/")
    assert isvc["metadata"]["name"] == "churn-v3"
    assert isvc["metadata"]["labels"]["kubeloop.io/model-version"] == "3"
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"] == {
        "modelFormat": {"name": "mlflow"},
        "storageUri": "file:///a/model",
    }
    assert predictor["logger"] == {
        "mode": "all",
        "url": "http://monitor/",
        "metadataHeaders": ["X-Request-Id", "X-Kubeloop-Role"],
        "metadataAnnotations": ["kubeloop.io/mlmodel", "kubeloop.io/model-version"],
    }


def test_virtual_service_splits_by_weight_and_mirrors_the_shadow() -> None:
    def split(traffic: Traffic) -> dict:
        target = TrafficTarget(
            owner=OWNER, stable_version="1", candidate_version="2", traffic=traffic
        )
        return virtual_service(target)

    canary = split(Traffic(stable=90, candidate=10, mirror=0))
    http = canary["spec"]["http"][0]
    assert [(r["destination"]["host"], r["weight"]) for r in http["route"]] == [
        ("churn-v1-predictor.team.svc.cluster.local", 90),
        ("churn-v2-predictor.team.svc.cluster.local", 10),
    ]
    assert "mirror" not in http
    assert canary["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeloop"
    shadow = split(Traffic(stable=100, candidate=0, mirror=50))
    http = shadow["spec"]["http"][0]
    assert len(http["route"]) == 1
    assert http["mirror"]["host"] == "churn-v2-predictor.team.svc.cluster.local"
    assert http["mirrorPercentage"] == {"value": 50.0}


def test_readiness_needs_ready_condition_for_the_current_generation() -> None:
    ready = {"type": "Ready", "status": "True"}
    assert isvc_ready(
        {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [ready]}}
    )
    assert not isvc_ready(
        {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "conditions": [ready]}}
    )
    assert not isvc_ready(
        {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}}
    )
    assert not isvc_ready(None)


def test_readiness_accepts_a_status_observed_at_a_later_generation() -> None:
    """KServe's own client checks observedGeneration >= generation: a status written for a newer
    spec than the copy we read is not stale."""
    ready = {"type": "Ready", "status": "True"}
    assert isvc_ready(
        {"metadata": {"generation": 2}, "status": {"observedGeneration": 3, "conditions": [ready]}}
    )
    assert not isvc_ready({"metadata": {"generation": 2}, "status": {"conditions": [ready]}})


def test_monitor_figures_become_gate_inputs() -> None:
    body = {
        "versions": {
            "2": {
                "requests": 12, "unanswered": 2, "serverErrors": 1, "clientErrors": 3,
                "latencyMs": {"p99": 41.0}, "pairedRequests": 10, "disagreementRate": 0.2,
            }
        }
    }  # fmt: skip
    figures = parse_figures(body)
    two = figures.of("2")
    assert (two.requests, two.server_errors, two.client_errors, two.latency_p99_ms) == (
        10,
        1,
        3,
        41.0,
    )
    assert figures.paired["2"] == 10 and figures.disagreements["2"] == 2
    assert figures.of("9").requests == 0


def test_analysis_is_due_after_the_interval_and_windows_stay_open_when_inconclusive() -> None:
    state = RolloutState(phase=RolloutPhase.CANARY, stable_version="1", candidate_version="2",
                         step_index=0, phase_started_at=T0)  # fmt: skip
    status = MLModelStatus(analysis=AnalysisFigures(at=T0 + timedelta(seconds=30)))
    assert core.window_start(status, state) == T0 + timedelta(seconds=30)
    assert not core.analysis_due(spec(), status, state, "2", T0 + timedelta(seconds=60))
    assert core.analysis_due(spec(), status, state, "2", T0 + timedelta(seconds=90))
    # A new version is a transition: acted on at once.
    assert core.analysis_due(spec(), status, state, "3", T0 + timedelta(seconds=31))
    promoted = state.model_copy(update={"phase": RolloutPhase.PROMOTED, "candidate_version": None})
    assert not core.analysis_due(spec(), status, promoted, "1", T0 + timedelta(days=1))


def test_versions_needed_drop_a_rolled_back_candidate() -> None:
    rolled = RolloutState(phase=RolloutPhase.ROLLED_BACK, stable_version="1", candidate_version="3")
    assert core.versions_needed(rolled, "3") == {"1"}
    assert core.versions_needed(rolled, "4") == {"1", "4"}
    canary = rolled.model_copy(update={"phase": RolloutPhase.CANARY})
    assert core.versions_needed(canary, "3") == {"1", "3"}
    first = RolloutState(phase=RolloutPhase.PENDING)
    assert core.versions_needed(first, "1") == {"1"}


def test_status_patch_clears_a_finished_candidate() -> None:
    canary = RolloutState(
        phase=RolloutPhase.CANARY, stable_version="1", candidate_version="2", step_index=1
    )
    before = core.with_state(MLModelStatus(), canary)
    status = core.with_state(before, RolloutState(phase=RolloutPhase.PROMOTED, stable_version="2"))
    patch = merge_patch(before.to_k8s(), status.to_k8s())
    assert patch["candidateVersion"] is None and patch["stepIndex"] is None
    assert patch["stableVersion"] == "2" and patch["phase"] == "Promoted"


def test_pause_and_approve_annotations() -> None:
    assert core.paused({"kubeloop.io/pause": "true"})
    assert not core.paused({"kubeloop.io/pause": "false"})
    assert core.approved({"kubeloop.io/approve": "3"}, "3")
    assert not core.approved({"kubeloop.io/approve": "3"}, "4")


# --- drift, lineage -------------------------------------------------------------------------
def test_monitor_config_carries_drift_settings_and_references() -> None:
    config = ModelConfig(
        stable_version="2",
        candidate_version=None,
        shadow_version="3",
        score_tolerance=0.1,
        window_size=500,
        feature_names=["x1"],
        max_age_seconds=3600.0,
        drift=DriftConfig(detector="ks", p_value=0.01, features=["x1"], min_window=50),
        references={"2": "file:///a/run2/artifacts/reference/features.parquet"},
    )
    body = config.to_json()
    assert body["maxAgeSeconds"] == 3600.0 and body["windowSize"] == 500
    assert body["drift"] == {"detector": "ks", "pValue": 0.01, "features": ["x1"], "minWindow": 50}
    assert body["references"] == {"2": "file:///a/run2/artifacts/reference/features.parquet"}
    bare = ModelConfig(
        stable_version="2", candidate_version=None, shadow_version=None, score_tolerance=0.1
    )
    assert bare.to_json()["drift"] is None and "maxAgeSeconds" not in bare.to_json()


def test_monitor_drift_answer_is_parsed_with_absolute_report_urls() -> None:
    body = {
        "versions": {
            "2": {
                "detector": "ks",
                "isDrift": True,
                "pValues": {"x1": 0.0001, "x2": 0.4},
                "pValue": 0.0001,
                "threshold": 0.05,
                "window": 500,
                "checkedAt": T0.timestamp(),
                "reportUrl": "/v1/reports/abc",
                "liveReportUrl": "/v1/models/team/churn/drift/report",
            },
            "3": {"isDrift": None, "reportUrl": None, "liveReportUrl": "/v1/live/3"},
            "4": "not an object",
        }
    }
    checks = parse_drift("http://monitor:8080/", body)
    assert set(checks) == {"2", "3"}
    two = checks["2"]
    assert two.is_drift is True and two.p_values == {"x1": 0.0001, "x2": 0.4}
    assert two.checked_at == T0 and two.window == 500
    assert two.report_url == "http://monitor:8080/v1/reports/abc"
    assert checks["3"].is_drift is None
    assert checks["3"].report_url == "http://monitor:8080/v1/live/3"  # the live fallback


def _check(is_drift: bool | None, **kw: object) -> VersionDrift:
    values: dict[str, object] = {
        "version": "2",
        "detector": "ks",
        "is_drift": is_drift,
        "p_values": {"x1": 0.0001, "x2": 0.2, "x3": 0.01},
        "threshold": 0.05,
        "window": 500,
        "checked_at": T0,
        "report_url": "http://monitor/v1/reports/abc",
    }
    values.update(kw)
    return VersionDrift(**values)  # type: ignore[arg-type]


def test_alarm_names_the_drifted_features_lowest_p_first() -> None:
    reason = drifting.alarm_reason(_check(True))
    assert reason == "drift on version 2: x1 (p=0.0001), x3 (p=0.01) (ks < 0.05, window 500)"
    assert "x2" not in reason
    # A multivariate test has no per-feature p below the threshold: the overall p is named.
    overall = drifting.alarm_reason(_check(True, p_values={}, p_value=0.001, detector="mmd"))
    assert "p=0.001" in overall and "mmd" in overall


def _drift_condition(status: MLModelStatus) -> tuple[str, str]:
    found = next(c for c in status.conditions if c.type == "Drift")
    return str(found.status), str(found.reason)


def test_drift_condition_and_events_follow_changes_only() -> None:
    status = MLModelStatus(stable_version="2")
    status, events = drifting.with_drift(status, "2", None, 1)
    assert _drift_condition(status) == ("Unknown", "NoData") and events == []

    status, events = drifting.with_drift(status, "2", _check(True), 1)
    assert _drift_condition(status) == ("True", "DriftDetected")
    assert status.drift is not None and status.drift.is_drift and status.drift.version == "2"
    assert status.drift.report_url == "http://monitor/v1/reports/abc"
    [detected] = events
    assert detected.type == "Warning" and detected.reason == "DriftDetected"
    assert "x1 (p=0.0001)" in detected.message

    status, events = drifting.with_drift(status, "2", _check(True), 1)
    assert events == []  # still drifting: nothing new to say
    waiting = _check(None, message="window has 12 of 50 rows")
    status, events = drifting.with_drift(status, "2", waiting, 1)
    assert _drift_condition(status) == ("Unknown", "NoData") and events == []
    assert status.drift is not None and status.drift.is_drift  # the last verdict stays
    status, events = drifting.with_drift(status, "2", _check(False, p_values={"x1": 0.3}), 1)
    assert _drift_condition(status) == ("False", "NoDrift")
    assert [(e.type, e.reason) for e in events] == [("Normal", "DriftCleared")]


def test_lineage_comes_from_the_version_tags() -> None:
    tags = {
        "kubeloop.io/feature-view-versions": '{"churn-features": "v7", "events": 3}',
        "kubeloop.io/data-window": '{"start": "2026-01-01T00:00:00Z", "end": "2026-01-08"}',
        "kubeloop.io/experiment": "churn-exp",
        "kubeloop.io/trial": "churn-exp-r2-t1",
        "kubeloop.io/code-version": "abc123",
    }
    lineage = core.lineage_of("3", "run-1", tags, None)
    assert lineage.model_version == "3" and lineage.mlflow_run_id == "run-1"
    assert lineage.feature_view_versions == {"churn-features": "v7", "events": "3"}
    assert lineage.data_window == '{"end":"2026-01-08","start":"2026-01-01T00:00:00Z"}'
    assert (lineage.experiment, lineage.trial, lineage.code_version) == (
        "churn-exp",
        "churn-exp-r2-t1",
        "abc123",
    )
    assert lineage.drift_report is None


def test_lineage_drift_report_falls_back_to_the_retrain_request() -> None:
    request = RetrainStatus(version="2", report_url="http://monitor/v1/reports/r1")
    assert core.lineage_of("3", None, {}, request).drift_report == "http://monitor/v1/reports/r1"
    # The version that was serving when the retrain was asked for did not come out of it.
    assert core.lineage_of("2", None, {}, request).drift_report is None
    own = {"kubeloop.io/drift-report": "http://monitor/v1/reports/own"}
    assert core.lineage_of("3", None, own, request).drift_report.endswith("/own")  # type: ignore[union-attr]
    broken = {"kubeloop.io/feature-view-versions": "not json", "kubeloop.io/data-window": "7d"}
    lineage = core.lineage_of("3", None, broken, None)
    assert lineage.feature_view_versions == {} and lineage.data_window == "7d"


def test_status_patch_removes_lineage_fields_of_the_previous_version() -> None:
    tags = {"kubeloop.io/drift-report": "http://monitor/r", "kubeloop.io/trial": "t-1"}
    before = MLModelStatus(lineage=core.lineage_of("2", "run-2", tags, None))
    status = MLModelStatus(lineage=core.lineage_of("3", "run-3", {}, None))
    lineage = merge_patch(before.to_k8s(), status.to_k8s())["lineage"]
    assert lineage["modelVersion"] == "3" and lineage["driftReport"] is None
    assert lineage["trial"] is None


# --- a candidate that never becomes Ready ---------------------------------------------------
def _shadowing(rollout: Rollout) -> RolloutState:
    promoted = tick(
        RolloutState(), rollout, Inputs(now=T0, desired_version="1", candidate_ready=True)
    )
    started = tick(
        promoted.state, rollout, Inputs(now=T0, desired_version="2", candidate_ready=False)
    )
    assert started.state.phase == RolloutPhase.SHADOW
    return started.state


def test_a_candidate_never_ready_is_rolled_back_after_ready_timeout() -> None:
    rollout = Rollout.model_validate({"analysis": {"readyTimeout": "5m"}})
    state = _shadowing(rollout)
    early = tick(
        state,
        rollout,
        Inputs(now=T0 + timedelta(minutes=4), desired_version="2", candidate_ready=False),
    )
    assert early.state.phase == RolloutPhase.SHADOW and early.events == []
    assert early.state.message == "waiting for version 2 to be Ready"

    late = tick(
        state,
        rollout,
        Inputs(now=T0 + timedelta(minutes=5), desired_version="2", candidate_ready=False),
    )
    assert late.state.phase == RolloutPhase.ROLLED_BACK and late.state.stable_version == "1"
    assert late.state.traffic == Traffic(stable=100, candidate=0, mirror=0)
    assert "not Ready within readyTimeout 5m" in (late.state.message or "")
    [event] = late.events
    assert (event.type, event.reason) == ("Warning", "RolledBack")


def test_a_never_ready_candidate_without_auto_rollback_fails() -> None:
    rollout = Rollout.model_validate({"autoRollback": False})  # default readyTimeout 10m
    state = _shadowing(rollout)
    late = tick(
        state,
        rollout,
        Inputs(now=T0 + timedelta(minutes=10), desired_version="2", candidate_ready=False),
    )
    assert late.state.phase == RolloutPhase.FAILED
    assert [e.reason for e in late.events] == ["RolloutFailed"]
