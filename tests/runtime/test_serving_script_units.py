"""The scoring-script pieces in-process: the request check's messages, and loading a script (init(), run(), errors)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlspec.runtime.serving.protocols import InputError
from mlspec.runtime.serving.script import (
    MODULE_NAME,
    RequestCheck,
    ScriptFailed,
    ScriptLoadError,
    load_script,
    with_input_schema,
)

SCHEMA = {"type": "object", "required": ["data"], "additionalProperties": False,
          "properties": {"data": {"type": "array", "items": {"type": "array", "minItems": 2,
                                                             "items": {"type": "number"}}}}}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each script is imported afresh, and what loading it sets (variables, import path) is undone."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, MODULE_NAME, raising=False)
    for name in ("AZUREML_MODEL_DIR", "MLSPEC_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("body", "says"), [
    (b'{"data": [[1, 2], [3, "x"]]}', "$.data[1][1]: 'x' is not of type 'number'"),
    (b'{"data": [[1]]}', "$.data[0]: [1] is too short: expected at least 2 items"),
    (b'{"data": [], "extra": 1}', "Additional properties are not allowed ('extra' was unexpected)"),
    (b'[1, 2]', "$: [1, 2] is not of type 'object'"),
    (b'{"data": ', "the request body is not JSON"),
])
def test_the_schema_check_names_the_json_path_and_the_problem(body: bytes, says: str) -> None:
    with pytest.raises(InputError) as refused:
        RequestCheck(SCHEMA).text(body, "application/json")
    assert says in str(refused.value) and refused.value.status == 422


def test_a_body_that_passes_reaches_run_as_the_text_sent() -> None:
    body = '{"data": [[1, 2.5]]}'
    assert RequestCheck(SCHEMA).text(body.encode(), "application/json") == body
    assert RequestCheck().text(b"anything at all", "text/plain") == "anything at all"  # no schema: no check
    with pytest.raises(InputError, match="not UTF-8"):
        RequestCheck().text(b"\xff", "text/plain")


def test_the_signature_check_names_the_missing_column() -> None:
    inputs = json.dumps([{"name": "a", "type": "double"}, {"name": "b", "type": "double"}])
    check = RequestCheck(signature_inputs=inputs)
    assert check.text(b'{"dataframe_records": [{"a": 1, "b": 2}]}', "application/json")
    with pytest.raises(InputError, match=r"missing column.*'b'"):
        check.text(b'{"dataframe_records": [{"a": 1}]}', "application/json")


def test_the_openapi_description_takes_the_schema_for_both_routes() -> None:
    document = json.dumps({"paths": {"/invocations": {"post": {"summary": "s", "requestBody": {}}}}}).encode()
    described = json.loads(with_input_schema(document, SCHEMA))
    for path in ("/invocations", "/score"):
        assert described["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"] == SCHEMA


def _script(folder: Path, text: str, name: str = "score.py") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_init_sees_the_model_folder_and_run_answers(tmp_path: Path) -> None:
    code = _script(tmp_path / "code", "import os, helper\nseen = None\n"
                   "def init():\n    global seen\n"
                   "    seen = (os.environ['AZUREML_MODEL_DIR'], os.environ['MLSPEC_MODEL_DIR'])\n"
                   "def run(raw):\n    return {'raw': raw, 'seen': seen, 'helper': helper.X}\n")
    (code / "helper.py").write_text("X = 7\n")
    loaded = load_script(str(code), "score.py", tmp_path / "model")
    assert loaded.run("hi") == {"raw": "hi", "seen": (str(tmp_path / "model"),) * 2, "helper": 7}


def test_an_exception_in_run_is_named_without_its_traceback(tmp_path: Path) -> None:
    code = _script(tmp_path / "code", "def run(raw):\n    raise KeyError('data')\n")
    loaded = load_script(str(code), "score.py", tmp_path)
    with pytest.raises(ScriptFailed) as failed:
        loaded.run("{}")
    assert str(failed.value) == "run() failed: KeyError: 'data'" and failed.value.status == 500


@pytest.mark.parametrize(("text", "says"), [
    ("def init():\n    raise OSError('no weights')\ndef run(raw):\n    return raw\n",
     "init() failed: OSError: no weights"),
    ("def init():\n    pass\n", "defines no run(raw_data) function"),
    ("import no_such_module\n", "cannot import scoring script score.py: ModuleNotFoundError"),
])
def test_a_script_that_cannot_start_says_why(tmp_path: Path, text: str, says: str) -> None:
    code = _script(tmp_path / "code", text)
    with pytest.raises(ScriptLoadError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_script(str(code), "score.py", tmp_path)


def test_a_script_outside_its_code_folder_is_refused(tmp_path: Path) -> None:
    code = _script(tmp_path / "code", "def run(raw):\n    return raw\n")
    _script(tmp_path, "def run(raw):\n    return raw\n", "outside.py")
    with pytest.raises(ScriptLoadError, match="not a file in"):
        load_script(str(code), "../outside.py", tmp_path)
    assert "AZUREML_MODEL_DIR" not in os.environ
