"""Chaos matrix: kill -9 one component of the supervised embedded default at one moment of
the loop, and check that the loop still finishes as it should.

Each cell runs on a fresh state dir: the supervisor (`kubeloop.embedded.supervisor`, in a
thread of this process, through `Stack.supervised`) runs the control plane, the monitor and
the operators; the benchmark plays KServe's part and the predictors' (as
`tests/integration/test_mlmodel_rollout.py` does). Moments:

- `backfill`: a FeatureView's backfill run is in flight (Spark local, ~2000 events);
  invariant: the backfill SUCCEEDED with exactly one pipeline run (none launched twice).
- `shadow`: an MLModel's good candidate is in shadow; invariant: Promoted, each canary step
  passed once and in order (StepPassed events), no step skipped.
- `canary`: a failing candidate is in its first canary step; invariant: RolledBack, the
  stable version kept, never Promoted.

Victims: `controlplane`, `operators`, `monitor`; and `pipeline-worker` for the backfill
moment (`--moments backfill --victims pipeline-worker`: nothing restarts it; the invariant is
that the backfill ends, SUCCEEDED or FAILED naming the lost worker, with one run). Not in
this matrix (say so in the report): the serving controller and predictors (the benchmark
plays KServe, so no predictor runs) and the `trial` moment (an Experiment's training run).

    .venv/bin/python bench/chaos.py                      # the whole matrix (~15-30 min)
    .venv/bin/python bench/chaos.py --moments shadow --victims monitor,operators
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

from kubeloop.embedded.supervisor import CONTROLPLANE, Supervisor
from tests.support.chaos import (
    PIPELINE_WORKER,
    backfill_under_kill,
    rollout_under_kill,
    small_feature_view,
    step_weights,
)
from tests.support.kube import CustomObjects
from tests.support.models import FailingModel, LogisticModel, register_model
from tests.support.processes import free_port
from tests.support.stack import MONITOR, OPERATORS, Stack

RESULTS = Path(__file__).resolve().parent / "results" / "chaos.json"
MOMENTS = ("backfill", "shadow", "canary")
VICTIMS = (CONTROLPLANE, OPERATORS, MONITOR)
TIMEOUT_S = 480.0


@contextlib.contextmanager
def supervised(root: Path) -> Iterator[tuple[Stack, Supervisor, CustomObjects]]:
    state = root / "state"
    env = {"KUBELOOP_ANALYSIS_TICK_S": "0.5", "KUBELOOP_POLL_INTERVAL_S": "1"}
    stack = Stack(state / "cluster" / "kubeconfig", state, env, install_crds=False)
    stack.add_control_plane(free_port())
    with stack.supervised(CONTROLPLANE, MONITOR, OPERATORS) as supervisor:
        yield stack, supervisor, CustomObjects(stack.kubeconfig, context=stack.logs)


def backfill_cell(root: Path, victim: str) -> dict[str, Any]:
    spec = small_feature_view(root)
    with supervised(root) as (stack, supervisor, objects):
        runs_dir = stack.state_dir / "pipeline-runs"

        def run_names(prefix: str) -> list[str]:
            return sorted(p.name for p in runs_dir.glob(f"{prefix}*"))

        outcome = backfill_under_kill(
            objects, supervisor, victim, "chaos", spec, run_names, TIMEOUT_S, runs_dir.joinpath
        )
    once = outcome["runs"] == [outcome["run"]]
    # A killed worker cannot finish its run: the loop must say so (FAILED), not hang.
    ends = ("SUCCEEDED", "FAILED") if victim == PIPELINE_WORKER else ("SUCCEEDED",)
    outcome["invariants"] = {"finished": outcome["state"] in ends, "noRunLaunchedTwice": once}
    return outcome


def rollout_cell(root: Path, victim: str, moment: str) -> dict[str, Any]:
    failing = moment == "canary"
    with supervised(root) as (stack, supervisor, objects):
        stable = register_model(stack.tracking_uri, stack.state_dir, "churn", LogisticModel())
        model = FailingModel() if failing else LogisticModel()
        candidate = register_model(stack.tracking_uri, stack.state_dir, "churn", model)
        outcome = rollout_under_kill(
            objects,
            supervisor,
            victim,
            "Canary" if failing else "Shadow",
            stack.monitor_url,
            (stable, candidate),
            "chaos",
            failing=failing,
            timeout_s=TIMEOUT_S,
            monitor_headers=stack.monitor_headers,
        )
    phases = [phase for phase, _, _ in outcome["seen"]]
    if failing:
        outcome["invariants"] = {
            "finished": outcome["phase"] == "RolledBack",
            "failedCandidateNotPromoted": "Promoted" not in phases
            and outcome["stableVersion"] == stable,
        }
    else:
        outcome["invariants"] = {
            "finished": outcome["phase"] == "Promoted",
            "noStepSkippedOrRepeated": step_weights(outcome["stepPassed"]) == [50, 100],
        }
    return outcome


def run_cell(moment: str, victim: str, work: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{moment}-{victim}-", dir=work))
    started = time.monotonic()
    cell: Callable[[], dict[str, Any]] = (
        (lambda: backfill_cell(root, victim))
        if moment == "backfill"
        else (lambda: rollout_cell(root, victim, moment))
    )
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
    # Also: pipeline-worker (backfill moment only; nothing restarts it).
    parser.add_argument("--victims", default=",".join(VICTIMS))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    cells = []
    for moment in args.moments.split(","):
        for victim in args.victims.split(","):
            result = run_cell(moment, victim, work)
            cells.append(result)
            verdict = "PASS" if result["passed"] else "FAIL"
            print(
                f"{moment:9} {victim:13} {verdict}  {result['seconds']:6.1f}s  "
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
        "passed": sum(1 for c in cells if c["passed"]),
        "ran": len(cells),
    }


if __name__ == "__main__":
    main()
