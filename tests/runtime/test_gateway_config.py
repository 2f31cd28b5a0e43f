"""The gateway's configuration in-process: strict parsing, key hashes, weighted choice, replica health."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mlspec.runtime.gateway.config import ConfigError, ConfigWatcher, parse
from mlspec.runtime.gateway.routing import FULL, Router

BASE: dict[str, Any] = {
    "endpoint": "iris", "auth": "key", "key_hashes": [hashlib.sha256(b"k1").hexdigest()], "keys": ["k2"],
    "deployments": {"blue": {"weight": 90, "replicas": ["http://127.0.0.1:1", "http://127.0.0.1:2"]},
                    "green": {"weight": 10, "replicas": ["http://127.0.0.1:3/"]}},
    "mirror": {"green": 10},
}


def test_keys_are_checked_by_hash_and_plain_keys_are_not_kept() -> None:
    config = parse(BASE)
    assert config.authorised(b"k1") and config.authorised(b"k2")
    assert not config.authorised(b"k3") and not config.authorised(None) and not config.authorised(b"")
    assert "k2" not in repr(config)
    assert parse({**BASE, "auth": "none"}).authorised(None)


def test_weights_split_traffic_and_zero_weight_gets_none() -> None:
    random.seed(7)
    config = parse(BASE)
    drawn = Counter(config.choose().name for _ in range(5000))  # type: ignore[union-attr]
    assert 0.87 < drawn["blue"] / 5000 < 0.93
    only_blue = parse({**BASE, "deployments": {**BASE["deployments"], "green": {"weight": 0, "replicas": []}},
                       "mirror": {}})
    assert {only_blue.choose().name for _ in range(200)} == {"blue"}  # type: ignore[union-attr]
    none = parse({**BASE, "deployments": {"blue": {"weight": 0, "replicas": ["http://h:1"]}}, "mirror": {}})
    assert none.choose() is None


@pytest.mark.parametrize(("change", "says"), [
    ({"auth": "password"}, "auth must be"),
    ({"deployments": {}}, "at least one deployment"),
    ({"mirror": {"purple": 5}}, "not in deployments"),
    ({"mirror": {"green": 150}}, "0 to 100"),
    ({"key_hashes": ["not-a-hash"]}, "SHA-256"),
    ({"deployments": {"blue": {"weight": -1, "replicas": []}}, "mirror": {}}, "non-negative"),
    ({"deployments": {"blue": {"weight": 1, "replicas": ["https://h:1"]}}, "mirror": {}}, "http://HOST:PORT"),
    ({"weights": {}}, "unknown field"),
    ({"deployments": {"blue": {"weight": 1, "replicas": [], "max_concurrent": -1}}, "mirror": {}}, "max_concurrent"),
    ({"deployments": {"blue": {"weight": 1, "replicas": [], "max_queue_wait": "1s"}}, "mirror": {}},
     "max_queue_wait"),
    ({"deployments": {"blue": {"weight": 1, "replicas": [], "readiness": {"period": 0}}}, "mirror": {}}, "period"),
    ({"deployments": {"blue": {"weight": 1, "replicas": [], "readiness": {"often": 1}}}, "mirror": {}}, "readiness"),
    ({"deployments": {"blue": {"weight": 1, "replicas": [], "limit": 1}}, "mirror": {}}, "unknown field"),
])
def test_invalid_configs_name_the_field(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse({**BASE, **change})


def test_watcher_keeps_the_last_good_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(BASE))
    watcher = ConfigWatcher(path)
    path.write_text("{not json")
    watcher.reload()
    assert watcher.config.endpoint == "iris" and watcher.reloads == {"ok": 0, "invalid": 1}
    path.write_text(json.dumps({**BASE, "endpoint": "renamed"}))
    watcher.reload()
    assert watcher.config.endpoint == "renamed"


def test_keys_from_a_hashes_file_are_accepted_besides_the_configs_and_follow_its_changes(tmp_path: Path) -> None:
    path, hashes = tmp_path / "gateway.json", tmp_path / "key_hashes"
    path.write_text(json.dumps({**BASE, "key_hashes": [], "keys": []}))
    hashes.write_text(f"# the endpoint's keys\n{hashlib.sha256(b'k9').hexdigest()}\n\n")
    watcher = ConfigWatcher(path, hashes)
    assert watcher.config.authorised(b"k9") and not watcher.config.authorised(b"k1")
    assert not ConfigWatcher(path).config.authorised(b"k9")  # the file alone holds it
    hashes.write_text(hashlib.sha256(b"k8").hexdigest().upper() + "\n")  # a rotated key, on SIGHUP
    watcher.reload()
    assert watcher.config.authorised(b"k8") and not watcher.config.authorised(b"k9")
    watcher.take(parse(BASE))  # a config from the control channel keeps the file's keys
    assert watcher.config.authorised(b"k8") and watcher.config.authorised(b"k1")
    hashes.write_text("not-a-digest\n")
    watcher.reload()  # refused whole: the previous keys stay
    assert watcher.reloads["invalid"] == 1 and watcher.config.authorised(b"k8")
    with pytest.raises(ConfigError, match="SHA-256"):
        ConfigWatcher(path, hashes)


def test_router_round_robins_and_skips_failed_replicas() -> None:
    deployment = parse(BASE).deployments["blue"]
    router = Router()
    assert [router.pick(deployment) for _ in range(4)] == ["http://127.0.0.1:1", "http://127.0.0.1:2"] * 2
    router.failed("http://127.0.0.1:1")
    assert [router.pick(deployment) for _ in range(2)] == ["http://127.0.0.1:2"] * 2
    assert router.pick(deployment, avoid="http://127.0.0.1:2") == "http://127.0.0.1:1"  # down: the last resort
    assert router.down(deployment) == 1
    router.succeeded("http://127.0.0.1:1")
    assert router.down(deployment) == 0


def test_router_skips_full_and_unready_replicas() -> None:
    limited = {**BASE["deployments"], "blue": {**BASE["deployments"]["blue"], "max_concurrent": 1}}
    deployment = parse({**BASE, "deployments": limited}).deployments["blue"]
    router = Router()
    first = router.pick(deployment)
    assert first is not None
    router.take(first)
    assert {router.pick(deployment) for _ in range(3)} == {next(u for u in deployment.replicas if u != first)}
    router.take(next(u for u in deployment.replicas if u != first))
    assert router.pick(deployment) == FULL
    router.release(first)
    assert router.pick(deployment) == first
    router.unready.add(first)
    assert router.pick(deployment) == FULL  # the other is full and the freed one is out of rotation
    assert router.pick(parse(BASE).deployments["blue"], avoid="http://127.0.0.1:2") is None
