"""The Job kind: a training run whose inputs, code and environment determine its content hash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from mlspec.spec.base import Name, Resource, Seconds, Strict
from mlspec.spec.schedule import Schedule

Flavor = Literal["sklearn", "torch", "pyfunc"]

# ${{inputs.x}} / ${{outputs.y}}: the Azure ML CLI v2 placeholder syntax users already write.
PLACEHOLDER = re.compile(r"\$\{\{\s*([A-Za-z_][\w]*)\.([A-Za-z_][\w]*)\s*\}\}")
PLACEHOLDER_SCOPES = ("inputs", "outputs")
# A sweep's trial command also reads ${{search_space.NAME}}.
SEARCH_SPACE_SCOPE = "search_space"
# Where a placeholder was meant: `${{`, or `${inputs.` / `${outputs.` (one brace, which bash rejects).
_OPENING = re.compile(r"\$\{\{|\$\{\s*(?=(?:inputs|outputs|search_space)\.)")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `${{...}}` in a text: [start, end) offsets, and either scope and name or why it is malformed."""

    start: int
    end: int
    text: str
    scope: str = ""
    name: str = ""
    problem: str = ""  # empty: well formed
    fix: str = ""  # the text it should probably be


def placeholders(text: str) -> list[Placeholder]:
    """Every placeholder in `text`, parsed strictly; validation and substitution both read this one parser."""
    found: list[Placeholder] = []
    position = 0
    while match := _OPENING.search(text, position):
        start = match.start()
        if match.group(0) != "${{":  # `${inputs.x}`: one opening brace
            close = text.find("}", match.end())
            end = close + 1 if close >= 0 else len(text)
            body = text[match.end():close if close >= 0 else end].strip()
            found.append(Placeholder(start, end, text[start:end], problem="opens with one brace",
                                     fix=f"${{{{{body}}}}}"))
            position = end
            continue
        following = text.find("${{", match.end())
        limit = following if following >= 0 else len(text)
        close = text.find("}}", match.end(), limit)
        if close < 0:  # no `}}` before the next placeholder or the end
            single = text.find("}", match.end(), limit)
            if single >= 0:
                body = text[match.end():single].strip()
                found.append(Placeholder(start, single + 1, text[start:single + 1], problem="closes with one brace",
                                         fix=f"${{{{{body}}}}}"))
                position = single + 1
                continue
            end = _word_end(text, match.end(), limit)
            body = text[match.end():end].strip()
            found.append(Placeholder(start, end, text[start:end], problem="is not closed", fix=f"${{{{{body}}}}}"))
            position = end
            continue
        end = close + 2
        while end < len(text) and text[end] == "}":  # `}}}`: the extra brace would reach the shell
            end += 1
        body = text[match.end():close].strip()
        parsed = PLACEHOLDER.fullmatch(f"${{{{{body}}}}}")
        if end > close + 2:
            found.append(Placeholder(start, end, text[start:end], problem="closes with too many braces",
                                     fix=f"${{{{{body}}}}}"))
        elif parsed is None:
            found.append(Placeholder(start, end, text[start:end], problem="is malformed",
                                     fix="${{inputs.NAME}} or ${{outputs.NAME}}"))
        else:
            found.append(Placeholder(start, end, text[start:end], parsed.group(1), parsed.group(2)))
        position = end
    return found


def _word_end(text: str, start: int, limit: int) -> int:
    """Where an unclosed placeholder's name ends: at the first character a name cannot hold (beyond `.`)."""
    end = start
    while end < limit and (text[end].isalnum() or text[end] in "_. "):
        if text[end] == " " and text[start:end].strip():
            break
        end += 1
    return end


class PathInput(Strict):
    """An input given as a path rather than a registered Data resource."""

    type: Literal["uri_file", "uri_folder"] = Field(description="File or folder.")
    path: str = Field(description="Path relative to the spec file.")


InputValue = bool | int | float | str | PathInput


class Output(Strict):
    """Something the job writes; a model output can be registered in the model registry."""

    type: Literal["model", "uri_folder", "uri_file"] = Field("uri_folder", description="What the job writes there.")
    register_as: Name | None = Field(None, description="Register the output as a new version of this model.")
    flavor: Flavor | None = Field(None, description="How to load the model: sklearn, torch or an MLflow pyfunc.")

    @model_validator(mode="after")
    def _only_models_register(self) -> Output:
        if self.register_as and self.type != "model":
            raise ValueError("only outputs of type 'model' can be registered (set type: model)")
        return self


class JobResources(Strict):
    instance_count: int = Field(1, ge=1, description="Nodes the job runs on. Without a distribution every node runs "
                                "the command, with NODE_RANK and NODE_COUNT set; locally a node is a process tree.")


class Distribution(Strict):
    type: Literal["pytorch"] = Field(description="Launch with torchrun: every node runs a torchrun agent, which sets "
                                     "WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process.")
    process_count_per_instance: int = Field(1, ge=1, description="Processes per node (usually GPUs per node).")


class Job(Resource):
    """A command job: runs `command` in `code` with inputs substituted; re-runs only when its hash changes."""

    kind: Literal["Job"] = "Job"
    type: Literal["command"] = Field("command", description="'command' (the default); 'sweep' tunes "
                                     "hyperparameters; 'pipeline' runs steps.")
    command: str = Field(description="Shell command; use ${{inputs.NAME}} and ${{outputs.NAME}}.")
    code: str | None = Field(None, description="Folder snapshotted and used as the working directory.")
    environment: Name | None = Field(None, description="Environment to run in (default: the workspace default).")
    compute: Name | None = Field(None, description="Compute to run on (default: the workspace default).")
    inputs: dict[str, InputValue] = Field(
        default_factory=dict, description="Literals, 'data:NAME' references, or {type, path} inputs."
    )
    outputs: dict[str, Output] = Field(default_factory=dict, description="Folders the job writes.")
    resources: JobResources = Field(default_factory=JobResources, description="Node count.")
    distribution: Distribution | None = Field(None, description="Distributed training launcher.")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Extra variables for the command.")
    timeout: Seconds | None = Field(None, description="Stop the job after this long, e.g. '30m'.")
    retries: int = Field(0, ge=0, le=10, description="Extra attempts after a failure.")
    experiment_name: str | None = Field(None, description="MLflow experiment (default: the workspace name).")
    schedule: Schedule | None = Field(None, description="Retrain on a timetable, besides when the job changes.")
