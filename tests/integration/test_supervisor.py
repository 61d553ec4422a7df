"""The supervised embedded default as a user runs it: `kubeloop up`, then `kill -9` of each
component in turn; the supervisor restarts it, `kubeloop status` shows restarts=1 and the
last exit as SIGKILL, the control plane answers again with its objects; `kubeloop down`
leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeloop.embedded import launcher
from kubeloop.embedded.launcher import EmbeddedLayout
from tests.support.processes import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
KUBELOOP = [sys.executable, "-m", "kubeloop.cli"]
COMPONENTS = ("controlplane", "monitor", "serving", "operators")


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def _processes_of(state: Path) -> list[int]:
    """Every live process whose command line or environment names the state dir (each
    component inherits KUBELOOP_TEST_MARKER)."""
    marker = str(state.resolve()).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().split()[2] == "Z":
                continue
            blobs = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in blobs:
            found.append(int(entry.name))
    return found


class Up:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.layout = EmbeddedLayout(state)
        self.env = {**os.environ, "KUBECONFIG": str(self.layout.kubeconfig)}

    def kubeloop(self, *args: str) -> Any:
        return _run(*KUBELOOP, *args, "--state-dir", str(self.state), env=self.env)

    def kubectl(self, *args: str) -> Any:
        return _run("kubectl", *args, env=self.env, timeout=30)

    def record(self, name: str) -> dict[str, Any]:
        return dict(launcher.read_supervisor_state(self.layout)["components"][name])


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    state = (tmp_path_factory.mktemp("supervised") / ".kubeloop").resolve()
    # The state dir in every component's environment, so the leak check below finds them.
    env = {**os.environ, "KUBELOOP_TEST_MARKER": str(state)}
    started = _run(
        *KUBELOOP, "up", "--state-dir", str(state), "--port", str(free_port()), env=env, timeout=180
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"export KUBECONFIG={(state / 'cluster' / 'kubeconfig').resolve()}" in started.stdout
    running = Up(state)
    made = running.kubectl("create", "configmap", "survivor", "--from-literal=k=v")
    assert made.returncode == 0, made.stderr
    try:
        yield running
    finally:
        _run(*KUBELOOP, "down", "--state-dir", str(state), timeout=120)


def test_every_component_is_started_and_shown_in_status(up: Up) -> None:
    for name in COMPONENTS:
        record = up.record(name)
        assert record["state"] == "running" and launcher.pid_alive(record["pid"]), name
        assert record["restarts"] == 0 and record["lastExit"] is None
    status = up.kubeloop("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["COMPONENT", "PID", "UPTIME", "RESTARTS", "LAST", "EXIT"]
    assert "No kubeloop resources yet" in status.stdout  # the resource summary follows
    again = up.kubeloop("up")
    assert again.returncode == 2 and "already running" in again.stderr


def _kill_and_wait_for_restart(up: Up, name: str) -> dict[str, Any]:
    old = up.record(name)["pid"]
    os.kill(old, signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        record = up.record(name)
        fresh = record["pid"] not in (None, old) and record["state"] == "running"
        return record if fresh and record["restarts"] >= 1 else None

    return wait_for(restarted, 60, f"the supervisor to restart {name}", interval_s=0.5)


@pytest.mark.parametrize("name", COMPONENTS)
def test_kill_9_is_restarted_and_reported(up: Up, name: str) -> None:
    record = _kill_and_wait_for_restart(up, name)
    assert record["restarts"] == 1 and record["lastExit"]["signal"] == "SIGKILL"
    assert launcher.pid_alive(record["pid"])

    line = wait_for(
        lambda: next(
            (row for row in up.kubeloop("status").stdout.splitlines() if row.startswith(name)),
            None,
        ),
        30,
        f"{name} in kubeloop status",
    )
    assert line.split()[1] == str(record["pid"]) and line.split()[3] == "1", line
    assert "SIGKILL at" in line

    # The control plane answers again, with its objects.
    got = wait_for(
        lambda: (
            (r := up.kubectl("get", "configmap", "survivor", "-o", "json")).returncode == 0 and r
        ),
        60,
        "the API server to answer after the restart",
        interval_s=0.5,
    )
    assert json.loads(got.stdout)["data"] == {"k": "v"}


def test_the_operators_still_reconcile_after_the_restarts(up: Up) -> None:
    applied = up.kubectl("apply", "-f", "examples/invalid/mlmodel-bad-version.yaml")
    assert applied.returncode == 0, applied.stderr

    def reason() -> str | None:
        out = up.kubectl("get", "mlmodel", "churn-two-selectors", "-o", "json")
        conditions = json.loads(out.stdout or "{}").get("status", {}).get("conditions", [])
        return next((c["reason"] for c in conditions if c["type"] == "Ready"), None)

    assert wait_for(reason, 90, "the restarted operators to reconcile") == "InvalidSpec"
    logs = up.kubeloop("logs", "operators", "--tail", "5")
    assert logs.returncode == 0 and 0 < len(logs.stdout.splitlines()) <= 5
    unknown = up.kubeloop("logs", "nobody")
    assert unknown.returncode == 2 and "operators" in unknown.stderr


def test_down_leaves_no_process_behind(up: Up) -> None:
    assert _processes_of(up.state), "the leak check must see the running components"
    down = up.kubeloop("down")
    assert down.returncode == 0, down.stderr
    assert "supervisor" in down.stdout and "controlplane" in down.stdout
    left = wait_for(lambda: not _processes_of(up.state), 30, "every process to exit")
    assert left
    assert up.kubeloop("down").stdout.strip() == "nothing was running"
