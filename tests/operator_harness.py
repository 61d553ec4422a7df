"""Shared support for operator integration tests: the real operator process against the
embedded control plane, custom-object helpers, and cleanup of the pipeline workers it started.

The operator runs as `python -m kubeloop.cli operator --standalone` (as `kubeloop up` runs it)
with a short poll interval, its state (pipeline runs, offline store, Feast, training sets)
under one directory, and MLflow on a SQLite file there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

from kubeloop.embedded.services import apply_crds, crd_documents
from operators.mlmodel.testing import Process, start_process, wait_for

GROUP, VERSION, NS = "kubeloop.io", "v1alpha1", "default"


class OperatorHarness:
    def __init__(self, kubeconfig: Path, workdir: Path, poll_s: float = 1.0) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.tracking_uri = f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}"
        (workdir / "mlflow").mkdir(parents=True, exist_ok=True)
        self.poll_s = poll_s
        self.process: Process | None = None
        self.starts = 0
        apply_crds(kubeconfig, crd_documents())
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = client.CustomObjectsApi(api)

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "pipeline-runs"

    # --- the operator process -------------------------------------------------------------
    def start(self) -> None:
        self.starts += 1
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "KUBELOOP_STATE_DIR": str(self.state_dir),
            "KUBELOOP_MLFLOW_TRACKING_URI": self.tracking_uri,
            "KUBELOOP_POLL_INTERVAL_S": str(self.poll_s),
        }
        argv = [sys.executable, "-m", "kubeloop.cli", "operator", "--standalone"]
        self.process = start_process(f"operator-{self.starts}", argv, self.workdir / "logs", env)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.popen.poll() is None

    def logs(self) -> str:
        return self.process.log_tail(6000) if self.process else "(operator not running)"

    def close(self) -> None:
        """Stop the operator, then the pipeline workers it started (each leads its session)."""
        self.stop()
        for state_file in self.runs_dir.glob("*/state.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                state = json.loads(state_file.read_text())
                if state.get("state") in ("PENDING", "RUNNING") and state.get("pid"):
                    os.killpg(int(state["pid"]), signal.SIGKILL)

    # --- custom objects ---------------------------------------------------------------------
    def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, plural, name
        )
        return found

    def annotate(self, plural: str, name: str, annotations: dict[str, str]) -> None:
        patch = {"metadata": {"annotations": annotations}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, plural, name, patch)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.get(plural, name).get("status") or {})

    def wait_status(
        self,
        plural: str,
        name: str,
        check: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status(plural, name)
            return status if check(status) else None

        return wait_for(probe, timeout_s, f"{name}: {what}", interval_s=1.0, context=self.logs)

    def run_names(self, prefix: str) -> list[str]:
        """Runs the pipeline backend holds whose name starts with `prefix`."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.name.startswith(prefix))


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})
