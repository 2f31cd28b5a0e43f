"""Packaging and registering model outputs, against a real MLflow sqlite store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote, urlparse

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlspec.runtime import tracking
from mlspec.runtime.jobrun import JobRunError, OutputBinding
from mlspec.runtime.packaging import find_model, model_digest, register_outputs, register_path

X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [4.9, 3.0, 1.4, 0.2]])
Y = np.array([0, 2, 1, 0])


@pytest.fixture
def run_id(store) -> str:
    experiment_id = tracking.ensure_experiment(store.tracking_uri, "packaging", store.artifacts)
    return tracking.start_run(store.tracking_uri, experiment_id, {"mlspec.job": "job"})


def _model_run(make_run, out: Path, name: str, **output: object):
    return make_run("true", content_hash="h1",
                    outputs={"model": {"path": str(out), "type": "model", "register_as": name, **output}})


def _local(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def _out(tmp_path: Path) -> Path:
    out = tmp_path / "work" / "outputs" / "model"
    out.mkdir(parents=True)
    return out


# --- model_digest -------------------------------------------------------------------------------------------------


def test_model_digest_covers_names_sizes_and_bytes(tmp_path: Path) -> None:
    def digest(files: dict[str, bytes]) -> str:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return model_digest(folder)

    base = digest({"MLmodel": b"flavors: {}", "data/model.pkl": b"\x80\x04abc"})
    assert base == digest({"data/model.pkl": b"\x80\x04abc", "MLmodel": b"flavors: {}"})  # order-free
    assert base != digest({"MLmodel": b"flavors: {}", "data/model.pkl": b"\x80\x04abd"})  # bytes
    assert base != digest({"MLmodel": b"flavors: {}", "data/other.pkl": b"\x80\x04abc"})  # names
    assert digest({"a": b"xy", "b": b""}) != digest({"a": b"x", "b": b"y"})  # framing
    assert len(base) == 64


# --- what an output holds -----------------------------------------------------------------------------------------


def test_a_missing_output_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(JobRunError, match=r"output 'model' \(.*/nothing\) does not exist"):
        find_model("model", OutputBinding(path=str(tmp_path / "nothing"), type="model"))


def test_an_output_without_a_model_says_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")

    with pytest.raises(JobRunError) as error:
        find_model("model", OutputBinding(path=str(tmp_path), type="model"))

    message = str(error.value)
    assert str(tmp_path) in message and "holds no model" in message
    assert "*.joblib" in message and "*.pt" in message
    assert "found metrics.json, notes.txt" in message


def test_an_empty_output_says_so(tmp_path: Path) -> None:
    with pytest.raises(JobRunError, match="found an empty folder"):
        find_model("model", OutputBinding(path=str(tmp_path), type="model", flavor="sklearn"))


def test_several_model_files_are_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "a.joblib").write_bytes(b"")
    (tmp_path / "b.pkl").write_bytes(b"")

    with pytest.raises(JobRunError, match=r"several model files \(a.joblib, b.pkl\)"):
        find_model("model", OutputBinding(path=str(tmp_path), type="model"))


def test_the_declared_flavor_picks_the_files(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"")

    with pytest.raises(JobRunError, match=r"expected an MLmodel file or \*.pt / \*.pth; found model.joblib"):
        find_model("model", OutputBinding(path=str(tmp_path), type="model", flavor="torch"))
    with pytest.raises(JobRunError, match="flavor pyfunc needs an MLflow model"):
        find_model("model", OutputBinding(path=str(tmp_path), type="model", flavor="pyfunc"))
    assert find_model("model", OutputBinding(path=str(tmp_path), type="model")).flavor == "sklearn"


def test_a_state_dict_needs_a_loader(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    (tmp_path / "weights").mkdir()
    torch.save(torch.nn.Linear(4, 3).state_dict(), tmp_path / "weights" / "weights.pt")
    torch.jit.script(torch.nn.Linear(4, 3)).save(str(tmp_path / "scripted.pth"))

    with pytest.raises(JobRunError, match=r"weights\.pt is not TorchScript .* declare loader"):
        find_model("model", OutputBinding(path=str(tmp_path / "weights"), type="model"))
    found = find_model("model", OutputBinding(path=str(tmp_path / "scripted.pth"), type="model"))
    assert (found.kind, found.flavor) == ("torchscript", "torch")


def test_an_mlflow_model_of_another_flavor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function: {loader_module: x}\n")

    assert find_model("model", OutputBinding(path=str(tmp_path), type="model")).flavor == "pyfunc"
    with pytest.raises(JobRunError, match="declared flavor sklearn, but the MLflow model has flavors python_function"):
        find_model("model", OutputBinding(path=str(tmp_path), type="model", flavor="sklearn"))


# --- registering ------------------------------------------------------------------------------------------------


def test_a_pickled_sklearn_model_registers_loads_and_matches_its_digest(store, run_id, make_run, tmp_path) -> None:
    import mlflow.pyfunc

    out = _out(tmp_path)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, Y), out / "model.pkl")
    run = _model_run(make_run, out, "pack-sk", aliases=["champion", "latest"])

    [model] = register_outputs(store.tracking_uri, run_id, run)

    assert (model.name, model.version, model.flavor, model.aliases) == ("pack-sk", 1, "sklearn", ["champion"])
    assert model.sha256 == model_digest(_local(model.source_uri))
    client = tracking.client(store.tracking_uri)
    version = client.get_model_version("pack-sk", "1")
    assert version.run_id == run_id and version.status == "READY"
    assert version.tags["mlspec.sha256"] == model.sha256
    assert version.tags["mlspec.job"] == "job" and version.tags["mlspec.hash"] == "h1"
    assert {k: int(v) for k, v in client.get_registered_model("pack-sk").aliases.items()} == {"champion": 1}
    loaded = mlflow.pyfunc.load_model(model.source_uri)
    assert list(loaded.predict(X)) == list(Y)


def test_an_mlflow_model_is_logged_byte_for_byte(store, run_id, make_run, tmp_path) -> None:
    import mlflow.sklearn

    out = _out(tmp_path)
    mlflow.sklearn.save_model(LogisticRegression(max_iter=500).fit(X, Y), str(out / "saved"),
                              serialization_format="cloudpickle", pip_requirements=[])
    run = _model_run(make_run, out, "pack-mlmodel")

    [model] = register_outputs(store.tracking_uri, run_id, run)

    assert model.flavor == "sklearn"
    assert model.sha256 == model_digest(out / "saved") == model_digest(_local(model.source_uri))


def test_a_torchscript_file_registers_and_loads_both_ways(store, run_id, make_run, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    import mlflow.pyfunc

    out = _out(tmp_path)
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    torch.jit.script(net).save(str(out / "model.pt"))
    run = _model_run(make_run, out, "pack-torch")

    [model] = register_outputs(store.tracking_uri, run_id, run)

    assert model.flavor == "torch"
    version = tracking.client(store.tracking_uri).get_model_version("pack-torch", str(model.version))
    assert version.tags["mlspec.torch_format"] == "torchscript"
    expected = net(torch.tensor(X, dtype=torch.float32)).detach().numpy()
    scripted = torch.jit.load(str(_local(model.source_uri) / "data" / "model.pth"))  # what mlspec's server does
    assert np.allclose(scripted(torch.tensor(X, dtype=torch.float32)).detach().numpy(), expected, atol=1e-6)
    predicted = mlflow.pyfunc.load_model(model.source_uri).predict(X.astype(np.float32))
    assert np.allclose(np.asarray(predicted), expected, atol=1e-6)


def _write_net_module(code: Path, forward_parameters: str) -> None:
    (code / "net.py").write_text(
        "import torch\n\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.lin = torch.nn.Linear(4, 3)\n\n"
        f"    def forward({forward_parameters}):\n"
        "        return self.lin(x)\n\n\n"
        "def build():\n"
        "    return Net()\n"
    )


@pytest.mark.parametrize(("forward_parameters", "torch_format"), [
    ("self, x", "torchscript"),
    ("self, x, **options", "pickle"),  # **kwargs cannot be scripted
])
def test_a_state_dict_is_built_with_the_loader(store, run_id, make_run, tmp_path, forward_parameters,
                                               torch_format) -> None:
    torch = pytest.importorskip("torch")
    import mlflow.pyfunc

    code = tmp_path / "code"
    code.mkdir()
    _write_net_module(code, forward_parameters)
    out = _out(tmp_path)
    torch.manual_seed(1)
    weights = torch.nn.Linear(4, 3)
    torch.save({"state_dict": {f"lin.{k}": v for k, v in weights.state_dict().items()}, "epoch": 3}, out / "w.pth")
    run = _model_run(make_run, out, f"pack-sd-{torch_format}", loader="net:build")
    run = run.model_copy(update={"code": str(code)})

    [model] = register_outputs(store.tracking_uri, run_id, run)

    version = tracking.client(store.tracking_uri).get_model_version(model.name, str(model.version))
    assert version.tags["mlspec.torch_format"] == torch_format
    assert "net" not in sys.modules and str(code) not in sys.path  # the job's code was forgotten again
    if torch_format == "pickle":
        assert (_local(model.source_uri) / "code" / "net.py").is_file()  # the code travels with the model
    predicted = mlflow.pyfunc.load_model(model.source_uri).predict(X.astype(np.float32))
    expected = weights(torch.tensor(X, dtype=torch.float32)).detach().numpy()
    assert np.allclose(np.asarray(predicted), expected, atol=1e-6)


def test_a_state_dict_that_does_not_fit_is_a_clear_error(store, run_id, make_run, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    code = tmp_path / "code"
    code.mkdir()
    _write_net_module(code, "self, x")
    out = _out(tmp_path)
    torch.save(torch.nn.Linear(5, 3).state_dict(), out / "w.pt")
    run = _model_run(make_run, out, "pack-misfit", loader="net:build").model_copy(update={"code": str(code)})

    with pytest.raises(JobRunError, match="does not fit the network from 'net:build'"):
        register_outputs(store.tracking_uri, run_id, run)


def test_one_bad_output_registers_nothing(store, run_id, make_run, tmp_path) -> None:
    good, bad = tmp_path / "work" / "good", tmp_path / "work" / "bad"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, Y), good / "model.joblib")
    run = make_run("true", outputs={
        "good": {"path": str(good), "type": "model", "register_as": "pack-good"},
        "bad": {"path": str(bad), "type": "model", "register_as": "pack-bad"},
    })

    with pytest.raises(JobRunError, match=r"output 'bad' \(.*\) holds no model"):
        register_outputs(store.tracking_uri, run_id, run)

    names = {m.name for m in tracking.client(store.tracking_uri).search_registered_models()}
    assert "pack-good" not in names and "pack-bad" not in names


def test_a_model_file_without_a_job_registers_from_its_path(store, tmp_path) -> None:
    import mlflow.pyfunc

    path = tmp_path / "external.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, Y), path)

    model = register_path(store.tracking_uri, "pack-path", path, aliases=["prod"], tags={"mlspec.hash": "h9"})

    assert (model.version, model.flavor, model.output) == (1, "sklearn", None)
    client = tracking.client(store.tracking_uri)
    version = client.get_model_version("pack-path", "1")
    assert version.tags["mlspec.sha256"] == model.sha256 == model_digest(_local(model.source_uri))
    assert version.tags["mlspec.hash"] == "h9"
    assert client.get_run(version.run_id).info.status == "FINISHED"
    assert _local(model.source_uri).is_relative_to(store.root / "artifacts")  # beside the sqlite database
    assert list(mlflow.pyfunc.load_model(model.source_uri).predict(X)) == list(Y)
    with pytest.raises(JobRunError, match=r"model 'pack-path' \(.*nowhere.pkl\) does not exist"):
        register_path(store.tracking_uri, "pack-path", tmp_path / "nowhere.pkl")


def test_an_object_without_predict_is_refused(store, run_id, make_run, tmp_path) -> None:
    out = _out(tmp_path)
    joblib.dump({"weights": [1, 2]}, out / "model.joblib")

    with pytest.raises(JobRunError, match="holds a dict, which has no predict"):
        register_outputs(store.tracking_uri, run_id, _model_run(make_run, out, "pack-dict"))


@pytest.mark.e2e
def test_a_model_using_job_code_loads_in_a_fresh_process(store, run_id, make_run, tmp_path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "features.py").write_text(textwrap.dedent("""
        from sklearn.base import BaseEstimator, TransformerMixin

        class Doubler(BaseEstimator, TransformerMixin):
            def fit(self, x, y=None):
                return self

            def transform(self, x):
                return x * 2
    """))
    out = _out(tmp_path)
    script = (f"import joblib, sys; sys.path.insert(0, {str(code)!r}); from features import Doubler;"
              "from sklearn.pipeline import make_pipeline; from sklearn.linear_model import LogisticRegression;"
              f"import numpy as np; x = np.array({X.tolist()}); y = np.array({Y.tolist()});"
              f"joblib.dump(make_pipeline(Doubler(), LogisticRegression(max_iter=500)).fit(x, y), {str(out)!r} + "
              "'/model.joblib')")
    subprocess.run([sys.executable, "-c", script], check=True)
    run = _model_run(make_run, out, "pack-code").model_copy(update={"code": str(code)})

    [model] = register_outputs(store.tracking_uri, run_id, run)

    assert (_local(model.source_uri) / "code" / "features.py").is_file()
    check = (f"import mlflow.pyfunc, numpy as np; m = mlflow.pyfunc.load_model({model.source_uri!r});"
             f"print(list(m.predict(np.array({X.tolist()}))))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(list(Y))


def test_a_declared_signature_replaces_the_logged_one_without_touching_the_users_folder(store, tmp_path) -> None:
    import mlflow.sklearn
    import yaml

    from mlspec.spec.model import Signature

    saved = tmp_path / "saved"
    mlflow.sklearn.save_model(LogisticRegression(max_iter=500).fit(X, Y), str(saved),
                              serialization_format="cloudpickle", pip_requirements=[])
    before = (saved / "MLmodel").read_bytes()
    declared = Signature.model_validate({"inputs": [{"name": f"f{i}", "type": "double"} for i in range(4)],
                                         "outputs": [{"type": "long"}]})

    model = register_path(store.tracking_uri, "pack-signed", saved, signature=declared)

    assert (saved / "MLmodel").read_bytes() == before  # the user's folder is left as it was
    logged = yaml.safe_load((_local(model.source_uri) / "MLmodel").read_text())
    assert logged["signature"] == declared.mlflow()
    parsed = mlflow.models.Model.load(str(_local(model.source_uri) / "MLmodel")).signature
    assert parsed.inputs.input_names() == ["f0", "f1", "f2", "f3"]  # MLflow reads it as its own
    version = tracking.client(store.tracking_uri).get_model_version("pack-signed", str(model.version))
    assert version.tags["mlspec.signature"] == "declared"
    assert model.sha256 == model_digest(_local(model.source_uri))
