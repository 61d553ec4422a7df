"""The per-version drift view (JSON) and the self-contained HTML drift report (pure).

The report is one HTML page with inline SVG (no scripts, no external assets), so a snapshot
taken at alarm onset still renders the same years later, from SQLite alone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from services.monitor.drift.alarm import RULE_WINDOW
from services.monitor.drift.skew import SKEW
from services.monitor.drift.suite import FEATURE, NULL_RATE, PREDICTION

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
_P_FLOOR = 1e-12  # log-scale floor for p-values of 0


def history_entry(result: Mapping[str, Any], is_drift: bool, checked_at: float) -> dict[str, Any]:
    """What the history keeps of one evaluation."""
    return {
        "checkedAt": checked_at,
        "pValues": _p_values(result),
        "pValue": result.get("p_value"),
        "threshold": result.get("threshold"),
        "isDrift": is_drift,
    }


def _p_values(result: Mapping[str, Any]) -> dict[str, float]:
    if result.get("feature_p_values"):
        return {str(k): float(v) for k, v in result["feature_p_values"].items()}
    if result.get("p_value") is not None:
        return {str(result.get("detector", "p")).removeprefix("alibi-"): float(result["p_value"])}
    return {}


def _message(result: Mapping[str, Any]) -> str | None:
    for key in ("error", "message", "skipped"):
        if result.get(key):
            return str(result[key])
    return None


def version_view(
    namespace: str,
    model: str,
    version: str,
    results: Mapping[str, Mapping[str, Any]],
    alarms: Mapping[str, Mapping[str, Any]],
    detector: str,
    configured_p_value: float,
    skew: bool = False,
) -> dict[str, Any]:
    """``GET .../drift`` ``versions[v]``: the feature detector decides ``isDrift``; skew is
    reported (``checks.skew``, when configured) but never decides it."""
    feature = results.get(f"{version}/{FEATURE}", {})
    alarm = alarms.get(f"{version}/{FEATURE}", {})
    is_drift = bool(alarm.get("isDrift", False))
    report_id = alarm.get("reportId") if is_drift else None
    return {
        "detector": feature.get("detector") or detector,
        "isDrift": is_drift,
        "pValues": _p_values(feature),
        "pValue": feature.get("p_value"),
        "threshold": feature.get("threshold", configured_p_value),
        "window": int(feature.get("window_size", 0)),
        "checkedAt": feature.get("checkedAt"),
        "since": alarm.get("since") if is_drift else None,
        "reportUrl": f"/v1/reports/{report_id}" if report_id else None,
        "liveReportUrl": f"/v1/models/{namespace}/{model}/drift/report?version={version}",
        "message": _message(feature) if feature else "not evaluated yet",
        "alarm": alarm_view(alarm, feature),
        "checks": {
            "prediction": _prediction_view(results.get(f"{version}/{PREDICTION}", {})),
            "nullRate": _null_rate_view(results.get(f"{version}/{NULL_RATE}", {})),
            **({"skew": skew_view(results.get(f"{version}/{SKEW}", {}))} if skew else {}),
        },
    }


def _when_view(result: Mapping[str, Any]) -> dict[str, Any]:
    """The window size, time and message every check's view ends with."""
    return {
        "window": result.get("window_size"),
        "checkedAt": result.get("checkedAt"),
        "message": _message(result) if result else "not evaluated yet",
    }


def _check_view(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "isDrift": bool(result.get("isDrift", False)),
        "pValue": result.get("p_value"),
        "threshold": result.get("threshold"),
        **_when_view(result),
    }


def alarm_view(alarm: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """How the verdict was reached: ``window`` (each window decides), ``consecutive`` or
    ``cusum`` (services/monitor/drift/alarm.py), with the rule's figures and whether the last
    check counted as evidence."""
    return {
        "rule": alarm.get("rule", RULE_WINDOW),
        "windowDrift": result.get("is_drift"),
        "statistic": alarm.get("statistic"),
        "threshold": alarm.get("threshold"),
        "expectedRunTimeSeconds": alarm.get("expectedRunTimeSeconds"),
        "consecutive": int(alarm.get("consecutive", 0)),
        "requiredConsecutive": int(alarm.get("requiredConsecutive", 1)),
        "evidenceWindows": alarm.get("evidenceWindows"),
        "counted": alarm.get("counted"),
        "notCounted": alarm.get("notCounted"),
    }


def _prediction_view(result: Mapping[str, Any]) -> dict[str, Any]:
    """The prediction check, with what its scores were compared with (``baseline``)."""
    return {
        **_check_view(result),
        "baseline": result.get("baseline"),
        "baselineNote": result.get("baselineNote"),
    }


def _null_rate_view(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "isDrift": bool(result.get("isDrift", False)),
        "windowRates": result.get("window_rates", {}),
        "referenceRates": result.get("reference_rates", {}),
        "tolerance": result.get("tolerance"),
        "exceeded": result.get("exceeded", []),
        **_when_view(result),
    }


def skew_view(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "isSkew": bool(result.get("is_skew", False)),
        "pairs": int(result.get("pairs", 0)),
        "unmatchedServed": int(result.get("unmatched_served", 0)),
        "mismatchFraction": result.get("mismatch_fraction", {}),
        "skewedFeatures": result.get("skewed_features", []),
        "maxMismatchFraction": result.get("max_mismatch_fraction"),
        "checkedAt": result.get("checkedAt"),
        "message": _message(result) if result else "not evaluated yet",
    }


# ----------------------------------------------------------------------------- HTML report


@dataclass
class ReportInput:
    namespace: str
    model: str
    version: str
    view: dict[str, Any]  # version_view()
    generated_at: float
    features: list[str] = field(default_factory=list)
    reference: pd.DataFrame | None = None
    window: pd.DataFrame | None = None
    history: Sequence[Mapping[str, Any]] = ()
    snapshot: bool = False
    quality_html: str = ""  # model quality per version over time (outcomes/report.py)


def render_report(data: ReportInput) -> str:
    view = data.view
    state = "DRIFT" if view["isDrift"] else "no drift"
    title = f"Drift report: {data.namespace}/{data.model} version {data.version}"
    rows = [
        ("Detector", view["detector"]),
        ("Alarm", state + (f" since {_time(view['since'])}" if view.get("since") else "")),
        ("Threshold (p-value)", _num(view["threshold"])),
        ("Window p-value", _num(view["pValue"])),
        ("Rows checked", str(view["window"])),
        ("Checked at", _time(view["checkedAt"])),
        ("Message", view["message"] or ""),
        ("Alarm rule", _alarm_line(view.get("alarm") or {})),
        ("Prediction drift", _check_line(view["checks"]["prediction"])),
        ("Null-rate check", _null_line(view["checks"]["nullRate"])),
        ("Report", ("snapshot at alarm onset, " if data.snapshot else "live, ")
         + f"generated {_time(data.generated_at)}"),
    ]  # fmt: skip
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}.drift{color:#d62728;font-weight:bold}.ok{color:#2ca02c}"
        "figure{display:inline-block;margin:0 1em 1em 0}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='{'drift' if view['isDrift'] else 'ok'}'>{_e(state)}</p>",
        "<table>",
        *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows),
        "</table>",
        "<h2>p-values over time</h2>",
        _p_value_chart(data.history, view["threshold"]),
        "<h2>Reference vs current window</h2>",
        _feature_table(data, view),
        *_skew_table(view["checks"].get("skew")),
        *_histograms(data),
        data.quality_html,
        "</body></html>",
    ]
    return "\n".join(parts)


def _feature_table(data: ReportInput, view: Mapping[str, Any]) -> str:
    if not view["pValues"]:
        return "<p>No per-feature p-values yet.</p>"
    cells = "".join(
        f"<tr><td>{_e(name)}</td><td>{_num(p)}</td>"
        f"<td>{'drift' if p < view['threshold'] else ''}</td></tr>"
        for name, p in view["pValues"].items()
    )
    return f"<table><tr><th>Feature</th><th>p-value</th><th></th></tr>{cells}</table>"


def _skew_table(skew: Mapping[str, Any] | None) -> list[str]:
    if skew is None:
        return []
    state = "SKEW" if skew["isSkew"] else "no skew"
    summary = (
        f"{state}: {skew['pairs']} served rows paired with the offline store, "
        f"{skew['unmatchedServed']} without an offline row; "
        f"alarm above {_num(skew['maxMismatchFraction'])} mismatching"
    )
    parts = ["<h2>Training-serving skew</h2>", f"<p>{_e(summary)}</p>"]
    if skew["message"]:
        parts.append(f"<p>{_e(skew['message'])}</p>")
    fractions = skew["mismatchFraction"] or {}
    if fractions:
        skewed = set(skew["skewedFeatures"])
        cells = "".join(
            f"<tr><td>{_e(name)}</td><td>{float(f):.1%}</td>"
            f"<td>{'skew' if name in skewed else ''}</td></tr>"
            for name, f in fractions.items()
        )
        parts.append(
            f"<table><tr><th>Feature</th><th>mismatching</th><th></th></tr>{cells}</table>"
        )
    return parts


def _histograms(data: ReportInput) -> list[str]:
    if data.reference is None:
        return ["<p>Reference not available.</p>"]
    figures = []
    for name in data.features:
        reference = _column(data.reference, name)
        window = _column(data.window, name) if data.window is not None else np.zeros(0)
        if reference.size == 0:
            continue
        caption = f"{name}: reference ({reference.size}) vs window ({window.size})"
        figures.append(
            f"<figure>{_histogram_svg(reference, window)}"
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return figures or ["<p>No numeric features to draw.</p>"]


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.zeros(0)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def _histogram_svg(
    reference: np.ndarray, window: np.ndarray, width: int = 320, height: int = 160, bins: int = 24
) -> str:
    both = np.concatenate([reference, window])
    low, high = float(both.min()), float(both.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    series = [(reference, _PALETTE[0], "reference"), (window, _PALETTE[1], "window")]
    densities = [np.histogram(v, edges)[0] / max(v.size, 1) for v, _, _ in series]
    top = max(float(d.max()) for d in densities) or 1.0
    bar = (width - 20) / bins
    shapes = []
    for (_, color, label), density in zip(series, densities, strict=True):
        for i, value in enumerate(density):
            h = (height - 30) * value / top
            shapes.append(
                f"<rect x='{10 + i * bar:.1f}' y='{height - 20 - h:.1f}' width='{bar:.1f}'"
                f" height='{h:.1f}' fill='{color}' fill-opacity='0.45'/>"
            )
        shapes.append(f"<title>{label}</title>")
    legend = (
        f"<text x='10' y='12' font-size='10' fill='{_PALETTE[0]}'>reference</text>"
        f"<text x='80' y='12' font-size='10' fill='{_PALETTE[1]}'>window</text>"
        f"<text x='10' y='{height - 5}' font-size='9'>{low:.3g}</text>"
        f"<text x='{width - 50}' y='{height - 5}' font-size='9'>{high:.3g}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'"
        f" viewBox='0 0 {width} {height}'>{''.join(shapes)}{legend}</svg>"
    )


def _p_value_chart(
    history: Sequence[Mapping[str, Any]], threshold: float, width: int = 640, height: int = 220
) -> str:
    """p-values per feature (log scale) over check time, with the threshold as a dashed line."""
    points = [(float(h["checkedAt"]), h.get("pValues") or {}) for h in history]
    points = [(t, p) for t, p in points if p]
    if not points:
        return "<p>No evaluations yet.</p>"
    names = sorted({name for _, p in points for name in p})
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0
    all_p = [max(v, _P_FLOOR) for _, p in points for v in p.values()] + [threshold]
    floor = math.log10(max(min(all_p), _P_FLOOR))
    floor = min(floor, -1.0)

    def x(t: float) -> float:
        return 50 + (width - 70) * (t - t0) / span

    def y(p: float) -> float:
        return 10 + (height - 40) * (math.log10(max(p, _P_FLOOR)) / floor)

    lines = []
    for index, name in enumerate(names):
        color = _PALETTE[index % len(_PALETTE)]
        coords = " ".join(f"{x(t):.1f},{y(p[name]):.1f}" for t, p in points if name in p)
        lines.append(
            f"<polyline points='{coords}' fill='none' stroke='{color}' stroke-width='1.5'/>"
            + "".join(
                f"<circle cx='{x(t):.1f}' cy='{y(p[name]):.1f}' r='2' fill='{color}'/>"
                for t, p in points
                if name in p
            )
            + f"<text x='{width - 15}' y='{14 + 12 * index}' font-size='10' fill='{color}'"
            f" text-anchor='end'>{_e(name)}</text>"
        )
    threshold_y = y(threshold)
    axes = (
        f"<line x1='50' y1='10' x2='50' y2='{height - 30}' stroke='#888'/>"
        f"<line x1='50' y1='{height - 30}' x2='{width - 20}' y2='{height - 30}' stroke='#888'/>"
        f"<line x1='50' y1='{threshold_y:.1f}' x2='{width - 20}' y2='{threshold_y:.1f}'"
        f" stroke='#d62728' stroke-dasharray='6 4'/>"
        f"<text x='52' y='{threshold_y - 3:.1f}' font-size='10' fill='#d62728'>"
        f"threshold {threshold:.3g}</text>"
        f"<text x='45' y='14' font-size='9' text-anchor='end'>1</text>"
        f"<text x='45' y='{height - 30}' font-size='9' text-anchor='end'>1e{floor:.0f}</text>"
        f"<text x='50' y='{height - 12}' font-size='9'>{_e(_time(t0))}</text>"
        f"<text x='{width - 20}' y='{height - 12}' font-size='9' text-anchor='end'>"
        f"{_e(_time(t1))}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'"
        f" viewBox='0 0 {width} {height}'>{axes}{''.join(lines)}</svg>"
    )


def _check_line(check: Mapping[str, Any]) -> str:
    baseline = check.get("baseline")
    against = f" (baseline: {baseline})" if baseline else ""
    if check.get("pValue") is None:
        return (check.get("message") or "") + against
    verdict = f"{'DRIFT' if check['isDrift'] else 'no drift'}, p = {_num(check['pValue'])}"
    return verdict + against


def _alarm_line(alarm: Mapping[str, Any]) -> str:
    rule = alarm.get("rule", RULE_WINDOW)
    if rule == RULE_WINDOW:
        return "each window decides (no alarm rule configured)"
    parts = [f"{rule}: {alarm.get('consecutive', 0)} failing window(s) in a row"]
    if alarm.get("threshold") is not None:
        parts.append(
            f"CUSUM {_num(alarm.get('statistic'))} of threshold {_num(alarm['threshold'])}"
            f" (expected run time {_num(alarm.get('expectedRunTimeSeconds'))} s)"
        )
    if alarm.get("notCounted"):
        parts.append(f"last check not counted: {alarm['notCounted']}")
    return "; ".join(parts)


def _null_line(check: Mapping[str, Any]) -> str:
    rates = check.get("windowRates") or {}
    if not rates:
        return check.get("message") or ""
    shown = ", ".join(f"{k}: {v:.1%}" for k, v in rates.items())
    return f"{'ALARM' if check['isDrift'] else 'ok'} ({shown})"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4g}"


def _time(ts: Any) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
