"""The README's five-minute tour, run as a newcomer types it.

The ```bash block under "A five-minute tour with kubectl" is extracted from README.md and
each command runs exactly as written, with bash, from the root of a fresh copy of the
repository (the files `git ls-files` lists, tracked and untracked-not-ignored: a clone of the
working tree), so `.kubeloop/` starts empty and the relative paths in examples/resources mean
what they mean for a user. Nothing in a command is substituted. Around them:

- `.venv/bin/kubeloop`: the copy gets the script pip writes for pyproject's
  `[project.scripts] kubeloop` entry point, run by this interpreter (the shared venv's). The
  shared venv's own console script cannot be used: it belongs to an editable install of
  another checkout, written when the CLI lived elsewhere (stale). This way the README's
  `.venv/bin/kubeloop …` lines run unchanged, on the code under test.
- The environment: PYTHONPATH is the copy's root — what `make install` (`pip install -e .`)
  gives every process of a fresh clone, pipeline steps included, which run from their own
  working directories and would otherwise import the other checkout the shared venv's
  editable install points at. KUBECONFIG is dropped (the tour exports it), and
  `KUBELOOP_PORT` names a free port for `kubeloop up`'s API server, so the test does not
  depend on 8443 being free.
- `export`/assignment lines are carried into every later command's shell (one shell per
  command, so each exit status is checked); a command the README says is `rejected` (the
  comment line after it) must fail; every other must exit 0.

Before the first `kubectl wait` of the block (or before `kubeloop down`), the test waits
itself, failing fast with the reason: the FeatureView `Backfilled=True`, the Experiment's
`status.registeredVersion`, the MLModel serving version 1 at 100% (`stableVersion` 1,
`traffic.stable` 100) with `status.url`. Then the rest of the block runs (the README's `curl`
must print predictions), a KServe v1 request built from the sample data goes through the
MLModel's URL (the local router) and must answer 200 with one prediction per instance, and
the block's last line, `kubeloop down`, stops everything.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from kubeloop.embedded.launcher import EmbeddedLayout, stop_all
from kubeloop.sampledata.requests import build_instances, feature_columns
from tests.support.processes import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOUR_HEADING = "## A five-minute tour with kubectl"
ASSIGNMENT = re.compile(r"^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=")
FAILED_BACKFILL_REASONS = ("BackfillFailed", "LaunchFailed", "SourceNotFound")


@dataclass(frozen=True)
class Command:
    text: str
    rejected: bool = False  # the README says this one fails


def tour_block(readme: str) -> str:
    section = readme[readme.index(TOUR_HEADING) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"no ```bash block under {TOUR_HEADING!r}"
    return match.group(1)


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


def tour_commands(block: str) -> list[Command]:
    """The block's commands; a command goes on over `\\` continuations and open quotes."""
    commands: list[Command] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            if commands and line.lstrip("# ").startswith("rejected"):
                commands[-1] = Command(commands[-1].text, rejected=True)
            continue
        pending = f"{pending}\n{line}" if pending else line
        if _complete(pending):
            commands.append(Command(pending))
            pending = ""
    assert not pending, f"unterminated command at the end of the block: {pending!r}"
    return commands


def fresh_copy(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def install_entry_point(copy: Path) -> None:
    """`.venv/bin/kubeloop` as pip writes it for pyproject's entry point."""
    scripts = tomllib.loads((copy / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["kubeloop"].split(":")
    script = copy / ".venv" / "bin" / "kubeloop"
    script.parent.mkdir(parents=True)
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n"
    )
    script.chmod(0o755)


class Tour:
    """Runs the README's commands in the copy, one bash per command, keeping a transcript."""

    def __init__(self, copy: Path) -> None:
        self.copy = copy
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        self.env = {**env, "PYTHONPATH": str(copy), "KUBELOOP_PORT": str(free_port())}
        self.assignments: list[str] = []
        self.transcript: list[str] = []

    def run(self, command: Command) -> subprocess.CompletedProcess[str]:
        timeout = 1500 if "kubectl wait" in command.text else 300
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-c", "\n".join([*self.assignments, command.text])],
            cwd=self.copy,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.transcript.append(
            f"$ {command.text}   [exit {result.returncode}, {time.monotonic() - started:.0f}s]\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        if command.rejected:
            assert result.returncode != 0, f"the README says this is rejected:\n{self.log()}"
        else:
            assert result.returncode == 0, f"a tour command failed:\n{self.log()}"
        if ASSIGNMENT.match(command.text):
            self.assignments.append(command.text)
        return result

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        result = subprocess.run(
            ["kubectl", *args, "-o", "json"],
            cwd=self.copy,
            env={**self.env, "KUBECONFIG": str(self.copy / ".kubeloop/cluster/kubeconfig")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def log(self) -> str:
        return "\n".join(self.transcript[-8:])

    def logs_tail(self) -> str:
        logs = self.copy / ".kubeloop" / "logs"
        parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs.glob("*")]
        return "\n".join(parts)


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = _status(obj).get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == kind), {})


def wait_until_serving(tour: Tour) -> dict[str, Any]:
    """FeatureView backfilled, Experiment registered, MLModel v1 at 100%: fail fast on a
    failed backfill or experiment, naming the reason."""

    def backfilled() -> bool:
        view = tour.kubectl_json("get", "featureview", "user-activity")
        condition = _condition(view, "Backfilled")
        if condition.get("status") == "False" and condition.get("reason") in (
            FAILED_BACKFILL_REASONS
        ):
            raise AssertionError(f"FeatureView {condition['reason']}: {condition.get('message')}")
        return condition.get("status") == "True"

    wait_for(backfilled, 900, "FeatureView Backfilled=True", 2, tour.logs_tail)

    def registered() -> str | None:
        status = _status(tour.kubectl_json("get", "experiment", "churn"))
        if status.get("phase") == "Failed":
            raise AssertionError(f"Experiment failed: {status.get('message')} {status}")
        return status.get("registeredVersion")

    version = wait_for(registered, 1200, "Experiment registeredVersion", 2, tour.logs_tail)
    assert version == "1"

    def serving() -> dict[str, Any] | None:
        status = _status(tour.kubectl_json("get", "mlmodel", "churn"))
        assert status.get("phase") not in ("Failed", "RolledBack"), status
        traffic = status.get("traffic") or {}
        if status.get("stableVersion") == "1" and traffic.get("stable") == 100:
            return status if status.get("url") else None
        return None

    return wait_for(serving, 600, "MLModel stableVersion 1 at 100%", 2, tour.logs_tail)


def predict_through(url: str, copy: Path) -> list[Any]:
    """A KServe v1 JSON request (`instances` of feature records) from the sample events."""
    experiment = yaml.safe_load((copy / "examples/resources/experiment.yaml").read_text())
    columns = feature_columns(experiment["spec"])
    rows = pd.read_parquet(copy / ".kubeloop/data/events").head(5).to_dict("records")
    body = build_instances(rows, columns)
    answer = httpx.post(f"{url.rstrip('/')}/v1/models/churn:predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = list(answer.json()["predictions"])
    assert len(predictions) == len(rows)
    return predictions


@pytest.fixture
def tour(tmp_path: Path) -> Iterator[Tour]:
    copy = fresh_copy(tmp_path / "kubeloop")
    install_entry_point(copy)
    tour = Tour(copy)
    yield tour
    stop_all(EmbeddedLayout(copy / ".kubeloop"))  # whatever `kubeloop down` did not stop


def test_tour_block_parses_into_the_commands_a_newcomer_types() -> None:
    commands = tour_commands(tour_block((ROOT / "README.md").read_text()))
    texts = [c.text for c in commands]
    assert texts[0].startswith(".venv/bin/kubeloop data")
    assert any(t.startswith("kubectl apply -f examples/resources/") for t in texts)
    assert texts[-1] == ".venv/bin/kubeloop down"
    assert [c.text.split()[3] for c in commands if c.rejected] == [
        "examples/invalid/experiment-random-split.yaml"
    ]


@pytest.mark.timeout(2700)
def test_readme_tour_runs_as_written(tour: Tour) -> None:
    commands = tour_commands(tour_block((tour.copy / "README.md").read_text()))
    checkpoint = next(
        (i for i, c in enumerate(commands) if c.text.startswith("kubectl wait")),
        len(commands) - 1,
    )
    for command in commands[:checkpoint]:
        tour.run(command)
    status = wait_until_serving(tour)
    for command in commands[checkpoint:-1]:
        result = tour.run(command)
        if command.text.startswith("curl"):
            assert '"predictions"' in result.stdout, tour.log()
    assert predict_through(str(status["url"]), tour.copy)
    down = tour.run(commands[-1])
    assert "controlplane" in down.stdout
