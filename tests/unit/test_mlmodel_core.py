"""Pure parts of the MLModel service: serving objects, monitor figures, what a tick needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operators.api.mlmodel import (
    AnalysisFigures,
    MLModelSpec,
    MLModelStatus,
    RolloutPhase,
    Serving,
    Traffic,
)
from operators.backends.monitor import parse_figures
from operators.backends.serving import (
    Owner,
    TrafficTarget,
    inference_service,
    isvc_ready,
    virtual_service,
)
from operators.mlmodel import reconcile as core
from operators.mlmodel.rollout import RolloutState

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
    assert predictor["logger"] == {"mode": "all", "url": "http://monitor/"}


def test_virtual_service_splits_by_weight_and_mirrors_the_shadow() -> None:
    canary = virtual_service(
        TrafficTarget(
            owner=OWNER,
            stable_version="1",
            candidate_version="2",
            traffic=Traffic(stable=90, candidate=10, mirror=0),
        )
    )
    http = canary["spec"]["http"][0]
    assert [(r["destination"]["host"], r["weight"]) for r in http["route"]] == [
        ("churn-v1-predictor.team.svc.cluster.local", 90),
        ("churn-v2-predictor.team.svc.cluster.local", 10),
    ]
    assert "mirror" not in http
    assert canary["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeloop"
    shadow = virtual_service(
        TrafficTarget(
            owner=OWNER,
            stable_version="1",
            candidate_version="2",
            traffic=Traffic(stable=100, candidate=0, mirror=50),
        )
    )
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
    status = core.with_state(
        MLModelStatus(), RolloutState(phase=RolloutPhase.PROMOTED, stable_version="2")
    )
    patch = core.status_patch(status)
    assert patch["candidateVersion"] is None and patch["stepIndex"] is None
    assert patch["stableVersion"] == "2" and patch["phase"] == "Promoted"


def test_pause_and_approve_annotations() -> None:
    assert core.paused({"kubeloop.io/pause": "true"})
    assert not core.paused({"kubeloop.io/pause": "false"})
    assert core.approved({"kubeloop.io/approve": "3"}, "3")
    assert not core.approved({"kubeloop.io/approve": "3"}, "4")
