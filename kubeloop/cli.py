"""`kubeloop`: the command line. Thin: parse arguments, call the service, print."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kubeloop.embedded import launcher, services
from kubeloop.embedded.launcher import EmbeddedError, EmbeddedLayout
from kubeloop.sampledata.sample import DEFAULT_OUT as DEFAULT_DATA_DIR
from kubeloop.sampledata.sample import SAMPLE_DAYS, SAMPLE_ROWS
from operators import __main__ as operators_entry

REPO_ROOT = services.REPO_ROOT
# `kubeloop up`'s API server port when --port is not given (tests run the README's commands
# as written on a free port).
PORT_ENV = "KUBELOOP_PORT"


PEERING_CRDS = Path("manifests/crd/kopf/kopf.dev_peerings.yaml")


def crd_stream(root: Path) -> str:
    """Every CRD kubeloop installs as one YAML stream: the generated ones, then Kopf's peering."""
    from operators.api.crdgen import generated_files

    texts = list(generated_files().values())
    peering = root / PEERING_CRDS
    if peering.is_file():
        texts.append(peering.read_text())
    return "".join(f"---\n{text if text.endswith(chr(10)) else text + chr(10)}" for text in texts)


def cmd_crds(args: argparse.Namespace) -> int:
    from operators.api.crdgen import stale_files, write_crds

    root = Path(args.root)
    if args.stdout:
        # The upgrade path Helm lacks (it never upgrades crds/): pipe into
        # `kubectl apply --server-side -f -` (docs/deploy.md).
        sys.stdout.write(crd_stream(root))
        return 0
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


def cmd_up(args: argparse.Namespace) -> int:
    started = services.up(
        Path(args.state_dir),
        args.host,
        args.port,
        args.timeout,
        warn=lambda text: print(text, file=sys.stderr),
    )
    layout = started.layout
    kubeconfig = layout.kubeconfig.resolve()
    print(
        f"kubeloop is up: API server https://{args.host}:{args.port}, state in {layout.state_dir}"
    )
    print(f"\n  export KUBECONFIG={kubeconfig}\n")
    print("Then try (from this directory):")
    print("  kubeloop data              # the sample data examples/resources/ read")
    print("  kubectl get crds")
    print("  kubectl apply -f examples/resources/")
    print("  kubectl get featureviews,experiments,mlmodels")
    print("  kubeloop status")
    print(f"Logs: {layout.logs_dir}/   Stop with: kubeloop down")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    layout = EmbeddedLayout(Path(args.state_dir))
    stopped = launcher.stop_all(layout)
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from kubeloop.status import (
        collect_summary,
        render_components,
        render_endpoints,
        render_summary,
    )

    layout = EmbeddedLayout(Path(args.state_dir))
    record = launcher.read_supervisor_state(layout)
    if record:
        endpoints = render_endpoints(record)
        print(render_components(record, time.time()) + ("\n" + endpoints if endpoints else ""))
        print()
    kubeconfig = args.kubeconfig or (layout.kubeconfig if layout.kubeconfig.exists() else None)
    try:
        rows = collect_summary(kubeconfig)
    except Exception as error:  # the control plane may be restarting: say so, keep the table
        if not record:
            raise
        print(f"the API server did not answer: {type(error).__name__}: {error}"[:300])
        return 1
    print(render_summary(rows))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    layout = EmbeddedLayout(Path(args.state_dir))
    path = layout.logs_dir / f"{args.component}.log"
    if not path.is_file():
        known = sorted(p.stem for p in layout.logs_dir.glob("*.log"))
        raise EmbeddedError(
            f"no log for {args.component!r} in {layout.logs_dir}; there are: {', '.join(known)}"
        )
    text = path.read_text(errors="replace")
    if args.tail is not None:
        text = "".join(text.splitlines(keepends=True)[-args.tail :]) if args.tail > 0 else ""
    sys.stdout.write(text)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kubeloop.sampledata.sample import sample_config, write_sample_data

    config = sample_config(datetime.now(UTC), rows=args.rows, seed=args.seed, days=args.days)
    out = Path(args.out)
    totals = write_sample_data(config, out)
    print(
        f"wrote {totals['events']} events to {out / 'events'} and {totals['labels']} labels "
        f"to {out / 'labels'} ({config.start:%Y-%m-%d %H:%M} to {config.end:%Y-%m-%d %H:%M} UTC)"
    )
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    return operators_entry.run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from kubeloop.demo.run import run_demo

    return run_demo(Path(args.state_dir))


def _default_port() -> int:
    return int(os.environ.get(PORT_ENV) or launcher.DEFAULT_PORT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    crds = sub.add_parser("crds", help="generate crds/ from the API models")
    crds.add_argument("--root", default=str(REPO_ROOT))
    crds.add_argument("--check", action="store_true", help="fail if the files are stale")
    crds.add_argument(
        "--stdout",
        action="store_true",
        help="print every CRD (for `kubectl apply --server-side -f -`) instead of writing files",
    )
    crds.set_defaults(func=cmd_crds)

    up = sub.add_parser("up", help="start the embedded control plane, operators, controllers")
    up.add_argument("--state-dir", default=".kubeloop")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument(
        "--port", type=int, default=_default_port(), help="default: $KUBELOOP_PORT or 8443"
    )
    up.add_argument("--timeout", type=float, default=60.0)
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop what `kubeloop up` started")
    down.add_argument("--state-dir", default=".kubeloop")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="summary of every kubeloop resource")
    status.add_argument("--state-dir", default=".kubeloop")
    status.add_argument("--kubeconfig", default=None)
    status.set_defaults(func=cmd_status)

    data = sub.add_parser(
        "data", help="write the sample events and labels that examples/resources/ read"
    )
    data.add_argument("--out", default=str(DEFAULT_DATA_DIR), help="default: .kubeloop/data")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--rows", type=int, default=SAMPLE_ROWS)
    data.add_argument("--days", type=int, default=SAMPLE_DAYS, help="days of history, ending now")
    data.set_defaults(func=cmd_data)

    operator = sub.add_parser("operator", help="run all three operators (in-cluster entrypoint)")
    operators_entry.add_arguments(operator)
    operator.set_defaults(func=cmd_operator)

    logs = sub.add_parser("logs", help="print a component's log (supervisor, controlplane, …)")
    logs.add_argument("component")
    logs.add_argument("--state-dir", default=".kubeloop")
    logs.add_argument("--tail", type=int, default=None, metavar="N", help="the last N lines")
    logs.set_defaults(func=cmd_logs)

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
