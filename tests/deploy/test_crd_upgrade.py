"""The CRD upgrade path Helm lacks: `kubeloop crds --stdout` prints every CRD kubeloop
installs (the same ones the chart and kustomize ship), and the chart's NOTES say how to apply
them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "kubeloop"
UPGRADE = "kubeloop crds --stdout | kubectl apply --server-side --force-conflicts -f -"


def test_kubeloop_crds_stdout_is_every_crd_the_chart_ships() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kubeloop.cli", "crds", "--stdout"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    printed = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(done.stdout) if doc}
    with helm.Chart.load(CHART_DIR) as chart:
        shipped = {
            doc["metadata"]["name"]: doc
            for crd in chart.crds
            for doc in yaml.safe_load_all(crd["data"])
            if doc
        }
    assert set(printed) == set(shipped)
    assert "clusterkopfpeerings.kopf.dev" in printed
    for name, crd in printed.items():
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"] == shipped[name]["spec"], name


def test_chart_notes_give_the_upgrade_command() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(None, name="kubeloop", namespace="kubeloop-system")
    (notes,) = [text for path, text in rendered.items() if path.endswith("NOTES.txt")]
    assert UPGRADE in notes
    assert UPGRADE in (ROOT / "docs" / "deploy.md").read_text()
