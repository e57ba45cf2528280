"""Clients of the bot's Redis: a URL (plain, Unix socket, Sentinel) to a client; bulk reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
import redis

SENTINEL_SCHEME = "redis+sentinel://"
"""``REDIS_URL=redis+sentinel://host1:26379,host2:26379/<service>[/<db>]``: ask the sentinels."""


def connect(url: str, decode: bool = True) -> redis.Redis:
    """A client for ``url`` that returns ``str`` values (``bytes`` with ``decode=False``).

    A ``redis+sentinel://`` URL gives a client of the current primary of that service, which
    follows a failover.
    """
    if url.startswith(SENTINEL_SCHEME):
        return _sentinel_primary(url, decode)
    return redis.Redis.from_url(url, decode_responses=decode, health_check_interval=30)


def _sentinel_primary(url: str, decode: bool) -> redis.Redis:
    from redis.sentinel import Sentinel

    hosts, _, path = url.removeprefix(SENTINEL_SCHEME).partition("/")
    service, _, db = path.partition("/")
    if not hosts or not service:
        raise ValueError(f"REDIS_URL {url!r}: expected redis+sentinel://host:port,.../service[/db]")
    nodes = [
        (host, int(port or 26379)) for host, _, port in (h.partition(":") for h in hosts.split(","))
    ]
    sentinel = Sentinel(nodes, socket_timeout=2)
    return sentinel.master_for(service, db=int(db or 0), decode_responses=decode)


def bulk(client: redis.Redis, commands: Sequence[Sequence[str | int | float]]) -> list[Any]:
    """Many commands in one round trip, with the least work in Python.

    What a pipeline does, without redis-py's per-command packing and reply callbacks (hiredis
    packs and parses): the replies come as the server sends them, decoded as the client decodes.
    For the reads of a digest chunk, a thousand commands at a time, where a pipeline's Python
    overhead was a third of a worker's time.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        # one buffer: given a list, redis-py makes one sendall (a system call) per command
        connection.send_packed_command([b"".join(hiredis.pack_command(tuple(c)) for c in commands)])
        return [connection.read_response() for _ in commands]
    except BaseException:
        connection.disconnect()  # replies may be left unread: this connection cannot be reused
        raise
    finally:
        pool.release(connection)


def bytes_client(client: redis.Redis) -> redis.Redis:
    """A client on the same server that returns bytes, as RQ requires."""
    pool = client.connection_pool
    if hasattr(pool, "service_name"):  # a sentinel-managed pool: ask the sentinels again
        return pool.sentinel_manager.master_for(
            pool.service_name, db=pool.connection_kwargs.get("db", 0), decode_responses=False
        )
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )
