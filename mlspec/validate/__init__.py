"""Validate stage: documents into typed, strict resources, with precise diagnostics."""

from mlspec.validate.documents import Declared, Validated, model_for, validate_documents

__all__ = ["Declared", "Validated", "model_for", "validate_documents"]
