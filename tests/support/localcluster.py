"""Pytest fixtures for the embedded control plane.

Loaded by the root `conftest.py` (`pytest_plugins = ["tests.support.localcluster", ...]`).

- `localcluster`: a fresh server per test (function scope) on a free loopback port with a
  temporary data dir. Yields a `RunningCluster` (`.url`, `.token`, `.kubeconfig`, `.data_dir`,
  `.ca_path`, `.compact()`, `.env()`).
- `localcluster_module` / `localcluster_session`: the same, shared by a module / the session.
- `localcluster_audited`: like `localcluster`, with the audit log on (`.audit_records()`,
  `.clear_audit()`; `.add_user(name)` gives a client its own token so its records are told
  apart).
- `kube_env` / `kube_env_module`: `os.environ` plus `KUBECONFIG` (and a private kubectl cache
  dir) for running the real `kubectl` against the matching cluster.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from localcluster.audit import AuditRecord
from localcluster.server import BackgroundCluster


@dataclass
class RunningCluster:
    """Handle to a running local cluster, as the fixtures yield it."""

    background: BackgroundCluster

    @property
    def url(self) -> str:
        return self.background.url

    @property
    def token(self) -> str:
        return self.background.token

    @property
    def kubeconfig(self) -> Path:
        return self.background.kubeconfig

    @property
    def data_dir(self) -> Path:
        return self.background.data_dir

    @property
    def ca_path(self) -> Path:
        return self.background.cluster.ca_path

    def compact(self) -> int:
        """Drop all watch history; returns the compacted resourceVersion."""
        return self.background.compact()

    def add_user(self, name: str) -> Path:
        """A kubeconfig with a token of its own, so audit records name `name` as the user."""
        return self.background.add_user(name)

    def audit_records(self) -> list[AuditRecord]:
        """Requests recorded so far (only when the cluster was started with audit on)."""
        return self.background.audit_records()

    def clear_audit(self) -> None:
        self.background.clear_audit()

    def http_client(self, timeout: float = 30) -> httpx.Client:
        """An HTTP client for the API server: its URL, its bearer token, its CA."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=str(self.ca_path),
            timeout=timeout,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.data_dir / "kubectl-cache")
        return env


def start_cluster(data_dir: Path, audit: bool = False) -> RunningCluster:
    return RunningCluster(BackgroundCluster(data_dir, audit=audit).start())


@pytest.fixture
def localcluster(tmp_path: Path) -> Iterator[RunningCluster]:
    cluster = start_cluster(tmp_path / "localcluster")
    try:
        yield cluster
    finally:
        cluster.background.stop()


@pytest.fixture
def localcluster_audited(tmp_path: Path) -> Iterator[RunningCluster]:
    cluster = start_cluster(tmp_path / "localcluster-audited", audit=True)
    try:
        yield cluster
    finally:
        cluster.background.stop()


def _shared(prefix: str) -> Iterator[RunningCluster]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        cluster = start_cluster(Path(tmp))
        try:
            yield cluster
        finally:
            cluster.background.stop()


@pytest.fixture(scope="module")
def localcluster_module() -> Iterator[RunningCluster]:
    yield from _shared("localcluster-module-")


@pytest.fixture(scope="session")
def localcluster_session() -> Iterator[RunningCluster]:
    yield from _shared("localcluster-session-")


@pytest.fixture
def kube_env(localcluster: RunningCluster) -> dict[str, str]:
    return localcluster.env()


@pytest.fixture(scope="module")
def kube_env_module(localcluster_module: RunningCluster) -> dict[str, str]:
    return localcluster_module.env()
