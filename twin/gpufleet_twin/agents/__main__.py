"""``python -m gpufleet_twin.agents serve --state-dir DIR --config FILE``.

Serves the emulated API server (HTTPS on 127.0.0.1) with one node agent per fleet node until SIGINT
or SIGTERM. ``FILE`` is the JSON ``gpufleet-sim up`` writes: ``{"nodes": [NodeAgentSpec...],
"timing": {AgentTiming...}}``. The server writes ``DIR/kubeconfig``, ``DIR/token``, ``DIR/ca.crt``
and the bound port to ``DIR/apiserver.port`` (see ``gpufleet_twin.kube.__main__``). It also stops
by itself once ``FILE`` is gone (a work directory deleted without ``gpufleet-sim down``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .fleet import FleetAgents, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpufleet_twin.agents", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the cluster and run the node agents until SIGINT/SIGTERM")
    serve.add_argument("--state-dir", required=True, type=Path)
    serve.add_argument("--config", required=True, type=Path, help="nodes and timing (JSON)")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    nodes, timing = load_config(args.config)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    fleet = FleetAgents(nodes, timing, state_dir=args.state_dir, port_file=args.state_dir / "apiserver.port", port=args.port,
                        keepalive=args.config)
    print(f"serving the fleet twin's cluster for {len(nodes)} node(s); kubeconfig: {fleet.api.kubeconfig_path}", file=sys.stderr, flush=True)
    fleet.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
