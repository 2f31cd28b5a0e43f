"""The fields a generated resource's change lists: leaf paths, readable keys, JSON held in text, few of them."""

from __future__ import annotations

import json

from mlspec.backends.pulumi.changes.fields import changed_paths, summarize


def test_leaves_that_differ_in_order_with_keys_that_are_not_names_quoted() -> None:
    old = {"command": "a", "files": {"src/train.py": "1", "data/iris.csv": "2"}, "size": {"cpus": 1}, "gone": 1}
    new = {"command": "b", "files": {"src/train.py": "3", "data/iris.csv": "2"}, "size": {"cpus": 2}, "added": 1}
    assert changed_paths(old, new) == ["command", 'files["src/train.py"]', "size.cpus", "gone", "added"]
    assert changed_paths(old, old) == []


def test_lists_item_by_item_when_their_length_holds_else_whole() -> None:
    old = {"containers": [{"image": "a", "args": [1, 2]}]}
    assert changed_paths(old, {"containers": [{"image": "b", "args": [1, 2]}]}) == ["containers[0].image"]
    assert changed_paths(old, {"containers": [{"image": "a", "args": [1]}]}) == ["containers[0].args"]


def test_a_json_document_in_text_by_its_fields() -> None:
    config = {"deployments": {"blue": {"weight": 90}, "green": {"weight": 10}}}
    moved = {"deployments": {"blue": {"weight": 80}, "green": {"weight": 20}}}
    assert changed_paths({"data": {"gateway.json": json.dumps(config)}},
                         {"data": {"gateway.json": json.dumps(moved)}}) == [
        'data["gateway.json"].deployments.blue.weight', 'data["gateway.json"].deployments.green.weight']
    assert changed_paths({"text": "{not json"}, {"text": "{not json either"}) == ["text"]


def test_at_most_five_fields_the_last_counting_the_rest() -> None:
    assert summarize(["a", "b", "a"]) == ("a", "b")
    assert summarize([f"f{i}" for i in range(5)]) == ("f0", "f1", "f2", "f3", "f4")
    assert summarize([f"f{i}" for i in range(8)]) == ("f0", "f1", "f2", "f3", "and 4 more")
