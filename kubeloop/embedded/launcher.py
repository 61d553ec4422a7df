"""The embedded default: the local control plane, the operators and the local controllers,
run as supervised child processes whose state lives in one directory (`.kubeloop/`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

PIDS_FILE = "pids.json"
SUPERVISOR_FILE = "supervisor.json"
DEFAULT_PORT = 8443


class EmbeddedError(RuntimeError):
    """A problem a person can fix; printed without a traceback."""


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Where the component answers, when clients outside kubeloop need it (the monitor's
    # feedback API): kept in the supervisor's record.
    url: str | None = None


@dataclass
class EmbeddedLayout:
    state_dir: Path
    # A control plane started elsewhere (the test harness): its kubeconfig, not cluster/'s.
    cluster_kubeconfig: Path | None = None

    @property
    def cluster_dir(self) -> Path:
        return self.state_dir / "cluster"

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_kubeconfig or self.cluster_dir / "kubeconfig"

    @property
    def monitor_token_file(self) -> Path:
        """The embedded bearer token of the monitor (0600): the operator and the local
        predictors send it; the monitor's own default location, so either may make it."""
        return self.state_dir / "monitor" / "token"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_file(self) -> Path:
        return self.state_dir / PIDS_FILE

    @property
    def supervisor_file(self) -> Path:
        """The supervisor's record: per component its pid, start, restarts and last exit."""
        return self.state_dir / SUPERVISOR_FILE


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited, waiting for a parent to reap it (an init that reaps nothing keeps it so)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def read_pids(layout: EmbeddedLayout) -> dict[str, int]:
    if not layout.pids_file.exists():
        return {}
    try:
        data = json.loads(layout.pids_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise EmbeddedError(
            f"{layout.pids_file} is unreadable ({error}); remove it or run `kubeloop down`"
        ) from error
    return {str(k): int(v) for k, v in data.get("pids", {}).items()}


def check_state_dir(layout: EmbeddedLayout) -> None:
    """Refuse to start over a running or half-stopped instance."""
    pids = read_pids(layout)
    if not pids:
        return
    alive = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    if alive:
        raise EmbeddedError(
            f"kubeloop is already running from {layout.state_dir} ({', '.join(alive)}); "
            f"`export KUBECONFIG={layout.kubeconfig.resolve()}` to use it, or `kubeloop down`"
        )
    raise EmbeddedError(
        f"stale state in {layout.state_dir}: a previous `kubeloop up` did not stop cleanly "
        "(its processes are gone). Run `kubeloop down` to clear it, then `kubeloop up` again."
    )


def java_available() -> bool:
    if shutil.which("java") is None:
        return False
    result = subprocess.run(["java", "-version"], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def start_process(spec: ProcessSpec, layout: EmbeddedLayout) -> subprocess.Popen[bytes]:
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(layout.logs_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 (owned by the child)
    env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
    # A new session, so `kubeloop up` can return while the children keep running.
    return subprocess.Popen(
        spec.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def wait_for_api(layout: EmbeddedLayout, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (layout.logs_dir / "controlplane.log").read_text(errors="replace")[-2000:]
            raise EmbeddedError(f"the control plane exited (code {proc.returncode}):\n{log}")
        if layout.kubeconfig.exists():
            endpoint = kubeconfig_endpoint(layout.kubeconfig)
            try:
                answer = httpx.get(
                    f"{endpoint.server}/readyz",
                    headers={"Authorization": f"Bearer {endpoint.token}"},
                    verify=endpoint.ssl_context(),
                    timeout=2,
                )
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise EmbeddedError(f"the control plane did not become ready within {timeout:.0f}s")


@dataclass(frozen=True)
class Endpoint:
    server: str
    token: str
    ca_pem: str | None

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        return ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else True


def kubeconfig_endpoint(path: Path) -> Endpoint:
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca_data = cluster.get("certificate-authority-data")
    return Endpoint(
        server=cluster["server"],
        token=config["users"][0]["user"].get("token", ""),
        ca_pem=base64.b64decode(ca_data).decode() if ca_data else None,
    )


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)


def write_pids(layout: EmbeddedLayout, pids: dict[str, int], port: int) -> None:
    write_json_atomic(layout.pids_file, {"pids": pids, "port": port})


def read_supervisor_state(layout: EmbeddedLayout) -> dict[str, Any]:
    """The supervisor's record, or {} when there is none (or it is being replaced)."""
    try:
        return dict(json.loads(layout.supervisor_file.read_text()))
    except (OSError, json.JSONDecodeError):
        return {}


def component_url(layout: EmbeddedLayout, name: str) -> str | None:
    """The URL the supervisor's record gives for a component (the monitor), or None."""
    component = read_supervisor_state(layout).get("components", {}).get(name) or {}
    url = component.get("url")
    return str(url) if url else None


def component_pids(layout: EmbeddedLayout) -> dict[str, int]:
    components = read_supervisor_state(layout).get("components", {})
    return {name: int(c["pid"]) for name, c in components.items() if c.get("pid")}


def stop_all(layout: EmbeddedLayout, timeout: float = 40.0) -> list[str]:
    """Stop every recorded process (SIGTERM, then SIGKILL), then whatever the supervisor's
    record says is still alive, then the pipeline runs; returns the names stopped."""
    pids = read_pids(layout)
    components = component_pids(layout)
    alive = {name for name, pid in components.items() if pid_alive(pid)}
    stopped = []
    # The supervisor first: it stops its components, operators first, the control plane last.
    for name in sorted(pids, key=lambda n: (n != "supervisor", n == "controlplane")):
        pid = pids[name]
        if not pid_alive(pid):
            continue
        _terminate(pid, timeout)
        stopped.append(name)
    for name, pid in components.items():  # a supervisor killed before it stopped them all
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if name in alive or "supervisor" in stopped:
            stopped.append(name)
    kill_pipeline_workers(layout.state_dir)
    layout.pids_file.unlink(missing_ok=True)
    return stopped


def kill_pipeline_workers(state_dir: Path) -> None:
    """Kill the local pipeline runs the operators left running (each leads its own session and
    records its pid in `<state_dir>/pipeline-runs/<run>/state.json`)."""
    for state_file in (state_dir / "pipeline-runs").glob("*/state.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            state = json.loads(state_file.read_text())
            if state.get("state") in ("PENDING", "RUNNING") and state.get("pid"):
                os.killpg(int(state["pid"]), signal.SIGKILL)


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_gone(pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` for `pid` to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Reap it if it is our child (tests call up and down in one process).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
