"""Durability: kill -9 under write load loses no acknowledged write (issue 2 acceptance)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from localcluster.server import BackgroundCluster
from tests.support.localcluster import RunningCluster

LOAD = Path(__file__).resolve().parents[1] / "support" / "write_load.py"
ACKS_BEFORE_KILL = 150


class ServerProcess:
    """`python -m localcluster` as a child process on a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcluster",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        assert "ready" in ready, f"server did not start: {ready!r}"
        config = yaml.safe_load((data_dir / "kubeconfig").read_text())
        self.url = config["clusters"][0]["cluster"]["server"]
        self.token = config["users"][0]["user"]["token"]
        self.ca = str(data_dir / "serving.crt")

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.ca,
            timeout=30,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "cluster"


@pytest.mark.slow
def test_kill_9_keeps_every_acknowledged_write(server_dir: Path) -> None:
    first = ServerProcess(server_dir)
    load = subprocess.Popen(
        [sys.executable, str(LOAD), first.url, first.token, first.ca],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: dict[str, str] = {}
    try:
        assert load.stdout is not None
        while len(acked) < ACKS_BEFORE_KILL:
            line = load.stdout.readline()
            assert line, "the write load stopped before the kill"
            name, rv = line.split()
            acked[name] = rv
        first.kill()
        for line in load.stdout:  # acknowledgements that raced the kill still count
            name, rv = line.split()
            acked[name] = rv
    finally:
        first.kill()
        load.kill()
        load.wait()

    second = ServerProcess(server_dir)
    try:
        with second.client() as session:
            listed = session.get("/api/v1/namespaces/default/configmaps").json()
            stored = {
                i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]
            }
            missing = {name: rv for name, rv in acked.items() if stored.get(name) != rv}
            assert not missing, f"acknowledged writes lost or changed: {list(missing.items())[:5]}"
            since = min(int(rv) for rv in acked.values()) - 1
            with session.stream(
                "GET",
                f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={since}&timeoutSeconds=1",
            ) as stream:
                replayed = {
                    yaml.safe_load(line)["object"]["metadata"]["name"]
                    for line in stream.iter_lines()
                    if line
                }
            assert set(acked) <= replayed
            newer = session.post(
                "/api/v1/namespaces/default/configmaps",
                json={"metadata": {"name": "after-restart"}},
            )
            assert int(newer.json()["metadata"]["resourceVersion"]) > max(
                int(rv) for rv in stored.values()
            )
        assert second.terminate() == 0
    finally:
        second.kill()


def test_one_server_per_data_dir(localcluster: RunningCluster) -> None:
    with pytest.raises(RuntimeError, match="in use by another running localcluster"):
        BackgroundCluster(localcluster.data_dir).start()
    with httpx.Client(
        base_url=localcluster.url,
        headers={"Authorization": f"Bearer {localcluster.token}"},
        verify=str(localcluster.ca_path),
    ) as session:
        assert session.get("/api/v1/namespaces/default").status_code == 200
