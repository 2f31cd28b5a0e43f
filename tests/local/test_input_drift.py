"""The drift report's parts on real files and real tests: request bodies read back as rows in each MLflow format,
chi-square for categories, Kolmogorov-Smirnov for numbers, and no verdict on too few rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from mlspec.backends.local.input_drift import drift_report, read_table, sampled_rows

COLUMNS = ["size", "colour"]


def _write(folder: Path, requests: list[object], status: int = 200) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "10.jsonl").open("a") as file:
        for request in requests:
            file.write(json.dumps({"status": status, "request": request, "response": {}}) + "\n")


def test_every_request_format_reads_back_as_rows(tmp_path: Path) -> None:
    _write(tmp_path, [
        {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, "red"]]}},
        {"dataframe_records": [{"size": 2.0, "colour": "blue"}]},
        {"instances": [[3.0, "green"]]},  # plain lists: the training data's column order
        {"inputs": {"size": [4.0], "colour": ["red"]}},
    ])
    _write(tmp_path, [{"dataframe_records": [{"size": 99.0, "colour": "x"}]}], status=422)  # refused: left out
    with (tmp_path / "10.jsonl").open("a") as file:
        file.write('{"status": 200, "requ')  # a line being written
    assert sampled_rows(tmp_path, COLUMNS) == [{"size": 1.0, "colour": "red"}, {"size": 2.0, "colour": "blue"},
                                               {"size": 3.0, "colour": "green"}, {"size": 4.0, "colour": "red"}]


def test_a_category_that_shifts_drifts_and_a_number_that_does_not_stays(tmp_path: Path) -> None:
    draw = random.Random(3)
    reference_file = tmp_path / "train.csv"
    pd.DataFrame({"size": [draw.gauss(10, 2) for _ in range(400)],
                  "colour": [draw.choice(["red", "blue", "green"]) for _ in range(400)],
                  "label": [draw.randint(0, 1) for _ in range(400)]}).to_csv(reference_file, index=False)
    reference = read_table(reference_file)
    rows = [{"size": draw.gauss(10, 2), "colour": draw.choices(["red", "blue", "green"], [8, 1, 1])[0]}
            for _ in range(200)]
    report = drift_report(reference, rows, 0.05, 0.5)
    assert report["features"]["colour"]["test"] == "chi-square" and report["features"]["colour"]["drift"] is True
    assert report["features"]["size"]["test"] == "ks" and report["features"]["size"]["drift"] is False
    assert "label" not in report["features"]  # the target: never sent, never compared
    assert report["drifted_share"] == 0.5 and report["drift"] is True
    assert drift_report(reference, rows[:3], 0.05, 0.5)["drift"] is None  # too few rows for a verdict
