"""Slow-loris attack on ``python -m bot web``: our worker class against plain gthread.

The attack of the finding: 64 connections that each send ``POST /wechat HTTP/1.1`` and then one
header line every 0.5-2 s (reconnecting when the server closes them), for 15 s. Meanwhile
``/healthz`` and a signed question (「微信」, whose answer must be a text reply) are probed every
0.5 s, each probe on its own connection with a 5 s timeout. Two servers, measured one after the
other in the same run, on loopback, sharing one embedded Redis:

- ours: ``python -m bot web`` as the Procfile runs it (``PORT`` from the environment, 2 workers,
  the command line of ``bot/runner.py``: ``bot.serving.BufferingWorker``), bound to 127.0.0.1;
- gthread: the same command line with ``--worker-class gthread``, the baseline, which is expected
  to fail: its 16 threads each block reading a slow client's request.

Prints, for each server and probe, how many probes were answered, failed or timed out, and the
worst and p99 latency (a timed-out probe counts as its timeout).

    .venv/bin/python bench/slow_clients.py [--seconds 15] [--clients 64]
"""

from __future__ import annotations

import argparse
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import state  # noqa: E402
from bot.runner import gunicorn_command  # noqa: E402
from bot.settings import DEV_TOKEN  # noqa: E402
from bot.simulator.wire import build_message, read_reply, signed_request  # noqa: E402

PROBE_EVERY = 0.5
PROBE_TIMEOUT = 5.0
START_TIMEOUT = 240.0
"""A fresh data folder builds the content index and its embeddings first: a minute or more."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start(name: str, command: list[str], port: int, env: dict[str, str], work: Path) -> Server:
    """Start ``command`` in its own process group; return once its /healthz answers 200."""
    log = work / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{server.base}/healthz", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(server)
    sys.exit(f"{name} did not start:\n{log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


class SlowLoris(threading.Thread):
    """``clients`` connections sending a request head one line every 0.5-2 s; a connection the
    server answers or closes is opened again."""

    def __init__(self, port: int, clients: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.clients, self.seconds = port, clients, seconds
        self.opened = self.closed_by_server = self.lines = 0
        self.stop = threading.Event()
        self.random = random.Random(7)

    def _open(self, selector: selectors.BaseSelector) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(b"POST /wechat HTTP/1.1\r\nHost: bench\r\n")
        except OSError:
            return  # backlog full: the attack goes on with the others
        sock.setblocking(False)
        due = time.monotonic() + self.random.uniform(0.5, 2.0)
        selector.register(sock, selectors.EVENT_READ, [due, 0])
        self.opened += 1

    def _reopen(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        selector.unregister(sock)
        sock.close()
        self.closed_by_server += 1
        self._open(selector)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        end = time.monotonic() + self.seconds
        try:
            for _ in range(self.clients):
                self._open(selector)
            while time.monotonic() < end and not self.stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    self._reopen(selector, key.fileobj)
                now = time.monotonic()
                for key in list(selector.get_map().values()):
                    due, sent = key.data
                    if due > now:
                        continue
                    try:
                        key.fileobj.send(b"X-Slow-%d: %d\r\n" % (sent, sent))
                    except OSError:
                        self._reopen(selector, key.fileobj)
                        continue
                    key.data[:] = [now + self.random.uniform(0.5, 2.0), sent + 1]
                    self.lines += 1
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()
            selector.close()


@dataclass
class Probes:
    latencies: list[float] = field(default_factory=list)
    """Seconds of each answered probe."""
    timed_out: int = 0
    failed: list[str] = field(default_factory=list)


def probe_health(server: Server) -> float:
    started = time.monotonic()
    response = requests.get(f"{server.base}/healthz", timeout=PROBE_TIMEOUT)
    if response.status_code != 200:
        raise ValueError(f"/healthz answered {response.status_code}")
    return time.monotonic() - started


def probe_question(server: Server, number: int) -> float:
    openid = f"oBenchSlowClients{number:010d}"
    signed = signed_request(build_message("text", openid, Content="微信"), "plain", DEV_TOKEN)
    started = time.monotonic()
    response = requests.post(
        f"{server.base}/wechat",
        params=signed.query,
        data=signed.body,
        headers={"Content-Type": "text/xml"},
        timeout=PROBE_TIMEOUT,
    )
    elapsed = time.monotonic() - started
    reply = read_reply(response.content, openid) if response.status_code == 200 else None
    if reply is None or reply.kind != "text":
        raise ValueError(f"/wechat answered {response.status_code}: {response.text[:80]!r}")
    return elapsed


def attack(server: Server, clients: int, seconds: float, number: int) -> dict[str, Probes]:
    """The attack on ``server``, probed; the probes of each kind."""
    loris = SlowLoris(server.port, clients, seconds)
    results = {"healthz": Probes(), "question": Probes()}
    pending: list[tuple[str, Future]] = []
    with ThreadPoolExecutor(max_workers=32) as pool:
        loris.start()
        time.sleep(1.0)  # every slow connection is open and has sent a line
        end = time.monotonic() + seconds - 1.0
        while time.monotonic() < end:
            number += 1
            pending.append(("healthz", pool.submit(probe_health, server)))
            pending.append(("question", pool.submit(probe_question, server, number)))
            time.sleep(PROBE_EVERY)
        for kind, future in pending:
            try:
                results[kind].latencies.append(future.result())
            except requests.Timeout:
                results[kind].timed_out += 1
            except (requests.RequestException, ValueError) as exc:
                results[kind].failed.append(str(exc))
        loris.stop.set()
        loris.join(timeout=10)
    print(
        f"  {server.name}: {loris.opened} slow connections opened, {loris.lines} header lines "
        f"sent, {loris.closed_by_server} closed by the server",
        flush=True,
    )
    return results


def figures(probes: Probes) -> tuple[str, str]:
    """Worst and p99 latency in ms; a timed-out probe counts as the timeout."""
    samples = sorted(probes.latencies + [PROBE_TIMEOUT] * probes.timed_out)
    if not samples:
        return "-", "-"
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]

    def show(seconds: float) -> str:
        if seconds >= PROBE_TIMEOUT:
            return f">{PROBE_TIMEOUT * 1000:.0f}"
        return f"{seconds * 1000:.1f}"

    return show(samples[-1]), show(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each attack")
    parser.add_argument("--clients", type=int, default=64, help="slow connections")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="slow-clients-"))
    url_redis, _ = state.ensure_embedded(work / "var")
    env = {
        **os.environ,
        "REDIS_URL": url_redis,
        "BOT_DATA_DIR": str(work / "var"),
        "WECHAT_TOKEN": DEV_TOKEN,
    }
    for name in ("WECHAT_MODE", "WEB_CONCURRENCY", "BOT_PORT", "BOT_WEB_REQUEST_DEADLINE"):
        env.pop(name, None)
    servers: list[Server] = []
    table: list[tuple[str, str, Probes]] = []
    try:
        ours_port, base_port = free_port(), free_port()
        # the Procfile's line, `python -m bot web`, with PORT from the environment; loopback only
        ours_cmd = [sys.executable, "-m", "bot", "web", "--host", "127.0.0.1"]
        base_cmd = gunicorn_command(port=base_port, host="127.0.0.1")
        base_cmd[base_cmd.index("--worker-class") + 1] = "gthread"
        procfile = gunicorn_command(port=ours_port)
        worker_class = procfile[procfile.index("--worker-class") + 1]
        print(f"starting ours ({worker_class}) and gthread, 2 workers each", flush=True)
        servers.append(start("ours", ours_cmd, ours_port, {**env, "PORT": str(ours_port)}, work))
        servers.append(start("gthread", base_cmd, base_port, env, work))
        print(
            f"attack: {args.clients} slow connections for {args.seconds:g} s, one header line "
            f"every 0.5-2 s each; probes every {PROBE_EVERY} s, timeout {PROBE_TIMEOUT:g} s",
            flush=True,
        )
        for number, server in enumerate(servers):
            results = attack(server, args.clients, args.seconds, number * 10_000)
            for kind, probes in results.items():
                table.append((server.name, kind, probes))
    finally:
        for server in servers:
            stop(server)
        state.stop_embedded(work / "var")
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'server':9} {'probe':9} {'answered':>8} {'failed':>6} {'timed out':>9} "
        f"{'worst ms':>9} {'p99 ms':>9}"
    )
    for name, kind, probes in table:
        worst, p99 = figures(probes)
        print(
            f"{name:9} {kind:9} {len(probes.latencies):8d} {len(probes.failed):6d} "
            f"{probes.timed_out:9d} {worst:>9} {p99:>9}"
        )
        for failure in probes.failed[:3]:
            print(f"          {failure}")
    ours = [p for name, _, p in table if name == "ours"]
    held = all(not p.timed_out and not p.failed and max(p.latencies, default=0) < 2 for p in ours)
    print(f"ours held (every probe answered within 2 s): {'yes' if held else 'NO'}")


if __name__ == "__main__":
    main()
