"""Resolve stage: references bound, workspace defaults applied, implicit resources added, files located."""

from __future__ import annotations

from pathlib import Path

from mlspec.diagnostics import Diagnostics
from mlspec.graph import build_graph
from mlspec.load import load
from mlspec.resolve import DEFAULT_COMPUTE, ResolvedSpec, resolve
from mlspec.spec import Job, Model
from mlspec.validate import validate_documents

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


def resolved(*paths: Path) -> tuple[ResolvedSpec, Diagnostics]:
    loaded = load(list(paths))
    diagnostics = loaded.diagnostics
    spec = resolve(validate_documents(loaded.documents, diagnostics), loaded.root, diagnostics)
    return spec, diagnostics


def write(folder: Path, text: str, name: str = "mlspec.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_workspace_defaults_bind_compute_and_environment() -> None:
    spec, diagnostics = resolved(EXAMPLE)
    assert not diagnostics
    assert spec.target("job/train", "compute") == "compute/cpu"
    assert spec.target("job/train", "environment") == "environment/sklearn"
    assert spec.target("job/train", "inputs.data") == "data/iris"
    assert spec.target("job/train", "inputs.C") is None  # a literal is no reference
    assert spec.target("endpoint/iris", "deployments.green.model") == "model/iris-forest"
    assert spec.target("endpoint/iris", "deployments.blue.compute") == "compute/cpu"


def test_job_outputs_declare_implicit_models() -> None:
    spec, _ = resolved(EXAMPLE)
    assert {"model/iris-clf", "model/iris-forest"} <= spec.implicit
    model = spec.get("model/iris-clf")
    assert isinstance(model, Model)
    assert (model.job, model.output, model.flavor) == ("train", "model", "sklearn")
    assert spec.target("model/iris-clf", "job") == "job/train"


def test_a_spec_without_compute_runs_on_an_implicit_local_compute(tmp_path: Path) -> None:
    spec, diagnostics = resolved(write(tmp_path / "My Project", "kind: Job\nname: t\ncommand: echo hi\n"))
    assert not diagnostics
    default = f"compute/{DEFAULT_COMPUTE}"
    assert default in spec.implicit and spec.target("job/t", "compute") == default
    (ref,) = [r for r in spec.references if r.source == "job/t"]
    assert not ref.content  # where a job runs is not part of what it produces
    assert spec.workspace.name == "my-project"  # no Workspace declared: named after the folder


def test_pinned_model_versions_carry_no_content(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"x")
    spec, diagnostics = resolved(write(tmp_path, (
        "kind: Model\nname: m\npath: m.pkl\n---\n"
        "kind: Endpoint\nname: e\ndeployments:\n  a: {model: 'm:3'}\n  b: {model: m@champion}\n  c: {model: m}\n"
        "traffic: {a: 50, b: 25, c: 25}\n")))
    assert not diagnostics.errors  # m@champion: only a warning, the alias may be set in the registry
    content = {r.path: r.content for r in spec.references if r.source == "endpoint/e" and r.target == "model/m"}
    assert content == {"deployments.a.model": False, "deployments.b.model": True, "deployments.c.model": True}


def test_paths_are_relative_to_the_file_that_declares_them(tmp_path: Path) -> None:
    write(tmp_path, "kind: Data\nname: rows\npath: rows.csv\n", "parts/data.yaml")
    (tmp_path / "parts" / "rows.csv").write_text("x\n1\n")
    spec, diagnostics = resolved(write(tmp_path, "include: [parts/]\n---\nkind: Data\nname: top\npath: mlspec.yaml\n"))
    assert not diagnostics
    assert spec.files["data/rows"]["path"] == tmp_path / "parts" / "rows.csv"
    assert spec.files["data/top"]["path"] == tmp_path / "mlspec.yaml"


def test_a_bad_default_is_reported_once_at_the_workspace(tmp_path: Path) -> None:
    spec_file = write(tmp_path, ("kind: Workspace\nname: w\ndefaults: {compute: cpux}\n---\n"
                                 "kind: Compute\nname: cpu\n---\n"
                                 "kind: Job\nname: a\ncommand: x\n---\nkind: Job\nname: b\ncommand: x\n"))
    _, diagnostics = resolved(spec_file)
    (error,) = diagnostics.items
    assert (error.summary, error.path, error.span.line, error.span.column) == \
        ("compute 'cpux' is not declared", "defaults.compute", 3, 21)
    assert error.hint == f"did you mean 'cpu' ({error.span.file}:6)?"


def test_references_to_a_broken_resource_are_not_reported_again(tmp_path: Path) -> None:
    _, diagnostics = resolved(write(tmp_path, ("kind: Compute\nname: cpu\ntype: cluster\nmax_nodes: many\n---\n"
                                               "kind: Job\nname: t\ncommand: x\ncompute: cpu\n")))
    assert [(d.span.line, d.path) for d in diagnostics.items] == [(4, "max_nodes")]


def test_register_as_must_not_clash_with_a_declared_model(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"x")
    _, diagnostics = resolved(write(tmp_path, (
        "kind: Model\nname: clf\npath: m.pkl\n---\n"
        "kind: Job\nname: t\ncommand: x ${{outputs.m}}\noutputs: {m: {type: model, register_as: clf}}\n")))
    (error,) = diagnostics.items
    assert "job 't' registers model 'clf', but that model is declared with another source" in error.summary
    assert (error.span.line, error.path) == (8, "outputs.m.register_as")


def test_an_explicit_model_of_a_job_with_several_outputs_names_one(tmp_path: Path) -> None:
    jobs = ("kind: Job\nname: t\ncommand: x ${{outputs.a}} ${{outputs.b}}\n"
            "outputs: {a: {type: model}, b: {type: model}}\n---\n")
    _, diagnostics = resolved(write(tmp_path, jobs + "kind: Model\nname: m\njob: t\n"))
    assert [d.summary for d in diagnostics.items] == ["model 'm': job 't' has 2 model outputs; say which with 'output'"]
    spec, diagnostics = resolved(write(tmp_path, jobs + "kind: Model\nname: m\njob: t\noutput: b\n"))
    assert not diagnostics and spec.target("model/m", "job") == "job/t"


def test_file_or_folder_must_match_the_declared_type(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("x\n")
    _, diagnostics = resolved(write(tmp_path, (
        "kind: Data\nname: f\ntype: uri_folder\npath: rows.csv\n---\n"
        "kind: Job\nname: t\ncommand: x\ncode: rows.csv\ninputs: {d: {type: uri_file, path: .}}\n")))
    assert sorted((d.span.line, d.summary) for d in diagnostics.items) == [
        (4, "Data 'f': path: 'rows.csv' is not a folder"),
        (9, "Job 't': code: 'rows.csv' is not a folder"),
        (10, "Job 't': inputs.d: '.' is not a file"),
    ]


def test_a_declared_model_makes_its_job_register_the_named_output(tmp_path: Path) -> None:
    jobs = ("kind: Job\nname: t\ncommand: x ${{outputs.a}} ${{outputs.b}}\n"
            "outputs: {a: {type: model}, b: {type: model}}\n---\n")
    before, _ = resolved(write(tmp_path, jobs))
    spec, diagnostics = resolved(write(tmp_path, jobs + "kind: Model\nname: m\njob: t\noutput: b\n"))
    assert not diagnostics
    job = spec.get("job/t")
    assert isinstance(job, Job)
    assert (job.outputs["a"].register_as, job.outputs["b"].register_as) == (None, "m")
    # What the job registers is part of its content: declaring the Model retrains the job once.
    hashes = [build_graph(s, Diagnostics()).nodes["job/t"].hash for s in (before, spec)]
    assert hashes[0] != hashes[1]


def test_one_output_registers_one_model(tmp_path: Path) -> None:
    _, diagnostics = resolved(write(tmp_path, (
        "kind: Job\nname: t\ncommand: x ${{outputs.a}}\noutputs: {a: {type: model, register_as: clf}}\n---\n"
        "kind: Model\nname: other\njob: t\n---\n"
        "kind: Model\nname: third\njob: t\noutput: a\n---\n"
        "kind: Job\nname: u\ncommand: x ${{outputs.a}}\noutputs: {a: {type: model}}\n---\n"
        "kind: Model\nname: first\njob: u\n---\nkind: Model\nname: second\njob: u\n")))
    assert [(d.span.line, d.path, d.summary) for d in diagnostics.sorted()] == [
        (8, "job", "model 'other': output 'a' of job 't' is already registered as 'clf' (its register_as)"),
        (13, "output", "model 'third': output 'a' of job 't' is already registered as 'clf' (its register_as)"),
        (26, "job", f"model 'second': output 'a' of job 'u' is already registered as 'first' "
                    f"({diagnostics.items[0].span.file}:21)"),
    ]


def test_an_alias_no_model_declares_is_a_warning_at_the_reference(tmp_path: Path) -> None:
    _, diagnostics = resolved(write(tmp_path, (
        "kind: Job\nname: t\ncommand: x ${{outputs.m}}\noutputs: {m: {type: model}}\n---\n"
        "kind: Model\nname: clf\njob: t\naliases: [staging]\n---\n"
        "kind: Endpoint\nname: e\ndeployments:\n  a: {model: clf@champion}\n  b: {model: clf@staging}\n"
        "  c: {model: clf@latest}\ntraffic: {a: 50, b: 25, c: 25}\n")))
    (warning,) = diagnostics.items
    assert warning.severity == "warning" and (warning.span.line, warning.path) == (14, "deployments.a.model")
    assert "no Model in the spec gives 'clf' the alias 'champion'" in warning.summary
    assert warning.hint == f"add aliases: [champion] to model 'clf' ({warning.span.file}:7), or refer to clf@latest"


def test_the_compiled_program_registers_what_a_declared_model_names(tmp_path: Path) -> None:
    from mlspec.backends.pulumi.model import build_program
    from mlspec.graph import load_graph

    write(tmp_path, ("kind: Environment\nname: py\n---\n"
                     "kind: Job\nname: t\nenvironment: py\ncommand: x ${{outputs.out}}\n"
                     "outputs: {out: {type: model}}\n---\n"
                     "kind: Model\nname: m\njob: t\nflavor: sklearn\naliases: [champion]\n---\n"
                     "kind: Endpoint\nname: e\ndeployments:\n  a: {model: m@latest, environment: py}\n"))
    program = build_program(load_graph([tmp_path]), tmp_path / "out")
    (job,) = program.jobs
    assert job.registers == ("m",)
    assert job.outputs["out"] == {"type": "model", "register_as": "m", "flavor": "sklearn", "aliases": ["champion"]}
    assert program.endpoints[0].deployments[0].job == job.var  # the endpoint waits for the job's version


def test_an_alias_on_a_model_only_register_as_declares_says_how_to_declare_it(tmp_path: Path) -> None:
    _, diagnostics = resolved(write(tmp_path, (
        "kind: Job\nname: t\ncommand: x ${{outputs.m}}\noutputs: {m: {type: model, register_as: clf}}\n---\n"
        "kind: Job\nname: use\ncommand: x ${{inputs.m}}\ninputs: {m: model:clf@champion}\n")))
    (warning,) = diagnostics.items
    assert (warning.severity, warning.path) == ("warning", "inputs.m")
    assert warning.hint == "declare kind: Model, name: clf, job: t, aliases: [champion], or refer to clf@latest"
