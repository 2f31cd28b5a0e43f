"""skops files: a scikit-learn model saved without pickle, loadable only with the types it lists trusted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlspec.runtime.edge.check import Outputs
from mlspec.runtime.edge.errors import PackageError
from mlspec.runtime.edge.original import Original

FILE = "model.skops"


def save(original: Original, folder: Path, trust: Sequence[str]) -> list[str]:
    """Write the estimator to `folder/model.skops`; the types beyond skops' defaults it needs, all of which
    `trust` must name (else PackageError listing them, so nothing unlisted is ever loaded)."""
    try:
        import skops.io
    except ImportError:
        raise PackageError("skops files need skops: pip install 'mlspec[package]'") from None
    if original.flavor != "sklearn":
        raise PackageError(f"{original.source.label} is a {original.flavor} model: skops saves scikit-learn models")
    path = folder / FILE
    try:
        skops.io.dump(original.model, path)
    except Exception as error:
        raise PackageError(f"skops cannot save this {type(original.model).__name__}: {type(error).__name__}: "
                           f"{error}") from None
    needed = sorted(skops.io.get_untrusted_types(file=path))
    missing = [t for t in needed if t not in trust]
    if missing:
        raise PackageError(f"the model holds types skops does not trust by default: {', '.join(missing)}; if you "
                           "trust them, name each with --trust TYPE")
    return needed


def outputs(folder: Path, trusted: list[str], rows: np.ndarray, original: Original) -> Outputs:
    """What the saved file, loaded back as a server loads it, answers for `rows`."""
    import warnings

    from mlspec.runtime.serving.edge_formats import load_skops

    estimator = load_skops(folder / FILE, trusted)
    copy = Original(original.source, folder, original.digest, original.mlmodel, "sklearn", estimator,
                    original.names, original.width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return copy.outputs(rows)
