"""The demo's stages, in order. Each is a function of the context that returns when its
outcome is visible in the resources' status, or raises StageFailed naming what it awaited.

The demo is a client like kubectl: it applies resources and reads status, and never calls
operator internals. Where an upstream piece is missing, the stage fails at that point.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from kubeloop.demo.config import DemoConfig
from kubeloop.demo.context import DemoContext, Objects, StageFailed
from kubeloop.demo.feast import feast_serving
from kubeloop.demo.kube import DemoKube
from kubeloop.demo.resources import (
    EXPERIMENT_FILE,
    FEATUREVIEW_FILE,
    MLMODEL_FILE,
    render,
    tour_resource,
)
from kubeloop.demo.summary import fetch_quality
from kubeloop.embedded import launcher, services
from kubeloop.sampledata import lake
from kubeloop.sampledata.generate import GeneratorConfig, generate_events, labels_from_events
from kubeloop.sampledata.requests import feature_columns
from kubeloop.sampledata.sample import sample_config, write_sample_data
from kubeloop.sampledata.traffic import TrafficConfig, TrafficGenerator, make_streams
from operators.api.common import ANNOTATION_APPROVE, parse_duration

TERMINAL_MLMODEL_PHASES = ("RolledBack", "Failed")


def _status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("status") or {})


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stage_data(ctx: DemoContext) -> str:
    config = sample_config(
        datetime.now(UTC),
        rows=ctx.config.rows,
        seed=ctx.config.seed,
        days=ctx.config.days,
        label_fraction=ctx.config.label_fraction,
    )
    totals = write_sample_data(config, Path(ctx.data_dir))
    recent = write_recent_production(
        config, Path(ctx.data_dir), datetime.now(UTC), ctx.config.recent_rows,
        timedelta(seconds=ctx.config.recent_span_s),
    )  # fmt: skip
    totals = {name: totals[name] + recent[name] for name in ("events", "labels")}
    ctx.world = config
    ctx.template_values = {"DATA_DIR": ctx.data_dir, "BACKFILL_START": _iso_z(config.start)}
    return f"{totals['events']} events, {totals['labels']} labels in {ctx.data_dir}"


def write_recent_production(
    world: GeneratorConfig, data_dir: Path, now: datetime, rows: int, span: timedelta
) -> dict[str, int]:
    """`rows` new events of the unshifted world (another draw, the traffic's kind), their
    times spread over `[now - span, now)`, appended to the lake with their labels: the
    production of the last minutes that an application's lake holds next to its history.
    Round 1 splits in seconds (DemoConfig.split_*), so its latest windows need these."""
    if rows == 0:
        return {"events": 0, "labels": 0}
    draw = world.model_copy(
        update={
            "rows": rows, "users": world.n_users, "items": world.n_items,
            "event_seed": world.seed + 7919, "days": 1, "shift_at": None, "shift_sigma": 0.0,
            "late_fraction": 0.0,
        }
    )  # fmt: skip
    events = generate_events(draw)
    # One day of draws squeezed into `span`, order kept; created just after the event (the
    # label's own row must not be visible at its time, as for every lake row).
    offset = (events["event_timestamp"] - draw.start) / timedelta(days=1)
    stamps = pd.Timestamp(now - span) + offset * pd.Timedelta(span)
    events = events.assign(
        event_timestamp=stamps, created_timestamp=stamps + pd.Timedelta(seconds=1)
    )
    labels = labels_from_events(events, draw)
    lake.append_events(events, data_dir / "events", "recent")
    lake.append_labels(labels, data_dir / "labels", "recent")
    return {"events": len(events), "labels": len(labels)}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The children `kubeloop up` starts inherit these (the shortened operator intervals);
    the demo's own environment is restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def stage_up(ctx: DemoContext) -> str:
    port = ctx.config.port or launcher.free_port(ctx.config.host)
    ctx.started_up = True
    with _environment(ctx.config.operator_env()):
        started = services.up(
            ctx.config.state_dir,
            ctx.config.host,
            port,
            ctx.config.timeouts.up,
            warn=lambda text: print(text, file=sys.stderr),
        )
    (ctx.layout.logs_dir / "up.log").write_text(
        f"kubeloop is up: API server {started.server}, state in {started.layout.state_dir}\n"
    )
    ctx.kube = DemoKube.from_kubeconfig(ctx.layout.kubeconfig)
    ctx.view.message("  To watch with kubectl meanwhile, in another terminal:")
    ctx.view.message(f"  export KUBECONFIG={ctx.layout.kubeconfig.resolve()}")
    ctx.view.message("  kubectl get featureviews,experiments,mlmodels -w")
    return f"API server on port {port}"


def _apply(ctx: DemoContext, kind: str, file_name: str) -> dict[str, Any]:
    if kind == "MLModel":
        values = {"DATA_DIR": ctx.data_dir, **ctx.template_values}
        document = render(ctx.config.resources_dir / file_name, values)
    else:  # the tour's own FeatureView and Experiment, on the demo's data
        path = ctx.config.tour_resources_dir / file_name
        document = tour_resource(path, ctx.data_dir, ctx.template_values["BACKFILL_START"])
        if kind == "FeatureView" and ctx.config.backfill_schedule:
            document["spec"]["backfill"]["schedule"] = ctx.config.backfill_schedule
        if kind == "Experiment":
            document["spec"]["split"] = demo_split(ctx.config)
    ctx.documents[kind] = document
    assert ctx.kube is not None
    ctx.kube.apply(document)
    return document


def demo_split(config: DemoConfig) -> dict[str, str]:
    split = {"validation": config.split_validation, "test": config.split_test}
    if config.train_window:
        split["trainWindow"] = config.train_window
    return split


def _backfilled(objects: Objects) -> bool:
    featureview = objects[0]
    backfilled = _condition(featureview, "Backfilled")
    if backfilled.get("status") == "False" and "Fail" in str(backfilled.get("reason")):
        raise StageFailed(f"the backfill failed: {backfilled.get('message')}")
    ready = _condition(featureview, "Ready").get("status") == "True"
    return backfilled.get("status") == "True" and ready


def stage_featureview(ctx: DemoContext) -> str:
    _apply(ctx, "FeatureView", FEATUREVIEW_FILE)
    objects = ctx.wait_for(
        "FeatureView conditions Backfilled=True and Ready=True",
        ctx.config.timeouts.featureview,
        _backfilled,
    )
    status = _status(objects[0])
    return f"version {status.get('version')}, rows {(status.get('lastBackfill') or {}).get('rows')}"


def _experiment_failed(experiment: dict[str, Any] | None) -> None:
    status = _status(experiment)
    if status.get("phase") == "Failed":
        messages = [t.get("message") for t in status.get("trials") or [] if t.get("message")]
        raise StageFailed(f"the Experiment failed: {status.get('message') or messages}")


def _registered(objects: Objects) -> bool:
    experiment = objects[1]
    _experiment_failed(experiment)
    if _status(experiment).get("registeredVersion"):
        return True
    registered = _condition(experiment, "Registered")
    if _status(experiment).get("phase") == "Succeeded" and registered.get("status") == "False":
        raise StageFailed(
            f"the trials finished but no version was registered: {registered.get('reason')}: "
            f"{registered.get('message')}"
        )
    return False


def stage_experiment(ctx: DemoContext) -> str:
    _apply(ctx, "Experiment", EXPERIMENT_FILE)
    objects = ctx.wait_for(
        "Experiment status.registeredVersion (v1)", ctx.config.timeouts.experiment, _registered
    )
    ctx.v1 = str(_status(objects[1])["registeredVersion"])
    ctx.v1_round = int(_status(objects[1]).get("round") or 1)
    best = _status(objects[1]).get("best") or {}
    return (
        f"registered v{ctx.v1} (best {best.get('trial')} {best.get('metric')}={best.get('value')})"
    )


def _mlmodel_failed(mlmodel: dict[str, Any] | None) -> None:
    status = _status(mlmodel)
    if status.get("phase") in TERMINAL_MLMODEL_PHASES:
        raise StageFailed(
            f"the MLModel is {status.get('phase')}: {status.get('message')} "
            f"(analysis {status.get('analysis')})"
        )


def _serves(version: str | None) -> Callable[[Objects], bool]:
    def check(objects: Objects) -> bool:
        _mlmodel_failed(objects[2])
        status = _status(objects[2])
        traffic = status.get("traffic") or {}
        return (
            status.get("stableVersion") == version
            and traffic.get("stable") == 100
            and bool(status.get("url"))
        )

    return check


def stage_serve_v1(ctx: DemoContext) -> str:
    _apply(ctx, "MLModel", MLMODEL_FILE)
    objects = ctx.wait_for(
        f"MLModel stableVersion={ctx.v1} at 100% with status.url",
        ctx.config.timeouts.serve_v1,
        _serves(ctx.v1),
    )
    return f"v{ctx.v1} at 100% behind {_status(objects[2]).get('url')}"


def stage_traffic(ctx: DemoContext) -> str:
    mlmodel = ctx.read("MLModel")
    url = _status(mlmodel).get("url")
    if not url:
        raise StageFailed("MLModel status.url is empty: no router to send traffic to")
    # The labels go to the monitor's feedback API, as an application's would: the MLModel's
    # label gate and status.quality are computed from them.
    monitor_url = launcher.component_url(ctx.layout, "monitor")
    if not monitor_url:
        raise StageFailed("the supervisor's record names no monitor URL to send labels to")
    metadata = ctx.documents["MLModel"]["metadata"]
    config = TrafficConfig(
        url=str(url),
        model=str(metadata["name"]),
        namespace=str(metadata.get("namespace") or "default"),
        monitor_url=monitor_url,
        monitor_token_file=str(ctx.layout.monitor_token_file),
        path=ctx.config.traffic_path,
        protocol=ctx.config.traffic_protocol,
        requests_per_s=ctx.config.requests_per_s,
        rows_per_request=ctx.config.rows_per_request,
        stream_rows=ctx.config.stream_rows,
        label_delay_s=ctx.config.label_delay_s,
        shift_sigma=ctx.config.shift_sigma,
        seed=ctx.config.seed + 1,
        # The traffic plays the application: what it serves lands in the FeatureView's source
        # and its labels in the Experiment's, where a retrain reads them.
        events_dir=str(Path(ctx.data_dir) / "events"),
        labels_dir=str(Path(ctx.data_dir) / "labels"),
    )
    # Served from Feast: requests name the user, the transformer fills the features, and
    # the traffic pushes what it served to the online store (kubeloop/demo/feast.py).
    feast = feast_serving(ctx)
    columns = feature_columns(ctx.documents["Experiment"]["spec"]) if feast is None else feast[0]
    ctx.http = httpx.Client()
    ctx.traffic = TrafficGenerator(
        config,
        columns,
        ctx.http,
        streams=make_streams(config, world=ctx.world),
        push_online=None if feast is None else feast[1],
    )
    ctx.traffic.start()
    traffic = ctx.traffic

    def answered(_: Objects) -> bool:
        stats = traffic.snapshot()
        if stats.ok == 0 and stats.errors >= 20:
            raise StageFailed(f"every request failed; last error: {stats.last_error}")
        return stats.ok >= 20

    ctx.wait_for("20 answered inference requests", ctx.config.timeouts.traffic, answered)
    objects = ctx.wait_for(
        "a drift check of the unshifted traffic (MLModel status.drift.checkedAt)",
        ctx.config.timeouts.traffic,
        _checked_without_drift,
    )
    lowest = _lowest_p_value(_status(objects[2]).get("drift") or {})
    objects = ctx.wait_for(
        f"v{ctx.v1}'s labels joined by the monitor (MLModel status.quality labeled > 0)",
        ctx.config.timeouts.traffic,
        _labels_joined(traffic, ctx.v1),
    )
    served = f"; features from Feast by {', '.join(columns)}" if feast is not None else ""
    return (
        f"{config.requests_per_s:g} requests/s x {config.rows_per_request} rows to {url}, "
        f"labels to {monitor_url}{served}; no drift yet (lowest p {lowest})"
    )


def labeled_rows(mlmodel: dict[str, Any] | None, version: str | None) -> int:
    for entry in _status(mlmodel).get("quality") or []:
        if entry.get("version") == version:
            return int(entry.get("labeled") or 0)
    return 0


def _labels_joined(traffic: TrafficGenerator, version: str | None) -> Callable[[Objects], bool]:
    """The labels the traffic sends reach the monitor and join v1's predictions: the label
    gate and the report's "before the shift" figures need them."""

    def check(objects: Objects) -> bool:
        stats = traffic.snapshot()
        if stats.feedback_accepted == 0 and stats.feedback_failed + stats.feedback_rejected >= 200:
            raise StageFailed(
                f"the monitor takes no labels: {stats.feedback_failed} failed, "
                f"{stats.feedback_rejected} refused; last error: {stats.feedback_last_error}"
            )
        return labeled_rows(objects[2], version) > 0

    return check


def _lowest_p_value(drift: dict[str, Any]) -> str:
    name, value = min((drift.get("pValues") or {"-": 1.0}).items(), key=lambda item: item[1])
    return f"{name}={value:.3g}"


def _checked_without_drift(objects: Objects) -> bool:
    """Before the shift the monitor must have judged the live window and found no drift: a
    drift alarm here would be a false alarm, and the demo would prove nothing."""
    drift = _status(objects[2]).get("drift") or {}
    if drift.get("isDrift"):
        raise StageFailed(
            f"drift alarm before the shift (false alarm): lowest p {_lowest_p_value(drift)}"
        )
    return bool(drift.get("checkedAt")) and bool(drift.get("pValues"))


def monitor_client(ctx: DemoContext) -> tuple[httpx.Client, str]:
    """An HTTP client with the monitor's token (reports and quality are reads: authenticated)
    and the monitor's URL; the caller closes the client."""
    monitor_url = launcher.component_url(ctx.layout, "monitor")
    if not monitor_url:
        raise StageFailed("the supervisor's record names no monitor URL")
    token = ctx.layout.monitor_token_file.read_text().strip()
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}), monitor_url


def stage_shift(ctx: DemoContext) -> str:
    assert ctx.traffic is not None
    # v1's figures before the shift, from the monitor (the summary's v1_pre_shift): every row
    # it holds now was served before the switch below.
    metadata = ctx.documents["MLModel"]["metadata"]
    note = ""
    try:
        http, monitor_url = monitor_client(ctx)
        with http:
            ctx.quality_at_shift = fetch_quality(
                http, monitor_url, str(metadata.get("namespace") or "default"), metadata["name"]
            )
    except (httpx.HTTPError, OSError, StageFailed) as error:
        note = f" (v1's pre-shift quality not read: {error})"
    ctx.traffic.switch_to_shifted()
    ctx.shift_t = ctx.now()
    ctx.shift_epoch = time.time()
    return (
        f"requests now drawn from the stream shifted by {ctx.config.shift_sigma:g} sigma, "
        f"and the world's price sensitivity flipped{note}"
    )


def _drift_detected(objects: Objects) -> bool:
    return bool((_status(objects[2]).get("drift") or {}).get("isDrift"))


def stage_drift(ctx: DemoContext) -> str:
    objects = ctx.wait_for(
        "MLModel status.drift.isDrift=true", ctx.config.timeouts.drift, _drift_detected
    )
    ctx.alarm_t = ctx.now()
    drift = _status(objects[2]).get("drift") or {}
    ctx.drift_report = drift.get("reportUrl")
    return f"drift detected ({drift.get('detector')}; lowest p {_lowest_p_value(drift)})"


def approval_due(config: DemoConfig, shift_epoch: float) -> float:
    """When to approve the retrain (epoch s): its window ends at the approval's minute
    (operators/experiment/trials.py: round_window_end), and test, validation and the train
    window before that end must all lie after the shift. So: the first whole minute at
    least that long after the shift, plus a few seconds of margin."""
    needed = sum(
        parse_duration(d).total_seconds()
        for d in (config.split_test, config.split_validation, config.train_window or "0s")
    )
    earliest = shift_epoch + needed + APPROVAL_MARGIN_S
    return math.ceil(earliest / 60) * 60 + APPROVAL_MARGIN_S


# Seconds between the window end's minute and the approval, and of post-shift slack.
APPROVAL_MARGIN_S = 3


def stage_approve(ctx: DemoContext) -> str:
    """The demo plays the person who reads the drift report and approves the retrain
    (kubeloop.io/approve), once production after the shift covers the retrain's windows."""
    if not ctx.config.approve_retrain:
        return "not approving: the MLModel's retrain policy decides alone"
    assert ctx.shift_epoch is not None and ctx.kube is not None
    due = approval_due(ctx.config, ctx.shift_epoch)
    ctx.wait_for(
        f"{due - ctx.shift_epoch:.0f}s of post-shift traffic (the retrain's windows)",
        ctx.config.timeouts.drift + 180,
        lambda _: time.time() >= due,
    )
    metadata = ctx.documents["MLModel"]["metadata"]
    namespace = str(metadata.get("namespace") or "default")
    ctx.kube.annotate("MLModel", namespace, metadata["name"], ANNOTATION_APPROVE, "true")
    return (
        f"retrain approved ({ANNOTATION_APPROVE}=true) {time.time() - ctx.shift_epoch:.0f}s "
        "after the shift"
    )


def retrain_decided(
    experiment: dict[str, Any] | None, v1: str | None, v1_round: int
) -> dict[str, Any] | None:
    """None while the retrain round runs; {"registered": version} once it registered a new
    version; {"refused": ...} when it did not beat the champion (an honest outcome: the
    candidate was scored against v1 on the same test rows and was not better by
    objective.minImprovement, so it was never registered and never reaches the rollout).
    Any other round that registered nothing fails the stage, naming the reason."""
    _experiment_failed(experiment)
    status = _status(experiment)
    if status.get("registeredVersion") not in (None, v1) and status.get("lastRetrain"):
        return {"registered": str(status["registeredVersion"])}
    registered = _condition(experiment, "Registered")
    round_over = (status.get("round") or 0) > v1_round and status.get("phase") == "Succeeded"
    if not round_over or registered.get("status") != "False":
        return None
    if registered.get("reason") == CHAMPION_NOT_BEATEN:
        return {"refused": champion_refusal(status, registered)}
    raise StageFailed(
        f"the retrain round {status.get('round')} registered no new version: "
        f"{registered.get('reason')}: {registered.get('message')}"
    )


def stage_retrain(ctx: DemoContext) -> str:
    v1, v1_round = ctx.v1, ctx.v1_round
    decided: dict[str, Any] = {}

    def check(objects: Objects) -> bool:
        decided.update(retrain_decided(objects[1], v1, v1_round) or {})
        return bool(decided)

    objects = ctx.wait_for(
        "a retrain requested on the Experiment (status.lastRetrain) and a new registeredVersion "
        "or Registered=False ChampionNotBeaten",
        ctx.config.timeouts.retrain,
        check,
    )
    if "refused" in decided:
        ctx.v2_not_registered = decided["refused"]
        return f"the retrain did not beat the champion v{v1}, nothing registered: " + str(
            ctx.v2_not_registered["message"]
        )
    ctx.v2 = decided["registered"]
    reason = (_status(objects[1]).get("lastRetrain") or {}).get("reason")
    return f"v{ctx.v2} registered after retrain ({reason})"


# The Experiment's Registered=False reason for a retrain that did not beat the champion
# (operators/experiment/trials.py: refusal_reason).
CHAMPION_NOT_BEATEN = "ChampionNotBeaten"


def champion_refusal(status: dict[str, Any], registered: dict[str, Any]) -> dict[str, Any]:
    """What the demo reports of a retrain refused against the champion: the condition's
    message and the best trial's paired comparison (status.best.vsChampion)."""
    best = status.get("best") or {}
    return {
        "round": status.get("round"),
        "reason": registered.get("reason"),
        "message": registered.get("message"),
        "best": {
            "trial": best.get("trial"),
            "metric": best.get("metric"),
            "value": best.get("value"),
        },
        "vsChampion": best.get("vsChampion"),
        "dataWindow": status.get("dataWindow"),
    }


def label_gate_rejected(status: dict[str, Any], version: str | None) -> str | None:
    """The rollback message when the label gate rolled `version` back as significantly worse
    than stable (its confidence sequence entirely below 0), else None.

    The retrain trains on the history v1 had (until the retrain learns from production), so
    v2 can honestly be worse than v1 on the shifted traffic: rolling it back is the gate
    doing its job, and the demo says so instead of hiding it behind a lenient margin."""
    analysis = status.get("analysis") or {}
    high = analysis.get("high")
    if (
        status.get("phase") == "RolledBack"
        and status.get("candidateVersion") == version
        and analysis.get("metric")
        and isinstance(high, int | float)
        and high < 0
    ):
        return str(status.get("message") or analysis.get("message"))
    return None


def stage_rollout(ctx: DemoContext) -> str:
    if ctx.v2_not_registered is not None:
        return f"nothing to roll out: the retrain was not registered, v{ctx.v1} keeps serving"
    v2 = ctx.v2

    def decided(objects: Objects) -> bool:
        status = _status(objects[2])
        rejected = label_gate_rejected(status, v2)
        if rejected is not None:
            ctx.v2_rejected = rejected
            return True
        _mlmodel_failed(objects[2])
        return status.get("phase") == "Promoted" and _serves(v2)(objects)

    ctx.wait_for(
        f"MLModel phase Promoted with stableVersion={v2} at 100%, or v{v2} rolled back by the "
        "label gate as significantly worse",
        ctx.config.timeouts.rollout,
        decided,
    )
    phases = "phases: " + " → ".join(ctx.phases_seen)
    if ctx.v2_rejected is not None:
        return f"v{v2} rolled back by the label gate, v{ctx.v1} keeps serving: {ctx.v2_rejected}"
    ctx.promoted_t = ctx.now()
    return phases


# What v2's lineage must name: the issue's "FeatureView version, data window, MLflow run and
# the drift report that caused it".
LINEAGE_FIELDS = ("featureViewVersions", "dataWindow", "mlflowRunId", "driftReport")


def missing_lineage(lineage: dict[str, Any], version: str | None) -> list[str]:
    missing = [name for name in LINEAGE_FIELDS if not lineage.get(name)]
    if lineage.get("modelVersion") != version:
        missing.insert(0, f"modelVersion={version} (is {lineage.get('modelVersion')})")
    return missing


def stage_lineage(ctx: DemoContext) -> str:
    """The lineage is written on the operator's next pass after the promotion: wait a little."""
    if ctx.v2_not_registered is not None:
        return f"no v2: the lineage still names the serving v{ctx.v1}"
    if ctx.v2_rejected is not None:
        return f"v{ctx.v2} was not promoted: the lineage still names the serving v{ctx.v1}"

    def complete(objects: Objects) -> bool:
        ctx.lineage = dict(_status(objects[2]).get("lineage") or {})
        return not missing_lineage(ctx.lineage, ctx.v2)

    try:
        ctx.wait_for(
            "v2's lineage in MLModel status.lineage", ctx.config.timeouts.lineage, complete
        )
    except StageFailed:
        missing = ", ".join(missing_lineage(ctx.lineage, ctx.v2))
        raise StageFailed(f"MLModel status.lineage lacks {missing}: {ctx.lineage}") from None
    lineage = ctx.lineage
    views = ", ".join(f"{k}@{v[:8]}" for k, v in lineage["featureViewVersions"].items())
    return f"v{ctx.v2} ← {views}, run {lineage['mlflowRunId'][:8]}, {lineage['driftReport']}"


Stage = tuple[str, str, Callable[[DemoContext], str]]

STAGES: list[Stage] = [
    ("data", "generate synthetic data", stage_data),
    ("up", "start the embedded control plane (kubeloop up)", stage_up),
    ("featureview", "apply the FeatureView, wait for the backfill", stage_featureview),
    ("experiment", "apply the Experiment (2 trials, DDP x2), wait for v1", stage_experiment),
    ("serve_v1", "apply the MLModel, wait for v1 at 100%", stage_serve_v1),
    ("traffic", "start the traffic generator", stage_traffic),
    ("shift", "inject the distribution shift", stage_shift),
    ("drift", "wait for the drift alarm", stage_drift),
    ("approve", "approve the retrain once post-shift traffic covers its windows", stage_approve),
    ("retrain", "wait for the retrain and v2 (or the champion kept)", stage_retrain),
    ("rollout", "wait for v2, judged on labels: shadow → 10 → 50 → 100%", stage_rollout),
    ("lineage", "check v2's lineage in the MLModel status", stage_lineage),
]
STAGE_NAMES = [name for name, _, _ in STAGES]
