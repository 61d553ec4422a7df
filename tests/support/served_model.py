"""An MLModel served for real on the embedded default (predictor processes behind the local
router, the monitor, the operator), watched from an end-to-end test: its status as a
background observer records it, the waits, and the test's own client threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.kube import CustomObjects
from tests.support.stack import Stack
from tests.support.waiting import wait_for

#: (phase, candidate version, stable %, candidate %, mirror %) as the status shows them.
Row = tuple[str, str | None, int, int, int]


@dataclass
class StatusObserver:
    """Every row the MLModel's status shows, the analysis message of each, and the quality
    list whenever it changes."""

    read: Callable[[], dict[str, Any]]
    seen: list[Row] = field(default_factory=list)
    # When each row was first seen, and its analysis message: the failure context.
    history: list[str] = field(default_factory=list)
    qualities: list[list[dict[str, Any]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            status = self.read().get("status") or {}
            traffic = status.get("traffic") or {}
            row = (
                str(status.get("phase")),
                status.get("candidateVersion"),
                int(traffic.get("stable", 100)),
                int(traffic.get("candidate", 0)),
                int(traffic.get("mirror", 0)),
            )
            if not self.seen or self.seen[-1] != row:
                self.seen.append(row)
                message = (status.get("analysis") or {}).get("message")
                self.history.append(f"{time.strftime('%H:%M:%S')} {row} {message}")
            quality = status.get("quality") or []
            if quality and (not self.qualities or self.qualities[-1] != quality):
                self.qualities.append(quality)
            time.sleep(0.2)

    def rows_for(self, version: str) -> list[Row]:
        return [row for row in self.seen if row[1] == version]


class ServedModel(CustomObjects):
    """MLModel `name` with its registered `versions` (key → registry version)."""

    def __init__(self, stack: Stack, name: str, versions: dict[str, str]) -> None:
        super().__init__(stack.kubeconfig, context=self.context)
        self.stack = stack
        self.name = name
        self.versions = versions
        self.observer = StatusObserver(lambda: self.get("mlmodels", name))
        self._threads: list[threading.Thread] = []
        self._stops: list[threading.Event] = []

    def model_status(self) -> dict[str, Any]:
        return self.status("mlmodels", self.name)

    def set_version(self, version: str) -> None:
        self.patch("mlmodels", self.name, {"spec": {"model": {"version": version}}})

    def wait_phase(self, phase: str, version: str, timeout_s: float) -> dict[str, Any]:
        """The status once it reads `phase` for `version` (the stable one when Promoted)."""

        def probe() -> dict[str, Any] | None:
            status = self.model_status()
            key = "stableVersion" if phase == "Promoted" else "candidateVersion"
            return status if status.get("phase") == phase and status.get(key) == version else None

        return wait_for(probe, timeout_s, f"{phase} of version {version}", context=self.context)

    def context(self) -> str:
        seen = "\n  ".join(self.observer.history[-12:])
        return f"status: {self.model_status()}\nseen:\n  {seen}\n{self.stack.logs()}"

    def start_threads(
        self, targets: Sequence[Callable[[], None]], stops: Sequence[threading.Event]
    ) -> None:
        """Run `targets` and the status observer in daemon threads until `stop_threads`,
        which sets `stops` (the targets' own stop events)."""
        self._stops = [*stops, self.observer.stop]
        for target in [*targets, self.observer.run]:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_threads(self) -> None:
        for stop in self._stops:
            stop.set()
        for thread in self._threads:
            thread.join(15)
