"""The gunicorn worker of ``python -m bot web``: a thread gets a request once it has arrived.

Why. gunicorn's ``gthread`` worker hands a connection to one of its threads as soon as its first
bytes arrive, and the thread then blocks reading the rest of the request. The webhook's URL is
public (WeChat posts to it), so anyone can hold every thread with a few dozen connections that
each send one header line every few seconds (slow-loris): ``/healthz`` and WeChat's deliveries
then go unanswered for as long as the attack lasts. A buffering proxy in front would help, but
``make run`` and the Procfile have to hold on their own.

What. :class:`BufferingWorker` is ``gthread`` with one more stage. A connection that is to be
served (just accepted, or kept alive and sending its next request) first waits in the worker's
own poller, non-blocking, while the main loop gathers its bytes, until a whole request is in: the
head up to its blank line and the body (``Content-Length`` bytes, or a chunked body up to its
zero-size chunk and trailers). Only then does it go to the thread pool, where the bytes are given
back to gunicorn's parser, which parses and serves the request as usual. Threads are busy with
the application only, never with waiting for a client. Bytes read ahead by the parser (pipelined
keep-alive requests) start the next request's buffer.

Limits, per connection:

- :data:`REQUEST_DEADLINE` (10 s; environment variable :data:`DEADLINE_ENV` overrides it, the
  tests use a shorter one): the whole request must be in within that time of the connection's
  being accepted, or of the first byte of its next request when kept alive. Otherwise the worker
  answers ``408 Request Timeout`` (best effort) and closes it.
- :data:`MAX_HEAD_BYTES`: a head that grows past it without ending gets ``431`` and is closed.
- Body: the application's own limit (Flask's ``MAX_CONTENT_LENGTH``, the webhook's
  ``max_body_bytes``), at most :data:`MAX_BODY_BYTES`. A ``Content-Length`` above it is handed
  over at once, unbuffered: the application answers 413 itself, and the connection is closed after
  that answer so that no thread drains the body. A chunked body that grows past it gets ``413``
  from the worker.
- ``Expect: 100-continue`` is answered by the worker when the head is in (gunicorn's own answer,
  sent later, is suppressed), so such clients do not stall.
- A connection closed after its answer lingers in the poller (its write side shut, its late
  bytes drained) for :data:`LINGER_SECONDS` at most. gthread does that in its main loop with a
  blocking socket, so a client that never closes its side after a ``Connection: close`` answer
  (an HTTP/1.0 request, say) stalled the whole worker for 2 s each time.
- Should a thread still have to read from the client (a request handed over unbuffered, or a
  framing the parser reads differently from this module), it waits until the request's deadline
  at most, then the connection is closed.

Memory: at most ``worker_connections`` (1000) requests of head plus body cap are buffered per
worker process (about 100 MiB with the webhook's 64 KiB).

What it does not stop: a client opening more connections than ``worker_connections`` (1000 per
worker) and renewing them every deadline fills the worker's connection slots; per-address limits
belong in a firewall or proxy.

Not covered; plain ``gthread`` behaviour, without buffering: TLS terminated by gunicorn
(``cfg.is_ssl``: the handshake happens in the thread), the uwsgi protocol, the PROXY protocol,
and cleartext HTTP/2 by prior knowledge (peers in ``forwarded_allow_ips`` when
``http2_cleartext`` enables it). After an ``Upgrade: h2c`` (off by default) the HTTP/2 connection
is served by one thread, as in ``gthread``. The product uses none of them.

gunicorn's bookkeeping stays as ``gthread`` keeps it: a connection counts in ``nr_conns`` from
``accept()`` until it is closed, whether that happens here (refused, expired, given up by the
client, or at the end of its linger) or in gthread's ``finish_request``. While its request is
gathered it is in neither ``keepalived_conns`` nor ``pending_conns``. Expired requests and
lingering closes are ended from the run loop (:meth:`BufferingWorker.murder_pending`).
"""

from __future__ import annotations

import errno
import math
import os
import re
import selectors
import socket
import time
from collections import deque
from concurrent.futures import Future
from enum import Enum
from functools import partial
from typing import Any

from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http.errors import NoMoreData
from gunicorn.http.message import Request
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

REQUEST_DEADLINE = 10.0
"""Seconds a connection has to deliver a whole request: from its acceptance, or from the first byte
of its next request when kept alive. WeChat posts a few hundred bytes at once; only a client that
is stalling, or an attack, needs longer. Overridden by :data:`DEADLINE_ENV`."""

DEADLINE_ENV = "BOT_WEB_REQUEST_DEADLINE"
"""Environment variable: seconds, overrides :data:`REQUEST_DEADLINE` (the tests make it short)."""

MAX_HEAD_BYTES = 16 * 1024
"""A request head (request line and fields) longer than this is refused with 431."""

MAX_BODY_BYTES = 1024 * 1024
"""The largest body ever buffered: the largest ``webhook.max_body_bytes`` the config allows. The
application's own ``MAX_CONTENT_LENGTH`` lowers it."""

RECV_BYTES = 64 * 1024
"""One ``recv()`` of the main loop."""

LINGER_SECONDS = 2.0
"""How long a connection closed after its answer may take to close its side (gunicorn's
``close_graceful``), its bytes drained meanwhile, :data:`LINGER_BYTES` at most."""

LINGER_BYTES = 64 * 1024

MAX_CHUNK_LINE = 8190
"""Longest chunk-size line looked for (gunicorn's default ``limit_request_field_size``)."""

ATTRIBUTE = "buffered_arrival"
"""The :class:`TConn` attribute that carries a buffered request from the main loop to a thread."""

_BARE_LF = re.compile(rb"(?<!\r)\n")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_REFUSALS = {
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
}


def request_deadline() -> float:
    """:data:`REQUEST_DEADLINE`, or the seconds in :data:`DEADLINE_ENV`; ValueError if invalid."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return REQUEST_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= 3600:
        raise ValueError(f"{DEADLINE_ENV}={raw!r}: expected seconds, more than 0 and at most 3600")
    return value


def buffering_possible(cfg: Config) -> bool:
    """Whether requests can be buffered under ``cfg`` (see the module's "Not covered")."""
    return (
        not cfg.is_ssl
        and getattr(cfg, "protocol", "http") == "http"
        and getattr(cfg, "proxy_protocol", "off") in ("off", None, False)
    )


def body_cap(wsgi: Any) -> int:
    """:data:`MAX_BODY_BYTES`, or the application's ``MAX_CONTENT_LENGTH`` when lower (Flask)."""
    config = getattr(wsgi, "config", None)
    limit = config.get("MAX_CONTENT_LENGTH") if isinstance(config, dict) else None
    if isinstance(limit, int) and 0 <= limit < MAX_BODY_BYTES:
        return limit
    return MAX_BODY_BYTES


class Verdict(Enum):
    """What :meth:`Arrival.progress` makes of the bytes so far."""

    MORE = "more"
    """The request is not whole yet."""
    READY = "ready"
    """Hand it to a thread: whole, or refused by the parser without reading more."""
    HEAD_TOO_LARGE = "head too large"
    BODY_TOO_LARGE = "body too large"


class Arrival:
    """One request being received: its bytes so far, its deadline, what its framing says.

    Only the worker's main loop touches it until it is handed over; then only that request's
    thread reads it.
    """

    def __init__(self, conn: TConn, deadline: float, data: bytes = b"") -> None:
        self.conn = conn
        self.deadline = deadline
        self.data = bytearray(data)
        self.done = False
        """Handed over or closed; it only waits to leave the worker's expiry queue."""
        self.registered = False
        """In the worker's poller."""
        self.eof = False
        """The client closed its side."""
        self.unbuffered = False
        """Handed over with its head only (a Content-Length over the cap)."""
        self.wants_continue = False
        self.continue_sent = False
        self._scanned = 0
        self._head_end = -1
        self._length: int | None = None
        self._chunked = False
        self._pos = 0
        self._decoded = 0
        self._in_trailers = False

    @property
    def head_complete(self) -> bool:
        """Whether the blank line ending the head is in."""
        return self._head_end >= 0

    def progress(self, cap: int) -> Verdict:
        """Look at the bytes gathered since the last call; ``cap`` is the largest body buffered."""
        if self._head_end < 0:
            verdict = self._find_head(cap)
            if verdict is not None:
                return verdict
        if self._length is not None:
            whole = len(self.data) - self._head_end >= self._length
            return Verdict.READY if whole else Verdict.MORE
        return self._follow_chunks(cap)

    def _find_head(self, cap: int) -> Verdict | None:
        data = self.data
        end = data.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            if _BARE_LF.search(data, max(0, self._scanned - 1)):
                return Verdict.READY  # the parser refuses a bare LF at once
            self._scanned = len(data)
            return Verdict.HEAD_TOO_LARGE if len(data) > MAX_HEAD_BYTES else Verdict.MORE
        if end + 4 > MAX_HEAD_BYTES:
            return Verdict.HEAD_TOO_LARGE
        head = bytes(data[:end])
        self._head_end = self._pos = end + 4
        if _BARE_LF.search(head):
            self._length = 0
            return Verdict.READY
        return self._read_fields(head, cap)

    def _read_fields(self, head: bytes, cap: int) -> Verdict | None:
        """Framing from the fields, as gunicorn's parser reads it (``Message.set_body_reader``).

        A framing that the parser refuses (two lengths, a length and chunked, a coding other
        than a last ``chunked``, chunked in HTTP/1.0) is handed over at once: the parser answers
        400 from the head alone.
        """
        lines = head.split(b"\r\n")
        if lines[0] == b"" and len(lines) > 1:
            del lines[0]  # one empty line before the request line is ignored (RFC 9112 2.2)
        http11 = lines[0].rpartition(b" ")[2] != b"HTTP/1.0"
        lengths: list[bytes] = []
        codings: list[bytes] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                continue  # obsolete folding: part of the previous field
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            name, value = name.rstrip(b" \t").lower(), value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [c.strip(b" \t").lower() for c in value.split(b",")]
            elif name == b"expect":
                self.wants_continue = http11 and value.lower() == b"100-continue"
        self._length = 0
        if codings:
            if lengths or not http11 or codings.count(b"chunked") != 1:
                return Verdict.READY
            if codings[-1] != b"chunked":
                return Verdict.READY
            self._length, self._chunked = None, True
            return None
        if not lengths:
            return Verdict.READY
        if len(lengths) != 1 or not lengths[0].isdigit():
            return Verdict.READY
        length = int(lengths[0])
        if length > cap:
            self.unbuffered = True  # the application refuses it with 413 from the head alone
            return Verdict.READY
        self._length = length
        return None

    def _follow_chunks(self, cap: int) -> Verdict:
        """Walk the chunks received since the last call; READY after the trailers' end."""
        data = self.data
        if len(data) - self._head_end > cap + MAX_HEAD_BYTES:
            return Verdict.BODY_TOO_LARGE  # chunk lines and trailers take a few bytes a chunk
        while True:
            if self._in_trailers:
                if data[self._pos : self._pos + 2] == b"\r\n":
                    return Verdict.READY
                if data.find(b"\r\n\r\n", self._pos) >= 0:
                    return Verdict.READY
                return Verdict.MORE
            end = data.find(b"\r\n", self._pos)
            if end < 0:
                too_long = len(data) - self._pos > MAX_CHUNK_LINE
                return Verdict.READY if too_long else Verdict.MORE
            line = bytes(data[self._pos : end])
            size, semicolon, _ = line.partition(b";")
            if semicolon:
                size = size.rstrip(b" \t")
            if not _HEX.fullmatch(size):
                return Verdict.READY  # the parser refuses it once it gets there
            length = int(size, 16)
            if length == 0:
                self._pos, self._in_trailers = end + 2, True
                continue
            if self._decoded + length > cap:
                return Verdict.BODY_TOO_LARGE
            stop = end + 2 + length
            if len(data) < stop + 2:
                return Verdict.MORE
            if data[stop : stop + 2] != b"\r\n":
                return Verdict.READY  # a chunk without its CRLF: the parser refuses it
            self._pos, self._decoded = stop + 2, self._decoded + length


class Lingering:
    """A connection answered and being closed: write side shut, read side drained until EOF."""

    def __init__(self, conn: TConn, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.drained = 0
        self.done = False


class RequestTimedOut(NoMoreData):
    """A thread would have waited past the request's deadline for the client's bytes."""


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader, bounded: no read waits past :attr:`deadline`.

    The buffered request is given back to it; it only reads from the socket when the parser
    wants more than was buffered.
    """

    deadline = math.inf

    def chunk(self, size_hint: int | None = None) -> bytes:
        """One read from the socket, waiting until the deadline at most."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimedOut(b"")
        prior = self.sock.gettimeout()
        self.sock.settimeout(remaining)
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            raise RequestTimedOut(b"") from None
        finally:
            self.sock.settimeout(prior)


class BufferingWorker(ThreadWorker):
    """``gthread`` whose threads get whole requests only (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_deadline = request_deadline()
        self.buffering = buffering_possible(self.cfg)
        self.body_cap = MAX_BODY_BYTES
        self.arriving: dict[TConn, Arrival] = {}
        self.arrival_order: deque[Arrival] = deque()
        """Arrivals by deadline (all deadlines are now + the same delay): expiry pops the left."""
        self.lingering: deque[Lingering] = deque()
        """Connections being closed, by deadline."""

    @classmethod
    def check_config(cls, cfg: Config, log: Logger) -> None:
        """gthread's check, then this module's environment, in the arbiter before any worker."""
        super().check_config(cfg, log)
        try:
            request_deadline()
        except ValueError as exc:
            raise SystemExit(f"Error: {exc}") from None
        if not buffering_possible(cfg):
            log.warning("BufferingWorker: TLS, uwsgi or PROXY protocol: requests are not buffered")

    def run(self) -> None:
        """Learn the application's body limit (it is loaded by now), then gthread's loop."""
        self.body_cap = body_cap(self.wsgi)
        super().run()

    def enqueue_req(self, conn: TConn) -> None:
        """Gather ``conn``'s next request in the main loop; a thread gets it once it is whole."""
        if not self.buffering or negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            super().enqueue_req(conn)
            return
        read_ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        arrival = Arrival(conn, time.monotonic() + self.request_deadline, read_ahead)
        conn.sock.setblocking(False)
        self.arriving[conn] = arrival
        self.arrival_order.append(arrival)
        self._receive(arrival)

    def _receive(self, arrival: Arrival, _fileobj: object = None) -> None:
        """Read what the client sent (poller callback, or first try), then judge the request."""
        try:
            data = arrival.conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
                self.log.debug("buffering %s: %s", arrival.conn.client, exc)
            self._close(arrival)
            return
        if data:
            arrival.data += data
        elif data is not None:
            arrival.eof = True
        verdict = arrival.progress(self.body_cap)
        if verdict is Verdict.READY:
            self._hand_over(arrival)
        elif verdict is Verdict.HEAD_TOO_LARGE:
            self._close(arrival, 431, f"head over {MAX_HEAD_BYTES} bytes")
        elif verdict is Verdict.BODY_TOO_LARGE:
            self._close(arrival, 413, f"chunked body over {self.body_cap} bytes")
        elif arrival.eof:
            self._close(arrival)  # the client gave up before its request was whole
        else:
            if arrival.wants_continue and arrival.head_complete and not arrival.continue_sent:
                arrival.continue_sent = True
                self._send(arrival, b"HTTP/1.1 100 Continue\r\n\r\n")
            if not arrival.registered:
                self.poller.register(
                    arrival.conn.sock, selectors.EVENT_READ, partial(self._receive, arrival)
                )
                arrival.registered = True

    def _leave(self, arrival: Arrival) -> None:
        arrival.done = True
        self.arriving.pop(arrival.conn, None)
        if arrival.registered:
            arrival.registered = False
            try:
                self.poller.unregister(arrival.conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _hand_over(self, arrival: Arrival) -> None:
        self._leave(arrival)
        setattr(arrival.conn, ATTRIBUTE, arrival)
        super().enqueue_req(arrival.conn)

    def _close(self, arrival: Arrival, status: int | None = None, why: str = "") -> None:
        """Close a connection whose request will not be served; answer ``status`` if it began."""
        self._leave(arrival)
        if status is not None and arrival.data:
            self.log.debug("refused %s with %d: %s", arrival.conn.client, status, why)
            reason = _REFUSALS[status]
            self._send(
                arrival,
                b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                % (status, reason),
            )
        self.nr_conns -= 1
        arrival.conn.close()

    @staticmethod
    def _send(arrival: Arrival, data: bytes) -> None:
        """Best effort, without blocking the main loop: a client that does not read loses it."""
        try:
            arrival.conn.sock.send(data)
        except OSError:
            pass

    def murder_pending(self) -> None:
        """gthread's expiry of deferred connections, then of requests past their deadline and
        of lingering closes past theirs."""
        super().murder_pending()
        now = time.monotonic()
        order = self.arrival_order
        while order and (order[0].done or order[0].deadline <= now):
            arrival = order.popleft()
            if not arrival.done:
                why = f"request not whole within {self.request_deadline:g} s"
                self._close(arrival, 408, why)
        while self.lingering and (self.lingering[0].done or self.lingering[0].deadline <= now):
            self._end_linger(self.lingering.popleft())

    def finish_request(self, conn: TConn, fs: Future) -> None:
        """gthread's, except that closing after the answer lingers in the poller, not blocking."""
        if not self.buffering:
            super().finish_request(conn, fs)
            return
        if not fs.cancelled():
            if fs.exception() is not None or fs.result():
                super().finish_request(conn, fs)  # kept alive, or closed at once on an error
                return
        sock = conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        lingering = Lingering(conn, time.monotonic() + LINGER_SECONDS)
        self.poller.register(sock, selectors.EVENT_READ, partial(self._drain, lingering))
        self.lingering.append(lingering)

    def _drain(self, lingering: Lingering, _fileobj: object = None) -> None:
        try:
            data = lingering.conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        lingering.drained += len(data)
        if not data or lingering.drained >= LINGER_BYTES:
            self._end_linger(lingering)

    def _end_linger(self, lingering: Lingering) -> None:
        if lingering.done:
            return
        lingering.done = True
        try:
            self.poller.unregister(lingering.conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        lingering.conn.close()

    def handle(self, conn: TConn) -> Any:
        """In a thread: give the buffered request back to the parser, then serve it as gthread."""
        arrival: Arrival | None = getattr(conn, ATTRIBUTE, None)
        if arrival is None:
            return super().handle(conn)
        try:
            conn.init()
            parser = conn.parser
            if not isinstance(parser.unreader, DeadlineUnreader):
                read_ahead = parser.unreader.take_buffered()
                parser.unreader = DeadlineUnreader(conn.sock)
                parser.unreader.unread(read_ahead)
            parser.unreader.deadline = arrival.deadline
            parser.unreader.unread(bytes(arrival.data))
            return super().handle(conn)
        finally:
            setattr(conn, ATTRIBUTE, None)

    def handle_request(self, req: Request, conn: TConn) -> bool:
        """gthread's, knowing what the main loop did: 100 Continue sent, body not buffered."""
        arrival: Arrival | None = getattr(conn, ATTRIBUTE, None)
        if arrival is not None:
            if arrival.continue_sent:
                req._expected_100_continue = False  # gunicorn would send a second one
            if arrival.unbuffered:
                req.force_close()  # no thread drains a body that was refused unread
        return super().handle_request(req, conn)
