"""The supervisor's loop with stand-in components (sleeping Python processes): a kill -9 is
recorded and restarted after the backoff; stopping leaves nothing behind. The real
components are in tests/integration/test_supervisor.py."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeloop.embedded import launcher
from kubeloop.embedded.backoff import BackoffPolicy
from kubeloop.embedded.launcher import EmbeddedLayout, ProcessSpec
from kubeloop.embedded.supervisor import Component, Supervisor, describe_exit
from kubeloop.status import last_exit_text, render_components, uptime_text

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    layout = EmbeddedLayout(tmp_path)
    names = ("controlplane", "monitor", "operators")
    sup = Supervisor(
        layout,
        {name: Component(ProcessSpec(name, SLEEPER)) for name in names},
        BackoffPolicy(initial_s=1.0, cap_s=4.0, reset_after_s=60.0),
    )
    for name in names:
        sup.start(name)
    try:
        yield sup
    finally:
        sup.stop_all()


def _kill(sup: Supervisor, name: str) -> int:
    proc = sup.components[name].proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid


def test_a_killed_component_is_recorded_then_restarted_after_the_backoff(
    supervisor: Supervisor,
) -> None:
    old = _kill(supervisor, "operators")
    now = time.time()
    supervisor.tick(now)
    record = launcher.read_supervisor_state(supervisor.layout)["components"]["operators"]
    assert record["state"] == "backoff" and record["pid"] is None
    assert record["lastExit"]["signal"] == "SIGKILL" and record["restarts"] == 0

    supervisor.tick(now + 0.5)  # still backing off (1 s)
    assert supervisor.components["operators"].proc is None
    supervisor.tick(now + 1.0)
    record = launcher.read_supervisor_state(supervisor.layout)["components"]["operators"]
    assert record["state"] == "running" and record["pid"] not in (None, old)
    assert launcher.pid_alive(record["pid"])
    assert record["restarts"] == 1 and record["lastExit"]["signal"] == "SIGKILL"
    others = launcher.read_supervisor_state(supervisor.layout)["components"]
    assert others["monitor"]["restarts"] == 0 and others["monitor"]["lastExit"] is None


def test_a_second_crash_in_a_row_waits_twice_as_long(supervisor: Supervisor) -> None:
    _kill(supervisor, "monitor")
    supervisor.tick(100.0 + supervisor.components["monitor"].started_at)  # up 100 s: 1 s
    assert supervisor.components["monitor"].start_at is not None
    supervisor.tick(supervisor.components["monitor"].start_at)
    _kill(supervisor, "monitor")
    exited = supervisor.components["monitor"].started_at + 0.1
    supervisor.tick(exited)
    assert supervisor.components["monitor"].start_at == pytest.approx(exited + 2.0)


def test_stop_all_leaves_no_process(supervisor: Supervisor) -> None:
    pids = [c.proc.pid for c in supervisor.components.values() if c.proc]
    supervisor.stop_all()
    assert not [pid for pid in pids if launcher.pid_alive(pid)]
    assert launcher.read_supervisor_state(supervisor.layout)["phase"] == "stopped"


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(-9) == {"signal": "SIGKILL"}
    assert describe_exit(3) == {"code": 3}
    assert last_exit_text({"signal": "SIGKILL", "at": "t"}) == "SIGKILL at t"
    assert last_exit_text({"code": 1, "at": "t"}) == "code 1 at t"
    assert last_exit_text(None) == "-"
    assert [uptime_text(s) for s in (5, 125, 7300, 90000)] == ["5s", "2m05s", "2h01m", "1d01h"]


def test_status_table_shows_pid_uptime_restarts_and_last_exit() -> None:
    record = {
        "components": {
            "controlplane": {"pid": 10, "state": "running", "startedAtEpoch": 100.0, "restarts": 0},
            "operators": {
                "pid": 12,
                "state": "running",
                "startedAtEpoch": 150.0,
                "restarts": 1,
                "lastExit": {"signal": "SIGKILL", "at": "2026-12-04T20:00:00+00:00"},
            },
            "monitor": {"pid": None, "state": "backoff", "restarts": 2, "nextStartAt": "soon"},
        }
    }
    lines = render_components(record, now=170.0).splitlines()
    assert lines[0].split() == ["COMPONENT", "PID", "UPTIME", "RESTARTS", "LAST", "EXIT"]
    assert lines[1].split() == ["controlplane", "10", "1m10s", "0", "-"]
    assert lines[2].split()[:4] == ["operators", "12", "20s", "1"]
    assert lines[2].endswith("SIGKILL at 2026-12-04T20:00:00+00:00")
    assert "backoff until soon" in lines[3]
    assert "not running" in render_components({}, now=0.0)
