"""The Data kind: named inputs whose version is their content hash."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlspec.spec.base import Resource


class Data(Resource):
    """A file or folder; referenced from jobs as 'data:NAME'."""

    kind: Literal["Data"] = "Data"
    type: Literal["uri_file", "uri_folder"] | None = Field(
        None, description="File or folder; inferred from the path when left out."
    )
    path: str = Field(description="Path relative to the spec file.")
    datastore: str = Field("workspace", description="Datastore holding the snapshot.")
