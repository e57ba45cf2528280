"""The ``/wechat`` endpoint: the protocol edge between WeChat and the handlers.

GET is the server-config handshake (check ``signature``, echo ``echostr``). POST runs, in order:

1. size: bodies over ``webhook.max_body_bytes`` get 413 (Flask's ``MAX_CONTENT_LENGTH``);
2. ``signature`` over token, timestamp, nonce, compared in constant time: 403 when missing or wrong;
3. ``timestamp`` within ``webhook.timestamp_window_seconds`` of now: 403 otherwise;
4. the body: at most ``webhook.max_body_bytes`` however it comes (a chunked one too: 413), UTF-8
   without NUL bytes, no ``<!DOCTYPE``/``<!ENTITY``, well-formed: 400 otherwise;
5. with ``encrypt_type=aes``: ``msg_signature`` (403), then decrypt (one 400 for bad base64,
   padding, length or a foreign appid; which one is logged); a safe-mode account refuses
   plaintext bodies (400);
6. parse into an :class:`~bot.wechat.message.Inbound` (400 on missing, duplicated or mistyped
   fields, and on ids that are not the platform's shape);
6b. a plaintext body under a (timestamp, nonce) already seen with another body: 403. The URL's
   signature does not cover the body, so a captured URL could carry anything for the window's
   five minutes; WeChat's own retries re-send the same body and pass (checked in the claim);
7. answer through :mod:`bot.inbound.delivery` (dedup, deadline), render, and seal the reply in the
   AES
   envelope when the request came encrypted.

Every refusal is one log line naming the reason (never a secret, never a traceback to the client).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot import clock
from bot.inbound import delivery
from bot.state import Keys
from bot.wechat.envelope import EnvelopeError
from bot.wechat.message import BadMessage, Inbound, parse, xml_fields
from bot.wechat.reply import render_reply
from bot.wechat.signing import signature, signature_matches

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

bp = Blueprint("webhook", __name__)

FORBIDDEN_MARKUP = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_QUERY_VALUE = 256
TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""A ``timestamp`` is ASCII digits (``str.isdigit`` also takes "²", which ``int`` refuses)."""

UNDECRYPTABLE = "undecryptable Encrypt"
"""The one answer to every envelope that fails after its signature held (padding, length,
appid, UTF-8): which check failed is logged, never told to the sender."""


class Refused(Exception):
    """A request the webhook will not process: HTTP status, the reason, and a detail logged only."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


def init_app(app: Flask, services: Services, enqueue_late: delivery.LateSender) -> None:
    """Register the blueprint: it answers with ``services``; late answers go to ``enqueue_late``."""
    app.extensions["bot.services"] = services
    app.extensions["bot.enqueue_late"] = enqueue_late
    app.config["MAX_CONTENT_LENGTH"] = services.config.webhook.max_body_bytes
    app.register_blueprint(bp)


def _services() -> Services:
    return current_app.extensions["bot.services"]


def _refuse(refused: Refused) -> Response:
    log.warning(
        "refused %s %s from %s: %s%s",
        request.method,
        request.path,
        request.remote_addr,
        refused.reason,
        f" ({refused.detail})" if refused.detail else "",
    )
    return Response(refused.reason + "\n", status=refused.status, mimetype="text/plain")


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> Response:
    return _refuse(Refused(413, "body larger than webhook.max_body_bytes"))


def _arg(name: str, required: bool = True) -> str:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise Refused(400, f"query parameter {name} given {len(values)} times")
    value = values[0] if values else ""
    if required and not value:
        raise Refused(403, f"missing query parameter {name}")
    if len(value) > MAX_QUERY_VALUE:
        raise Refused(400, f"query parameter {name} too long")
    return value


def _check_signature(services: Services) -> tuple[str, str]:
    """Check ``signature`` and the timestamp window; return (timestamp, nonce)."""
    timestamp, nonce_value, given = _arg("timestamp"), _arg("nonce"), _arg("signature")
    expected = signature(services.settings.token, timestamp, nonce_value)
    if not signature_matches(expected, given):
        raise Refused(403, "signature does not match")
    if not TIMESTAMP.fullmatch(timestamp):
        raise Refused(403, "timestamp is not a number of seconds")
    window = services.config.webhook.timestamp_window_seconds
    if abs(clock.now() - int(timestamp)) > window:
        raise Refused(403, f"timestamp is more than {window} s away from now")
    return timestamp, nonce_value


@bp.get("/wechat")
def handshake() -> Response:
    """The server-config check: echo ``echostr`` once the signature holds."""
    try:
        _check_signature(_services())
        echostr = _arg("echostr")
    except Refused as refused:
        return _refuse(refused)
    return Response(echostr, mimetype="text/plain")


@bp.post("/wechat")
def receive() -> Response:
    """A message or event from WeChat: answer it, or refuse it with a 4xx."""
    services = _services()
    webhook_config = services.config.webhook
    try:
        if (request.content_length or 0) > webhook_config.max_body_bytes:
            raise Refused(413, "body larger than webhook.max_body_bytes")  # before anything else
        timestamp, nonce_value = _check_signature(services)
        message, encrypted, digest = _read_message(services, timestamp, nonce_value)
        # a plaintext body is not covered by the URL's signature: one URL, one body
        guard = None if encrypted else delivery.Guard(
            Keys.signed_url(timestamp, nonce_value),
            digest,
            2 * webhook_config.timestamp_window_seconds + 60,
        )
        reply = delivery.answer(
            message,
            services,
            budget=webhook_config.deadline_seconds,
            dedup_ttl=webhook_config.dedup_ttl_seconds,
            enqueue_late=current_app.extensions["bot.enqueue_late"],
            guard=guard,
        )
    except Refused as refused:
        return _refuse(refused)
    except delivery.Replayed:
        return _refuse(Refused(403, "this signed URL came before with another body (a replay)"))
    xml = render_reply(reply, message.openid, message.account, int(clock.now()))
    if encrypted and reply is not None:
        xml = services.envelope.seal(xml, str(int(clock.now())), nonce_value)
    return Response(xml, mimetype="text/plain" if reply is None else "application/xml")


def _read_message(
    services: Services, timestamp: str, nonce_value: str
) -> tuple[Inbound, bool, str]:
    """Decode, decrypt and parse the body: the message, whether it came encrypted, the body's
    SHA-1 (hex)."""
    raw = _body(services.config.webhook.max_body_bytes)
    if not raw.strip():
        raise Refused(400, "empty body")
    if b"\x00" in raw:  # UTF-16 or UTF-32 (with or without a BOM), or garbage: UTF-8 only
        raise Refused(400, "body contains NUL bytes: only UTF-8 is accepted")
    if FORBIDDEN_MARKUP.search(raw):
        raise Refused(400, "DOCTYPE or ENTITY declarations are not accepted")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"body is not UTF-8 (byte {exc.start})") from None
    encrypt_type = _arg("encrypt_type", required=False).lower()
    if encrypt_type not in ("", "raw", "aes"):
        raise Refused(400, f"unknown encrypt_type {encrypt_type!r}")
    encrypted = encrypt_type == "aes"
    if encrypted:
        body = _open_envelope(services, body, timestamp, nonce_value)
    elif services.settings.mode == "safe":
        raise Refused(400, "this account is in safe mode: plaintext bodies are refused")
    try:
        return parse(body), encrypted, hashlib.sha1(raw).hexdigest()
    except BadMessage as exc:
        raise Refused(400, str(exc)) from None


def _body(limit: int) -> bytes:
    """The request body, at most ``limit`` bytes: 413 for more, whether announced or chunked."""
    if request.content_length is not None:  # receive() refused one announced over the limit
        data = request.get_data(cache=False)
    elif request.environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
        data = request.environ["wsgi.input"].read(limit + 1)
    else:  # neither a length nor an end: nothing can be read safely
        data = b""
    if len(data) > limit:
        raise Refused(413, "body larger than webhook.max_body_bytes")
    return data


def _open_envelope(services: Services, body: str, timestamp: str, nonce_value: str) -> str:
    msg_signature = _arg("msg_signature")
    try:
        outer = xml_fields(body)
    except BadMessage as exc:
        raise Refused(400, str(exc)) from None
    encrypt = outer.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt.strip():
        raise Refused(400, "encrypt_type=aes but no single Encrypt field")
    try:
        plain = services.envelope.open(encrypt.strip(), msg_signature, timestamp, nonce_value)
    except EnvelopeError as exc:
        if "signature" in str(exc):
            raise Refused(403, "msg_signature does not match") from None
        raise Refused(400, UNDECRYPTABLE, detail=str(exc)) from None
    if FORBIDDEN_MARKUP.search(plain.encode("utf-8")):
        raise Refused(400, "DOCTYPE or ENTITY declarations are not accepted")
    return plain
