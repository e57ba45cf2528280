"""The protocol driver: posts messages to the webhook exactly as WeChat does.

Each delivery is signed for the account's mode (``bot.simulator.wire.signed_request``), waits at
most
``timeout`` seconds (5 s on the platform), and is re-delivered with the same query and body on a
timeout, a refused connection or a non-200 answer, ``attempts`` times in all. The answer is read
and validated by ``bot.simulator.wire.read_reply``; when no valid answer came, the subscriber sees
:data:`FAILURE_NOTICE`, as in the real client. Before posting, the driver tells the platform what
the subscriber did (``report``), because WeChat knows it before the account does; after a valid
text or news reply to a subscriber's action, it tells the platform what WeChat showed them
(``replied``, once per action whatever the re-deliveries), which the platform logs as
``api: "reply"``. In-process drivers pass the platform's own methods; a driver in another process
passes :func:`api_reporter` and :func:`api_replier`, which post to the fake API.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import xmltodict

from bot import clock
from bot.settings import Settings
from bot.simulator.actions import Action
from bot.simulator.wire import (
    BadReply,
    ReadReply,
    build_message,
    nonce,
    read_reply,
    signed_request,
)
from bot.wechat.envelope import Envelope
from bot.wechat.signing import signature

log = logging.getLogger(__name__)

FAILURE_NOTICE = "该公众号暂时无法提供服务，请稍后再试"
"""What the WeChat client shows when the account fails to answer validly."""

DELIVERY_TIMEOUT = 5.0
"""Seconds WeChat waits for one delivery."""

DELIVERIES = 3
"""Deliveries of one message in all (the first and its re-deliveries)."""

ACCOUNT_ID = "gh_simulated0001"
"""The simulated account's original id (``ToUserName``)."""

Report = Callable[[str, str, str, float], None]
"""``report(openid, activity, name, at)``: tells the platform what a subscriber did."""

Replied = Callable[[str, str, str, str, float], object]
"""``replied(openid, name, msgtype, content, at)``: tells the platform which passive reply it
showed a subscriber (msgtype ``text`` or ``news``)."""


def openid_for(name: str) -> str:
    """The stable, realistic openid of the simulated subscriber called ``name``."""
    digest = hashlib.sha256(f"simulated:{name}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


@dataclass
class Attempt:
    """One delivery: HTTP status (None without an answer), seconds taken, what went wrong."""

    status: int | None
    seconds: float
    error: str = ""


@dataclass
class Exchange:
    """One message sent and what came back, as the platform saw it."""

    user: str
    openid: str
    label: str
    request_xml: str
    query: dict[str, str] = field(default_factory=dict)
    body: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    reply: ReadReply | None = None
    reply_body: str = ""
    problem: str = ""
    """Why the client shows :data:`FAILURE_NOTICE` (empty when the answer was valid)."""

    @property
    def shown(self) -> str:
        """What the subscriber's phone shows: the reply, the failure notice, or nothing."""
        if self.problem:
            return FAILURE_NOTICE
        return self.reply.text if self.reply else ""

    @property
    def seconds(self) -> float:
        """Time from the first delivery to the last answer."""
        return sum(a.seconds for a in self.attempts)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly summary (``sim send --json``, the chat page)."""
        reply_kind = self.reply.kind if self.reply else "failed"
        return {
            "user": self.user,
            "openid": self.openid,
            "sent": self.label,
            "reply_type": reply_kind,
            "text": self.reply.text if self.reply else "",
            "shown": self.shown,
            "problem": self.problem,
            "ms": round(self.seconds * 1000, 1),
            "deliveries": [{"status": a.status, "ms": round(a.seconds * 1000, 1),
                            "error": a.error} for a in self.attempts],
            "request_xml": self.request_xml,
            "request_body": self.body,
            "reply_body": self.reply_body,
            "reply_xml": self.reply.xml if self.reply else "",
        }


class Driver:
    """Sends subscribers' actions to one webhook in one mode."""

    def __init__(
        self,
        webhook_url: str,
        settings: Settings,
        report: Report | None = None,
        timeout: float = DELIVERY_TIMEOUT,
        deliveries: int = DELIVERIES,
        account: str = ACCOUNT_ID,
        now: Callable[[], float] = clock.now,
        replied: Replied | None = None,
    ) -> None:
        if deliveries < 1:
            raise ValueError("deliveries must be at least 1")
        self.url, self.settings, self.report = webhook_url, settings, report
        self.replied = replied
        self.timeout, self.deliveries, self.account, self.now = timeout, deliveries, account, now
        self._local = threading.local()
        self.envelope = Envelope(settings.token, settings.aes_key, settings.appid)

    @property
    def http(self) -> requests.Session:
        """This thread's HTTP session (the page's server calls the driver from many threads)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def act(self, user: str, action: Action) -> Exchange:
        """Do ``action`` as the subscriber ``user``: tell the platform, then post the message."""
        openid = openid_for(user)
        at = self.now()
        if self.report is not None:
            self.report(openid, action.activity, user, at)
        if not action.kind:
            return Exchange(user, openid, action.label, "")
        xml = build_message(action.kind, openid, self.account, create_time=int(at),
                            **action.fields)
        exchange = self.deliver(xml, user=user, label=action.label)
        shown = shown_reply(exchange)
        if self.replied is not None and shown is not None:
            self.replied(openid, user, *shown, self.now())
        return exchange

    def deliver(self, xml: str, user: str = "", label: str = "") -> Exchange:
        """Post plaintext ``xml`` (signed for the mode) with re-deliveries; read the answer."""
        mode = self.settings.mode
        openid = _field(xml, "FromUserName")
        request = signed_request(xml, mode, self.settings.token, self.settings.aes_key,
                                 self.settings.appid, timestamp=str(int(self.now())))
        exchange = Exchange(user, openid, label, xml, request.query, request.body.decode())
        for _ in range(self.deliveries):
            started = time.monotonic()
            try:
                response = self.http.post(self.url, params=request.query, data=request.body,
                                          headers={"Content-Type": "text/xml"},
                                          timeout=self.timeout)
            except requests.Timeout:
                exchange.attempts.append(Attempt(None, time.monotonic() - started, "timeout"))
                continue
            except requests.ConnectionError as exc:
                exchange.attempts.append(Attempt(None, time.monotonic() - started,
                                                 f"cannot connect: {type(exc).__name__}"))
                continue
            attempt = Attempt(response.status_code, time.monotonic() - started)
            exchange.attempts.append(attempt)
            if response.status_code != 200:
                attempt.error = f"HTTP {response.status_code}"
                continue
            exchange.reply_body = response.content.decode("utf-8", "replace")
            try:
                exchange.reply = read_reply(response.content, openid, mode, self.envelope)
            except BadReply as exc:
                attempt.error = exchange.problem = str(exc)
            return exchange
        exchange.problem = f"no answer in {self.deliveries} deliveries"
        return exchange

    def handshake(self) -> str:
        """The server-config check: GET with a signed ``echostr``; empty when it is echoed.

        Otherwise says what the platform's configuration page would complain about.
        """
        timestamp = str(int(self.now()))
        nonce_value, echostr = nonce(), nonce() + nonce()
        query = {"signature": signature(self.settings.token, timestamp, nonce_value),
                 "timestamp": timestamp, "nonce": nonce_value, "echostr": echostr}
        try:
            response = self.http.get(self.url, params=query, timeout=self.timeout)
        except requests.RequestException as exc:
            return f"cannot reach {self.url}: {type(exc).__name__}"
        if response.status_code != 200:
            return f"HTTP {response.status_code} (token verification failed)"
        if response.text != echostr:
            return f"answered {response.text[:60]!r} instead of echoing echostr"
        return ""

    def post_event(self, fields: dict[str, Any], sender: str) -> Exchange:
        """Post a platform event (e.g. MASSSENDJOBFINISH) from ``sender`` to the webhook."""
        xml = build_message("event", sender, self.account, create_time=int(self.now()), **fields)
        return self.deliver(xml, label=f"[{fields.get('Event', 'event')}]")


def shown_reply(exchange: Exchange) -> tuple[str, str] | None:
    """``(msgtype, content)`` of the text or news reply the subscriber was shown, else None.

    A news reply's content is its article's title, description and URL, one a line.
    """
    reply = exchange.reply
    if exchange.problem or reply is None or reply.kind not in ("text", "news"):
        return None
    if reply.kind == "text":
        return "text", reply.text
    item = reply.fields["Articles"]["item"]
    parts = (item.get("Title"), item.get("Description"), item.get("Url"))
    return "news", "\n".join(str(part) for part in parts if part)


def _field(xml: str, name: str) -> str:
    return str(xmltodict.parse(xml)["xml"].get(name) or "")


def api_reporter(api_base: str, http: requests.Session | None = None) -> Report:
    """A :data:`Report` that posts to the fake API's ``/sim/activity``; failures are logged.

    The platform stamps the activity with its own clock, as WeChat does.
    """
    session = http or requests.Session()

    def report(openid: str, activity: str, name: str, at: float) -> None:
        try:
            answer = session.post(f"{api_base}/sim/activity", timeout=3,
                                  json={"openid": openid, "kind": activity, "name": name})
            answer.raise_for_status()
        except requests.RequestException as exc:
            log.warning("could not tell the fake API at %s: %s", api_base, exc)

    return report


def api_replier(api_base: str, http: requests.Session | None = None) -> Replied:
    """A :data:`Replied` that posts to the fake API's ``/sim/reply``; failures are logged.

    As with :func:`api_reporter`, the platform stamps the reply with its own clock.
    """
    session = http or requests.Session()

    def replied(openid: str, name: str, msgtype: str, content: str, at: float) -> None:
        try:
            answer = session.post(f"{api_base}/sim/reply", timeout=3, json={
                "openid": openid, "name": name, "msgtype": msgtype, "content": content})
            answer.raise_for_status()
        except requests.RequestException as exc:
            log.warning("could not tell the fake API at %s: %s", api_base, exc)

    return replied
