"""Demo configuration: sizes, intervals and per-stage timeouts (env overrides `KUBELOOP_DEMO_*`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kubeloop.sampledata.sample import SAMPLE_DAYS, SAMPLE_LABEL_FRACTION, SAMPLE_ROWS

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_RESOURCES = REPO_ROOT / "examples" / "demo"
# The README tour's resources: the demo applies its FeatureView and Experiment.
TOUR_RESOURCES = REPO_ROOT / "examples" / "resources"


class StageTimeouts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: float = 300
    up: float = 120
    featureview: float = 600
    experiment: float = 1200
    serve_v1: float = 300
    traffic: float = 120
    drift: float = 300
    retrain: float = 1200
    rollout: float = 900
    lineage: float = 60


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state_dir: Path
    rows: int = Field(
        default=SAMPLE_ROWS, ge=1000, description="Generated events (KUBELOOP_DEMO_ROWS)."
    )
    days: int = Field(default=SAMPLE_DAYS, ge=8, description="Days of history, ending now.")
    label_fraction: float = Field(
        default=SAMPLE_LABEL_FRACTION, gt=0, le=1, description="Share of events with a label."
    )
    seed: int = 0
    shift_sigma: float = Field(default=1.0, description="Shift of the injected drift, in sigma.")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0: a free port.")
    requests_per_s: float = Field(default=10.0, gt=0)
    # 40 rows a request: 400 labeled rows/s, enough for the label gate to decide a 10% canary
    # step at the demo MLModel's margin within minutes (docs/demo.md, "The label gate").
    rows_per_request: int = Field(default=40, ge=1, le=1000)
    stream_rows: int = Field(
        default=200_000,
        ge=1000,
        description="Rows per traffic stream: ~8 minutes at 400 rows/s before rows repeat.",
    )
    traffic_protocol: Literal["v1", "v2"] = "v2"
    traffic_path: str | None = Field(
        default=None,
        description="Request path on the router ({model}: the MLModel's name); "
        "default /v2/models/{model}/infer (v1: /v1/models/{model}:predict).",
    )
    label_delay_s: float = Field(default=5.0, ge=0)
    # The retrain must learn the world after the shift, and the demo's post-shift traffic
    # spans minutes of wall clock: the demo's Experiment splits in seconds (test and
    # validation the latest 10 s each, training the 20 s before them), and the demo
    # approves the drift-requested retrain once that much post-shift traffic is labeled
    # (the MLModel's retrain.requireApproval). So that round 1 (v1) has labels in such
    # windows too, the demo's lake starts with `recent_rows` events of the same unshifted
    # world over the last `recent_span_s` seconds, as an application's lake holds the
    # production of the last minutes next to its history (docs/demo.md).
    # 40 s of windows, not 80: the approval waits for the first whole minute after the shift
    # by which they fit (stage_approve), ~40 s less on average (docs/benchmarks.md, "Where
    # the demo's time goes"). 400 labeled rows/s of traffic still give round 2 ~8,000
    # training rows, and 160 recent rows/s give round 1 the ~6,400 window rows it had.
    split_validation: str = "10s"
    split_test: str = "10s"
    train_window: str | None = "20s"
    recent_rows: int = Field(default=48_000, ge=0)
    recent_span_s: float = Field(default=300.0, gt=0)
    approve_retrain: bool = Field(
        default=True,
        description="Approve the drift-requested retrain once the train window after the "
        "shift is covered (the demo MLModel sets retrain.requireApproval).",
    )
    # The traffic appends what it serves to the FeatureView's source; a scheduled incremental
    # backfill (DuckDB on the embedded default: seconds) moves it into the offline and online
    # stores, and the freshness gate holds a retrain until the view covers the round's window
    # end (docs/retrain.md). Without a schedule the view is a snapshot of the history.
    backfill_schedule: str | None = Field(
        default="* * * * *",
        description="The demo FeatureView's spec.backfill.schedule (cron; empty: none).",
    )
    sample_interval_s: float = Field(default=1.0, gt=0)
    # Operator intervals, shortened so the loop turns in minutes (handed to `kubeloop up`).
    operator_poll_s: float = Field(default=2.0, gt=0)
    analysis_tick_s: float = Field(default=1.0, gt=0)
    drift_interval_s: float = Field(default=5.0, gt=0)
    resources_dir: Path = DEMO_RESOURCES
    tour_resources_dir: Path = TOUR_RESOURCES
    stop_after: str | None = Field(default=None, description="Last stage to run (tests).")
    keep_running: bool = Field(default=False, description="Leave `kubeloop up` running after.")
    timeouts: StageTimeouts = Field(default_factory=StageTimeouts)

    @classmethod
    def from_env(cls, state_dir: Path, env: dict[str, str] | None = None) -> DemoConfig:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {"state_dir": state_dir}
        for name in cls.model_fields:
            key = f"KUBELOOP_DEMO_{name.upper()}"
            if key in env and name not in ("state_dir", "timeouts"):
                values[name] = env[key]
        return cls.model_validate(values)

    def operator_env(self) -> dict[str, str]:
        return {
            "KUBELOOP_POLL_INTERVAL_S": str(self.operator_poll_s),
            "KUBELOOP_ANALYSIS_TICK_S": str(self.analysis_tick_s),
            "KUBELOOP_DRIFT_INTERVAL_S": str(self.drift_interval_s),
        }
