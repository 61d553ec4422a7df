"""Drift alarm → retrain request → lineage, against the embedded control plane, a real MLflow
store, the real monitor and the real operator process (all three operators run).

The test plays KServe's part (it marks the InferenceService Ready) and the predictor's (it
sends the logger CloudEvents, with drifted inputs, to the monitor). The Experiment it creates
names a FeatureView that does not exist, so the real Experiment operator picks the retrain
request up and then waits: the request stays outstanding, and further alarms must not ask
again.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from kubeloop.sampledata.generate import GeneratorConfig, write_dataset
from tests.support.kube import NS, CustomObjects
from tests.support.models import FEATURES, LogisticModel, register_model
from tests.support.monitor import exchange_events, post_events
from tests.support.specs import feature_view_spec
from tests.support.stack import MONITOR, OPERATORS, Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

REGISTERED = "churn-drift"
MODEL = "drifty"
EXPERIMENT = "churn-retrain"
RETRAIN = "kubeloop.io/retrain-requested"
TAGS = {
    "kubeloop.io/feature-view-versions": json.dumps({"churn-features": "v4"}),
    "kubeloop.io/data-window": json.dumps({"start": "2026-01-01T00:00:00Z", "end": "2026-02-01"}),
    "kubeloop.io/experiment": "churn-exp",
    "kubeloop.io/trial": "churn-exp-r1-t2",
    "kubeloop.io/code-version": "0123abc",
}
_ids = itertools.count()


def _reference(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({name: rng.normal(0.0, 1.0, rows) for name in FEATURES})


class Harness(CustomObjects):
    def __init__(self, stack: Stack, version: str) -> None:
        super().__init__(stack.kubeconfig, context=stack.logs)
        self.stack = stack
        self.version = version

    def model_status(self) -> dict[str, Any]:
        return self.status("mlmodels", MODEL)

    def wait_model(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 90
    ) -> dict[str, Any]:
        return self.wait_status("mlmodels", MODEL, check, what, timeout_s)

    def send_inputs(self, frame: pd.DataFrame) -> None:
        """One logged call per row, as the stable predictor's logger would send them."""
        events: list[dict[str, Any]] = []
        for row in frame.to_dict(orient="records"):
            request, response = exchange_events(NS, MODEL, self.version, "stable", f"d{next(_ids)}")
            request["data"] = {"instances": [{k: float(v) for k, v in row.items()}]}
            events += [request, response]
        post_events(self.stack.monitor_url, events, self.stack.monitor_headers)

    def send_rows(self, model: str, rows: list[dict[str, Any]]) -> None:
        """One logged stable call per row, the row sent as a v1 instance as it is."""
        events: list[dict[str, Any]] = []
        for row in rows:
            request, response = exchange_events(NS, model, self.version, "stable", f"s{next(_ids)}")
            request["data"] = {"instances": [row]}
            events += [request, response]
        post_events(self.stack.monitor_url, events, self.stack.monitor_headers)

    def evaluate_drift(self) -> None:
        """Run the monitor's drift round now instead of waiting for its interval."""
        answer = httpx.post(
            self.stack.monitor_url + "v1/drift/evaluate",
            headers=self.stack.monitor_headers,
            timeout=60,
        )
        assert answer.status_code == 200, answer.text

    def events(self, reason: str, name: str = MODEL) -> list[Any]:
        return [e for e in self.events_for(name) if e.reason == reason]


@pytest.fixture(scope="module")
def harness(model_stack: Stack) -> Iterator[Harness]:
    stack = model_stack
    version = register_model(
        stack.tracking_uri,
        stack.state_dir,
        REGISTERED,
        LogisticModel(),
        reference=_reference(),
        tags=TAGS,
    )
    with stack.running(MONITOR, OPERATORS):
        yield Harness(stack, version)


def _experiment_spec() -> dict[str, Any]:
    return {
        "features": [{"featureView": "no-such-view", "names": FEATURES}],
        "labels": {
            "source": "/nonexistent/labels.parquet",
            "timestampField": "event_timestamp",
            "labelField": "label",
            "entityKeys": ["user_id"],
        },
        "split": {"validation": "8h", "test": "8h"},
        "register": {"model": REGISTERED},
    }


def _mlmodel_spec(version: str) -> dict[str, Any]:
    return {
        "model": {"name": REGISTERED, "version": version},
        "monitoring": {
            "drift": {"detector": "ks", "pValue": 0.05, "window": {"size": 100, "maxAge": "1h"}},
            # No cooldown: only the outstanding request may hold back a second one.
            "retrain": {"experiment": EXPERIMENT, "cooldown": "0s", "maxPerDay": 10},
        },
    }


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_drift_requests_one_retrain_and_lineage_comes_from_tags(harness: Harness) -> None:
    harness.create("experiments", "Experiment", EXPERIMENT, _experiment_spec())
    harness.create("mlmodels", "MLModel", MODEL, _mlmodel_spec(harness.version))
    harness.mark_ready(f"{MODEL}-v{harness.version}")
    promoted = harness.wait_model(lambda s: s.get("phase") == "Promoted", "Promoted")

    # Lineage from the version's MLflow tags.
    lineage = promoted["lineage"]
    assert lineage["modelVersion"] == harness.version and lineage["mlflowRunId"]
    assert lineage["featureViewVersions"] == {"churn-features": "v4"}
    assert json.loads(lineage["dataWindow"]) == json.loads(TAGS["kubeloop.io/data-window"])
    assert (lineage["experiment"], lineage["trial"], lineage["codeVersion"]) == (
        "churn-exp",
        "churn-exp-r1-t2",
        "0123abc",
    )

    # Inputs far from the training reference: x1 shifted by three standard deviations.
    rng = np.random.default_rng(11)
    drifted = pd.DataFrame({"x1": rng.normal(3.0, 1.0, 120), "x2": rng.normal(0.0, 1.0, 120)})
    harness.send_inputs(drifted)

    def drift_seen() -> dict[str, Any] | None:
        harness.evaluate_drift()
        status = harness.model_status()
        return status if (status.get("drift") or {}).get("isDrift") else None

    status = wait_for(
        drift_seen, 90, "status.drift.isDrift", interval_s=1, context=harness.stack.logs
    )
    drift = status["drift"]
    assert drift["version"] == harness.version and drift["detector"]
    assert drift["pValues"]["x1"] < 0.05 and drift["window"] >= 50 and drift["checkedAt"]
    assert drift["reportUrl"].startswith(harness.stack.monitor_url.rstrip("/") + "/")
    condition = _condition(status, "Drift")
    assert (condition["status"], condition["reason"]) == ("True", "DriftDetected")
    assert "x1" in condition["message"]
    detected = wait_for(lambda: harness.events("DriftDetected"), 30, "a DriftDetected event")
    assert detected[0].type == "Warning" and "x1 (p=" in detected[0].message

    # The retrain request on the Experiment, as the Experiment operator reads it.
    def requested() -> str | None:
        annotations = harness.get("experiments", EXPERIMENT)["metadata"].get("annotations") or {}
        return annotations.get(RETRAIN)

    value = wait_for(requested, 60, "the retrain annotation", context=harness.stack.logs)
    request = json.loads(value)
    assert request["requestedBy"] == f"MLModel {NS}/{MODEL}"
    assert request["version"] == harness.version
    assert request["reason"].startswith(f"drift on version {harness.version}: x1 (p=")
    assert request["reportUrl"] == drift["reportUrl"] or request["reportUrl"].startswith(
        harness.stack.monitor_url.rstrip("/")
    )
    assert request["requestedAt"].endswith("Z")
    # The next pass already finds it outstanding, so the decision may have moved on.
    last = harness.wait_model(
        lambda s: bool((s.get("lastRetrain") or {}).get("requestedAt")), "retrain recorded"
    )["lastRetrain"]
    assert len(last["history"]) == 1 and last["reason"] == request["reason"]
    assert last["version"] == harness.version and last["reportUrl"] == request["reportUrl"]
    wait_for(lambda: harness.events("RetrainRequested"), 30, "a RetrainRequested event")

    # The real Experiment operator picks the request up, then waits for its FeatureView.
    experiment = wait_for(
        lambda: (harness.get("experiments", EXPERIMENT).get("status") or {}).get("lastRetrain"),
        60,
        "the Experiment to take the request",
    )
    assert experiment["reason"] == request["reason"]

    # Drift goes on: the alarm repeats, the request is outstanding, nothing is asked again.
    checked = harness.model_status()["drift"]["checkedAt"]
    harness.send_inputs(drifted)

    def rechecked_and_outstanding() -> dict[str, Any] | None:
        harness.evaluate_drift()
        status = harness.model_status()
        again = status["drift"]["checkedAt"] != checked and status["drift"]["isDrift"]
        decision = (status.get("lastRetrain") or {}).get("decision") or ""
        return status if again and decision.startswith("outstanding") else None

    outstanding = wait_for(
        rechecked_and_outstanding, 60, "a second alarm, outstanding", interval_s=1
    )
    assert len(outstanding["lastRetrain"]["history"]) == 1
    assert requested() == value
    assert len(harness.events("RetrainRequested")) == 1
    assert len(harness.events("DriftDetected")) == 1


SKEW_MODEL = "skewed"
SKEW_VIEW = "skew-view"


def _skew_view_spec(events: str, start: datetime) -> dict[str, Any]:
    sql = (
        "SELECT user_id, event_timestamp, created_timestamp, dwell_seconds, "
        "CAST(clicks AS DOUBLE) AS clicks FROM source"
    )
    window = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return feature_view_spec(events, sql, ["dwell_seconds", "clicks"], window)


def test_skew_compares_served_features_with_the_offline_store(
    harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real FeatureView operator backfills an offline store; served rows of its entities
    are paired with the offline values as of serving time: equal values agree, a feature
    pipeline that serves other values is reported as skew."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    data = tmp_path_factory.mktemp("skew-data")
    write_dataset(GeneratorConfig(rows=2000, days=3, seed=5, start=start), data)
    harness.create(
        "featureviews", "FeatureView", SKEW_VIEW, _skew_view_spec(str(data / "events"), start)
    )
    spec = {
        "model": {"name": REGISTERED, "version": harness.version},
        "monitoring": {"skew": {"featureView": SKEW_VIEW, "maxMismatchFraction": 0.05}},
    }
    harness.create("mlmodels", "MLModel", SKEW_MODEL, spec)
    harness.mark_ready(f"{SKEW_MODEL}-v{harness.version}")

    def offline_path() -> str | None:
        """The offline store once the backfill wrote it (the path is pinned before the run)."""
        status = harness.get("featureviews", SKEW_VIEW).get("status") or {}
        backfilled = _condition(status, "Backfilled").get("status") == "True"
        return status.get("offlinePath") if backfilled else None

    offline = pd.read_parquet(wait_for(offline_path, 600, "the backfill's offline store"))
    # What the online store serves now: each user's latest offline row.
    latest = offline.sort_values("event_timestamp").groupby("user_id").tail(1).head(40)
    rows = [
        {
            "user_id": int(r.user_id),
            "skew_view__dwell_seconds": float(r.dwell_seconds),
            "skew_view__clicks": float(r.clicks),
        }
        for r in latest.itertuples()
    ]

    def skew_after(sent: list[dict[str, Any]], want: bool) -> dict[str, Any]:
        harness.send_rows(SKEW_MODEL, sent)

        def verdict() -> dict[str, Any] | None:
            harness.evaluate_drift()
            skew = harness.get("mlmodels", SKEW_MODEL).get("status", {}).get("skew") or {}
            done = skew.get("isSkew") is want and (skew.get("pairs") or 0) >= len(sent)
            return skew if done else None

        return wait_for(verdict, 90, f"status.skew.isSkew={want}", interval_s=1)

    agreeing = skew_after(rows, want=False)
    assert agreeing["pairs"] == len(rows) and agreeing["unmatchedServed"] == 0
    assert set(agreeing["mismatchFraction"]) == {"skew_view__dwell_seconds", "skew_view__clicks"}

    # The serving path computes dwell time differently: every served value is off by a second.
    drifted_pipeline = [
        {**r, "skew_view__dwell_seconds": r["skew_view__dwell_seconds"] + 1} for r in rows
    ]
    skewed = skew_after(drifted_pipeline, want=True)
    assert skewed["skewedFeatures"] == ["skew_view__dwell_seconds"]
    assert skewed["mismatchFraction"]["skew_view__clicks"] == 0.0
    events = wait_for(lambda: harness.events("SkewDetected", SKEW_MODEL), 30, "SkewDetected")
    assert events[0].type == "Warning" and "skew_view__dwell_seconds" in events[0].message
