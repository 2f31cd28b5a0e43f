"""`python -m mlspec.runtime.gateway --config gateway.json --host 127.0.0.1 --port 8080 [--control SOCKET]`: an
endpoint's front door."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlspec.runtime import internal_token

PROG = "mlspec-gateway"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Authenticate requests and route them to the "
                                     "replicas of an endpoint's deployments. The config file is read at start and "
                                     "on SIGHUP; a new config is PUT on the control socket.")
    parser.add_argument("--config", required=True, type=Path, help="gateway.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    internal_token.add_arguments(parser, "added to every forwarded request (replicas started with it require it)")
    parser.add_argument("--key-hashes-file", metavar="PATH", type=Path,
                        help="SHA-256 digests of accepted keys, one a line, besides the config's key_hashes (a "
                             "mounted Secret, so the config can be public); read again with the config on SIGHUP")
    parser.add_argument("--history", metavar="PATH", type=Path,
                        help="append time-stamped snapshots of the traffic counts here (JSON lines), for windowed "
                             "stats")
    parser.add_argument("--control", metavar="SOCKET", help="Unix socket of the control channel (PUT /config, "
                        "GET /stats), created 0600; its folder must be owner-only (0700)")
    args = parser.parse_args(argv)

    import uvloop

    from mlspec.runtime.gateway.app import GatewayApp
    from mlspec.runtime.gateway.config import ConfigError
    from mlspec.runtime.gateway.control import Control
    from mlspec.runtime.heap import settle_heap
    from mlspec.runtime.httpserver import bind, bind_unix, listen, serve
    try:
        app = GatewayApp(args.config, internal_token.from_arguments(args), args.key_hashes_file, args.history)
    except (ConfigError, internal_token.TokenError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    sock = bind(args.host, args.port, PROG)
    control_sock = bind_unix(args.control, PROG) if args.control else None
    config = app.watcher.config
    print(f"{PROG}: endpoint {config.endpoint} on http://{args.host}:{args.port} (auth {config.auth}; "
          f"deployments {', '.join(f'{d.name} {d.weight}' for d in config.deployments.values())})",
          file=sys.stderr, flush=True)

    async def run() -> None:
        app.start()
        control = None
        if control_sock is not None:
            channel = Control(app)
            control = await listen(control_sock, channel.handle, channel.precheck, channel.max_body)
        settle_heap()
        try:
            await serve(sock, app.handle, app.precheck, app.max_body)
        finally:
            if control is not None:
                control.close()
            app.stop()

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
