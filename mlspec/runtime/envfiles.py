"""`python -m mlspec.runtime.envfiles COMMAND...`: writes the files `MLSPEC_FILES` carries, then becomes COMMAND.

A container with a read-only root filesystem cannot be given files by copying them in before it starts (Docker
refuses), so its configuration travels in one environment variable, a JSON object of absolute path -> text,
written to its tmpfs as it starts. The variable is removed before COMMAND runs, so nothing it starts inherits it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

ENV = "MLSPEC_FILES"
DIRECTORY = "/tmp/mlspec"  # where containers' files go: /tmp is a tmpfs in every mlspec container


def variable(files: dict[str, str]) -> str:
    """The ``MLSPEC_FILES=...`` entry of a container's environment that carries `files`."""
    return f"{ENV}={json.dumps(files, sort_keys=True, separators=(',', ':'))}"


def write_files(environ: MutableMapping[str, str]) -> list[Path]:
    """Write each file `environ[ENV]` names (readable by the user alone) and remove the variable."""
    files = json.loads(environ.pop(ENV, "") or "{}")
    if not isinstance(files, dict):
        raise ValueError(f"{ENV} must be a JSON object of absolute path -> text")
    written = []
    for name, text in files.items():
        path = Path(name)
        if not path.is_absolute() or not isinstance(text, str):
            raise ValueError(f"{ENV}: {name!r} must be an absolute path with text content")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python -m mlspec.runtime.envfiles COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        write_files(os.environ)
    except (ValueError, OSError) as error:
        print(f"mlspec: cannot write the container's files: {error}", file=sys.stderr)
        return 2
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
