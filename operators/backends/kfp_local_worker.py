"""The kfp.local worker process of one run: ``python -m operators.backends.kfp_local_worker``."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from operators.backends.kfp_local import (
    REQUEST_FILE,
    STATE_FILE,
    LocalRequest,
    LocalState,
    _write_json_atomic,
)
from operators.backends.runs import RunState, _now


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
    """A compiled ``dsl.If`` condition, evaluated by cel-python (as localcluster's CRD rules
    are), with the channel values it names bound under ``inputs.parameter_values``."""
    if not condition.strip():
        return True
    import celpy

    values = {
        channel: resolve_condition_channel(channel, io_store)
        for channel in _CEL_PARAMETER.findall(condition)
    }
    environment = celpy.Environment()
    program = environment.program(environment.compile(condition))
    result = program.evaluate({"inputs": celpy.json_to_cel({"parameter_values": values})})
    if isinstance(result, celpy.CELEvalError):
        raise ValueError(f"condition {condition!r}: {result.args[0]}")
    return bool(result)


def install_kfp_local_condition_fix() -> None:
    """kfp 2.16.1's local orchestrator splices values into the CEL text and evaluates it as
    Python, which fails for every compiled ``dsl.If`` and then silently skips the branch.
    The worker process evaluates it as CEL instead; an unresolvable condition fails the run."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators.backends.kfp_local_worker")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("run-local", help="(internal) the kfp.local worker of one run")
    worker.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return run_local_worker(args.run_dir.resolve())
    return 1


if __name__ == "__main__":
    sys.exit(main())
