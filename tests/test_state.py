"""The embedded Redis: a real server, shared by processes, durable across restarts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fakeredis
import pytest
import redis

from bot import state
from bot.state import Keys
from tests.conftest import process_alive, server_pid

pytestmark = pytest.mark.redis_server


def test_embedded_server_starts_once_and_is_shared(tmp_path: Path) -> None:
    url, started = state.ensure_embedded(tmp_path)
    try:
        assert started and url.startswith("unix://")
        again, started_again = state.ensure_embedded(tmp_path)
        assert again == url and not started_again
        # another process attaches to the same server instead of starting one
        code = (
            "from pathlib import Path; from bot import state; "
            f"url, started = state.ensure_embedded(Path({str(tmp_path)!r})); "
            "state.connect(url).set('from-child', '1'); print(started)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent.parent,
        )
        assert out.stdout.strip() == "False"
        assert state.connect(url).get("from-child") == "1"
        info = state.connect(url).config_get("appendonly")
        assert info["appendonly"] == "yes"
    finally:
        state.stop_embedded(tmp_path)


def test_state_survives_a_crash_of_the_server(tmp_path: Path) -> None:
    url, _ = state.ensure_embedded(tmp_path)
    client = state.connect(url)
    client.set("kept", "yes")
    client.execute_command("BGREWRITEAOF")  # nothing else pending: the AOF has the write
    pid = server_pid(tmp_path)
    assert pid and process_alive(pid)
    import os
    import signal
    import time

    time.sleep(1.2)  # appendfsync everysec
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    url2, started = state.ensure_embedded(tmp_path)
    try:
        assert started
        assert state.connect(url2).get("kept") == "yes"
    finally:
        state.stop_embedded(tmp_path)


def test_stop_is_idempotent(tmp_path: Path) -> None:
    state.stop_embedded(tmp_path)  # nothing running: no error
    url, _ = state.ensure_embedded(tmp_path)
    state.stop_embedded(tmp_path)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()


def test_every_personal_key_is_listed() -> None:
    personal = Keys.personal("oX")
    assert Keys.user("oX") in personal and Keys.session("oX") in personal
    assert all(key.startswith("bot:") for key in personal)


def test_bytes_client_shares_the_server(fake_redis) -> None:
    fake_redis.set("a", "b")
    assert state.bytes_client(fake_redis).get("a") == b"b"


def test_bulk_answers_many_commands_in_one_round_trip_and_survives_an_error():
    r = fakeredis.FakeRedis(decode_responses=True)
    r.hset("u", mapping={"a": "1"})
    r.zadd("z", {"m": 2.5})
    hmget, zrange = state.bulk(r, [("HMGET", "u", "a", "b"), ("ZRANGE", "z", 0, -1, "WITHSCORES")])
    assert hmget == ["1", None] and zrange
    with pytest.raises(redis.ResponseError):
        state.bulk(r, [("HMGET", "z", "a"), ("GET", "u")])  # wrong type, replies left unread
    assert state.bulk(r, [("HGET", "u", "a")]) == ["1"]  # the pool gives a clean connection
