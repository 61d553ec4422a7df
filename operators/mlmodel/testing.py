"""Test support for the MLModel operator: tiny MLflow pyfunc models and the serving processes.

Used by `tests/integration/test_mlmodel_*.py` and `tests/e2e/test_serving_e2e.py`. The model
classes live in an importable module so predictor processes can unpickle them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

T = TypeVar("T")

FEATURES = ["x1", "x2"]


class LogisticModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """p = sigmoid(w1*x1 + w2*x2 + b)."""

    def __init__(self, w1: float = 1.0, w2: float = -2.0, b: float = 0.5) -> None:
        self.w1, self.w2, self.b = w1, w2, b

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        z = self.w1 * frame["x1"].astype(float) + self.w2 * frame["x2"].astype(float) + self.b
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return self.scores(model_input)


class FailingModel(LogisticModel):
    """Every prediction is a server error."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        raise RuntimeError("this model version is broken")


class SlowModel(LogisticModel):
    """Right answers, too late."""

    def __init__(self, delay_s: float = 0.5) -> None:
        super().__init__()
        self.delay_s = delay_s

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.scores(model_input)


class FlippedModel(LogisticModel):
    """Answers fast and without errors, but the opposite of the stable model."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return 1.0 - self.scores(model_input)


def sqlite_tracking_uri(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def register_model(
    tracking_uri: str,
    root: Path,
    name: str,
    model: LogisticModel,
    reference: pd.DataFrame | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Log `model` in a run and register it under `name`; returns the new version number.

    `reference` is uploaded as the run's `reference/features.parquet` (the drift baseline, as
    components/register_model does); `tags` are set on the new model version.
    """
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name("mlmodel-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment(
            "mlmodel-tests", artifact_location=(root / "artifacts").as_uri()
        )
    )
    sample = pd.DataFrame({"x1": [0.0, 1.0], "x2": [1.0, 0.0]})
    signature = infer_signature(sample, LogisticModel().scores(sample))
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            registered_model_name=name,
            # Skips inferring requirements in a subprocess: the predictor runs in this venv.
            pip_requirements=["mlflow"],
        )
        if reference is not None:
            folder = root / "reference-upload"
            folder.mkdir(parents=True, exist_ok=True)
            reference.to_parquet(folder / "features.parquet")
            mlflow.log_artifact(str(folder / "features.parquet"), artifact_path="reference")
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    return version


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGINT first: the serving controller stops its predictors only on a clean exit."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_process(name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
    return Process(name, popen, log_path)


@dataclass
class ServingStack:
    """Monitor, serving controller and operator processes against one cluster."""

    kubeconfig: Path
    workdir: Path
    tracking_uri: str
    monitor_port: int
    tick_s: float = 1.0
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}/"

    def start_monitor(self) -> None:
        argv = [sys.executable, "-m", "services.monitor", "--port", str(self.monitor_port)]
        argv += ["--data-dir", str(self.workdir / "monitor")]
        self.processes["monitor"] = start_process("monitor", argv, self.workdir / "logs", {})

    def start_controller(self) -> None:
        argv = [sys.executable, "-m", "localcluster.serving.controller"]
        argv += ["--kubeconfig", str(self.kubeconfig), "--state-dir", str(self.workdir / "serving")]
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        self.processes["serving"] = start_process("serving", argv, self.workdir / "logs", env)

    def operator_env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "KUBELOOP_STATE_DIR": str(self.workdir / "state"),
            "KUBELOOP_MONITOR_URL": self.monitor_url,
            "KUBELOOP_MLFLOW_TRACKING_URI": self.tracking_uri,
            "KUBELOOP_ANALYSIS_TICK_S": str(self.tick_s),
        }

    def start_operator(self) -> None:
        argv = [sys.executable, "-m", "kubeloop.cli", "operator", "--standalone"]
        self.processes["operator"] = start_process(
            "operator", argv, self.workdir / "logs", self.operator_env()
        )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def stop_all(self) -> None:
        for name in ("operator", "serving", "monitor"):
            self.stop(name)

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{p.log_tail()}" for n, p in self.processes.items())


def wait_for(
    probe: Callable[[], T | None],
    timeout_s: float,
    what: str,
    interval_s: float = 0.3,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll until `probe()` returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    extra = f"\n{context()}" if context else ""
    raise AssertionError(
        f"timed out after {timeout_s:.0f}s waiting for {what}; last: {last!r}{extra}"
    )


def exchange_events(
    namespace: str,
    model: str,
    version: str,
    role: str,
    request_id: str,
    status: int = 200,
    latency_ms: float = 10.0,
    score: float = 0.7,
) -> list[dict[str, Any]]:
    """The request and response CloudEvents a predictor's logger sends for one call
    (structured mode, the attributes of `services/monitor/cloudevents_spec.py`)."""
    common = {
        "specversion": "1.0",
        "id": request_id,
        "source": f"http://{model}-v{version}-predictor.{namespace}/",
        "inferenceservicename": f"{model}-v{version}",
        "namespace": namespace,
        "kubeloopversion": version,
        "kubelooprole": role,
        "datacontenttype": "application/json",
    }
    request = {
        **common,
        "type": "org.kubeflow.serving.inference.request",
        "data": {"instances": [{"x1": 1.0, "x2": 0.25}]},
    }
    answer: dict[str, Any] = {"predictions": [score]} if status < 400 else {"error": "failed"}
    response = {
        **common,
        "type": "org.kubeflow.serving.inference.response",
        "kubeloopstatus": str(status),
        "kubelooplatencyms": str(latency_ms),
        "data": answer,
    }
    return [request, response]


def post_events(monitor_url: str, events: list[dict[str, Any]]) -> None:
    import httpx

    answer = httpx.post(
        monitor_url.rstrip("/") + "/",
        content=json.dumps(events),
        headers={"content-type": "application/cloudevents-batch+json"},
        timeout=10,
    )
    if answer.status_code != 200:
        raise AssertionError(f"monitor refused events: {answer.status_code} {answer.text}")
