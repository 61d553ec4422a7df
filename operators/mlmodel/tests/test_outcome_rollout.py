"""The label-gated rollout, tick by tick (pure): every branch the outcome gate and the new
guardrails add to shadow and canary, and failed checks counted consecutively per step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.quality import Comparison
from operators.api.mlmodel import Analysis, MLModelStatus, Rollout, RolloutPhase, Shadow
from operators.mlmodel import reconcile as core
from operators.mlmodel.analysis import (
    Assessment,
    Verdict,
    VersionFigures,
    assess_canary,
    assess_shadow,
    combine,
    disagreement_limit,
)
from operators.mlmodel.rollout import Inputs, RolloutState, TickResult, outcome_assessment, tick

T0 = datetime(2026, 6, 1, tzinfo=UTC)
METRIC = {"name": "auc", "margin": 0.02, "minLabeled": 200, "alpha": 0.05}
GATED = Rollout.model_validate(
    {
        "shadow": {"duration": "2m", "minRequests": 100},
        "steps": [1, 10, 50, 100],
        "analysis": {
            "interval": "1m",
            "minRequests": 50,
            "maxErrorRate": 0.02,
            "maxLatencyP99Ms": 200,
            "threshold": 2,
            "primaryMetric": METRIC,
        },
    }
)
HEALTHY = VersionFigures(requests=500, server_errors=1, latency_p99_ms=40)
STABLE = VersionFigures(requests=5000, server_errors=10, latency_p99_ms=40)


def comparison(kind: str, design: str = "paired", n: int = 5000) -> Comparison:
    """A comparison the real judge reads as `kind`: a tight estimate at 0 (non-inferior), a
    tight one far below 0 (worse), or too few labels."""
    estimate, variance = {
        "pass": (0.0, 1e-8),
        "fail": (-0.2, 1e-6),
        "wide": (-0.01, 1e-2),  # enough labels, interval reaches both sides
        "none": (None, None),
    }[kind]
    return Comparison(
        metric="auc",
        candidate="2",
        stable="1",
        design=design,  # type: ignore[arg-type]
        n=n,
        n_stable=n,
        estimate=estimate,
        variance=variance,
        method="delong-paired",
        since=T0.timestamp(),
    )


PASSING, FAILING = comparison("pass"), comparison("fail")


def at(minutes: int, **kw: Any) -> Inputs:
    base: dict[str, Any] = {
        "now": T0 + timedelta(minutes=minutes),
        "desired_version": "2",
        "candidate_ready": True,
        "candidate": HEALTHY,
        "stable": STABLE,
        "paired": 300,
        "disagreements": 3,
        "comparison": PASSING,
    }
    base.update(kw)
    return Inputs(**base)


def shadowing(rollout: Rollout = GATED) -> RolloutState:
    promoted = tick(RolloutState(), rollout, at(0, desired_version="1")).state
    state = tick(promoted, rollout, at(1)).state
    assert state.phase == RolloutPhase.SHADOW
    return state


def canary_at(step_index: int, rollout: Rollout = GATED) -> RolloutState:
    state = shadowing(rollout)
    for minute in range(2, 12):
        state = tick(state, rollout, at(minute)).state
        if state.phase == RolloutPhase.CANARY and state.step_index == step_index:
            return state
    raise AssertionError("never reached the step")


def run(state: RolloutState, start: int, plan: list[dict[str, Any]]) -> list[TickResult]:
    results = []
    for offset, kw in enumerate(plan):
        result = tick(state, GATED, at(start + offset, **kw))
        state = result.state
        results.append(result)
    return results


# --- shadow ------------------------------------------------------------------------------
def test_shadow_passes_on_non_inferior_labels_then_canary() -> None:
    state = shadowing()
    held = tick(state, GATED, at(2))  # passes, but only 1 of the 2 minutes in shadow
    assert held.verdict == Verdict.PASS and held.state.phase == RolloutPhase.SHADOW
    canary = tick(held.state, GATED, at(3))
    assert canary.state.phase == RolloutPhase.CANARY and canary.state.traffic.candidate == 1
    assert "non-inferior" in canary.events[0].message
    assert canary.figures["metric"] == "auc" and canary.figures["labeled"] == 5000


@pytest.mark.parametrize(
    "kind, why",
    [("none", "too few labels"), ("wide", "reaches below -margin")],
)
def test_shadow_without_enough_evidence_is_inconclusive(kind: str, why: str) -> None:
    state = shadowing()
    results = run(state, 2, [{"comparison": comparison(kind)}] * 5)
    assert all(r.verdict == Verdict.INCONCLUSIVE for r in results)
    assert all(r.state.phase == RolloutPhase.SHADOW for r in results)
    assert results[-1].state.failed_checks == 0 and why in (results[-1].state.message or "")


def test_few_labels_are_inconclusive_even_when_the_estimate_is_good() -> None:
    state = shadowing()
    result = tick(state, GATED, at(5, comparison=comparison("pass", n=150)))
    assert result.verdict == Verdict.INCONCLUSIVE and "minLabeled 200" in (
        result.state.message or ""
    )


def test_no_comparison_from_the_monitor_is_inconclusive() -> None:
    result = tick(shadowing(), GATED, at(5, comparison=None))
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "no auc comparison" in (result.state.message or "")


def test_worse_candidate_is_rolled_back_in_shadow_with_zero_errors() -> None:
    clean = VersionFigures(requests=500, server_errors=0, latency_p99_ms=40)
    results = run(shadowing(), 2, [{"comparison": FAILING, "candidate": clean}] * 2)
    assert results[0].state.failed_checks == 1 and results[0].events[0].reason == "CheckFailed"
    final = results[-1]
    assert final.state.phase == RolloutPhase.ROLLED_BACK and final.state.traffic.candidate == 0
    assert "significantly worse" in final.events[0].message


def test_guardrail_failure_wins_over_a_passing_label_gate() -> None:
    broken = VersionFigures(requests=500, server_errors=100)
    result = tick(shadowing(), GATED, at(5, candidate=broken))
    assert result.verdict == Verdict.FAIL and "shadow error rate" in (result.state.message or "")


def test_with_a_primary_metric_disagreement_is_off_unless_set() -> None:
    # A retrain disagrees with the version it replaces: 90% disagreement passes on labels.
    result = tick(shadowing(), GATED, at(5, disagreements=270))
    assert result.verdict == Verdict.PASS
    guarded = GATED.model_copy(
        update={"shadow": GATED.shadow.model_copy(update={"max_disagreement": 0.5})}
    )
    failed = tick(shadowing(guarded), guarded, at(5, disagreements=270))
    assert failed.verdict == Verdict.FAIL and "maxDisagreement 50.00%" in failed.state.message  # type: ignore[operator]


def test_disagreement_limit_defaults() -> None:
    metric = GATED.analysis.primary_metric
    assert disagreement_limit(Shadow(), Analysis()) == 0.05  # as before outcome gates
    assert disagreement_limit(Shadow(), Analysis(primary_metric=metric)) is None
    assert disagreement_limit(Shadow(max_disagreement=0.2), Analysis(primary_metric=metric)) == 0.2
    assert disagreement_limit(Shadow(max_disagreement=0.2), Analysis()) == 0.2


def test_shadow_guard_without_disagreement_needs_min_requests() -> None:
    limits = Analysis(primary_metric=GATED.analysis.primary_metric)
    quiet = assess_shadow(VersionFigures(requests=50), 0, 0, Shadow(min_requests=100), limits)
    assert quiet.verdict == Verdict.INCONCLUSIVE and "50 shadow requests" in quiet.message
    busy = assess_shadow(VersionFigures(requests=150), 0, 0, Shadow(min_requests=100), limits)
    assert busy.verdict == Verdict.PASS


# --- canary ------------------------------------------------------------------------------
def test_canary_steps_pass_on_labels_and_guardrails_then_promote() -> None:
    state = canary_at(0)
    concurrent = comparison("pass", design="concurrent")
    results = run(state, 20, [{"comparison": concurrent}] * 4)
    assert [r.state.traffic.candidate for r in results[:3]] == [10, 50, 100]
    assert results[-1].state.phase == RolloutPhase.PROMOTED
    assert results[-1].state.stable_version == "2"


def test_canary_waits_for_labels_at_a_step() -> None:
    state = canary_at(1)
    results = run(state, 20, [{"comparison": comparison("none", design="concurrent")}] * 3)
    assert all(r.state.step_index == 1 and r.verdict == Verdict.INCONCLUSIVE for r in results)


def test_canary_label_failure_rolls_back() -> None:
    state = canary_at(2)
    worse = comparison("fail", design="concurrent")
    results = run(state, 20, [{"comparison": worse}] * 2)
    assert results[-1].state.phase == RolloutPhase.ROLLED_BACK
    assert results[-1].state.traffic.stable == 100


def test_canary_guardrail_fails_even_when_labels_pass() -> None:
    bad = VersionFigures(requests=400, server_errors=40, latency_p99_ms=40)
    result = tick(canary_at(1), GATED, at(20, candidate=bad))
    assert result.verdict == Verdict.FAIL and "error rate" in (result.state.message or "")


def test_latency_ratio_against_stable() -> None:
    limits = Analysis(max_latency_ratio=1.5, max_latency_p99_ms=1000)
    slower = VersionFigures(requests=400, latency_p99_ms=90)
    stable = VersionFigures(requests=4000, latency_p99_ms=40)
    failed = assess_canary(slower, stable, limits)
    assert failed.verdict == Verdict.FAIL and "2.25x stable's 40 ms" in failed.message
    assert failed.figures["latencyRatio"] == 2.25 and failed.figures["stableLatencyP99Ms"] == 40
    # Within the ratio; the ratio unset; stable's p99 unknown: no latency-ratio failure.
    ok = VersionFigures(requests=400, latency_p99_ms=55)
    assert assess_canary(ok, stable, limits).verdict == Verdict.PASS
    assert assess_canary(slower, stable, Analysis(max_latency_p99_ms=1000)).verdict == Verdict.PASS
    unknown = VersionFigures(requests=4000)
    assert assess_canary(slower, unknown, limits).verdict == Verdict.PASS


# --- failed checks: consecutive, per step ------------------------------------------------
def test_a_pass_between_failures_resets_the_count() -> None:
    bad = VersionFigures(requests=400, server_errors=40)
    results = run(canary_at(0), 20, [{"candidate": bad}, {}, {"candidate": bad}])
    assert [r.state.failed_checks for r in results] == [1, 0, 1]
    assert results[1].state.step_index == 1  # the pass took the step
    assert results[-1].state.phase == RolloutPhase.CANARY  # 2 failures, never in a row


def test_an_inconclusive_check_neither_counts_nor_resets() -> None:
    bad = VersionFigures(requests=400, server_errors=40)
    quiet = VersionFigures(requests=3)
    results = run(canary_at(1), 20, [{"candidate": bad}, {"candidate": quiet}, {"candidate": bad}])
    assert [r.state.failed_checks for r in results[:2]] == [1, 1]
    assert results[-1].state.phase == RolloutPhase.ROLLED_BACK


def test_a_shadow_pass_held_by_duration_resets_the_count() -> None:
    state = shadowing()
    first = tick(state, GATED, at(1, comparison=FAILING))  # same minute the shadow started
    assert first.state.failed_checks == 1
    passed = tick(first.state, GATED, at(1, comparison=PASSING))  # too early for canary
    assert passed.state.phase == RolloutPhase.SHADOW and passed.state.failed_checks == 0


def test_steps_start_with_no_failed_checks() -> None:
    state = canary_at(1).model_copy(update={"failed_checks": 1})
    advanced = tick(state, GATED, at(20))
    assert advanced.state.step_index == 2 and advanced.state.failed_checks == 0


# --- pieces ------------------------------------------------------------------------------
def test_combine_names_what_is_missing() -> None:
    def a(verdict: Verdict, message: str) -> Assessment:
        return Assessment(verdict, message, {message: 1})

    assert combine(a(Verdict.PASS, "g"), None).message == "g"
    assert combine(a(Verdict.FAIL, "g"), a(Verdict.FAIL, "o")).message == "g"
    assert combine(a(Verdict.PASS, "g"), a(Verdict.FAIL, "o")).verdict == Verdict.FAIL
    both = combine(a(Verdict.PASS, "g"), a(Verdict.PASS, "o"))
    assert both.verdict == Verdict.PASS and both.figures == {"g": 1, "o": 1}
    waiting = combine(a(Verdict.INCONCLUSIVE, "g"), a(Verdict.PASS, "o"))
    assert waiting.verdict == Verdict.INCONCLUSIVE and waiting.message == "g"


def test_no_primary_metric_means_no_outcome_gate() -> None:
    plain = Rollout()
    assert outcome_assessment(plain, at(1)) is None
    judged = outcome_assessment(GATED, at(1))
    assert judged is not None and judged.verdict == Verdict.PASS


def test_outcome_figures_reach_status_analysis() -> None:
    state = shadowing()
    result = tick(state, GATED, at(2, comparison=FAILING))
    figures = core.analysis_figures(None, result, True, T0, T0)
    assert figures is not None and figures.metric == "auc" and figures.labeled == 5000
    assert figures.estimate == -0.2 and figures.high is not None and figures.high < 0
    MLModelStatus(analysis=figures)  # valid status
