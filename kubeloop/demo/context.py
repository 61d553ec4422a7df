"""Shared state of one demo run, and the one way a stage waits: sample, show, check, sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from kubeloop.demo.config import DemoConfig
from kubeloop.demo.kube import DemoKube
from kubeloop.demo.progress import ProgressView, Sample, sample_from_objects
from kubeloop.demo.report import StageRecord
from kubeloop.demo.resources import name_of, namespace_of
from kubeloop.embedded.launcher import EmbeddedLayout
from kubeloop.sampledata.generate import GeneratorConfig
from kubeloop.sampledata.traffic import TrafficGenerator

Objects = tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]
# Returns True when what the stage awaits is there; raises StageFailed when it never will be.
Check = Callable[[Objects], bool]


class StageFailed(RuntimeError):
    """A stage cannot complete; the message names the stage and the reason."""


@dataclass
class DemoContext:
    config: DemoConfig
    layout: EmbeddedLayout
    view: ProgressView
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    stage: str = "starting"
    samples: list[Sample] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    template_values: dict[str, str] = field(default_factory=dict)
    kube: DemoKube | None = None
    http: httpx.Client | None = None
    traffic: TrafficGenerator | None = None
    started_up: bool = False
    world: GeneratorConfig | None = None  # the generated data; traffic is drawn from it
    v1: str | None = None
    v1_round: int = 1
    v2: str | None = None
    shift_t: float | None = None
    alarm_t: float | None = None
    promoted_t: float | None = None
    # Set when the label gate rolled v2 back as significantly worse than v1: its message.
    v2_rejected: str | None = None
    # Set when the retrain did not beat the champion (v1) and was not registered: the
    # Experiment's Registered=False condition and the paired comparison's figures.
    v2_not_registered: dict[str, Any] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    # The monitor's QualityReport at the moment of the shift (v1's pre-shift figures).
    quality_at_shift: dict[str, Any] | None = None
    shift_epoch: float | None = None
    drift_report: str | None = None
    phases_seen: list[str] = field(default_factory=list)
    # Every skew check the MLModel's status showed (status.skew), by its checkedAt.
    skew_checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.started

    @property
    def data_dir(self) -> str:
        return str((self.config.state_dir / "data").resolve())

    def read(self, kind: str) -> dict[str, Any] | None:
        document = self.documents.get(kind)
        if self.kube is None or document is None:
            return None
        return self.kube.get(kind, namespace_of(document), name_of(document))

    def observe(self) -> Objects:
        objects = (self.read("FeatureView"), self.read("Experiment"), self.read("MLModel"))
        skew = ((objects[2] or {}).get("status") or {}).get("skew") or {}
        if skew.get("checkedAt"):
            self.skew_checks[str(skew["checkedAt"])] = dict(skew)
        traffic = self.traffic.snapshot().model_dump() if self.traffic else None
        sample = sample_from_objects(self.now(), self.stage, *objects, traffic=traffic)
        self.samples.append(sample)
        if sample.phase and (not self.phases_seen or self.phases_seen[-1] != _phase_key(sample)):
            self.phases_seen.append(_phase_key(sample))
        self.view.show(sample)
        return objects

    def wait_for(self, awaited: str, timeout_s: float, check: Check) -> Objects:
        deadline = time.monotonic() + timeout_s
        while True:
            objects = self.observe()
            if check(objects):
                return objects
            if time.monotonic() > deadline:
                raise StageFailed(
                    f"stage {self.stage!r} timed out after {timeout_s:.0f}s waiting for {awaited}; "
                    f"last seen: {_last_seen(objects)}"
                )
            time.sleep(self.config.sample_interval_s)


def _phase_key(sample: Sample) -> str:
    if sample.phase == "Canary":
        return f"Canary {sample.candidate_percent}%"
    return str(sample.phase)


def _last_seen(objects: Objects) -> str:
    parts = []
    for obj in objects:
        if obj is None:
            continue
        status: Mapping[str, Any] = obj.get("status") or {}
        conditions = ", ".join(
            f"{c.get('type')}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
            for c in status.get("conditions") or []
        )
        summary = {k: status.get(k) for k in ("phase", "message") if status.get(k)}
        parts.append(f"{obj.get('kind')} {summary} [{conditions}]")
    return "; ".join(parts) or "no resources yet"
