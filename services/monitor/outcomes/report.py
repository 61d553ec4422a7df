"""Model quality per version over time, as HTML (pure; inline SVG, no scripts).

The section is part of the monitor's drift report (``drift/report.py`` renders it at the
end of the page) and is served alone at ``GET /v1/models/{ns}/{name}/quality/report``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from contracts.quality import Interval, QualityReport, VersionQuality

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
#: Charted over time (wire names of VersionQuality fields).
_CHARTED = (("auc", "AUC"), ("accuracy", "accuracy"), ("logLoss", "log loss"))


def quality_page(report: QualityReport, history: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    title = f"Model quality: {report.namespace}/{report.model}"
    return "\n".join(
        [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{_e(title)}</title>",
            "<style>body{font-family:sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:left}figure{display:inline-block;margin:0 1em 1em 0}</style>",
            "</head><body>",
            f"<h1>{_e(title)}</h1>",
            quality_section(report, history),
            "</body></html>",
        ]
    )


def quality_section(
    report: QualityReport, history: Mapping[str, Sequence[Mapping[str, Any]]]
) -> str:
    """Current figures per version (with 95% intervals) and their history as line charts."""
    header = (
        "<tr><th>version</th><th>role</th><th>labeled</th><th>positives</th><th>AUC</th>"
        "<th>accuracy</th><th>log loss</th><th>Brier</th><th>ECE</th>"
        "<th>label delay p50 / p90</th><th>served</th></tr>"
    )
    rows = "".join(_row(v) for v in report.versions)
    summary = (
        f"{report.orphans} orphan label(s) (no prediction within the maturity), "
        f"{report.pending_labels} label(s) waiting for their prediction."
    )
    charts = [
        _chart(label, [(v, [(h["takenAt"], _value(h, field)) for h in points])
                       for v, points in sorted(history.items())])
        for field, label in _CHARTED
    ]  # fmt: skip
    return "\n".join(
        [
            "<h2>Model quality on delayed labels</h2>",
            f"<p>{_e(summary)} Generated {_e(_time(report.now))}.</p>",
            f"<table>{header}{rows}</table>" if rows else "<p>No labeled requests yet.</p>",
            "<h3>Quality over time</h3>",
            *charts,
        ]
    )


def _row(v: VersionQuality) -> str:
    cells = [
        v.version,
        v.role,
        str(v.labeled),
        str(v.positives),
        _interval(v.auc),
        _interval(v.accuracy),
        _interval(v.log_loss),
        _interval(v.brier),
        _interval(v.ece),
        f"{_num(v.label_delay_p50_s)} s / {_num(v.label_delay_p90_s)} s",
        f"{_time(v.window_start)} – {_time(v.window_end)}",
    ]
    return "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _interval(value: Interval) -> str:
    if value.value is None:
        return "n/a"
    if value.low is None or value.high is None:
        return f"{value.value:.4g}"
    return f"{value.value:.4g} [{value.low:.4g}, {value.high:.4g}]"


def _value(entry: Mapping[str, Any], field: str) -> float | None:
    figure = entry.get(field)
    if isinstance(figure, Mapping):
        value = figure.get("value")
        return float(value) if value is not None else None
    return None


def _chart(
    label: str,
    series: list[tuple[str, list[tuple[float, float | None]]]],
    width: int = 640,
    height: int = 200,
) -> str:
    points = [(v, [(t, y) for t, y in pts if y is not None]) for v, pts in series]
    points = [(v, pts) for v, pts in points if pts]
    if not points:
        return f"<p>No {_e(label)} history yet.</p>"
    times = [t for _, pts in points for t, _ in pts]
    values = [y for _, pts in points for _, y in pts]
    t0, t1 = min(times), max(times)
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05
    span = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return 50 + (width - 120) * (t - t0) / span

    def y(v: float) -> float:
        return 10 + (height - 40) * (high - v) / (high - low)

    lines = []
    for index, (version, pts) in enumerate(points):
        color = _PALETTE[index % len(_PALETTE)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        lines.append(
            f"<polyline points='{coords}' fill='none' stroke='{color}' stroke-width='1.5'/>"
            + "".join(
                f"<circle cx='{x(t):.1f}' cy='{y(v):.1f}' r='2' fill='{color}'/>" for t, v in pts
            )  # fmt: skip
            + f"<text x='{width - 60}' y='{14 + 12 * index}' font-size='10' fill='{color}'>"
            f"v{_e(version)}</text>"
        )
    axes = (
        f"<line x1='50' y1='10' x2='50' y2='{height - 30}' stroke='#888'/>"
        f"<line x1='50' y1='{height - 30}' x2='{width - 70}' y2='{height - 30}' stroke='#888'/>"
        f"<text x='45' y='14' font-size='9' text-anchor='end'>{high:.3g}</text>"
        f"<text x='45' y='{height - 30}' font-size='9' text-anchor='end'>{low:.3g}</text>"
        f"<text x='50' y='{height - 12}' font-size='9'>{_e(_time(t0))}</text>"
        f"<text x='{width - 70}' y='{height - 12}' font-size='9' text-anchor='end'>"
        f"{_e(_time(t1))}</text>"
    )
    return (
        f"<figure><svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'"
        f" viewBox='0 0 {width} {height}'>{axes}{''.join(lines)}</svg>"
        f"<figcaption>{_e(label)} per version over time</figcaption></figure>"
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _time(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
