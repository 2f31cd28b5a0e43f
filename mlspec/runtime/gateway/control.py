"""The gateway's control channel, on an owner-only Unix socket: PUT /config swaps the routing and answers once the
new replica set is in use; GET /stats and GET /health report. The socket's file mode is its authentication."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import orjson

from mlspec.runtime.gateway.answers import json_answer, wrong_method
from mlspec.runtime.gateway.config import ConfigError, keys_digest, parse, routing_digest
from mlspec.runtime.httpserver import Answer, Headers, Reply, Request

if TYPE_CHECKING:
    from mlspec.runtime.gateway.app import GatewayApp

MAX_CONFIG_BYTES = 16 * 2**20
_ROUTES = {b"/config": (b"PUT",), b"/stats": (b"GET",), b"/traffic": (b"GET",), b"/health": (b"GET",)}


class Control:
    def __init__(self, app: GatewayApp) -> None:
        self.app = app

    def max_body(self) -> int:
        return MAX_CONFIG_BYTES

    def precheck(self, path: bytes, headers: Headers) -> Answer | None:
        return None if path in _ROUTES else json_answer(404, {"error": "control routes: PUT /config, GET /stats, "
                                                                 "GET /traffic, GET /health"})

    def handle(self, request: Request, reply: Reply) -> None:
        allowed = _ROUTES.get(request.path)
        if allowed is None:
            reply(self.precheck(request.path, request.headers) or json_answer(404, {}))
        elif request.method not in allowed:
            reply(wrong_method(request.path, request.method, allowed))
        elif request.path == b"/config":
            reply(self.put_config(request.body))
        elif request.path == b"/stats":
            reply(json_answer(200, self.app.stats()))
        elif request.path == b"/traffic":  # the counts now: the end of a window `mlspec endpoint stats` takes
            reply(json_answer(200, self.app.traffic.snapshot()))
        else:
            self.app.handle(request, reply)

    def put_config(self, body: bytes) -> Answer:
        """Parse, then swap: an invalid config changes nothing. The swap is synchronous, so by the time this
        answers, every request routed from now on uses the new replica set."""
        try:
            config = parse(orjson.loads(body), "PUT /config")
        except orjson.JSONDecodeError as error:
            return json_answer(400, {"error": f"PUT /config: not JSON: {error}"})
        except ConfigError as error:
            return json_answer(400, {"error": str(error)})
        self.app.configure(config)
        print(f"mlspec-gateway: configuration taken from the control channel (deployments "
              f"{', '.join(f'{d.name} {d.weight}' for d in config.deployments.values())})",
              file=sys.stderr, flush=True)
        return json_answer(200, {"config": routing_digest(config), "keys": keys_digest(config.key_hashes)})

