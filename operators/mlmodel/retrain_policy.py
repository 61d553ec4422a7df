"""Whether a drift alarm may request retraining now: cooldown, daily budget, approval.

Pure: the caller (the MLModel operator) passes the clock, the policy from
``spec.monitoring.retrain``, the times of past requests (``status.lastRetrain.history``),
whether a request is still outstanding on the Experiment, and the ``kubeloop.io/approve``
annotation with when it was given; :func:`decide_retrain` says what to do and why.

Storm control follows from the order of the checks: an outstanding request absorbs every
alarm until the Experiment picks it up; then no request within ``cooldown`` of the last one;
then at most ``maxPerDay`` requests in any rolling 24 hours; then, when approval is required,
only an approval given after the last request counts (one approval buys one retrain).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from operators.api.common import ANNOTATION_APPROVE, parse_duration
from operators.api.mlmodel import Retrain

DAY = timedelta(days=1)
#: ``kubeloop.io/approve`` values that approve a retrain (case-insensitive). An RFC 3339
#: timestamp also approves, given at that time.
APPROVE_VALUES = frozenset({"true", "yes", "1", "approved", "retrain"})


class RetrainAction(StrEnum):
    REQUEST = "request"
    WAIT_COOLDOWN = "wait-cooldown"
    WAIT_APPROVAL = "wait-approval"
    BUDGET_EXHAUSTED = "budget-exhausted"
    OUTSTANDING = "outstanding"


class RetrainPolicy(BaseModel):
    """``spec.monitoring.retrain`` in the units the decision needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cooldown_seconds: float = Field(ge=0)
    max_per_day: int = Field(ge=0)
    require_approval: bool = False

    @property
    def cooldown(self) -> timedelta:
        return timedelta(seconds=self.cooldown_seconds)

    @classmethod
    def from_spec(cls, retrain: Retrain) -> RetrainPolicy:
        return cls(
            cooldown_seconds=parse_duration(retrain.cooldown).total_seconds(),
            max_per_day=retrain.max_per_day,
            require_approval=retrain.require_approval,
        )


class Approval(BaseModel):
    """The ``kubeloop.io/approve`` annotation and when it was given (or first seen)."""

    model_config = ConfigDict(frozen=True)

    value: str
    given_at: AwareDatetime | None = None


class DriftAlarm(BaseModel):
    """Why retraining is wanted: carried into the request on the Experiment."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(min_length=1)
    report_url: str | None = None


class RetrainDecision(BaseModel):
    """What to do with one alarm; ``retry_at`` is when asking again could change the answer."""

    model_config = ConfigDict(frozen=True)

    action: RetrainAction
    reason: str
    alarm: DriftAlarm
    retry_at: AwareDatetime | None = None

    @property
    def should_request(self) -> bool:
        return self.action is RetrainAction.REQUEST


def decide_retrain(
    now: datetime,
    policy: RetrainPolicy,
    alarm: DriftAlarm,
    history: Sequence[datetime],
    outstanding: bool,
    approval: Approval | None = None,
) -> RetrainDecision:
    """Decide whether ``alarm`` may request a retrain at ``now``.

    ``history`` holds the times of earlier requests (any order; timezone-aware). A request
    that is decided here must be appended to the history by the caller.
    """
    _require_aware(now, "now")
    past = sorted(_require_aware(t, f"history[{i}]") for i, t in enumerate(history))
    last = past[-1] if past else None

    if outstanding:
        return _decision(
            RetrainAction.OUTSTANDING,
            alarm,
            "a retrain request is still outstanding on the Experiment",
        )
    if last is not None and now - last < policy.cooldown:
        ready = last + policy.cooldown
        return _decision(
            RetrainAction.WAIT_COOLDOWN,
            alarm,
            f"cooldown {_human(policy.cooldown)} since the last request at {last.isoformat()} "
            f"ends at {ready.isoformat()}",
            retry_at=ready,
        )
    budget = _budget_decision(now, policy, alarm, past)
    if budget is not None:
        return budget
    if policy.require_approval and not _approved(approval, last):
        return _decision(RetrainAction.WAIT_APPROVAL, alarm, _approval_reason(approval, last))
    return _decision(RetrainAction.REQUEST, alarm, f"drift alarm: {alarm.reason}")


def _budget_decision(
    now: datetime, policy: RetrainPolicy, alarm: DriftAlarm, past: list[datetime]
) -> RetrainDecision | None:
    """None while the rolling 24 h budget has room."""
    if policy.max_per_day == 0:
        return _decision(
            RetrainAction.BUDGET_EXHAUSTED, alarm, "maxPerDay is 0: automatic retraining is off"
        )
    in_window = [t for t in past if t > now - DAY]
    if len(in_window) < policy.max_per_day:
        return None
    # Room returns when enough of the window's requests are older than 24 h.
    frees_at = in_window[len(in_window) - policy.max_per_day] + DAY
    return _decision(
        RetrainAction.BUDGET_EXHAUSTED,
        alarm,
        f"{len(in_window)} requests in the last 24h reach maxPerDay={policy.max_per_day}; "
        f"the next is allowed at {frees_at.isoformat()}",
        retry_at=frees_at,
    )


def approval_time(approval: Approval) -> datetime | None:
    """When the approval was given: its own timestamp, else a timestamp written as the value."""
    if approval.given_at is not None:
        return approval.given_at
    try:
        parsed = datetime.fromisoformat(approval.value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _approves(approval: Approval) -> bool:
    return approval.value.strip().lower() in APPROVE_VALUES or (
        approval.given_at is None and approval_time(approval) is not None
    )


def _approved(approval: Approval | None, last_request: datetime | None) -> bool:
    if approval is None or not _approves(approval):
        return False
    if last_request is None:
        return True
    given = approval_time(approval)
    # An approval from before the last request was spent on that request.
    return given is not None and given > last_request


def _approval_reason(approval: Approval | None, last_request: datetime | None) -> str:
    wanted = f"annotate the MLModel with {ANNOTATION_APPROVE}=true (or =retrain)"
    if approval is None:
        return f"requireApproval is set: {wanted}"
    if not _approves(approval):
        return f"{ANNOTATION_APPROVE}={approval.value!r} does not approve: {wanted}"
    return (
        f"the approval predates the last request at "
        f"{last_request.isoformat() if last_request else '?'}: approve again"
    )


def _decision(
    action: RetrainAction, alarm: DriftAlarm, reason: str, retry_at: datetime | None = None
) -> RetrainDecision:
    return RetrainDecision(action=action, reason=reason, alarm=alarm, retry_at=retry_at)


def _require_aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"
