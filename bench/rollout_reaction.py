"""Rollout reaction: time from a failing canary to traffic back on the stable version.

The real pieces, in this order: the embedded control plane (localcluster), a real MLflow
sqlite registry with a good v1 (``LogisticModel``) and a v2 whose every prediction is a server
error (``FailingModel``), the real monitor process and the real MLModel operator process. The
benchmark plays KServe's part (it marks InferenceServices Ready) and the predictors' (it posts
their logger CloudEvents to the monitor), as ``tests/integration/test_mlmodel_rollout.py``
does, so the operator's gates see real monitor figures without predictor processes.

Per repetition: an MLModel serves v1 at 100 %; its spec moves to v2; paired good events take
v2 through shadow into the first canary step; then the candidate's events turn into HTTP 500s
(with the stable's still 200s). The clock starts when the first failing events are posted and
stops when the MLModel status shows phase RolledBack with traffic.stable == 100 (the
VirtualService is written in the same operator pass, before the status). Also recorded: when
the operator closed the first failing analysis window (status.analysis.at of the first failed
check), which splits the reaction into "failing start → first failed check" and "first failed
check → rolled back".

The reaction is bounded by analysis.interval × threshold + the operator tick; as each window
closes at the first operator tick after it is due and the next one opens there, the tick's lag
can come once per window: threshold × (interval + tick). (Kopf's timer sleeps the tick after
each pass ends, so a pass's own time adds to each tick as well.) The report gives both ratios.

    .venv/bin/python bench/rollout_reaction.py --intervals 2,5 --threshold 2 --repetitions 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from _repo import write_json  # first: puts the test harness on the path

from contracts.kube import GROUP, VERSION
from tests.support.kube import NS, CustomObjects
from tests.support.localcluster import start_cluster
from tests.support.models import FailingModel, LogisticModel, register_model
from tests.support.monitor import PredictorLogs
from tests.support.stack import MONITOR, OPERATORS, Stack
from tests.support.waiting import wait_for

RESULTS = Path(__file__).resolve().parent / "results" / "rollout_reaction.json"
PLURAL = "mlmodels"
REGISTERED = "reaction"
# Candidate (and stable) events per burst while the canary fails, and the pause between
# bursts: ~40 candidate requests a second, far above minRequests in every window.
BURST, BURST_PAUSE_S = 8, 0.2
MIN_REQUESTS = 20
POLL_S = 0.05


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Cluster(CustomObjects):
    """The few API calls the scenario needs: MLModels, KServe's part for InferenceServices,
    and the predictors' loggers (`.predictors`)."""

    def __init__(self, kubeconfig: Path, monitor_url: str) -> None:
        super().__init__(kubeconfig)
        self.predictors = PredictorLogs(monitor_url)

    def create_model(self, name: str, version: str, interval_s: float, threshold: int) -> None:
        spec = {
            "model": {"name": REGISTERED, "version": version},
            "rollout": {
                "shadow": {"duration": "1s", "minRequests": 10},
                "analysis": {
                    "interval": f"{interval_s:g}s",
                    "minRequests": MIN_REQUESTS,
                    "threshold": threshold,
                },
            },
        }
        self.create(PLURAL, "MLModel", name, spec)

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def model_status(self, name: str) -> dict[str, Any]:
        return self.status(PLURAL, name)

    def set_version(self, name: str, version: str) -> None:
        self.patch(PLURAL, name, {"spec": {"model": {"version": version}}})

    def route_weights(self, name: str) -> list[int]:
        found = self.virtual_service(name)
        return [int(r["weight"]) for r in found["spec"]["http"][0]["route"]]


class FailingTraffic:
    """Posts failing candidate + healthy stable events in bursts until stopped (a thread, so
    the measuring loop only polls the status)."""

    def __init__(self, cluster: Cluster, model: str, stable: str, candidate: str) -> None:
        self.cluster, self.model, self.stable, self.candidate = cluster, model, stable, candidate
        self.started_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> float:
        self.started_at = time.time()
        self._thread.start()
        return self.started_at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.cluster.predictors.send(self.model, self.candidate, "candidate", BURST, status=500)
            self.cluster.predictors.send(self.model, self.stable, "stable", BURST)
            self._stop.wait(BURST_PAUSE_S)


def reach_canary(cluster: Cluster, stack: Stack, name: str, v1: str, v2: str) -> None:
    """v1 Promoted, then v2 through shadow (good paired events) into the first canary step."""
    cluster.context = stack.logs
    cluster.mark_ready(f"{name}-v{v1}", url=f"http://{name}-v{v1}.{NS}.example.com")
    wait_for(
        lambda: cluster.model_status(name).get("phase") == "Promoted", 90, "v1 Promoted", POLL_S,
        stack.logs,
    )  # fmt: skip
    cluster.set_version(name, v2)
    cluster.mark_ready(f"{name}-v{v2}", url=f"http://{name}-v{v2}.{NS}.example.com")

    def paired_until_canary() -> bool:
        if cluster.model_status(name).get("phase") == "Canary":
            return True
        cluster.predictors.send_paired(name, v1, v2, 12)
        return False

    wait_for(paired_until_canary, 120, "Canary", POLL_S, stack.logs)


def measure_once(
    cluster: Cluster, stack: Stack, name: str, versions: tuple[str, str], interval_s: float,
    threshold: int,
) -> dict[str, Any]:  # fmt: skip
    v1, v2 = versions
    cluster.create_model(name, v1, interval_s, threshold)
    reach_canary(cluster, stack, name, v1, v2)
    canary = cluster.model_status(name)
    traffic = FailingTraffic(cluster, name, v1, v2)
    failing_from = traffic.start()
    first_fail_at: float | None = None
    status: dict[str, Any] = {}
    rolled_back_at = 0.0
    try:
        deadline = failing_from + threshold * interval_s * 4 + 60
        while time.time() < deadline:
            status = cluster.model_status(name)
            analysis = status.get("analysis") or {}
            if first_fail_at is None and analysis.get("outcome") == "Fail":
                first_fail_at = parse_time(analysis.get("at"))
            stable = (status.get("traffic") or {}).get("stable")
            if status.get("phase") == "RolledBack" and stable == 100:
                rolled_back_at = time.time()
                break
            time.sleep(POLL_S)
        else:
            raise RuntimeError(f"{name}: no rollback in time; last status {status}\n{stack.logs()}")
    finally:
        traffic.stop()
    weights = cluster.route_weights(name)
    cluster.delete(name)
    return {
        "canary_entered_at": parse_time(canary.get("phaseStartedAt")),
        "failing_from": failing_from,
        "first_failed_check_at": first_fail_at,
        "rolled_back_at": rolled_back_at,
        "reaction_s": rolled_back_at - failing_from,
        "failing_to_first_failed_check_s": (
            (first_fail_at - failing_from) if first_fail_at else None
        ),
        "first_failed_check_to_rolled_back_s": (
            (rolled_back_at - first_fail_at) if first_fail_at else None
        ),
        "route_weights_after": weights,
        "failed_checks": status.get("failedChecks"),
        "analysis": status.get("analysis"),
    }


def summarize(reps: list[dict[str, Any]], interval_s: float, threshold: int, tick_s: float) -> dict[str, Any]:  # fmt: skip
    reactions = [r["reaction_s"] for r in reps]
    bound = interval_s * threshold + tick_s
    # Each window closes at the first tick at or after it is due and the next one opens there,
    # so the tick's lag can add up once per window.
    per_window_bound = threshold * (interval_s + tick_s)
    median = statistics.median(reactions)
    return {
        "interval_s": interval_s,
        "threshold": threshold,
        "tick_s": tick_s,
        "reaction_s": {"median": median, "min": min(reactions), "max": max(reactions)},
        "bound_s": bound,
        "median_over_bound": median / bound,
        "max_over_bound": max(reactions) / bound,
        "per_window_bound_s": per_window_bound,
        "median_over_per_window_bound": median / per_window_bound,
        "repetitions": reps,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    intervals = [float(i) for i in args.intervals.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-reaction-") as tmp_name:
        root = Path(tmp_name)
        cluster_handle = start_cluster(root / "localcluster")
        stack: Stack | None = None
        try:
            stack = Stack(
                cluster_handle.kubeconfig, root, {"KUBELOOP_ANALYSIS_TICK_S": str(args.tick)}
            )
            v1 = register_model(stack.tracking_uri, root, REGISTERED, LogisticModel())
            v2 = register_model(stack.tracking_uri, root, REGISTERED, FailingModel())
            stack.start(MONITOR, OPERATORS)
            cluster = Cluster(cluster_handle.kubeconfig, stack.monitor_url)
            series = []
            for interval_s in intervals:
                reps = []
                for rep in range(args.repetitions):
                    name = f"react-{int(interval_s * 1000)}ms-{rep}"
                    result = measure_once(
                        cluster, stack, name, (v1, v2), interval_s, args.threshold
                    )
                    print(f"  interval {interval_s:g}s rep {rep}: {result['reaction_s']:.2f}s")
                    reps.append(result)
                series.append(summarize(reps, interval_s, args.threshold, args.tick))
        finally:
            if stack is not None:
                stack.stop_all()
            cluster_handle.background.stop()
    return {
        "measured_from": "the first failing candidate events posted to the monitor",
        "measured_to": "MLModel status phase RolledBack with traffic.stable == 100",
        "series": series,
        "load": {"burst_events": BURST, "burst_pause_s": BURST_PAUSE_S, "min_requests": MIN_REQUESTS,
                 "status_poll_s": POLL_S},
        "machine": {"cpus": psutil.cpu_count(), "load_avg_1m": psutil.getloadavg()[0],
                    "python": platform.python_version()},
    }  # fmt: skip


def print_report(report: dict[str, Any]) -> None:
    print(f"\nreaction = {report['measured_from']} → {report['measured_to']}")
    header = (
        f"{'interval s':>10} {'threshold':>9} {'tick s':>6} {'median s':>9} {'min s':>6}"
        f" {'max s':>6} {'bound s':>8} {'median/bound':>12} {'T×(I+tick) s':>12}"
        f" {'median/that':>11} {'fail→1st check s':>16}"
        f" {'1st check→rolled back s':>23}"
    )
    print(header)
    for row in report["series"]:
        to_first = [
            r["failing_to_first_failed_check_s"]
            for r in row["repetitions"]
            if r["failing_to_first_failed_check_s"] is not None
        ]
        to_back = [
            r["first_failed_check_to_rolled_back_s"]
            for r in row["repetitions"]
            if r["first_failed_check_to_rolled_back_s"] is not None
        ]
        reaction = row["reaction_s"]
        print(
            f"{row['interval_s']:>10g} {row['threshold']:>9} {row['tick_s']:>6g}"
            f" {reaction['median']:>9.2f} {reaction['min']:>6.2f} {reaction['max']:>6.2f}"
            f" {row['bound_s']:>8.1f} {row['median_over_bound']:>12.2f}"
            f" {row['per_window_bound_s']:>12.1f} {row['median_over_per_window_bound']:>11.2f}"
            f" {statistics.median(to_first) if to_first else float('nan'):>16.2f}"
            f" {statistics.median(to_back) if to_back else float('nan'):>23.2f}"
        )
    print(f"load average (1 min) at the end: {report['machine']['load_avg_1m']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="2,5", help="analysis intervals in seconds")
    parser.add_argument("--threshold", type=int, default=2, help="failed checks before rollback")
    parser.add_argument("--tick", type=float, default=1.0, help="operator analysis tick, s")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON report goes")
    args = parser.parse_args()
    report = run(args)
    print_report(report)
    write_json(args.out, report)


if __name__ == "__main__":
    main()
