"""Stack start-up for integration tests, e2e tests and benchmarks: the processes `kubeloop up`
starts beside the control plane (`kubeloop.embedded.services.service_processes`: monitor,
serving controller, operators), run against a test's cluster, each with a log file.

- `Stack`: start any of them by name (`MONITOR`, `SERVING`, `OPERATORS`), stop, restart, logs;
  or run them under the embedded default's supervisor (`Stack.supervised`, the chaos tests).
- `model_stack`: a pytest fixture (module scope), a `Stack` for the MLModel tests.
- `OperatorHarness`: the operator process alone (poll interval 1 s) and the custom-object
  helper, for the FeatureView and Experiment operator tests.

The state (operator state, MLflow SQLite store, monitor and serving data) lives under one
directory, laid out as `kubeloop up` lays out `.kubeloop/`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeloop.embedded import services
from kubeloop.embedded.launcher import EmbeddedLayout, ProcessSpec
from kubeloop.embedded.services import apply_crds, crd_documents
from kubeloop.embedded.supervisor import CONTROLPLANE, Component, Supervisor
from tests.support.kube import CustomObjects
from tests.support.localcluster import RunningCluster
from tests.support.processes import Process, free_port, kill_pipeline_workers, start_process

MONITOR, SERVING, OPERATORS = "monitor", "serving", "operators"
HOST = "127.0.0.1"


class Stack:
    """The embedded default's service processes against a running control plane."""

    def __init__(
        self,
        kubeconfig: Path,
        state_dir: Path,
        operator_env: dict[str, str] | None = None,
        install_crds: bool = True,
    ) -> None:
        self.layout = EmbeddedLayout(state_dir, cluster_kubeconfig=kubeconfig)
        self.monitor_port = free_port(HOST)
        specs = services.service_processes(self.layout, HOST, self.monitor_port)
        self.specs: dict[str, ProcessSpec] = {spec.name: spec for spec in specs}
        self.specs[OPERATORS].env.update(operator_env or {})
        self.tracking_uri = services.mlflow_tracking_uri(self.layout)
        self.processes: dict[str, Process] = {}
        if install_crds:
            apply_crds(kubeconfig, crd_documents())

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def state_dir(self) -> Path:
        return self.layout.state_dir

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.monitor_port}/"

    @property
    def monitor_headers(self) -> dict[str, str]:
        """The embedded token the monitor requires (``kubeloop up`` writes it, 0600)."""
        token = self.layout.monitor_token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def start(self, *names: str) -> None:
        for name in names:
            spec = self.specs[name]
            self.processes[name] = start_process(name, spec.argv, self.layout.logs_dir, spec.env)

    @contextlib.contextmanager
    def running(self, *names: str) -> Iterator[Stack]:
        """Start `names`; stop everything on the way out."""
        try:
            self.start(*names)
            yield self
        finally:
            self.stop_all()

    @contextlib.contextmanager
    def supervised(self, *names: str) -> Iterator[Supervisor]:
        """Start `names` under the embedded default's supervisor (restarts with its backoff),
        run in a thread of the test; stop them all, then the pipeline runs, on the way out."""
        supervisor = Supervisor(self.layout, {n: Component(self.specs[n]) for n in names})
        done = threading.Event()
        thread = threading.Thread(target=supervisor.supervise, args=(done.is_set,), daemon=True)
        try:
            if CONTROLPLANE in names:  # the control plane, its CRDs, then the others
                supervisor.start_up(timeout=120.0)
            for name in names:
                if supervisor.components[name].proc is None:
                    supervisor.start(name)
            thread.start()
            yield supervisor
        finally:
            done.set()
            if thread.is_alive():
                thread.join()
            supervisor.stop_all()
            kill_pipeline_workers(self.state_dir)

    def add_control_plane(self, port: int) -> None:
        """Let `supervised` run the control plane too (its data under the state dir); for
        a Stack made with `kubeconfig=<state_dir>/cluster/kubeconfig, install_crds=False`."""
        self.specs[CONTROLPLANE] = services.controlplane_process(self.layout, HOST, port)

    def stop(self, name: str) -> int | None:
        """Stop one (its log stays readable); returns its exit code."""
        process = self.processes.get(name)
        return process.stop() if process is not None else None

    def stop_all(self) -> None:
        """Operators first, the monitor last; then the pipeline runs the operators left."""
        for name in (OPERATORS, SERVING, MONITOR):
            self.stop(name)
        kill_pipeline_workers(self.state_dir)

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.alive()

    def logs(self, chars: int = 3000) -> str:
        """The tail of each component's log (started here or by a supervisor)."""
        tails = []
        for name in self.specs:
            path = self.layout.logs_dir / f"{name}.log"
            if path.is_file():
                tails.append(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails)


@pytest.fixture(scope="module")
def model_stack(
    localcluster_module: RunningCluster, tmp_path_factory: pytest.TempPathFactory
) -> Stack:
    """A module's Stack (not started) on the module's cluster, analysis tick 0.5 s; its
    `state_dir` also holds the MLflow store the test registers versions in."""
    return Stack(
        localcluster_module.kubeconfig,
        tmp_path_factory.mktemp("stack"),
        {"KUBELOOP_ANALYSIS_TICK_S": "0.5"},
    )


class OperatorHarness(CustomObjects):
    """The real operator process (poll interval `poll_s`) and its custom objects."""

    def __init__(
        self, kubeconfig: Path, workdir: Path, poll_s: float = 1.0, install_crds: bool = True
    ) -> None:
        super().__init__(kubeconfig, context=self.logs, interval_s=1.0)
        self.workdir = workdir
        self.poll_s = poll_s
        env = {"KUBELOOP_POLL_INTERVAL_S": str(poll_s)}
        self.stack = Stack(kubeconfig, workdir / "state", env, install_crds)
        # Only the operator runs: no monitor to point it at.
        self.stack.specs[OPERATORS].env.pop("KUBELOOP_MONITOR_URL", None)

    @property
    def state_dir(self) -> Path:
        return self.stack.state_dir

    @property
    def tracking_uri(self) -> str:
        return self.stack.tracking_uri

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "pipeline-runs"

    def start(self) -> None:
        self.stack.start(OPERATORS)

    def stop(self) -> int | None:
        """SIGINT (Kopf's clean exit); returns the exit code."""
        return self.stack.stop(OPERATORS)

    def alive(self) -> bool:
        return self.stack.alive(OPERATORS)

    def logs(self) -> str:
        return self.stack.logs(6000) or "(operator not running)"

    def close(self) -> None:
        """Stop the operator, then the pipeline workers it started."""
        self.stack.stop_all()

    def run_names(self, prefix: str) -> list[str]:
        """Runs the pipeline backend holds whose name starts with `prefix`."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.name.startswith(prefix))
