"""`mlspec package MODEL[:VERSION] --format onnx|skops|image`: a registered model packaged for edge devices."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json

DATA_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")
PACKAGED_FLAVORS = ("onnx", "skops")


def package(args: argparse.Namespace) -> int:
    from mlspec.cli.registry_commands import _client
    from mlspec.spec import ModelRef

    try:
        ref = ModelRef.parse(args.model)
    except ValueError as error:
        raise CommandError(str(error)) from None
    client, tracking_uri = _client(args)
    if client is None:
        raise CommandError("the workspace has no registered models yet: `mlspec up` registers the spec's models",
                           EXIT_FAILED)
    version = str(ref.version) if ref.version is not None else None
    if version is None and ref.alias is None:  # a bare name; NAME@latest is the highest version, whatever it is
        version = _latest_unpackaged(client, ref.name)
    model_uri = f"models:/{ref.name}/{version}" if version else f"models:/{ref.name}@{ref.alias}"
    if args.format == "image":
        from mlspec.cli.package_image import build_image

        return build_image(args, model_uri, tracking_uri)
    return _export(args, ref.name, model_uri, tracking_uri)


def _export(args: argparse.Namespace, name: str, model_uri: str, tracking_uri: str) -> int:
    from mlspec.runtime.edge.check import Tolerance
    from mlspec.runtime.edge.errors import PackageError
    from mlspec.runtime.edge.package import package as build
    from mlspec.runtime.edge.package import register, staging_folder, write_to
    from mlspec.runtime.serving.registry import ModelNotFound, resolve

    try:
        source = resolve(model_uri, tracking_uri)
    except ModelNotFound as error:
        raise CommandError(str(error), EXIT_FAILED) from None
    samples = [Path(args.sample)] if args.sample else _training_data(args, source.tags.get("mlspec.job"))
    tolerance = Tolerance(args.rtol, args.atol)
    try:
        with staging_folder() as staging:
            packaged = build(model_uri, tracking_uri, args.format, Path(staging), samples, tolerance, args.trust)
            if args.output:
                write_to(packaged, Path(args.output))
            else:
                register(packaged, tracking_uri, name, source.version, args.alias or args.format)
    except PackageError as error:
        raise CommandError(f"cannot package {source.label} as {args.format}: {error}", EXIT_FAILED) from None
    result: dict[str, Any] = {"format": packaged.format, "from": f"{name}:{source.version}", "sha256": packaged.sha256,
                              "checked": packaged.checked, "trusted": packaged.trusted}
    if args.output:
        result["path"] = str(packaged.folder)
    else:
        result.update(name=name, version=packaged.version, alias=packaged.alias)
    if args.json:
        print_json(result)
        return EXIT_OK
    print(f"checked: {packaged.checked}")
    if packaged.trusted:
        print(f"trusted types: {', '.join(packaged.trusted)}")
    if args.output:
        print(f"wrote {args.format} model of {name}:{source.version} to {packaged.folder} (sha256 {packaged.sha256})")
        print(f"serve it: python -m mlspec.runtime.serving --model-uri {packaged.folder} --sha256 {packaged.sha256}")
    else:
        print(f"registered {name}:{packaged.version} ({args.format}, from version {source.version}, @{packaged.alias}, "
              f"sha256 {packaged.sha256[:12]}); a deployment serves it with `model: {name}:{packaged.version}`")
    return EXIT_OK


def _latest_unpackaged(client: Any, name: str) -> str:
    """The highest version of `name` that is not itself a package (an ONNX or skops version mlspec made)."""
    versions = client.search_model_versions(f"name='{name}'")
    originals = [int(v.version) for v in versions if (v.tags or {}).get("mlspec.flavor") not in PACKAGED_FLAVORS]
    if not versions:
        raise CommandError(f"model '{name}' has no registered versions (`mlspec models` lists them)", EXIT_FAILED)
    if not originals:
        raise CommandError(f"every version of '{name}' is a packaged one: name the version to package", EXIT_FAILED)
    return str(max(originals))


def _training_data(args: argparse.Namespace, job: str | None) -> list[Path]:
    """The data files the job that trained the model reads, as the spec declares them (its Data and path inputs)."""
    if not job:
        return []
    from mlspec.cli.common import load_spec

    spec = load_spec(args, check_target=False).spec
    job_id = f"job/{job}"
    if job_id not in spec.resources:
        return []
    places = [path for ref in spec.references if ref.source == job_id and ref.target.startswith("data/")
              for path in spec.files.get(ref.target, {}).values()]
    places += [path for field, path in spec.files.get(job_id, {}).items() if field.startswith("inputs.")]
    found: list[Path] = []
    for place in places:
        files = sorted(place.rglob("*")) if place.is_dir() else [place]
        found += [f for f in files if f.is_file() and f.suffix.lower() in DATA_SUFFIXES]
    return found
