"""`python -m mlspec.runtime.serving --model-uri models:/NAME/VERSION --tracking-uri URI --port N`: one replica."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import signal
import socket
import sys

from mlspec.runtime import internal_token
from mlspec.runtime.httpserver import bind, bind_unix

PROG = "mlspec-serve"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve one registered model over HTTP (MLflow scoring "
                                     "protocol and Open Inference Protocol v2). Exits 1 when the model is refused.")
    parser.add_argument("--model-uri", required=True,
                        help="models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME@latest, or an MLflow model folder")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                        help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket (created 0600, in an owner-only "
                        "folder) instead of --host/--port: then only its owner can reach the server")
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1)")
    parser.add_argument("--name", default="default", help="the deployment's name, for logs, metrics and v2 routes")
    parser.add_argument("--max-body-size", type=int, default=16 * 2**20, metavar="BYTES",
                        help="larger request bodies get 413 (default 16 MiB)")
    parser.add_argument("--request-timeout", type=float, default=5.0, metavar="S",
                        help="a prediction slower than this gets 504 (default 5)")
    parser.add_argument("--max-batch-size", type=int, default=64, metavar="ROWS",
                        help="most rows in one model call when concurrent requests are stacked (1: no stacking)")
    parser.add_argument("--max-wait", type=float, default=0.0, metavar="S",
                        help="how long a lone request waits for others to stack with (default 0: none)")
    parser.add_argument("--sha256", help="the expected model digest (default: the version's mlspec.sha256 tag)")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="serve a model with no digest to check (its files are unpickled unverified)")
    parser.add_argument("--device", default="auto", help="torch models: auto (a GPU when there is one), cpu, cuda:N")
    parser.add_argument("--drain-notice", type=float, default=0.0, metavar="S",
                        help="on SIGTERM, fail readiness and keep answering this long before the port closes, so a "
                             "gateway that probes it learns it is leaving before it refuses connections (default 0)")
    parser.add_argument("--code", metavar="DIR", help="the scoring script's folder (first on its import path)")
    parser.add_argument("--scoring-script", metavar="FILE", help="answer through this script's init() and "
                        "run(raw_data) (a path inside --code) instead of the model's predict")
    parser.add_argument("--input-schema", metavar="FILE|signature", help="with a scoring script: a JSON Schema "
                        "file each request body must satisfy, or 'signature' (the model's MLflow signature)")
    internal_token.add_arguments(parser, "requests without it (health probes aside) get 403, so only the gateway "
                                         "that adds it reaches this replica")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.max_body_size < 1 or args.request_timeout <= 0 or args.max_batch_size < 1:
        parser.error("--workers, --max-body-size, --request-timeout and --max-batch-size must be positive")
    if (args.code or args.input_schema) and not args.scoring_script:
        parser.error("--code and --input-schema go with --scoring-script")
    if args.drain_notice < 0:
        parser.error("--drain-notice must be 0 or more seconds")
    try:
        args.internal_token = internal_token.from_arguments(args)
    except internal_token.TokenError as error:
        parser.error(str(error))
    return args


def serve(sock: socket.socket, args: argparse.Namespace, first: bool = True) -> int:
    """Run one server process on the listening socket until it is stopped; 1 when the model was refused.

    Only the first worker takes connections while its model loads (answering 503, with the reason, until it is
    ready); the others start taking them once their own model is ready, so a worker that is still loading never
    answers while one that is ready could."""
    import uvloop

    from mlspec.runtime.serving.app import ServingApp, Settings
    from mlspec.runtime.serving.asgi import run_asgi

    settings = Settings(args.model_uri, args.tracking_uri, args.name, args.max_body_size, args.request_timeout,
                        args.max_batch_size, args.max_wait, args.allow_unverified, args.sha256, args.device,
                        args.internal_token, args.code, args.scoring_script, args.input_schema)

    async def run() -> int:
        stop = asyncio.Event()
        app = ServingApp(settings, on_fatal=stop.set)
        await run_asgi(sock, app, settings.max_body_size, stop, accept_after=None if first else app.settled,
                       notice=(app.drain, args.drain_notice))
        return app.exit_code

    return uvloop.run(run())


def supervise(sock: socket.socket, args: argparse.Namespace) -> int:
    """Fork `--workers` servers onto the one socket; when one fails (the model refused), stop all with its code."""
    children: set[int] = set()
    for index in range(args.workers):
        pid = os.fork()  # before anything starts threads or loops: numpy and uvloop are imported by the child
        if pid == 0:
            _exit(serve(sock, args, first=index == 0))
        children.add(pid)
    stopping = False

    def stop(sig: int, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not stopping:
            exit_code = code if code > 0 else 1
            stop(signal.SIGTERM)
    return exit_code


def _exit(code: int) -> None:
    """Exit without the interpreter's final garbage collection: with MLflow and scikit-learn loaded it takes
    seconds, which would delay every stop and restart of a replica. Exit handlers still run."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sock = bind_unix(args.unix, PROG) if args.unix else bind(args.host, args.port, PROG)
    return supervise(sock, args) if args.workers > 1 else serve(sock, args)


if __name__ == "__main__":
    _exit(main())
