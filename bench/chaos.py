"""Chaos matrix: kill -9 one component of the supervised embedded default at one moment of
the loop, and check that the loop still finishes as it should.

Each cell runs on a fresh state dir: the supervisor (`kubeloop.embedded.supervisor`, in a
thread of this process, through `Stack.supervised`) runs the control plane, the monitor and
the operators, and for the serving victims the local serving controller too. Moments:

- `backfill`: a FeatureView's backfill run is in flight (Spark local, ~2000 events);
  invariant: the backfill SUCCEEDED with exactly one pipeline run (none launched twice).
- `trial`: an Experiment's one trial (kfp.local training run: point-in-time join, torchrun
  on CPU, evaluation) is in flight; invariant: Succeeded, one model version registered (in
  MLflow as in the status), one pipeline run.
- `shadow`: an MLModel's good candidate is in shadow; invariant: Promoted, each canary step
  passed once and in order (StepPassed events), no step skipped.
- `canary`: a failing candidate is in its first canary step; invariant: RolledBack, the
  stable version kept, never Promoted. Played KServe: the candidate's calls answer 500;
  real serving: it answers right but 0.8 s late (an erroring one is caught in shadow).

Victims: `controlplane`, `operators`, `monitor` (the supervisor restarts them); `serving`
(the serving controller, supervised too) and `predictor` (the candidate's predictor process,
which the serving controller restarts) in the rollout moments only; `pipeline-worker` (the
run's worker process, which nothing restarts) in the backfill and trial moments only: the
run ends, SUCCEEDED or FAILED naming the lost worker, one run, and the resource says so in a
condition. For `controlplane`, `operators` and `monitor` in a rollout the benchmark plays
KServe's and the predictors' part (as `tests/integration/test_mlmodel_rollout.py` does) and
checks, where the monitor is the victim, that every call it acknowledged (a 200) is counted
after its restart; for `serving` and `predictor` the real serving controller runs the
predictors and the router, and the benchmark is a user calling the router. The cells left
out (a predictor during a backfill, ...) are listed in the report as not meaningful.

    .venv/bin/python bench/chaos.py                      # the whole matrix (~30 min)
    .venv/bin/python bench/chaos.py --moments shadow --victims monitor,predictor
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _repo import write_json  # first: puts the test harness on the path
from mlflow import MlflowClient

from kubeloop.embedded.supervisor import CONTROLPLANE, Supervisor
from tests.support.chaos import (
    PIPELINE_WORKER,
    PREDICTOR,
    RolloutDriver,
    ServedDriver,
    acknowledged_kept,
    backfill_under_kill,
    monitor_requests,
    rollout_under_kill,
    small_feature_view,
    step_weights,
    trial_under_kill,
)
from tests.support.experiment_data import experiment_spec, view_spec, write_data
from tests.support.kube import CustomObjects
from tests.support.models import FailingModel, LogisticModel, SlowModel, register_model
from tests.support.processes import free_port
from tests.support.stack import MONITOR, OPERATORS, SERVING, Stack

RESULTS = Path(__file__).resolve().parent / "results" / "chaos.json"
MOMENTS = ("backfill", "trial", "shadow", "canary")
VICTIMS = (CONTROLPLANE, OPERATORS, MONITOR, SERVING, PREDICTOR, PIPELINE_WORKER)
TIMEOUT_S = 480.0
SLOW_S = 0.8  # the served failing candidate's delay per call: over the 500 ms p99 limit
TRIAL_TIMEOUT_S = 900.0  # Spark, then torchrun, on a loaded 2-core machine
RUNS_ONLY = ("backfill", "trial")  # moments with a pipeline run and nothing served
NOT_MEANINGFUL = {
    **{
        (moment, victim): "nothing is served while only a pipeline run is in flight: no "
        "predictor runs, and the serving controller has no part in the run"
        for moment in RUNS_ONLY
        for victim in (SERVING, PREDICTOR)
    },
    **{
        (moment, PIPELINE_WORKER): "a rollout launches no pipeline run: there is no worker"
        for moment in ("shadow", "canary")
    },
}


@contextlib.contextmanager
def supervised(root: Path, *extra: str) -> Iterator[tuple[Stack, Supervisor, CustomObjects]]:
    state = root / "state"
    env = {"KUBELOOP_ANALYSIS_TICK_S": "0.5", "KUBELOOP_POLL_INTERVAL_S": "1"}
    stack = Stack(state / "cluster" / "kubeconfig", state, env, install_crds=False)
    stack.add_control_plane(free_port())
    with stack.supervised(CONTROLPLANE, MONITOR, *extra, OPERATORS) as supervisor:
        yield stack, supervisor, CustomObjects(stack.kubeconfig, context=stack.logs)


def _run_names(stack: Stack) -> Callable[[str], list[str]]:
    runs_dir = stack.state_dir / "pipeline-runs"
    return lambda prefix: sorted(p.name for p in runs_dir.glob(f"{prefix}*"))


def backfill_cell(root: Path, victim: str) -> dict[str, Any]:
    spec = small_feature_view(root)
    with supervised(root) as (stack, supervisor, objects):
        runs_dir = stack.state_dir / "pipeline-runs"
        run_names = _run_names(stack)
        outcome = backfill_under_kill(
            objects, supervisor, victim, "chaos", spec, run_names, TIMEOUT_S, runs_dir.joinpath
        )
    once = outcome["runs"] == [outcome["run"]]
    # A killed worker cannot finish its run: the loop must say so (FAILED), not hang.
    ends = ("SUCCEEDED", "FAILED") if victim == PIPELINE_WORKER else ("SUCCEEDED",)
    outcome["invariants"] = {"finished": outcome["state"] in ends, "noRunLaunchedTwice": once}
    return outcome


def trial_cell(root: Path, victim: str) -> dict[str, Any]:
    """One trial (the test's data and spec, cut to one grid point) on a FeatureView that
    backfills once; the kill comes while the trial's training run is in flight."""
    data = write_data(root)
    view = view_spec(data["events"])
    view["backfill"].pop("schedule")  # one backfill: no Spark run each minute beside the trial
    spec = experiment_spec(data["labels"])
    spec["search"].update(
        parameters=[
            {"name": "lr", "values": [0.3]},
            {"name": "hidden_units", "type": "categorical", "choices": ["none"]},
        ],
        maxTrials=1,
        parallelTrials=1,
    )
    model = spec["register"]["model"]
    with supervised(root) as (stack, supervisor, objects):
        objects.create("featureviews", "FeatureView", "stats", view)
        outcome = trial_under_kill(
            objects,
            supervisor,
            victim,
            "chaos",
            spec,
            _run_names(stack),
            TRIAL_TIMEOUT_S,
            (stack.state_dir / "pipeline-runs").joinpath,
        )
        registered = MlflowClient(stack.tracking_uri).search_model_versions(f"name='{model}'")
    outcome["registeredInMlflow"] = sorted(str(v.version) for v in registered)
    once = outcome["runs"] == [outcome["runBeforeKill"]]
    if victim == PIPELINE_WORKER:
        killed = next(t for t in outcome["trials"] if t["name"] == outcome["trialKilled"])
        outcome["invariants"] = {
            "finished": outcome["phase"] in ("Succeeded", "Failed"),
            "noRunLaunchedTwice": once,
            "trialNamesTheLostWorker": "worker process" in (killed["message"] or ""),
            # The Experiment itself says why, not only the trial's row.
            "conditionNamesTheLostWorker": "worker process"
            in outcome["conditions"].get("Trained", ""),
            "noVersionRegisteredTwice": len(registered) <= 1,
        }
    else:
        outcome["invariants"] = {
            "finished": outcome["phase"] == "Succeeded",
            "noRunLaunchedTwice": once,
            "oneVersionRegistered": outcome["registeredInMlflow"] == ["1"]
            and outcome["registeredVersion"] == "1",
        }
    return outcome


def rollout_cell(root: Path, victim: str, moment: str) -> dict[str, Any]:
    failing = moment == "canary"
    served = victim in (SERVING, PREDICTOR)
    # Under real serving an erroring candidate never reaches a canary step: its shadow's
    # errors roll it back first. One that answers right but too slowly passes shadow (which
    # does not judge latency) and fails its first step on p99 (maxLatencyP99Ms, 500 ms).
    failing_model = SlowModel(delay_s=SLOW_S) if served else FailingModel()
    shadow = {"mirrorPercent": 20} if served and failing else None  # a slow shadow keeps up
    with supervised(root, *([SERVING] if served else [])) as (stack, supervisor, objects):
        stable = register_model(stack.tracking_uri, stack.state_dir, "churn", LogisticModel())
        model = failing_model if failing else LogisticModel()
        candidate = register_model(stack.tracking_uri, stack.state_dir, "churn", model)
        driver = (
            ServedDriver(objects, "chaos")
            if served
            else RolloutDriver(objects, stack.monitor_url, "chaos", stack.monitor_headers)
        )
        outcome = rollout_under_kill(
            objects,
            supervisor,
            victim,
            "Canary" if failing else "Shadow",
            driver,
            (stable, candidate),
            "chaos",
            failing=failing,
            timeout_s=TIMEOUT_S,
            served_by=SERVING if served else None,
            shadow=shadow,
        )
        if isinstance(driver, ServedDriver):
            outcome["userAnswers"] = dict(driver.answers)
        elif victim == MONITOR:
            counted = monitor_requests(stack.monitor_url, "chaos", stack.monitor_headers)
            outcome["acknowledged"] = dict(driver.acked)
            outcome["countedAfterRestart"] = counted
    phases = [phase for phase, _, _ in outcome["seen"]]
    if failing:
        invariants = {
            "finished": outcome["phase"] == "RolledBack",
            "failedCandidateNotPromoted": "Promoted" not in phases
            and outcome["stableVersion"] == stable,
        }
    else:
        invariants = {
            "finished": outcome["phase"] == "Promoted",
            "noStepSkippedOrRepeated": step_weights(outcome["stepPassed"]) == [50, 100],
        }
    if victim == MONITOR:
        invariants["noAcknowledgedEventLost"] = acknowledged_kept(
            driver.acked, outcome["countedAfterRestart"]
        )
    outcome["invariants"] = invariants
    return outcome


def run_cell(moment: str, victim: str, work: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{moment}-{victim}-", dir=work))
    started = time.monotonic()
    cells: dict[str, Callable[[], dict[str, Any]]] = {
        "backfill": lambda: backfill_cell(root, victim),
        "trial": lambda: trial_cell(root, victim),
    }
    cell = cells.get(moment, lambda: rollout_cell(root, victim, moment))
    try:
        outcome = cell()
        passed = all(outcome["invariants"].values()) and outcome["lastExit"] == "SIGKILL"
        result = {"moment": moment, "victim": victim, "passed": passed, **outcome}
    except Exception as error:  # a cell that errs is a result too
        result = {
            "moment": moment,
            "victim": victim,
            "passed": False,
            "error": f"{type(error).__name__}: {error}"[:2000],
            "traceback": traceback.format_exc()[-3000:],
        }
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moments", default=",".join(MOMENTS))
    parser.add_argument("--victims", default=",".join(VICTIMS))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    cells: list[dict[str, Any]] = []
    for moment in args.moments.split(","):
        for victim in args.victims.split(","):
            if (moment, victim) in NOT_MEANINGFUL:
                why = NOT_MEANINGFUL[moment, victim]
                cells.append({"moment": moment, "victim": victim, "notRun": why})
                print(f"{moment:9} {victim:15} not run: {why}", flush=True)
                write_json(args.out, report(cells))
                continue
            result = run_cell(moment, victim, work)
            cells.append(result)
            verdict = "PASS" if result["passed"] else "FAIL"
            print(
                f"{moment:9} {victim:15} {verdict}  {result['seconds']:6.1f}s  "
                f"restarted after {result.get('restartedAfterS', '-')}s  "
                f"{result.get('invariants', result.get('error'))}",
                flush=True,
            )
            write_json(args.out, report(cells))
    print(f"report: {args.out}")


def report(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "cells": cells,
        "passed": sum(1 for c in cells if c.get("passed")),
        "ran": sum(1 for c in cells if "notRun" not in c),
        "notRun": sum(1 for c in cells if "notRun" in c),
    }


if __name__ == "__main__":
    main()
