"""The iris example moved onto an attached Docker host: a spec folder with the host and tracking server given."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "docker" / "specs" / "attached.yaml"
HOST = "ssh://ml@edge.example.com:2222"
TRACKING = "http://mlflow.example.com:5000"


def attached_spec(folder: Path, host: str = HOST, tracking_uri: str | None = TRACKING) -> Path:
    """FOLDER holding iris's code and data and the attached spec, naming `host` and `tracking_uri` (None: none)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("src", "data"):
        shutil.copytree(ROOT / "examples" / "iris" / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    text = SPEC.read_text(encoding="utf-8").replace(HOST, host)
    tracking = f'tracking: {{uri: "{TRACKING}"}}\n'
    text = text.replace(tracking, f'tracking: {{uri: "{tracking_uri}"}}\n' if tracking_uri else "")
    (folder / "mlspec.yaml").write_text(text, encoding="utf-8")
    return folder
