"""Packaging registered models for edge devices: ONNX and skops files, checked against the original model."""
