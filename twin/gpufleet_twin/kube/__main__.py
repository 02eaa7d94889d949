"""``python -m gpufleet_twin.kube serve --state-dir DIR [--port-file FILE] [--port N] [--persist]``.

Serves the emulated API server (HTTPS on 127.0.0.1) in the foreground until SIGINT or SIGTERM. Once
the port is bound it writes ``DIR/kubeconfig`` (server URL, CA, bearer token), ``DIR/token``,
``DIR/ca.crt`` with the serving certificate and key, and the port number to the port file (default
``DIR/apiserver.port``; written atomically, so a reader polling for it never sees half a number). On
exit the port file is removed. Token and certificate are reused across restarts (pass ``--port`` to
keep the URL too); with ``--persist`` the cluster itself is saved to ``DIR/cluster.json`` on exit and
loaded on start.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cluster import Cluster
from .server import ApiServer, load_snapshot, save_snapshot


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpufleet_twin.kube", description="Emulated Kubernetes API server of the fleet twin.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API in the foreground until SIGINT/SIGTERM")
    serve.add_argument("--state-dir", required=True, type=Path, help="where kubeconfig, token and (with --persist) cluster.json live")
    serve.add_argument("--port-file", type=Path, help="write the bound port here (default: STATE_DIR/apiserver.port)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--token", help="bearer token to require (default: reuse STATE_DIR/token or generate one)")
    serve.add_argument("--no-auth", action="store_true", help="accept unauthenticated requests")
    serve.add_argument("--no-tls", action="store_true", help="plain HTTP (kubectl and helm then send no token: use with --no-auth)")
    serve.add_argument("--persist", action="store_true", help="load STATE_DIR/cluster.json at start, save it at exit")
    serve.add_argument("--no-instant-pods", action="store_true", help="leave bound pods Pending (for node agents that play kubelet)")
    serve.add_argument("--pod-termination-seconds", type=float, default=0.0, help="keep deleted pods Terminating this long")
    serve.add_argument("--verbose", "-v", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    port_file: Path = args.port_file or state_dir / "apiserver.port"
    snapshot = state_dir / "cluster.json"

    cluster = Cluster(instant_pod_start=not args.no_instant_pods, pod_termination_seconds=args.pod_termination_seconds)
    if args.persist:
        load_snapshot(cluster, snapshot)
    api = ApiServer(
        cluster,
        host=args.host,
        port=args.port,
        token=args.token,
        require_auth=not args.no_auth,
        state_dir=state_dir,
        port_file=port_file,
        tls=not args.no_tls,
    )
    print(f"serving the emulated Kubernetes API; kubeconfig: {api.kubeconfig_path}, port: {port_file}", file=sys.stderr, flush=True)
    try:
        api.serve_forever()
    finally:
        if args.persist:
            save_snapshot(cluster, snapshot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
