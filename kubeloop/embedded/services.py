"""What `kubeloop up` runs: the process list of the embedded default, the CRDs it installs,
and `up()`, which starts the supervisor that runs them (the CLI and the demo call it; the
test harness starts the same list)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.auth import MONITOR_TOKEN_FILE_ENV
from kubeloop.embedded import launcher
from kubeloop.embedded.launcher import EmbeddedError, EmbeddedLayout, ProcessSpec
from services.monitor.auth.tokens import ensure_token

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# How often the embedded monitor checks drift (seconds); the demo shortens it.
DRIFT_INTERVAL_ENV = "KUBELOOP_DRIFT_INTERVAL_S"


def crd_documents() -> list[dict[str, Any]]:
    """The CRDs `kubeloop up` installs: ours, plus the serving kinds the local controllers
    realize (KServe InferenceService, Istio VirtualService) when that package ships them."""
    import yaml

    from operators.api.crdgen import build_crd
    from operators.api.kinds import ALL_KINDS

    docs = [build_crd(kind) for kind in ALL_KINDS]
    serving_crds = REPO_ROOT / "localcluster" / "serving" / "crds"
    for path in sorted(serving_crds.glob("*.yaml")) if serving_crds.is_dir() else []:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def apply_crds(kubeconfig: Path, docs: list[dict[str, Any]], timeout: float = 30.0) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    api = client.ApiextensionsV1Api(api_client)
    for doc in docs:
        name = doc["metadata"]["name"]
        try:
            api.create_custom_resource_definition(doc)
        except ApiException as error:
            if error.status != 409:
                raise EmbeddedError(f"applying CRD {name} failed: {error.body}") from error
            current = api.read_custom_resource_definition(name)
            doc["metadata"]["resourceVersion"] = current.metadata.resource_version
            api.replace_custom_resource_definition(name, doc)
    deadline = time.monotonic() + timeout
    for doc in docs:
        name = doc["metadata"]["name"]
        while True:
            crd = api.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise EmbeddedError(f"CRD {name} was not Established within {timeout:.0f}s")
            time.sleep(0.1)


def controlplane_process(layout: EmbeddedLayout, host: str, port: int) -> ProcessSpec:
    argv = launcher.python_module(
        "localcluster", "--data-dir", str(layout.cluster_dir), "--host", host, "--port", str(port)
    )
    return ProcessSpec("controlplane", argv)


def mlflow_tracking_uri(layout: EmbeddedLayout) -> str:
    """The embedded default's model registry: an MLflow SQLite store under the state dir."""
    mlflow_dir = (layout.state_dir / "mlflow").resolve()
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlflow_dir / 'mlflow.db'}"


def monitor_process(
    layout: EmbeddedLayout, host: str, port: int, tracking_uri: str | None = None
) -> ProcessSpec:
    args = ["--host", host, "--port", str(port)]
    args += ["--data-dir", str((layout.state_dir / "monitor").resolve())]
    # Authentication on: the embedded token for kubeloop's own processes, and the control
    # plane's TokenReview/SubjectAccessReview for anyone else (label jobs with a Role).
    args += ["--token-file", str(monitor_token(layout))]
    args += ["--kubernetes-auth", "--kubeconfig", str(layout.kubeconfig.resolve())]
    if tracking_uri:  # drift references may be runs:/ URIs of this registry
        args += ["--mlflow-tracking-uri", tracking_uri]
    if os.environ.get(DRIFT_INTERVAL_ENV):
        args += ["--drift-interval", os.environ[DRIFT_INTERVAL_ENV]]
    return ProcessSpec(
        "monitor", launcher.python_module("services.monitor", *args), url=f"http://{host}:{port}/"
    )


def monitor_token(layout: EmbeddedLayout) -> Path:
    """The embedded monitor token's file, made (0600) on first use."""
    path = layout.monitor_token_file.resolve()
    ensure_token(path)
    return path


def serving_controller_process(layout: EmbeddedLayout, tracking_uri: str) -> ProcessSpec:
    """Realizes InferenceServices as predictor processes and VirtualServices as routers."""
    argv = launcher.python_module(
        "localcluster.serving.controller",
        "--kubeconfig",
        str(layout.kubeconfig.resolve()),
        "--state-dir",
        str((layout.state_dir / "serving").resolve()),
    )
    # Predictors inherit both: models:/ URIs load from the same registry, and their loggers
    # send the monitor's embedded token.
    env = {"MLFLOW_TRACKING_URI": tracking_uri, MONITOR_TOKEN_FILE_ENV: str(monitor_token(layout))}
    return ProcessSpec("serving", argv, env)


def operator_process(
    layout: EmbeddedLayout, monitor_url: str | None = None, tracking_uri: str | None = None
) -> ProcessSpec:
    env = {
        "KUBECONFIG": str(layout.kubeconfig.resolve()),
        "KUBELOOP_STATE_DIR": str(layout.state_dir.resolve()),
    }
    if monitor_url:
        env["KUBELOOP_MONITOR_URL"] = monitor_url
        env[MONITOR_TOKEN_FILE_ENV] = str(monitor_token(layout))
    if tracking_uri:
        env["KUBELOOP_MLFLOW_TRACKING_URI"] = tracking_uri
    argv = launcher.python_module("operators", "--standalone")
    return ProcessSpec("operators", argv, env)


def service_processes(
    layout: EmbeddedLayout, host: str, monitor_port: int | None = None
) -> list[ProcessSpec]:
    """What runs beside the control plane: monitor, serving controller, operators."""
    monitor_port = monitor_port or launcher.free_port(host)
    monitor_url = f"http://{host}:{monitor_port}/"
    tracking_uri = mlflow_tracking_uri(layout)
    return [
        monitor_process(layout, host, monitor_port, tracking_uri),
        serving_controller_process(layout, tracking_uri),
        operator_process(layout, monitor_url, tracking_uri),
    ]


@dataclass(frozen=True)
class Started:
    """What `up()` started: the layout (kubeconfig, logs) and the API server's address."""

    layout: EmbeddedLayout
    host: str
    port: int

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.port}"


JAVA_MISSING = (
    "warning: Java was not found; Spark backfills will fail until Java 17 is installed "
    "(Debian: apt-get install openjdk-17-jre-headless)"
)


def up(
    state_dir: Path,
    host: str,
    port: int,
    timeout: float,
    warn: Callable[[str], None] | None = None,
) -> Started:
    """Start the supervisor, which starts the control plane, installs the CRDs, starts the
    services and restarts any that exits; returns once all are started, and on any failure
    stops what was started. Raises EmbeddedError for what a person can fix; `warn` hears the
    rest."""
    layout = EmbeddedLayout(state_dir)
    launcher.check_state_dir(layout)
    if not launcher.port_is_free(host, port):
        raise EmbeddedError(f"port {port} on {host} is taken; stop what uses it or pass --port N")
    if warn is not None and not launcher.java_available():
        warn(JAVA_MISSING)
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    layout.supervisor_file.unlink(missing_ok=True)  # a previous run's record
    try:
        supervisor = launcher.start_process(supervisor_process(layout, host, port, timeout), layout)
        launcher.write_pids(layout, {"supervisor": supervisor.pid}, port)
        wait_until_running(layout, supervisor, timeout + 30.0)
    except BaseException:
        launcher.stop_all(layout)
        raise
    return Started(layout, host, port)


def supervisor_process(layout: EmbeddedLayout, host: str, port: int, timeout: float) -> ProcessSpec:
    """The one process `kubeloop up` leaves running; it starts and restarts the others."""
    args = ["--state-dir", str(layout.state_dir), "--host", host, "--port", str(port)]
    return ProcessSpec(
        "supervisor",
        launcher.python_module("kubeloop.embedded.supervisor", *args, "--timeout", str(timeout)),
    )


def wait_until_running(
    layout: EmbeddedLayout, supervisor: subprocess.Popen[bytes], timeout: float
) -> None:
    """Until the supervisor's record says every component was started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = launcher.read_supervisor_state(layout)
        if state.get("phase") == "running":
            return
        if state.get("phase") == "failed" or supervisor.poll() is not None:
            supervisor.wait()
            log = (layout.logs_dir / "supervisor.log").read_text(errors="replace")[-2000:]
            raise EmbeddedError(state.get("error") or f"the supervisor exited:\n{log}")
        time.sleep(0.2)
    raise EmbeddedError(f"kubeloop did not start within {timeout:.0f}s")
