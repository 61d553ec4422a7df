"""The kubeconfig is replaced whole: `kubeloop up` polls for it while the server starts, and a
half-written (empty) file parsed as None failed the start-up."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import yaml

from localcluster.server import LocalCluster


def test_a_reader_never_sees_half_a_kubeconfig(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster")
    target = cluster.write_kubeconfig()
    seen: list[object] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(yaml.safe_load(target.read_text()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):
            cluster.write_kubeconfig()
    finally:
        done.set()
        reader.join()
    assert seen, "the reader never ran"
    assert all(isinstance(doc, dict) and doc["clusters"][0]["cluster"]["server"] for doc in seen)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it holds the admin token
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
