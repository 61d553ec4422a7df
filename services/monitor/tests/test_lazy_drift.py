"""A monitor that only pairs and counts never loads the drift package (pandas, SciPy); the
first model with a drift config loads it. Checked in a fresh interpreter, where nothing else
has imported them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, json, sys
from pathlib import Path
import httpx
from services.monitor import MonitorService, MonitorSettings
from services.monitor.tests.http_api import AUTH_HEADERS, AUTH_LINE, TEST_AUTH

HEAVY = ("pandas", "scipy", "services.monitor.drift")

def loaded():
    return {name: name in sys.modules for name in HEAVY}

async def main(data_dir):
    seen = {"imported": loaded()}
    service = MonitorService(MonitorSettings(auth=TEST_AUTH, port=0, data_dir=Path(data_dir)))
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, headers=AUTH_HEADERS) as http:
            plain = {"stableVersion": "1", "scoreTolerance": 0.1}
            answer = await http.put("/v1/models/team-a/churn/config", json=plain)
            assert answer.status_code == 200, answer.text
            await service.evaluate_drift()
            seen["pairing only"] = loaded()
            drift = {**plain, "drift": {"detector": "ks", "pValue": 0.01}}
            answer = await http.put("/v1/models/team-a/other/config", json=drift)
            assert answer.status_code == 200, answer.text
            await service.evaluate_drift()
            seen["with drift"] = loaded()
    finally:
        await service.stop()
    print(json.dumps(seen))

asyncio.run(main(sys.argv[1]))
"""


def test_drift_package_loads_with_the_first_drift_config(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    nothing = {"pandas": False, "scipy": False, "services.monitor.drift": False}
    assert seen["imported"] == nothing
    assert seen["pairing only"] == nothing
    assert seen["with drift"] == {name: True for name in nothing}
