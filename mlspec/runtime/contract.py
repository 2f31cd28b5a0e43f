"""Contract files: the JSON an engine writes for a runtime process (a job or batch run), read back strictly, and the
small lifecycle every such process shares (stop on SIGTERM, write the result)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import ClassVar, Self

from pydantic import BaseModel, ValidationError

from mlspec.spec.base import Strict


class ContractFile(Strict):
    """A pydantic model read from and written to one JSON file; a bad file raises `error` naming every problem."""

    noun: ClassVar[str] = "contract"  # "job run", "batch run": what the messages call the file
    error: ClassVar[type[Exception]] = ValueError

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise cls.error(f"cannot read {cls.noun} file {path}: {error.strerror}") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in error.errors()
            )
            raise cls.error(f"{path} is not a valid {cls.noun}: {problems}") from None

    def dump(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.model_dump_json(indent=2), encoding="utf-8")


def stop_on_sigterm() -> threading.Event:
    """An event set by SIGTERM (sent by the engine and by `docker stop`), for the run to stop at a safe point."""
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    return stop


def write_result(result: BaseModel, path: Path) -> str | None:
    """Write the result JSON; the reason it could not be written, or None."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    except OSError as error:
        return f"cannot write the result to {path}: {error.strerror}"
    return None
