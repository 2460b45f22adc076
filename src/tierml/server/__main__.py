"""``python -m tierml.server``: one control-plane process on uvicorn (``tierml serve`` runs
this). It binds its socket first (``--port 0``: any free port), opens the control plane,
then prints one line saying where it serves and starts answering; SIGINT or SIGTERM stop
it gracefully."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from tierml.api.fleet import admin_token
from tierml.api.workspace import open_workspace
from tierml.core.errors import TiermlError
from tierml.server.app import DEFAULT_TICK_S, create_app

DEFAULT_PORT = 8787


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tierml serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db", default=None, help="database URL (default: the workspace's)")
    parser.add_argument("--admin-token-file", type=Path, default=None)
    parser.add_argument("--tick-s", type=float, default=DEFAULT_TICK_S)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its migration chatter
    try:
        workspace = open_workspace(registry_url=args.db)
        token = admin_token(workspace, args.admin_token_file)
    except TiermlError as error:
        sys.stderr.write(error.one_line() + "\n")
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as error:
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {error.strerror}\n")
        return 2
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host

    def ready() -> None:
        said = {
            "url": f"http://{shown_host}:{port}",
            "host": host,
            "port": port,
            "admin_token_file": str(token.file),
            "admin_token_created": token.created,
            "tick_s": args.tick_s,
        }
        if args.format == "json":
            print(json.dumps(said), flush=True)
        else:
            made = " (new)" if token.created else ""
            print(f"serving on {said['url']}; admin token in {token.file}{made}", flush=True)

    app = create_app(workspace, admin_token=token.token, tick_s=args.tick_s, on_ready=ready)
    config = uvicorn.Config(
        app, log_level="info", access_log=args.access_log, timeout_graceful_shutdown=10
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
