"""What a conda environment file declares, in the terms mlspec installs: pip packages, a Python version, the rest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Packages of a conda file that a virtualenv on a Python interpreter already provides.
PROVIDED = frozenset({"python", "pip"})
_PYTHON_PIN = re.compile(r"^python\s*={1,2}\s*(?P<version>3\.\d+)(?:\.[\d*]+)?\s*$")


@dataclass(frozen=True)
class CondaFile:
    """A conda environment file read for pip: its `pip:` section, the Python version it pins (``python=3.10``),
    and the conda packages a virtualenv cannot provide."""

    pip: tuple[str, ...]
    python: str | None
    conda_only: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> CondaFile:
        """Raises OSError or ValueError (bad YAML, or not a mapping) with the reason."""
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(data, dict):
            raise ValueError("it is not a mapping with 'dependencies'")
        pip: list[str] = []
        python: str | None = None
        conda_only: list[str] = []
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict):
                pip.extend(str(p) for p in dep.get("pip") or [])
                continue
            text = str(dep).split("::")[-1].strip()
            pinned = _PYTHON_PIN.match(text)
            if pinned:
                python = pinned.group("version")
            if package_name(text) not in PROVIDED:
                conda_only.append(str(dep))
        return cls(tuple(pip), python, tuple(conda_only))


def package_name(spec: str) -> str:
    """The package a conda or pip specifier names, lower case: 'numpy' for 'conda-forge::numpy>=1.26'."""
    for separator in ("=", "<", ">", "!", " ", "["):
        spec = spec.split(separator, 1)[0]
    return spec.split("::")[-1].strip().lower()
