"""REDIS_URL=redis+sentinel://...: the bot finds its primary through Redis Sentinel (scale-out).

The servers are the failover tests' (:class:`bot.state.replicated.Topology`): one way to start a
primary, replicas and sentinels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import state
from bot.state.replicated import Topology

pytestmark = pytest.mark.redis_server


def test_sentinel_url_reaches_the_primary(tmp_path: Path) -> None:
    with Topology(tmp_path / "redis") as topology:
        client = state.connect(topology.url)
        client.set("greeting", "你好")
        assert client.get("greeting") == "你好"
        assert state.bytes_client(client).get("greeting") == "你好".encode()
        assert topology.primary().client().get("greeting") == "你好"


def test_malformed_sentinel_url_is_named() -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel"):
        state.connect("redis+sentinel://127.0.0.1:26379")
