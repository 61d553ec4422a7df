"""Progress samples and lines from status dicts; the report from recorded samples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from pydantic import BaseModel

from kubeloop.demo.progress import (
    ProgressView,
    Sample,
    VersionQuality,
    render_line,
    sample_from_objects,
)
from kubeloop.demo.report import (
    DemoRecord,
    StageRecord,
    p_value_series,
    quality_moments,
    quality_series,
    traffic_per_version,
    write_report,
)
from kubeloop.demo.resources import ResourceTemplateError, render, tour_resource
from kubeloop.demo.runner import stages_up_to

FEATUREVIEW = {
    "kind": "FeatureView",
    "status": {
        "version": "732b945b6c8b",
        "conditions": [
            {"type": "Backfilled", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
    },
}
EXPERIMENT = {
    "kind": "Experiment",
    "status": {
        "phase": "Succeeded",
        "round": 2,
        "registeredVersion": "2",
        "trials": [{"state": "Succeeded"}, {"state": "Failed"}, {"state": "Running"}],
    },
}
MLMODEL = {
    "kind": "MLModel",
    "status": {
        "phase": "Canary",
        "stableVersion": "1",
        "candidateVersion": "2",
        "traffic": {"stable": 90, "candidate": 10, "mirror": 0},
        "drift": {
            "pValues": {"price": 1e-6, "clicks": 0.4, "dwell_seconds": 0.002},
            "isDrift": True,
        },
    },
}


def test_sample_reads_every_resource() -> None:
    sample = sample_from_objects(
        12.345,
        "rollout",
        FEATUREVIEW,
        EXPERIMENT,
        MLMODEL,
        {"sent": 40, "errors": 1, "accuracy": 0.7},
    )
    assert sample.t == 12.35
    assert (
        sample.backfilled,
        sample.experiment_round,
        sample.trials_done,
        sample.trials_total,
    ) == (
        "True",
        2,
        2,
        3,
    )
    assert (sample.stable_percent, sample.candidate_percent, sample.candidate_version) == (
        90,
        10,
        "2",
    )
    assert sample.p_values["price"] == 1e-6 and sample.is_drift is True
    assert (sample.requests_sent, sample.request_errors, sample.accuracy) == (40, 1, 0.7)


def test_sample_of_nothing_yet() -> None:
    sample = sample_from_objects(0.0, "up", None, None, None)
    assert sample.phase is None and sample.p_values == {} and sample.trials_total == 0
    assert render_line(sample) == "[    0.0s] up          "


def test_render_line_shows_split_versions_and_lowest_p_values() -> None:
    line = render_line(sample_from_objects(5.0, "rollout", FEATUREVIEW, EXPERIMENT, MLMODEL))
    assert "fv 732b945b backfilled=True" in line
    assert "exp Succeeded r2 trials 2/3 reg=2" in line
    assert "mlm Canary v1:90% v2:10% mirror 0%" in line
    assert "drift=YES p[price=1e-06 dwell_seconds=0.002 clicks=0.4]" in line


def test_plain_view_prints_only_changes() -> None:
    stream = io.StringIO()
    view = ProgressView(stream, plain_every_s=30)
    first = sample_from_objects(1.0, "drift", None, None, MLMODEL, {"sent": 1})
    view.show(first)
    view.show(first.model_copy(update={"t": 2.0, "requests_sent": 9}))  # counters only: quiet
    view.show(first.model_copy(update={"t": 3.0, "phase": "Promoted"}))
    view.message("✔ stage done")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "Promoted" in lines[1] and lines[2] == "✔ stage done"
    assert "\r" not in stream.getvalue()


def _samples() -> list[Sample]:
    samples = []
    for t, (stable, candidate, cand_pct, p) in enumerate(
        [("1", None, None, 0.5), ("1", "2", 0, 0.001), ("1", "2", 10, 1e-5), ("2", None, None, 0.3)]
    ):
        samples.append(
            Sample(
                t=float(t),
                stage="rollout",
                stable_version=stable,
                stable_percent=100 - (cand_pct or 0),
                candidate_version=candidate,
                candidate_percent=cand_pct,
                p_values={"price": p},
            )
        )
    return samples


def test_traffic_and_p_value_series_from_samples() -> None:
    samples = _samples()
    assert traffic_per_version(samples) == {
        "1": [(0.0, 100.0), (1.0, 100.0), (2.0, 90.0)],
        "2": [(1.0, 0.0), (2.0, 10.0), (3.0, 100.0)],
    }
    assert p_value_series(samples)["price"][2] == (2.0, 1e-5)


def test_report_writes_html_png_and_samples(tmp_path: Path) -> None:
    record = DemoRecord(
        started_at="2026-11-21T17:00:00+00:00",
        outcome="failed",
        message="stage 'drift' timed out <waiting>",
        stages=[
            StageRecord(
                name="data", started_t=0, finished_t=3.5, outcome="ok", message="20000 events"
            ),
            StageRecord(
                name="drift", started_t=3.5, finished_t=9, outcome="failed", message="timeout"
            ),
        ],
        samples=_samples(),
        accuracy=[(0.0, 0.8, 10), (10.0, 0.6, 12)],
        shift_t=1.0,
        alarm_t=2.0,
        promoted_t=3.0,
    )
    index = write_report(record, tmp_path / "report")
    page = index.read_text()
    assert "<td>data</td><td>ok</td><td>3.5</td>" in page
    assert "shift onset → drift alarm: 1.0 s" in page
    assert "&lt;waiting&gt;" in page  # messages are escaped
    with Image.open(tmp_path / "report" / "timeline.png") as image:
        assert image.size[0] > 500 and image.size[1] > 500
    saved = json.loads((tmp_path / "report" / "samples.json").read_text())
    assert len(saved["samples"]) == 4 and saved["stages"][1]["outcome"] == "failed"


def test_report_of_a_run_that_failed_before_any_sample(tmp_path: Path) -> None:
    record = DemoRecord(started_at="now", outcome="failed", stages=[], samples=[])
    assert write_report(record, tmp_path).exists()


def test_templates_are_filled_and_unknown_placeholders_named(tmp_path: Path) -> None:
    template = tmp_path / "fv.yaml"
    template.write_text("kind: FeatureView\nmetadata: {name: a}\nspec: {path: ${DATA_DIR}/x}\n")
    assert render(template, {"DATA_DIR": "/d"})["spec"]["path"] == "/d/x"
    with pytest.raises(ResourceTemplateError, match=r"\$\{DATA_DIR\}"):
        render(template, {})


def test_demo_templates_render() -> None:
    from kubeloop.demo.config import DEMO_RESOURCES, TOUR_RESOURCES

    values = {"DATA_DIR": "/data", "BACKFILL_START": "2026-11-01T00:00:00Z"}
    kinds = {render(p, values)["kind"] for p in DEMO_RESOURCES.glob("*.yaml")}
    kinds |= {render(p, {})["kind"] for p in TOUR_RESOURCES.glob("*.yaml")}
    assert kinds == {"FeatureView", "Experiment", "MLModel"}


def test_stages_up_to() -> None:
    assert stages_up_to("up") == ["data", "up"]
    assert stages_up_to(None)[-2:] == ["rollout", "lineage"]
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        stages_up_to("nope")


@pytest.mark.parametrize("kind", ["featureview", "experiment", "mlmodel"])
def test_demo_templates_pass_the_api_models(kind: str) -> None:
    from kubeloop.demo.config import DEMO_RESOURCES, TOUR_RESOURCES
    from operators.api.experiment import ExperimentSpec
    from operators.api.featureview import FeatureViewSpec
    from operators.api.mlmodel import MLModelSpec

    models: dict[str, type[BaseModel]] = {
        "featureview": FeatureViewSpec,
        "experiment": ExperimentSpec,
        "mlmodel": MLModelSpec,
    }
    if kind == "mlmodel":
        values = {"DATA_DIR": "/data", "BACKFILL_START": "2026-11-01T00:00:00Z"}
        document = render(DEMO_RESOURCES / f"{kind}.yaml", values)
    else:  # the tour's resources, on the demo's data
        document = tour_resource(TOUR_RESOURCES / f"{kind}.yaml", "/data", "2026-11-01T00:00:00Z")
        text = json.dumps(document)
        assert ".kubeloop/data" not in text and "/data/" in text
    models[kind].model_validate(document["spec"])


def _quality(version: str, labeled: int, auc: float | None) -> dict:
    interval = {"value": auc, "low": auc - 0.02, "high": auc + 0.02} if auc else None
    return {"version": version, "labeled": labeled, "auc": interval,
            "accuracy": {"value": 0.6, "low": 0.58, "high": 0.62}}  # fmt: skip


def test_sample_reads_quality_and_the_label_gate() -> None:
    status: dict[str, object] = {
        **MLMODEL["status"],  # type: ignore[dict-item]
        "quality": [_quality("1", 5000, 0.61), _quality("2", 0, None)],
        "analysis": {
            "metric": "auc",
            "labeled": 1200,
            "estimate": -0.004,
            "low": -0.041,
            "high": 0.033,
            "outcome": "Inconclusive",
        },  # fmt: skip
    }
    sample = sample_from_objects(
        3.0, "rollout", None, None, {"status": status}, {"feedback_accepted": 4000}
    )
    assert sample.quality["1"].auc == 0.61 and sample.quality["1"].auc_low == pytest.approx(0.59)
    assert sample.quality["2"].labeled == 0 and sample.quality["2"].auc is None
    assert sample.labels_sent == 4000
    assert sample.gate == "auc n=1200 Δ -0.004 [-0.041, +0.033] Inconclusive"
    line = render_line(sample)
    assert "auc/labeled v1 0.610/5000 v2 -/0" in line and "gate auc n=1200" in line
    # Without a primary metric the analysis names none: no gate figures.
    plain = sample_from_objects(3.0, "rollout", None, None, MLMODEL)
    assert plain.gate is None and plain.quality == {}


def test_report_shows_quality_per_version_before_and_after_the_shift(tmp_path: Path) -> None:
    samples = _samples()
    samples[0].quality = {"1": VersionQuality(labeled=800, auc=0.65, auc_low=0.6, auc_high=0.7)}
    samples[1].quality = {"1": VersionQuality(labeled=9000, auc=0.6, accuracy=0.58)}
    samples[3].quality = {
        "1": VersionQuality(labeled=9000, auc=0.6),
        "2": VersionQuality(labeled=4000, auc=0.61),
    }
    record = DemoRecord(
        started_at="now", outcome="succeeded", stages=[], samples=samples, shift_t=0.5
    )
    assert [t for t, _ in quality_series(samples)["1"]] == [0.0, 1.0, 3.0]
    moments = quality_moments(record)
    # Samples: t0 v1 only, t1 v2 a candidate (the rollout), t3 v2 stable; the shift at 0.5.
    assert [(name, t) for name, t, _ in moments] == [
        ("before the shift", 0.0),
        ("v2's last canary step", 1.0),
        ("at the end", 3.0),
    ]
    record.alarm_t = 2.0  # after it, no candidate with quality: no rollout moments
    assert [name for name, _, _ in quality_moments(record)] == [
        "before the shift",
        "at the drift alarm",
        "at the end",
    ]
    record.alarm_t = 0.7
    assert [(name, t) for name, t, _ in quality_moments(record)] == [
        ("before the shift", 0.0),
        ("v2's last canary step", 1.0),
        ("at the end", 3.0),
    ]
    page = write_report(record, tmp_path).read_text()
    assert "<th>v1</th><th>v2</th>" in page
    assert "AUC 0.650 [0.600, 0.700], accuracy —, 800 labeled" in page
    assert "AUC 0.610, accuracy —, 4000 labeled" in page
    assert "AUC 0.600, accuracy 0.580, 9000 labeled" in page
