"""bot/serving.py: slow clients cannot starve ``python -m bot web`` of its threads.

The framing of :class:`bot.serving.Arrival` is checked byte by byte first; then one real
``python -m bot web --workers 1`` (the product's gunicorn command line, on loopback, its own
embedded Redis) is attacked by 64 slow-loris connections while ``/healthz`` and a signed question
must keep being answered within 2 s, and is sent slow, pipelined, chunked, unfinished and
never-closed requests. The server's request deadline is shortened to
:data:`DEADLINE` seconds with ``BOT_WEB_REQUEST_DEADLINE``, and it searches without dense
retrieval (a copy of config/ with ``dense.enabled: false``): building the embeddings of a fresh
data folder takes a minute on a small machine, and serving is what is tested here.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from bot import state
from bot.serving import DEADLINE_ENV, LINGER_SECONDS, MAX_HEAD_BYTES, Arrival, Verdict
from bot.settings import DEV_TOKEN, ROOT
from bot.simulator.wire import SignedRequest, build_message, read_reply, signed_request

DEADLINE = 3.0
"""The request deadline of the server under test (seconds)."""

PROBE_LIMIT = 2.0
"""Every probe must be answered within this, attack or not."""


# --- framing, without a server -------------------------------------------------------------


def feed(raw: bytes, cap: int = 65536) -> list[Verdict]:
    """The verdicts of an :class:`Arrival` given ``raw`` one byte at a time."""
    arrival = Arrival(conn=None, deadline=0.0)  # type: ignore[arg-type]
    verdicts = []
    for byte in raw:
        arrival.data.append(byte)
        verdicts.append(arrival.progress(cap))
    return verdicts


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\nGET /healthz HTTP/1.0\r\n\r\n",
        b"POST /wechat HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /wechat HTTP/1.1\r\nHost: x\r\ncontent-length:  0 \r\n\r\n",
        b"POST /wechat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n",
        b"POST /wechat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ],
)
def test_a_request_is_ready_at_its_last_byte_and_not_before(raw: bytes) -> None:
    verdicts = feed(raw)
    assert verdicts[-1] is Verdict.READY
    assert set(verdicts[:-1]) <= {Verdict.MORE}


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\nHost: x\n",  # bare LF: gunicorn refuses it at once
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_a_head_the_parser_refuses_is_handed_over_at_once(head: bytes) -> None:
    assert feed(head)[-1] is Verdict.READY


def test_a_length_over_the_cap_is_handed_over_unbuffered() -> None:
    arrival = Arrival(conn=None, deadline=0.0)  # type: ignore[arg-type]
    arrival.data += b"POST /wechat HTTP/1.1\r\nContent-Length: 70000\r\n\r\n"
    assert arrival.progress(65536) is Verdict.READY
    assert arrival.unbuffered


def test_heads_and_chunked_bodies_over_their_caps_are_refused() -> None:
    assert feed(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES)[-1] is Verdict.HEAD_TOO_LARGE
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n"
    assert feed(chunked + b"a" * 1026, cap=1000)[-1] is Verdict.BODY_TOO_LARGE


def test_bytes_of_a_pipelined_request_do_not_delay_the_first() -> None:
    arrival = Arrival(conn=None, deadline=0.0)  # type: ignore[arg-type]
    arrival.data += b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo"
    assert arrival.progress(65536) is Verdict.READY


# --- one real server -----------------------------------------------------------------------


@dataclass
class Server:
    """``python -m bot web`` on loopback."""

    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("serving")
    data_dir, config = work / "var", work / "config"
    shutil.copytree(ROOT / "config", config)
    search = config / "search.yaml"
    search.write_text(re.sub(r"(dense:\s*\n\s*enabled:)\s*\w+", r"\1 false", search.read_text()))
    env = {
        **os.environ,
        "BOT_DATA_DIR": str(data_dir),
        "BOT_CONFIG_DIR": str(config),
        "WECHAT_TOKEN": DEV_TOKEN,
        DEADLINE_ENV: str(DEADLINE),
    }
    for name in ("REDIS_URL", "WECHAT_MODE", "PORT", "BOT_PORT", "WEB_CONCURRENCY"):
        env.pop(name, None)
    port = free_port()
    log = work / "web.log"
    command = [sys.executable, "-m", "bot", "web", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Server(port, process, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{running.base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"python -m bot web did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield running
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        state.stop_embedded(data_dir)


def question(openid: str) -> SignedRequest:
    return signed_request(build_message("text", openid, Content="微信"), "plain", DEV_TOKEN)


def assert_text_reply(body: bytes, openid: str) -> None:
    reply = read_reply(body, openid)
    assert reply.kind == "text", reply.xml
    assert reply.text


def ask(server: Server, openid: str) -> float:
    """Post a signed question; the seconds its text reply took."""
    signed = question(openid)
    started = time.monotonic()
    response = requests.post(
        f"{server.base}/wechat",
        params=signed.query,
        data=signed.body,
        headers={"Content-Type": "text/xml"},
        timeout=PROBE_LIMIT,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert_text_reply(response.content, openid)
    return elapsed


def read_until_closed(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes (or resets) the connection, within seconds."""
    sock.settimeout(seconds)
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


class SlowLoris(threading.Thread):
    """``clients`` connections, each sending a request head one line every 0.5-2 s.

    A connection the server closes is opened again, as an attacker would.
    """

    def __init__(self, port: int, clients: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.clients, self.seconds = port, clients, seconds
        self.opened = 0
        self.closed_by_server = 0
        self.stop = threading.Event()
        self.random = random.Random(7)

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        sock.sendall(b"POST /wechat HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [time.monotonic() + self._pause(), 0])
        self.opened += 1

    def _pause(self) -> float:
        return self.random.uniform(0.5, 2.0)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        end = time.monotonic() + self.seconds
        try:
            for _ in range(self.clients):
                self._open(selector)
            while time.monotonic() < end and not self.stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # the server answered (408) or closed: start again
                    self.closed_by_server += 1
                    self._open(selector)
                now = time.monotonic()
                for key in list(selector.get_map().values()):
                    due, sent = key.data
                    if due > now:
                        continue
                    try:
                        key.fileobj.send(b"X-Slow-%d: %d\r\n" % (sent, sent))
                        key.data[0], key.data[1] = now + self._pause(), sent + 1
                    except OSError:
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
                        self.closed_by_server += 1
                        self._open(selector)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()
            selector.close()


@pytest.mark.slow
@pytest.mark.redis_server
def test_slow_loris_does_not_starve_healthz_or_the_webhook(server: Server) -> None:
    ask(server, "oServingWarmUp0000000000000")
    attack = SlowLoris(server.port, clients=64, seconds=6.0)
    health: list[float] = []
    answers: list[float] = []
    failures: list[str] = []
    attack.start()
    try:
        time.sleep(1.0)  # every slow connection is open and has sent something
        probe = 0
        while attack.is_alive() and probe < 40:
            probe += 1
            started = time.monotonic()
            try:
                response = requests.get(f"{server.base}/healthz", timeout=PROBE_LIMIT)
                assert response.status_code == 200, response.text
                health.append(time.monotonic() - started)
                answers.append(ask(server, f"oServingProbe{probe:014d}"))
            except (requests.RequestException, AssertionError) as exc:
                failures.append(f"probe {probe}: {exc!r}")
            time.sleep(0.2)
    finally:
        attack.stop.set()
        attack.join(timeout=10)
    assert not failures, failures
    assert len(health) >= 5 and len(answers) >= 5
    assert max(health) < PROBE_LIMIT and max(answers) < PROBE_LIMIT
    assert attack.opened >= 64
    # the deadline held under attack: the first connections were answered 408 and closed
    assert attack.closed_by_server >= 32, (attack.opened, attack.closed_by_server)
    assert requests.get(f"{server.base}/healthz", timeout=PROBE_LIMIT).status_code == 200


@pytest.mark.slow
@pytest.mark.redis_server
def test_a_body_arriving_slowly_within_the_deadline_is_answered(server: Server) -> None:
    openid = "oServingSlowBody00000000000"
    signed = question(openid)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("POST", "/wechat?" + urlencode(signed.query))
        connection.putheader("Content-Type", "text/xml")
        connection.putheader("Content-Length", str(len(signed.body)))
        connection.endheaders()
        pieces = [signed.body[i : i + 40] for i in range(0, len(signed.body), 40)]
        pause = (DEADLINE / 2) / len(pieces)
        for piece in pieces:  # the whole body takes half the deadline
            time.sleep(pause)
            connection.send(piece)
        response = connection.getresponse()
        assert response.status == 200
        assert_text_reply(response.read(), openid)
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.redis_server
def test_a_head_never_finished_is_closed_after_the_deadline(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"POST /wechat HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n")
        started = time.monotonic()
        received = read_until_closed(sock, DEADLINE + 3)
        waited = time.monotonic() - started
    assert DEADLINE - 0.5 < waited < DEADLINE + 1.5, waited
    assert received.startswith(b"HTTP/1.1 408 "), received


@pytest.mark.slow
@pytest.mark.redis_server
def test_pipelined_keep_alive_requests_are_both_answered(server: Server) -> None:
    openid = "oServingPipelined0000000000"
    signed = question(openid)
    first = (
        b"POST /wechat?%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
        b"Content-Length: %d\r\n\r\n%s"
        % (urlencode(signed.query).encode(), len(signed.body), signed.body)
    )
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(first + second)
        received = read_until_closed(sock, 5)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200", b"200"], received
    head, _, rest = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    assert_text_reply(rest[:length], openid)
    assert b'"ok":true' in rest[length:]


@pytest.mark.slow
@pytest.mark.redis_server
def test_a_chunked_post_is_answered(server: Server) -> None:
    openid = "oServingChunked000000000000"
    signed = question(openid)
    body = signed.body
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(
            "POST",
            "/wechat?" + urlencode(signed.query),
            body=iter([body[:50], body[50:120], body[120:]]),
            headers={"Content-Type": "text/xml"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200
        assert_text_reply(response.read(), openid)
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.redis_server
def test_expect_100_continue_is_answered_before_the_body(server: Server) -> None:
    openid = "oServingContinue00000000000"
    signed = question(openid)
    head = (
        b"POST /wechat?%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        % (urlencode(signed.query).encode(), len(signed.body))
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(head)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(signed.body)
        received = read_until_closed(sock, 5)
    assert received.startswith(b"HTTP/1.1 200 "), received
    assert b"100 Continue" not in received  # gunicorn's own one is not sent as well
    assert_text_reply(received.partition(b"\r\n\r\n")[2], openid)


@pytest.mark.slow
@pytest.mark.redis_server
def test_a_head_over_the_cap_is_refused(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10))
        received = read_until_closed(sock, 3)
    assert received.startswith(b"HTTP/1.1 431 "), received


@pytest.mark.slow
@pytest.mark.redis_server
def test_clients_that_never_close_after_the_answer_do_not_stall_the_worker(
    server: Server,
) -> None:
    # gthread closes such a connection in its main loop, waiting up to 2 s for the client's FIN
    held = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0: closed after the answer
            held.append(sock)
        time.sleep(0.3)
        for _ in range(4):
            started = time.monotonic()
            assert requests.get(f"{server.base}/healthz", timeout=PROBE_LIMIT).status_code == 200
            assert time.monotonic() - started < 0.5
    finally:
        for sock in held:
            sock.close()


# --- the worker's connection slots ---------------------------------------------------------


def tiny_app(environ: dict, start_response: object) -> list[bytes]:
    """A WSGI app that reads the body and answers ``ok``: the worker alone is under test."""
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def small_worker(tmp_path: Path) -> Iterator[int]:
    """gunicorn with one BufferingWorker of 10 connection slots, 2 threads, a 1 s deadline."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "tests.test_serving:tiny_app",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "2",
        "--worker-class",
        "bot.serving.BufferingWorker",
        "--worker-connections",
        "10",
    ]
    with open(tmp_path / "gunicorn.log", "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, DEADLINE_ENV: "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=2).text == "ok":
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail((tmp_path / "gunicorn.log").read_text()[-3000:])
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_every_way_a_connection_ends_gives_its_slot_back(small_worker: int) -> None:
    port, rounds = small_worker, 12  # more than the worker's 10 slots

    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    unfinished = [connect() for _ in range(rounds)]  # expired (408) after the 1 s deadline
    for sock in unfinished:
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
    for sock in unfinished:
        read_until_closed(sock, 5)
        sock.close()
    for _ in range(rounds):
        with connect():
            pass  # closed before a byte
        with connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHo")  # closed halfway through the head
        with connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES)
            assert read_until_closed(sock, 5).startswith(b"HTTP/1.1 431 ")
        with connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n")
            assert read_until_closed(sock, 5).startswith(b"HTTP/1.1 413 ")
        with connect() as sock:
            sock.sendall(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
            assert read_until_closed(sock, 5).endswith(b"ok")
    with requests.Session() as session:  # kept alive
        for _ in range(rounds):
            assert session.post(f"http://127.0.0.1:{port}/", data=b"x", timeout=5).text == "ok"
    held = [connect() for _ in range(rounds)]  # answered, closed, never closed by the client
    try:
        for sock in held:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        time.sleep(LINGER_SECONDS + 1.5)
    finally:
        for sock in held:
            sock.close()
    for _ in range(rounds):  # every slot is free again: each is answered at once
        started = time.monotonic()
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=2).text == "ok"
        assert time.monotonic() - started < 1.0
