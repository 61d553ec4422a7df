"""The alarm rule and the validation-score baseline through the running monitor (HTTP, a clock
the test moves): a failing window is evidence, not an alarm; a check on the same rows does not
count; the prediction check compares with the version's validation scores, or says it fell
back to the first served window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest

from contracts.drift import SCORE_BASELINE_FIRST_WINDOW, SCORE_BASELINE_VALIDATION
from contracts.mlflow_tags import SCORE_REFERENCE_COLUMN
from services.monitor import MonitorService, MonitorSettings
from services.monitor.tests.http_api import TEST_AUTH, put_config, running
from services.monitor.tests.test_drift_loop import (
    WINDOW,
    drift_config,
    evaluate,
    post_calls,
    sample,
    write_reference,
)

INTERVAL_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def monitor(tmp_path: Path, clock: Clock) -> AsyncIterator[MonitorService]:
    settings = MonitorSettings(
        auth=TEST_AUTH,
        port=0,
        data_dir=tmp_path / "data",
        flush_interval_s=0.05,
        drift_interval_s=INTERVAL_S,
    )
    async with running(MonitorService(settings, clock=clock)) as service:
        yield service


def write_scores(path: Path, rows: int = 400, seed: int = 1) -> Path:
    """Validation scores of the model the traffic helper scores with (sigmoid of a)."""
    a = np.random.default_rng(seed).standard_normal(rows)
    pd.DataFrame({SCORE_REFERENCE_COLUMN: 1 / (1 + np.exp(-a))}).to_parquet(path)
    return path


async def test_alarm_needs_two_fresh_failing_windows_and_uses_validation_scores(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path, clock: Clock
) -> None:
    reference = write_reference(tmp_path / "reference.parquet")
    config = drift_config(str(reference), alarm={"consecutive": 2})
    config["scoreReferences"] = {"1": str(write_scores(tmp_path / "scores.parquet"))}
    await put_config(http, monitor.url, config)
    await post_calls(http, monitor.url + "/", sample(seed=2), "ref")
    clock.now += 1
    quiet = (await evaluate(http, monitor.url))["versions"]["1"]
    assert quiet["isDrift"] is False and quiet["alarm"]["rule"] == "consecutive"
    assert quiet["alarm"]["counted"] is True and quiet["alarm"]["requiredConsecutive"] == 2
    prediction = quiet["checks"]["prediction"]
    assert prediction["baseline"] == SCORE_BASELINE_VALIDATION and prediction["pValue"] > 0.01

    clock.now += INTERVAL_S
    await post_calls(http, monitor.url + "/", sample(seed=3, shift=1.0), "shift-1")
    clock.now += 1
    one = (await evaluate(http, monitor.url))["versions"]["1"]
    assert one["alarm"]["windowDrift"] is True and one["alarm"]["consecutive"] == 1
    assert one["isDrift"] is False and one["reportUrl"] is None

    again = (await evaluate(http, monitor.url))["versions"]["1"]  # the same rows again
    assert again["alarm"]["counted"] is False and again["isDrift"] is False
    assert "shares rows" in again["alarm"]["notCounted"]

    clock.now += INTERVAL_S
    await post_calls(http, monitor.url + "/", sample(seed=4, shift=1.0), "shift-2")
    clock.now += 1
    two = (await evaluate(http, monitor.url))["versions"]["1"]
    assert two["isDrift"] is True and two["alarm"]["consecutive"] == 2
    assert two["reportUrl"] is not None and two["since"] == clock.now
    assert two["checks"]["prediction"]["baseline"] == SCORE_BASELINE_VALIDATION
    async with http.get(monitor.url + two["reportUrl"]) as r:
        assert "consecutive: 2 failing window(s) in a row" in await r.text()


async def test_without_validation_scores_the_first_window_is_the_flagged_baseline(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path, clock: Clock
) -> None:
    reference = write_reference(tmp_path / "reference.parquet")
    config: dict[str, Any] = drift_config(str(reference))
    config["scoreReferences"] = {"1": str(tmp_path / "missing.parquet")}
    await put_config(http, monitor.url, config)
    await post_calls(http, monitor.url + "/", sample(seed=2, rows=WINDOW), "ref")
    clock.now += 1
    first = (await evaluate(http, monitor.url))["versions"]["1"]["checks"]["prediction"]
    assert first["baseline"] == SCORE_BASELINE_FIRST_WINDOW
    assert "baseline captured" in first["message"] and "no such file" in first["baselineNote"]
    config["scoreReferences"] = {}
    await put_config(http, monitor.url, config)
    clock.now += INTERVAL_S
    second = (await evaluate(http, monitor.url))["versions"]["1"]
    assert second["alarm"]["rule"] == "window"  # no alarm configured: each window decides
    prediction = second["checks"]["prediction"]
    assert prediction["baseline"] == SCORE_BASELINE_FIRST_WINDOW and prediction["pValue"] > 0.01
    assert prediction["baselineNote"] == "no validation scores saved with this version"
