"""Shared building blocks of every kind: the strict base model, names, sizes and durations."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Lower-case letters, digits, '-' and '_', 1 to 63 characters, starting and ending "
        "with a letter or digit (it becomes a process, container and Kubernetes name).",
    ),
]

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_UNITS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_quantity(value: Any) -> int:
    """A memory size ('512Mi', '2Gi', '1G', 1073741824) in bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '512Mi' or '2Gi'")
    if isinstance(value, int):
        return value
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"'{value}' is not a size; write it like '512Mi', '2Gi' or '1G'")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_SECONDS = {"ms": 0.001, None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """A duration ('30s', '15m', '2h', 90) in seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '15m' or '2h'")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"'{value}' is not a duration; write it like '30s', '15m' or '2h'")
    return float(match.group(1)) * _SECONDS[match.group(2)]


# Written as text ('2Gi', '30s') or a number; the schema says so, the model stores bytes and seconds.
Bytes = Annotated[int, BeforeValidator(parse_quantity), Field(ge=0), WithJsonSchema({"anyOf": [
    {"type": "integer", "minimum": 0}, {"type": "string", "pattern": _QUANTITY.pattern}]})]
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0), WithJsonSchema({"anyOf": [
    {"type": "number", "minimum": 0}, {"type": "string", "pattern": _DURATION.pattern}]})]


# A tag key must be valid as an MLflow tag, a Docker label and a Kubernetes label name alike.
TAG_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
TagValue = Annotated[str, Field(max_length=5000)]  # MLflow's limit on a tag value
RESERVED_TAG_PREFIXES = ("mlspec.", "mlflow.")


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors, models are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Resource(Strict):
    """Fields every resource has, whatever its kind."""

    name: Name = Field(description="The resource's name, unique within its kind in the workspace.")
    description: str = Field("", max_length=5000,  # it becomes an MLflow note, a tag value
                             description="Free text shown in `mlspec status` and the tracking UI.")
    tags: dict[str, TagValue] = Field(default_factory=dict,
                                      description="Key/value labels copied onto what mlspec creates.",
                                      json_schema_extra={"propertyNames": {"pattern": TAG_KEY.pattern}})

    @field_validator("tags")
    @classmethod
    def _tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        bad = [k for k in tags if not TAG_KEY.match(k)]
        if bad:
            raise ValueError(f"tag key {', '.join(repr(k) for k in bad)}: use letters, digits, '-', '_' and '.', "
                             "starting and ending with a letter or digit, at most 63 characters")
        reserved = [k for k in tags if k.lower().startswith(RESERVED_TAG_PREFIXES)]
        if reserved:
            raise ValueError(f"tag key {', '.join(repr(k) for k in reserved)}: keys starting with "
                             f"{' or '.join(RESERVED_TAG_PREFIXES)} are mlspec's and MLflow's own; choose another key")
        return tags
