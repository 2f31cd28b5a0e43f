"""Where a local workspace keeps its state, tracking store, environments, runs and logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
        for folder in (self.root, self.artifacts, self.logs, self.notebooks, self.proc):
            folder.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# mlspec workspace state: not for version control\n*\n")
