"""Pipeline-run backends: the same compiled pipelines on a KFP server or through ``kfp.local``.

``PipelineBackend.submit(pipeline_name, run_name, params) -> RunRef`` is idempotent: the run
name is the identity (operators derive it deterministically), and a run that already exists
under that name is returned, never launched again. ``get(ref) -> RunStatus`` observes it.

* ``KfpClusterBackend`` — ``kfp.Client``: uploads the compiled YAML as a pipeline version (named
  by content hash), creates the run in an experiment; URL ``{host}/#/runs/details/{run_id}``.
* ``KfpLocalBackend`` — the embedded default: one worker *process* per run runs the compiled
  YAML through ``kfp.local``; request, state, outputs and log live in ``<runs_dir>/<run_name>/``
  so a restarted operator finds runs that finished while it was down.

Pipelines with a ``kfp_run_name`` input get the run name injected when the caller omits it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, Field, field_validator

RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
RUN_NAME_PARAM = "kfp_run_name"
LOG_TAIL_LINES = 40
# A claimed launch whose worker never recorded itself is failed after this long.
LAUNCH_GRACE_S = 120.0
# Colour codes kfp.local and Spark write into logs; run messages end up in kubectl output.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class RunState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED)


class RunRef(BaseModel):
    backend: str
    pipeline_name: str
    run_name: str
    run_id: str
    url: str


class RunStatus(BaseModel):
    ref: RunRef
    state: RunState
    outputs: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    log_tail: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @field_validator("message", "log_tail")
    @classmethod
    def _plain_text(cls, text: str | None) -> str | None:
        return _ANSI.sub("", text) if text else text

    @property
    def url(self) -> str:
        return self.ref.url


class PipelineBackend(Protocol):
    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef: ...

    def get(self, ref: RunRef) -> RunStatus: ...


class PipelineRunError(ValueError):
    """Bad submit input (unknown pipeline or parameter, bad run name); the message names it."""


# ---------------------------------------------------------------- pure helpers (both backends)


def default_packages() -> dict[str, Path]:
    """The checked-in compiled pipelines, by name (``feature_backfill``, ``training``)."""
    from pipelines.compile import package_path, pipeline_functions

    return {name: package_path(name) for name in pipeline_functions()}


def check_run_name(run_name: str) -> str:
    if not re.fullmatch(RUN_NAME_PATTERN, run_name or ""):
        raise PipelineRunError(
            f"run name {run_name!r} is invalid: use letters, digits, '.', '_', '-' "
            "(first a letter or digit), at most 200 characters"
        )
    return run_name


def pipeline_inputs(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Root input parameters of a compiled pipeline: name -> definition."""
    return dict(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def build_arguments(
    spec: Mapping[str, Any], run_name: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Validated run arguments: unknown or missing parameters are errors naming them."""
    inputs = pipeline_inputs(spec)
    pipeline = spec.get("pipelineInfo", {}).get("name", "?")
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        raise PipelineRunError(
            f"pipeline {pipeline}: unknown parameter {unknown[0]!r} (known: {sorted(inputs)})"
        )
    arguments = dict(params)
    if RUN_NAME_PARAM in inputs and not arguments.get(RUN_NAME_PARAM):
        arguments[RUN_NAME_PARAM] = run_name
    missing = [
        name
        for name, definition in inputs.items()
        if name not in arguments
        and "defaultValue" not in definition
        and not definition.get("isOptional", False)
    ]
    if missing:
        raise PipelineRunError(f"pipeline {pipeline}: missing parameter {missing[0]!r}")
    return arguments


def load_spec(package: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(package.read_text()))


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------- KFP cluster backend

KFP_STATES: dict[str, RunState] = {
    "PENDING": RunState.PENDING,
    "RUNTIME_STATE_UNSPECIFIED": RunState.PENDING,
    "PAUSED": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "CANCELING": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "SKIPPED": RunState.SUCCEEDED,
    "FAILED": RunState.FAILED,
    "CANCELED": RunState.FAILED,
}


def map_kfp_state(state: str | None) -> RunState:
    return KFP_STATES.get((state or "PENDING").upper(), RunState.PENDING)


def kfp_run_url(host: str, run_id: str) -> str:
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def pipeline_version_name(pipeline_name: str, package: bytes) -> str:
    """Versions are named by content, so an unchanged package is uploaded once."""
    return f"{pipeline_name}-{hashlib.sha256(package).hexdigest()[:12]}"


def display_name_filter(name: str) -> str:
    """A KFP v2beta1 list filter: display_name EQUALS name."""
    predicate = {"operation": "EQUALS", "key": "display_name", "stringValue": name}
    return json.dumps({"predicates": [predicate]})


def kfp_status(run: Any, ref: RunRef) -> RunStatus:
    """RunStatus from a ``kfp_server_api.V2beta1Run``; the log tail lists failed tasks."""
    state = map_kfp_state(getattr(run, "state", None))
    error = getattr(run, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    tail = None
    if state == RunState.FAILED:
        details = getattr(run, "run_details", None)
        failed = [
            f"task {task.display_name}: {getattr(task.error, 'message', None) or task.state}"
            for task in (getattr(details, "task_details", None) or [])
            if str(task.state).upper() in ("FAILED", "CANCELED")
        ]
        tail = "\n".join(failed) or message
    return RunStatus(
        ref=ref,
        state=state,
        message=message,
        log_tail=tail,
        started_at=getattr(run, "created_at", None),
        finished_at=getattr(run, "finished_at", None) if state.finished else None,
    )


class KfpClusterBackend:
    """Runs on a Kubeflow Pipelines server through a ``kfp.Client`` created by the caller."""

    def __init__(
        self,
        client: Any,
        host: str,
        experiment: str = "kubeloop",
        namespace: str | None = None,
        packages: Mapping[str, Path] | None = None,
    ) -> None:
        self.client = client
        self.host = host
        self.experiment = experiment
        self.namespace = namespace
        self.packages = dict(packages) if packages is not None else default_packages()
        self._experiment_cache: str | None = None

    def _package(self, pipeline_name: str) -> Path:
        if pipeline_name not in self.packages:
            raise PipelineRunError(
                f"unknown pipeline {pipeline_name!r} (known: {sorted(self.packages)})"
            )
        return self.packages[pipeline_name]

    def _ref(self, pipeline_name: str, run_name: str, run_id: str) -> RunRef:
        return RunRef(
            backend="kfp",
            pipeline_name=pipeline_name,
            run_name=run_name,
            run_id=run_id,
            url=kfp_run_url(self.host, run_id),
        )

    def _ensure_version(self, pipeline_name: str, package: Path) -> tuple[str, str]:
        """(pipeline_id, version_id), uploading the pipeline or this version when missing."""
        display = f"kubeloop-{pipeline_name}"
        version = pipeline_version_name(pipeline_name, package.read_bytes())
        pipeline_id = self.client.get_pipeline_id(display)
        if pipeline_id is None:
            pipeline_id = self.client.upload_pipeline(
                str(package), pipeline_name=display, namespace=self.namespace
            ).pipeline_id
        found = self.client.list_pipeline_versions(
            pipeline_id, page_size=1, filter=display_name_filter(version)
        ).pipeline_versions
        if found:
            return pipeline_id, found[0].pipeline_version_id
        created = self.client.upload_pipeline_version(
            str(package), pipeline_version_name=version, pipeline_id=pipeline_id
        )
        return pipeline_id, created.pipeline_version_id

    def _experiment_id(self) -> str:
        # create_experiment returns the existing experiment of that name.
        if self._experiment_cache is None:
            experiment = self.client.create_experiment(self.experiment, namespace=self.namespace)
            self._experiment_cache = str(experiment.experiment_id)
        return self._experiment_cache

    def find(self, pipeline_name: str, run_name: str) -> RunRef | None:
        runs = self.client.list_runs(
            experiment_id=self._experiment_id(),
            namespace=self.namespace,
            page_size=10,
            sort_by="created_at",
            filter=display_name_filter(run_name),
        ).runs
        if not runs:
            return None
        return self._ref(pipeline_name, run_name, runs[0].run_id)

    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef:
        check_run_name(run_name)
        package = self._package(pipeline_name)
        arguments = build_arguments(load_spec(package), run_name, params)
        existing = self.find(pipeline_name, run_name)
        if existing is not None:
            return existing
        pipeline_id, version_id = self._ensure_version(pipeline_name, package)
        run = self.client.run_pipeline(
            experiment_id=self._experiment_id(),
            job_name=run_name,
            params=arguments,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return self._ref(pipeline_name, run_name, run.run_id)

    def get(self, ref: RunRef) -> RunStatus:
        return kfp_status(self.client.get_run(ref.run_id), ref)


# --------------------------------------------------------------------------- kfp.local backend

REQUEST_FILE = "request.json"
STATE_FILE = "state.json"
LOG_FILE = "run.log"
CLAIM_FILE = "launch.claim"


class LocalRequest(BaseModel):
    pipeline_name: str
    run_name: str
    package: str
    arguments: dict[str, Any]
    submitted_at: datetime


class LocalState(BaseModel):
    state: RunState
    pid: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


def _write_json_atomic(path: Path, model: BaseModel) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(model.model_dump_json(indent=2))
    temporary.replace(path)


def _process_alive(pid: int, run_dir: Path) -> bool:
    """Alive and still our worker (guards against pid reuse and zombies)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(run_dir).encode() in cmdline.split(b"\0")


class KfpLocalBackend:
    """Runs compiled pipelines through ``kfp.local``, one worker process per run."""

    def __init__(
        self,
        runs_dir: str | Path,
        packages: Mapping[str, Path] | None = None,
        python: str = sys.executable,
        launch_grace_s: float = LAUNCH_GRACE_S,
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.packages = dict(packages) if packages is not None else default_packages()
        self.python = python
        self.launch_grace_s = launch_grace_s
        # Our own children, polled so finished workers are reaped (no zombies).
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def run_dir(self, run_name: str) -> Path:
        return self.runs_dir / check_run_name(run_name)

    def _ref(self, request: LocalRequest) -> RunRef:
        run_dir = self.run_dir(request.run_name)
        return RunRef(
            backend="local",
            pipeline_name=request.pipeline_name,
            run_name=request.run_name,
            run_id=request.run_name,
            url=run_dir.as_uri(),
        )

    def _record(self, run_name: str, params: Mapping[str, Any], pipeline_name: str) -> LocalRequest:
        if pipeline_name not in self.packages:
            raise PipelineRunError(
                f"unknown pipeline {pipeline_name!r} (known: {sorted(self.packages)})"
            )
        package = self.packages[pipeline_name].resolve()
        arguments = build_arguments(load_spec(package), run_name, params)
        return LocalRequest(
            pipeline_name=pipeline_name,
            run_name=run_name,
            package=str(package),
            arguments=arguments,
            submitted_at=_now(),
        )

    def _create_run_dir(self, request: LocalRequest) -> bool:
        """Atomically publish the run directory; False when the run already exists."""
        final = self.run_dir(request.run_name)
        staging = self.runs_dir / f".staging-{request.run_name}-{os.getpid()}-{time.monotonic_ns()}"
        staging.mkdir()
        _write_json_atomic(staging / REQUEST_FILE, request)
        _write_json_atomic(staging / STATE_FILE, LocalState(state=RunState.PENDING))
        try:
            staging.rename(final)
        except OSError:
            (staging / REQUEST_FILE).unlink()
            (staging / STATE_FILE).unlink()
            staging.rmdir()
            if final.is_dir():
                return False
            raise
        return True

    def _launch(self, run_name: str) -> None:
        """Start the worker once: whoever creates the claim file launches it."""
        run_dir = self.run_dir(run_name)
        try:
            claim = os.open(run_dir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(claim)
        with (run_dir / LOG_FILE).open("ab") as log:
            # A new session: the worker outlives an operator restart.
            self._children[run_name] = subprocess.Popen(
                [self.python, "-m", "operators.backends.pipelines", "run-local", str(run_dir)],
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef:
        check_run_name(run_name)
        request = self._record(run_name, params, pipeline_name)
        if not self._create_run_dir(request):
            existing = self._read_request(run_name)
            if existing.pipeline_name != pipeline_name:
                raise PipelineRunError(
                    f"run {run_name!r} already exists for pipeline {existing.pipeline_name!r}"
                )
            request = existing
        # Also for an existing run: a previous operator may have died before launching it.
        self._launch(run_name)
        return self._ref(request)

    def _read_request(self, run_name: str) -> LocalRequest:
        path = self.run_dir(run_name) / REQUEST_FILE
        if not path.exists():
            raise PipelineRunError(f"no local run named {run_name!r} in {self.runs_dir}")
        return LocalRequest.model_validate_json(path.read_text())

    def _read_state(self, run_dir: Path) -> LocalState:
        return LocalState.model_validate_json((run_dir / STATE_FILE).read_text())

    def _reap(self, run_name: str) -> None:
        child = self._children.get(run_name)
        if child is not None and child.poll() is not None:
            del self._children[run_name]

    def _lost(self, run_dir: Path, state: LocalState) -> str | None:
        """Why an unfinished run can never finish (its worker is gone), or None."""
        if state.pid is not None:
            if _process_alive(state.pid, run_dir):
                return None
            # The worker may have finished between our two reads.
            if self._read_state(run_dir).state.finished:
                return None
            return f"the worker process {state.pid} exited without recording a result"
        child = self._children.get(run_dir.name)
        if child is not None:
            code = child.poll()
            if code is None or self._read_state(run_dir).state != RunState.PENDING:
                return None
            return f"the worker process exited with code {code} before it started the run"
        claim = run_dir / CLAIM_FILE
        if claim.exists() and time.time() - claim.stat().st_mtime > self.launch_grace_s:
            return "the worker process never started"
        return None

    def get(self, ref: RunRef) -> RunStatus:
        run_dir = self.run_dir(ref.run_name)
        self._read_request(ref.run_name)  # a clear error for an unknown run
        state = self._read_state(run_dir)
        if not state.state.finished:
            reason = self._lost(run_dir, state)
            self._reap(ref.run_name)
            if reason is not None:
                state = state.model_copy(
                    update={"state": RunState.FAILED, "message": reason, "finished_at": _now()}
                )
                _write_json_atomic(run_dir / STATE_FILE, state)
            else:
                state = self._read_state(run_dir)
        tail = None
        if state.state == RunState.FAILED and (run_dir / LOG_FILE).exists():
            tail = log_tail((run_dir / LOG_FILE).read_text(errors="replace"))
        return RunStatus(
            ref=ref,
            state=state.state,
            outputs=state.outputs,
            message=state.message,
            log_tail=tail,
            started_at=state.started_at,
            finished_at=state.finished_at,
        )

    def wait(
        self,
        ref: RunRef,
        timeout_s: float,
        poll_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RunStatus:
        """Block until the run finishes (tests and the CLI; operators poll ``get``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.get(ref)
            if status.state.finished or time.monotonic() > deadline:
                return status
            sleep(poll_s)


# ----------------------------------------------------------------- the kfp.local worker process


def _jsonable(value: Any) -> Any:
    """Pipeline outputs as JSON: artifacts become {uri, metadata}."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "uri"):
        return {"uri": value.uri, "metadata": _jsonable(dict(getattr(value, "metadata", {})))}
    return str(value)


_CEL_PARAMETER = re.compile(r"inputs\.parameter_values\['(pipelinechannel--[^']+)'\]")
_CEL_OPERATORS = ((r"&&", " and "), (r"\|\|", " or "), (r"!(?!=)", " not "))
_CEL_LITERALS = ((r"\btrue\b", "True"), (r"\bfalse\b", "False"), (r"\bnull\b", "None"))


def resolve_condition_channel(channel: str, io_store: Any) -> Any:
    """Value of ``pipelinechannel--<name>`` in a DAG: a DAG input (inside a condition
    sub-DAG inputs keep the prefix, at the root they do not) or an upstream task output
    (``<task>-<output>``, task names may contain dashes)."""
    name = channel.removeprefix("pipelinechannel--")
    for key in (channel, name):
        with contextlib.suppress(ValueError):
            return io_store.get_parent_input(key)
    for index in [i for i, char in enumerate(name) if char == "-"]:
        with contextlib.suppress(ValueError, KeyError):
            return io_store.get_task_output(name[:index], name[index + 1 :])
    raise ValueError(f"condition input {channel!r} not found among DAG inputs or task outputs")


def evaluate_cel_condition(condition: str, io_store: Any) -> bool:
    """The CEL subset the KFP compiler emits for ``dsl.If`` (comparisons, && || !, int(),
    double()), with channel values bound as variables, never spliced into the text."""
    if not condition.strip():
        return True
    variables: dict[str, Any] = {}

    def bind(match: re.Match[str]) -> str:
        name = f"_v{len(variables)}"
        variables[name] = resolve_condition_channel(match.group(1), io_store)
        return name

    expression = _CEL_PARAMETER.sub(bind, condition)
    for pattern, replacement in (*_CEL_OPERATORS, *_CEL_LITERALS):
        expression = re.sub(pattern, replacement, expression)
    allowed = {"__builtins__": {}, "int": int, "double": float, "string": str, "bool": bool}
    return bool(eval(expression, allowed, variables))  # noqa: S307 - restricted, compiler-made


def install_kfp_local_condition_fix() -> None:
    """kfp 2.16.1's local orchestrator splices values into the CEL text and evaluates it as
    Python, which fails for every compiled ``dsl.If`` and then silently skips the branch.
    The worker process uses a correct evaluator; an unresolvable condition fails the run."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator

    enhanced_dag_orchestrator.ConditionEvaluator.evaluate_condition = staticmethod(  # type: ignore[method-assign]
        evaluate_cel_condition
    )


def run_local_worker(run_dir: Path) -> int:
    """Body of the worker process: run the request through kfp.local, record the result."""
    request = LocalRequest.model_validate_json((run_dir / REQUEST_FILE).read_text())
    started = _now()
    _write_json_atomic(
        run_dir / STATE_FILE,
        LocalState(state=RunState.RUNNING, pid=os.getpid(), started_at=started),
    )
    try:
        from kfp import components, local

        install_kfp_local_condition_fix()
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(run_dir / "outputs"),
            raise_on_error=True,
        )
        pipeline = components.load_component_from_file(request.package)
        task = pipeline(**request.arguments)
        outputs = {} if task.outputs is None else _jsonable(dict(task.outputs))
        final = LocalState(
            state=RunState.SUCCEEDED,
            pid=os.getpid(),
            started_at=started,
            finished_at=_now(),
            outputs=outputs,
        )
        code = 0
    except BaseException as error:  # the run failed: record why, whatever it was
        final = LocalState(
            state=RunState.FAILED,
            pid=os.getpid(),
            started_at=started,
            finished_at=_now(),
            message=f"{type(error).__name__}: {str(error)[:4000]}",
        )
        code = 1
    sys.stdout.flush()
    _write_json_atomic(run_dir / STATE_FILE, final)
    return code


# ------------------------------------------------------------------------------- configuration


def pipeline_backend_from_config(config: Any) -> PipelineBackend:
    """The backend an ``operators.config.OperatorConfig`` asks for (``local`` or ``kfp``)."""
    if config.pipeline_backend == "kfp":
        if not config.kfp_host:
            raise PipelineRunError("pipeline_backend 'kfp' needs kfp_host (KUBELOOP_KFP_HOST)")
        import kfp

        # Single-user KFP: no user namespace; multi-user setups construct the backend directly.
        return KfpClusterBackend(kfp.Client(host=config.kfp_host), host=config.kfp_host)
    return KfpLocalBackend(Path(config.state_dir) / "pipeline-runs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators.backends.pipelines")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("run-local", help="(internal) the kfp.local worker of one run")
    worker.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return run_local_worker(args.run_dir.resolve())
    return 1


if __name__ == "__main__":
    sys.exit(main())
