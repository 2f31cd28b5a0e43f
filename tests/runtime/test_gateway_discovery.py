"""Replica sets found by name: what a `discover` URL resolves to, how a configuration takes it, and what the
config parser accepts."""

from __future__ import annotations

import asyncio

import pytest

from mlspec.runtime.gateway.config import ConfigError, parse, routing_digest
from mlspec.runtime.gateway.discovery import resolve, with_found


def _config(**blue: object) -> dict[str, object]:
    return {"endpoint": "iris", "auth": "none",
            "deployments": {"blue": {"weight": 100, **blue}, "green": {"weight": 0, "replicas": ["http://g:1"]}}}


def test_a_name_resolves_to_one_replica_url_per_address() -> None:
    found = asyncio.run(resolve("http://localhost:8080"))
    assert found is not None and "http://127.0.0.1:8080" in found
    assert all(url.endswith(":8080") for url in found) and list(found) == sorted(set(found))


def test_a_name_nobody_holds_resolves_to_no_replica() -> None:
    assert asyncio.run(resolve("http://no-replica-holds-this.invalid:8080")) == ()


def test_a_discovered_deployment_takes_traffic_before_its_replicas_are_known() -> None:
    config = parse(_config(discover="http://iris-blue:8080"))
    blue = config.deployments["blue"]
    assert blue.discover == "http://iris-blue:8080" and blue.replicas == ()
    assert config.choose() is blue  # requests wait for its replicas rather than find no deployment


def test_found_addresses_replace_only_the_discovered_replica_set() -> None:
    config = parse(_config(discover="http://iris-blue:8080"))
    found = {"http://iris-blue:8080": ("http://10.0.0.2:8080", "http://10.0.0.3:8080")}
    updated = with_found(config, found)
    assert updated is not None
    assert updated.deployments["blue"].replicas == found["http://iris-blue:8080"]
    assert updated.deployments["green"] is config.deployments["green"]
    assert with_found(updated, found) is None  # nothing changed: nothing to take
    # The set is the name's to change: the digest the engine compares does not move with it.
    assert routing_digest(updated) == routing_digest(config)


@pytest.mark.parametrize("blue", [
    {"discover": "iris-blue:8080"}, {"discover": "http://iris-blue"}, {"discover": 8080},
    {"discover": "http://iris-blue:8080", "replicas": ["http://10.0.0.2:8080"]},
])
def test_a_discover_url_must_name_a_host_and_port_and_stand_alone(blue: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="discover must look like http://NAME:PORT"):
        parse(_config(**blue))
