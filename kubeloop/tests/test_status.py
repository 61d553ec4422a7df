"""`kubeloop status`: quality per MLModel version and the monitor's feedback endpoint."""

from __future__ import annotations

from kubeloop.status import render_endpoints, render_summary, summarize

MLMODEL = {
    "metadata": {"namespace": "default", "name": "churn"},
    "status": {
        "phase": "Canary",
        "stableVersion": "1",
        "candidateVersion": "2",
        "traffic": {"stable": 90, "candidate": 10},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving"}],
        "quality": [
            {"version": "2", "role": "candidate", "labeled": 0, "auc": None},
            {
                "version": "1",
                "role": "stable",
                "labeled": 5000,
                "auc": {"value": 0.6123, "low": 0.5951, "high": 0.6295},
                "accuracy": {"value": 0.6, "low": None, "high": None},
                "logLoss": {"value": 0.66, "low": 0.65, "high": 0.67},
            },
        ],
    },
}


def test_quality_per_version_stable_first() -> None:
    row = summarize("MLModel", MLMODEL)
    assert [(q.version, q.role, q.labeled) for q in row.quality] == [
        ("1", "stable", "5000"),
        ("2", "candidate", "0"),
    ]
    assert row.quality[0].auc == "0.612 [0.595, 0.629]"
    assert row.quality[0].accuracy == "0.600" and row.quality[1].auc == "-"
    text = render_summary([row])
    lines = text.splitlines()
    assert lines[-3].split() == ["MLMODEL", "VERSION", "ROLE", "LABELED", "AUC", "ACCURACY",
                                 "LOGLOSS"]  # fmt: skip
    assert lines[-2].startswith("default/churn") and "0.660 [0.650, 0.670]" in lines[-2]


def test_no_quality_section_without_labels() -> None:
    plain = {"metadata": MLMODEL["metadata"], "status": {"phase": "Promoted"}}
    text = render_summary([summarize("MLModel", plain)])
    assert "LABELED" not in text and len(text.splitlines()) == 2


def test_endpoints_name_the_feedback_path() -> None:
    record = {"components": {"monitor": {"url": "http://127.0.0.1:4242/"}}}
    assert render_endpoints(record) == (
        "monitor: http://127.0.0.1:4242  "
        "(labels: POST http://127.0.0.1:4242/v1/models/<namespace>/<name>/feedback)"
    )
    assert render_endpoints({"components": {"monitor": {"url": None}}}) == ""
