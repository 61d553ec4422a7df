"""The MLModel rollout as data: a pure state machine over the status fields.

Pending → Shadow → Canary (stepIndex over `rollout.steps`) → Promoted, or RolledBack / Failed.
Everything the machine needs lives in `status` (phase, versions, stepIndex, counters,
phaseStartedAt), so an operator that restarts continues exactly where it was. `tick()` is called
once per analysis interval with what was observed in that interval; it returns the next state
and the actions for the shell to carry out. No I/O here.

A check is one tick's verdict: the guardrails (`analysis.py`) combined with the outcome gate
(`outcome_gate.judge` on the monitor's comparison of the labeled requests) when
`analysis.primaryMetric` is set. Failed checks count consecutively within a step: a passing
check and every step taken (shadow → canary, one canary step to the next) set the count
back to zero; an inconclusive check neither counts nor resets (it carries no evidence
either way, and resetting on it would let a candidate that fails every other interval live
forever). `threshold` consecutive failures roll back (or halt, without autoRollback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from contracts.quality import Comparison
from operators.api.common import parse_duration
from operators.api.mlmodel import Analysis, Rollout, RolloutPhase, Shadow, Traffic
from operators.kind import Event, EventType
from operators.mlmodel.analysis import (
    Assessment,
    Verdict,
    VersionFigures,
    assess_canary,
    assess_shadow,
    combine,
)
from operators.mlmodel.outcome_gate import judge


class RolloutState(BaseModel):
    """The slice of MLModel status the rollout owns."""

    phase: RolloutPhase = RolloutPhase.PENDING
    stable_version: str | None = None
    candidate_version: str | None = None
    step_index: int | None = None
    failed_checks: int = 0
    iterations: int = 0
    phase_started_at: datetime | None = None
    traffic: Traffic = Traffic(stable=100, candidate=0, mirror=0)
    message: str | None = None


@dataclass(frozen=True)
class Inputs:
    """What the shell observed for one tick."""

    now: datetime
    desired_version: str | None
    candidate_ready: bool
    stable_ready: bool = True
    candidate: VersionFigures = field(default_factory=VersionFigures)
    stable: VersionFigures = field(default_factory=VersionFigures)
    paired: int = 0
    disagreements: int = 0
    paused: bool = False
    approved: bool = False
    # The monitor's comparison of candidate and stable on labeled requests since the phase
    # started (paired in shadow, concurrent in canary); None when none was fetched.
    comparison: Comparison | None = None


@dataclass(frozen=True)
class TickResult:
    state: RolloutState
    events: list[Event]
    verdict: Verdict | None = None
    figures: dict[str, float | int | str | None] = field(default_factory=dict)


def next_weight(steps: list[int], step_index: int) -> int:
    """Candidate weight at a step; the ramp never exceeds its last step."""
    return steps[min(step_index, len(steps) - 1)]


def traffic_for(phase: RolloutPhase, rollout: Rollout, step_index: int | None) -> Traffic:
    if phase == RolloutPhase.SHADOW:
        return Traffic(stable=100, candidate=0, mirror=rollout.shadow.mirror_percent)
    if phase == RolloutPhase.CANARY and step_index is not None:
        weight = next_weight(rollout.steps, step_index)
        return Traffic(stable=100 - weight, candidate=weight, mirror=0)
    return Traffic(stable=100, candidate=0, mirror=0)


def _enter(
    state: RolloutState,
    phase: RolloutPhase,
    rollout: Rollout,
    now: datetime,
    **changes: object,
) -> RolloutState:
    step_index = changes.pop("step_index", None if phase != RolloutPhase.CANARY else 0)
    assert step_index is None or isinstance(step_index, int)
    return state.model_copy(
        update={
            "phase": phase,
            "step_index": step_index,
            "phase_started_at": now,
            "traffic": traffic_for(phase, rollout, step_index),
            **changes,
        }
    )


def _restart(
    state: RolloutState, phase: RolloutPhase, rollout: Rollout, now: datetime, **changes: object
) -> RolloutState:
    """Enter `phase` with a version new to it: the analysis counters start from zero."""
    return _enter(state, phase, rollout, now, failed_checks=0, iterations=0, **changes)


def tick(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    """One analysis interval. Dispatches on what changed first, then on the phase."""
    desired = inputs.desired_version
    if desired is None:
        return TickResult(state, [])
    if state.stable_version is None:
        return _first_version(state, rollout, inputs)
    if desired not in (state.stable_version, state.candidate_version):
        return _new_candidate(state, rollout, inputs)
    if desired == state.stable_version and state.candidate_version is not None:
        return _candidate_withdrawn(state, rollout, inputs)
    if inputs.paused and state.phase in (RolloutPhase.SHADOW, RolloutPhase.CANARY):
        held = state.model_copy(update={"message": "paused by kubeloop.io/pause"})
        return TickResult(held, [])
    if state.phase == RolloutPhase.SHADOW:
        return _shadow_tick(state, rollout, inputs)
    if state.phase == RolloutPhase.CANARY:
        return _canary_tick(state, rollout, inputs)
    return TickResult(state, [])


def outcome_assessment(rollout: Rollout, inputs: Inputs) -> Assessment | None:
    """The outcome gate's verdict; None when no primary metric is set (guardrails only)."""
    metric = rollout.analysis.primary_metric
    if metric is None:
        return None
    figures: dict[str, float | int | str | None] = {"metric": metric.name, "labeled": 0}
    comparison = inputs.comparison
    if comparison is None:
        message = f"inconclusive: no {metric.name} comparison from the monitor yet"
        return Assessment(Verdict.INCONCLUSIVE, message, figures)
    judged = judge(comparison, metric.margin, metric.min_labeled, metric.alpha)
    for key in ("estimate", "low", "high"):
        value = judged.figures.get(key)
        figures[key] = round(value, 6) if isinstance(value, float) else value
    figures["labeled"] = comparison.n
    return Assessment(judged.verdict, judged.message, figures)


def _first_version(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    """The first version has nothing to be compared with: it is stable once it is Ready."""
    if not inputs.candidate_ready:
        waiting = state.model_copy(
            update={
                "phase": RolloutPhase.PENDING,
                "candidate_version": inputs.desired_version,
                "message": f"waiting for version {inputs.desired_version} to be Ready",
            }
        )
        return TickResult(waiting, [])
    promoted = _restart(
        state,
        RolloutPhase.PROMOTED,
        rollout,
        inputs.now,
        stable_version=inputs.desired_version,
        candidate_version=None,
        message=f"serving version {inputs.desired_version}",
    )
    event = Event(EventType.NORMAL, "Promoted", f"version {inputs.desired_version} serves 100%")
    return TickResult(promoted, [event])


def _new_candidate(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    """A new version, or a different one mid-rollout: analysis restarts from shadow."""
    restarted = state.candidate_version is not None and state.phase in (
        RolloutPhase.SHADOW,
        RolloutPhase.CANARY,
    )
    shadowing = _restart(
        state,
        RolloutPhase.SHADOW,
        rollout,
        inputs.now,
        candidate_version=inputs.desired_version,
        message=f"shadowing version {inputs.desired_version}",
    )
    verb = f"replaces candidate {state.candidate_version}" if restarted else "enters shadow"
    event = Event(EventType.NORMAL, "CandidateStarted", f"version {inputs.desired_version} {verb}")
    return TickResult(shadowing, [event])


def _candidate_withdrawn(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    """The spec points back at the stable version: drop the candidate, all traffic to stable."""
    if state.phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.FAILED):
        return TickResult(state, [])
    back = _enter(
        state,
        RolloutPhase.PROMOTED,
        rollout,
        inputs.now,
        candidate_version=None,
        message=f"candidate withdrawn; serving version {state.stable_version}",
    )
    reason = f"candidate {state.candidate_version} withdrawn by the spec"
    return TickResult(back, [Event(EventType.NORMAL, "CandidateWithdrawn", reason)])


def _shadow_tick(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    if not inputs.candidate_ready:
        if _ready_overdue(state, rollout.analysis, inputs.now):
            return _never_ready(state, rollout, inputs)
        waiting = state.model_copy(
            update={"message": f"waiting for version {state.candidate_version} to be Ready"}
        )
        return TickResult(waiting, [])
    guard = assess_shadow(
        inputs.candidate, inputs.paired, inputs.disagreements, rollout.shadow, rollout.analysis
    )
    assessment = combine(guard, outcome_assessment(rollout, inputs))
    looked = _look(state, rollout, inputs, assessment)
    if isinstance(looked, TickResult):
        return looked
    state = looked
    if not _shadow_long_enough(state, rollout.shadow, inputs.now):
        return _hold(state, assessment, assessment.message)
    if rollout.require_approval and not inputs.approved:
        return _hold(
            state, assessment, "shadow passed; waiting for the kubeloop.io/approve annotation"
        )
    canary = _enter(
        state,
        RolloutPhase.CANARY,
        rollout,
        inputs.now,
        step_index=0,
        message=f"canary at {rollout.steps[0]}%",
    )
    event = Event(
        EventType.NORMAL,
        "ShadowPassed",
        f"version {state.candidate_version} passed shadow ({assessment.message}); "
        f"canary at {rollout.steps[0]}%",
    )
    return TickResult(canary, [event], assessment.verdict, assessment.figures)


def _look(
    state: RolloutState, rollout: Rollout, inputs: Inputs, assessment: Assessment
) -> RolloutState | TickResult:
    """Count one look of the analysis. A failed or inconclusive look ends the tick (its
    result); a passing one returns the state with its run of failed checks ended."""
    state = state.model_copy(update={"iterations": state.iterations + 1})
    if assessment.verdict == Verdict.FAIL:
        return _failed_check(state, rollout, inputs, assessment.message, assessment.figures)
    if assessment.verdict == Verdict.INCONCLUSIVE:
        return _hold(state, assessment, assessment.message)
    return state.model_copy(update={"failed_checks": 0})  # a pass ends a run of failures


def _hold(state: RolloutState, assessment: Assessment, message: str) -> TickResult:
    """Stay where the rollout is, saying why."""
    held = state.model_copy(update={"message": message})
    return TickResult(held, [], assessment.verdict, assessment.figures)


def _ready_overdue(state: RolloutState, analysis: Analysis, now: datetime) -> bool:
    started = state.phase_started_at or now
    return now - started >= parse_duration(analysis.ready_timeout)


def _never_ready(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    """The candidate's InferenceService did not become Ready in time: it will not serve."""
    message = (
        f"the InferenceService of version {state.candidate_version} was not Ready within "
        f"readyTimeout {rollout.analysis.ready_timeout}"
    )
    if not rollout.auto_rollback:
        halted = state.model_copy(update={"phase": RolloutPhase.FAILED, "message": message})
        event = Event(
            EventType.WARNING, "RolloutFailed", f"{message}; autoRollback is off, traffic held"
        )
        return TickResult(halted, [event])
    rolled_back = _enter(
        state,
        RolloutPhase.ROLLED_BACK,
        rollout,
        inputs.now,
        message=f"rolled back version {state.candidate_version}: {message}",
    )
    event = Event(EventType.WARNING, "RolledBack", f"rolled back: {message}")
    return TickResult(rolled_back, [event])


def _shadow_long_enough(state: RolloutState, shadow: Shadow, now: datetime) -> bool:
    started = state.phase_started_at or now
    return now - started >= parse_duration(shadow.duration)


def _canary_tick(state: RolloutState, rollout: Rollout, inputs: Inputs) -> TickResult:
    current_step = state.step_index or 0
    guard = assess_canary(inputs.candidate, inputs.stable, rollout.analysis)
    assessment = combine(guard, outcome_assessment(rollout, inputs))
    looked = _look(state, rollout, inputs, assessment)
    if isinstance(looked, TickResult):
        return looked
    state = looked
    if current_step + 1 >= len(rollout.steps):
        return _promote(state, rollout, inputs, assessment.figures)
    step_index = current_step + 1
    weight = next_weight(rollout.steps, step_index)
    advanced = state.model_copy(
        update={
            "step_index": step_index,
            "traffic": traffic_for(RolloutPhase.CANARY, rollout, step_index),
            "message": f"canary at {weight}%",
        }
    )
    event = Event(EventType.NORMAL, "StepPassed", f"{assessment.message}; canary at {weight}%")
    return TickResult(advanced, [event], assessment.verdict, assessment.figures)


def _promote(
    state: RolloutState,
    rollout: Rollout,
    inputs: Inputs,
    figures: dict[str, float | int | str | None],
) -> TickResult:
    promoted = _enter(
        state,
        RolloutPhase.PROMOTED,
        rollout,
        inputs.now,
        stable_version=state.candidate_version,
        candidate_version=None,
        message=f"version {state.candidate_version} promoted to 100%",
    )
    event = Event(
        EventType.NORMAL, "Promoted", f"version {state.candidate_version} promoted to 100%"
    )
    return TickResult(promoted, [event], Verdict.PASS, figures)


def _failed_check(
    state: RolloutState,
    rollout: Rollout,
    inputs: Inputs,
    message: str,
    figures: dict[str, float | int | str | None],
) -> TickResult:
    failed = state.failed_checks + 1
    state = state.model_copy(update={"failed_checks": failed, "message": message})
    threshold = rollout.analysis.threshold
    if failed < threshold:
        warning = Event(EventType.WARNING, "CheckFailed", f"{message} ({failed}/{threshold})")
        return TickResult(state, [warning], Verdict.FAIL, figures)
    if not rollout.auto_rollback:
        halted = state.model_copy(update={"phase": RolloutPhase.FAILED})
        event = Event(
            EventType.WARNING,
            "RolloutFailed",
            f"{message}; autoRollback is off, traffic held for a person to decide",
        )
        return TickResult(halted, [event], Verdict.FAIL, figures)
    rolled_back = _enter(
        state,
        RolloutPhase.ROLLED_BACK,
        rollout,
        inputs.now,
        message=f"rolled back version {state.candidate_version}: {message}",
    )
    event = Event(
        EventType.WARNING,
        "RolledBack",
        f"version {state.candidate_version} rolled back after {failed} failed checks: {message}",
    )
    return TickResult(rolled_back, [event], Verdict.FAIL, figures)


def analysis_interval_seconds(analysis: Analysis) -> float:
    return parse_duration(analysis.interval).total_seconds()
