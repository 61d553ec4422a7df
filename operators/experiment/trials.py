"""Pure trial planning for an Experiment: the trial set, what to launch next, the best trial,
and whether it may be registered (objective, baselines, and the champion: docs/architecture.md
"Champion/challenger")."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from operators.api.common import parse_duration
from operators.api.experiment import (
    BestTrial,
    Comparison,
    Goal,
    Objective,
    ParameterType,
    Scale,
    Search,
    SearchAlgorithm,
    SearchParameter,
    Split,
    Trial,
    TrialState,
)

FINISHED = (TrialState.SUCCEEDED, TrialState.FAILED)


def _format(value: float | str, kind: ParameterType) -> str:
    if kind == ParameterType.INT:
        return str(int(round(float(value))))
    if kind == ParameterType.FLOAT:
        return repr(float(value))
    return str(value)


def _grid_values(parameter: SearchParameter) -> list[str]:
    if parameter.type == ParameterType.CATEGORICAL:
        return list(parameter.choices or [])
    if parameter.values:
        return [_format(v, parameter.type) for v in parameter.values]
    assert parameter.min is not None and parameter.max is not None
    # A grid over a range takes its two ends and the middle: the least a grid can say.
    if parameter.scale == Scale.LOG:
        mid = math.sqrt(parameter.min * parameter.max)
    else:
        mid = (parameter.min + parameter.max) / 2
    points = sorted({parameter.min, mid, parameter.max})
    return list(dict.fromkeys(_format(p, parameter.type) for p in points))


def _sample(parameter: SearchParameter, rng: random.Random) -> str:
    if parameter.type == ParameterType.CATEGORICAL:
        return rng.choice(list(parameter.choices or []))
    if parameter.values:
        return _format(rng.choice(parameter.values), parameter.type)
    assert parameter.min is not None and parameter.max is not None
    if parameter.scale == Scale.LOG:
        value = math.exp(rng.uniform(math.log(parameter.min), math.log(parameter.max)))
    else:
        value = rng.uniform(parameter.min, parameter.max)
    return _format(value, parameter.type)


def trial_params(search: Search) -> list[dict[str, str]]:
    """Deterministic: the same spec always gives the same trials, in the same order."""
    if not search.parameters:
        return [{}]
    if search.algorithm == SearchAlgorithm.GRID:
        names = [p.name for p in search.parameters]
        grid = itertools.product(*(_grid_values(p) for p in search.parameters))
        return [dict(zip(names, combo, strict=True)) for combo in grid][: search.max_trials]
    rng = random.Random(search.seed)
    seen: list[dict[str, str]] = []
    for _ in range(search.max_trials * 20):
        candidate = {p.name: _sample(p, rng) for p in search.parameters}
        if candidate not in seen:
            seen.append(candidate)
        if len(seen) == search.max_trials:
            break
    return seen


def trial_name(experiment: str, round_: int, index: int) -> str:
    return f"{experiment}-r{round_}-t{index}"


def run_name(experiment: str, round_: int, index: int, params: dict[str, str]) -> str:
    """The KFP run name: deterministic, so a restarted operator never launches a trial twice."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{trial_name(experiment, round_, index)}-{digest}"


def plan_trials(experiment: str, round_: int, search: Search) -> list[Trial]:
    return [
        Trial(
            name=trial_name(experiment, round_, i),
            params=params,
            run=run_name(experiment, round_, i, params),
        )
        for i, params in enumerate(trial_params(search))
    ]


def to_launch(trials: Sequence[Trial], parallel: int) -> list[Trial]:
    """Pending trials that fit under the parallelism limit, in trial order."""
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    room = max(parallel - running, 0)
    return [t for t in trials if t.state == TrialState.PENDING][:room]


def all_finished(trials: Sequence[Trial]) -> bool:
    return bool(trials) and all(t.state in FINISHED for t in trials)


def pick_best(trials: Sequence[Trial], objective: Objective) -> BestTrial | None:
    scored = [
        t for t in trials if t.state == TrialState.SUCCEEDED and objective.metric in t.metrics
    ]
    if not scored:
        return None
    sign = 1 if objective.goal == Goal.MAXIMIZE else -1
    best = max(scored, key=lambda t: (sign * t.metrics[objective.metric], -scored.index(t)))
    baseline_key = f"baseline_{objective.metric}"
    return BestTrial(
        trial=best.name,
        metric=objective.metric,
        value=best.metrics[objective.metric],
        baseline=best.metrics.get(baseline_key),
        vs_champion=best.vs_champion,
        vs_baseline=best.vs_baseline,
    )


def registration_verdict(best: BestTrial | None, objective: Objective) -> tuple[bool, str]:
    """Register only a best trial that passes the threshold and beats the baseline."""
    if best is None:
        return False, "no trial succeeded with the objective metric"
    better = (lambda a, b: a > b) if objective.goal == Goal.MAXIMIZE else (lambda a, b: a < b)
    if objective.threshold is not None and not (
        better(best.value, objective.threshold) or best.value == objective.threshold
    ):
        return False, (
            f"best {best.metric}={best.value:.4f} does not pass threshold {objective.threshold}"
        )
    if best.baseline is not None and not better(best.value, best.baseline):
        return (
            False,
            f"best {best.metric}={best.value:.4f} does not beat baseline {best.baseline:.4f}",
        )
    # The champion first: its failure is the condition's reason (refusal_reason).
    for comparison in (best.vs_champion, best.vs_baseline):
        if comparison is not None and not comparison.passed:
            return False, f"best {best.trial}: {comparison.reason}"
    champion = best.vs_champion
    versus = f", beats champion version {champion.version}" if champion else ", no champion yet"
    return True, f"best {best.trial}: {best.metric}={best.value:.4f}{versus}"


def refusal_reason(best: BestTrial | None) -> str:
    """The Registered=False reason for a best trial registration_verdict() refused."""
    if best is not None and best.vs_champion is not None and not best.vs_champion.passed:
        return "ChampionNotBeaten"
    if best is not None and best.vs_baseline is not None and not best.vs_baseline.passed:
        return "BaselineNotBeaten"
    return "ObjectiveNotMet"


def trial_comparisons(report: dict[str, Any]) -> dict[str, Comparison | None]:
    """The champion/challenger figures of a trial's evaluation report (components/evaluate:
    ``vs_champion``, ``vs_baseline``; absent from reports written before them)."""
    return {
        key: Comparison.model_validate(report[key]) if isinstance(report.get(key), dict) else None
        for key in ("vs_champion", "vs_baseline")
    }


def comparison_lineage(best: BestTrial) -> dict[str, str]:
    """The registered version's vs-champion / vs-baseline tags (camelCase JSON, as in status)."""
    return {
        key: json.dumps(comparison.to_k8s(), sort_keys=True)
        for key, comparison in (
            ("vs_champion", best.vs_champion),
            ("vs_baseline", best.vs_baseline),
        )
        if comparison is not None
    }


def split_windows(split: Split, data_end: datetime) -> dict[str, datetime]:
    """Time-based windows: train until T1, validation [T1, T2), test [T2, end)."""
    test_start = data_end - parse_duration(split.test)
    validation_start = test_start - parse_duration(split.validation)
    train_until = split.train_until or validation_start
    if train_until > validation_start:
        raise ValueError(
            f"split.trainUntil {train_until.isoformat()} overlaps validation, which starts at "
            f"{validation_start.isoformat()}"
        )
    return {
        "train_until": train_until,
        "validation_start": validation_start,
        "test_start": test_start,
        "end": data_end,
    }


def window_label(start: datetime | None, end: datetime) -> str:
    left = start.isoformat() if start else "-inf"
    return f"[{left}, {end.isoformat()})"


def round_window_end(now: datetime, granularity: timedelta = timedelta(minutes=1)) -> datetime:
    """Retrain windows end 'now', floored so two reconciles in one minute agree."""
    seconds = granularity.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=now.tzinfo)
