"""A reply's stored forms: JSON for Redis, the late mark, and plain text.

What :mod:`bot.inbound.delivery` caches for retries (``Keys.seen``), stores for the late job
(``Keys.late``) and :mod:`bot.inbound.kept` keeps for the next message (``Keys.kept``) is a
reply as :func:`encode` writes it; :func:`decode` reads it back. An answer given another way is
cached as :data:`LATE_MARK`. :func:`as_text` is a reply as plain text, for the
customer-service API (:mod:`bot.inbound.late`) and for kept answers given with the next reply.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from bot.wechat.message import News, Reply, Text

LATE_MARK = "late"
"""Cached in place of an answer given another way: through the customer-service API, or (kept)
with the subscriber's next message. Reads as "no reply"."""


def encode(reply: Reply) -> str:
    """A reply as JSON, for the cache."""
    if reply is None:
        return json.dumps({"kind": "none"})
    kind = "text" if isinstance(reply, Text) else "news"
    return json.dumps({"kind": kind, **asdict(reply)}, ensure_ascii=False)


def decode(data: str) -> Reply:
    """A reply back from :func:`encode` (the late mark reads as "no reply")."""
    if data == LATE_MARK:
        return None
    fields = json.loads(data)
    kind = fields.pop("kind")
    if kind == "text":
        return Text(**fields)
    if kind == "news":
        return News(**fields)
    return None


def as_text(reply: Text | News) -> str:
    """A reply as plain text (a news reply: its title, description and link)."""
    if isinstance(reply, Text):
        return reply.content
    return "\n".join(part for part in (reply.title, reply.description, reply.url) if part)
