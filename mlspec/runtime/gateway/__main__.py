"""`python -m mlspec.runtime.gateway --config gateway.json --host 127.0.0.1 --port 8080`: an endpoint's front door."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "mlspec-gateway"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Authenticate requests and route them to the "
                                     "replicas of an endpoint's deployments. The config file is re-read when it "
                                     "changes (checked every 0.5 s) or on SIGHUP.")
    parser.add_argument("--config", required=True, type=Path, help="gateway.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--internal-token-env", metavar="NAME",
                        help="the variable holding the endpoint's internal token, added to every forwarded request "
                             "(replicas started with the same option require it)")
    args = parser.parse_args(argv)

    import uvloop

    from mlspec.runtime.gateway.app import GatewayApp
    from mlspec.runtime.gateway.config import ConfigError
    from mlspec.runtime.heap import settle_heap
    from mlspec.runtime.httpserver import bind, serve
    from mlspec.runtime.internal_token import TokenError, from_env

    try:
        app = GatewayApp(args.config, from_env(args.internal_token_env) if args.internal_token_env else None)
    except (ConfigError, TokenError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    sock = bind(args.host, args.port, PROG)
    config = app.watcher.config
    print(f"{PROG}: endpoint {config.endpoint} on http://{args.host}:{args.port} (auth {config.auth}; "
          f"deployments {', '.join(f'{d.name} {d.weight}' for d in config.deployments.values())})",
          file=sys.stderr, flush=True)

    async def run() -> None:
        app.start()
        settle_heap()
        try:
            await serve(sock, app.handle, app.precheck, app.max_body)
        finally:
            app.stop()

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
