"""The demo's final report: a PNG timeline and an HTML page, from the recorded samples only."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report is written on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from kubeloop.demo.progress import Sample, VersionQuality  # noqa: E402

TIMELINE_PNG = "timeline.png"
INDEX_HTML = "index.html"
SAMPLES_JSON = "samples.json"
SUMMARY_JSON = "summary.json"


class StageRecord(BaseModel):
    name: str
    started_t: float
    finished_t: float | None = None
    outcome: str = "running"  # running | ok | failed
    message: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.finished_t is None else round(self.finished_t - self.started_t, 1)


class DemoRecord(BaseModel):
    started_at: str
    outcome: str
    message: str | None = None
    stages: list[StageRecord]
    samples: list[Sample]
    accuracy: list[tuple[float, float, int]] = []
    shift_t: float | None = None
    alarm_t: float | None = None
    promoted_t: float | None = None
    drift_report: str | None = None
    lineage: dict[str, Any] = {}
    summary: dict[str, Any] = {}


def traffic_per_version(samples: Sequence[Sample]) -> dict[str, list[tuple[float, float]]]:
    """Version → [(t, percent)] from the stable/candidate split in each sample."""
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        shares: dict[str, float] = {}
        if sample.stable_version and sample.stable_percent is not None:
            shares[sample.stable_version] = float(sample.stable_percent)
        if sample.candidate_version and sample.candidate_percent is not None:
            shares[sample.candidate_version] = shares.get(sample.candidate_version, 0.0) + float(
                sample.candidate_percent
            )
        for version, percent in shares.items():
            series.setdefault(version, []).append((sample.t, percent))
    return series


def p_value_series(samples: Sequence[Sample]) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        for feature, value in sample.p_values.items():
            series.setdefault(feature, []).append((sample.t, value))
    return series


def quality_series(samples: Sequence[Sample]) -> dict[str, list[tuple[float, VersionQuality]]]:
    """Version → [(t, quality)] from MLModel status.quality in each sample (labeled ones)."""
    series: dict[str, list[tuple[float, VersionQuality]]] = {}
    for sample in samples:
        for version, quality in sample.quality.items():
            if quality.labeled:
                series.setdefault(version, []).append((sample.t, quality))
    return series


def quality_moments(record: DemoRecord) -> list[tuple[str, float, dict[str, VersionQuality]]]:
    """The versions' quality at the moments that tell the story: before the shift, at the
    alarm, just before v2 entered the rollout, just before its promotion (both versions in
    play) and at the end. Each is the last sample with quality at or before the moment; the
    monitor's window slides, so just after the shift it mixes rows from before and after."""
    candidate_t = _first_candidate_t(record.samples, after=record.alarm_t)
    # The last look at both versions side by side: the last sample with a candidate.
    rollout_end = max(
        (s.t for s in record.samples if s.candidate_version and s.quality and candidate_t is not None
         and s.t >= candidate_t),
        default=None,
    )  # fmt: skip
    moments: list[tuple[str, float | None]] = [
        ("before the shift", record.shift_t),
        ("at the drift alarm", record.alarm_t),
        ("before v2's rollout", None if candidate_t is None else candidate_t - 1e-6),
        ("v2's last canary step", rollout_end),
        ("at the end", max((s.t for s in record.samples), default=None)),
    ]
    rows: list[tuple[str, float, dict[str, VersionQuality]]] = []
    for name, t in moments:
        if t is None:
            continue
        seen = [s for s in record.samples if s.t <= t and s.quality]
        if seen and (not rows or rows[-1][2] != seen[-1].quality):
            rows.append((name, seen[-1].t, seen[-1].quality))
    return rows


def _first_candidate_t(samples: Sequence[Sample], after: float | None) -> float | None:
    """When the retrained version first showed up as the candidate (after the alarm: v1 is a
    candidate too, briefly, when it is first served)."""
    return next(
        (s.t for s in samples if s.candidate_version and (after is None or s.t >= after)), None
    )


def _quality_cell(quality: VersionQuality | None) -> str:
    if quality is None or not quality.labeled:
        return "—"
    auc = "—" if quality.auc is None else f"{quality.auc:.3f}"
    if quality.auc_low is not None and quality.auc_high is not None:
        auc += f" [{quality.auc_low:.3f}, {quality.auc_high:.3f}]"
    accuracy = "—" if quality.accuracy is None else f"{quality.accuracy:.3f}"
    return f"AUC {auc}, accuracy {accuracy}, {quality.labeled} labeled"


def _mark_events(axes: object, record: DemoRecord) -> None:
    for t, label, colour in (
        (record.shift_t, "shift", "tab:red"),
        (record.alarm_t, "alarm", "tab:orange"),
        (record.promoted_t, "v2 at 100%", "tab:green"),
    ):
        if t is not None:
            axes.axvline(t, color=colour, linestyle="--", linewidth=1, label=label)  # type: ignore[attr-defined]


def write_timeline(record: DemoRecord, path: Path) -> None:
    figure, (traffic_ax, drift_ax, accuracy_ax, quality_ax) = plt.subplots(
        4, 1, figsize=(10, 12), sharex=True
    )
    for version, points in sorted(traffic_per_version(record.samples).items()):
        traffic_ax.step(*zip(*points, strict=True), where="post", label=f"v{version}")
    traffic_ax.set_ylabel("traffic %")
    traffic_ax.set_ylim(-5, 125)
    for feature, points in sorted(p_value_series(record.samples).items()):
        drift_ax.plot(*zip(*points, strict=True), label=feature)
    drift_ax.set_yscale("symlog", linthresh=1e-3)
    drift_ax.set_ylabel("drift p-value")
    if record.accuracy:
        starts, values, _ = zip(*record.accuracy, strict=True)
        accuracy_ax.plot(starts, values, marker="o", label="accuracy (delayed labels)")
    accuracy_ax.set_ylabel("accuracy")
    for version, history in sorted(quality_series(record.samples).items()):
        known = [(t, q.auc) for t, q in history if q.auc is not None]
        if not known:
            continue
        line = quality_ax.plot(*zip(*known, strict=True), label=f"v{version} AUC")[0]
        bounds = [
            (t, q.auc_low, q.auc_high)
            for t, q in history
            if q.auc_low is not None and q.auc_high is not None
        ]
        if bounds:
            times, lows, highs = zip(*bounds, strict=True)
            quality_ax.fill_between(times, lows, highs, color=line.get_color(), alpha=0.2)
    quality_ax.set_ylabel("AUC (monitor, 95%)")
    quality_ax.set_xlabel("seconds since the demo started")
    end = max([s.t for s in record.samples] + [s.finished_t or 0 for s in record.stages] + [1.0])
    for index, stage in enumerate(record.stages):
        # Alternate shading shows where each stage began and ended.
        if index % 2 == 0:
            for axes in (traffic_ax, drift_ax, accuracy_ax, quality_ax):
                axes.axvspan(stage.started_t, stage.finished_t or end, color="0.93", zorder=0)
        traffic_ax.text(stage.started_t, 102, stage.name, fontsize=7, rotation=30, va="bottom")
    accuracy_ax.set_xlim(0, end)
    for axes in (traffic_ax, drift_ax, accuracy_ax, quality_ax):
        _mark_events(axes, record)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def render_html(record: DemoRecord) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{s.outcome}</td>"
        f"<td>{'' if s.seconds is None else s.seconds}</td>"
        f"<td>{html.escape(s.message or '')}</td></tr>"
        for s in record.stages
    )
    figures = []
    if record.shift_t is not None and record.alarm_t is not None:
        figures.append(f"shift onset → drift alarm: {record.alarm_t - record.shift_t:.1f} s")
    if record.alarm_t is not None and record.promoted_t is not None:
        figures.append(
            f"drift alarm → new version at 100%: {record.promoted_t - record.alarm_t:.1f} s"
        )
    items = "".join(f"<li>{html.escape(f)}</li>" for f in figures)
    if record.drift_report:
        link = html.escape(record.drift_report)
        items += f'<li>drift report that triggered the retrain: <a href="{link}">{link}</a></li>'
    moments = quality_moments(record)
    versions = sorted({v for _, _, quality in moments for v in quality})
    quality_rows = "\n".join(
        f"<tr><td>{html.escape(name)} ({t:.0f} s)</td>"
        + "".join(f"<td>{html.escape(_quality_cell(quality.get(v)))}</td>" for v in versions)
        + "</tr>"
        for name, t, quality in moments
    )
    quality_head = "".join(f"<th>v{html.escape(v)}</th>" for v in versions)
    recovery = render_recovery(record.summary)
    lineage = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(json.dumps(value))}</td></tr>"
        for key, value in sorted(record.lineage.items())
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kubeloop demo report</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>kubeloop demo — {html.escape(record.outcome)}</h1>
<p>Started {html.escape(record.started_at)}. {html.escape(record.message or "")}</p>
<ul>{items}</ul>
<h2>Stages</h2>
<table><tr><th>stage</th><th>outcome</th><th>seconds</th><th>message</th></tr>
{rows}
</table>
<h2>Quality per version, from the labels</h2>
<p>MLModel <code>status.quality</code>: the monitor's figures on the labels the traffic sent
to its feedback API, joined to each version's predictions (sliding window of labeled rows;
95% intervals).</p>
<table><tr><th>moment</th>{quality_head}</tr>
{quality_rows or "<tr><td>no labeled rows yet</td></tr>"}
</table>
<h2>Did the retrain recover? (online AUC from the labels)</h2>
{recovery}
<h2>Lineage of the version now serving</h2>
<table>{lineage or "<tr><td>not reached</td></tr>"}</table>
<h2>Timeline</h2>
<p>Traffic per version, drift p-values, accuracy on delayed labels (the traffic's own count)
and each version's AUC as the monitor computes it from the labels, over time.</p>
<img src="{TIMELINE_PNG}" alt="timeline">
<p>Raw samples: <a href="{SAMPLES_JSON}">{SAMPLES_JSON}</a></p>
</body></html>
"""


def _auc_text(value: object) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.3f}"


def render_recovery(summary: dict[str, Any]) -> str:
    """The summary's figures (summary.json) as a table, with the reasons for missing ones."""
    if not summary:
        return "<p>not reached</p>"
    auc = summary.get("auc") or {}
    labeled = summary.get("labeled") or {}
    rows = "".join(
        f"<tr><td>{html.escape(title)}</td><td>{_auc_text(auc.get(key))}</td>"
        f"<td>{labeled.get(key, 0)}</td></tr>"
        for key, title in (
            ("v1_pre_shift", "v1 before the shift"),
            ("v1_post_shift", "v1 after the shift (while v2 served)"),
            ("v2_post_shift", "v2 after the shift (same period)"),
        )
    )
    p = summary.get("paired_p")
    lines = [f"paired test v2 vs v1 (same requests): p = {'—' if p is None else f'{p:.3g}'}"]
    if summary.get("recovered_fraction") is not None:
        lines.append(f"v2 recovered {summary['recovered_fraction']:.0%} of v1's drop")
    skew = summary.get("skew")
    if skew:
        lines.append(
            f"training-serving skew (served from Feast vs the offline store): {skew['checks']} "
            f"checks, {skew['flagged']} flagged, worst {skew['max_mismatch_fraction']:.2%} of "
            f"rows disagreeing, last {skew['last']['pairs']} pairs"
        )
    lines += [f"{key}: {why}" for key, why in (summary.get("reasons") or {}).items()]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return (
        "<table><tr><th>version and period</th><th>AUC</th><th>labeled rows</th></tr>"
        f"{rows}</table><ul>{items}</ul>"
        f'<p>Machine-readable: <a href="{SUMMARY_JSON}">{SUMMARY_JSON}</a></p>'
    )


def write_report(record: DemoRecord, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    write_timeline(record, report_dir / TIMELINE_PNG)
    (report_dir / SAMPLES_JSON).write_text(json.dumps(record.model_dump(mode="json"), indent=1))
    (report_dir / SUMMARY_JSON).write_text(json.dumps(record.summary, indent=1) + "\n")
    index = report_dir / INDEX_HTML
    index.write_text(render_html(record))
    return index
