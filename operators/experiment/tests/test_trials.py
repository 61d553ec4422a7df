"""Pure planning for Experiments: trials, search, the registration gate, split windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from operators.api.experiment import Objective, Search, Split, Trial, TrialState
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


def test_split_windows_are_time_ordered() -> None:
    windows = t.split_windows(Split(validation="2d", test="1d"), NOW)
    assert windows["train_until"] == windows["validation_start"] == NOW - timedelta(days=3)
    assert windows["test_start"] == NOW - timedelta(days=1)
    with pytest.raises(ValueError, match="trainUntil"):
        t.split_windows(Split(validation="2d", test="1d", trainUntil=NOW), NOW)  # type: ignore[call-arg]
