"""`kubeloop demo` end to end on the embedded default, small data and shortened intervals.

The demo is structured as stages (operators/demo_parts/stages.py); `stop_after` runs a
prefix of them. The full loop must end with v2 at 100% and a lineage that links v2 to its
FeatureView version, data window, MLflow run and the drift report that caused it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators import embedded
from operators.demo_parts.config import DemoConfig
from operators.demo_parts.context import DemoContext
from operators.demo_parts.progress import ProgressView
from operators.demo_parts.runner import DemoOutcome, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class DemoRun:
    def __init__(self, outcome: DemoOutcome, ctx: DemoContext, log: str) -> None:
        self.outcome = outcome
        self.ctx = ctx
        self.log = log


@pytest.fixture
def run_demo_until(tmp_path: Path) -> Iterator[object]:
    """Runs the demo up to a stage, leaves the cluster up for assertions, stops it after."""
    layouts: list[embedded.EmbeddedLayout] = []

    def _run(stop_after: str | None) -> DemoRun:
        config = DemoConfig(
            state_dir=tmp_path / "kubeloop", rows=20_000, stop_after=stop_after, keep_running=True
        )
        layouts.append(embedded.EmbeddedLayout(config.state_dir))
        stream = io.StringIO()
        outcome, ctx = run(config, ProgressView(stream))
        return DemoRun(outcome, ctx, stream.getvalue())

    yield _run
    for layout in layouts:
        embedded.stop_all(layout)


def _status(run: DemoRun, kind: str) -> dict:
    obj = run.ctx.read(kind)
    assert obj is not None, f"{kind} not found"
    return dict(obj.get("status") or {})


@pytest.mark.timeout(1500)
def test_demo_up_to_v1_registered(run_demo_until) -> None:  # type: ignore[no-untyped-def]
    """The stages that work today: data, up, FeatureView backfill, Experiment (2 trials, DDP x2)
    registering v1 — each checked through the API, as the demo sees it."""
    demo = run_demo_until("experiment")
    assert demo.outcome.ok, demo.log
    featureview = _status(demo, "FeatureView")
    assert featureview["version"] and featureview["lastBackfill"]["rows"] == 20_000
    experiment = _status(demo, "Experiment")
    assert [t["state"] for t in experiment["trials"]] == ["Succeeded", "Succeeded"]
    assert all(t["mlflowRunId"] for t in experiment["trials"])
    assert experiment["registeredVersion"] == demo.ctx.v1 == "1"
    assert "✔ experiment" in demo.log and "export KUBECONFIG=" in demo.log
    report = demo.outcome.report
    assert report is not None and "succeeded" in report.read_text()
    assert (report.parent / "timeline.png").stat().st_size > 0
