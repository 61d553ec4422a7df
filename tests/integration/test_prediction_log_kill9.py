"""kill -9 the monitor under load, restart it: every event it acknowledged is in the
prediction log (Parquet), once, and answered calls carry their features and score."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pyarrow.dataset as ds
import pytest

from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import AUTH_HEADERS
from services.monitor.tests.process import MonitorProcess
from tests.support.waiting import wait_for

NAMESPACE, MODEL = "team-a", "churn"
SENDERS = 6


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[MonitorProcess]:
    process = MonitorProcess(tmp_path / "monitor", "--prediction-log-compaction-interval", "0.5")
    yield process
    process.stop()


def sender(port: int, worker: int, acked: set[str], stop: threading.Event) -> None:
    """Request + response events per call; an id is acknowledged when a 200 came back."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    index = 0
    try:
        while not stop.is_set():
            call = f"w{worker}-{index}"
            index += 1
            for kind, body in (
                ("request", {"instances": [[float(index), 1.0]]}),
                ("response", {"predictions": [(index % 100) / 100]}),
            ):
                headers = binary_headers(kind, call, "1", role="stable", latency_ms=2.0)
                headers.update(AUTH_HEADERS)
                connection.request("POST", "/", body=json.dumps(body), headers=headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status == 200:
                    acked.add(f"{call}/{kind}")
    except (OSError, http.client.HTTPException):
        return  # the monitor was killed mid-call: that event was not acknowledged
    finally:
        connection.close()


@pytest.mark.slow  # two monitor starts and a load phase (~15 s)
def test_every_acknowledged_event_is_in_the_log_after_kill_9(monitor: MonitorProcess) -> None:
    monitor.start()
    config = {"pairingTimeoutSeconds": 2, "stableVersion": "1"}
    answer = httpx.put(
        f"{monitor.url}/v1/models/{NAMESPACE}/{MODEL}/config", json=config, headers=AUTH_HEADERS
    )
    assert answer.status_code == 200, answer.text
    acked: list[set[str]] = [set() for _ in range(SENDERS)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=sender, args=(monitor.ingest_port, i, acked[i], stop))
        for i in range(SENDERS)
    ]
    for thread in threads:
        thread.start()
    # Under load, with compactions having run: the kill lands between and during them.
    wait_for(lambda: sum(map(len, acked)) >= 3000, 60, "3,000 acknowledged events")
    assert monitor.process is not None
    children = psutil.Process(monitor.process.pid).children()  # the compaction worker
    monitor.kill9()
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    acknowledged = set().union(*acked)
    calls = {item.split("/")[0] for item in acknowledged}
    answered = {item.split("/")[0] for item in acknowledged if item.endswith("/response")}
    both = {c for c in answered if f"{c}/request" in acknowledged}

    # The compaction worker does not outlive the monitor (it polls its parent each second).
    wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                             for c in children), 30, "the killed monitor's worker to exit")  # fmt: skip
    restarted = time.time()
    monitor.start()

    def caught_up() -> bool:
        health = monitor.health()
        log, last = health["predictionLog"], health["predictionLog"]["lastCompaction"]
        return (
            # A call whose request was acknowledged and whose response never came waits out
            # its pairing timeout, then is logged unanswered: until then it is not caught up.
            health["pendingCalls"] == 0
            and bool(last["at"])
            and last["at"] > restarted
            and log["backlog"] == 0
            and (log["unjournaled"] == 0)
        )

    wait_for(caught_up, 60, "the prediction log to catch up after the restart", interval_s=0.2)
    table = ds.dataset(
        monitor.data_dir / "predictions", format="parquet", partitioning="hive"
    ).to_table()
    rows = table.to_pylist()
    logged = {row["event_id"] for row in rows}
    missing = calls - logged
    assert not missing, (
        f"{len(missing)} acknowledged calls not in the log, e.g. {sorted(missing)[:5]}"
    )
    keys = [(row["event_id"], row["row"]) for row in rows]
    assert len(keys) == len(set(keys)), "a call was logged twice"
    by_id = {row["event_id"]: row for row in rows}
    for call in both:
        row = by_id[call]
        assert row["score"] is not None and row["features"] is not None, row
        assert row["status"] == 200
    assert len(both) > 1000
