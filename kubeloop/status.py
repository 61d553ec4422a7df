"""`kubeloop status`: the supervisor's components (pid, uptime, restarts, last exit), then one
readable line per kubeloop resource, with its progress, then each MLModel version's quality on
the labels the monitor joined (MLModel status.quality)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.api.common import GROUP, VERSION
from operators.api.kinds import ALL_KINDS


@dataclass(frozen=True)
class SummaryRow:
    kind: str
    namespace: str
    name: str
    ready: str
    reason: str
    progress: str
    quality: tuple[QualityRow, ...] = field(default=())


@dataclass(frozen=True)
class QualityRow:
    """One MLModel version's quality (status.quality), as text."""

    version: str
    role: str
    labeled: str
    auc: str
    accuracy: str
    log_loss: str


def _interval_text(interval: dict[str, Any] | None, digits: int = 3) -> str:
    """Pure: "0.612 [0.590, 0.634]", "0.612" or "-"."""
    interval = interval or {}
    value = interval.get("value")
    if not isinstance(value, int | float):
        return "-"
    low, high = interval.get("low"), interval.get("high")
    if isinstance(low, int | float) and isinstance(high, int | float):
        return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{value:.{digits}f}"


def quality_of(obj: dict[str, Any]) -> tuple[QualityRow, ...]:
    """Pure: an MLModel's status.quality, one row per version (stable's first)."""
    status = obj.get("status", {}) or {}
    stable = status.get("stableVersion")
    entries = sorted(
        (e for e in status.get("quality") or [] if isinstance(e, dict)),
        key=lambda e: (e.get("version") != stable, str(e.get("version"))),
    )
    return tuple(
        QualityRow(
            version=str(e.get("version", "-")),
            role=str(e.get("role") or "-"),
            labeled=str(e.get("labeled", 0)),
            auc=_interval_text(e.get("auc")),
            accuracy=_interval_text(e.get("accuracy")),
            log_loss=_interval_text(e.get("logLoss")),
        )
        for e in entries
    )


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def progress_of(kind: str, obj: dict[str, Any]) -> str:
    """Pure: the few facts a person wants about one object's progress."""
    status = obj.get("status", {}) or {}
    if kind == "FeatureView":
        last = status.get("lastBackfill") or {}
        return f"version={status.get('version', '-')} rows={last.get('rows', '-')}"
    if kind == "Experiment":
        trials = status.get("trials") or []
        done = sum(1 for t in trials if t.get("state") in ("Succeeded", "Failed"))
        best = (status.get("best") or {}).get("trial", "-")
        return (
            f"phase={status.get('phase', '-')} trials={done}/{len(trials)} best={best} "
            f"registered={status.get('registeredVersion', '-')}"
        )
    traffic = status.get("traffic") or {}
    return (
        f"phase={status.get('phase', '-')} stable={status.get('stableVersion', '-')}"
        f"@{traffic.get('stable', '-')}% candidate={status.get('candidateVersion', '-')}"
        f"@{traffic.get('candidate', '-')}% drift={(status.get('drift') or {}).get('isDrift', '-')}"
    )


def summarize(kind: str, obj: dict[str, Any]) -> SummaryRow:
    ready = _condition(obj, "Ready")
    return SummaryRow(
        kind=kind,
        namespace=obj["metadata"].get("namespace", ""),
        name=obj["metadata"]["name"],
        ready=ready.get("status", "Unknown"),
        reason=ready.get("reason", "-") + (f": {ready['message']}" if ready.get("message") else ""),
        progress=progress_of(kind, obj),
        quality=quality_of(obj) if kind == "MLModel" else (),
    )


def collect_summary(kubeconfig: Path | None) -> list[SummaryRow]:
    from kubernetes import client, config

    api_client = (
        config.new_client_from_config(config_file=str(kubeconfig))
        if kubeconfig
        else config.new_client_from_config()
    )
    api = client.CustomObjectsApi(api_client)
    rows: list[SummaryRow] = []
    for kind in ALL_KINDS:
        listing = api.list_cluster_custom_object(GROUP, VERSION, kind.plural)
        rows.extend(summarize(kind.kind, item) for item in listing.get("items", []))
    return rows


def render_summary(rows: list[SummaryRow]) -> str:
    if not rows:
        return "No kubeloop resources yet. Try: kubectl apply -f examples/resources/"
    header = ("KIND", "NAMESPACE", "NAME", "READY", "PROGRESS", "REASON")
    summary = _table(
        [header, *((r.kind, r.namespace, r.name, r.ready, r.progress, r.reason[:80]) for r in rows)]
    )
    quality = render_quality(rows)
    return summary + ("\n\n" + quality if quality else "")


def render_quality(rows: list[SummaryRow]) -> str:
    """Pure: per MLModel version, the quality on joined labels (95% intervals); "" if none."""
    table: list[tuple[str, ...]] = [
        ("MLMODEL", "VERSION", "ROLE", "LABELED", "AUC", "ACCURACY", "LOGLOSS")
    ]
    for row in rows:
        for q in row.quality:
            name = f"{row.namespace}/{row.name}"
            table.append((name, q.version, q.role, q.labeled, q.auc, q.accuracy, q.log_loss))
    return _table(table) if len(table) > 1 else ""


def render_endpoints(record: dict[str, Any]) -> str:
    """Pure: where clients send what kubeloop cannot see by itself (the monitor's feedback)."""
    monitor = ((record.get("components") or {}).get("monitor") or {}).get("url")
    if not monitor:
        return ""
    base = str(monitor).rstrip("/")
    return f"monitor: {base}  (labels: POST {base}/v1/models/<namespace>/<name>/feedback)"


def uptime_text(seconds: float) -> str:
    """Pure: 42s, 3m07s, 2h05m, 3d04h."""
    whole = max(0, int(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def last_exit_text(last_exit: dict[str, Any] | None) -> str:
    """Pure: "SIGKILL at <time>", "code 1 at <time>" or "-"."""
    if not last_exit:
        return "-"
    how = last_exit.get("signal") or f"code {last_exit.get('code')}"
    return f"{how} at {last_exit.get('at', '?')}"


def render_components(record: dict[str, Any], now: float) -> str:
    """Pure: the supervisor's record (`supervisor.json`) as a table, `now` the epoch time."""
    components = record.get("components") or {}
    if not components:
        return "No supervisor record: kubeloop is not running here (`kubeloop up`)."
    rows: list[tuple[str, ...]] = [("COMPONENT", "PID", "UPTIME", "RESTARTS", "LAST EXIT")]
    for name, c in components.items():
        started = c.get("startedAtEpoch")
        uptime = uptime_text(now - started) if c.get("pid") and started else "-"
        if c.get("state") == "backoff" and c.get("nextStartAt"):
            uptime = f"backoff until {c['nextStartAt']}"
        pid = str(c["pid"]) if c.get("pid") else "-"
        rows.append(
            (name, pid, uptime, str(c.get("restarts", 0)), last_exit_text(c.get("lastExit")))
        )
    return _table(rows)


def _table(table: list[tuple[str, ...]]) -> str:
    header = table[0]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
