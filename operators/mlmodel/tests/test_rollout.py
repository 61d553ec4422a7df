"""Walk the rollout state machine tick by tick (pure: no API server, no clock)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from operators.api.mlmodel import Rollout, RolloutPhase
from operators.mlmodel.analysis import Verdict, VersionFigures, assess_canary, error_rise_p_value
from operators.mlmodel.rollout import Inputs, RolloutState, TickResult, next_weight, tick

T0 = datetime(2026, 6, 1, tzinfo=UTC)
ROLLOUT = Rollout.model_validate(
    {
        "shadow": {"duration": "2m", "minRequests": 100, "maxDisagreement": 0.05},
        "steps": [1, 10, 50, 100],
        "analysis": {
            "interval": "1m",
            "minRequests": 50,
            "maxErrorRate": 0.02,
            "maxLatencyP99Ms": 200,
            "threshold": 2,
        },
    }
)
HEALTHY = VersionFigures(requests=500, server_errors=1, latency_p99_ms=40)
STABLE = VersionFigures(requests=5000, server_errors=10, latency_p99_ms=40)


def at(minutes: int, **kw: object) -> Inputs:
    base: dict[str, object] = {
        "now": T0 + timedelta(minutes=minutes),
        "desired_version": "2",
        "candidate_ready": True,
        "candidate": HEALTHY,
        "stable": STABLE,
        "paired": 300,
        "disagreements": 3,
    }
    base.update(kw)
    return Inputs(**base)  # type: ignore[arg-type]


def promoted_v1() -> RolloutState:
    result = tick(RolloutState(), ROLLOUT, at(0, desired_version="1"))
    assert result.state.phase == RolloutPhase.PROMOTED and result.state.stable_version == "1"
    return result.state


def run(state: RolloutState, start: int, count: int, **kw: object) -> list[TickResult]:
    results = []
    for minute in range(start, start + count):
        result = tick(state, ROLLOUT, at(minute, **kw))
        state = result.state
        results.append(result)
    return results


def test_first_version_waits_for_ready_then_serves_everything() -> None:
    waiting = tick(RolloutState(), ROLLOUT, at(0, desired_version="1", candidate_ready=False))
    assert waiting.state.phase == RolloutPhase.PENDING and waiting.state.stable_version is None
    done = tick(waiting.state, ROLLOUT, at(1, desired_version="1"))
    assert done.state.stable_version == "1" and done.state.traffic.stable == 100


def test_happy_path_shadow_then_1_10_50_100_promoted() -> None:
    state = promoted_v1()
    results = run(state, 1, 7)
    phases = [(r.state.phase, r.state.traffic.candidate, r.state.traffic.mirror) for r in results]
    assert phases == [
        (RolloutPhase.SHADOW, 0, 100),  # new candidate enters shadow
        (RolloutPhase.SHADOW, 0, 100),  # shadow passed, but only 1 of the 2 minutes elapsed
        (RolloutPhase.CANARY, 1, 0),
        (RolloutPhase.CANARY, 10, 0),
        (RolloutPhase.CANARY, 50, 0),
        (RolloutPhase.CANARY, 100, 0),
        (RolloutPhase.PROMOTED, 0, 0),
    ]
    final = results[-1].state
    assert final.phase == RolloutPhase.PROMOTED
    assert final.stable_version == "2" and final.candidate_version is None
    assert final.traffic.stable == 100
    assert [r.events[0].reason for r in results if r.events] == [
        "CandidateStarted",
        "ShadowPassed",
        "StepPassed",
        "StepPassed",
        "StepPassed",
        "Promoted",
    ]


def _to_step(step_index: int) -> RolloutState:
    state = promoted_v1()
    for result in run(state, 1, 10):
        state = result.state
        if state.phase == RolloutPhase.CANARY and state.step_index == step_index:
            return state
    raise AssertionError("never reached the step")


@pytest.mark.parametrize("step_index", [0, 1, 2, 3])
def test_failing_candidate_rolled_back_at_each_step(step_index: int) -> None:
    state = _to_step(step_index)
    weight = state.traffic.candidate
    bad = VersionFigures(requests=400, server_errors=40, latency_p99_ms=40)
    first = tick(state, ROLLOUT, at(20, candidate=bad))
    assert first.state.phase == RolloutPhase.CANARY and first.state.failed_checks == 1
    assert first.state.traffic.candidate == weight  # held, not advanced
    assert first.events[0].reason == "CheckFailed"
    second = tick(first.state, ROLLOUT, at(21, candidate=bad))
    assert second.state.phase == RolloutPhase.ROLLED_BACK
    assert second.state.traffic.model_dump() == {"stable": 100, "candidate": 0, "mirror": 0}
    assert second.state.stable_version == "1" and second.state.candidate_version == "2"
    assert second.events[0].reason == "RolledBack" and "error rate" in second.events[0].message
    # Stable traffic never dropped below 100 - step%.
    for result in (first, second):
        assert result.state.traffic.stable >= 100 - weight
    # The rolled-back version is not tried again until a new one appears.
    assert tick(second.state, ROLLOUT, at(22)).state.phase == RolloutPhase.ROLLED_BACK
    again = tick(second.state, ROLLOUT, at(23, desired_version="3"))
    assert again.state.phase == RolloutPhase.SHADOW and again.state.candidate_version == "3"


def test_slow_candidate_fails_latency_gate() -> None:
    state = _to_step(1)
    slow = VersionFigures(requests=400, server_errors=0, latency_p99_ms=900)
    result = tick(state, ROLLOUT, at(20, candidate=slow))
    assert result.verdict == Verdict.FAIL and "p99" in result.state.message  # type: ignore[operator]


def test_disagreeing_shadow_is_rolled_back_without_user_traffic() -> None:
    state = tick(promoted_v1(), ROLLOUT, at(1)).state
    results = run(state, 2, 2, disagreements=90)
    assert results[-1].state.phase == RolloutPhase.ROLLED_BACK
    assert all(r.state.traffic.candidate == 0 for r in results)
    assert "disagreement" in results[-1].events[0].message


def test_quiet_interval_is_inconclusive_not_a_pass() -> None:
    state = _to_step(0)
    quiet = VersionFigures(requests=3, server_errors=0, latency_p99_ms=10)
    result = tick(state, ROLLOUT, at(20, candidate=quiet))
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.state.step_index == 0 and result.state.failed_checks == 0
    assert "inconclusive" in (result.state.message or "")


def test_client_errors_never_count_against_the_candidate() -> None:
    state = _to_step(1)
    noisy_clients = VersionFigures(
        requests=600, server_errors=0, client_errors=300, latency_p99_ms=40
    )
    result = tick(state, ROLLOUT, at(20, candidate=noisy_clients))
    assert result.verdict == Verdict.PASS and result.state.step_index == 2


def test_significant_rise_against_stable_fails_even_under_the_threshold() -> None:
    limits = ROLLOUT.analysis.model_copy(update={"max_error_rate": 0.05})
    candidate = VersionFigures(requests=2000, server_errors=60)  # 3%, under 5%
    stable = VersionFigures(requests=20000, server_errors=20)  # 0.1%
    assessment = assess_canary(candidate, stable, limits)
    assert assessment.verdict == Verdict.FAIL and "rose against stable" in assessment.message
    same = assess_canary(
        VersionFigures(requests=2000, server_errors=2, latency_p99_ms=40), stable, limits
    )
    assert same.verdict == Verdict.PASS
    assert error_rise_p_value(VersionFigures(requests=10), VersionFigures()) == 1.0


def test_requests_without_a_latency_figure_are_inconclusive_never_a_pass() -> None:
    """The mesh counts a slow candidate's requests before the monitor sees its (late)
    responses: no p99 yet means no verdict, never a pass of the latency guardrail."""
    counted = VersionFigures(requests=400, server_errors=0)
    waiting = assess_canary(counted, STABLE, ROLLOUT.analysis)
    assert waiting.verdict == Verdict.INCONCLUSIVE and "no latency figure" in waiting.message
    erroring = VersionFigures(requests=400, server_errors=80)  # errors are judged without it
    assert assess_canary(erroring, STABLE, ROLLOUT.analysis).verdict == Verdict.FAIL
    slow = dataclasses.replace(counted, latency_p99_ms=900)
    assert assess_canary(slow, STABLE, ROLLOUT.analysis).verdict == Verdict.FAIL


def test_version_change_mid_rollout_restarts_analysis() -> None:
    state = _to_step(2)
    state = state.model_copy(update={"failed_checks": 1})
    result = tick(state, ROLLOUT, at(30, desired_version="3"))
    assert result.state.phase == RolloutPhase.SHADOW
    assert result.state.candidate_version == "3" and result.state.failed_checks == 0
    assert result.state.traffic.candidate == 0 and result.state.stable_version == "1"
    assert "replaces candidate 2" in result.events[0].message


def test_spec_back_to_stable_withdraws_candidate() -> None:
    state = _to_step(1)
    result = tick(state, ROLLOUT, at(30, desired_version="1"))
    assert result.state.phase == RolloutPhase.PROMOTED and result.state.candidate_version is None
    assert result.state.traffic.stable == 100


def test_pause_holds_the_ramp() -> None:
    state = _to_step(1)
    held = run(state, 20, 5, paused=True)
    assert all(r.state.step_index == 1 and r.state.traffic.candidate == 10 for r in held)
    resumed = tick(held[-1].state, ROLLOUT, at(30))
    assert resumed.state.step_index == 2


def test_require_approval_gates_canary() -> None:
    gated = ROLLOUT.model_copy(update={"require_approval": True})
    state = tick(promoted_v1(), gated, at(1)).state
    for minute in range(2, 8):
        state = tick(state, gated, at(minute)).state
        assert state.phase == RolloutPhase.SHADOW
    assert "approve" in (state.message or "")
    approved = tick(state, gated, at(9, approved=True))
    assert approved.state.phase == RolloutPhase.CANARY and approved.state.traffic.candidate == 1


def test_no_auto_rollback_halts_as_failed() -> None:
    manual = ROLLOUT.model_copy(update={"auto_rollback": False})
    state = _to_step(1)
    bad = VersionFigures(requests=400, server_errors=100)
    state = tick(state, manual, at(20, candidate=bad)).state
    result = tick(state, manual, at(21, candidate=bad))
    assert result.state.phase == RolloutPhase.FAILED and result.state.traffic.candidate == 10


def test_restart_mid_step_continues_from_status_alone() -> None:
    state = _to_step(2)
    # What the operator wrote to status, read back by a freshly started operator.
    stored = state.model_dump(mode="json")
    rebuilt = RolloutState.model_validate(stored)
    assert rebuilt == state
    assert tick(rebuilt, ROLLOUT, at(40)).state == tick(state, ROLLOUT, at(40)).state


def test_next_weight_never_exceeds_the_last_step() -> None:
    assert [next_weight([1, 10, 50, 100], i) for i in range(6)] == [1, 10, 50, 100, 100, 100]


def test_shadow_that_only_errors_fails_without_pairs() -> None:
    from operators.api.mlmodel import Analysis, Shadow
    from operators.mlmodel.analysis import assess_shadow

    broken = VersionFigures(requests=30, server_errors=30)
    assessment = assess_shadow(broken, 0, 0, Shadow(min_requests=20), Analysis())
    assert assessment.verdict == Verdict.FAIL and "shadow error rate" in assessment.message
    quiet = VersionFigures(requests=5, server_errors=5)
    assert assess_shadow(quiet, 0, 0, Shadow(min_requests=20), Analysis()).verdict == (
        Verdict.INCONCLUSIVE
    )
