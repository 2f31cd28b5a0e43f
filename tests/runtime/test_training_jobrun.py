"""The JobRun contract and `${{...}}` substitution."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlspec.runtime.jobrun import JobRun, JobRunError, literal_text, prepare_output, substitute


def test_substitute_quotes_paths_and_literals_and_creates_output_folders(make_run, tmp_path: Path) -> None:
    data = tmp_path / "my data" / "iris.csv"
    out = tmp_path / "work" / "out dir" / "model"
    run = make_run(
        "python train.py --data ${{inputs.data}} --C ${{ inputs.C }} --name ${{inputs.name}} --out ${{outputs.model}}",
        inputs={"data": {"path": str(data)}, "C": {"value": 0.5}, "name": {"value": "a b; rm -rf /"}},
        outputs={"model": {"path": str(out), "type": "model"}},
    )

    command = substitute(run.command, run)

    assert shlex.split(command) == [
        "python", "train.py", "--data", str(data), "--C", "0.5", "--name", "a b; rm -rf /", "--out", str(out)
    ]
    assert out.is_dir()


def test_substitute_reports_every_unknown_reference_with_the_declared_names(make_run) -> None:
    run = make_run("x ${{inputs.dta}} ${{outputs.modle}} ${{inputs.C}}", inputs={"C": {"value": 1}},
                   outputs={"model": {"path": "/tmp/never-created"}})

    with pytest.raises(JobRunError) as error:
        substitute(run.command, run)

    message = str(error.value)
    assert "${{inputs.dta}}" in message and "${{outputs.modle}}" in message
    assert "declared: inputs.C, outputs.model" in message
    assert not Path("/tmp/never-created").exists()


def test_uri_file_output_gets_its_folder_but_not_the_file(make_run, tmp_path: Path) -> None:
    target = tmp_path / "work" / "preds" / "out.csv"
    run = make_run("echo > ${{outputs.preds}}", outputs={"preds": {"path": str(target), "type": "uri_file"}})

    assert substitute(run.command, run) == f"echo > {shlex.quote(str(target))}"
    assert target.parent.is_dir() and not target.exists()


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false"), (3, "3"), (1.0, "1.0"), ("x", "x")])
def test_literals_read_as_written(value: object, text: str) -> None:
    assert literal_text(value) == text  # type: ignore[arg-type]


def test_literal_types_survive_the_json_round_trip(make_run, tmp_path: Path) -> None:
    run = make_run("true", inputs={"flag": {"value": True}, "n": {"value": 3}, "c": {"value": 1.0},
                                   "s": {"value": "1.0"}, "d": {"path": str(tmp_path)}})
    path = tmp_path / "run.json"
    run.dump(path)

    again = JobRun.load(path)

    assert again == run
    assert again.literal_params() == {"flag": "true", "n": "3", "c": "1.0", "s": "1.0"}


def test_paths_must_be_absolute(make_run) -> None:
    with pytest.raises(ValidationError, match="must be an absolute path"):
        make_run("true", workdir="relative/work")
    with pytest.raises(ValidationError, match="must be an absolute path"):
        make_run("true", inputs={"data": {"path": "data/iris.csv"}})


def test_an_input_is_a_value_or_a_path(make_run) -> None:
    with pytest.raises(ValidationError, match="exactly one of 'value' or 'path'"):
        make_run("true", inputs={"data": {}})


def test_an_output_may_not_hold_the_code_it_would_empty(make_run, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="would be emptied before each attempt"):
        make_run("true", outputs={"model": {"path": str(tmp_path)}})  # tmp_path is the code folder


def test_loader_syntax_is_checked(make_run, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"module\.path:function"):
        make_run("true", outputs={"m": {"path": str(tmp_path / "work" / "m"), "loader": "net.build()"}})


def test_load_reports_what_is_wrong_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"job": "train", "command": 3}))

    with pytest.raises(JobRunError) as error:
        JobRun.load(path)

    assert "experiment: Field required" in str(error.value)
    assert "command: Input should be a valid string" in str(error.value)
    with pytest.raises(JobRunError, match="cannot read job run file"):
        JobRun.load(tmp_path / "missing.json")


def test_prepare_output_empties_a_folder_and_removes_a_file(tmp_path: Path, make_run) -> None:
    folder, file = tmp_path / "work" / "model", tmp_path / "work" / "preds.csv"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "stale.joblib").write_text("old")
    file.write_text("old")
    run = make_run("true", outputs={"model": {"path": str(folder)}, "preds": {"path": str(file), "type": "uri_file"}})

    for output in run.outputs.values():
        prepare_output(output)

    assert folder.is_dir() and not any(folder.iterdir())
    assert not file.exists()


@pytest.mark.parametrize(("command", "problem"), [
    ("x ${{inputs.C} y", "${{inputs.C} closes with one brace (write ${{inputs.C}})"),
    ("x ${{inputs.C", "${{inputs.C is not closed (write ${{inputs.C}})"),
    ("x ${inputs.C}", "${inputs.C} opens with one brace (write ${{inputs.C}})"),
    ("x ${{inputs.C}}}", "${{inputs.C}}} closes with too many braces (write ${{inputs.C}})"),
])
def test_substitute_refuses_malformed_placeholders_instead_of_passing_them_to_the_shell(
        make_run, command: str, problem: str) -> None:
    run = make_run(command, inputs={"C": {"value": 1}})

    with pytest.raises(JobRunError) as error:
        substitute(run.command, run)

    assert problem in str(error.value)
