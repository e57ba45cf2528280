"""REDIS_URL=redis+sentinel://...: the bot finds its primary through Redis Sentinel (scale-out)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from bot import state

pytestmark = pytest.mark.redis_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, seconds: float = 15) -> None:  # noqa: ANN001 - a zero-argument callable
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.1)


def answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_sentinel_url_reaches_the_primary(tmp_path: Path) -> None:
    binary = state.redis_server_binary()
    primary, sentinel = free_port(), free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel}\nsentinel monitor bot 127.0.0.1 {primary} 1\n"
        "sentinel down-after-milliseconds bot 1000\n",
        "utf-8",
    )
    processes = [
        subprocess.Popen([binary, "--port", str(primary), "--dir", str(tmp_path), "--save", ""]),
    ]
    try:
        wait_until(lambda: answers(primary))
        processes.append(subprocess.Popen([binary, str(config), "--sentinel"]))
        wait_until(lambda: answers(sentinel))
        client = state.connect(f"redis+sentinel://127.0.0.1:{sentinel}/bot/0")
        client.set("greeting", "你好")
        assert client.get("greeting") == "你好"
        assert state.bytes_client(client).get("greeting") == "你好".encode()
        assert redis.Redis(port=primary).get("greeting") == "你好".encode()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def test_malformed_sentinel_url_is_named() -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel"):
        state.connect("redis+sentinel://127.0.0.1:26379")
