"""summary.json: the monitor's period figures and the paired test, or the reason for a gap."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubeloop.demo.report import DemoRecord, render_recovery, write_report
from kubeloop.demo.summary import build_summary, paired_p_value


def _report(**aucs: tuple[float | None, int]) -> dict[str, Any]:
    """A QualityReport in wire form with each version's AUC and labeled rows."""
    return {
        "namespace": "default",
        "model": "churn",
        "now": 0.0,
        "versions": [
            {"version": v, "role": "stable", "labeled": n, "auc": {"value": auc}}
            for v, (auc, n) in aucs.items()
        ],
    }


def test_recovery_figures_from_the_monitor() -> None:
    # v2 0.06 better than v1 on the same 4,000 pairs, standard error 0.01: z = 6.
    comparison = {"n": 4000, "estimate": 0.06, "variance": 1e-4, "method": "delong-paired",
                  "since": 1000.0}  # fmt: skip
    summary = build_summary(
        v1="1",
        v2="2",
        at_shift=_report(**{"1": (0.86, 9000)}),
        post_shift=_report(**{"1": (0.60, 5000), "2": (0.84, 4500)}),
        comparison=comparison,
        since=1000.0,
    )
    assert summary["auc"] == {"v1_pre_shift": 0.86, "v1_post_shift": 0.6, "v2_post_shift": 0.84}
    assert summary["labeled"] == {
        "v1_pre_shift": 9000,
        "v1_post_shift": 5000,
        "v2_post_shift": 4500,
    }
    assert summary["drop"] == pytest.approx(0.26)
    assert summary["recovered_fraction"] == pytest.approx(0.24 / 0.26, abs=1e-3)
    assert summary["paired_p"] == pytest.approx(math.erfc(6 / math.sqrt(2)))
    assert summary["paired_p"] < 1e-8
    assert summary["reasons"] == {}
    json.dumps(summary)  # what summary.json holds


def test_v2_that_never_served_gets_nulls_with_the_reason() -> None:
    summary = build_summary(
        v1="1",
        v2="2",
        at_shift=_report(**{"1": (0.86, 9000)}),
        post_shift=None,
        comparison=None,
        since=None,
    )
    assert summary["auc"]["v1_pre_shift"] == 0.86
    assert summary["auc"]["v2_post_shift"] is None and summary["paired_p"] is None
    assert "never served" in summary["reasons"]["paired_p"]
    assert "never served" in summary["reasons"]["v2_post_shift"]
    assert summary["recovered_fraction"] is None


def test_no_retrain_and_no_shift_are_named() -> None:
    summary = build_summary(
        v1="1", v2=None, at_shift=None, post_shift=None, comparison=None, since=None
    )
    assert set(summary["auc"].values()) == {None}
    assert "shift" in summary["reasons"]["v1_pre_shift"]
    assert summary["reasons"]["paired_p"] == "no retrained version was registered"


def test_a_comparison_without_an_estimate_says_how_many_pairs() -> None:
    summary = build_summary(
        v1="1",
        v2="2",
        at_shift=_report(**{"1": (0.8, 100)}),
        post_shift=_report(**{"1": (0.7, 100), "2": (None, 3)}),
        comparison={"n": 3, "estimate": None, "variance": None},
        since=5.0,
    )
    assert summary["paired_p"] is None
    assert summary["reasons"]["paired_p"].endswith("(3 pairs)")
    assert "3 labeled rows of v2" in summary["reasons"]["v2_post_shift"]


@pytest.mark.parametrize(
    ("estimate", "variance", "expected"),
    [(0.0, 1e-4, 1.0), (-0.0196, 1e-4, 0.05), (0.02, 0.0, 0.0), (None, 1e-4, None)],
)
def test_paired_p_value(estimate: float | None, variance: float, expected: float | None) -> None:
    p = paired_p_value({"estimate": estimate, "variance": variance})
    assert p == (None if expected is None else pytest.approx(expected, abs=2e-4))


def test_the_report_writes_summary_json_and_shows_it(tmp_path: Path) -> None:
    summary = build_summary(
        v1="1",
        v2="2",
        at_shift=_report(**{"1": (0.86, 9000)}),
        post_shift=_report(**{"1": (0.60, 5000), "2": (0.84, 4500)}),
        comparison={"n": 4000, "estimate": 0.06, "variance": 1e-4},
        since=1.0,
    )
    record = DemoRecord(started_at="now", outcome="succeeded", stages=[], samples=[],
                        summary=summary)  # fmt: skip
    page = write_report(record, tmp_path).read_text()
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["auc"] == summary["auc"] and stored["paired_p"] == summary["paired_p"]
    assert "0.840" in page and "recovered 92%" in page


def test_skew_summary_keeps_the_worst_check_and_the_last() -> None:
    from kubeloop.demo.summary import skew_summary

    assert skew_summary({}) is None
    checks = {
        "2026-12-06T06:00:10Z": {
            "checkedAt": "2026-12-06T06:00:10Z",
            "pairs": 1000,
            "mismatchFraction": {"a": 0.0, "b": 0.002},
            "isSkew": False,
        },
        "2026-12-06T06:00:05Z": {
            "checkedAt": "2026-12-06T06:00:05Z",
            "pairs": 900,
            "mismatchFraction": {"a": 0.03, "b": 0.0},
            "isSkew": True,
        },
    }
    summary = skew_summary(checks)
    assert summary is not None
    assert (summary["checks"], summary["flagged"], summary["max_mismatch_fraction"]) == (2, 1, 0.03)
    assert summary["mean_mismatch_fraction"] == 0.016
    assert summary["last"]["checked_at"] == "2026-12-06T06:00:10Z"
    assert summary["last"]["pairs"] == 1000 and summary["last"]["is_skew"] is False
    # A later check without pairs (every served row newer than the offline store) has no
    # verdict: the last one with pairs stays "last".
    pending = {"checkedAt": "2026-12-06T06:00:15Z", "pairs": 0, "mismatchFraction": {}}
    later = skew_summary({**checks, "2026-12-06T06:00:15Z": pending})
    assert later is not None and later["checks"] == 3
    assert later["last"]["checked_at"] == "2026-12-06T06:00:10Z"

    page = render_recovery({"auc": {}, "skew": summary})
    assert "3 checks" not in page and "2 checks, 1 flagged, worst 3.00%" in page
