"""Routing by the model an Open Inference Protocol path names, in-process: which deployments serve it, the weighted
split among them, versions, unknown models, body limits, the repository index and model readiness."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from mlspec.runtime.gateway.config import ConfigError, parse, routing_digest
from mlspec.runtime.gateway.models import (
    ModelIndex,
    ModelPath,
    Routed,
    model_path,
    model_ready,
    over_limit,
    repository_index,
    serving_model,
)
from mlspec.runtime.gateway.routing import Router

PROBE = {"period": 1.0}


def _deployment(port: int, weight: int, model: str, version: str | int | None, **extra: Any) -> dict[str, Any]:
    return {"weight": weight, "replicas": [f"http://127.0.0.1:{port}"], "model": {"name": model, "version": version},
            "readiness": PROBE, **extra}


CONFIG: dict[str, Any] = {
    "endpoint": "iris", "auth": "none",
    "deployments": {
        "blue": _deployment(1, 90, "iris-clf", 1, max_body_size=1000),
        "green": _deployment(2, 10, "iris-forest", "3", max_body_size=5000),
        "canary": _deployment(3, 0, "iris-clf", 2, max_body_size=2000),
    },
}


def test_model_paths_are_read_apart() -> None:
    assert model_path(b"/v2/models/iris-clf/infer") == ModelPath("iris-clf", None, "infer")
    assert model_path(b"/v2/models/iris-clf/versions/2/ready") == ModelPath("iris-clf", "2", "ready")
    assert model_path(b"/v2/models/iris%20clf") == ModelPath("iris clf", None, "")  # as Triton's client quotes
    assert model_path(b"/v2/models/iris-clf/versions/7") == ModelPath("iris-clf", "7", "")
    assert model_path(b"/v2/models/") is None and model_path(b"/v2/health/ready") is None
    assert model_path(b"/invocations") is None


def test_a_model_goes_only_to_the_deployments_serving_it() -> None:
    random.seed(3)
    index = ModelIndex(parse(CONFIG))
    forest = index.choice("iris-forest", None)
    assert forest is not None and {forest.choose().name for _ in range(500)} == {"green"}  # weight 10 of 100
    clf = index.choice("iris-clf", None)
    assert clf is not None and [d.name for d in clf.deployments] == ["blue", "canary"]
    assert Counter(clf.choose().name for _ in range(500)) == Counter(blue=500)  # canary's weight is 0


def test_the_weighted_split_applies_among_the_deployments_of_one_model() -> None:
    random.seed(5)
    config = json.loads(json.dumps(CONFIG))
    config["deployments"]["canary"]["weight"] = 30
    config["deployments"]["canary"]["model"]["version"] = 1
    clf = ModelIndex(parse(config)).choice("iris-clf", "1")
    assert clf is not None
    drawn = Counter(clf.choose().name for _ in range(6000))
    assert 0.72 < drawn["blue"] / 6000 < 0.78  # 90 : 30, green's 10 plays no part


def test_a_version_picks_the_deployment_serving_it() -> None:
    index = ModelIndex(parse(CONFIG))
    for version, name in (("1", "blue"), ("2", "canary")):
        choice = index.choice("iris-clf", version)
        assert choice is not None and {choice.choose().name for _ in range(50)} == {name}
    assert index.choice("iris-clf", "9") is None
    assert index.choice("iris-forest", "1") is None


def test_a_deployment_is_reached_by_its_own_name_and_an_alias_served_version_by_any() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["deployments"]["green"]["model"]["version"] = None  # the registry alias resolves it
    index = ModelIndex(parse(config))
    assert [d.name for d in index.choice("canary", None).deployments] == ["canary"]  # type: ignore[union-attr]
    assert [d.name for d in index.choice("iris-forest", "8").deployments] == ["green"]  # type: ignore[union-attr]


def test_an_unknown_model_is_404_listing_the_models() -> None:
    index = ModelIndex(parse(CONFIG))
    assert index.choice("nope", None) is None
    status, _, body = index.unknown(ModelPath("nope", None, "infer"))
    message = json.loads(body)["error"]
    assert status == 404 and "no model 'nope'" in message
    assert "'iris-clf version 1'" in message and "'iris-clf version 2'" in message
    assert "'iris-forest version 3'" in message


def test_body_limits_are_per_deployment_and_the_server_reads_no_more_than_the_largest() -> None:
    config = parse(CONFIG)
    assert config.max_body_size == 5000
    index = ModelIndex(config)
    assert index.smallest_body_limit == 1000
    assert index.body_limit(ModelPath("iris-clf", "1", "infer"), None) == (1000, "blue")
    assert index.body_limit(ModelPath("iris-clf", None, "infer"), None) == (2000, "canary")
    assert index.body_limit(ModelPath("iris-forest", None, "infer"), None) == (5000, "green")
    assert index.body_limit(None, "blue") == (1000, "blue")  # a pin wins
    assert index.body_limit(None, None) == (5000, "green")  # the weighted split may choose green
    only = parse({**CONFIG, "max_body_size": 300, "deployments": {"a": {"weight": 1, "replicas": []}}})
    assert only.max_body_size == only.deployments["a"].max_body_size == 300  # the old field: every deployment's


@pytest.mark.parametrize(("model", "says"), [
    ("iris", "model must be an object"),
    ({"name": "iris", "stage": "x"}, "model must be an object"),
    ({"name": ""}, "model name"),
    ({"name": "a/b"}, "model name"),
    ({"name": "iris", "version": True}, "model version"),
])
def test_the_model_field_is_parsed_strictly(model: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse({**CONFIG, "deployments": {"a": {"weight": 1, "replicas": [], "model": model}}})
    with pytest.raises(ConfigError, match="max_body_size"):
        parse({**CONFIG, "deployments": {"a": {"weight": 1, "replicas": [], "max_body_size": 0}}})


def test_the_routing_digest_changes_with_the_model_and_the_body_limit() -> None:
    digest = routing_digest(parse(CONFIG))
    for field, value in (("model", {"name": "iris-clf", "version": "5"}), ("max_body_size", 1001)):
        changed = json.loads(json.dumps(CONFIG))
        changed["deployments"]["blue"][field] = value
        assert routing_digest(parse(changed)) != digest


def test_readiness_and_the_repository_index_come_from_the_probes() -> None:
    config = parse(CONFIG)
    router = Router()
    index = ModelIndex(config)
    router.unready.add("http://127.0.0.1:2")  # green's only replica fails its probe
    clf, forest = index.choice("iris-clf", None), index.choice("iris-forest", None)
    assert clf is not None and forest is not None
    assert model_ready(clf.deployments, router, ModelPath("iris-clf", None, "ready"))[0] == 200
    status, _, body = model_ready(forest.deployments, router, ModelPath("iris-forest", "3", "ready"))  # type: ignore[misc]
    assert status == 503 and json.loads(body)["ready"] is False
    status, _, body = repository_index(config, router, b"POST", b"")
    assert status == 200 and json.loads(body) == [
        {"name": "iris-clf", "version": "1", "state": "READY"}, {"name": "iris-clf", "version": "2", "state": "READY"},
        {"name": "iris-forest", "version": "3", "state": "UNAVAILABLE", "reason": "no ready replica"}]
    ready_only = json.loads(repository_index(config, router, b"POST", b'{"ready": true}')[2])
    assert [entry["version"] for entry in ready_only] == ["1", "2"]
    assert repository_index(config, router, b"POST", b"[1]")[0] == 400
    status, headers, _ = repository_index(config, router, b"GET", b"")
    assert status == 405 and (b"allow", b"POST") in headers


def test_deployments_that_do_not_state_their_model_take_the_models_no_other_serves() -> None:
    random.seed(11)
    config = json.loads(json.dumps(CONFIG))
    del config["deployments"]["green"]["model"]
    config["deployments"]["other"] = {"weight": 30, "replicas": ["http://127.0.0.1:4"]}
    index = ModelIndex(parse(config))
    unstated = index.choice("iris-forest", None)
    assert unstated is not None and [d.name for d in unstated.deployments] == ["green", "other"]
    assert Counter(unstated.choose().name for _ in range(400)).keys() == {"green", "other"}  # by weight, 10 : 30
    assert [d.name for d in index.choice("iris-clf", None).deployments] == ["blue", "canary"]  # type: ignore[union-attr]


def test_readiness_is_left_to_the_replicas_without_a_probe() -> None:
    config = json.loads(json.dumps(CONFIG))
    del config["deployments"]["green"]["readiness"]
    forest = ModelIndex(parse(config)).choice("iris-forest", None)
    assert forest is not None and model_ready(forest.deployments, Router(), ModelPath("iris-forest", None, "ready")) \
        is None


def test_a_declared_length_over_the_limit_of_where_the_request_goes_is_refused() -> None:
    index = ModelIndex(parse(CONFIG))
    pins = (b"azureml-model-deployment",)

    def status(path: bytes, length: int, *extra: tuple[bytes, bytes]) -> int | None:
        answer = over_limit(index, path, [(b"content-length", b"%d" % length), *extra], pins)
        return None if answer is None else answer[0]

    assert status(b"/v2/models/iris-clf/versions/1/infer", 1001) == 413  # blue's limit is 1000
    assert status(b"/v2/models/iris-clf/versions/1/infer", 1000) is None
    assert status(b"/v2/models/iris-forest/infer", 4000) is None  # green's is 5000
    assert status(b"/invocations", 4000, (b"azureml-model-deployment", b"blue")) == 413
    assert status(b"/invocations", 4000) is None  # the split may choose green: known only once the body is in
    assert over_limit(index, b"/invocations", [(b"transfer-encoding", b"chunked")], pins) is None
    same = ModelIndex(parse({**CONFIG, "deployments": {"a": {"weight": 1, "replicas": [], "max_body_size": 10}}}))
    assert over_limit(same, b"/invocations", [(b"content-length", b"11")], pins) is None  # the server's own check


def test_a_ready_question_is_answered_and_other_paths_are_routed() -> None:
    index, router = ModelIndex(parse(CONFIG)), Router()
    ready = serving_model(index, router, ModelPath("iris-forest", None, "ready"), b"GET")
    assert not isinstance(ready, Routed) and ready[0] == 200
    routed = serving_model(index, router, ModelPath("iris-forest", None, "infer"), b"POST")
    assert isinstance(routed, Routed) and routed.deployment.name == "green"
    unknown = serving_model(index, router, ModelPath("nope", None, "infer"), b"POST")
    assert not isinstance(unknown, Routed) and unknown[0] == 404
