"""Gateway fixtures: the machine's real Redis, each test under its own key prefix."""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("DISTILLGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("DISTILLGUARD_REQUIRE_REDIS") == "1":  # CI starts one: never skip there
            raise
        pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    p = f"{{dgtest-{uuid.uuid4().hex[:12]}}}:"
    yield p
    keys = list(redis_client.scan_iter(match=p.replace("{", "\\{").replace("}", "\\}") + "*", count=1000))
    if keys:
        redis_client.delete(*keys)
