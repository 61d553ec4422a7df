"""`kubeloop`: the command line. Thin: parse arguments, call the service, print."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from operators import embedded
from operators.embedded import EmbeddedError, EmbeddedLayout, ProcessSpec

REPO_ROOT = Path(__file__).resolve().parent.parent


def cmd_crds(args: argparse.Namespace) -> int:
    from operators.api.crdgen import stale_files, write_crds

    root = Path(args.root)
    if args.check:
        stale = stale_files(root)
        if stale:
            print("CRDs differ from the models; run `kubeloop crds`:\n  " + "\n  ".join(stale))
            return 1
        print("CRDs match the models.")
        return 0
    for path in write_crds(root):
        print(f"wrote {path}")
    return 0


def crd_documents() -> list[dict[str, Any]]:
    """The CRDs `kubeloop up` installs: ours, plus the serving kinds the local controllers
    realize (KServe InferenceService, Istio VirtualService) when that package ships them."""
    import yaml

    from operators.api.crdgen import build_crd
    from operators.api.kinds import ALL_KINDS

    docs = [build_crd(kind) for kind in ALL_KINDS]
    serving_crds = REPO_ROOT / "localcluster" / "serving" / "crds"
    for path in sorted(serving_crds.glob("*.yaml")) if serving_crds.is_dir() else []:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def apply_crds(kubeconfig: Path, docs: list[dict[str, Any]], timeout: float = 30.0) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    api = client.ApiextensionsV1Api(api_client)
    for doc in docs:
        name = doc["metadata"]["name"]
        try:
            api.create_custom_resource_definition(doc)
        except ApiException as error:
            if error.status != 409:
                raise EmbeddedError(f"applying CRD {name} failed: {error.body}") from error
            current = api.read_custom_resource_definition(name)
            doc["metadata"]["resourceVersion"] = current.metadata.resource_version
            api.replace_custom_resource_definition(name, doc)
    deadline = time.monotonic() + timeout
    for doc in docs:
        name = doc["metadata"]["name"]
        while True:
            crd = api.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise EmbeddedError(f"CRD {name} was not Established within {timeout:.0f}s")
            time.sleep(0.1)


def controlplane_process(layout: EmbeddedLayout, host: str, port: int) -> ProcessSpec:
    argv = embedded.python_module(
        "localcluster", "--data-dir", str(layout.cluster_dir), "--host", host, "--port", str(port)
    )
    return ProcessSpec("controlplane", argv)


def mlflow_tracking_uri(layout: EmbeddedLayout) -> str:
    """The embedded default's model registry: an MLflow SQLite store under the state dir."""
    mlflow_dir = (layout.state_dir / "mlflow").resolve()
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlflow_dir / 'mlflow.db'}"


# How often the embedded monitor checks drift (seconds); the demo shortens it.
DRIFT_INTERVAL_ENV = "KUBELOOP_DRIFT_INTERVAL_S"


def monitor_process(
    layout: EmbeddedLayout, host: str, port: int, tracking_uri: str | None = None
) -> ProcessSpec:
    args = ["--host", host, "--port", str(port)]
    args += ["--data-dir", str((layout.state_dir / "monitor").resolve())]
    if tracking_uri:  # drift references may be runs:/ URIs of this registry
        args += ["--mlflow-tracking-uri", tracking_uri]
    if os.environ.get(DRIFT_INTERVAL_ENV):
        args += ["--drift-interval", os.environ[DRIFT_INTERVAL_ENV]]
    return ProcessSpec("monitor", embedded.python_module("services.monitor", *args))


def serving_controller_process(layout: EmbeddedLayout, tracking_uri: str) -> ProcessSpec:
    """Realizes InferenceServices as predictor processes and VirtualServices as routers."""
    argv = embedded.python_module(
        "localcluster.serving.controller",
        "--kubeconfig",
        str(layout.kubeconfig.resolve()),
        "--state-dir",
        str((layout.state_dir / "serving").resolve()),
    )
    # Predictors inherit it, to load models:/ URIs from the same registry.
    return ProcessSpec("serving", argv, {"MLFLOW_TRACKING_URI": tracking_uri})


def operator_process(
    layout: EmbeddedLayout, monitor_url: str | None = None, tracking_uri: str | None = None
) -> ProcessSpec:
    env = {
        "KUBECONFIG": str(layout.kubeconfig.resolve()),
        "KUBELOOP_STATE_DIR": str(layout.state_dir.resolve()),
    }
    if monitor_url:
        env["KUBELOOP_MONITOR_URL"] = monitor_url
    if tracking_uri:
        env["KUBELOOP_MLFLOW_TRACKING_URI"] = tracking_uri
    argv = embedded.python_module("operators.cli", "operator", "--standalone")
    return ProcessSpec("operators", argv, env)


def service_processes(layout: EmbeddedLayout, host: str) -> list[ProcessSpec]:
    """What runs beside the control plane: monitor, serving controller, operators."""
    monitor_port = embedded.free_port(host)
    monitor_url = f"http://{host}:{monitor_port}/"
    tracking_uri = mlflow_tracking_uri(layout)
    return [
        monitor_process(layout, host, monitor_port, tracking_uri),
        serving_controller_process(layout, tracking_uri),
        operator_process(layout, monitor_url, tracking_uri),
    ]


def cmd_up(args: argparse.Namespace) -> int:
    layout = EmbeddedLayout(Path(args.state_dir))
    embedded.check_state_dir(layout)
    if not embedded.port_is_free(args.host, args.port):
        raise EmbeddedError(
            f"port {args.port} on {args.host} is taken; stop what uses it or pass --port N"
        )
    if not embedded.java_available():
        print(
            "warning: Java was not found; Spark backfills will fail until Java 17 is installed "
            "(Debian: apt-get install openjdk-17-jre-headless)",
            file=sys.stderr,
        )
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    try:
        plane = embedded.start_process(controlplane_process(layout, args.host, args.port), layout)
        pids["controlplane"] = plane.pid
        embedded.write_pids(layout, pids, args.port)
        embedded.wait_for_api(layout, plane, timeout=args.timeout)
        apply_crds(layout.kubeconfig, crd_documents())
        for spec in service_processes(layout, args.host):
            pids[spec.name] = embedded.start_process(spec, layout).pid
            embedded.write_pids(layout, pids, args.port)
    except BaseException:
        embedded.stop_all(layout)
        raise
    kubeconfig = layout.kubeconfig.resolve()
    print(
        f"kubeloop is up: API server https://{args.host}:{args.port}, state in {layout.state_dir}"
    )
    print(f"\n  export KUBECONFIG={kubeconfig}\n")
    print("Then try:")
    print("  kubectl get crds")
    print("  kubectl apply -f examples/resources/")
    print("  kubectl get featureviews,experiments,mlmodels")
    print("  kubeloop status")
    print(f"Logs: {layout.logs_dir}/   Stop with: kubeloop down")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    layout = EmbeddedLayout(Path(args.state_dir))
    stopped = embedded.stop_all(layout)
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from operators.summary import collect_summary, render_summary

    layout = EmbeddedLayout(Path(args.state_dir))
    kubeconfig = args.kubeconfig or (layout.kubeconfig if layout.kubeconfig.exists() else None)
    rows = collect_summary(kubeconfig)
    print(render_summary(rows))
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from operators.main import run_operators

    return run_operators(
        namespaces=args.namespace,
        standalone=args.standalone,
        liveness=args.liveness,
        verbose=args.verbose,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from operators.demo import run_demo

    return run_demo(Path(args.state_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    crds = sub.add_parser("crds", help="generate crds/ from the API models")
    crds.add_argument("--root", default=str(REPO_ROOT))
    crds.add_argument("--check", action="store_true", help="fail if the files are stale")
    crds.set_defaults(func=cmd_crds)

    up = sub.add_parser("up", help="start the embedded control plane, operators, controllers")
    up.add_argument("--state-dir", default=".kubeloop")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=embedded.DEFAULT_PORT)
    up.add_argument("--timeout", type=float, default=60.0)
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop what `kubeloop up` started")
    down.add_argument("--state-dir", default=".kubeloop")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="summary of every kubeloop resource")
    status.add_argument("--state-dir", default=".kubeloop")
    status.add_argument("--kubeconfig", default=None)
    status.set_defaults(func=cmd_status)

    operator = sub.add_parser("operator", help="run all three operators (in-cluster entrypoint)")
    operator.add_argument("--standalone", action="store_true", help="no peering")
    operator.add_argument("--namespace", action="append", default=[])
    operator.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    operator.add_argument("--verbose", action="store_true")
    operator.set_defaults(func=cmd_operator)

    demo = sub.add_parser("demo", help="run the whole loop on the embedded default")
    demo.add_argument("--state-dir", default=".kubeloop")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EmbeddedError as error:
        print(f"kubeloop: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
