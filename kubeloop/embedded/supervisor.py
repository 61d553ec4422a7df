"""The embedded default's supervisor: one process, as a kubelet would be, that runs the
control plane and the service processes (`services.controlplane_process` and
`services.service_processes`, the list the test harness starts too), restarts a component
that exits with exponential backoff (`backoff.after_exit`), and records per component its
pid, start time, restarts and last exit in `<state>/supervisor.json` (written atomically).

`kubeloop up` starts it detached (`python -m kubeloop.embedded.supervisor`) and waits until
its record says `running`; `kubeloop down` sends it SIGTERM: it stops the operators, the
serving controller and the monitor, then the control plane (SIGTERM, SIGKILL after a grace
period), and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeloop.embedded import launcher, services
from kubeloop.embedded.backoff import BackoffPolicy, after_exit
from kubeloop.embedded.launcher import EmbeddedError, EmbeddedLayout, ProcessSpec

CONTROLPLANE = "controlplane"
POLL_S = 0.2
GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def describe_exit(returncode: int) -> dict[str, Any]:
    """A Popen return code as the record keeps it: {"code": 1} or {"signal": "SIGKILL"}."""
    if returncode < 0:
        try:
            return {"signal": signal.Signals(-returncode).name}
        except ValueError:
            return {"signal": f"signal {-returncode}"}
    return {"code": returncode}


@dataclass
class Component:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    streak: int = 0
    start_at: float | None = None  # in backoff: when to start again
    last_exit: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        running = self.proc is not None and self.proc.poll() is None
        return {
            "pid": self.proc.pid if running and self.proc else None,
            "state": "running" if running else "backoff" if self.start_at else "stopped",
            "startedAt": _iso(self.started_at) if running else None,
            "startedAtEpoch": self.started_at if running else None,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "nextStartAt": _iso(self.start_at) if self.start_at is not None else None,
            "url": self.spec.url,
        }


@dataclass
class Supervisor:
    layout: EmbeddedLayout
    components: dict[str, Component]
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    phase: str = "starting"
    error: str | None = None
    stopping: bool = False

    def save(self) -> None:
        launcher.write_json_atomic(
            self.layout.supervisor_file,
            {
                "supervisor": {"pid": os.getpid()},
                "phase": self.phase,
                "error": self.error,
                "policy": {
                    "initialSeconds": self.policy.initial_s,
                    "capSeconds": self.policy.cap_s,
                    "resetAfterSeconds": self.policy.reset_after_s,
                },
                "components": {name: c.record() for name, c in self.components.items()},
            },
        )

    def start(self, name: str) -> subprocess.Popen[bytes]:
        component = self.components[name]
        component.proc = launcher.start_process(component.spec, self.layout)
        component.started_at = time.time()
        component.start_at = None
        self.save()
        return component.proc

    def start_up(self, timeout: float) -> None:
        """The control plane, its CRDs, then the services; the first start, no restarts."""
        plane = self.start(CONTROLPLANE)
        launcher.wait_for_api(self.layout, plane, timeout=timeout)
        services.apply_crds(self.layout.kubeconfig, services.crd_documents())
        for name in self.components:
            if name != CONTROLPLANE:
                self.start(name)
        self.phase = "running"
        self.save()

    def tick(self, now: float) -> None:
        """Notice exits (schedule the restart), start what is due."""
        changed = False
        for name, component in self.components.items():
            proc = component.proc
            if proc is not None and proc.poll() is not None:
                # Whatever it left in its process group (predictors, workers) goes with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                restart = after_exit(self.policy, component.streak, component.started_at, now)
                component.last_exit = {**describe_exit(proc.returncode), "at": _iso(now)}
                component.streak, component.start_at = restart.streak, restart.start_at
                component.proc = None
                print(
                    f"{_iso(now)} {name} exited ({component.last_exit}); "
                    f"restart in {restart.delay_s:.0f}s",
                    flush=True,
                )
                changed = True
            due = component.start_at is not None and now >= component.start_at
            if component.proc is None and due:
                component.restarts += 1
                self.start(name)
                print(f"{_iso(now)} {name} restarted (restart {component.restarts})", flush=True)
        if changed:
            self.save()

    def stop_all(self) -> None:
        """The services together, then the control plane: SIGTERM, SIGKILL after GRACE_S."""
        services_first = [n for n in self.components if n != CONTROLPLANE]
        for group in (services_first, [n for n in self.components if n == CONTROLPLANE]):
            procs = [p for n in group if (p := self.components[n].proc) is not None]
            for proc in procs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + GRACE_S
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, deadline - time.monotonic()))
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.phase = "stopped"
        self.save()

    def supervise(self, until: Callable[[], bool]) -> None:
        """Watch and restart until `until()` (the test harness runs this in a thread)."""
        while not until():
            self.tick(time.time())
            time.sleep(POLL_S)

    def run(self, timeout: float) -> int:
        def request_stop(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            self.start_up(timeout)
            self.supervise(lambda: self.stopping)
        except Exception as error:  # recorded for `kubeloop up`, which prints it
            self.phase, self.error = "failed", str(error)
            print(f"start-up failed: {error}", file=sys.stderr, flush=True)
            traceback.print_exc()  # the message alone did not say where (supervisor.log)
        finally:
            failed = self.phase == "failed"
            self.stop_all()
            if failed:
                self.phase = "failed"
                self.save()
        return 1 if self.phase == "failed" else 0


def build(layout: EmbeddedLayout, host: str, port: int) -> Supervisor:
    """The components `kubeloop up` runs, built once so a restart reuses the same ports."""
    specs = [
        services.controlplane_process(layout, host, port),
        *services.service_processes(layout, host),
    ]
    return Supervisor(layout, {spec.name: Component(spec) for spec in specs})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeloop.embedded.supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=launcher.DEFAULT_PORT)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    layout = EmbeddedLayout(Path(args.state_dir))
    try:
        supervisor = build(layout, args.host, args.port)
    except EmbeddedError as error:
        print(f"kubeloop supervisor: {error}", file=sys.stderr)
        return 2
    return supervisor.run(args.timeout)


if __name__ == "__main__":
    sys.exit(main())
