"""The platform's side of the wire: what WeChat writes and how it reads what the bot answers.

The simulator's driver and the tests share these (the bot itself never needs them):

- inbound bodies: :func:`build_message` writes any message or event as WeChat would
- requests: :func:`signed_request` signs a body, and wraps it in the AES envelope for a mode
- replies: :func:`read_reply` reads and validates a passive reply as the platform does
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xmltodict

from bot import clock
from bot.wechat.envelope import Envelope, EnvelopeError
from bot.wechat.message import TEXT_LIMIT_BYTES, BadMessage, xml_fields
from bot.wechat.reply import escape_cdata
from bot.wechat.signing import signature

_ENCRYPT_ELEMENT = re.compile(r"<Encrypt\s*/>|<Encrypt>.*?</Encrypt>", re.DOTALL)


def nonce() -> str:
    """A random numeric nonce like the platform's (never repeated by a seeded ``random``: the
    webhook refuses a second body under a (timestamp, nonce) it has seen)."""
    return str(10**8 + secrets.randbelow(9 * 10**9))


# --- inbound bodies -----------------------------------------------------------------------------

_msg_ids = itertools.count(int(time.time() * 1000) * 1000)

def build_message(
    kind: str,
    openid: str,
    account: str = "gh_simulated0001",
    create_time: int | None = None,
    msg_id: int | None = None,
    **fields: Any,
) -> str:
    """The plaintext XML WeChat posts for one message (``kind`` = MsgType) or event.

    Messages get a fresh realistic ``MsgId`` unless one is given; events carry none. Extra
    ``fields`` are written in order, e.g. ``build_message("text", "o1", Content="hi")`` or
    ``build_message("event", "o1", Event="CLICK", EventKey="HELP")``.
    """
    body: dict[str, Any] = {
        "ToUserName": account,
        "FromUserName": openid,
        "CreateTime": int(clock.now()) if create_time is None else create_time,
        "MsgType": kind,
    }
    body.update(fields)
    if kind != "event":
        body["MsgId"] = next(_msg_ids) if msg_id is None else msg_id
    return _to_xml(body)


def _to_xml(fields: Mapping[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            text = escape_cdata(str(value))
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


@dataclass(frozen=True)
class SignedRequest:
    """A POST as WeChat would send it: query parameters and body."""

    query: dict[str, str]
    body: bytes


def signed_request(
    xml: str,
    mode: str,
    token: str,
    aes_key: str | None = None,
    appid: str | None = None,
    timestamp: str | None = None,
    nonce_value: str | None = None,
) -> SignedRequest:
    """Wrap plaintext ``xml`` for ``mode`` (plain, compat or safe) and sign it."""
    timestamp = timestamp or str(int(clock.now()))
    nonce_value = nonce_value or nonce()
    fields = xmltodict.parse(xml)["xml"]
    query = {
        "signature": signature(token, timestamp, nonce_value),
        "timestamp": timestamp,
        "nonce": nonce_value,
        "openid": str(fields.get("FromUserName", "")),
    }
    if mode == "plain":
        return SignedRequest(query, xml.encode("utf-8"))
    if not (aes_key and appid):
        raise ValueError(f"mode {mode} needs aes_key and appid")
    encrypt = Envelope(token, aes_key, appid).encrypt(xml)
    query["encrypt_type"] = "aes"
    query["msg_signature"] = signature(token, timestamp, nonce_value, encrypt)
    if mode == "safe":
        body = _to_xml({"ToUserName": fields.get("ToUserName", ""), "Encrypt": encrypt})
    else:
        inner = _ENCRYPT_ELEMENT.sub("", xml).rstrip()  # one Encrypt field: ours
        body = inner[: -len("</xml>")] + f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return SignedRequest(query, body.encode("utf-8"))


# --- replies ------------------------------------------------------------------------------------


class BadReply(ValueError):
    """A reply WeChat would not accept (the client shows 「该公众号暂时无法提供服务」)."""


@dataclass(frozen=True)
class ReadReply:
    """A passive reply as the platform reads it."""

    kind: str
    """``none`` (success or empty), ``text``, ``news``, ``image``, ..."""
    fields: dict[str, Any]
    xml: str

    @property
    def text(self) -> str:
        """The text of a text reply, or the article title and description of a news reply."""
        if self.kind == "text":
            return str(self.fields.get("Content") or "")
        if self.kind == "news":
            item = self.fields["Articles"]["item"]
            return f"{item.get('Title') or ''}\n{item.get('Description') or ''}".strip()
        return ""


def read_reply(
    body: bytes | str,
    openid: str,
    mode: str = "plain",
    envelope: Envelope | None = None,
) -> ReadReply:
    """Read and validate a webhook's answer as WeChat does; :class:`BadReply` says what is wrong.

    Checks: ``success`` or empty means no reply; otherwise well-formed XML, addressed to
    ``openid``, text within 2048 bytes, news with exactly one article, and in compat/safe mode an
    encrypted envelope whose signature holds (compat mode accepts a plaintext reply too).
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if text.strip() in ("", "success"):
        return ReadReply("none", {}, text)
    fields = _xml_fields(text)
    if "Encrypt" in fields:
        if envelope is None:
            raise BadReply("an encrypted reply, but no key to open it")
        for name in ("MsgSignature", "TimeStamp", "Nonce"):
            if not fields.get(name):
                raise BadReply(f"the envelope lacks {name}")
        try:
            text = envelope.open(
                fields["Encrypt"], fields["MsgSignature"], str(fields["TimeStamp"]), fields["Nonce"]
            )
        except EnvelopeError as exc:
            raise BadReply(f"bad envelope: {exc}") from None
        fields = _xml_fields(text)
    elif mode == "safe":
        raise BadReply("safe mode needs an encrypted reply")
    if fields.get("ToUserName") != openid:
        raise BadReply(f"ToUserName is {fields.get('ToUserName')!r}, not the sender {openid!r}")
    if not fields.get("FromUserName"):
        raise BadReply("FromUserName is missing")
    if not str(fields.get("CreateTime", "")).isdigit():
        raise BadReply("CreateTime is missing or not a number")
    kind = str(fields.get("MsgType", "")).lower()
    if kind == "text":
        content = fields.get("Content") or ""
        if len(content.encode("utf-8")) > TEXT_LIMIT_BYTES:
            raise BadReply(f"text is {len(content.encode())} bytes, over {TEXT_LIMIT_BYTES}")
    elif kind == "news":
        count = str(fields.get("ArticleCount", ""))
        items = (fields.get("Articles") or {}).get("item")
        if count != "1" or not isinstance(items, dict):
            raise BadReply("a news reply must carry exactly one article")
    elif kind not in ("image", "voice", "video", "music", "transfer_customer_service"):
        raise BadReply(f"unknown reply MsgType {kind!r}")
    return ReadReply(kind, fields, text)


def _xml_fields(text: str) -> dict[str, Any]:
    try:
        return xml_fields(text)
    except BadMessage as exc:
        raise BadReply(f"not a well-formed reply: {exc}") from None
