"""Package a registered model as ONNX or skops: export, check on sample rows, then register it or write it out."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlspec.runtime.edge import onnx_export, skops_format
from mlspec.runtime.edge.check import Tolerance, check
from mlspec.runtime.edge.errors import PackageError
from mlspec.runtime.edge.original import Original, fetch
from mlspec.runtime.edge.samples import Sample, example_sample, first_sample
from mlspec.runtime.serving.edge_formats import ONNX_METADATA
from mlspec.runtime.serving.integrity import TAG, model_digest

Format = Literal["onnx", "skops"]
EXPERIMENT = "mlspec-models"  # where register_path logs the files of models no job produced
ONNX_REQUIREMENTS = ["onnxruntime>=1.17", "numpy"]


@dataclass
class Packaged:
    """A packaged model folder (an MLflow model) and what was checked; `version` once registered."""

    format: Format
    folder: Path
    sha256: str
    source: str  # NAME version V
    checked: str
    trusted: list[str] = field(default_factory=list)
    version: int | None = None
    alias: str | None = None


def package(model_uri: str, tracking_uri: str, fmt: Format, staging: Path, samples: Sequence[Path],
            tolerance: Tolerance, trust: Sequence[str] = ()) -> Packaged:
    """Build the packaged folder in `staging` and check it against the original; PackageError says why not."""
    original = fetch(model_uri, tracking_uri)
    sample = first_sample(samples, original.names, original.width, example_sample(original.folder))
    sample = Sample(original.shaped(sample.rows), sample.source, sample.columns)
    _check_original_takes(original, sample)
    folder = staging / f"{original.source.name}-{fmt}"
    folder.mkdir(parents=True)
    expected = original.outputs(sample.rows)
    trusted: list[str] = []
    if fmt == "onnx":
        exported = onnx_export.export(original, sample)
        summary = check(expected, onnx_export.outputs(exported, sample.rows), sample, tolerance, "ONNX export")
        _save_onnx(exported, original, folder)
    else:
        trusted = skops_format.save(original, folder, trust)
        exact = Tolerance(0.0, 0.0)
        summary = check(expected, skops_format.outputs(folder, trusted, sample.rows, original), sample, exact,
                        "skops file")
        _write_mlmodel(folder, original, {"skops": {"data": skops_format.FILE, "trusted": trusted,
                                                    "sklearn_version": _version("sklearn"),
                                                    "skops_version": _version("skops")}}, {})
    return Packaged(fmt, folder, model_digest(folder), original.source.label.removeprefix("model "), summary,
                    trusted)


def write_to(packaged: Packaged, destination: Path) -> None:
    """Copy the folder to `destination`, which must not hold anything yet."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise PackageError(f"{destination} already exists: choose a new path (nothing was overwritten)")
    shutil.copytree(packaged.folder, destination, dirs_exist_ok=True)
    packaged.folder = destination


def register(packaged: Packaged, tracking_uri: str, name: str, from_version: str | None,
             alias: str | None) -> None:
    """Log the folder into a run and register it as the next version of `name`, with its digest (and `alias`)."""
    from mlspec.runtime import tracking
    from mlspec.runtime.packaging import _beside_db, _create_version, set_alias

    experiment_id = tracking.ensure_experiment(tracking_uri, EXPERIMENT, _beside_db(tracking_uri))
    run_id = tracking.start_run(tracking_uri, experiment_id, {"mlspec.model": name, "mlspec.packaged_from":
                                f"{name}:{from_version}"}, run_name=f"package-{name}-{packaged.format}")
    status: tracking.RunStatus = "FAILED"
    try:
        client = tracking.client(tracking_uri)
        client.log_artifacts(run_id, str(packaged.folder), "model")
        source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/model"
        tags = {TAG: packaged.sha256, "mlspec.flavor": packaged.format, "mlspec.packaged_from": str(from_version),
                "mlspec.package_check": packaged.checked}
        packaged.version = _create_version(tracking_uri, name, source, run_id, tags)
        if alias:
            set_alias(client, name, alias, packaged.version)
            packaged.alias = alias
        status = "FINISHED"
    finally:
        tracking.end_run(tracking_uri, run_id, status)


def staging_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="mlspec-package-")


def _check_original_takes(original: Original, sample: Sample) -> None:
    try:
        original.outputs(sample.rows[:1])
    except Exception as error:
        raise PackageError(f"{original.source.label} does not take the sample rows from {sample.source} "
                           f"({sample.rows.shape[1]} columns): {type(error).__name__}: {error}; pass --sample FILE "
                           "with rows it takes") from None


def _save_onnx(exported: onnx_export.OnnxModel, original: Original, folder: Path) -> None:
    import onnx

    onnx_export.save(exported, folder / "model.onnx")
    # No python_function flavor: MLflow's pyfunc would hand the graph a DataFrame it does not take, so a server
    # without ONNX support refuses the model (no flavor it loads) rather than answer every request with an error.
    flavor = {"onnx": {"data": "model.onnx", "onnx_version": onnx.__version__,
                       "providers": ["CPUExecutionProvider"]}}
    _write_mlmodel(folder, original, flavor, {ONNX_METADATA: exported.metadata(original)})
    (folder / "requirements.txt").write_text("\n".join(ONNX_REQUIREMENTS) + "\n", encoding="utf-8")


def _write_mlmodel(folder: Path, original: Original, flavors: dict[str, Any], metadata: dict[str, Any]) -> None:
    """An MLmodel file with the original's input signature (or its column names as numbers)."""
    import yaml

    document: dict[str, Any] = {"flavors": flavors,
                                "metadata": {**metadata, "mlspec_packaged_from": original.source.label}}
    signature = original.mlmodel.get("signature")
    if signature and signature.get("inputs"):
        document["signature"] = {"inputs": signature["inputs"]}
    elif original.names:
        columns = [{"type": "double", "name": n, "required": True} for n in original.names]
        document["signature"] = {"inputs": json.dumps(columns)}
    (folder / "MLmodel").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _version(distribution: str) -> str:
    from importlib.metadata import version

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return version("scikit-learn" if distribution == "sklearn" else distribution)

