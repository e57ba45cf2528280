"""Where state lives: Redis (embedded by default), its key layout, and the one way to run Lua.

- ``keys``        every key name, with the TTLs of transient data (:class:`Keys`)
- ``connection``  a URL to a client (plain, Unix socket, Sentinel, retried through a failover);
                  bulk reads; bytes clients; ``durable()``, WAIT for the replicas
- ``replicated``  a primary, replicas and three sentinels on this machine (failover tests)
- ``embedded``    the embedded ``redis-server`` under ``BOT_DATA_DIR`` when ``REDIS_URL`` is unset
- ``scripts``     Lua run by SHA1 (:class:`Lua`), and the compare-and-delete every lock uses
- ``writes``      writes recorded now and sent later as one script
- ``timebase``    one virtual time for every process of a simulation
"""

from bot.state.connection import (
    NotDurable,
    bulk,
    bytes_client,
    connect,
    durable,
    durably,
    epoch,
)
from bot.state.embedded import (
    embedded_url,
    ensure_embedded,
    redis_server_binary,
    resolve_url,
    running,
    stop_embedded,
)
from bot.state.keys import EVENT_LOG_LENGTH, RUN_TTL, SESSION_TTL, Keys
from bot.state.scripts import Lua, drop_if_same

__all__ = [
    "EVENT_LOG_LENGTH",
    "RUN_TTL",
    "SESSION_TTL",
    "Keys",
    "Lua",
    "NotDurable",
    "bulk",
    "bytes_client",
    "connect",
    "drop_if_same",
    "durable",
    "durably",
    "embedded_url",
    "epoch",
    "ensure_embedded",
    "redis_server_binary",
    "resolve_url",
    "running",
    "stop_embedded",
]
