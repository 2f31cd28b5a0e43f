"""`mlspec package MODEL --format image`: a self-contained Docker image that serves one model version.

The image is the docker target's runtime image (the same Dockerfile template, staged by the same code, offline
from the same wheelhouse), holding only what serving this model needs, with the verified model files baked in as
root's read-only files. Its server reads no registry and opens no connection: it checks the files against the
digest the image was built with, then serves them on port 8080 as uid 1000. Files only root can change need no
private copy, so it runs with a read-only root filesystem and nothing writable at all.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json

PORT = 8080
MODEL_DIR = "/opt/mlspec-model"
USER = "mlspec"  # the docker target's non-root user (uid 1000)
# What the scoring server imports whatever the model (the docker target's runtime requirements, by name).
SERVER_NEEDS = ("pyyaml", "numpy", "uvloop", "httptools", "orjson")
# What each format adds. pandas for scikit-learn: a model fitted on text columns is scored through a DataFrame;
# cloudpickle, which mlspec saves scikit-learn models with; MLflow's client for the formats only MLflow can load
# (a pickled torch module, a pyfunc).
FLAVOR_NEEDS = {"onnx": ("onnxruntime>=1.17",), "skops": ("skops>=0.10", "scikit-learn", "pandas>=2.0"),
                "sklearn": ("scikit-learn", "pandas>=2.0", "cloudpickle"), "pytorch": ("torch",),
                "python_function": ("mlflow-skinny>=2.12,<4", "pandas>=2.0")}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+")
_STEP = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)  # each step's image in the classic builder's log


def build_image(args: argparse.Namespace, model_uri: str, tracking_uri: str) -> int:
    from mlspec.runtime.serving.integrity import IntegrityError
    from mlspec.runtime.serving.loading import fetch_verified
    from mlspec.runtime.serving.registry import ModelNotFound

    try:
        source, folder, digest = fetch_verified(model_uri, tracking_uri)
    except (ModelNotFound, IntegrityError) as error:
        raise CommandError(str(error), EXIT_FAILED) from None
    tag = args.output or f"mlspec-{source.name}:{source.version}"
    requirements = image_requirements(folder)
    with tempfile.TemporaryDirectory(prefix="mlspec-image-") as staging:
        context = stage(Path(staging), source.name, folder, digest, requirements, args.wheelhouse)
        image = _build(context, tag, args.base_image, bool(args.wheelhouse))
    size = int(image.attrs.get("Size", 0))
    result = {"image": tag, "id": image.id, "size_bytes": size, "model": f"{source.name}:{source.version}",
              "sha256": digest, "port": PORT, "requirements": requirements}
    if args.json:
        print_json(result)
        return EXIT_OK
    print(f"built {tag} ({size / 1e6:.0f} MB) serving {source.name}:{source.version} (sha256 {digest[:12]}) "
          f"on port {PORT}")
    print(f"run it: docker run --rm --read-only --cap-drop ALL -p 127.0.0.1:{PORT}:{PORT} {tag}")
    return EXIT_OK


def image_requirements(folder: Path) -> list[str]:
    """The server's own packages and the model format's, pinned to the versions the model was saved with where
    its MLmodel records them (a pickle loads reliably only with the library that wrote it)."""
    import yaml

    from mlspec.backends.pulumi.model import RUNTIME_REQUIREMENTS

    mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    flavors = mlmodel.get("flavors") or {}
    wanted = [r for r in RUNTIME_REQUIREMENTS if _name(r) in SERVER_NEEDS]
    for flavor in ("onnx", "skops", "sklearn", "pytorch", "python_function"):
        if flavor in flavors:
            wanted += FLAVOR_NEEDS[flavor]
            break
    if "pytorch" in flavors and not _torchscript(folder, flavors["pytorch"]):
        wanted += ["mlflow-skinny>=2.12,<4", "cloudpickle"]  # a pickled module: MLflow loads it, with its code
    pins = {"scikit-learn": (flavors.get("sklearn") or flavors.get("skops") or {}).get("sklearn_version"),
            "torch": (flavors.get("pytorch") or {}).get("pytorch_version")}
    pinned = [f"{_name(r)}=={pins[_name(r)]}" if pins.get(_name(r)) else r for r in wanted]
    return list(dict.fromkeys(pinned))


def stage(staging: Path, name: str, folder: Path, digest: str, requirements: list[str],
          wheelhouse: str | None) -> Path:
    """The build context: the runtime's (requirements, mlspec's runtime source, the wheels they reach) and the
    model's files, with the docker target's runtime Dockerfile and the model's lines after it."""
    from mlspec.backends.pulumi.model import EnvironmentModel
    from mlspec.backends.pulumi.render import render
    from mlspec.pulumi.context import stage_environment

    env = EnvironmentModel(var="edge", name=f"{name}-image", content_hash=digest, folder=name,
                           requirements=tuple(requirements), base_image=None, env={})
    wheels = Path(wheelhouse).resolve() if wheelhouse else None
    if wheels is not None and not wheels.is_dir():
        raise CommandError(f"--wheelhouse {wheelhouse} is not a folder (scripts/wheelhouse fills one)")
    (staging / "requirements.in").write_text(render("requirements.txt.j2", env=env), encoding="utf-8")
    with contextlib.chdir(staging):  # stage_environment writes .build/NAME in the current folder
        context = stage_environment(name, staging / "requirements.in", str(wheels) if wheels else None).resolve()
    shutil.copytree(folder, context / "model")
    _readable(context / "model")
    dockerfile = render("runtime.Dockerfile.j2", env=env, user=USER) + _model_lines(name, digest)
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    return context


def _readable(folder: Path) -> None:
    """Modes the image's files keep: readable by the server's user, writable by root alone (a workspace's own
    files are its owner's alone, 0600, which uid 1000 in the image could not read)."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _model_lines(name: str, digest: str) -> str:
    command = ["python", "-m", "mlspec.runtime.serving", "--model-uri", MODEL_DIR, "--sha256", digest,
               "--host", "0.0.0.0", "--port", str(PORT), "--name", name]
    quoted = ", ".join(f'"{part}"' for part in command)
    return (f"# The model, baked in as root's files (read-only to the server, which checks them against this digest\n"
            f"# at every start): no registry, no network.\n"
            f"COPY model/ {MODEL_DIR}/\n"
            f"EXPOSE {PORT}\n"
            f"CMD [{quoted}]\n")


def _build(context: Path, tag: str, base_image: str, offline: bool) -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=1800)
        client.ping()
    except (docker.errors.DockerException, OSError) as error:
        raise CommandError(f"no Docker engine answers ({error}); start one, or set DOCKER_HOST", EXIT_FAILED) \
            from None
    args = {"BASE_IMAGE": base_image, "PIP_OFFLINE": "1" if offline else ""}
    log: list[str] = []
    try:
        for chunk in client.api.build(path=str(context), tag=tag, buildargs=args, rm=True, forcerm=True,
                                      decode=True, labels={"mlspec.model-image": tag}):
            log.append(chunk.get("stream", ""))
            if "error" in chunk:
                tail = "".join(log)[-3000:]
                raise CommandError(f"docker build of {tag} failed: {chunk['error'].strip()}\n{tail}", EXIT_FAILED)
        return client.images.get(tag)
    except docker.errors.APIError as error:
        raise CommandError(f"docker build of {tag} failed: {error.explanation or error}", EXIT_FAILED) from None
    finally:
        _remove_build_stage(client, _STEP.findall("".join(log)))
        client.close()


def _remove_build_stage(client: Any, steps: list[str]) -> None:
    """The build stage's images (the classic builder keeps its last step untagged, with the wheels in it): the
    image holds none of them. A tagged one (the base image) or one the image builds on stays."""
    import docker.errors

    for step in reversed(steps):
        try:
            if not client.images.get(step).tags:
                client.images.remove(step)
        except (docker.errors.NotFound, docker.errors.APIError):
            continue


def _torchscript(folder: Path, flavor: dict[str, Any]) -> bool:
    from mlspec.runtime.formats import is_torchscript

    return is_torchscript(folder / str(flavor.get("model_data", "data")) / "model.pth")


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    return (match.group(0) if match else requirement).lower()

