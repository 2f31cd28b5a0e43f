"""Where a local workspace keeps its state, tracking store, environments, runs and logs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OWNER_ONLY_UMASK = 0o077  # what the engine and every process it starts create: 0700 folders, 0600 files


@dataclass(frozen=True)
class WorkspacePaths:
    root: Path  # the workspace folder, e.g. examples/iris/.mlspec

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{(self.root / 'mlflow.db').resolve()}"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def env(self, content_hash: str) -> Path:
        return self.root / "envs" / content_hash[:16]

    def run_dir(self, job: str, content_hash: str) -> Path:
        return self.root / "runs" / job / content_hash[:16]

    def data(self, name: str, content_hash: str) -> Path:
        return self.root / "datastore" / name / content_hash[:16]

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def endpoint(self, name: str) -> Path:
        return self.root / "endpoints" / name

    @property
    def supervisor_lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def proc(self) -> Path:
        """The working folder of the processes mlspec starts: a folder of mlspec's, never the user's."""
        return self.root / "proc"

    @property
    def interpreters(self) -> Path:
        """`python` scripts that run mlspec's own interpreter, for jobs without an environment of their own."""
        return self.root / "interpreters"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    def create(self) -> None:
        """The workspace's folders, owner-only (a workspace made before they were is made so here too): the state,
        the tracking store, keys and logs are for the user who runs mlspec alone."""
        for folder in (self.root, self.artifacts, self.logs, self.notebooks, self.proc):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# mlspec workspace state: not for version control\n*\n")


@contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created meanwhile, by this process and those it starts, are its user's alone."""
    previous = os.umask(OWNER_ONLY_UMASK)
    try:
        yield
    finally:
        os.umask(previous)
