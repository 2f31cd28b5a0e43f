"""The training table: read from CSV or Parquet, split into features and target, and the preprocessing every
candidate shares (impute and scale numbers, impute and one-hot encode the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def read_table(path: str) -> Any:
    import pandas as pd

    if Path(path).suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def features_and_target(frame: Any, target: str) -> tuple[Any, np.ndarray]:
    """Rows with a target value; the target as a plain array (labels of any type: the estimators encode them)."""
    kept = frame[frame[target].notna()]
    y = kept[target].to_numpy()
    if y.dtype.kind not in "biuf":
        y = y.astype(str).astype(object)  # one label type: a column of mixed or pandas string cells
    return kept.drop(columns=[target]), y


def preprocessor(features: Any) -> Any:
    """A ColumnTransformer over column positions, not names: the scoring server hands a fitted pipeline a plain
    array when every column is a number, and a frame (in the same column order) when some are text."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: list[int] = []
    other: list[int] = []
    for index, dtype in enumerate(features.dtypes):
        (numeric if dtype.kind in "biuf" else other).append(index)
    parts: list[tuple[str, Any, list[int]]] = []
    if numeric:
        parts.append(("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if other:
        parts.append(("categories", make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=50, sparse_output=False)), other))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def as_objects(features: Any) -> Any:
    """Text columns as plain Python strings (pandas' string dtype aside), so the encoder sees one type."""
    frame = features.copy()
    for column, dtype in zip(frame.columns, frame.dtypes, strict=True):
        if dtype.kind not in "biuf":
            frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame
