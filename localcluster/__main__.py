"""`python -m localcluster --data-dir DIR --port N`: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .server import LocalCluster


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument(
        "--data-dir", required=True, help="directory for state.db, token and kubeconfig"
    )
    parser.add_argument("--port", type=int, default=6443, help="TCP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    cluster = LocalCluster(args.data_dir, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await cluster.start()
    print(f"localcluster ready at {cluster.url}; kubeconfig: {cluster.kubeconfig}", flush=True)
    await stop.wait()
    await cluster.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except (RuntimeError, OSError) as error:  # data dir in use, port taken: say so, no traceback
        raise SystemExit(f"localcluster: {error}") from None


if __name__ == "__main__":
    main()
