"""Retrain trigger policy: decisions, reasons and storm control (issue 6 acceptance)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.api.common import ANNOTATION_APPROVE, ANNOTATION_RETRAIN
from operators.api.mlmodel import Retrain, RetrainStatus
from operators.experiment.reconcile import parse_retrain_request
from operators.mlmodel import drift as drifting
from operators.mlmodel.reconcile import approved
from operators.mlmodel.retrain_policy import (
    Approval,
    DriftAlarm,
    RetrainAction,
    RetrainPolicy,
    decide_retrain,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALARM = DriftAlarm(reason="ks p=0.001 on f3", report_url="http://monitor/report/1")
HOUR = timedelta(hours=1)


def policy(cooldown_h: float = 1, max_per_day: int = 3, approval: bool = False) -> RetrainPolicy:
    return RetrainPolicy(
        cooldown_seconds=cooldown_h * 3600, max_per_day=max_per_day, require_approval=approval
    )


def test_first_alarm_requests_and_carries_the_alarm() -> None:
    decision = decide_retrain(T0, policy(), ALARM, history=[], outstanding=False)

    assert decision.action is RetrainAction.REQUEST and decision.should_request
    assert decision.alarm.report_url == "http://monitor/report/1"
    assert "ks p=0.001 on f3" in decision.reason


def test_outstanding_request_absorbs_alarms() -> None:
    decision = decide_retrain(T0, policy(), ALARM, history=[T0 - 5 * HOUR], outstanding=True)

    assert decision.action is RetrainAction.OUTSTANDING
    assert "outstanding" in decision.reason


def test_cooldown_waits_and_says_until_when() -> None:
    last = T0 - timedelta(minutes=20)

    decision = decide_retrain(T0, policy(cooldown_h=1), ALARM, history=[last], outstanding=False)

    assert decision.action is RetrainAction.WAIT_COOLDOWN
    assert decision.retry_at == last + HOUR
    assert "1h" in decision.reason and (last + HOUR).isoformat() in decision.reason
    after = decide_retrain(last + HOUR, policy(cooldown_h=1), ALARM, [last], outstanding=False)
    assert after.action is RetrainAction.REQUEST


def test_budget_is_a_rolling_24h_window() -> None:
    history = [T0 - 23 * HOUR, T0 - 10 * HOUR, T0 - 2 * HOUR]

    exhausted = decide_retrain(T0, policy(max_per_day=3), ALARM, history, outstanding=False)

    assert exhausted.action is RetrainAction.BUDGET_EXHAUSTED
    assert exhausted.retry_at == T0 + HOUR  # when the 23 h old request turns 24 h old
    assert "maxPerDay=3" in exhausted.reason
    later = decide_retrain(T0 + HOUR, policy(max_per_day=3), ALARM, history, outstanding=False)
    assert later.action is RetrainAction.REQUEST


def test_max_per_day_zero_disables_retraining() -> None:
    decision = decide_retrain(T0, policy(max_per_day=0), ALARM, [], outstanding=False)

    assert decision.action is RetrainAction.BUDGET_EXHAUSTED and decision.retry_at is None
    assert "maxPerDay is 0" in decision.reason


def test_approval_required_and_spent_by_each_request() -> None:
    p = policy(approval=True)

    missing = decide_retrain(T0, p, ALARM, [], outstanding=False)
    refused = decide_retrain(T0, p, ALARM, [], False, Approval(value="no"))
    first = decide_retrain(T0, p, ALARM, [], False, Approval(value="true", given_at=T0 - HOUR))
    stale = decide_retrain(
        T0, p, ALARM, [T0 - 2 * HOUR], False, Approval(value="true", given_at=T0 - 3 * HOUR)
    )
    fresh = decide_retrain(
        T0, p, ALARM, [T0 - 2 * HOUR], False, Approval(value="YES", given_at=T0 - HOUR)
    )

    assert missing.action is RetrainAction.WAIT_APPROVAL
    assert "kubeloop.io/approve=true" in missing.reason
    assert refused.action is RetrainAction.WAIT_APPROVAL and "'no'" in refused.reason
    assert first.action is RetrainAction.REQUEST
    assert stale.action is RetrainAction.WAIT_APPROVAL and "predates" in stale.reason
    assert fresh.action is RetrainAction.REQUEST


def test_approval_value_may_be_the_timestamp() -> None:
    p = policy(approval=True)
    last = T0 - 2 * HOUR

    after = decide_retrain(T0, p, ALARM, [last], False, Approval(value=(T0 - HOUR).isoformat()))
    before = decide_retrain(T0, p, ALARM, [last], False, Approval(value="2025-12-31T00:00:00Z"))

    assert after.action is RetrainAction.REQUEST
    assert before.action is RetrainAction.WAIT_APPROVAL


def test_checks_apply_in_order_outstanding_cooldown_budget_approval() -> None:
    p = policy(cooldown_h=1, max_per_day=1, approval=True)
    recent = [T0 - timedelta(minutes=5)]

    assert decide_retrain(T0, p, ALARM, recent, True).action is RetrainAction.OUTSTANDING
    assert decide_retrain(T0, p, ALARM, recent, False).action is RetrainAction.WAIT_COOLDOWN
    assert decide_retrain(T0 + 2 * HOUR, p, ALARM, recent, False).action is (
        RetrainAction.BUDGET_EXHAUSTED
    )
    assert decide_retrain(T0 + 25 * HOUR, p, ALARM, recent, False).action is (
        RetrainAction.WAIT_APPROVAL
    )


def test_policy_from_the_mlmodel_spec() -> None:
    spec = Retrain(experiment="churn", cooldown="1h30m", max_per_day=2, require_approval=True)

    assert RetrainPolicy.from_spec(spec) == RetrainPolicy(
        cooldown_seconds=5400, max_per_day=2, require_approval=True
    )


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        decide_retrain(datetime(2026, 1, 1), policy(), ALARM, [], False)  # noqa: DTZ001
    with pytest.raises(ValueError, match=r"history\[1\]"):
        decide_retrain(T0, policy(), ALARM, [T0, datetime(2026, 1, 1)], False)  # noqa: DTZ001
    with pytest.raises(ValueError, match="cooldown_seconds"):
        RetrainPolicy(cooldown_seconds=-1, max_per_day=1)
    with pytest.raises(ValueError, match="reason"):
        DriftAlarm(reason="")


def test_flapping_signal_for_three_days_gives_one_request_per_cooldown_within_budget() -> None:
    """Drift flips every minute for 72 h; each retrain takes 10 minutes to be picked up."""
    p = policy(cooldown_h=6, max_per_day=3)
    requests = simulate(
        p,
        alarms=[T0 + timedelta(minutes=m) for m in range(0, 72 * 60, 2)],
        pickup=timedelta(minutes=10),
    )

    # Cooldown spaces them 6 h apart; the 4th in a day waits until the 1st is 24 h old.
    assert requests == [T0 + h * HOUR for h in (0, 6, 12, 24, 30, 36, 48, 54, 60)]


def simulate(
    p: RetrainPolicy,
    alarms: list[datetime],
    pickup: timedelta,
    approvals: list[datetime] | None = None,
) -> list[datetime]:
    """Feed alarms through the policy as the operator would; return the request times."""
    history: list[datetime] = []
    approval: Approval | None = None
    pending_approvals = sorted(approvals or [])
    for now in sorted(alarms):
        while pending_approvals and pending_approvals[0] <= now:
            approval = Approval(value="true", given_at=pending_approvals.pop(0))
        outstanding = bool(history) and now - history[-1] < pickup
        if decide_retrain(now, p, ALARM, history, outstanding, approval).should_request:
            history.append(now)
    return history


minutes = st.integers(min_value=0, max_value=4 * 24 * 60)


@settings(max_examples=100, deadline=None)
@given(
    cooldown_min=st.integers(min_value=0, max_value=12 * 60),
    max_per_day=st.integers(min_value=0, max_value=10),
    require_approval=st.booleans(),
    alarm_minutes=st.lists(minutes, min_size=1, max_size=200, unique=True),
    approval_minutes=st.lists(minutes, max_size=20, unique=True),
    pickup_min=st.integers(min_value=0, max_value=120),
)
def test_storm_control_properties(
    cooldown_min: int,
    max_per_day: int,
    require_approval: bool,
    alarm_minutes: list[int],
    approval_minutes: list[int],
    pickup_min: int,
) -> None:
    p = RetrainPolicy(
        cooldown_seconds=cooldown_min * 60,
        max_per_day=max_per_day,
        require_approval=require_approval,
    )
    approvals = [T0 + timedelta(minutes=m) for m in approval_minutes]
    pickup = timedelta(minutes=pickup_min)

    requests = simulate(p, [T0 + timedelta(minutes=m) for m in alarm_minutes], pickup, approvals)

    for earlier, later in zip(requests, requests[1:], strict=False):
        assert later - earlier >= p.cooldown, "two requests within one cooldown"
        assert later - earlier >= pickup, "a request while one was outstanding"
    for end in requests:  # the busiest 24 h window ends at a request
        assert sum(end - timedelta(days=1) < t <= end for t in requests) <= max_per_day
    if require_approval:
        previous = None
        for request in requests:
            assert any((previous is None or a > previous) and a <= request for a in approvals), (
                f"request at {request} had no approval given after {previous}"
            )
            previous = request


# --- the operator's side: outstanding requests, the annotation, approval, the record --------
def _experiment(value: str | None, request_id: str | None, phase: str | None) -> dict[str, Any]:
    annotations = {ANNOTATION_RETRAIN: value} if value is not None else {}
    status: dict[str, Any] = {}
    if request_id is not None:
        status["lastRetrain"] = {"requestId": request_id}
    if phase is not None:
        status["phase"] = phase
    return {"metadata": {"name": "churn", "annotations": annotations}, "status": status}


def test_a_request_is_outstanding_until_the_experiment_finishes_its_round() -> None:
    value = '{"reason":"drift"}'
    handled = parse_retrain_request(value)
    assert handled is not None

    assert not drifting.retrain_outstanding(_experiment(None, None, "Succeeded"))
    assert drifting.retrain_outstanding(_experiment(value, None, None))  # not picked up
    assert drifting.retrain_outstanding(_experiment(value, "0123456789abcdef", "Succeeded"))
    assert drifting.retrain_outstanding(_experiment(value, handled.request_id, "Running"))
    assert not drifting.retrain_outstanding(_experiment(value, handled.request_id, "Succeeded"))
    assert not drifting.retrain_outstanding(_experiment(value, handled.request_id, "Failed"))


def test_the_annotation_is_json_the_experiment_operator_reads() -> None:
    value = drifting.retrain_annotation(ALARM, T0, "team", "churn", "3")
    assert json.loads(value) == {
        "reason": "ks p=0.001 on f3",
        "reportUrl": "http://monitor/report/1",
        "requestedAt": "2026-01-01T00:00:00Z",
        "requestedBy": "MLModel team/churn",
        "version": "3",
    }
    parsed = parse_retrain_request(value)
    assert parsed is not None
    assert parsed.reason == ALARM.reason and parsed.report_url == ALARM.report_url
    assert parsed.requested_at == T0


@pytest.mark.parametrize(
    ("value", "approves_retrain", "approves_candidate_3"),
    [
        ("retrain", True, False),
        ("2026-01-01T02:00:00Z", True, False),
        ("true", True, True),
        ("3", False, True),
        ("4", False, False),
        ("nope", False, False),
    ],
)
def test_the_approve_annotation_is_disambiguated(
    value: str, approves_retrain: bool, approves_candidate_3: bool
) -> None:
    annotations = {ANNOTATION_APPROVE: value}
    approval, seen = drifting.retrain_approval(annotations, None, T0 + HOUR)
    assert seen is not None and seen.value == value and seen.at == T0 + HOUR
    decision = decide_retrain(
        T0 + 3 * HOUR, policy(approval=True), ALARM, [T0], outstanding=False, approval=approval
    )
    assert decision.should_request is approves_retrain, decision.reason
    assert approved(annotations, "3") is approves_candidate_3


def test_approval_is_given_when_first_seen_and_spent_by_a_request() -> None:
    annotations = {ANNOTATION_APPROVE: "retrain"}
    _, seen = drifting.retrain_approval(annotations, None, T0)
    # Seen again later: the value has not changed, so it was still given at T0.
    approval, again = drifting.retrain_approval(annotations, seen, T0 + 5 * HOUR)
    assert again == seen and approval is not None and approval.given_at == T0
    spent = decide_retrain(
        T0 + 5 * HOUR, policy(approval=True), ALARM, [T0 + HOUR], False, approval
    )
    assert spent.action is RetrainAction.WAIT_APPROVAL and "approve again" in spent.reason
    # A new value is a new approval.
    fresh, _ = drifting.retrain_approval({ANNOTATION_APPROVE: "true"}, seen, T0 + 5 * HOUR)
    assert decide_retrain(
        T0 + 5 * HOUR, policy(approval=True), ALARM, [T0 + HOUR], False, fresh
    ).should_request
    assert drifting.retrain_approval({}, seen, T0) == (None, None)


def test_a_request_is_recorded_with_history_and_one_event() -> None:
    request = decide_retrain(T0, policy(), ALARM, history=[], outstanding=False)
    old = T0 - timedelta(days=3)
    record, events = drifting.record_decision(
        RetrainStatus(history=[old, T0 - 2 * HOUR]), request, T0, "3", timedelta(hours=6)
    )
    assert record.decision == "request" and record.requested_at == T0 and record.version == "3"
    assert record.history == [T0 - 2 * HOUR, T0]  # the 3-day-old request no longer matters
    assert record.reason == ALARM.reason and record.report_url == ALARM.report_url
    assert [(e.type, e.reason) for e in events] == [("Normal", "RetrainRequested")]

    waiting = decide_retrain(T0 + HOUR / 2, policy(), ALARM, record.history, outstanding=True)
    record, events = drifting.record_decision(record, waiting, T0 + HOUR / 2, "3", HOUR)
    assert record.decision is not None and record.decision.startswith("outstanding: ")
    assert record.requested_at == T0 and [e.reason for e in events] == ["RetrainDeferred"]
    record, events = drifting.record_decision(record, waiting, T0 + HOUR, "3", HOUR)
    assert events == []  # same decision again: no new event


def test_a_missing_experiment_is_warned_about_once() -> None:
    record, events = drifting.record_missing_experiment(None, "team", "churn-exp")
    assert record.decision == "experiment-missing: Experiment team/churn-exp not found"
    assert [(e.type, e.reason) for e in events] == [("Warning", "RetrainExperimentMissing")]
    _, again = drifting.record_missing_experiment(record, "team", "churn-exp")
    assert again == []
