"""Chaos scenarios on the supervised embedded default: kill -9 one component at a chosen
moment of the loop and record what the loop did. `tests/integration/test_chaos.py` runs the
short form and asserts; `bench/chaos.py` runs the matrix and reports.

Each scenario returns a plain dict (JSON for the bench report): the victim, when it was
killed, whether the supervisor restarted it, and the facts the invariants are about (pipeline
runs launched, rollout phases, steps and weights seen, events).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import urllib3
from kubernetes.client import ApiException

from kubeloop.embedded.supervisor import Supervisor
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset
from tests.support.kube import CustomObjects, condition
from tests.support.monitor import PredictorLogs
from tests.support.specs import feature_view_spec
from tests.support.waiting import wait_for

FEATUREVIEWS, MLMODELS = "featureviews", "mlmodels"
SQL = "SELECT user_id, event_timestamp, created_timestamp, dwell_seconds FROM source"
RESTART_TIMEOUT_S = 60.0
PIPELINE_WORKER = "pipeline-worker"


def kill_9(supervisor: Supervisor, name: str) -> dict[str, Any]:
    """SIGKILL the component; wait until the supervisor has started it again."""
    component = supervisor.components[name]
    assert component.proc is not None, f"{name} is not running"
    old, restarts = component.proc.pid, component.restarts
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()

    def restarted() -> bool:
        proc = component.proc
        return component.restarts > restarts and proc is not None and proc.pid != old

    wait_for(restarted, RESTART_TIMEOUT_S, f"the supervisor to restart {name}", interval_s=0.2)
    last_exit = dict(component.last_exit or {})
    return {
        "victim": name,
        "oldPid": old,
        "restartedAfterS": round(time.monotonic() - killed_at, 2),
        "lastExit": last_exit.get("signal") or last_exit.get("code"),
    }


def status_of(objects: CustomObjects, plural: str, name: str) -> dict[str, Any]:
    """The object's status, or {} while the API server is away (it may be the victim)."""
    try:
        return objects.status(plural, name)
    except (ApiException, urllib3.exceptions.HTTPError):
        return {}


def small_feature_view(root: Path) -> dict[str, Any]:
    """The smallest FeatureView whose backfill is a real run: 2000 events over two days,
    written under `root/data`."""
    write_dataset(GeneratorConfig(rows=2000, days=2, seed=5), root / "data")
    window = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z"}
    return feature_view_spec(str(root / "data" / "events"), SQL, ["dwell_seconds"], window)


def kill_worker(run_dir: Path) -> dict[str, Any]:
    """SIGKILL a local pipeline run's worker (its process group) once it has recorded its pid;
    nobody restarts it: the operator must notice."""

    def worker_pid() -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((run_dir / "state.json").read_text()).get("pid")
        return None

    pid = wait_for(worker_pid, RESTART_TIMEOUT_S, f"the worker of {run_dir.name}")
    os.killpg(int(pid), signal.SIGKILL)
    return {
        "victim": PIPELINE_WORKER,
        "oldPid": pid,
        "restartedAfterS": None,
        "lastExit": "SIGKILL",
    }


def backfill_under_kill(
    objects: CustomObjects,
    supervisor: Supervisor,
    victim: str,
    name: str,
    spec: dict[str, Any],
    run_names: Callable[[str], list[str]],
    timeout_s: float,
    run_dir: Callable[[str], Path] = Path,
) -> dict[str, Any]:
    """Create a FeatureView; kill `victim` while its backfill run is in flight; wait for the
    outcome. `run_names(prefix)` lists the pipeline runs launched (one run directory each);
    `victim` may be PIPELINE_WORKER, the run's worker process (`run_dir(run)` holds it)."""
    objects.create(FEATUREVIEWS, "FeatureView", name, spec)

    def backfill_in(*states: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = status_of(objects, FEATUREVIEWS, name)
            return status if (status.get("lastBackfill") or {}).get("state") in states else None

        return wait_for(probe, timeout_s, f"{name}: backfill {states}", 1.0, objects.context)

    launched = backfill_in("PENDING", "RUNNING")
    if victim == PIPELINE_WORKER:
        kill = kill_worker(run_dir(launched["lastBackfill"]["run"]))
    else:
        kill = kill_9(supervisor, victim)
    status = backfill_in("SUCCEEDED", "FAILED")
    return {
        **kill,
        "moment": "backfill running",
        "runBeforeKill": launched["lastBackfill"]["run"],
        "runs": run_names(f"{name}-"),
        "state": status["lastBackfill"]["state"],
        "run": status["lastBackfill"]["run"],
        "backfilled": condition(status, "Backfilled").get("status"),
        "message": status["lastBackfill"].get("message"),
    }


class RolloutDriver:
    """Plays KServe's and the predictors' parts for one MLModel (as the rollout tests do),
    and writes down every phase, step and weight it sees on the way."""

    def __init__(
        self,
        objects: CustomObjects,
        monitor_url: str,
        name: str,
        monitor_headers: dict[str, str] | None = None,
    ) -> None:
        self.objects = objects
        self.predictors = PredictorLogs(monitor_url, headers=monitor_headers)
        self.name = name
        self.seen: list[tuple[str, int | None, int]] = []

    def observe(self) -> dict[str, Any]:
        status = status_of(self.objects, MLMODELS, self.name)
        if not status:
            return status
        sample = (
            str(status.get("phase")),
            status.get("stepIndex"),
            int((status.get("traffic") or {}).get("candidate", 0)),
        )
        if not self.seen or self.seen[-1] != sample:
            self.seen.append(sample)
        return status

    def traffic(self, stable: str, candidate: str, failing: bool) -> None:
        """One burst for the phase the MLModel is in; the monitor may be restarting."""
        phase = self.seen[-1][0] if self.seen else ""
        with contextlib.suppress(httpx.HTTPError):
            if phase == "Shadow":
                self.predictors.send_paired(self.name, stable, candidate, 12)
            elif phase == "Canary":
                status = 500 if failing else 200
                self.predictors.send(self.name, candidate, "candidate", 8, status=status)
                self.predictors.send(self.name, stable, "stable", 8)

    def drive_until(
        self, phases: set[str], stable: str, candidate: str, failing: bool, timeout_s: float
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.observe()
            if status.get("phase") in phases:
                return status
            self.traffic(stable, candidate, failing)
            return None

        return wait_for(probe, timeout_s, f"{self.name}: one of {sorted(phases)}", 0.5)


def rollout_under_kill(
    objects: CustomObjects,
    supervisor: Supervisor,
    victim: str,
    moment: str,
    monitor_url: str,
    versions: tuple[str, str],
    name: str,
    failing: bool = False,
    timeout_s: float = 120.0,
    monitor_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An MLModel at `versions[0]` moves to `versions[1]`; `victim` is killed when the rollout
    reaches `moment` ("Shadow" or "Canary"); the candidate's canary traffic fails when
    `failing`. Waits for Promoted or RolledBack. `monitor_headers`: the monitor's token, which
    the loggers the driver plays must present."""
    stable, candidate = versions
    objects.create(
        MLMODELS,
        "MLModel",
        name,
        {
            "model": {"name": "churn", "version": stable},
            "rollout": {
                "shadow": {"duration": "1s", "minRequests": 10},
                "steps": [1, 50, 100],
                "analysis": {"interval": "1s", "minRequests": 5, "threshold": 1},
            },
        },
    )
    objects.mark_ready(f"{name}-v{stable}", url=f"http://{name}-v{stable}.example.com")
    driver = RolloutDriver(objects, monitor_url, name, monitor_headers)
    driver.drive_until({"Promoted"}, stable, candidate, False, timeout_s)
    driver.seen.clear()  # from here on: the candidate's rollout
    objects.patch(MLMODELS, name, {"spec": {"model": {"version": candidate}}})
    objects.mark_ready(f"{name}-v{candidate}", url=f"http://{name}-v{candidate}.example.com")
    ends = {"Promoted", "RolledBack", "Failed"}
    # The operator may record the spec change before its timer starts the candidate's rollout:
    # until then the status still reads Promoted on the stable version, which is not an end.
    wait_for(
        lambda: _candidate_taken_up(driver, candidate),
        timeout_s,
        f"{name}: the rollout of version {candidate} to start",
    )
    reached = driver.drive_until({moment} | ends, stable, candidate, failing, timeout_s)
    assert reached.get("phase") == moment, f"{name} passed {moment} before the kill: {reached}"
    kill = kill_9(supervisor, victim)
    final = driver.drive_until(ends, stable, candidate, failing, timeout_s)
    events = wait_for(lambda: _events(objects, name), 30, "the MLModel's events")
    return {
        **kill,
        "moment": moment,
        "failingCandidate": failing,
        "phase": final.get("phase"),
        "stableVersion": final.get("stableVersion"),
        "candidate": candidate,
        "seen": driver.seen,
        "stepPassed": [m for r, m in events if r == "StepPassed"],
        "reasons": sorted({r for r, _ in events}),
    }


def _candidate_taken_up(driver: RolloutDriver, candidate: str) -> bool:
    status = driver.observe()
    if status.get("phase") != "Promoted" or status.get("stableVersion") == candidate:
        return True
    # Still the stable version's Promoted: not a phase of the candidate's rollout, so it is
    # not kept in what the invariants read ("never Promoted" means the candidate never was).
    driver.seen.clear()
    return False


def _events(objects: CustomObjects, name: str) -> list[tuple[str, str]] | None:
    try:
        listed = objects.events_for(name)
    except (ApiException, urllib3.exceptions.HTTPError):
        return None
    # In the order they were written: the list is in no particular order, and timestamps
    # have a resolution of a second.
    listed.sort(key=lambda e: int(e.metadata.resource_version))
    return [(e.reason, e.message) for e in listed]


def step_weights(step_passed: list[str]) -> list[int]:
    """The weights the StepPassed events moved the canary to ("…; canary at 50%" → 50)."""
    return [int(m.rsplit("canary at ", 1)[1].rstrip("%")) for m in step_passed]
