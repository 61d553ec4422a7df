"""``python -m services.monitor --port N --data-dir DIR``: run the inference-log monitor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from contracts.auth import MONITOR_AUDIENCE, MONITOR_TOKEN_FILE_ENV
from contracts.storage import STORAGE_ENV
from services.monitor.config import AuthSettings, MonitorSettings
from services.monitor.service import run_forever


def parse_args(argv: list[str] | None = None) -> MonitorSettings:
    parser = argparse.ArgumentParser(prog="python -m services.monitor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--ingest-port", type=int, default=None, help="also take events on a fast listener"
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="SQLite state lives here")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=0.1,
        help="commit interval (s) for bad-input counters and expired calls; an ingest reply "
        "commits at once (group commit) and waits for it",
    )
    parser.add_argument("--retention-rows", type=int, default=200_000)
    parser.add_argument("--drift-interval", type=float, default=30.0)
    parser.add_argument(
        "--mlflow-tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="resolves runs:/ and models:/ reference URIs (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        "--prediction-log-uri",
        default=None,
        help="Parquet dataset of served predictions (any fsspec URI; default "
        "STORAGE/prediction-log, else DATA_DIR/predictions)",
    )
    parser.add_argument(
        "--storage",
        default=os.environ.get(STORAGE_ENV) or None,
        help=f"the pipelines' storage root (default ${STORAGE_ENV}): the prediction log goes "
        "under it, where Experiments and the KFP tasks read it",
    )
    parser.add_argument(
        "--no-prediction-log", action="store_true", help="do not keep the prediction log"
    )
    parser.add_argument("--prediction-log-retention-days", type=int, default=30)
    parser.add_argument(
        "--prediction-log-compaction-interval", type=float, default=30.0, help="seconds"
    )
    _auth_arguments(parser)
    args = parser.parse_args(argv)
    return MonitorSettings(
        auth=_auth_settings(args),
        host=args.host,
        port=args.port,
        ingest_port=args.ingest_port,
        data_dir=args.data_dir,
        flush_interval_s=args.flush_interval,
        retention_rows=args.retention_rows,
        drift_interval_s=args.drift_interval,
        mlflow_tracking_uri=args.mlflow_tracking_uri,
        prediction_log=not args.no_prediction_log,
        prediction_log_uri=args.prediction_log_uri,
        storage=args.storage,
        prediction_log_retention_days=args.prediction_log_retention_days,
        prediction_log_compaction_interval_s=args.prediction_log_compaction_interval,
    )


def _auth_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "authentication (on by default; see the README's Authentication section)"
    )
    group.add_argument(
        "--token-file",
        type=Path,
        default=os.environ.get(MONITOR_TOKEN_FILE_ENV) or None,
        help=f"the embedded bearer token (default ${MONITOR_TOKEN_FILE_ENV}; "
        "without it and without --kubernetes-auth, DATA_DIR/token is made, mode 0600)",
    )
    group.add_argument(
        "--kubernetes-auth",
        action="store_true",
        help="check other tokens with TokenReview and SubjectAccessReview",
    )
    group.add_argument("--kubeconfig", type=Path, default=None, help="default: in-cluster")
    group.add_argument("--audience", default=MONITOR_AUDIENCE)
    group.add_argument(
        "--operator",
        action="append",
        default=[],
        help="a username that may PUT configs and run evaluations (repeatable), e.g. "
        "system:serviceaccount:kubeloop-system:kubeloop-operator",
    )
    group.add_argument(
        "--network-ingest",
        action="store_true",
        help="take inference events without a token, for configured models only "
        "(KServe's agent sends no credentials: the NetworkPolicy guards the ingest port)",
    )
    group.add_argument("--feedback-rate", type=float, default=50.0, help="per client, per s")
    group.add_argument("--feedback-burst", type=float, default=200.0)
    group.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="turn authentication off (logged as a warning at start); never on a cluster",
    )


def _auth_settings(args: argparse.Namespace) -> AuthSettings:
    return AuthSettings(
        enabled=not args.insecure_no_auth,
        token_file=args.token_file,
        kubernetes=args.kubernetes_auth,
        kubeconfig=args.kubeconfig,
        audience=args.audience,
        operators=tuple(args.operator),
        network_ingest=args.network_ingest,
        feedback_rate_per_s=args.feedback_rate,
        feedback_burst=args.feedback_burst,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = parse_args(argv)
    try:
        import uvloop  # optional speed-up; in the lock through other packages

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run_forever(settings))


if __name__ == "__main__":
    main()
