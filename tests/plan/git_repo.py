"""A real git repository holding a copy of examples/iris, with commits whose ids never change between runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
SPEC = "iris"  # the spec folder inside the repository


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.spec = root / SPEC
        self._ticks = 0

    def git(self, *args: str) -> str:
        # Fixed names and dates: the same edits give the same commit ids, so golden outputs can name them.
        self._ticks += 1
        stamp = f"2026-01-01T00:{self._ticks // 60:02d}:{self._ticks % 60:02d}Z"
        env = {**os.environ, "GIT_AUTHOR_NAME": "mlspec", "GIT_AUTHOR_EMAIL": "mlspec@localhost",
               "GIT_COMMITTER_NAME": "mlspec", "GIT_COMMITTER_EMAIL": "mlspec@localhost",
               "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp, "GIT_CONFIG_GLOBAL": os.devnull,
               "GIT_CONFIG_NOSYSTEM": "1"}
        done = subprocess.run(["git", "-C", str(self.root), *args], env=env, capture_output=True, text=True,
                              check=True)
        return done.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.spec / relative
        text = path.read_text()
        assert old in text, f"{old!r} is not in {relative}"
        path.write_text(text.replace(old, new, 1))

    def append(self, relative: str, text: str) -> None:
        with (self.spec / relative).open("a") as handle:
            handle.write(text)


def iris_repo(folder: Path) -> Repo:
    """A repository whose `main` holds examples/iris, checked out on a branch `change`."""
    repo = Repo(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE, repo.spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    repo.git("init", "-q", "-b", "main")
    repo.commit("iris")
    repo.git("checkout", "-q", "-b", "change")
    return repo
