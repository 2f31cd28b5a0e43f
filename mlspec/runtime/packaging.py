"""Turn a job's model outputs into MLflow models, log them to the run and register them as new, hash-tagged versions.

What a job may leave in a model output folder, and what becomes of it:

- an MLflow model (an `MLmodel` file, at the top or in one sub-folder): logged byte for byte;
- a scikit-learn `*.joblib` / `*.pkl` / `*.pickle`: loaded here and re-saved with `mlflow.sklearn.save_model`
  (cloudpickle). Re-saving is the sound way: the model bytes and the scikit-learn version the MLmodel records
  then come from the same library, and every MLflow (2.12 onwards) can load the result, where copying the file
  unread would have to guess the version it was pickled with, and joblib's format is not one MLflow's loader
  reads. A version mismatch between the job and this process is reported as a warning;
- a TorchScript `*.pt` / `*.pth`: saved with `mlflow.pytorch.save_model`, which keeps it TorchScript at
  `data/model.pth`, so mlspec's server can `torch.jit.load` it and `mlflow.pyfunc` can load it too;
- a torch state dict plus `loader: 'module:function'`: the net is built from the code folder, the weights
  loaded (`weights_only`: no code runs), then scripted to TorchScript as above; a net that cannot be scripted
  is saved as a pickled module with the code modules it came from (`code_paths`).

Every registered version carries `mlspec.sha256` = `model_digest` of the logged folder, so a server can check
the files before it unpickles anything.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlspec.runtime.formats import is_torchscript
from mlspec.runtime.jobrun import JobRun, JobRunError, OutputBinding
from mlspec.runtime.serving.integrity import SOURCE_TAG, TAG, file_sha256, listing_digest, model_digest
from mlspec.spec.job import Flavor
from mlspec.spec.model import Signature

SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
TORCH_SUFFIXES = (".pt", ".pth")
MLMODEL = "MLmodel"
TORCHSCRIPT_PATH = "data/model.pth"  # where mlflow.pytorch.save_model writes a ScriptModule
READY_TIMEOUT_S = 300.0

# sys.path, sys.modules and the warnings filters belong to the whole process: threads of the local engine take
# turns building models (a fraction of a second each), and each job's modules are forgotten afterwards so two
# jobs' `model.py` never meet.
_BUILD_LOCK = threading.Lock()

TorchFormat = Literal["torchscript", "pickle"]


class RegisteredModel(BaseModel):
    """One registered model version, as the result JSON and the engine's state record it."""

    name: str
    version: int
    source_uri: str = Field(description="Where the version's files are (the run's artifacts).")
    sha256: str = Field(description="model_digest of those files.")
    flavor: Flavor
    output: str | None = Field(None, description="The job output it came from; None: registered from a path.")
    aliases: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    run_id: str | None = Field(None, description="The run that registered the version (an earlier one's, when the "
                                                 "same files reused it).")
    reused: bool = Field(False, description="An existing version with identical files: its sha256 was read back "
                                            "from the registry, not computed from files just logged.")


@dataclass(frozen=True, slots=True)
class Found:
    """What an output folder holds: an MLflow model folder, or a plain model file of a flavor."""

    kind: Literal["mlmodel", "sklearn", "torchscript", "state_dict"]
    path: Path
    flavor: Flavor


@dataclass(slots=True)
class _Built:
    """An MLflow model folder ready to log, with what the registered version should say about it."""

    binding: OutputBinding
    folder: Path
    flavor: Flavor
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def find_model(output_name: str, output: OutputBinding) -> Found:
    """Decide what the output holds, from its files and the declared flavor; a JobRunError says what was found."""
    return _find(f"output '{output_name}' ({output.path})", output)


def _find(where: str, output: OutputBinding) -> Found:
    root = Path(output.path)
    if not root.exists():
        raise JobRunError(f"{where} does not exist: nothing was written there")
    if root.is_dir():
        mlmodel = _find_mlmodel(root, where)
        if mlmodel is not None:
            return Found("mlmodel", mlmodel, _mlmodel_flavor(mlmodel, output.flavor, where))
    if output.flavor == "pyfunc":
        raise JobRunError(f"{where}: flavor pyfunc needs an MLflow model (an MLmodel file); found {_listing(root)}")
    suffixes = {"sklearn": SKLEARN_SUFFIXES, "torch": TORCH_SUFFIXES, None: SKLEARN_SUFFIXES + TORCH_SUFFIXES}[
        output.flavor
    ]
    if root.is_file():
        candidates = [root] if root.suffix.lower() in suffixes else []
    else:
        candidates = sorted(
            p for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in suffixes and not _hidden(p.relative_to(root))
        )
    wanted = f"an MLmodel file or {' / '.join('*' + s for s in suffixes)}"
    if not candidates:
        raise JobRunError(f"{where} holds no model: expected {wanted}; found {_listing(root)}")
    if len(candidates) > 1:
        names = ", ".join(p.relative_to(root).as_posix() for p in candidates)
        raise JobRunError(f"{where} holds several model files ({names}): keep one, or save an MLflow model")
    path = candidates[0]
    if path.suffix.lower() in TORCH_SUFFIXES or output.flavor == "torch":
        if is_torchscript(path):
            return Found("torchscript", path, "torch")
        if not output.loader:
            raise JobRunError(
                f"{where}: {path.name} is not TorchScript (a state dict?); declare loader: 'module:function' "
                "returning the network, or save torch.jit.script(model)"
            )
        return Found("state_dict", path, "torch")
    return Found("sklearn", path, "sklearn")


# What registering a flavor imports: seconds on a cold process, which `prewarm` spends while the job runs.
_PREWARM: dict[str | None, tuple[str, ...]] = {
    "sklearn": ("joblib", "sklearn.base", "cloudpickle", "mlflow.pyfunc", "mlflow.sklearn"),
    "torch": ("torch", "cloudpickle", "mlflow.pyfunc", "mlflow.pytorch"),
    "pyfunc": ("mlflow.pyfunc",),
    None: ("mlflow.pyfunc",),
}
# save_model checks the requirements against every installed distribution, mapped once per process (over a
# second). A private MLflow helper: if it moves, registration just pays that second itself.
_REQUIREMENTS_MAP = "mlflow.utils.requirements_utils:_init_packages_to_modules_map"
# Each step is taken by one thread per process: jobs starting together must not all import (or map) the same.
_PREWARM_CLAIMED: set[str] = set()
_PREWARM_LOCK = threading.Lock()


def prewarm(run: JobRun) -> threading.Thread | None:
    """Import what registering the run's declared flavors will need, in a background thread, while the command
    runs (the runner only waits then). Optional: registration imports them anyway."""
    wanted = [m for o in run.outputs.values() if o.register_as for m in (*_PREWARM[o.flavor], _REQUIREMENTS_MAP)]
    with _PREWARM_LOCK:
        steps = [step for step in dict.fromkeys(wanted) if step not in _PREWARM_CLAIMED]
        _PREWARM_CLAIMED.update(steps)
    if not steps:
        return None

    def load() -> None:
        for step in steps:
            module, _, function = step.partition(":")
            # Not installed here: registration reports it later, naming the model.
            with contextlib.suppress(Exception):
                loaded = importlib.import_module(module)
                if function:
                    getattr(loaded, function)()

    thread = threading.Thread(target=load, name=f"prewarm-{run.job}", daemon=True)
    thread.start()
    return thread


def register_outputs(tracking_uri: str, run_id: str, run: JobRun) -> list[RegisteredModel]:
    """Package, log and register every output with `register_as`; nothing is registered when any one is unusable."""
    wanted = {name: output for name, output in run.outputs.items() if output.register_as}
    if not wanted:
        return []
    metadata = {"mlspec_job": run.job, "mlspec_hash": run.content_hash}
    os.makedirs(run.workdir, exist_ok=True)
    digests = {name: source_digest(output.path) for name, output in wanted.items()}
    known = {name: _known_version(tracking_uri, output, digests[name]) for name, output in wanted.items()}
    with tempfile.TemporaryDirectory(dir=run.workdir, prefix=".package-") as staging:
        # Build everything first: a bad second output must not leave the first one registered. Files identical to
        # a registered version's need no build: that version is reused.
        with _BUILD_LOCK:
            built = {
                name: _build(f"output '{name}' ({output.path})", output, run.code, metadata, Path(staging) / name)
                for name, output in wanted.items() if known[name] is None
            }
        tags = {"mlspec.job": run.job, "mlspec.hash": run.content_hash}
        registered = []
        for name, output in wanted.items():
            existing = known[name]
            if existing is not None:
                registered.append(_reuse(tracking_uri, run_id, output, existing, name))
                continue
            registered.append(_log_and_register(
                tracking_uri, run_id, built[name], f"models/{name}",
                {**tags, "mlspec.output": name, SOURCE_TAG: digests[name]}, name))
        return registered


def source_digest(path: str | os.PathLike[str]) -> str:
    """What a model was registered from, by content: `model_digest` of a folder; a file as a one-entry listing."""
    source = Path(path)
    if source.is_dir():
        return model_digest(source)
    if not source.is_file():
        return ""  # nothing there: building the model says so, naming the place
    return listing_digest([(source.name, file_sha256(source))])


def _known_version(tracking_uri: str, output: OutputBinding, digest: str) -> Any | None:
    """A ready version of the output's model registered from identical files (and of the declared flavor)."""
    from mlspec.runtime.tracking import client

    name = output.register_as
    if not digest:
        return None
    try:
        versions = client(tracking_uri).search_model_versions(f"name='{name}' and tag.`{SOURCE_TAG}`='{digest}'")
    except Exception:  # no such model yet
        return None
    usable = [v for v in versions if v.status == "READY" and v.tags.get(TAG)
              and (output.flavor is None or v.tags.get("mlspec.flavor") == output.flavor)]
    return max(usable, key=lambda v: int(v.version)) if usable else None


def _reuse(tracking_uri: str, run_id: str, binding: OutputBinding, existing: Any,
           output: str | None) -> RegisteredModel:
    """The registered version with these very files stands for this registration too: no new version."""
    from mlspec.runtime.tracking import client, set_tags

    name = binding.register_as
    assert name is not None
    version = int(existing.version)
    set_tags(tracking_uri, run_id, {f"mlspec.reused.{name}": str(version)})
    aliases = [alias for alias in binding.aliases if alias.lower() != "latest"]
    for alias in aliases:
        try:
            set_alias(client(tracking_uri), name, alias, version)
        except Exception as error:
            raise JobRunError(f"cannot set alias '{alias}' on {name} version {version}: {error}") from None
    flavor = existing.tags.get("mlspec.flavor")
    return RegisteredModel(
        name=name, version=version, source_uri=str(existing.source), sha256=existing.tags[TAG],
        flavor=flavor if flavor in ("sklearn", "torch", "pyfunc") else "pyfunc", output=output, aliases=aliases,
        warnings=[f"the files are identical to {name} version {version}'s: reused it, registered nothing new"],
        run_id=existing.run_id, reused=True,
    )


def register_path(
    tracking_uri: str,
    name: str,
    path: str | os.PathLike[str],
    flavor: Flavor | None = None,
    aliases: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    loader: str | None = None,
    code: str | None = None,
    experiment: str = "mlspec-models",
    artifact_location: str | None = None,
    signature: Signature | None = None,
) -> RegisteredModel:
    """Register a model file or folder that no job produced (a Model with `path`) as a new version of `name`.

    The files are logged into a run of `experiment`, so the version has a stable copy (the source may change
    later) with the same sha256 tag as a job's. `artifact_location` defaults, for a sqlite store, to the
    `artifacts` folder beside the database (the local engine's layout).
    """
    from mlspec.runtime import tracking

    source = os.path.abspath(path)
    binding = OutputBinding(path=source, type="model", register_as=name, flavor=flavor, loader=loader,
                            aliases=list(aliases), signature=signature)
    experiment_id = tracking.ensure_experiment(tracking_uri, experiment, artifact_location or _beside_db(tracking_uri))
    run_id = tracking.start_run(tracking_uri, experiment_id, {"mlspec.model": name, "mlspec.source_path": source},
                                run_name=f"register-{name}")
    status: tracking.RunStatus = "FAILED"
    try:
        digest = source_digest(source)
        existing = _known_version(tracking_uri, binding, digest)
        if existing is not None:
            registered = _reuse(tracking_uri, run_id, binding, existing, None)
            status = "FINISHED"
            return registered
        with tempfile.TemporaryDirectory(prefix="mlspec-package-") as staging, _BUILD_LOCK:
            built = _build(f"model '{name}' ({source})", binding, code, {"mlspec_model": name}, Path(staging) / "m")
            registered = _log_and_register(tracking_uri, run_id, built, "model",
                                           {**(tags or {}), SOURCE_TAG: digest}, None)
        status = "FINISHED"
        return registered
    finally:
        tracking.end_run(tracking_uri, run_id, status)


def _beside_db(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "artifacts")
    return None  # a tracking server: its default artifact root


def _build(where: str, output: OutputBinding, code_dir: str | None, metadata: dict[str, str], staging: Path) -> _Built:
    built = _build_folder(where, output, code_dir, metadata, staging)
    if output.signature is not None:
        _declare_signature(built, output.signature, staging)
    return built


def _declare_signature(built: _Built, signature: Signature, staging: Path) -> None:
    """Write the declared signature into the MLmodel file, on a copy when the folder is the user's own."""
    import yaml

    if not built.folder.is_relative_to(staging):
        copy = staging.with_name(staging.name + "-declared")
        shutil.copytree(built.folder, copy)
        built.folder = copy
    mlmodel = built.folder / MLMODEL
    data = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    data["signature"] = signature.mlflow()
    mlmodel.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    built.tags["mlspec.signature"] = "declared"


def _build_folder(where: str, output: OutputBinding, code_dir: str | None, metadata: dict[str, str],
                  staging: Path) -> _Built:
    found = _find(where, output)
    _quiet_pickle_caution()
    if found.kind == "mlmodel":
        return _Built(output, found.path, found.flavor, tags={"mlspec.source_file": MLMODEL})
    tags = {"mlspec.source_file": found.path.name}
    metadata = {**metadata, "mlspec_source_file": found.path.name}
    if found.kind == "sklearn":
        notes = _save_sklearn(found.path, code_dir, staging, metadata)
        return _Built(output, staging, "sklearn", tags, notes)
    tags["mlspec.torch_format"] = _save_torch(found, output, code_dir, staging, metadata)
    return _Built(output, staging, "torch", tags)


def _log_and_register(tracking_uri: str, run_id: str, built: _Built, artifact_path: str, tags: dict[str, str],
                      output: str | None) -> RegisteredModel:
    from mlspec.runtime.tracking import client

    mlflow_client = client(tracking_uri)
    name = built.binding.register_as
    assert name is not None
    digest = model_digest(built.folder)
    mlflow_client.log_artifacts(run_id, str(built.folder), artifact_path)
    source = f"{mlflow_client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    tags = {**tags, "mlspec.sha256": digest, "mlspec.flavor": built.flavor, **built.tags}
    version = _create_version(tracking_uri, name, source, run_id, tags)
    aliases = [alias for alias in built.binding.aliases if alias.lower() != "latest"]  # 'latest' is always implied
    for alias in aliases:
        try:
            set_alias(mlflow_client, name, alias, version)
        except Exception as error:
            raise JobRunError(f"registered {name} version {version} but cannot set alias '{alias}': {error}") from None
    return RegisteredModel(
        name=name, version=version, source_uri=source, sha256=digest, flavor=built.flavor,
        output=output, aliases=aliases, warnings=built.warnings, run_id=run_id,
    )


def set_alias(mlflow_client: Any, name: str, alias: str, version: int, attempts: int = 5) -> None:
    """Point `alias` at `version`, unless a job running beside this one already pointed it at a newer version.

    Jobs registering the same model at once race here: MLflow's store inserts a new alias after looking for it,
    so two first settings collide on its unique key. The loser looks again and updates (or leaves the newer)."""
    for attempt in range(attempts):
        try:
            current = int(mlflow_client.get_model_version_by_alias(name, alias).version)
        except Exception:
            current = None  # no such alias yet
        if current is not None and current >= version:
            return
        try:
            mlflow_client.set_registered_model_alias(name, alias, str(version))
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _create_version(tracking_uri: str, name: str, source: str, run_id: str, tags: dict[str, str]) -> int:
    from mlflow.exceptions import MlflowException

    from mlspec.runtime.tracking import client

    mlflow_client = client(tracking_uri)
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # MLflow's own wait prints to stdout; ours is silent and reports a registration that failed.
    version = mlflow_client.create_model_version(name, source, run_id=run_id, tags=tags, await_creation_for=0)
    deadline, pause = time.monotonic() + READY_TIMEOUT_S, 0.02
    while version.status != "READY":
        if version.status == "FAILED_REGISTRATION":
            raise JobRunError(f"the registry failed to register {name} version {version.version}: "
                              f"{version.status_message or 'no reason given'}")
        if time.monotonic() > deadline:
            raise JobRunError(f"{name} version {version.version} was not READY after {READY_TIMEOUT_S:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
        version = mlflow_client.get_model_version(name, version.version)
    return int(version.version)


# --- what the output holds -------------------------------------------------------------------------------------


def _find_mlmodel(root: Path, where: str) -> Path | None:
    if (root / MLMODEL).is_file():
        return root
    nested = sorted(p.parent for p in root.glob(f"*/{MLMODEL}"))
    if len(nested) > 1:
        names = ", ".join(p.name for p in nested)
        raise JobRunError(f"{where} holds several MLflow models ({names}): keep one per output")
    return nested[0] if nested else None


def _mlmodel_flavor(folder: Path, declared: Flavor | None, where: str) -> Flavor:
    import yaml

    try:
        flavors = (yaml.safe_load((folder / MLMODEL).read_text(encoding="utf-8")) or {}).get("flavors") or {}
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise JobRunError(f"{where}: cannot read {folder / MLMODEL}: {error}") from None
    needs = {"sklearn": "sklearn", "torch": "pytorch", "pyfunc": "python_function"}
    if declared is not None:
        if needs[declared] not in flavors:
            raise JobRunError(
                f"{where}: declared flavor {declared}, but the MLflow model has flavors "
                f"{', '.join(sorted(flavors)) or 'none'}"
            )
        return declared
    if "sklearn" in flavors:
        return "sklearn"
    if "pytorch" in flavors:
        return "torch"
    if "python_function" in flavors:
        return "pyfunc"
    raise JobRunError(
        f"{where}: the MLflow model has no flavor mlspec can serve ({', '.join(sorted(flavors)) or 'none'});"
        " it needs python_function, sklearn or pytorch"
    )


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _listing(root: Path, limit: int = 10) -> str:
    if root.is_file():
        return f"the file {root.name}"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- building MLflow models --------------------------------------------------------------------------------------


class _PickleCautionFilter(logging.Filter):
    """Drops MLflow's 'saving in pickle format requires caution' line, printed for every model we save: the
    registered version's sha256 is how mlspec guards the loading side."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Saving ") and "pickle" in message.lower())


def _quiet_pickle_caution() -> None:
    for name in ("mlflow.sklearn", "mlflow.pytorch"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _PickleCautionFilter) for f in logger.filters):
            logger.addFilter(_PickleCautionFilter())


class _CodeImports:
    """The code folder's modules imported while it was on sys.path: they travel with a pickled model."""

    def __init__(self, code_dir: str | None) -> None:
        self.code_dir = os.path.realpath(code_dir) if code_dir else None
        self.before = set(sys.modules)

    def new_modules(self) -> list[str]:
        return [name for name in set(sys.modules) - self.before if self._in_code(sys.modules[name])]

    def roots(self) -> list[str]:
        """Top-level files and packages of the code folder that the new modules came from (for code_paths)."""
        if self.code_dir is None:
            return []
        found = set()
        for name in self.new_modules():
            relative = os.path.relpath(os.path.realpath(str(sys.modules[name].__file__)), self.code_dir)
            found.add(os.path.join(self.code_dir, relative.split(os.sep)[0]))
        return sorted(found)

    def _in_code(self, module: Any) -> bool:
        file = getattr(module, "__file__", None)
        return bool(self.code_dir and file and os.path.realpath(file).startswith(self.code_dir + os.sep))


@contextlib.contextmanager
def _job_code_importable(code_dir: str | None) -> Iterator[_CodeImports]:
    """Put the code folder first on sys.path (the job ran there), then restore sys.path and forget its modules.

    Call with _BUILD_LOCK held."""
    imports = _CodeImports(code_dir)
    if code_dir:
        sys.path.insert(0, code_dir)
    try:
        yield imports
    finally:
        if code_dir and code_dir in sys.path:
            sys.path.remove(code_dir)
        for name in imports.new_modules():
            sys.modules.pop(name, None)
        importlib.invalidate_caches()


def _load_error(path: Path, error: BaseException) -> JobRunError:
    hint = ""
    if "__main__" in str(error) or isinstance(error, AttributeError):
        hint = (" (a class or function defined in the training script itself cannot be loaded anywhere else:"
                " move it into a module of the code folder and import it from there)")
    elif isinstance(error, ModuleNotFoundError):
        hint = f" (module '{error.name}' is not installed where mlspec registers models)"
    return JobRunError(f"cannot load {path}: {type(error).__name__}: {error}{hint}")


def _save_sklearn(path: Path, code_dir: str | None, dest: Path, metadata: dict[str, str]) -> list[str]:
    try:
        import joblib
        import mlflow.sklearn
        import sklearn
    except ImportError as error:
        raise JobRunError(f"cannot register {path.name}: {error.name} is not installed where mlspec runs") from None

    notes: list[str] = []
    with _job_code_importable(code_dir) as imports:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model = joblib.load(path)  # reads plain pickles too
            except Exception as error:
                raise _load_error(path, error) from None
        # scikit-learn warns when the pickle comes from another version: the job's environment differs from ours.
        notes += [f"{path.name}: {w.message}" for w in caught if w.category.__name__ == "InconsistentVersionWarning"]
        if not hasattr(model, "predict"):
            raise JobRunError(f"{path} holds a {type(model).__name__}, which has no predict(): not a model to serve")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library deprecation chatter would land in every job's log
            mlflow.sklearn.save_model(
                model,
                str(dest),
                serialization_format="cloudpickle",
                code_paths=imports.roots() or None,
                # Explicit requirements skip MLflow's inference, which re-loads the model in a fresh Python
                # process (seconds per model).
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True),
                metadata={**metadata, "mlspec_sklearn_version": sklearn.__version__},
            )
    return notes


def _save_torch(found: Found, output: OutputBinding, code_dir: str | None, dest: Path,
                metadata: dict[str, str]) -> TorchFormat:
    try:
        import mlflow.pytorch
        import torch
    except ImportError as error:
        raise JobRunError(
            f"cannot register {found.path.name}: {error.name} is not installed where mlspec runs"
        ) from None

    requirements = mlflow.pytorch.get_default_pip_requirements()
    if found.kind == "torchscript":
        try:
            net = torch.jit.load(str(found.path), map_location="cpu")
        except Exception as error:
            raise _load_error(found.path, error) from None
        _save_pytorch(net, dest, requirements, {**metadata, "mlspec_torch_format": "torchscript"}, None)
        return "torchscript"

    assert output.loader is not None
    with _job_code_importable(code_dir) as imports:
        net = _build_net(found.path, output.loader, code_dir)
        try:
            scripted = torch.jit.script(net)
        except Exception:  # many nets are not scriptable: those are saved as code + pickle instead
            scripted = None
        if scripted is not None:
            _save_pytorch(scripted, dest, requirements, {**metadata, "mlspec_torch_format": "torchscript"}, None)
            return "torchscript"
        _save_pytorch(net, dest, requirements, {**metadata, "mlspec_torch_format": "pickle"}, imports.roots())
        return "pickle"


def _save_pytorch(net: Any, dest: Path, requirements: list[str], metadata: dict[str, str],
                  code_paths: list[str] | None) -> None:
    import mlflow.pytorch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pytorch.save_model(
            net, str(dest), serialization_format="pickle", pip_requirements=requirements,
            metadata=metadata, code_paths=code_paths or None,
        )


def _build_net(path: Path, loader: str, code_dir: str | None) -> Any:
    import torch

    module_name, _, function_name = loader.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise JobRunError(f"loader '{loader}' not found in the code folder {code_dir}: {error}") from None
    try:
        net = factory()
    except Exception as error:
        raise JobRunError(f"loader '{loader}' failed: {type(error).__name__}: {error}") from None
    if not isinstance(net, torch.nn.Module):
        raise JobRunError(f"loader '{loader}' returned a {type(net).__name__}, not a torch.nn.Module")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)  # weights only: no code runs
    except Exception as error:
        raise JobRunError(f"{path} is neither TorchScript nor a state dict: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a checkpoint {state_dict, epoch...}
        state = state["state_dict"]
    try:
        net.load_state_dict(state)
    except Exception as error:
        raise JobRunError(f"{path} does not fit the network from '{loader}': {error}") from None
    return net.eval()
