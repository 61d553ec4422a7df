"""Retrain trigger policy: decisions, reasons and storm control (issue 6 acceptance)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.api.mlmodel import Retrain
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
