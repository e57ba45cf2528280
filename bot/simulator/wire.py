"""The WeChat wire format, in both directions: what the webhook, the simulator and the tests share.

- signatures: :func:`signature` (URL ``signature`` and envelope ``msg_signature`` alike)
- the AES envelope: :class:`Envelope` (wechatpy's ``WeChatCrypto`` underneath)
- inbound bodies: :func:`build_message` writes any message or event as WeChat would
- requests: :func:`signed_request` turns a body into (query, body) for a mode
- replies: :func:`render_reply` writes a reply; :func:`read_reply` reads and validates one
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import re
import string
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.replies import ArticlesReply, TextReply

from bot import clock
from bot.message import TEXT_LIMIT_BYTES, BadMessage, News, Reply, Text, xml_fields

CDATA_END = "]]>"
_ENCRYPT_ELEMENT = re.compile(r"<Encrypt\s*/>|<Encrypt>.*?</Encrypt>", re.DOTALL)
CDATA_END_ESCAPED = "]]]]><![CDATA[>"


class EnvelopeError(ValueError):
    """An AES envelope that fails its signature, base64, padding, length or appid check."""


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """``sha1`` of the sorted, concatenated parts, lowercase hex (the platform's rule)."""
    parts = sorted([token, timestamp, nonce, *extra])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def signature_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two signatures."""
    return given is not None and hmac.compare_digest(
        expected.encode(), given.encode("utf-8", "replace")
    )


def nonce() -> str:
    """A random numeric nonce like the platform's."""
    return str(random.randint(10**8, 10**10))


class Envelope:
    """The AES envelope of compatible and safe modes, for one account.

    ``random16`` fixes the 16 random bytes that lead each plaintext (for golden-vector tests);
    by default they are random, as the platform requires.
    """

    def __init__(self, token: str, aes_key: str, appid: str, random16: str | None = None) -> None:
        self.token = token
        self.appid = appid
        self._key = WeChatCrypto(token, aes_key, appid).key  # checks the 43-character key
        self._random16 = random16

    def _prp(self) -> PrpCrypto:
        prp = PrpCrypto(self._key)
        if self._random16 is not None:
            prp.get_random_string = lambda: self._random16
        return prp

    def open(self, encrypt: str, msg_signature: str | None, timestamp: str, nonce: str) -> str:
        """Check ``msg_signature`` and decrypt ``encrypt`` into the plaintext XML."""
        expected = signature(self.token, timestamp, nonce, encrypt)
        if not signature_matches(expected, msg_signature):
            raise EnvelopeError("msg_signature does not match")
        try:
            plain = self._prp().decrypt(encrypt, self.appid)
        except InvalidAppIdException:
            raise EnvelopeError("the appid inside the ciphertext is not this account's") from None
        except (ValueError, TypeError, IndexError, UnicodeDecodeError, struct.error) as exc:
            raise EnvelopeError(f"undecryptable Encrypt ({type(exc).__name__})") from None
        return plain.decode("utf-8") if isinstance(plain, bytes) else plain

    def encrypt(self, xml: str) -> str:
        """The ``Encrypt`` value: base64 of AES-256-CBC over random16, length, xml and appid."""
        return self._prp().encrypt(xml, self.appid).decode("ascii")

    def seal(self, xml: str, timestamp: str, nonce: str) -> str:
        """Encrypt ``xml`` into the signed reply envelope."""
        encrypt = self.encrypt(xml)
        return (
            "<xml>\n"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
            f"<MsgSignature><![CDATA[{signature(self.token, timestamp, nonce, encrypt)}]]>"
            "</MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n"
            f"<Nonce><![CDATA[{nonce}]]></Nonce>\n"
            "</xml>"
        )


# --- inbound bodies -----------------------------------------------------------------------------

_msg_ids = itertools.count(int(time.time() * 1000) * 1000)

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "subscribe": ("EventKey", "Ticket"),
    "SCAN": ("EventKey", "Ticket"),
    "LOCATION": ("Latitude", "Longitude", "Precision"),
    "CLICK": ("EventKey",),
    "VIEW": ("EventKey",),
}


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
            text = str(value).replace(CDATA_END, CDATA_END_ESCAPED)
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


def escape_cdata(text: str) -> str:
    """Make ``text`` safe inside a CDATA section (wechatpy does not)."""
    return text.replace(CDATA_END, CDATA_END_ESCAPED)


def render_reply(reply: Reply, openid: str, account: str, create_time: int | None = None) -> str:
    """The passive reply XML for ``reply``, addressed back to ``openid``; ``success`` for None."""
    if reply is None:
        return "success"
    when = int(clock.now()) if create_time is None else create_time
    if isinstance(reply, Text):
        xml = TextReply(
            source=account, target=openid, time=when, content=escape_cdata(reply.content)
        ).render()
        return xml
    if isinstance(reply, News):
        news = ArticlesReply(source=account, target=openid, time=when)
        news.add_article(
            {
                "title": escape_cdata(reply.title),
                "description": escape_cdata(reply.description),
                "url": escape_cdata(reply.url),
                "image": escape_cdata(reply.image),
            }
        )
        return news.render()
    raise TypeError(f"not a reply: {reply!r}")


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


def random_openid() -> str:
    """An openid shaped like the platform's (28 characters, starting with ``o``)."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return "o" + "".join(random.choice(alphabet) for _ in range(27))
