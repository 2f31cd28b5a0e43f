"""`mlspec logs NAME [-f]`: a job's, batch endpoint's, endpoint's or instance's logs; an endpoint's replicas and
gateway at once, each line prefixed with its process, picking up replicas that a rollout starts."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlspec.cli.common import CommandError, local_engine, target_of
from mlspec.cli.output import EXIT_FAILED, EXIT_OK

POLL_S = 0.2
REDISCOVER_EVERY = 5  # polls between looks at the state for new processes: once a second


@dataclass
class _Source:
    name: str
    path: Path
    handle: IO[str] | None = None
    partial: str = field(default="")  # a line still being written


def _sources(engine: Any, name: str) -> dict[Path, str] | None:
    """Log file -> the name its lines are shown with; None when nothing of that name was ever deployed."""
    from mlspec.backends.local.handlers.batch import log_file
    from mlspec.backends.local.state import StateStore

    if not engine.paths.state_db.exists():
        return None
    store = StateStore(engine.paths.state_db)
    try:
        records = store.records()
        found: dict[Path, str] = {}
        known = False
        for kind in ("job", "endpoint", "compute"):
            record = records.get(f"{kind}/{name}")
            if record is None:
                continue
            known = True
            if record.outputs.get("log"):
                found.setdefault(Path(record.outputs["log"]).resolve(), name)
            for step, ran in record.outputs.get("steps", {}).items():  # a pipeline's: each step's log
                if ran.get("log"):
                    found.setdefault(Path(ran["log"]).resolve(), step)
            for row in store.processes(record.id):
                found.setdefault(Path(row.log).resolve(), _label(record.id, row.id))
    finally:
        store.close()
    batch_log = log_file(engine.paths, name)  # a batch endpoint's, there from its first run on
    if batch_log.exists():
        found.setdefault(batch_log.resolve(), name)
        known = True
    return found if known else None


def _label(owner: str, process_id: str) -> str:
    """A process's short name: `gateway`, `jupyter`, or `DEPLOYMENT-INDEX` for a replica (any generation)."""
    parts = process_id.removeprefix(owner + "/").split("#", 1)[0].split("/")
    return f"{parts[0]}-{parts[-1]}" if len(parts) >= 3 else "/".join(parts)


def logs(args: argparse.Namespace) -> int:
    if target_of(args) == "kubernetes":
        from mlspec.cli.cluster_commands import logs as cluster_logs

        return cluster_logs(args)
    if target_of(args) == "docker":
        from mlspec.cli.docker_logs import logs as docker_logs

        return docker_logs(args)
    engine = local_engine(args)
    sources = _sources(engine, args.name)
    if sources is None:
        if not engine.paths.state_db.exists():
            raise CommandError("nothing deployed yet: run `mlspec up`", EXIT_FAILED)
        raise CommandError(f"no logs for '{args.name}': name a job, an endpoint or a compute instance", EXIT_FAILED)
    if len(sources) == 1:  # a job or batch run: its log as it is, under a header like `tail`'s
        _single(next(iter(sources)), args.follow, args.tail)
        return EXIT_OK
    _prefixed(engine, args, sources)
    return EXIT_OK


def _single(path: Path, follow: bool, tail: int) -> None:
    while not path.exists():  # -f on a job that has not written its log yet
        if not follow:
            return
        time.sleep(POLL_S)
    with path.open(errors="replace") as handle:
        lines = handle.readlines()
        print(f"==> {path} <==")
        sys.stdout.writelines(lines[-tail:] if tail else lines)
        sys.stdout.flush()
        while follow:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(POLL_S)


def _prefixed(engine: Any, args: argparse.Namespace, sources: dict[Path, str]) -> None:
    """Every log at once, like `docker compose logs`: `name | line`. With -f, new processes' logs join in."""
    followed: dict[Path, _Source] = {}
    first, polls = True, 0
    while True:
        for path, name in sources.items():
            if path not in followed and path.exists():
                followed[path] = _Source(name, path, path.open(errors="replace"))
                if first and args.tail:
                    _skip_to_tail(followed[path], args.tail)
        width = max((len(s.name) for s in followed.values()), default=0)
        for source in followed.values():
            _drain(source, width, final=not args.follow)
        sys.stdout.flush()
        if not args.follow:
            break
        first, polls = False, polls + 1
        time.sleep(POLL_S)
        if polls % REDISCOVER_EVERY == 0:
            sources = {**sources, **(_sources(engine, args.name) or {})}  # replicas a rollout started since
    for source in followed.values():
        if source.handle:
            source.handle.close()


def _skip_to_tail(source: _Source, tail: int) -> None:
    assert source.handle is not None
    lines = source.handle.readlines()
    source.handle.seek(0)
    skip = max(0, len(lines) - tail)
    for _ in range(skip):
        source.handle.readline()


def _drain(source: _Source, width: int, final: bool) -> None:
    assert source.handle is not None
    for line in source.handle:
        text = source.partial + line
        if not text.endswith("\n") and not final:
            source.partial = text  # the writer is mid-line: show it whole, later
            continue
        source.partial = ""
        sys.stdout.write(f"{source.name:<{width}} | {text.rstrip(chr(10))}\n")
