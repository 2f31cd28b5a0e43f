"""Pieces of the Docker target beyond the iris program: the runner's result line, instances, the torch example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlspec.backends.pulumi import compile_project
from mlspec.graph import load_graph
from mlspec.runtime.jobrun import JobRun
from mlspec.runtime.train import RESULT_PREFIX, registered_versions
from tests.pulumi.conftest import CONTAINER, ROOT, RegistryMocks, compile_copy
from tests.pulumi.harness import run_program


def test_the_training_runner_prints_the_versions_it_registered(tmp_path: Path) -> None:
    example = ROOT / "examples" / "iris"
    run = JobRun(job="train", experiment="iris", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                 artifact_location=str(tmp_path / "artifacts"),
                 command="python train.py --data ${{inputs.data}} --algo logistic --C 1.0 "
                         "--model-dir ${{outputs.model}}",
                 code=str(example / "src"), workdir=str(tmp_path / "run"), path_prefix=str(Path(sys.executable).parent),
                 inputs={"data": {"path": str(example / "data" / "iris.csv")}},  # type: ignore[dict-item]
                 outputs={"model": {"path": str(tmp_path / "run" / "outputs" / "model"), "type": "model",  # type: ignore[dict-item]
                                    "register_as": "iris-clf", "flavor": "sklearn"}})
    run.dump(tmp_path / "jobrun.json")
    result = subprocess.run([sys.executable, "-m", "mlspec.runtime.train", str(tmp_path / "jobrun.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert registered_versions(result.stdout) == {"iris-clf": 1}
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith(RESULT_PREFIX))
    assert json.loads(line.removeprefix(RESULT_PREFIX))["status"] == "succeeded"
    assert registered_versions("no result line here") == {}
    assert registered_versions(RESULT_PREFIX + "{not json") == {}


def test_compute_instance_runs_jupyterlab_on_workspace_storage(tmp_path: Path) -> None:
    (tmp_path / "mlspec.yaml").write_text(
        "kind: Workspace\nname: lab\ndefaults: {environment: base}\n---\n"
        "kind: Environment\nname: base\nrequirements: [numpy]\n---\n"
        "kind: Compute\nname: box\ntype: instance\nport: 18888\n")
    out = tmp_path / "stack"
    compile_project(load_graph([tmp_path]), out)
    assert "jupyterlab>=4" in (out / "docker" / "notebooks-box" / "requirements.txt").read_text()
    captured = run_program(out, {})
    box = captured.get(CONTAINER, "box")
    assert box.inputs["ports"] == [{"internal": 8888, "external": 18888, "ip": "127.0.0.1"}]
    assert box.inputs["volumes"] == [{"volumeName": "lab-storage", "containerPath": "/mlspec", "readOnly": False}]
    script = box.inputs["command"][-1]
    assert "jupyter lab" in script and "--ServerApp.root_dir=/mlspec/notebooks/box" in script
    password = captured.exports["box.password"]
    assert "box.password" in captured.secret_exports and password not in json.dumps(box.inputs)
    assert "--PasswordIdentityProvider.hashed_password=sha256:" in script
    assert box.parent and box.parent.endswith("mlspec:docker:ComputeInstance::box")
    assert box.inputs["restart"] == "unless-stopped" and "shutdown_no_activity_timeout" not in script


def test_an_idle_instance_exits_and_its_container_stays_stopped(tmp_path: Path) -> None:
    (tmp_path / "mlspec.yaml").write_text(
        "kind: Workspace\nname: lab\ndefaults: {environment: base}\n---\n"
        "kind: Environment\nname: base\nrequirements: [numpy]\n---\n"
        "kind: Compute\nname: box\ntype: instance\nidle_time_before_shutdown: 30m\n")
    out = tmp_path / "stack"
    compile_project(load_graph([tmp_path]), out)
    box = run_program(out, {}).get(CONTAINER, "box").inputs
    script = box["command"][-1]
    assert "--ServerApp.shutdown_no_activity_timeout=1800" in script
    assert "--MappingKernelManager.cull_idle_timeout=1800" in script and "cull_busy=False" in script
    assert box["restart"] == "on-failure"  # an idle exit is 0: Docker leaves it stopped


def test_torch_digits_program_serves_with_batching(tmp_path: Path) -> None:
    captured = run_program(compile_copy(tmp_path, "torch-digits"), {}, mocks=RegistryMocks())
    blue = captured.get(CONTAINER, "digits-blue-0").inputs["command"]
    assert blue[blue.index("--model-uri") + 1] == "models:/digits-mlp/1"
    assert blue[blue.index("--max-batch-size") + 1] == "32" and blue[blue.index("--max-wait") + 1] == "0.002"
    job = captured.get(CONTAINER, "train").inputs
    assert job["memory"] == 4096 and job["cpuShares"] == 2048 and job["cpus"] == "2"
    assert captured.exports["digits.url"].startswith("http://127.0.0.1:")


def test_gpus_are_requested_by_count_on_the_jobs_and_replicas_that_ask(tmp_path: Path) -> None:
    def two_gpus(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        (spec / "mlspec.yaml").write_text(text.replace("resources: {cpus: 2, memory: 4Gi}",
                                                       "resources: {cpus: 2, memory: 4Gi, gpus: 2}"))

    plain = run_program(compile_copy(tmp_path / "cpu", "torch-digits"), {}, mocks=RegistryMocks())
    gpu = run_program(compile_copy(tmp_path / "gpu", "torch-digits", two_gpus), {}, mocks=RegistryMocks())
    for name in ("train", "digits-blue-0"):
        assert not {"deviceRequests", "gpus"} & plain.get(CONTAINER, name).inputs.keys(), name
        assert gpu.get(CONTAINER, name).inputs["deviceRequests"] == [
            {"driver": "nvidia", "count": 2, "capabilities": ["gpu"]}], name
    assert "deviceRequests" not in gpu.get(CONTAINER, "digits-gateway").inputs  # the gateway needs no GPU
