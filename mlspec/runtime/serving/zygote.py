"""`python -m mlspec.runtime.serving.zygote --socket PATH`: a warm process that forks ready-to-load replicas.

Importing Python, numpy, scikit-learn and the server costs a replica most of its start; a zygote pays it once per
environment (interpreter) and forks a replica per request, which then only resolves, verifies and loads its
model. A request is one JSON line on the Unix socket: {"argv": [scoring server arguments], "env": {NAME: VALUE},
"log": PATH, "cwd": PATH}; the answer is {"pid": N} or {"error": "..."}. With "module": "mlspec.runtime.nodes" the
argv is the node launcher's (a replica within CPU and memory limits): the forked child runs the launcher, which
forks its node, the scoring server, from the same warm process rather than starting it afresh.

Each replica is forked twice (the first child forks it, answers with its pid and exits), so it is an orphan at once:
the kernel hands it to the nearest subreaper above the zygote, which the local engine's supervisor is. That one,
not the zygote, then waits for it and learns its real exit status, as it does for the processes it starts itself.

A forked child's /proc/PID/environ shows the bytes of its parent's initial environment, and that is where the
local engine reads who a process is (its MLSPEC_* marks). So the zygote keeps its MLSPEC_* variables last in
that block, followed by a padding variable (re-executing itself once to arrange this), and each child rewrites
that tail in place with its own marks: its /proc entry then names it, not the zygote. Each child leads its own
process group, so stopping it by group stops it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import signal
import socket
import sys
from pathlib import Path

PAD_VAR = "MLSPEC_ZYGOTE_PAD"
PAD_BYTES = 8192  # room for a child's marks and extra variables
OWN_PREFIX = "MLSPEC_"
PR_SET_PDEATHSIG = 1
SERVER = "mlspec.runtime.serving"
LAUNCHER = "mlspec.runtime.nodes"
PRELOAD = ("numpy", "orjson", "uvloop", "yaml", "sklearn.base", "sklearn.linear_model", "sklearn.pipeline",
           "mlspec.runtime.serving.app", "mlspec.runtime.serving.loading", "mlspec.runtime.serving.__main__",
           LAUNCHER, "mlspec.runtime.serving.forked_node")


def _environment_block() -> tuple[int, int]:
    """Where this process's initial environment lies in its memory (/proc/self/stat fields 50 and 51)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[47]), int(fields[48])


def _tail_layout(environ: dict[str, str]) -> list[tuple[str, str]]:
    """The environment in the order this zygote needs: others first, then MLSPEC_* marks, then the padding."""
    others = [(k, v) for k, v in environ.items() if not k.startswith(OWN_PREFIX)]
    marks = [(k, v) for k, v in environ.items() if k.startswith(OWN_PREFIX) and k != PAD_VAR]
    return [*others, *marks, (PAD_VAR, "x" * PAD_BYTES)]


def arranged() -> bool:
    """Whether the initial environment block ends with the MLSPEC_* marks and the padding, as laid out here."""
    start, end = _environment_block()
    block = ctypes.string_at(start, end - start)
    wanted = b"".join(f"{k}={v}".encode() + b"\0" for k, v in _tail_layout(dict(os.environ)))
    return block.rstrip(b"\0") == wanted.rstrip(b"\0")


def rewrite_marks(env: dict[str, str | None]) -> None:
    """In a forked child: its own marks (and extra variables) in place of the zygote's, in the block that
    /proc/PID/environ shows and in os.environ (a None value removes that mark). The bytes before the marks stay
    where they are, so the C library's pointers to them stay valid; the marks get fresh copies through putenv."""
    start, end = _environment_block()
    block = ctypes.string_at(start, end - start)
    offset = _first_mark(block)
    merged: dict[str, str | None] = {k: v for k, v in os.environ.items() if k.startswith(OWN_PREFIX) and k != PAD_VAR}
    merged.update(env)
    marks = {k: v for k, v in merged.items() if v is not None}
    tail = b"".join(f"{k}={v}".encode() + b"\0" for k, v in marks.items())
    if offset + len(tail) > len(block):
        raise OSError(f"the marks need {len(tail)} bytes; the zygote left {len(block) - offset}")
    for name, value in merged.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value  # putenv: the C library now points at a copy, not at the bytes rewritten below
    os.environ.pop(PAD_VAR, None)
    ctypes.memmove(start + offset, tail, len(tail))
    ctypes.memset(start + offset + len(tail), 0, len(block) - offset - len(tail))


def _first_mark(block: bytes) -> int:
    position = 0
    for entry in block.split(b"\0"):
        if entry.startswith(OWN_PREFIX.encode()) and b"=" in entry:
            return position
        position += len(entry) + 1
    raise OSError("the zygote's environment has no MLSPEC_* marks at its end")


def _child(request: dict[str, object], listener: socket.socket, connection: socket.socket) -> None:
    """The first child: forks the replica, answers with its pid and exits, leaving the replica an orphan."""
    code = 1
    try:
        listener.close()
        pid = os.fork()
        if pid == 0:
            _replica(request, connection)
        print(f"mlspec-zygote: forked replica {pid} ({_mark(request)})", file=sys.stderr, flush=True)
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        code = 0
    except BaseException as error:  # never back into the zygote's loop
        with contextlib.suppress(OSError):
            connection.sendall(json.dumps({"error": f"cannot fork: {error}"}).encode() + b"\n")
    finally:
        os._exit(code)


def _mark(request: dict[str, object]) -> str:
    env = request.get("env")
    return str(env.get("MLSPEC_PROCESS_ID", "?")) if isinstance(env, dict) else "?"


def _replica(request: dict[str, object], connection: socket.socket) -> None:
    """The forked replica: its own session, marks, folder and output, then the scoring server as if started afresh."""
    code = 1
    try:
        connection.close()
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        env = request.get("env") or {}
        assert isinstance(env, dict)
        rewrite_marks({str(k): str(v) for k, v in env.items()})
        cwd = request.get("cwd")
        if isinstance(cwd, str):
            os.chdir(cwd)
        log = request.get("log")
        if isinstance(log, str):
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        argv = request.get("argv")
        assert isinstance(argv, list)
        if request.get("module", SERVER) == LAUNCHER:
            from mlspec.runtime.nodes import main as launch
            from mlspec.runtime.serving.forked_node import forked_node

            sys.argv = [LAUNCHER, *map(str, argv)]
            code = launch([str(arg) for arg in argv], spawn=forked_node)
        else:
            from mlspec.runtime.serving.__main__ import main

            sys.argv = ["mlspec-serve", *map(str, argv)]
            code = main([str(arg) for arg in argv])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException as error:  # a child must never return into the zygote's loop
        print(f"mlspec-zygote: replica failed to start: {error}", file=sys.stderr)
    finally:
        from mlspec.runtime.serving.__main__ import _exit

        _exit(code)


def serve(path: Path) -> None:
    """Answer fork requests on the Unix socket until stopped; the short-lived first children are reaped by the
    kernel (SIGCHLD ignored), the replicas by whoever inherits them."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Bound and listening under another name first: the socket appears at `path` only once it takes requests.
    staging = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)
    try:
        listener.bind(str(staging))
    finally:
        os.umask(old_mask)
    listener.listen(64)
    os.replace(staging, path)
    print(f"mlspec-zygote: ready on {path} (pid {os.getpid()})", file=sys.stderr, flush=True)
    while True:
        connection, _ = listener.accept()
        with connection:
            try:
                request = json.loads(connection.makefile("rb").readline())
                if not isinstance(request, dict) or not isinstance(request.get("argv"), list):
                    raise ValueError("a request is {\"argv\": [...], \"env\": {...}, \"log\": PATH}")
            except ValueError as error:
                connection.sendall(json.dumps({"error": str(error)}).encode() + b"\n")
                continue
            if os.fork() == 0:
                _child(request, listener, connection)


def fork_replica(path: str | os.PathLike[str], argv: list[str], env: dict[str, str], log: str | None = None,
                 timeout: float = 5.0, cwd: str | None = None, module: str = SERVER) -> int:
    """Ask the zygote at `path` for a replica (`module`: the scoring server, or the node launcher running it); its
    pid. Raises OSError when the zygote cannot do it."""
    request = {"module": module, "argv": argv, "env": env, "log": log, "cwd": cwd}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(os.fspath(path))
        client.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(client.makefile("rb").readline() or b"{}")
    if "pid" not in answer:
        raise OSError(f"the zygote at {path} refused: {answer.get('error', 'no answer')}")
    return int(answer["pid"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlspec-zygote", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to take requests on")
    parser.add_argument("--parent", type=int, metavar="PID",
                        help="stop when this process (the one that started the zygote) exits")
    args = parser.parse_args(argv)
    if args.parent is not None:  # kept across the re-exec below; forked children do not inherit it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != args.parent:
            sys.exit(0)  # it is gone already
    if not arranged():  # once, before anything is imported: marks last, then room for a child's own
        if PAD_VAR in os.environ:
            sys.exit("mlspec-zygote: error: cannot arrange the environment so that replicas carry their own marks")
        # -P as the engine starts its modules: no file in the working folder can stand in for one of them.
        os.execve(sys.executable, [sys.executable, "-P", "-m", "mlspec.runtime.serving.zygote", *sys.argv[1:]],
                  dict(_tail_layout(dict(os.environ))))
    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(module)
    # What was imported stays out of every later collection: a child's collector never walks (and so never copies)
    # the pages it shares with the zygote.
    gc.collect()
    gc.freeze()
    serve(args.socket)


if __name__ == "__main__":
    main()
