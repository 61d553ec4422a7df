"""The quality section of the monitor's report: figures per version and their history."""

from __future__ import annotations

from contracts.quality import Interval, QualityReport, VersionQuality
from services.monitor.outcomes.report import quality_page, quality_section


def report() -> QualityReport:
    figures = {"value": 0.81, "low": 0.75, "high": 0.87}
    return QualityReport(
        namespace="team-a",
        model="churn",
        now=1_700_000_100.0,
        versions=[
            VersionQuality(
                version="1", role="stable", labeled=120, positives=40,
                auc=Interval(**figures), accuracy=Interval(value=0.7),
                window_start=1_700_000_000.0, window_end=1_700_000_090.0,
                label_delay_p50_s=12.0, label_delay_p90_s=40.0,
            ),
            VersionQuality(version="2<script>", role="shadow", labeled=0, positives=0),
        ],
        orphans=3,
        pending_labels=2,
    )  # fmt: skip


def test_the_section_shows_each_version_its_intervals_and_the_history() -> None:
    history = {
        "1": [
            {"takenAt": 1_700_000_000.0 + 30 * i, "auc": {"value": 0.7 + i / 100}} for i in range(4)
        ],  # fmt: skip
        "old": [{"takenAt": 1_699_990_000.0, "auc": {"value": 0.9}}],
    }
    html = quality_section(report(), history)
    assert "0.81 [0.75, 0.87]" in html and "12 s / 40 s" in html
    assert "3 orphan label(s)" in html and "2 label(s) waiting" in html
    assert "<script>" not in html and "2&lt;script&gt;" in html  # names are escaped
    assert html.count("<polyline") == 2  # AUC: versions 1 and old; no accuracy history
    assert "No accuracy history yet." in html


def test_the_drift_report_ends_with_the_quality_section() -> None:
    from services.monitor.drift.report import ReportInput, render_report, version_view

    view = version_view("team-a", "churn", "1", {}, {}, "ks", 0.05)
    section = quality_section(report(), {})
    page = render_report(ReportInput("team-a", "churn", "1", view, 1.7e9, quality_html=section))
    assert section in page and page.index(section) < page.index("</body>")
    assert quality_page(report(), {}).startswith("<!DOCTYPE html>")
