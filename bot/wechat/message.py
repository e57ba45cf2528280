"""The protocol-free values handlers see and return.

The webhook turns a request into an :class:`Inbound` (one XML parse, then checked field by field)
and renders whatever a handler returns: a :class:`Text`, a :class:`News` article, or
``None`` for "no reply" (``success``). Handlers never see XML, signatures or Flask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

MESSAGE_KINDS = frozenset(
    {
        "text",
        "image",
        "voice",
        "video",
        "shortvideo",
        "location",
        "link",
        "miniprogrampage",
        "event",
    }
)
"""MsgType values the platform sends to an official account."""

TEXT_LIMIT_BYTES = 2048
"""A passive text reply's Content must fit in this many UTF-8 bytes."""


ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Openids (28 characters), unionids and account ids (``gh_`` + 12) are short strings of these:
anything else in ``FromUserName``/``ToUserName`` did not come from the platform (and would be
echoed into the reply)."""

ID_RULE = "1 to 64 letters, digits, '_' or '-'"

_SECONDS = re.compile(r"[0-9]{1,12}")
_MSG_ID = re.compile(r"[0-9]{1,32}")


class BadMessage(ValueError):
    """The body is not a message the platform could have sent; the reason is the text."""


@dataclass(frozen=True)
class Inbound:
    """One message or event from a subscriber."""

    kind: str
    """``text``, ``image``, ``voice``, ... ``event``; unknown types keep their lowercased name."""
    openid: str
    account: str
    create_time: int
    event: str = ""
    """Lowercased event name for ``kind == "event"`` (``subscribe``, ``click``, ...)."""
    event_key: str = ""
    msg_id: str = ""
    content: str = ""
    """The text of a text message, or the speech recognition of a voice message."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Every field of the body as sent, for the handlers of rarer types."""

    @property
    def delivery_id(self) -> str:
        """What identifies this delivery across WeChat's retries."""
        if self.msg_id:
            return f"m{self.msg_id}"
        # job-finish receipts come from one platform sender, several in a second: their MsgID
        # tells them apart
        receipt = self.fields.get("MsgID")
        suffix = f":{receipt.strip()}" if isinstance(receipt, str) and receipt.strip() else ""
        return f"e{self.create_time}:{self.event}:{self.event_key}{suffix}"


@dataclass(frozen=True)
class Text:
    """A text reply."""

    content: str


@dataclass(frozen=True)
class News:
    """A one-article news (图文) reply."""

    title: str
    description: str
    url: str = ""
    image: str = ""


Reply = Text | News | None


def parse(xml: str) -> Inbound:
    """Read a plaintext message body into an :class:`Inbound`; :class:`BadMessage` if it is not one.

    The body is parsed once; the checks refuse what a lenient parser (wechatpy's) would accept
    silently: duplicated or missing header fields, non-numeric times, nested values where text
    belongs, an event without its name. ``MsgType`` and ``Event`` are lowercased; an event's
    ``EventKey`` is kept as sent (a follow from a QR code keeps its ``qrscene_`` prefix).
    """
    raw = xml_fields(xml)
    for name in ("ToUserName", "FromUserName", "CreateTime", "MsgType"):
        value = raw.get(name)
        if value is None:
            raise BadMessage(f"missing field {name}")
        if not isinstance(value, str):
            raise BadMessage(f"field {name} must appear once, as text")
    if not _SECONDS.fullmatch(raw["CreateTime"].strip()):
        raise BadMessage("CreateTime must be a whole number of seconds (ASCII digits)")
    for name in ("ToUserName", "FromUserName"):
        if not ID_SHAPE.fullmatch(raw[name].strip()):
            raise BadMessage(f"{name} is not an id the platform gives ({ID_RULE})")
    kind = raw["MsgType"].strip().lower()
    for name in ("Content", "MsgId", "Event", "EventKey", "Recognition"):
        if name in raw and raw[name] is not None and not isinstance(raw[name], str):
            raise BadMessage(f"field {name} must appear once, as text")
    if kind == "text" and raw.get("Content") is None:
        raise BadMessage("a text message needs Content")
    if raw.get("MsgId") and not _MSG_ID.fullmatch(raw["MsgId"].strip()):
        raise BadMessage("MsgId must be a number (ASCII digits)")

    event = ""
    event_key = raw.get("EventKey") or ""
    if kind == "event":
        event = (raw.get("Event") or "").strip().lower()
        if not event:
            raise BadMessage("an event needs Event")
    content = raw.get("Content") or ""
    if kind == "voice":
        content = raw.get("Recognition") or ""
    return Inbound(
        kind=kind,
        openid=raw["FromUserName"].strip(),
        account=raw["ToUserName"].strip(),
        create_time=int(raw["CreateTime"]),
        event=event,
        event_key=event_key.strip() if isinstance(event_key, str) else "",
        msg_id=(raw.get("MsgId") or "").strip(),
        content=content,
        fields=raw,
    )


def xml_fields(xml: str) -> dict[str, Any]:
    """The child fields of an ``<xml>`` document; :class:`BadMessage` if it is not one."""
    try:
        document = xmltodict.parse(xml)
    except (ExpatError, ValueError, TypeError) as exc:
        raise BadMessage(f"malformed XML: {exc}") from None
    root = document.get("xml") if isinstance(document, dict) else None
    if not isinstance(root, dict):
        raise BadMessage("the root element must be <xml> with child fields")
    return root


def fit_text(text: str, limit: int = TEXT_LIMIT_BYTES) -> tuple[str, str]:
    """Split ``text`` into what fits in ``limit`` UTF-8 bytes and the rest, at a sentence end.

    Falls back to a line break, then a space, then a character boundary.
    """
    if len(text.encode("utf-8")) <= limit:
        return text, ""
    cut = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    for marks in ("。！？!?；;\n", "\n", "，, "):
        best = max(cut.rfind(m) for m in marks)
        if best >= len(cut) // 2:
            head = cut[: best + 1]
            return head.rstrip(), text[len(head) :].lstrip()
    return cut, text[len(cut) :]
