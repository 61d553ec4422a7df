"""Runs the stages in order with start/finish lines, then always writes the report and
stops what it started (unless asked to keep it running)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx

from kubeloop.demo.config import DemoConfig
from kubeloop.demo.context import DemoContext, StageFailed
from kubeloop.demo.progress import ProgressView
from kubeloop.demo.report import DemoRecord, StageRecord, write_report
from kubeloop.demo.resources import name_of, namespace_of
from kubeloop.demo.stages import STAGE_NAMES, STAGES, monitor_client
from kubeloop.demo.summary import (
    build_summary,
    fetch_comparison,
    fetch_quality,
    skew_summary,
)
from kubeloop.embedded import launcher
from kubeloop.embedded.launcher import EmbeddedError, EmbeddedLayout


class DemoOutcome:
    def __init__(self, ok: bool, message: str, report: Path | None) -> None:
        self.ok = ok
        self.message = message
        self.report = report


def stages_up_to(stop_after: str | None) -> list[str]:
    if stop_after is None:
        return list(STAGE_NAMES)
    if stop_after not in STAGE_NAMES:
        raise ValueError(f"stop_after: unknown stage {stop_after!r}; stages are {STAGE_NAMES}")
    return STAGE_NAMES[: STAGE_NAMES.index(stop_after) + 1]


def _run_stage(ctx: DemoContext, name: str, title: str, run: object) -> None:
    record = StageRecord(name=name, started_t=round(ctx.now(), 2))
    ctx.stages.append(record)
    ctx.stage = name
    ctx.view.message(f"▶ {name}: {title}")
    try:
        message = run(ctx)  # type: ignore[operator]
    except Exception as error:
        record.finished_t = round(ctx.now(), 2)
        record.outcome = "failed"
        record.message = (
            str(error) if isinstance(error, (StageFailed, EmbeddedError)) else repr(error)
        )
        ctx.view.message(f"✘ {name} failed after {record.seconds}s: {record.message}")
        raise
    record.finished_t = round(ctx.now(), 2)
    record.outcome = "ok"
    record.message = message
    ctx.view.message(f"✔ {name} ({record.seconds}s): {message}")


def _relative(
    ctx: DemoContext, series: list[tuple[float, float, int]]
) -> list[tuple[float, float, int]]:
    """Accuracy buckets carry wall-clock starts; the report's axis is seconds since the start."""
    origin = ctx.started_at.timestamp()
    return [(round(start - origin, 2), value, count) for start, value, count in series]


def _record(ctx: DemoContext, ok: bool, message: str) -> DemoRecord:
    return DemoRecord(
        started_at=ctx.started_at.isoformat(),
        outcome="succeeded" if ok else "failed",
        message=message,
        stages=ctx.stages,
        samples=ctx.samples,
        accuracy=_relative(ctx, ctx.traffic.accuracy_over_time()) if ctx.traffic else [],
        shift_t=ctx.shift_t,
        alarm_t=ctx.alarm_t,
        promoted_t=ctx.promoted_t,
        drift_report=ctx.drift_report,
        lineage=ctx.lineage,
    )


def v2_first_served(ctx: DemoContext) -> float | None:
    """Epoch seconds of the first sample that shows v2 in play (shadow, canary or stable)."""
    if ctx.v2 is None:
        return None
    origin = ctx.started_at.timestamp()
    for sample in ctx.samples:
        if ctx.v2 in (sample.candidate_version, sample.stable_version):
            return origin + sample.t
    return None


def collect_summary(ctx: DemoContext) -> dict[str, Any]:
    """Ask the monitor for the period figures and the paired comparison (summary.py)."""
    since = v2_first_served(ctx)
    post_shift = comparison = None
    errors: dict[str, str] = {}
    document = ctx.documents.get("MLModel")
    if document is not None and ctx.started_up and ctx.v1 and ctx.v2 is None and ctx.shift_epoch:
        # No v2 served (not registered, or never reached): v1's figures since the shift.
        since = ctx.shift_epoch
        try:
            http, monitor_url = monitor_client(ctx)
            with http:
                post_shift = fetch_quality(
                    http, monitor_url, namespace_of(document), name_of(document), ctx.shift_epoch
                )
        except (httpx.HTTPError, OSError, StageFailed) as error:
            errors["monitor"] = f"{type(error).__name__}: {error}"
    if document is not None and ctx.started_up and since is not None and ctx.v1 and ctx.v2:
        namespace, model = namespace_of(document), name_of(document)
        try:
            http, monitor_url = monitor_client(ctx)
            with http:
                post_shift = fetch_quality(http, monitor_url, namespace, model, since)
                comparison = fetch_comparison(
                    http, monitor_url, namespace, model, candidate=ctx.v2, stable=ctx.v1,
                    since=since,
                )  # fmt: skip
        except (httpx.HTTPError, OSError, StageFailed) as error:
            errors["monitor"] = f"{type(error).__name__}: {error}"
    summary = build_summary(
        v1=ctx.v1,
        v2=ctx.v2,
        at_shift=ctx.quality_at_shift,
        post_shift=post_shift,
        comparison=comparison,
        since=since,
        extra={
            "v2_rejected_by_label_gate": ctx.v2_rejected,
            "v2_not_registered": ctx.v2_not_registered,
            "stage_seconds": {s.name: s.seconds for s in ctx.stages},
            "traffic": ctx.traffic.snapshot().model_dump() if ctx.traffic else None,
            "skew": skew_summary(ctx.skew_checks),
        },
    )
    summary["reasons"].update(errors)
    return summary


def _shutdown(ctx: DemoContext) -> None:
    if ctx.traffic is not None:
        ctx.traffic.stop()
    if ctx.http is not None:
        ctx.http.close()
    if not ctx.started_up:
        return
    if ctx.config.keep_running:
        # Kept up, success or not, so a person can look around (and a failure be debugged).
        ctx.view.message(
            f"still running; stop with: kubeloop down --state-dir {ctx.config.state_dir}"
        )
        return
    stopped = launcher.stop_all(ctx.layout)
    ctx.view.message(f"stopped: {', '.join(stopped) or 'nothing'}")


def run(config: DemoConfig, view: ProgressView | None = None) -> tuple[DemoOutcome, DemoContext]:
    wanted = stages_up_to(config.stop_after)
    ctx = DemoContext(
        config=config, layout=EmbeddedLayout(config.state_dir), view=view or ProgressView()
    )
    ok, message = True, "the loop closed: v2 serves 100% of traffic"
    if config.stop_after:
        message = f"ran the stages up to {config.stop_after!r}"
    try:
        for name, title, stage in STAGES:
            if name in wanted:
                _run_stage(ctx, name, title, stage)
        if ctx.v2_not_registered and not config.stop_after:
            message = (
                "the loop closed on the champion: the retrain did not beat v1 on the same test "
                f"rows and was not registered, v1 keeps serving "
                f"({ctx.v2_not_registered['message']})"
            )
        elif ctx.v2_rejected and not config.stop_after:
            message = (
                "the loop closed on labels: the label gate kept v1, the retrained v2 is "
                f"significantly worse ({ctx.v2_rejected})"
            )
    except KeyboardInterrupt:
        ok, message = False, f"interrupted during stage {ctx.stage!r}"
    except Exception as error:  # every failure still gets its report
        ok, message = False, (ctx.stages[-1].message if ctx.stages else None) or repr(error)
    finally:
        with contextlib.suppress(Exception):
            ctx.observe()
        record = _record(ctx, ok, message)
        try:
            record.summary = collect_summary(ctx)
        except Exception as error:  # noqa: BLE001 - the report is written whatever happens
            record.summary = {"error": f"{type(error).__name__}: {error}"}
        report = write_report(record, config.state_dir / "report")
        _shutdown(ctx)
    ctx.view.message(f"{'✔' if ok else '✘'} {message}")
    ctx.view.message(f"report: {report.resolve()}")
    return DemoOutcome(ok, message, report), ctx
