"""Pipeline-run backends: kfp.local worker processes for real, the KFP cluster backend's pure parts.

The local runs use a small probe pipeline compiled into tmp_path (each kfp.local task is a
subprocess, so a few short steps keep this fast); the real pipelines' compiled packages are
used for argument validation. No KFP server runs here, so the cluster backend is tested on
its request building and on real ``kfp_server_api`` run objects.
"""

import os
import signal
import time
from pathlib import Path

import pytest
from kfp import compiler, dsl
from kfp_server_api import V2beta1PipelineTaskDetail, V2beta1Run, V2beta1RunDetails

from operators.backends.kfp_cluster import (
    display_name_filter,
    kfp_run_url,
    kfp_status,
    map_kfp_state,
    pipeline_version_name,
)
from operators.backends.kfp_local import KfpLocalBackend
from operators.backends.kfp_local_worker import evaluate_cel_condition
from operators.backends.pipelines import pipeline_backend_from_config
from operators.backends.runs import (
    PipelineRunError,
    RunRef,
    RunState,
    RunStatus,
    build_arguments,
    default_packages,
    load_spec,
)

WAIT_S = 240.0  # generous: a loaded 2-core CI machine; never a timing assertion


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def wait_for(go_file: str, count_file: str) -> str:
    """Record one execution, then hold the run RUNNING until the test creates go_file."""
    import os
    import time

    with open(count_file, "a") as handle:
        handle.write("ran\n")
    while not os.path.exists(go_file):
        time.sleep(0.2)
    return "went"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def finish(previous: str, kfp_run_name: str, fail: bool) -> int:
    if fail:
        raise ValueError(f"probe failure requested for feature 'user__x1' after {previous}")
    print(f"finishing {kfp_run_name}")
    return len(kfp_run_name)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def mark(count_file: str, text: str) -> None:
    with open(count_file, "a") as handle:
        handle.write(f"{text}\n")


@dsl.pipeline(name="probe")
def probe(go_file: str, count_file: str, fail: bool = False, kfp_run_name: str = "") -> int:
    waited = wait_for(go_file=go_file, count_file=count_file)
    # Gates like the training pipeline's: a pipeline input, and a task output.
    with dsl.If(fail == False), dsl.If(waited.output == "went"):  # noqa: E712
        mark(count_file=count_file, text="gated")
    with dsl.If(waited.output != "went"):
        mark(count_file=count_file, text="wrong branch")
    return finish(previous=waited.output, kfp_run_name=kfp_run_name, fail=fail).output


@pytest.fixture(scope="module")
def probe_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "probe.yaml"
    compiler.Compiler().compile(probe, str(path))
    return path


def wait_for_state(backend: KfpLocalBackend, ref: RunRef, state: RunState) -> None:
    deadline = time.monotonic() + WAIT_S
    while backend.get(ref).state != state:
        assert time.monotonic() < deadline, f"run never reached {state}: {backend.get(ref)}"
        time.sleep(0.3)


@pytest.mark.slow
def test_local_run_transitions_is_idempotent_and_survives_restart(
    tmp_path: Path, probe_package: Path
) -> None:
    backend = KfpLocalBackend(tmp_path / "runs", packages={"probe": probe_package})
    go, count = tmp_path / "go", tmp_path / "count"
    params = {"go_file": str(go), "count_file": str(count)}

    ref = backend.submit("probe", "probe-r1", params)
    assert ref.url == (tmp_path / "runs" / "probe-r1").resolve().as_uri()
    assert backend.get(ref).state in (RunState.PENDING, RunState.RUNNING)
    wait_for_state(backend, ref, RunState.RUNNING)
    assert backend.submit("probe", "probe-r1", params) == ref  # no second launch

    # The operator restarts: a new backend over the same directory, then the run finishes.
    del backend
    restarted = KfpLocalBackend(tmp_path / "runs", packages={"probe": probe_package})
    assert restarted.submit("probe", "probe-r1", params) == ref
    go.touch()
    status = restarted.wait(ref, timeout_s=WAIT_S)
    assert status.state == RunState.SUCCEEDED, status
    assert status.outputs == {"Output": len("probe-r1")}  # kfp_run_name was injected
    assert status.finished_at is not None and status.log_tail is None
    assert count.read_text() == "ran\ngated\n"  # executed once; the right branch ran

    # Yet another instance sees the finished run without launching anything.
    again = KfpLocalBackend(tmp_path / "runs", packages={"probe": probe_package})
    assert again.submit("probe", "probe-r1", params) == ref
    assert again.get(ref).state == RunState.SUCCEEDED
    assert count.read_text() == "ran\ngated\n"


@pytest.mark.slow
def test_local_failures_report_reason_and_log_tail(tmp_path: Path, probe_package: Path) -> None:
    backend = KfpLocalBackend(tmp_path / "runs", packages={"probe": probe_package})
    go = tmp_path / "go"
    go.touch()
    failing = backend.submit(
        "probe",
        "probe-fails",
        {"go_file": str(go), "count_file": str(tmp_path / "c1"), "fail": True},
    )
    # A second run whose worker dies (killed) while the run is RUNNING.
    killed = backend.submit(
        "probe",
        "probe-killed",
        {"go_file": str(tmp_path / "never"), "count_file": str(tmp_path / "c2")},
    )
    wait_for_state(backend, killed, RunState.RUNNING)
    worker_pid = backend._read_state(backend.run_dir("probe-killed")).pid
    assert worker_pid is not None
    os.killpg(worker_pid, signal.SIGKILL)  # the worker leads its own session: ours to end

    status = backend.wait(failing, timeout_s=WAIT_S)
    assert status.state == RunState.FAILED
    assert status.log_tail is not None
    assert "probe failure requested for feature 'user__x1'" in status.log_tail
    assert status.message and "finish" in status.message

    lost = backend.wait(killed, timeout_s=WAIT_S)
    assert lost.state == RunState.FAILED
    assert lost.message == f"the worker process {worker_pid} exited without recording a result"


def test_submit_validates_before_launching(tmp_path: Path, probe_package: Path) -> None:
    backend = KfpLocalBackend(tmp_path / "runs", packages={"probe": probe_package})
    good = {"go_file": "g", "count_file": "c"}
    with pytest.raises(PipelineRunError, match="unknown pipeline 'nope'"):
        backend.submit("nope", "r", good)
    with pytest.raises(PipelineRunError, match="unknown parameter 'colour'"):
        backend.submit("probe", "r", {**good, "colour": "red"})
    with pytest.raises(PipelineRunError, match="missing parameter 'count_file'"):
        backend.submit("probe", "r", {"go_file": "g"})
    with pytest.raises(PipelineRunError, match="run name '../escape' is invalid"):
        backend.submit("probe", "../escape", good)
    with pytest.raises(PipelineRunError, match="no local run named 'absent'"):
        backend.get(
            RunRef(
                backend="local", pipeline_name="probe", run_name="absent", run_id="absent", url=""
            )
        )
    assert list((tmp_path / "runs").iterdir()) == []  # nothing was launched


def test_real_pipeline_packages_and_arguments() -> None:
    packages = default_packages()
    assert set(packages) == {"feature_backfill", "training"}
    training = load_spec(packages["training"])
    required = {
        "labels": {"source": "l.parquet"},
        "feature_views": [],
        "split": {"validation": "1d", "test": "1d"},
        "training_set_dir": "/data/ts",
        "model_name": "ctr",
    }
    arguments = build_arguments(training, "exp-ctr-r1-t0", required)
    assert arguments["kfp_run_name"] == "exp-ctr-r1-t0"
    explicit = build_arguments(training, "x", {**required, "kfp_run_name": "given"})
    assert explicit["kfp_run_name"] == "given"
    with pytest.raises(PipelineRunError, match="kubeloop-training: missing parameter 'model_name'"):
        build_arguments(training, "x", {k: v for k, v in required.items() if k != "model_name"})
    backfill = load_spec(packages["feature_backfill"])
    assert "kfp_run_name" not in build_arguments(
        backfill,
        "fv-r1",
        {"feature_view": {}, "start": "a", "end": "b", "offline_path": "p", "store": {}},
    )


def test_condition_evaluator_resolves_compiled_cel() -> None:
    from kfp.local.io import IOStore

    store = IOStore()
    store.put_parent_input("register", True)  # root DAG: pipeline inputs without prefix
    store.put_parent_input("pipelinechannel--evaluate-passes_threshold", False)  # sub-DAG input
    store.put_task_output("train-ddp", "epochs", 5)
    store.put_task_output("wait-for", "Output", "went")
    param = "inputs.parameter_values['pipelinechannel--{}']".format
    assert evaluate_cel_condition(f"{param('register')} == true", store)
    assert not evaluate_cel_condition(f"{param('evaluate-passes_threshold')} == true", store)
    assert evaluate_cel_condition(
        f"!({param('evaluate-passes_threshold')} == true) && int({param('train-ddp-epochs')}) > 3",
        store,
    )
    assert evaluate_cel_condition(f"{param('wait-for-Output')} != 'gone'", store)
    with pytest.raises(ValueError, match="'pipelinechannel--missing' not found"):
        evaluate_cel_condition(f"{param('missing')} == true", store)


def test_cluster_backend_request_building() -> None:
    assert kfp_run_url("http://kfp.example:8080/", "abc-123") == (
        "http://kfp.example:8080/#/runs/details/abc-123"
    )
    first = pipeline_version_name("training", b"spec-a")
    assert first == pipeline_version_name("training", b"spec-a")
    assert first != pipeline_version_name("training", b"spec-b")
    assert first.startswith("training-") and len(first) == len("training-") + 12
    assert display_name_filter("fv-users-3f2a-20260101") == (
        '{"predicates": [{"operation": "EQUALS", "key": "display_name", '
        '"stringValue": "fv-users-3f2a-20260101"}]}'
    )
    assert [
        map_kfp_state(s) for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED")
    ] == [
        RunState.PENDING,
        RunState.RUNNING,
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.FAILED,
    ]
    assert map_kfp_state(None) == RunState.PENDING


def test_cluster_status_from_real_api_objects() -> None:
    ref = RunRef(backend="kfp", pipeline_name="training", run_name="t0", run_id="r1", url="u")
    failed_task = V2beta1PipelineTaskDetail(display_name="train-ddp", state="FAILED")
    run = V2beta1Run(
        run_id="r1",
        display_name="t0",
        state="FAILED",
        run_details=V2beta1RunDetails(
            task_details=[
                failed_task,
                V2beta1PipelineTaskDetail(display_name="evaluate", state="SKIPPED"),
            ]
        ),
    )
    status = kfp_status(run, ref)
    assert status.state == RunState.FAILED
    assert status.log_tail == "task train-ddp: FAILED"
    assert kfp_status(V2beta1Run(run_id="r1", state="RUNNING"), ref).state == RunState.RUNNING


def test_run_status_text_is_free_of_terminal_colour_codes() -> None:
    ref = RunRef(backend="local", pipeline_name="training", run_name="t0", run_id="r1", url="u")
    status = RunStatus(
        ref=ref,
        state=RunState.FAILED,
        message="\x1b[91mTask train-ddp failed\x1b[0m",
        log_tail="\x1b[1;31mTrainingSetError:\x1b[0m no labels\x1b[K",
    )
    assert status.message == "Task train-ddp failed"
    assert status.log_tail == "TrainingSetError: no labels"


def test_backend_is_chosen_by_configuration(tmp_path: Path) -> None:
    from operators.config import OperatorConfig

    local = pipeline_backend_from_config(OperatorConfig(state_dir=tmp_path))
    assert isinstance(local, KfpLocalBackend)
    assert local.runs_dir == (tmp_path / "pipeline-runs").resolve()
    with pytest.raises(PipelineRunError, match="needs kfp_host"):
        pipeline_backend_from_config(OperatorConfig(pipeline_backend="kfp"))
