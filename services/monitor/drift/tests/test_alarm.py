"""The drift alarm rule: calibration, evidence windows, the two rules, and its error rates.

Acceptance (issue 12, item 5), short in the suite (``bench/drift_alarm.py`` has the full
figures): over 10,000 checks of unshifted data (10 features, windows of 500 against a
reference of 5,000, the ``ks`` detector's Bonferroni window p-value) the alarm rate is within
the declared budget; a 0.5 sigma shift in one of the 10 features alarms within 2 windows.

Tolerance: alarms are counted as onsets, restarting after each (as after a retrain); with a
true average run length of at least ``N`` windows their count over ``T`` windows is at most
about Poisson(T / N), so the test allows up to its 99.9% quantile. The data are seeded: the
outcome is fixed, the bound says how surprising a failure would be for a calibrated rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from contracts.monitor_config import AlarmConfig, DriftConfig
from services.monitor.config import ModelConfig
from services.monitor.drift import create_detector
from services.monitor.drift.alarm import (
    EVIDENCE_CAP,
    EVIDENCE_FLOOR,
    AlarmRule,
    WindowEvidence,
    cusum_threshold,
    evidence,
    next_state,
    null_run_length,
    window_p_value,
)
from services.monitor.drift.evaluator import DetectorEvaluator, DriftSetup
from services.monitor.drift.tests import alarm_sim as sim
from services.monitor.hooks import WindowSnapshot

SURPRISE = 1e-3
CHECKS = 10_000
REFERENCES = 10  # a fresh reference every 1,000 checks: the rate averages over references
DECLARED_RUN_CHECKS = 200  # expectedRunTime = 200 drift intervals
P_VALUE = 0.05


def test_threshold_gives_the_simulated_run_length() -> None:
    rng = np.random.default_rng(7)
    for target in (20.0, 100.0):
        h = cusum_threshold(target)
        runs = 3000
        statistic = np.zeros(runs)
        alive = np.ones(runs, dtype=bool)
        lengths = np.zeros(runs)
        step = 0
        while alive.any():
            step += 1
            z = np.clip(stats.norm.isf(rng.random(runs)), EVIDENCE_FLOOR, EVIDENCE_CAP)
            statistic = np.where(alive, np.maximum(0.0, statistic + z - 0.5), statistic)
            hit = alive & (statistic >= h)
            lengths[hit] = step
            alive &= ~hit
        error = 4 * lengths.std() / np.sqrt(runs)
        assert abs(lengths.mean() - target) < error, (target, lengths.mean(), error)


def test_threshold_grows_with_the_budget() -> None:
    thresholds = [cusum_threshold(n) for n in (10.0, 100.0, 2880.0, 120_960.0)]
    assert thresholds == sorted(thresholds) and thresholds[0] > 0
    assert null_run_length(thresholds[2]) == pytest.approx(2880.0, rel=1e-3)


def test_evidence_is_the_normal_quantile_clipped() -> None:
    assert evidence(0.5) == pytest.approx(0.0)
    assert evidence(0.025) == pytest.approx(1.959964, rel=1e-5)
    assert evidence(1.0) == EVIDENCE_FLOOR and evidence(0.0) == EVIDENCE_CAP
    assert evidence(float("nan")) == EVIDENCE_FLOOR


def test_window_p_value_corrects_an_uncorrected_result() -> None:
    corrected = {"p_value": 0.3, "correction": "bonferroni", "feature_p_values": {"a": 0.03}}
    raw = {"p_value": 0.01, "correction": "none", "feature_p_values": {"a": 0.01, "b": 0.5}}
    assert window_p_value(corrected) == 0.3
    assert window_p_value(raw) == pytest.approx(0.02)
    assert window_p_value({"p_value": None}) is None


def _window(at: float, p: float, failed: bool, span: float = 10.0) -> WindowEvidence:
    return WindowEvidence(p, failed, at - span + 0.5, at)


def test_consecutive_rule_needs_k_failing_windows_and_clears_on_a_pass() -> None:
    rule = AlarmRule(consecutive=3, interval_s=10.0)
    state: dict[str, object] = {}
    verdicts = []
    for at, failed in [(10, True), (20, True), (30, False), (40, True), (50, True), (60, True),
                       (70, True), (80, False)]:  # fmt: skip
        state = next_state(rule, state, _window(at, 0.01 if failed else 0.5, failed), at)
        verdicts.append(state["isDrift"])
    assert verdicts == [False, False, False, False, False, True, True, False]
    assert state["transitions"] == 2 and state["rule"] == "consecutive"


def test_overlapping_or_early_windows_are_reported_but_not_counted() -> None:
    rule = AlarmRule(consecutive=2, interval_s=10.0)
    first = next_state(rule, {}, _window(10, 0.001, True), 10.0)
    # The next check 10 s later still holds rows of the first window: not evidence.
    overlapping = next_state(rule, first, WindowEvidence(0.001, True, 5.0, 20.0), 20.0)
    # Fresh rows, but an on-demand evaluation 2 s after the last counted one: not evidence.
    early = next_state(rule, first, WindowEvidence(0.001, True, 10.5, 12.0), 12.0)
    fresh = next_state(rule, overlapping, WindowEvidence(0.001, True, 10.5, 30.0), 30.0)
    assert first["counted"] and first["consecutive"] == 1 and not first["isDrift"]
    assert not overlapping["counted"] and "shares rows" in overlapping["notCounted"]
    assert overlapping["consecutive"] == 1 and not overlapping["changed"]
    assert not early["counted"] and "drift interval" in early["notCounted"]
    assert fresh["counted"] and fresh["isDrift"] and fresh["since"] == 30.0


def test_cusum_accumulates_raises_and_clears_when_back_to_zero() -> None:
    rule = AlarmRule(expected_run_time_s=2880 * 30.0, interval_s=30.0)
    h = rule.threshold
    assert h is not None and h == pytest.approx(cusum_threshold(2880.0))
    state: dict[str, Any] = {}
    at = 0.0
    # p = 0.001 per window (z = 3.09): no single window alarms, a few in a row do.
    raised_after = None
    for index in range(1, 10):
        at += 30.0
        state = next_state(rule, state, _window(at, 0.001, True, 30.0), at)
        if state["isDrift"] and raised_after is None:
            raised_after = index
    assert raised_after == int(np.ceil(h / (evidence(0.001) - 0.5)))
    assert state["statistic"] <= 2 * h
    while state["isDrift"]:
        at += 30.0
        state = next_state(rule, state, _window(at, 1.0, False, 30.0), at)
    assert state["statistic"] == 0.0 and state["transitions"] == 2


def test_both_rules_must_hold() -> None:
    rule = AlarmRule(consecutive=3, expected_run_time_s=100 * 30.0, interval_s=30.0)
    assert rule.threshold is not None
    state: dict[str, Any] = {}
    for at in (30.0, 60.0):  # overwhelming windows: the CUSUM is over h, but only two of them
        state = next_state(rule, state, _window(at, 1e-20, True, 30.0), at)
    assert state["statistic"] >= rule.threshold and not state["isDrift"]
    state = next_state(rule, state, _window(90.0, 1e-20, True, 30.0), 90.0)
    assert state["isDrift"]


def test_sequential_rule_needs_a_window_p_value() -> None:
    rule = AlarmRule(expected_run_time_s=3000.0, interval_s=30.0)
    state = next_state(rule, {}, WindowEvidence(None, True, 0.0, 10.0), 10.0)
    assert not state["counted"] and "p-value" in state["notCounted"]
    with pytest.raises(ValidationError, match="psi"):
        DriftConfig(detector="psi", alarm=AlarmConfig(expected_run_time_seconds=86400))
    DriftConfig(detector="psi", alarm=AlarmConfig(consecutive=3))  # consecutive works on psi


def test_budget_shorter_than_two_intervals_is_two_windows() -> None:
    assert AlarmRule(expected_run_time_s=1.0, interval_s=30.0).run_checks == 2.0
    assert AlarmRule.of(None, 30.0) is None


def _snapshot(features: np.ndarray, taken_at: float, first_ts: float) -> WindowSnapshot:
    rows = features.shape[0]
    times = np.linspace(first_ts, taken_at - 0.1, rows)
    return WindowSnapshot(
        namespace="ns", model="m", version="1", role="stable", taken_at=taken_at,
        config=ModelConfig(), feature_names=None, feature_ts=times, features=features,
        score_ts=times, scores=np.zeros(rows),
    )  # fmt: skip


def test_the_evaluator_reports_the_window_and_decides_by_the_alarm() -> None:
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((2000, 3))
    rule = AlarmRule(consecutive=2, interval_s=10.0)
    setup = DriftSetup("ks", reference, "ref", feature_names=("a", "b", "c"), alarm=rule)
    evaluator = DetectorEvaluator(lambda *_: setup)
    shifted = [rng.standard_normal((300, 3)) + [0.0, 1.0, 0.0] for _ in range(2)]
    first = evaluator.evaluate(_snapshot(shifted[0], 10.0, 0.5), {})
    second = evaluator.evaluate(_snapshot(shifted[1], 20.0, 10.5), first.alarm_state)
    assert first.result["is_drift"] and not first.is_drift  # the window failed, one is not two
    assert second.is_drift and second.alarm_state["consecutive"] == 2


# --- simulation: the acceptance figures -------------------------------------------------------
def test_simulated_windows_match_the_detector() -> None:
    rng = np.random.default_rng(5)
    reference = sim.reference(rng, rows=1000, d=4)
    detector = create_detector("ks").fit(reference)
    windows = rng.standard_normal((3, 4, 200))
    expected = [list(detector.check(w.T).feature_p_values.values()) for w in windows]
    assert np.allclose(sim.ks_p_values(reference, windows), expected, rtol=1e-12, atol=0)


def test_unshifted_data_alarms_within_the_declared_budget() -> None:
    rng = np.random.default_rng(12)
    per_reference = CHECKS // REFERENCES
    p_values = np.concatenate(
        [sim.window_p_values(rng, sim.reference(rng), per_reference) for _ in range(REFERENCES)]
    )
    declared = sim.rule(DECLARED_RUN_CHECKS)
    alarms = sum(
        sim.false_alarms(declared, chunk, P_VALUE)
        for chunk in p_values.reshape(REFERENCES, per_reference)
    )
    budget = CHECKS / DECLARED_RUN_CHECKS
    allowed = stats.poisson.ppf(1 - SURPRISE, budget)
    raw = sim.raw_alarms(p_values, P_VALUE)
    assert alarms <= allowed, (alarms, budget, allowed)
    # The per-window rule at the same data: one false alarm in ~20 windows.
    assert raw > 5 * budget and raw == pytest.approx(CHECKS * P_VALUE, rel=0.25)


def test_half_sigma_shift_in_one_of_ten_features_alarms_within_two_windows() -> None:
    rng = np.random.default_rng(13)
    declared = sim.rule(7 * 86400 / sim.INTERVAL_S)  # one false alarm a week at 30 s checks
    runs = 50
    streams = (sim.window_p_values(rng, sim.reference(rng), 2, shift=0.5) for _ in range(runs))
    found = sim.delays(declared, streams, P_VALUE)
    assert all(delay is not None and delay <= 2 for delay in found), found
