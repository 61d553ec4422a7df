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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil
import urllib3
from kubernetes.client import ApiException

from kubeloop.embedded.supervisor import Supervisor
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset
from tests.support.kube import CustomObjects, condition
from tests.support.monitor import PredictorLogs
from tests.support.specs import feature_view_spec
from tests.support.waiting import wait_for

FEATUREVIEWS, MLMODELS, EXPERIMENTS = "featureviews", "mlmodels", "experiments"
SQL = "SELECT user_id, event_timestamp, created_timestamp, dwell_seconds FROM source"
RESTART_TIMEOUT_S = 60.0
PIPELINE_WORKER = "pipeline-worker"
PREDICTOR = "predictor"  # the candidate's predictor process; the serving controller owns it
NAMESPACE = "default"


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
        # Calls (request + response event) the monitor answered 200 for, per version: what
        # it acknowledged, which must be counted after a kill -9 too.
        self.acked: Counter[str] = Counter()

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
        # A refused or lost post (the monitor restarting) raises before the tally: only
        # what was acknowledged is counted.
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            if phase == "Shadow":
                self.predictors.send_paired(self.name, stable, candidate, 12)
                self.acked.update({stable: 12, candidate: 12})
            elif phase == "Canary":
                status = 500 if failing else 200
                self.predictors.send(self.name, candidate, "candidate", 8, status=status)
                self.acked[candidate] += 8
                self.predictors.send(self.name, stable, "stable", 8)
                self.acked[stable] += 8

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


class Driver(Protocol):
    """What a rollout needs from the test: traffic for the phase the MLModel is in."""

    seen: list[tuple[str, int | None, int]]

    def observe(self) -> dict[str, Any]: ...

    def drive_until(
        self, phases: set[str], stable: str, candidate: str, failing: bool, timeout_s: float
    ) -> dict[str, Any]: ...


class ServedDriver(RolloutDriver):
    """Real serving (the local serving controller runs the predictors and the router): user
    calls go to the MLModel's router URL; the predictors' loggers report to the monitor, the
    router mirrors a shadow's share. Nothing is played: the driver only calls and watches."""

    def __init__(self, objects: CustomObjects, name: str) -> None:
        super().__init__(objects, "http://unused/", name)
        self.answers: Counter[int] = Counter()  # status code (0: no answer) of user calls

    def traffic(self, stable: str, candidate: str, failing: bool) -> None:
        url = (status_of(self.objects, MLMODELS, self.name)).get("url")
        if not url:
            return
        payload = {"instances": [{"x1": 0.5, "x2": 0.25}]}
        with httpx.Client(timeout=10) as http:
            for _ in range(10):
                try:
                    code = http.post(f"{url}/v1/models/{self.name}:predict", json=payload)
                    self.answers[code.status_code] += 1
                except httpx.HTTPError:
                    self.answers[0] += 1


def predictor_pid(supervisor: Supervisor, serving: str, mlmodel: str, version: str) -> int | None:
    """The pid of version `version`'s predictor, a child of the serving controller."""
    component = supervisor.components[serving]
    if component.proc is None:
        return None
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(component.proc.pid).children(recursive=True):
            argv = child.cmdline()
            ours = _arg(argv, "--mlmodel") == mlmodel and _arg(argv, "--model-version") == version
            if "localcluster.serving.predictor" in argv and ours:
                return int(child.pid)
    return None


def _arg(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def _predictor_restarts(objects: CustomObjects, isvc: str) -> int:
    with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
        found = objects.isvc(isvc) or {}
        components = (found.get("status") or {}).get("components") or {}
        return int((components.get("predictor") or {}).get("restartCount") or 0)
    return 0


REMOVED = -1  # kill_predictor: the InferenceService went before a restart was due


def _isvc_removed(objects: CustomObjects, isvc: str) -> bool:
    with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
        found = objects.isvc(isvc)
        return found is None or bool(found.get("metadata", {}).get("deletionTimestamp"))
    return False


def kill_predictor(
    objects: CustomObjects, supervisor: Supervisor, serving: str, mlmodel: str, version: str
) -> dict[str, Any]:
    """SIGKILL version `version`'s predictor; wait until its owner (the serving controller,
    as a Deployment's ReplicaSet would) has started another and says so in the
    InferenceService's restartCount."""
    isvc = f"{mlmodel}-v{version}"
    old = wait_for(
        lambda: predictor_pid(supervisor, serving, mlmodel, version),
        RESTART_TIMEOUT_S,
        f"the predictor of {isvc}",
    )
    restarts = _predictor_restarts(objects, isvc)
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()

    def restarted() -> int | None:
        pid = predictor_pid(supervisor, serving, mlmodel, version)
        if pid is not None and pid != old and _predictor_restarts(objects, isvc) > restarts:
            return pid
        # A rollout that ends first removes the version: no restart is owed (a Deployment
        # deleted with its ReplicaSet starts no new Pod). Seen once in ~10 runs of the
        # failing-canary cell when the restart waited for the controller's next pass.
        return REMOVED if _isvc_removed(objects, isvc) else None

    new = wait_for(restarted, RESTART_TIMEOUT_S, f"the serving controller to restart {isvc}")
    return {
        "victim": PREDICTOR,
        "oldPid": old,
        "newPid": None if new == REMOVED else new,
        "restartedAfterS": None if new == REMOVED else round(time.monotonic() - killed_at, 2),
        "removedBeforeRestartAfterS": (
            round(time.monotonic() - killed_at, 2) if new == REMOVED else None
        ),
        "restartCount": _predictor_restarts(objects, isvc),
        # Nothing else reports it: the process was ours to kill, and it is gone.
        "lastExit": "SIGKILL" if not psutil.pid_exists(old) else "alive",
    }


def rollout_under_kill(
    objects: CustomObjects,
    supervisor: Supervisor,
    victim: str,
    moment: str,
    driver: Driver,
    versions: tuple[str, str],
    name: str,
    failing: bool = False,
    timeout_s: float = 120.0,
    served_by: str | None = None,
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An MLModel at `versions[0]` moves to `versions[1]`; `victim` is killed when the rollout
    reaches `moment` ("Shadow" or "Canary"); the candidate's canary traffic fails when
    `failing`. Waits for Promoted or RolledBack. `driver`: a `RolloutDriver` playing KServe
    (the test marks the InferenceServices Ready), or a `ServedDriver` when `served_by` names
    the supervised serving controller; `victim` may then be PREDICTOR, the candidate's.
    `shadow`: fields of the rollout's shadow stage over the defaults here."""
    stable, candidate = versions
    objects.create(
        MLMODELS,
        "MLModel",
        name,
        {
            "model": {"name": "churn", "version": stable},
            "rollout": {
                "shadow": {"duration": "1s", "minRequests": 10, **(shadow or {})},
                "steps": [1, 50, 100],
                "analysis": {"interval": "1s", "minRequests": 5, "threshold": 1},
            },
        },
    )
    if served_by is None:
        objects.mark_ready(f"{name}-v{stable}", url=f"http://{name}-v{stable}.example.com")
    driver.drive_until({"Promoted"}, stable, candidate, False, timeout_s)
    driver.seen.clear()  # from here on: the candidate's rollout
    objects.patch(MLMODELS, name, {"spec": {"model": {"version": candidate}}})
    if served_by is None:
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
    if victim == PREDICTOR:
        assert served_by is not None, "a predictor runs only under a real serving controller"
        kill = kill_predictor(objects, supervisor, served_by, name, candidate)
        kill["phaseAtRestart"] = driver.observe().get("phase")
    else:
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
        "message": (final.get("analysis") or {}).get("message"),
        "seen": driver.seen,
        "stepPassed": [m for r, m in events if r == "StepPassed"],
        "reasons": sorted({r for r, _ in events}),
    }


def monitor_requests(
    monitor_url: str, name: str, headers: dict[str, str] | None, timeout_s: float = 30.0
) -> dict[str, dict[str, Any]]:
    """Per version, the calls the monitor holds for MLModel `name` (its /counts), once it
    answers again."""

    def probe() -> dict[str, dict[str, Any]] | None:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(
                f"{monitor_url.rstrip('/')}/v1/models/{NAMESPACE}/{name}/counts",
                headers=headers,
                timeout=10,
            )
            if answer.status_code == 200:
                versions = answer.json()["versions"]
                return {
                    v: {"requests": e["requests"], "truncated": e["truncated"]}
                    for v, e in versions.items()
                }
        return None

    return wait_for(probe, timeout_s, f"the monitor's counts for {name}")


def acknowledged_kept(acked: Counter[str], counted: dict[str, dict[str, Any]]) -> bool:
    """Every call the monitor answered 200 for is among those it counts (a call it got but
    whose 200 was lost may be counted too: at least, never fewer)."""
    return all(counted.get(v, {}).get("requests", 0) >= n for v, n in acked.items())


def _candidate_taken_up(driver: Driver, candidate: str) -> bool:
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


def trial_under_kill(
    objects: CustomObjects,
    supervisor: Supervisor,
    victim: str,
    name: str,
    spec: dict[str, Any],
    run_names: Callable[[str], list[str]],
    timeout_s: float,
    run_dir: Callable[[str], Path] = Path,
) -> dict[str, Any]:
    """Create Experiment `name` (its FeatureView must exist); kill `victim` while its first
    trial's training run is in flight; wait until the Experiment has finished (Succeeded or
    Failed). `victim` may be PIPELINE_WORKER, that run's worker process."""
    objects.create(EXPERIMENTS, "Experiment", name, spec)

    def trial_running() -> dict[str, Any] | None:
        status = status_of(objects, EXPERIMENTS, name)
        running = [t for t in status.get("trials") or [] if t.get("state") == "Running"]
        return running[0] if running and running[0].get("run") else None

    trial = wait_for(trial_running, timeout_s, f"{name}: a trial running", 1.0, objects.context)
    if victim == PIPELINE_WORKER:
        kill = kill_worker(run_dir(trial["run"]))
    else:
        kill = kill_9(supervisor, victim)

    def finished() -> dict[str, Any] | None:
        status = status_of(objects, EXPERIMENTS, name)
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(finished, timeout_s, f"{name}: finished", 1.0, objects.context)
    return {
        **kill,
        "moment": "trial running",
        "trialKilled": trial["name"],
        "runBeforeKill": trial["run"],
        "runs": run_names(f"{name}-"),
        "phase": status["phase"],
        "trials": [
            {k: t.get(k) for k in ("name", "run", "state", "message")} for t in status["trials"]
        ],
        "registeredVersion": status.get("registeredVersion"),
        "conditions": {
            c["type"]: f"{c['status']} {c.get('reason')}: {c.get('message')}"[:300]
            for c in status.get("conditions") or []
        },
    }
