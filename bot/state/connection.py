"""Clients of the bot's Redis: a URL (plain, Unix socket, Sentinel) to a client; bulk reads; and
:func:`durable`, which waits for a replica to hold the writes that must survive a failover.

A ``redis+sentinel://`` client follows a failover: a command that meets a dead primary, a timeout
or a demoted primary (``READONLY``) is retried on whatever primary the sentinels name, with
exponential back-off (:data:`FAILOVER_RETRY`: 50 ms doubling to 1 s, for about 30 s), so a job or
a request rides through a failover instead of failing.

Replication is asynchronous: a write the primary acknowledged can be lost with it. The writes
whose loss would make the bot send twice or ignore a stop (a digest's reservations and claims
before the API call, an opt-out, an unfollow's purge, a late answer's "sent" mark) are followed
by :func:`durable`: ``WAIT`` for every connected replica. On a server without replicas (the
embedded one, a plain URL) it does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import hiredis
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import SentinelManagedConnection

from bot.state.keys import Keys

log = logging.getLogger(__name__)

T = TypeVar("T")

FAILOVER_BACKOFF = ExponentialBackoff(cap=1.0, base=0.05)
"""The pause between tries through a failover: 50 ms, doubling, at most 1 s."""

FAILOVER_RETRY = Retry(FAILOVER_BACKOFF, retries=40)
"""How a Sentinel client retries a command through a failover (about 30 s in all)."""

DURABLE_WAIT_MS = 1000
"""How long one ``WAIT`` of :func:`durable` waits for a replica's acknowledgement."""

DURABLE_TRIES = 3
"""How many ``WAIT`` s :func:`durable` makes before it gives up (a failover's new primary gets
its replica back within about two seconds)."""


class NotDurable(redis.ConnectionError):
    """No replica acknowledged writes that must survive a failover: do not act on them yet.

    A connection error, so whoever retries those (an RQ job, the client's retry) retries this.
    """


DURABLY_RETRY = Retry(FAILOVER_BACKOFF, retries=8)
"""How :func:`durably` makes writes again that were not vouched for: the failover retry's
back-off, 8 times (with each try's waits, about 30 s: the client's own ride through a failover)."""


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
    return _primary(Sentinel(nodes, socket_timeout=2), service, int(db or 0), decode)


def _primary(sentinel: Any, service: str, db: int, decode: bool) -> redis.Redis:
    """A client of ``service``'s current primary that retries through a failover."""
    return sentinel.master_for(
        service, db=db, decode_responses=decode, socket_timeout=5, socket_connect_timeout=2,
        retry=FAILOVER_RETRY, retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        connection_class=_FollowingConnection,
    )


class _FollowingConnection(SentinelManagedConnection):
    """A connection to the primary that asks the sentinels again whenever it reconnects.

    redis-py 8.1's ``SentinelManagedConnection`` does so only when the pool hands it out: a
    command that loses its connection reconnects (``send_packed_command`` ->
    ``connect_check_health``) to the address it had, the dead primary's, for every retry, and
    fails. Measured: a writer meeting a SIGKILLed primary gave up instead of following the
    sentinels to the new one (tests/test_failover.py).

    It also drops itself when a read is interrupted, as redis-py's plain connections do: the
    sentinel one passes ``disconnect_on_error=False``, so an exception raised mid-read (RQ's
    stop signal, a job's timeout) left the reply to come on the connection, and the next
    command read it as its own (measured: ``SET`` answered with a ``BLPOP``'s nil).
    """

    def connect_to(self, address: tuple[str, int]) -> None:
        """Connect to the primary at ``address``, counting a move (:func:`epoch`) when it is not
        where this pool's connections last found it. redis-py then drops the idle connections
        to the old one, and each busy one when it is given back."""
        shared = self.connection_pool  # the pool's proxy, which all its connections share
        if getattr(shared, "named", address) != address:
            shared.moves = getattr(shared, "moves", 0) + 1
        shared.named = address
        super().connect_to(address)

    def read_response(  # noqa: ANN201 - redis-py's own signature
        self, disable_decoding: bool = False, *, disconnect_on_error: bool = True, **kwargs: Any
    ):
        return super().read_response(
            disable_decoding=disable_decoding, disconnect_on_error=disconnect_on_error, **kwargs
        )

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock:
            return
        if retry_socket_connect:  # a reconnect in the middle of a command: where is the primary?
            self.connect()
            return
        super().connect_check_health(check_health, retry_socket_connect=False)


def replicated(client: redis.Redis) -> bool:
    """Whether ``client`` talks to a replicated primary (found through the sentinels)."""
    return hasattr(client.connection_pool, "service_name")


def epoch(client: redis.Redis) -> int:
    """How many times ``client``'s connections have found the primary moved: take it before
    writes that must survive, and give it to :func:`durable` after them."""
    shared = getattr(client.connection_pool, "proxy", None)  # what its connections share
    return getattr(shared, "moves", 0)


def durable(client: redis.Redis, since: int) -> None:
    """Return once every replica connected to the primary (at least one) holds every write this
    process made on it before this call, ``since`` being :func:`epoch` before those writes.

    Every replica, not any one: the sentinels promote the one they believe most up to date, from
    what they last asked (once a second), which may be the one that had not acknowledged yet.

    Raises :class:`NotDurable` if they do not within :data:`DURABLE_TRIES` waits, or if the
    primary moved since ``since``: some of the writes may have gone to the one replaced, and
    lost with it (the new primary acknowledges only what it has). Nothing to wait for on a
    server found without the sentinels (no replicas: the embedded Redis).
    """
    if not replicated(client):
        return
    acknowledged, replicas = _acknowledged(client)
    if epoch(client) != since:
        raise NotDurable("the primary moved while the writes were made: some may have gone to "
                         "the one replaced")
    if acknowledged < replicas:
        raise NotDurable(f"{acknowledged} of {replicas} replicas acknowledged within "
                         f"{DURABLE_TRIES * DURABLE_WAIT_MS} ms: the writes may not survive a "
                         "failover")


def durably(client: redis.Redis, write: Callable[[], T]) -> T:
    """Make ``write`` (writes that may be made twice) and return once :func:`durable` vouches for
    them; made again, on whichever primary is current, while it does not (:data:`DURABLY_RETRY`),
    then :class:`NotDurable`. For writes with nobody to tell to try again (an unfollow)."""

    def attempt() -> T:
        since = epoch(client)
        result = write()
        durable(client, since)
        return result

    def failed(error: Exception) -> None:
        log.warning("writes not vouched for, made again: %s", error)

    return DURABLY_RETRY.call_with_retry(
        attempt, failed, is_retryable=lambda error: isinstance(error, NotDurable)
    )


def _acknowledged(client: redis.Redis) -> tuple[int, int]:
    """``(replicas that acknowledged, replicas asked)``.

    ``WAIT`` waits for the writes of its own connection only, and the writes to make durable
    went through whichever connections the pool gave out (another thread's, in a web process).
    So one connection writes a marker (``Keys.durable``) and waits for it: a primary replicates
    in order, so a replica that holds the marker holds every write the primary took before it.
    The connection is used directly, without the client's retry: a retry on a new connection
    (after a failover) would wait for nothing.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    acknowledged = replicas = 1
    try:
        connection.send_command("INCR", Keys.durable())
        connection.read_response()
        for _ in range(DURABLE_TRIES):  # a failover's new primary lacks a replica for a second
            connection.send_command("INFO", "replication")
            info = connection.read_response()
            info = info.decode() if isinstance(info, bytes) else str(info)
            connected = next((int(line.partition(":")[2]) for line in info.splitlines()
                              if line.startswith("connected_slaves:")), 0)
            replicas = max(connected, 1)
            connection.send_command("WAIT", replicas, DURABLE_WAIT_MS)
            acknowledged = int(connection.read_response())
            if acknowledged >= replicas:
                break
    except redis.RedisError as exc:
        connection.disconnect()
        raise NotDurable(f"no replica acknowledged: {exc}") from exc
    finally:
        pool.release(connection)
    return acknowledged, replicas


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
        return _primary(pool.sentinel_manager, pool.service_name,
                        pool.connection_kwargs.get("db", 0), decode=False)
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )
