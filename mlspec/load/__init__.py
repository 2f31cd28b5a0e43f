"""Load stage: spec files, folders, includes and DSL files into documents with source spans."""

from mlspec.load.files import Loaded, display_path, load
from mlspec.load.yaml_source import Document, parse_yaml

__all__ = ["Document", "Loaded", "display_path", "load", "parse_yaml"]
