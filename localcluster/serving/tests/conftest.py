"""Shared fixtures: one registered MLflow model per test session, free ports, a CloudEvent sink."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from localcluster.serving import CRD_DIR
from localcluster.serving.tests.logistic_model import register_logistic_model
from tests.support.localcluster import RunningCluster, start_cluster
from tests.support.processes import free_port


class RegisteredModel:
    def __init__(self, tracking_uri: str, model_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.model_uri = model_uri

    def env(self) -> dict[str, str]:
        return {**os.environ, "MLFLOW_TRACKING_URI": self.tracking_uri}


@pytest.fixture(scope="session")
def registered_model(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri, model_uri = register_logistic_model(root)
    return RegisteredModel(tracking_uri, model_uri)


class EventSink:
    """A CloudEvent receiver on a real socket (stdlib server in a thread)."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with sink.lock:
                    sink.events.append((headers, body))
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def by_id(self, request_id: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [e for e in self.events if e[0].get("ce-id") == request_id]

    def wait_for(
        self, request_id: str, count: int, timeout_s: float = 30.0
    ) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.by_id(request_id)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} events for {request_id}, got {self.by_id(request_id)}"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def event_sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 180.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"predictor exited {proc.returncode}: {log_path.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"predictor not ready after {timeout_s}s: {log_path.read_text()[-3000:]}")


def start_predictor(
    model: RegisteredModel, name: str, log_path: Path, extra: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "localcluster.serving.predictor",
        "--model-name", name, "--model-uri", model.model_uri, "--http-port", str(port), *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=model.env())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/v1/models/{name}", proc, log_path)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, base


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    """The real embedded API server with the InferenceService/VirtualService CRDs installed."""
    running = start_cluster(tmp_path / "cluster")
    try:
        kubectl(running, "apply", "-f", str(CRD_DIR))
        yield running
    finally:
        running.background.stop()


def kubectl(cluster: RunningCluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cluster.env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def kubectl_apply(cluster: RunningCluster, obj: dict[str, Any]) -> None:
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(obj))
