"""The export check: the packaged model must answer the sample rows as the original does, or it is refused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlspec.runtime.edge.errors import PackageError
from mlspec.runtime.edge.samples import Sample

SHOWN = 5  # differing rows named in the message


@dataclass(frozen=True)
class Tolerance:
    """How far a number may move: |exported - original| <= atol + rtol * |original| (numpy's isclose). Labels
    (integers, text, booleans) must be equal."""

    rtol: float = 1e-4
    atol: float = 1e-4

    def describe(self) -> str:
        if self.rtol == 0 and self.atol == 0:
            return "identical answers"
        return f"labels equal, numbers within {self.atol:g} + {self.rtol:g}×|value|"


@dataclass(frozen=True)
class Outputs:
    """What a model says about the sample: its predict output and, for a classifier, its class probabilities."""

    predict: np.ndarray
    proba: np.ndarray | None = None


def check(original: Outputs, exported: Outputs, sample: Sample, tolerance: Tolerance, what: str) -> str:
    """A one-line summary of the check when every row agrees; PackageError naming the rows that differ."""
    predictions = _differing(original.predict, exported.predict, tolerance, "prediction")
    probabilities: dict[int, str] = {}
    if original.proba is not None and exported.proba is not None:
        probabilities = _differing(original.proba, exported.proba, tolerance, "probabilities")
    rows = len(sample.rows)
    if predictions or probabilities:
        # Rows whose prediction changed come first: those are the answers a client would see change.
        order = sorted(predictions) + sorted(set(probabilities) - set(predictions))
        shown = "; ".join(f"row {row} {_values(sample, row)}: "
                          + ", ".join(t for t in (predictions.get(row), probabilities.get(row)) if t)
                          for row in order[:SHOWN])
        more = f" and {len(order) - SHOWN} more" if len(order) > SHOWN else ""
        raise PackageError(f"the {what} changes the answers on {len(order)} of {rows} sample rows ({len(predictions)} "
                           f"predictions; from {sample.source}; {tolerance.describe()}): {shown}{more}. Refusing it.")
    checked = "predictions and probabilities" if original.proba is not None else "predictions"
    return f"{checked} equal on {rows} sample rows from {sample.source} ({tolerance.describe()})"


def _differing(expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance, noun: str) -> dict[int, str]:
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape[0] != actual.shape[0] or expected.size != actual.size:
        raise PackageError(f"the export's {noun} have shape {list(actual.shape)}, the original's "
                           f"{list(expected.shape)}")
    expected = expected.reshape(expected.shape[0], -1)
    actual = actual.reshape(expected.shape)
    if expected.dtype.kind in "fc" or actual.dtype.kind in "fc":
        try:
            close = np.isclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=tolerance.rtol, atol=tolerance.atol)
        except (TypeError, ValueError):
            close = actual.astype(str) == expected.astype(str)
    else:
        close = actual.astype(str) == expected.astype(str)  # labels: 2 and 2.0 are not the same class name
    found = {}
    for row in np.flatnonzero(~close.all(axis=1)):
        found[int(row)] = f"{noun} {_shown(expected[row])} → {_shown(actual[row])}"
    return found


def _shown(values: np.ndarray, digits: int = 6) -> str:
    items = [f"{v:.{digits}g}" if isinstance(v, float | np.floating) else str(v) for v in values.tolist()]
    return items[0] if len(items) == 1 else "[" + ", ".join(items[:6]) + (", …" if len(items) > 6 else "") + "]"


def _values(sample: Sample, row: int) -> str:
    return "(" + _shown(sample.rows[row], 10).strip("[]") + ")"  # enough digits to tell close inputs apart
