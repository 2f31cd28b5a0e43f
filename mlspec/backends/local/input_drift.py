"""Data drift of an endpoint's sampled inputs against its training data, per feature: a two-sample
Kolmogorov-Smirnov test for numbers, a chi-square test of the category counts for anything else (scipy's tests,
as Evidently runs them by default for small data sets, without Evidently's dependencies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MIN_ROWS = 5  # fewer sampled rows than this: no test says anything worth reading


def _payload_rows(payload: Any, columns: list[str]) -> list[dict[str, Any]]:
    """The rows of an /invocations body (dataframe_split, dataframe_records, instances or inputs); rows given as
    plain lists are read in the training data's column order."""
    if not isinstance(payload, dict):
        return []
    if isinstance(split := payload.get("dataframe_split"), dict):
        names = split.get("columns") or columns
        return [dict(zip(names, row, strict=False)) for row in split.get("data", []) if isinstance(row, list)]
    rows = payload.get("dataframe_records", payload.get("instances", payload.get("inputs")))
    if isinstance(rows, dict):  # {column: [values]}
        rows = [dict(zip(rows, values, strict=False)) for values in zip(*rows.values(), strict=False)]
    if not isinstance(rows, list):
        return []
    return [row if isinstance(row, dict) else dict(zip(columns, row, strict=False))
            for row in rows if isinstance(row, dict | list)]


def _records(folder: Path) -> Iterator[dict[str, Any]]:
    for file in sorted(folder.rglob("*.jsonl")):
        for line in file.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line being written as we read
                continue
            if isinstance(record, dict) and record.get("status", 500) < 400 and "request" in record:
                yield record


def sampled_rows(folder: Path, columns: list[str]) -> list[dict[str, Any]]:
    """Every input row of the successful requests sampled under `folder` (one deployment's)."""
    return [row for record in _records(folder) for row in _payload_rows(record["request"], columns)]


def read_table(path: Path) -> Any:
    """A data snapshot as a pandas DataFrame: a CSV or Parquet file, or a folder of them."""
    import pandas as pd

    files = sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".parquet")) if path.is_dir() else [path]
    tables = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in files]
    if not tables:
        raise ValueError(f"{path} holds no CSV or Parquet file")
    return pd.concat(tables, ignore_index=True)


def _test(reference: Any, current: Any) -> tuple[str, float, float]:
    """(test name, statistic, p-value) comparing two pandas Series."""
    import pandas as pd
    from scipy import stats

    numeric = pd.api.types.is_numeric_dtype(reference) and pd.api.types.is_numeric_dtype(current) and \
        reference.nunique() > 2  # two values (a flag) read as categories
    if numeric:
        result = stats.ks_2samp(reference.astype(float), current.astype(float))
        return "ks", float(result.statistic), float(result.pvalue)
    categories = sorted(set(reference.astype(str)) | set(current.astype(str)))
    table = [[int((reference.astype(str) == c).sum()) for c in categories],
             [int((current.astype(str) == c).sum()) for c in categories]]
    if len(categories) < 2:  # one category on both sides: nothing moved
        return "chi-square", 0.0, 1.0
    statistic, p_value, _, _ = stats.chi2_contingency(table)
    return "chi-square", float(statistic), float(p_value)


def drift_report(reference: Any, rows: list[dict[str, Any]], threshold: float, share: float) -> dict[str, Any]:
    """Per feature (the columns the samples and the training data share): test, statistic, p-value and drift."""
    import pandas as pd

    current = pd.DataFrame(rows)
    features = [c for c in current.columns if c in reference.columns]
    report: dict[str, Any] = {"rows": {"reference": len(reference), "current": len(current)},
                              "threshold": threshold, "share_threshold": share, "features": {}}
    if len(current) < MIN_ROWS or not features:
        report.update(drifted_share=None, drift=None,
                      reason=f"{len(current)} sampled row(s), {MIN_ROWS} needed" if len(current) < MIN_ROWS else
                      "no sampled column is a column of the training data")
        return report
    for feature in features:
        test, statistic, p_value = _test(reference[feature].dropna(), current[feature].dropna())
        report["features"][feature] = {"test": test, "statistic": round(statistic, 6), "p_value": p_value,
                                       "drift": p_value < threshold}
    drifted = sum(f["drift"] for f in report["features"].values())
    report["drifted_share"] = drifted / len(features)
    report["drift"] = report["drifted_share"] >= share
    return report
