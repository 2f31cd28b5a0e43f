"""Provisioning on the Docker target: a compiled example from scratch, then after a one-line `train.py` change.

Run: DOCKER_HOST=unix:///run/mlspec-docker/docker.sock PYTHONPATH=. .venv/bin/python bench/docker_provision.py \
[--example iris] [--keep]

The compiled program runs on the real engine (tests/docker/engine.py performs its resources: images built,
containers started and waited on). "From scratch" starts with none of mlspec's images on the engine (the local base
image aside), so every image is built. The change run then does what `pulumi up` does with the state the first run
left: a resource whose inputs are unchanged is not touched; the rest is created, and what it replaces is removed
afterwards with its grace period. It prints the wall time of each run, the resources each one performed, and the
size of every image. Images are removed at the end unless --keep. It removes every image the test engine built
(label `mlspec.test`) before it starts: do not run it beside the Docker tests.

The wheels come from scripts/wheelhouse (torch's CPU build among them; each image is sent only the wheels it needs).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pulumi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlspec.backends.pulumi import compile_project  # noqa: E402
from mlspec.graph import load_graph  # noqa: E402
from tests.docker.engine import Created, DockerEngine  # noqa: E402
from tests.pulumi.harness import run_program  # noqa: E402

IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"


class Unchanged(pulumi.runtime.Mocks):
    """Pulumi's diff over the engine: a resource declared with the inputs it was created with keeps its state."""

    def __init__(self, engine: DockerEngine, before: list[Created]) -> None:
        self.engine = engine
        self.before = {(c.typ, c.name): c for c in before}
        self.touched: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        previous = self.before.get((args.typ, args.name))
        if previous is not None and previous.inputs == dict(args.inputs):
            return previous.id, previous.state
        if args.custom:
            self.touched.append(f"{args.typ.split(':')[-1]} {args.name}")
        return self.engine.new_resource(args)

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return self.engine.call(args)


def scratch(client: docker.DockerClient, base_image: str) -> None:
    """No image of mlspec's on the engine but the base image: every build starts from nothing."""
    for _ in range(10):  # an image another is built on goes once that one has gone
        left = [i for i in client.images.list(filters={"label": "mlspec.test"}) if base_image not in i.tags]
        for image in left:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)
        if not left:
            break
    client.images.prune(filters={"dangling": True})


def replaced(before: list[Created], after: list[Created], client: docker.DockerClient) -> float:
    """Remove the containers the change replaced (Pulumi deletes them once their replacements are up); seconds.
    Only a resource the change created again has an old container to go: the unchanged ones keep theirs."""
    recreated = {c.name for c in after if c.typ == CONTAINER}
    names = {c.state.get("name") for c in after if c.typ == CONTAINER}
    started = time.monotonic()
    for old in before:
        if old.typ == CONTAINER and old.name in recreated and old.state.get("name") not in names:
            container = client.containers.get(old.state["name"])
            container.stop(timeout=int(old.inputs.get("stopTimeout") or 10))
            container.remove(force=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="iris")
    parser.add_argument("--base-image", default="mlspec-base:bookworm")
    parser.add_argument("--wheelhouse", default=str(ROOT / ".cache" / "wheelhouse"))
    parser.add_argument("--keep", action="store_true", help="leave the images (and their layers) on the engine")
    args = parser.parse_args()
    client = docker.from_env(version="auto", timeout=900)
    work = Path(tempfile.mkdtemp(prefix="mlspec-provision-"))
    spec, stack = work / "examples" / args.example, work / "stacks" / args.example
    shutil.copytree(ROOT / "examples" / args.example, spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    config = {"mlspec:baseImage": args.base_image, "mlspec:wheelhouse": args.wheelhouse,
              "mlspec:publishAddress": "127.0.0.1"}
    engine = DockerEngine(client=client, keep_images=args.keep)
    try:
        scratch(client, args.base_image)
        compile_project(load_graph([spec]), stack)
        started = time.monotonic()
        first = run_program(stack, config, mocks=engine)
        scratch_s = time.monotonic() - started
        assert not engine.errors, engine.errors
        before = list(engine.created)
        sizes = {i.inputs["imageName"]: int(client.images.get(i.inputs["imageName"]).attrs["Size"])
                 for i in first.of_type(IMAGE)}

        train = spec / "src" / "train.py"
        train.write_text(train.read_text() + "# one line more\n")
        compile_project(load_graph([spec]), stack)
        diff = Unchanged(engine, before)
        started = time.monotonic()
        run_program(stack, config, mocks=diff)
        created_s = time.monotonic() - started
        removed_s = replaced(before, engine.created[len(before):], client)
        assert not engine.errors, engine.errors
    finally:
        problems = engine.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.example} on Docker from scratch: {scratch_s:.1f} s ({len(before)} resources)")
    print(f"{args.example} after a one-line train.py change: {created_s + removed_s:.1f} s "
          f"({created_s:.1f} s creating {len(diff.touched)} changed resources, {removed_s:.1f} s removing what they "
          f"replaced): {', '.join(diff.touched)}")
    for name, size in sorted(sizes.items()):
        print(f"  image {name}: {size / 1e6:.0f} MB")
    print("slowest resources from scratch (they overlap where independent):")
    for each in sorted(before, key=lambda c: -c.seconds)[:8]:
        print(f"  {each.typ.split(':')[-1]} {each.name}: {each.seconds:.1f} s")
    if problems:
        print("cleanup:", *problems, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
