"""The data sets a new project starts with, written from the copies bundled with scikit-learn (nothing is fetched)."""

from __future__ import annotations

IRIS_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width", "species")


def iris_csv() -> str:
    """The 150 iris flowers: four measurements (cm) and the species as 0, 1 or 2."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    rows = [",".join([*(repr(float(value)) for value in row), str(int(label))])
            for row, label in zip(bunch.data, bunch.target, strict=True)]
    return "\n".join([",".join(IRIS_COLUMNS), *rows]) + "\n"


def digits_csv() -> str:
    """The 1,797 8x8 digits: 64 pixel intensities (0..16) p0..p63 and the digit."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    header = ",".join([*(f"p{index}" for index in range(bunch.data.shape[1])), "digit"])
    rows = [",".join([*(str(int(value)) for value in row), str(int(label))])
            for row, label in zip(bunch.data, bunch.target, strict=True)]
    return "\n".join([header, *rows]) + "\n"
