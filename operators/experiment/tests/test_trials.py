"""Pure planning for Experiments: trials, search, the registration gate, split windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from operators.api.experiment import Comparison, Objective, Search, Split, Trial, TrialState
from operators.experiment import trials as t

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def _search(**kw: object) -> Search:
    return Search.model_validate(kw)


def test_grid_is_the_cartesian_product_truncated_to_max_trials() -> None:
    search = _search(
        algorithm="grid",
        maxTrials=10,
        parameters=[
            {"name": "lr", "values": [0.1, 0.01]},
            {"name": "layers", "type": "int", "values": [1, 2, 3]},
        ],
    )
    params = t.trial_params(search)
    assert len(params) == 6
    assert params[0] == {"lr": "0.1", "layers": "1"} and params[-1] == {"lr": "0.01", "layers": "3"}
    assert len(t.trial_params(search.model_copy(update={"max_trials": 4}))) == 4


def test_random_search_is_seeded_within_bounds_and_distinct() -> None:
    search = _search(
        algorithm="random",
        maxTrials=5,
        seed=7,
        parameters=[
            {"name": "lr", "min": 1e-4, "max": 1e-1, "scale": "log"},
            {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
        ],
    )
    first, second = t.trial_params(search), t.trial_params(search)
    assert first == second and len(first) == 5
    assert all(1e-4 <= float(p["lr"]) <= 1e-1 for p in first)
    assert len({tuple(sorted(p.items())) for p in first}) == 5
    assert t.trial_params(search.model_copy(update={"seed": 8})) != first


def test_run_names_are_deterministic_and_distinct() -> None:
    trials = t.plan_trials("churn", 0, _search(parameters=[{"name": "lr", "values": [1, 2]}]))
    again = t.plan_trials("churn", 0, _search(parameters=[{"name": "lr", "values": [1, 2]}]))
    assert [x.run for x in trials] == [x.run for x in again]
    assert len({x.run for x in trials}) == 2
    assert t.plan_trials("churn", 1, _search())[0].run != trials[0].run


def test_launch_respects_parallelism() -> None:
    trials = [Trial(name=f"t{i}") for i in range(4)]
    assert [x.name for x in t.to_launch(trials, 2)] == ["t0", "t1"]
    trials[0] = trials[0].model_copy(update={"state": TrialState.RUNNING})
    assert [x.name for x in t.to_launch(trials, 2)] == ["t1"]
    assert not t.all_finished(trials)


def _done(name: str, auc: float, baseline: float = 0.6) -> Trial:
    return Trial(
        name=name,
        state=TrialState.SUCCEEDED,
        metrics={"auc": auc, "baseline_auc": baseline, "logloss": 1 - auc},
    )


def test_best_trial_and_registration_gate() -> None:
    objective = Objective(metric="auc", goal="maximize", threshold=0.7)
    trials = [_done("a", 0.72), _done("b", 0.81), Trial(name="c", state=TrialState.FAILED)]
    best = t.pick_best(trials, objective)
    assert best is not None and best.trial == "b" and best.baseline == 0.6
    assert t.registration_verdict(best, objective)[0]
    low = t.pick_best([_done("a", 0.65)], objective)
    ok, why = t.registration_verdict(low, objective)
    assert not ok and "threshold" in why
    ok, why = t.registration_verdict(
        t.pick_best([_done("a", 0.75, baseline=0.8)], objective), objective
    )
    assert not ok and "baseline" in why
    minimize = Objective(metric="logloss", goal="minimize")
    assert t.pick_best(trials, minimize).trial == "b"  # type: ignore[union-attr]
    assert t.registration_verdict(None, objective) == (
        False,
        "no trial succeeded with the objective metric",
    )


def _versus(reference: str, improvement: float, low: float, version: str | None = None) -> dict:
    """A comparison as components/evaluate writes it into the report (snake_case)."""
    return {
        "reference": reference,
        "version": version,
        "metric": "auc",
        "window": "test",
        "rows": 500,
        "candidate": 0.8,
        "reference_value": 0.8 - improvement,
        "improvement": improvement,
        "low": low,
        "high": improvement + (improvement - low),
        "confidence": 0.95,
        "resamples": 1000,
        "seed": 0,
        "min_improvement": 0.0,
        "passed": low > 0 and improvement >= 0,
        "reason": f"improvement {improvement:+.4f} vs {reference}",
    }


def _compared(champion: dict | None, baseline: dict) -> Trial:
    report = {"vs_champion": champion, "vs_baseline": baseline}
    return _done("b", 0.8).model_copy(update=t.trial_comparisons(report))


def test_champion_and_baseline_comparisons_gate_registration() -> None:
    objective = Objective(metric="auc", goal="maximize")
    beats_baseline = _versus("single_feature:x", 0.1, 0.05)
    # The champion not beaten: refused, with the reason the condition carries.
    tie = _compared(_versus("champion", 0.001, -0.02, "3"), beats_baseline)
    assert isinstance(tie.vs_champion, Comparison) and tie.vs_champion.version == "3"
    best = t.pick_best([tie], objective)
    assert best is not None and best.vs_champion == tie.vs_champion
    ok, why = t.registration_verdict(best, objective)
    assert not ok and "vs champion" in why
    assert t.refusal_reason(best) == "ChampionNotBeaten"
    # The champion beaten but not the baseline's interval: BaselineNotBeaten.
    weak = _compared(_versus("champion", 0.05, 0.01, "3"), _versus("base_rate", 0.01, -0.01))
    best = t.pick_best([weak], objective)
    assert not t.registration_verdict(best, objective)[0]
    assert t.refusal_reason(best) == "BaselineNotBeaten"
    # Both beaten: registered; both figures go to the version's tags as camelCase JSON.
    good = _compared(_versus("champion", 0.05, 0.01, "3"), beats_baseline)
    best = t.pick_best([good], objective)
    assert best is not None
    ok, why = t.registration_verdict(best, objective)
    assert ok and "beats champion version 3" in why
    tags = t.comparison_lineage(best)
    assert json.loads(tags["vs_champion"])["referenceValue"] == pytest.approx(0.75)
    assert json.loads(tags["vs_baseline"])["reference"] == "single_feature:x"
    # No champion yet (a first version): the baseline comparison only.
    first = t.pick_best([_compared(None, beats_baseline)], objective)
    assert first is not None and first.vs_champion is None
    assert t.registration_verdict(first, objective)[0]
    assert set(t.comparison_lineage(first)) == {"vs_baseline"}
    assert t.refusal_reason(t.pick_best([_done("a", 0.5)], objective)) == "ObjectiveNotMet"


def test_split_windows_are_time_ordered() -> None:
    windows = t.split_windows(Split(validation="2d", test="1d"), NOW)
    assert windows["train_until"] == windows["validation_start"] == NOW - timedelta(days=3)
    assert windows["test_start"] == NOW - timedelta(days=1)
    with pytest.raises(ValueError, match="trainUntil"):
        t.split_windows(Split(validation="2d", test="1d", trainUntil=NOW), NOW)  # type: ignore[call-arg]
