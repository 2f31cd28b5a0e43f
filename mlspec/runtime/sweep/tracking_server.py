"""The workspace's MLflow served over HTTP to a sweep's trials, on 127.0.0.1 behind a password made per sweep.

A trial's MLflow client pointed at the sqlite file itself would start a SQLAlchemy store in every trial process
(imports and schema checks: seconds of each trial); over HTTP it starts none, and the store stays warm here.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any

from mlspec.runtime.keys import key_hash
from mlspec.runtime.tracking_proxy import authorized

USER = "mlspec-trial"


class TrialTracking:
    """A threaded MLflow server for one sweep's trials; `close()` stops it."""

    def __init__(self, store_uri: str) -> None:
        from mlflow.server import app
        from mlflow.server.handlers import initialize_backend_stores
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log(self, *args: Any) -> None:
                """Trials log a metric many times a second: no line per request."""

        initialize_backend_stores(store_uri, store_uri)
        self.password = secrets.token_urlsafe(24)
        self._server = make_server("127.0.0.1", 0, _require_password(app, key_hash(self.password)), threaded=True,
                                   request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="trial-tracking", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def env(self) -> dict[str, str]:
        """What a trial's MLflow client needs besides the URI."""
        return {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": self.password}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _require_password(app: Any, password_hash: str) -> Callable[..., Iterable[bytes]]:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not authorized(environ.get("HTTP_AUTHORIZATION"), USER, password_hash):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"unauthorized\n"]
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return guarded
